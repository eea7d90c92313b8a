package estserver_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
)

// r126 D3: an extensionRequest attribute with two values (SAN a.example in
// the first, c.example in the second) is refused 400 naming the
// attribute, as two challengePassword values are; it was issued with
// a.example alone, c.example dropped unsaid. One value is issued as asked.
func TestTwoValuedExtensionRequestIsRefused(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	key := newKey(t)
	one := pkitest.SignedCSR(t, key, "one", pkitest.ExtensionRequestOfSANs(t, "a.example"))
	cert := f.issued(f.post(f.httpClient(nil, 0), "simpleenroll", "alice", userPassword, est.EncodeBase64(one), nil))
	if !slices.Equal(cert.DNSNames, []string{"a.example"}) {
		t.Errorf("one value: issued for %q, want a.example", cert.DNSNames)
	}
	two := pkitest.SignedCSR(t, newKey(t), "two", pkitest.ExtensionRequestOfSANs(t, "a.example", "c.example"))
	r := f.post(f.httpClient(nil, 0), "simpleenroll", "alice", userPassword, est.EncodeBase64(two), nil)
	wantStatus(t, r, http.StatusBadRequest, "this server can read: its extensionRequest attribute holds 2 values, and PKCS #9 (RFC 2985) allows exactly one")
}

// r128: a subjectAltName in Microsoft's extension-request attribute
// (1.3.6.1.4.1.311.2.1.14, as Windows' certreq sends it) is issued, where
// it was left out of the certificate unsaid, and is held to the profile's
// SAN patterns as extensionRequest's is; the two attributes asking for
// the SAN differently are refused naming both.
func TestMicrosoftExtensionRequestIsRead(t *testing.T) {
	corp := profile("corp", func(p *pki.Profile) { p.DNSPatterns = []string{`\.corp\.example$`} })
	f := newFixture(t, fixtureOptions{profiles: []pki.Profile{corp}})
	ms := pkitest.MicrosoftExtensionRequestOfSANs
	for _, tc := range []struct {
		name   string
		path   string
		attrs  [][]byte
		status int
		want   string // the reason, or the DNS name issued
	}{
		{"issued with its SAN", "simpleenroll", [][]byte{ms(t, "host.example")}, http.StatusOK, "host.example"},
		{"both attributes alike", "simpleenroll", [][]byte{pkitest.ExtensionRequestOfSANs(t, "same.example"), ms(t, "same.example")}, http.StatusOK, "same.example"},
		{"held to the profile's pattern", "corp/simpleenroll", [][]byte{ms(t, "host.example")}, http.StatusForbidden, "host.example"},
		{"matches the profile's pattern", "corp/simpleenroll", [][]byte{ms(t, "pc1.corp.example")}, http.StatusOK, "pc1.corp.example"},
		{"two values", "simpleenroll", [][]byte{ms(t, "a.example", "c.example")}, http.StatusBadRequest,
			"its Microsoft extension-request attribute (1.3.6.1.4.1.311.2.1.14) holds 2 values, and it allows exactly one"},
		{"the two disagree", "simpleenroll", [][]byte{pkitest.ExtensionRequestOfSANs(t, "a.example"), ms(t, "c.example")}, http.StatusBadRequest,
			"its extensionRequest attribute and its Microsoft extension-request attribute (1.3.6.1.4.1.311.2.1.14) ask for extension subjectAltName (2.5.29.17) differently"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			der := pkitest.SignedCSR(t, newKey(t), "ms", tc.attrs...)
			r := f.post(f.httpClient(nil, 0), tc.path, "alice", userPassword, est.EncodeBase64(der), nil)
			if tc.status != http.StatusOK {
				wantStatus(t, r, tc.status, tc.want)
				return
			}
			if cert := f.issued(r); !slices.Equal(cert.DNSNames, []string{tc.want}) {
				t.Errorf("issued for %q, want %s", cert.DNSNames, tc.want)
			}
		})
	}
}
