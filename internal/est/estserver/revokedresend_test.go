package estserver_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/pki"
)

// A certificate revoked after it renewed is answered its renewal again
// (a simplereenroll with the renewal's key, its answer lost) only when
// that renewal's own issuance revoked it (revoke_superseded). Revoked
// otherwise, by an operator for any reason, superseded included, or with
// its supersession raised to keyCompromise, it authenticates nothing: the
// resend is refused as a new re-enrollment by it is, naming the reason.
func TestRevokedCertificateGetsItsRenewalOnlyWhenTheRenewalRevokedIt(t *testing.T) {
	keep := profile("keep", func(p *pki.Profile) { p.RenewalWindow = 1 })
	supersede := profile("supersede", func(p *pki.Profile) { p.RenewalWindow, p.RevokeSuperseded = 1, true })
	f := newFixture(t, fixtureOptions{profiles: []pki.Profile{keep, supersede}})
	ctx := context.Background()
	plain := f.httpClient(nil, 0)
	tests := []struct {
		name    string
		profile string
		reason  int // the operator's revocation of the renewed certificate; -1 for none
		status  int
		says    string
	}{
		{"superseded by its renewal", "supersede", -1, http.StatusOK, ""},
		{"superseded by its renewal, then keyCompromise", "supersede", pki.ReasonKeyCompromise, http.StatusUnauthorized, "(keyCompromise)"},
		{"keyCompromise", "keep", pki.ReasonKeyCompromise, http.StatusUnauthorized, "(keyCompromise)"},
		{"privilegeWithdrawn", "keep", pki.ReasonPrivilegeWithdrawn, http.StatusUnauthorized, "(privilegeWithdrawn)"},
		{"superseded by the operator", "keep", pki.ReasonSuperseded, http.StatusUnauthorized, "(superseded)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, newK := newKey(t), newKey(t)
			old := f.issued(f.post(plain, tt.profile+"/simpleenroll", "alice", userPassword, newCSR(t, key, "resend-"+tt.name, csr.Template{}), nil))
			renewer := f.httpClient(tlsPair(old, key, f.auth.Issuer.Cert), 0)
			body := newCSR(t, newK, "resend-"+tt.name, csr.Template{})
			renewal := f.issued(f.post(renewer, tt.profile+"/simplereenroll", "", "", body, nil))
			rec := f.record(old)
			if tt.reason >= 0 {
				if _, err := f.adm.Revoke(ctx, rec.SerialHex, rec.IssuerID, tt.reason, "cli:test"); err != nil {
					t.Fatal(err)
				}
			}
			if rec = f.record(old); rec.Status != pki.StatusRevoked {
				t.Fatalf("the renewed certificate is %s, want revoked", rec.Status)
			}
			r := f.post(renewer, tt.profile+"/simplereenroll", "", "", body, nil)
			wantStatus(t, r, tt.status, tt.says)
			if tt.status != http.StatusOK {
				wantStatus(t, r, tt.status, pki.ShownSerial(rec.SerialHex))
				return
			}
			if again := f.issued(r); !again.Equal(renewal) {
				t.Errorf("sent %x, want the renewal %x sent again", again.SerialNumber, renewal.SerialNumber)
			}
		})
	}
}
