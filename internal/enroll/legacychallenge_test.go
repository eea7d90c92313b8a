package enroll_test

import (
	"context"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/credential"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
)

// A one-time challenge made by the first builds records no profile: it is
// bound to the default profile, as README promises of a challenge minted
// without --profile, and refused at any other (r115 D3).
func TestChallengeWithoutProfileIsBoundToTheDefault(t *testing.T) {
	for _, tt := range []struct {
		name, at string
		refused  bool
	}{
		{"at the default profile", "own", false},
		{"at another profile", "other", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			own, other := pki.DefaultProfile(), pki.DefaultProfile()
			own.Name, other.Name = "own", "other"
			f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"own": own, "other": other}, DefaultProfile: "own"})
			ctx := context.Background()
			const secret = "LEGACYCHALLENGE0123456789ABCDEF0"
			now := f.clock.Now()
			legacy := pki.Challenge{ID: "LEGACY", Hash: credential.HashChallenge(secret), CreatedAt: now, ExpiresAt: now.Add(time.Hour), CreatedBy: "first build"}
			if err := f.st.CreateChallenge(ctx, legacy, pki.AuditEvent{Time: now, Type: pki.EventChallengeCreated, Actor: "first build", Outcome: "success"}); err != nil {
				t.Fatal(err)
			}
			r := namedWithKey(t, newKey(t), secret, "legacy")
			r.Profile = tt.at
			_, err := f.svc.Enroll(ctx, r)
			switch {
			case !tt.refused && err != nil:
				t.Fatalf("enrolled at %s: %v, want issued", tt.at, err)
			case tt.refused && (pki.ErrorCode(err) != pki.EForbidden || pki.ErrorMessage(err) != "this challenge password is bound to another profile (own)"):
				t.Fatalf("enrolled at %s: %v, want forbidden: bound to another profile", tt.at, err)
			}
		})
	}
}
