package enroll

import (
	"crypto/x509"
	"net/url"
	"testing"
)

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Names compare as RFC 5280 §7 and RFC 3986 §6.2.2.1 say: a DNS name in
// any case, an email's domain in any case but its local part exactly, a
// URI's scheme and host in any case but the rest (a SPIFFE ID's path)
// exactly. A challenge bound to Alice's mailbox buys no certificate for
// alice's, nor a manufacturer certificate for spiffe://td/Path one for
// spiffe://td/path.
func TestNamesCompareByType(t *testing.T) {
	cases := []struct {
		name  string
		bound string // as a challenge binds it, or formatSANs writes it
		req   x509.CertificateRequest
		cert  x509.Certificate // the same names, issued earlier
		same  bool
	}{
		{"dns in another case", "dns:Host.example",
			x509.CertificateRequest{DNSNames: []string{"host.EXAMPLE"}}, x509.Certificate{DNSNames: []string{"Host.example"}}, true},
		{"email domain in another case", "email:Alice@Example.com",
			x509.CertificateRequest{EmailAddresses: []string{"Alice@example.COM"}}, x509.Certificate{EmailAddresses: []string{"Alice@Example.com"}}, true},
		{"email local part in another case", "email:Alice@example.com",
			x509.CertificateRequest{EmailAddresses: []string{"alice@example.com"}}, x509.Certificate{EmailAddresses: []string{"Alice@example.com"}}, false},
		{"uri scheme and host in another case", "uri:spiffe://td.example/Path",
			x509.CertificateRequest{URIs: []*url.URL{mustURL(t, "SPIFFE://TD.Example/Path")}},
			x509.Certificate{URIs: []*url.URL{mustURL(t, "spiffe://td.example/Path")}}, true},
		{"uri path in another case", "uri:spiffe://td.example/Path",
			x509.CertificateRequest{URIs: []*url.URL{mustURL(t, "spiffe://td.example/path")}},
			x509.Certificate{URIs: []*url.URL{mustURL(t, "spiffe://td.example/Path")}}, false},
		{"opaque uri in another case", "uri:tag:microsoft.com,2022-09-14:sid:S-1-5-21-1-2-3-500",
			x509.CertificateRequest{URIs: []*url.URL{mustURL(t, "tag:microsoft.com,2022-09-14:sid:s-1-5-21-1-2-3-500")}},
			x509.Certificate{URIs: []*url.URL{mustURL(t, "tag:microsoft.com,2022-09-14:sid:S-1-5-21-1-2-3-500")}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := namesWithin(&c.req, []string{c.bound}); got != c.same {
				t.Errorf("namesWithin(%v, %q) = %v, want %v", formatSANs(c.req.DNSNames, c.req.EmailAddresses, nil, c.req.URIs), c.bound, got, c.same)
			}
			sans := SANSet{DNSNames: c.req.DNSNames, EmailAddresses: c.req.EmailAddresses, URIs: c.req.URIs}
			if got := sameSANs(sans, &c.cert); got != c.same {
				t.Errorf("sameSANs = %v, want %v", got, c.same)
			}
			// Named twice, the request gets a name once only if they are
			// the same name.
			twice := sans.with(SANSet{DNSNames: c.cert.DNSNames, EmailAddresses: c.cert.EmailAddresses, URIs: c.cert.URIs})
			if n := len(twice.DNSNames) + len(twice.EmailAddresses) + len(twice.URIs); (n == 1) != c.same {
				t.Errorf("the union of both holds %d names, want %d", n, map[bool]int{true: 1, false: 2}[c.same])
			}
		})
	}
}
