package estserver_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// A simpleenroll held for approval and approved a minute before its
// retention from when it was held ends is collected a day after that end
// by the same CSR sent again, with the static challenge or the EST user's
// password as the Basic password: a decided request's retention counts
// from its decision. It gets the approved certificate (200) as a
// collection within the retention (no certificate.sent_again event), and
// nothing is held anew. Once the retention from the approval is over, the
// CSR sent again is held anew (202), as a new request.
func TestLateApprovalIsCollectedWithinRetentionFromApproval(t *testing.T) {
	const retention = 7 * 24 * time.Hour
	for _, c := range []struct {
		name       string
		user, pass string
		// wait is from the approval to the collection.
		wait time.Duration
		held bool
	}{
		{"the static challenge", "device", "static-secret", 24*time.Hour + time.Minute, false},
		{"an EST user's password", "alice", userPassword, 24*time.Hour + time.Minute, false},
		{"the static challenge, after the retention from the approval", "device", "static-secret", retention + time.Second, true},
		{"an EST user's password, after the retention from the approval", "alice", userPassword, retention + time.Second, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			approval := profile("default", func(p *pki.Profile) { p.RequireApproval, p.RequestRetention = true, retention })
			f := newFixture(t, fixtureOptions{profiles: []pki.Profile{approval}})
			ctx := context.Background()
			hc := f.httpClient(nil, 0)
			body := newCSR(t, newKey(t), "late-dev", csr.Template{DNSNames: []string{"late.example"}})
			wantStatus(t, f.post(hc, "simpleenroll", c.user, c.pass, body, nil), http.StatusAccepted, "")
			reqs, _, err := f.st.ListRequests(ctx, store.RequestFilter{Status: pki.RequestPending})
			if err != nil || len(reqs) != 1 {
				t.Fatalf("%d pending requests, %v", len(reqs), err)
			}
			f.clock.Advance(retention - time.Minute)
			approved, err := f.svc.Approve(ctx, reqs[0].ID, "cli:test")
			if err != nil {
				t.Fatal(err)
			}
			f.clock.Advance(c.wait)

			again := f.post(hc, "simpleenroll", c.user, c.pass, body, nil)
			all, _, err := f.st.ListRequests(ctx, store.RequestFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if c.held {
				wantStatus(t, again, http.StatusAccepted, "")
				if len(all) != 2 {
					t.Errorf("%d requests, want the approved one and one held anew", len(all))
				}
				return
			}
			if serial := f.issued(again).SerialNumber.Text(16); serial != approved.Record.SerialHex {
				t.Errorf("collected certificate %s, want the approved %s", pki.ShownSerial(serial), pki.ShownSerial(approved.Record.SerialHex))
			}
			if len(all) != 1 || all[0].Status != pki.RequestIssued {
				t.Errorf("requests %+v; want the one approved, nothing held anew", all)
			}
			evs, err := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventSentAgain, Limit: 10})
			if err != nil || len(evs) != 0 {
				t.Errorf("certificate.sent_again events %+v, %v; want none: a collection within the retention", evs, err)
			}
			if n := certsOf(t, f, "CN=late-dev"); n != 1 {
				t.Errorf("%d certificates in the inventory, want 1", n)
			}
		})
	}
}
