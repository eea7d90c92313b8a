package estserver_test

import (
	"net/http"
	"testing"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/pki"
)

// r136 D5: a re-enrollment keeps the subject as RFC 5280 §7.1 compares
// names (caseIgnoreMatch after RFC 4518's insignificant-space handling),
// as it keeps DNS names in any case: CN=DEV-A keeps CN=dev-a. It was
// refused "must keep the subject" while DNS:DEV-A.Example was taken. The
// new certificate carries the request's spelling.
func TestReenrollComparesNamesAsRFC5280(t *testing.T) {
	renew := profile("renew", func(p *pki.Profile) { p.RenewalWindow = 1 })
	f := newFixture(t, fixtureOptions{profiles: []pki.Profile{renew}})
	plain := f.httpClient(nil, 0)
	tests := []struct {
		name   string
		cn     string
		dns    string
		status int
	}{
		{"the same names", "dev a", "dev-a.example", http.StatusOK},
		{"CN in another case", "DEV A", "dev-a.example", http.StatusOK},
		{"CN with insignificant spaces", "  dev   a ", "dev-a.example", http.StatusOK},
		{"DNS name in another case", "dev a", "DEV-A.Example", http.StatusOK},
		{"another CN", "dev b", "dev-a.example", http.StatusForbidden},
		{"another DNS name", "dev a", "dev-b.example", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := newKey(t)
			old := f.issued(f.post(plain, "renew/simpleenroll", "alice", userPassword, newCSR(t, key, "dev a", csr.Template{DNSNames: []string{"dev-a.example"}}), nil))
			renewer := f.httpClient(tlsPair(old, key, f.auth.Issuer.Cert), 0)
			r := f.post(renewer, "renew/simplereenroll", "", "", newCSR(t, newKey(t), tt.cn, csr.Template{DNSNames: []string{tt.dns}}), nil)
			if tt.status != http.StatusOK {
				wantStatus(t, r, tt.status, "a renewal must keep the")
				return
			}
			wantStatus(t, r, tt.status, "")
			cert := f.issued(r)
			if cert.Subject.CommonName != tt.cn || len(cert.DNSNames) != 1 || cert.DNSNames[0] != tt.dns {
				t.Errorf("renewed as CN=%q, DNS %q; want the request's spelling, CN=%q, DNS %q", cert.Subject.CommonName, cert.DNSNames, tt.cn, tt.dns)
			}
		})
	}
}
