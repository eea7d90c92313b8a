package enroll_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

const (
	usedAlready = "this one-time challenge password was used already; ask for a new one"
	lockedNow   = "this one-time challenge password is locked after 3 uses for another identity or profile; ask for a new one"
)

// A one-time challenge used already, or locked after misuses, is found by
// its hash: its holder (no guesser: 128 random bits) is told which, as a
// policy refusal (EST 403, SCEP badRequest), over SCEP and as the EST
// password, before the body (CheckCredentials) and in Enroll alike, with
// the same audit reason; and it counts as no failed check, so a device
// asking again with its used challenge does not lock its address out.
func TestSpentChallengeSaysWhyAndCountsNoFailure(t *testing.T) {
	for _, spent := range []struct {
		name, want string
		spend      func(t *testing.T, f *fixture, secret string)
	}{
		{"used", usedAlready, func(t *testing.T, f *fixture, secret string) {
			// Another device (another key) enrolled with it.
			if _, err := f.svc.Enroll(context.Background(), namedWithKey(t, newKey(t), secret, "first")); err != nil {
				t.Fatalf("the first use: %v", err)
			}
		}},
		{"locked", lockedNow, func(t *testing.T, f *fixture, secret string) {
			for range enroll.ChallengeLockAfter {
				r := namedWithKey(t, newKey(t), secret, "first")
				r.Profile = "other"
				if _, err := f.svc.Enroll(context.Background(), r); pki.ErrorCode(err) != pki.EForbidden {
					t.Fatalf("a use at another profile: %v", err)
				}
			}
		}},
	} {
		for _, entry := range []string{"SCEP", "EST, checked first", "EST, enroll"} {
			t.Run(spent.name+", "+entry, func(t *testing.T) {
				own, other := pki.DefaultProfile(), pki.DefaultProfile()
				own.Name, other.Name = "own", "other"
				f := newFixtureWith(t, enroll.Config{FailedAttemptsPerAddress: 2,
					Profiles: map[string]pki.Profile{"own": own, "other": other}, DefaultProfile: "own"})
				ctx := context.Background()
				secret, _, err := f.admin.NewChallenge(ctx, time.Hour, "own", "test")
				if err != nil {
					t.Fatal(err)
				}
				spent.spend(t, f, secret)
				c := &estClient{t: t, f: f, addr: attackerAddr}
				// More than FailedAttemptsPerAddress, each would lock the
				// address out if counted.
				for i := range 3 {
					switch entry {
					case "SCEP":
						err = c.scep("own", secret)
					case "EST, checked first":
						err = c.basic("check first", "own", "device", secret)
					default:
						err = c.basic("enroll", "own", "device", secret)
					}
					if pki.ErrorCode(err) != pki.EForbidden || pki.ErrorMessage(err) != spent.want {
						t.Errorf("try %d: %v, want forbidden: %s", i, err, spent.want)
					}
				}
				if err := c.scep("own", static); err != nil {
					t.Errorf("the static challenge from the same address afterwards: %v, want issued (no failed check counted)", err)
				}
				failed, err := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventEnrollFailed, Limit: 100})
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for _, ev := range failed {
					if ev.Reason == "forbidden: "+spent.want {
						n++
					}
				}
				if n != 3 {
					t.Errorf("%d enrollment.failed events with the reason %q, want 3; all: %+v", n, "forbidden: "+spent.want, failed)
				}
			})
		}
	}
}

// The key that used a one-time challenge, asking again for other names,
// is told the challenge was used (not that it is wrong), and is counted
// as no failed check either.
func TestUsedChallengeForOtherNamesSaysUsed(t *testing.T) {
	f := newFixtureWith(t, enroll.Config{FailedAttemptsPerAddress: 1})
	ctx := context.Background()
	secret, _, err := f.admin.NewChallenge(ctx, time.Hour, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	k := newKey(t)
	if _, err := f.svc.Enroll(ctx, namedWithKey(t, k, secret, "dev-1")); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		_, err := f.svc.Enroll(ctx, namedWithKey(t, k, secret, fmt.Sprintf("dev-other-%d", i)))
		if pki.ErrorCode(err) != pki.EForbidden || !strings.HasPrefix(pki.ErrorMessage(err), "this one-time challenge password was used already, by a request for this key with other names") {
			t.Errorf("try %d: %v, want forbidden: used already", i, err)
		}
	}
	if _, err := f.svc.Enroll(ctx, namedWithKey(t, newKey(t), static, "dev-2")); err != nil {
		t.Errorf("the static challenge from the same address afterwards: %v, want issued", err)
	}
}
