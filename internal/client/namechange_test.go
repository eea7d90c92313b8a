package client

import (
	"crypto/x509"
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/csr"
)

// NameChange compares a certificate's names with those asked for as the
// server does: the subject as one DER name, each kind of SAN as a set,
// with case ignored only where RFC 5280 ignores it.
func TestNameChange(t *testing.T) {
	dn := func(s string) []byte {
		raw, err := csr.ParseDN(s)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	uri := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	asked := csr.Template{RawSubject: dn("CN=dev,O=Acme"), DNSNames: []string{"dev.example", "b.example"},
		EmailAddresses: []string{"Dev@Example.com"}, IPAddresses: []net.IP{net.ParseIP("192.0.2.1")},
		URIs: []*url.URL{uri("spiffe://Example.org/Workload")}}
	for _, tt := range []struct {
		name string
		got  *x509.Certificate
		want string // in the answer; "" for the same names
	}{
		{"same", &x509.Certificate{RawSubject: dn("CN=dev,O=Acme"), DNSNames: []string{"B.example", "dev.example", "dev.example"},
			EmailAddresses: []string{"Dev@example.COM"}, IPAddresses: []net.IP{net.ParseIP("192.0.2.1").To4()},
			URIs: []*url.URL{uri("SPIFFE://example.ORG/Workload")}}, ""},
		{"other CN", &x509.Certificate{RawSubject: dn("CN=other,O=Acme"), DNSNames: asked.DNSNames, EmailAddresses: asked.EmailAddresses,
			IPAddresses: asked.IPAddresses, URIs: asked.URIs}, `subject "CN=other,O=Acme", not "CN=dev,O=Acme"`},
		{"a second CN", &x509.Certificate{RawSubject: dn("CN=dev,CN=evil,O=Acme"), DNSNames: asked.DNSNames, EmailAddresses: asked.EmailAddresses,
			IPAddresses: asked.IPAddresses, URIs: asked.URIs}, "subject"},
		{"email local part's case", &x509.Certificate{RawSubject: asked.RawSubject, DNSNames: asked.DNSNames, EmailAddresses: []string{"dev@example.com"},
			IPAddresses: asked.IPAddresses, URIs: asked.URIs}, "email addresses [dev@example.com], not [Dev@example.com]"},
		{"other IP", &x509.Certificate{RawSubject: asked.RawSubject, DNSNames: asked.DNSNames, EmailAddresses: asked.EmailAddresses,
			IPAddresses: []net.IP{net.ParseIP("192.0.2.2")}, URIs: asked.URIs}, "IP addresses [192.0.2.2], not [192.0.2.1]"},
		{"URI path's case", &x509.Certificate{RawSubject: asked.RawSubject, DNSNames: asked.DNSNames, EmailAddresses: asked.EmailAddresses,
			IPAddresses: asked.IPAddresses, URIs: []*url.URL{uri("spiffe://example.org/workload")}}, "URIs"},
		{"no SANs", &x509.Certificate{RawSubject: asked.RawSubject}, "DNS names [], not [b.example dev.example]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := NameChange(tt.got, asked)
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("NameChange = %q, want %q", got, tt.want)
			}
		})
	}
}

// HeldNameChange compares the subject of a certificate collected for a
// held request as the server's held match does (csr.SameHeldName): the
// held CN=ap-1 collected as CN=AP-1 is the same name, which NameChange
// (csr.SameName) tells apart; names that rule tells apart still count.
func TestHeldNameChange(t *testing.T) {
	dn := func(s string) []byte {
		raw, err := csr.ParseDN(s)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	for _, tt := range []struct {
		name       string
		issued     string // the held request's subject, as issued
		asked      string // the retry's
		held, same string // in HeldNameChange's and NameChange's answers; "" for the same names
	}{
		{"CN in another case", "CN=ap-1,O=Acme", "CN=AP-1,O=ACME", "", "subject"},
		{"a doubled space", "CN=ap 1", "CN=ap  1", "", "subject"},
		{"same bytes", "CN=ap-1", "CN=ap-1", "", ""},
		{"serialNumber in another case", "CN=ap-1,SERIALNUMBER=ab12", "CN=ap-1,SERIALNUMBER=AB12", "subject", "subject"},
		{"another CN", "CN=ap-1", "CN=ap-2", `subject "CN=ap-1", not "CN=ap-2"`, "subject"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cert := &x509.Certificate{RawSubject: dn(tt.issued), DNSNames: []string{"ap.example"}}
			asked := csr.Template{RawSubject: dn(tt.asked), DNSNames: []string{"AP.example"}}
			for _, c := range []struct {
				what string
				got  string
				want string
			}{{"HeldNameChange", HeldNameChange(cert, asked), tt.held}, {"NameChange", NameChange(cert, asked), tt.same}} {
				if c.want == "" && c.got != "" || !strings.Contains(c.got, c.want) {
					t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
				}
			}
		})
	}
}
