package estserver_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// The same CSR sent again after its held request expired undecided is
// told so (403, "expired at … without a decision") until the purge
// removes the request, as SCEP's PKCSReq sent again is; it was filed as a
// second request with a fresh retention (r140 D2), which could repeat
// forever. Once purged, the CSR is a new request, held anew.
func TestExpiredHeldRequestSentAgainOverESTIsToldItExpired(t *testing.T) {
	const retention = 2 * time.Minute
	held := func(name string) pki.Profile {
		return profile(name, func(p *pki.Profile) {
			p.RequireApproval, p.ChallengeMode, p.RequestRetention = true, enroll.ChallengeAny, retention
		})
	}
	for _, c := range []struct {
		name, profile, user, pass string
	}{
		{"EST user", "appr", "alice", userPassword},
		{"static challenge", "default", "dev", "static-secret"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, fixtureOptions{profiles: []pki.Profile{held(c.profile)}})
			ctx := context.Background()
			// Pending and within its retention: what waits for a decision.
			pending := func() []pki.EnrollmentRequest {
				t.Helper()
				reqs, _, err := f.st.ListRequests(ctx, store.RequestFilter{Status: pki.RequestPending})
				if err != nil {
					t.Fatal(err)
				}
				var live []pki.EnrollmentRequest
				for _, r := range reqs {
					if f.clock.Now().Before(r.ExpiresAt) {
						live = append(live, r)
					}
				}
				return live
			}
			body := newCSR(t, newKey(t), "est-exp", csr.Template{})
			send := func() reply {
				return f.post(f.httpClient(nil, 0), c.profile+"/simpleenroll", c.user, c.pass, body, nil)
			}
			wantStatus(t, send(), http.StatusAccepted, "held for approval")
			first := pending()
			if len(first) != 1 {
				t.Fatalf("%d pending requests, want 1", len(first))
			}
			f.clock.Advance(retention + time.Second)
			for i := range 2 {
				r := send()
				wantStatus(t, r, http.StatusForbidden, "request "+first[0].ID+" expired at")
				if !strings.Contains(string(r.body), "without a decision") {
					t.Errorf("send %d after the expiry: %q", i+1, r.body)
				}
				if n := len(pending()); n != 0 {
					t.Fatalf("send %d after the expiry: %d pending requests, want none", i+1, n)
				}
			}
			expired, _, err := f.st.ListRequests(ctx, store.RequestFilter{Status: pki.RequestExpired, Now: f.clock.Now()})
			if err != nil || len(expired) != 1 || expired[0].ID != first[0].ID {
				t.Fatalf("expired requests %+v, %v; want %s listed", expired, err, first[0].ID)
			}
			// The purge removes it: the CSR is then a new request.
			if err := f.st.PurgeExpired(ctx, f.clock.Now()); err != nil {
				t.Fatal(err)
			}
			wantStatus(t, send(), http.StatusAccepted, "held for approval")
			if again := pending(); len(again) != 1 || again[0].ID == first[0].ID {
				t.Fatalf("after the purge: pending %+v, want one new request", again)
			}
		})
	}
}
