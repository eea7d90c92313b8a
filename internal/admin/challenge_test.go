package admin

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// A one-time challenge for a profile that never takes one (static, or a
// webhook's) could never be used: it is refused when asked for.
func TestTakesOneTimeChallenges(t *testing.T) {
	for mode, ok := range map[string]bool{"": true, "any": true, "onetime": true, "static": false, "webhook": false} {
		err := TakesOneTimeChallenges(pki.Profile{Name: "p", ChallengeMode: mode})
		if (err == nil) != ok || (err != nil && pki.ErrorCode(err) != pki.EBadRequest) {
			t.Errorf("challenge mode %q: %v, want ok %v", mode, err, ok)
		}
	}
}

// A challenge lives between a second and MaxChallengeTTL: a shorter one
// ("1ns", "500ms" through the API) would be expired when it is made.
func TestChallengeLifetimeBounds(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	p := pki.DefaultProfile()
	svc := New(st, clock, nil, map[string]pki.Profile{p.Name: p}, p.Name)
	for _, tc := range []struct {
		ttl time.Duration
		ok  bool
	}{
		{-5 * time.Hour, false},
		{0, false},
		{time.Nanosecond, false},
		{500 * time.Millisecond, false},
		{time.Second - 1, false},
		{time.Second, true},
		{time.Hour, true},
		{MaxChallengeTTL, true},
		{MaxChallengeTTL + time.Second, false},
	} {
		_, c, err := svc.NewChallenge(ctx, tc.ttl, "", "test")
		if !tc.ok {
			if pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(err.Error(), "between 1s and 720h (30 days)") {
				t.Errorf("ttl %s: %v, want a bad request naming the bounds", tc.ttl, err)
			}
			continue
		}
		if err != nil || !c.ExpiresAt.Equal(clock.Now().Add(tc.ttl)) {
			t.Errorf("ttl %s: %v, expires %s", tc.ttl, err, c.ExpiresAt)
		}
	}
}
