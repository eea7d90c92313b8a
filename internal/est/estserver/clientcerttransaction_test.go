package estserver_test

import (
	"context"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// heldID reads the request ID of a 202's body.
var heldID = regexp.MustCompile(`request (\S+) is held`)

// A TLS client certificate beside HTTP Basic at simpleenroll authenticates
// nothing (the password does): the same user's same CSR sent with none,
// another CA's or one of ours is one transaction, answered with one held
// request, and one certificate, not one per certificate presented.
func TestClientCertificateBesideBasicIsNotTheTransaction(t *testing.T) {
	approval := profile("approval", func(p *pki.Profile) { p.RequireApproval = true })
	f := newFixture(t, fixtureOptions{profiles: []pki.Profile{approval}})
	ctx := context.Background()
	plain := f.httpClient(nil, 0)
	oursKey := newKey(t)
	ours := f.issued(f.post(plain, "simpleenroll", "alice", userPassword, newCSR(t, oursKey, "other-device", csr.Template{}), nil))
	strangerKey := newKey(t)
	strangerCA := newTestCA(t, "Someone Else", f.clock.Now())
	stranger := strangerCA.issue(t, "stranger", strangerKey, f.clock.Now().Add(-time.Hour), f.clock.Now().Add(time.Hour))
	variants := []struct {
		name   string
		client *http.Client
	}{
		{"no client certificate", plain},
		{"another CA's certificate", f.httpClient(tlsPair(stranger, strangerKey), 0)},
		{"one of ours that authenticates nothing here", f.httpClient(tlsPair(ours, oursKey, f.auth.Issuer.Cert), 0)},
	}
	for _, label := range []string{"", "approval"} {
		t.Run("profile "+label, func(t *testing.T) {
			path := "simpleenroll"
			if label != "" {
				path = label + "/simpleenroll"
			}
			body := newCSR(t, newKey(t), "same-csr-"+label, csr.Template{DNSNames: []string{"same.example"}})
			if label == "approval" {
				var first string
				for _, v := range variants {
					r := f.post(v.client, path, "alice", userPassword, body, nil)
					wantStatus(t, r, http.StatusAccepted, "held for approval")
					m := heldID.FindSubmatch(r.body)
					if m == nil {
						t.Fatalf("%s: no request ID in %q", v.name, r.body)
					}
					if first == "" {
						first = string(m[1])
					} else if string(m[1]) != first {
						t.Errorf("%s: held as request %s, a second one beside %s", v.name, m[1], first)
					}
				}
				if _, err := f.svc.Approve(ctx, first, "cli:test"); err != nil {
					t.Fatal(err)
				}
			}
			reqs, _, err := f.adm.Requests(ctx, store.RequestFilter{Status: pki.RequestPending})
			if err != nil || len(reqs) != 0 {
				var ids []string
				for _, r := range reqs {
					ids = append(ids, r.ID)
				}
				t.Errorf("pending requests %v, %v; want none left", ids, err)
			}
			var first *pki.Certificate
			for _, v := range variants {
				cert := f.issued(f.post(v.client, path, "alice", userPassword, body, nil))
				rec := f.record(cert)
				if first == nil {
					first = rec
				} else if rec.SerialHex != first.SerialHex {
					t.Errorf("%s: issued %s, a second certificate beside %s for one key and CSR", v.name,
						pki.ShownSerial(rec.SerialHex), pki.ShownSerial(first.SerialHex))
				}
			}
		})
	}
}
