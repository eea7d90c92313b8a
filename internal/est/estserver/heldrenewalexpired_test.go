package estserver_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// A re-enrollment held for approval while its client certificate was
// valid is answered from its request once that certificate has expired:
// sent again over TLS with it, it gets 202 while it waits and its
// certificate once approved (before the expiry or after it), where before
// it was refused 403 "has expired". A new re-enrollment by the expired
// certificate is still refused so.
func TestHeldReenrollmentCollectedAfterItsCertificateExpired(t *testing.T) {
	for _, c := range []struct {
		name           string
		approvedBefore bool
	}{
		{"approved before the expiry", true},
		{"approved after the expiry", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			approval := profile("approval", func(p *pki.Profile) {
				p.RequireApproval, p.ChallengeMode, p.RenewalWindow = true, enroll.ChallengeOneTime, 1
				p.Validity, p.Backdate, p.RequestRetention = 10*24*time.Hour, 0, 30*24*time.Hour
			})
			f := newFixture(t, fixtureOptions{profiles: []pki.Profile{approval}})
			ctx := context.Background()
			approvePending := func() {
				t.Helper()
				reqs, _, err := f.st.ListRequests(ctx, store.RequestFilter{Status: pki.RequestPending})
				if err != nil || len(reqs) != 1 {
					t.Fatalf("pending requests %d, %v; want 1", len(reqs), err)
				}
				if _, err := f.svc.Approve(ctx, reqs[0].ID, "cli:test"); err != nil {
					t.Fatal(err)
				}
			}
			otp, _, err := f.adm.NewChallenge(ctx, time.Hour, "approval", "test")
			if err != nil {
				t.Fatal(err)
			}
			key := newKey(t)
			wantStatus(t, f.post(f.httpClient(nil, 0), "approval/simpleenroll", "dev", otp, newCSR(t, key, "late-dev", csr.Template{}), nil),
				http.StatusAccepted, "held for approval")
			reqs, _, err := f.st.ListRequests(ctx, store.RequestFilter{Status: pki.RequestPending})
			if err != nil || len(reqs) != 1 {
				t.Fatalf("pending requests %d, %v; want 1", len(reqs), err)
			}
			first, err := f.svc.Approve(ctx, reqs[0].ID, "cli:test")
			if err != nil {
				t.Fatal(err)
			}
			old := first.Certificate
			f.clock.Advance(5 * 24 * time.Hour) // renewed half-way through
			body := newCSR(t, newKey(t), "late-dev", csr.Template{})
			reenroll := func(body []byte) reply {
				// A new connection each time, as a device asking again.
				return f.post(f.httpClient(tlsPair(old, key), 0), "approval/simplereenroll", "", "", body, nil)
			}
			wantStatus(t, reenroll(body), http.StatusAccepted, "held for approval")
			if c.approvedBefore {
				approvePending()
			}
			f.clock.Set(old.NotAfter.Add(time.Minute))
			if !c.approvedBefore {
				wantStatus(t, reenroll(body), http.StatusAccepted, "held for approval")
				approvePending()
			}
			got := reenroll(body)
			wantStatus(t, got, http.StatusOK, "")
			if renewed := f.issued(got); renewed.Equal(old) || !renewed.NotAfter.After(old.NotAfter) {
				t.Errorf("got certificate %s, want the renewal of %s", pki.SerialText(renewed.SerialNumber), pki.SerialText(old.SerialNumber))
			}
			wantStatus(t, reenroll(newCSR(t, newKey(t), "late-dev", csr.Template{})), http.StatusForbidden, "has expired")
		})
	}
}
