package estserver_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

const (
	usedAlready = "this one-time challenge password was used already; ask for a new one"
	lockedNow   = "this one-time challenge password is locked after 3 uses for another identity or profile; ask for a new one"
)

// A one-time challenge used already, or locked after three uses at
// another profile, sent as the EST password is refused with 403 saying
// so (not 401 "user name or password is not valid"), audited with that
// reason, and never counted as a failed check: more tries than the
// lockout allows are all told the same, none 429 (r75 D2).
func TestSpentChallengeIsForbiddenSayingWhy(t *testing.T) {
	for _, c := range []struct {
		name, want string
		spend      func(f *fixture, c *http.Client, secret string)
	}{
		{"used", usedAlready, func(f *fixture, c *http.Client, secret string) {
			f.issued(f.post(c, "ot/simpleenroll", "x", secret, newCSR(t, newKey(t), "first", csr.Template{}), nil))
		}},
		{"locked", lockedNow, func(f *fixture, c *http.Client, secret string) {
			for range enroll.ChallengeLockAfter {
				wantStatus(t, f.post(c, "simpleenroll", "x", secret, newCSR(t, newKey(t), "first", csr.Template{}), nil),
					http.StatusForbidden, "bound to another profile")
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, fixtureOptions{profiles: []pki.Profile{
				profile("ot", func(p *pki.Profile) { p.ChallengeMode = enroll.ChallengeOneTime }),
			}})
			ctx := context.Background()
			hc := f.httpClient(nil, 0)
			secret, _, err := f.adm.NewChallenge(ctx, time.Hour, "ot", "test")
			if err != nil {
				t.Fatal(err)
			}
			c.spend(f, hc, secret)
			for i := range 11 { // one more than the lockout's default
				r := f.post(hc, "ot/simpleenroll", "x", secret, newCSR(t, newKey(t), "again", csr.Template{}), nil)
				if r.status != http.StatusForbidden || strings.TrimSpace(string(r.body)) != c.want || r.header.Get("WWW-Authenticate") != "" {
					t.Fatalf("try %d: HTTP %d %q (WWW-Authenticate %q), want 403 %q", i, r.status, r.body, r.header.Get("WWW-Authenticate"), c.want)
				}
			}
			failed, err := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventEnrollFailed, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, ev := range failed {
				if ev.Reason == "forbidden: "+c.want {
					n++
				}
			}
			if n != 11 {
				t.Errorf("%d enrollment.failed events with the reason %q, want 11", n, "forbidden: "+c.want)
			}
		})
	}
}

// Copies of one request with one one-time challenge and a key each, sent
// at once: one certificate, and every other copy told the same thing,
// whether it lost the race before its check or at its issuance (r75 D2).
func TestCopiesWithOneChallengeGetOneWording(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	secret, _, err := f.adm.NewChallenge(context.Background(), time.Hour, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	hc := f.httpClient(nil, 0)
	const copies = 8
	bodies := make([][]byte, copies)
	for i := range bodies {
		bodies[i] = newCSR(t, newKey(t), "copy", csr.Template{})
	}
	replies := make([]reply, copies)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range copies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			replies[i] = f.post(hc, "simpleenroll", "device", secret, bodies[i], nil)
		}()
	}
	close(start)
	wg.Wait()
	issued := 0
	for i, r := range replies {
		switch {
		case r.status == http.StatusOK:
			issued++
		case r.status != http.StatusForbidden || strings.TrimSpace(string(r.body)) != usedAlready:
			t.Errorf("copy %d: HTTP %d %q, want 200 or 403 %q", i, r.status, r.body, usedAlready)
		}
	}
	if issued != 1 {
		t.Errorf("%d certificates issued for %d copies, want 1", issued, copies)
	}
}
