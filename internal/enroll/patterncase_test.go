package enroll_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
)

// dns_patterns, email_patterns and uri_patterns see a SAN as it is spelled
// and with the parts that compare in any case (a DNS name, an email's
// domain, a URI's scheme and host) in lower case, as a host-name CN is
// seen: a Windows machine's DESKTOP-7.corp.example SAN is the name its
// CN is accepted as. The rest (an email's local part, a URI's path) keeps
// its case. So are the names a one-time challenge is bound to, when the
// challenge is made, and an enrollment with its name in another case than
// it was bound in (r123 D2).
func TestSANsMatchThePatternsInAnyCase(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name = "corp"
	p.DNSPatterns = []string{`^[a-z0-9-]+\.corp\.example$`}
	p.EmailPatterns = []string{`^[a-z]+@corp\.example$`}
	p.URIPatterns = []string{`^spiffe://corp\.example/[a-z]+$`}
	f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"corp": p}, DefaultProfile: "corp"})
	ctx := context.Background()
	for _, c := range []struct {
		name string
		tmpl csr.Template
		want pki.Code
	}{
		{"a DNS name in lower case", csr.Template{DNSNames: []string{"desktop-7.corp.example"}}, ""},
		{"a DNS name, its host in upper case", csr.Template{DNSNames: []string{"DESKTOP-7.corp.example"}}, ""},
		{"a DNS name in upper case", csr.Template{DNSNames: []string{"DESKTOP-7.CORP.EXAMPLE"}}, ""},
		{"a DNS name outside the patterns, in upper case", csr.Template{DNSNames: []string{"WWW.BANK.EXAMPLE"}}, pki.EBadRequest},
		{"a DNS name outside the patterns by a suffix", csr.Template{DNSNames: []string{"DESKTOP-7.CORP.EXAMPLE.evil"}}, pki.EBadRequest},
		{"an email, its domain in upper case", csr.Template{EmailAddresses: []string{"alice@CORP.Example"}}, ""},
		{"an email, its local part in upper case", csr.Template{EmailAddresses: []string{"Alice@corp.example"}}, pki.EBadRequest},
		{"an email outside the patterns", csr.Template{EmailAddresses: []string{"alice@BANK.example"}}, pki.EBadRequest},
		{"a URI, its scheme and host in upper case", csr.Template{URIs: []*url.URL{{Scheme: "SPIFFE", Host: "CORP.example", Path: "/web"}}}, ""},
		{"a URI, its path in upper case", csr.Template{URIs: []*url.URL{{Scheme: "spiffe", Host: "corp.example", Path: "/WEB"}}}, pki.EBadRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.tmpl.Subject = pkix.Name{CommonName: "device"}
			der, err := csr.Create(c.tmpl, newKey(t))
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := x509.ParseCertificateRequest(der)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.svc.Enroll(ctx, enroll.Request{CSR: parsed, Evidence: enroll.Evidence{Challenge: static}, Protocol: pki.ProtocolSCEP,
				TransactionID: "tx-" + c.name, RemoteAddr: "192.0.2.10:1234"})
			if pki.ErrorCode(err) != c.want && !(c.want == "" && err == nil) {
				t.Errorf("%v, want %q", err, c.want)
			}
		})
	}

	// A one-time challenge's bound names, held to the patterns when it
	// is made, and an enrollment with them in another case.
	for _, c := range []struct {
		name  string
		bound []string // challenge's DNS names
		asked string   // the enrollment's DNS SAN; "": the challenge is refused
	}{
		{"bound in upper case", []string{"DESKTOP-8.CORP.example"}, "desktop-8.corp.example"},
		{"bound in lower case, asked in upper case", []string{"desktop-9.corp.example"}, "DESKTOP-9.CORP.EXAMPLE"},
		{"bound outside the patterns", []string{"WWW.BANK.example"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			secret, _, err := f.admin.NewChallengeFor(ctx, admin.ChallengeSpec{TTL: time.Hour, Profile: "corp", DNSNames: c.bound, Actor: "test"})
			if c.asked == "" {
				if err == nil || !strings.Contains(err.Error(), "dns_patterns") {
					t.Errorf("making it: %v, want it refused (dns_patterns)", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("making it: %v", err)
			}
			if _, err := f.svc.Enroll(ctx, namedWithKey(t, newKey(t), secret, "device", c.asked)); err != nil {
				t.Errorf("enrolling %s: %v", c.asked, err)
			}
		})
	}
}
