package enroll

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net"
	"net/url"
	"testing"
	"unicode/utf16"

	"github.com/scepter/scepter/internal/csr"
)

// attr is one attribute of a test name: its type, string tag and text.
type attr struct {
	oid  asn1.ObjectIdentifier
	tag  int
	text string
}

var (
	testCN     = asn1.ObjectIdentifier{2, 5, 4, 3}
	testSerial = asn1.ObjectIdentifier{2, 5, 4, 5}
	testC      = asn1.ObjectIdentifier{2, 5, 4, 6}
	testO      = asn1.ObjectIdentifier{2, 5, 4, 10}
	testOU     = asn1.ObjectIdentifier{2, 5, 4, 11}
	testUID    = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}
	testDC     = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}
	testEmail  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
	testOther  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}
)

func utf8Attr(oid asn1.ObjectIdentifier, s string) attr { return attr{oid, asn1.TagUTF8String, s} }
func printableAttr(oid asn1.ObjectIdentifier, s string) attr {
	return attr{oid, asn1.TagPrintableString, s}
}
func ia5Attr(oid asn1.ObjectIdentifier, s string) attr { return attr{oid, asn1.TagIA5String, s} }
func bmpAttr(oid asn1.ObjectIdentifier, s string) attr { return attr{oid, 30, s} }

// dn encodes a Name of the RDNs given, most significant first.
func dn(t *testing.T, rdns ...[]attr) []byte {
	t.Helper()
	var seq pkix.RDNSequence
	for _, attrs := range rdns {
		var set pkix.RelativeDistinguishedNameSET
		for _, a := range attrs {
			b := []byte(a.text)
			if a.tag == 30 {
				b = nil
				for _, u := range utf16.Encode([]rune(a.text)) {
					b = append(b, byte(u>>8), byte(u))
				}
			}
			set = append(set, pkix.AttributeTypeAndValue{Type: a.oid, Value: asn1.RawValue{Tag: a.tag, Bytes: b}})
		}
		seq = append(seq, set)
	}
	der, err := asn1.Marshal(seq)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func rdn(a ...attr) []attr { return a }

// A held request's subject compares with a retry's as RFC 5280 §7.1
// compares names (RFC 4518 string preparation): a DirectoryString
// attribute (CN, O, OU, uid) and a domainComponent in any case and without
// insignificant spaces, whatever string type spells them; an
// emailAddress's domain in any case; serialNumber, countryName and an
// unknown attribute in their case; anything else (another value, another
// RDN order, an attribute more) is another name.
func TestHeldSubjectComparesAsRFC5280(t *testing.T) {
	cases := []struct {
		name string
		held []byte
		sent []byte
		same bool
	}{
		{"the same bytes", dn(t, rdn(utf8Attr(testCN, "ap-1"))), dn(t, rdn(utf8Attr(testCN, "ap-1"))), true},
		{"CN in another case", dn(t, rdn(utf8Attr(testCN, "ap-1"))), dn(t, rdn(utf8Attr(testCN, "AP-1"))), true},
		{"CN in another case and string type", dn(t, rdn(utf8Attr(testCN, "ap-1"))), dn(t, rdn(printableAttr(testCN, "Ap-1"))), true},
		{"CN as a BMPString in another case", dn(t, rdn(utf8Attr(testCN, "Gerät 1"))), dn(t, rdn(bmpAttr(testCN, "GERÄT 1"))), true},
		{"CN with a trailing space", dn(t, rdn(utf8Attr(testCN, "ap-1"))), dn(t, rdn(utf8Attr(testCN, "ap-1 "))), true},
		{"CN with leading spaces", dn(t, rdn(utf8Attr(testCN, "ap-1"))), dn(t, rdn(utf8Attr(testCN, "  ap-1"))), true},
		{"CN with a doubled space inside", dn(t, rdn(utf8Attr(testCN, "access point 1"))), dn(t, rdn(utf8Attr(testCN, "access  point 1"))), true},
		{"CN with a no-break space inside", dn(t, rdn(utf8Attr(testCN, "access point 1"))), dn(t, rdn(utf8Attr(testCN, "access\u00a0point 1"))), true},
		{"CN with a space taken out", dn(t, rdn(utf8Attr(testCN, "access point 1"))), dn(t, rdn(utf8Attr(testCN, "accesspoint 1"))), false},
		{"CN of another device", dn(t, rdn(utf8Attr(testCN, "ap-1"))), dn(t, rdn(utf8Attr(testCN, "ap-2"))), false},
		{"O, OU and uid in other cases", dn(t, rdn(utf8Attr(testO, "Acme")), rdn(utf8Attr(testOU, "Net Ops")), rdn(utf8Attr(testUID, "Alice")), rdn(utf8Attr(testCN, "ap-1"))),
			dn(t, rdn(printableAttr(testO, "ACME")), rdn(utf8Attr(testOU, " net  ops")), rdn(utf8Attr(testUID, "alice")), rdn(utf8Attr(testCN, "AP-1"))), true},
		{"DC in another case", dn(t, rdn(ia5Attr(testDC, "Example")), rdn(utf8Attr(testCN, "ap-1"))), dn(t, rdn(ia5Attr(testDC, "example")), rdn(utf8Attr(testCN, "ap-1"))), true},
		{"emailAddress domain in another case", dn(t, rdn(ia5Attr(testEmail, "Alice@Example.com"))), dn(t, rdn(ia5Attr(testEmail, "Alice@example.COM"))), true},
		{"emailAddress local part in another case", dn(t, rdn(ia5Attr(testEmail, "Alice@example.com"))), dn(t, rdn(ia5Attr(testEmail, "alice@example.com"))), false},
		{"serialNumber in another case", dn(t, rdn(printableAttr(testSerial, "ab12"))), dn(t, rdn(printableAttr(testSerial, "AB12"))), false},
		{"serialNumber with a trailing space", dn(t, rdn(printableAttr(testSerial, "AB12"))), dn(t, rdn(printableAttr(testSerial, "AB12 "))), true},
		{"C in another case", dn(t, rdn(printableAttr(testC, "DE")), rdn(utf8Attr(testCN, "ap-1"))), dn(t, rdn(printableAttr(testC, "de")), rdn(utf8Attr(testCN, "ap-1"))), false},
		{"an unknown attribute in another case", dn(t, rdn(utf8Attr(testOther, "x"))), dn(t, rdn(utf8Attr(testOther, "X"))), false},
		{"a multi-valued RDN in another order and case", dn(t, rdn(utf8Attr(testCN, "ap-1"), utf8Attr(testOU, "net"))), dn(t, rdn(utf8Attr(testOU, "NET"), utf8Attr(testCN, "ap-1"))), true},
		{"RDNs in another order", dn(t, rdn(utf8Attr(testO, "acme")), rdn(utf8Attr(testCN, "ap-1"))), dn(t, rdn(utf8Attr(testCN, "ap-1")), rdn(utf8Attr(testO, "acme"))), false},
		{"an RDN more", dn(t, rdn(utf8Attr(testCN, "ap-1"))), dn(t, rdn(utf8Attr(testO, "acme")), rdn(utf8Attr(testCN, "ap-1"))), false},
		{"a second CN", dn(t, rdn(utf8Attr(testCN, "ap-1"))), dn(t, rdn(utf8Attr(testCN, "ap-1"), utf8Attr(testCN, "AP-1"))), false},
		{"another attribute type with the same text", dn(t, rdn(utf8Attr(testCN, "ap-1"))), dn(t, rdn(utf8Attr(testOU, "ap-1"))), false},
		{"not a name", dn(t, rdn(utf8Attr(testCN, "ap-1"))), []byte{0x30, 0x03, 0x31, 0x01}, false},
	}
	for _, c := range cases {
		held, sent := &x509.CertificateRequest{RawSubject: c.held}, &x509.CertificateRequest{RawSubject: c.sent}
		if got := asksAsHeld(held, sent); got != c.same {
			t.Errorf("%s: same = %v, want %v", c.name, got, c.same)
		}
		if got := asksAsHeld(sent, held); got != c.same {
			t.Errorf("%s, the other way round: same = %v, want %v", c.name, got, c.same)
		}
		// The client's marker of a kept key names the request by this key.
		keyHeld, okHeld := csr.HeldNameKey(c.held)
		keySent, okSent := csr.HeldNameKey(c.sent)
		if okHeld && okSent && (keyHeld == keySent) != c.same {
			t.Errorf("%s: equal HeldNameKey = %v, want %v", c.name, keyHeld == keySent, c.same)
		}
	}
}

// A retry asks as its held request asks when its subject and SANs are the
// same names: DNS names in any case and order, an email's domain in any
// case but its local part exactly, IP addresses by value, a URI's path
// exactly.
func TestAsksAsHeldComparesNames(t *testing.T) {
	held := x509.CertificateRequest{RawSubject: dn(t, rdn(utf8Attr(testCN, "ap-1"))),
		DNSNames: []string{"ap-1.example", "b.example"}, EmailAddresses: []string{"Ops@example.com"},
		IPAddresses: []net.IP{net.ParseIP("192.0.2.1")}, URIs: []*url.URL{mustURL(t, "spiffe://td.example/ap/1")}}
	with := func(change func(r *x509.CertificateRequest)) *x509.CertificateRequest {
		r := held
		change(&r)
		return &r
	}
	cases := []struct {
		name string
		sent *x509.CertificateRequest
		same bool
	}{
		{"as held", with(func(*x509.CertificateRequest) {}), true},
		{"the subject in another case", with(func(r *x509.CertificateRequest) { r.RawSubject = dn(t, rdn(printableAttr(testCN, "AP-1 "))) }), true},
		{"DNS names in another case and order", with(func(r *x509.CertificateRequest) { r.DNSNames = []string{"B.example", "AP-1.Example"} }), true},
		{"the email's domain in another case", with(func(r *x509.CertificateRequest) { r.EmailAddresses = []string{"Ops@EXAMPLE.com"} }), true},
		{"the IP address in its IPv4-in-IPv6 form", with(func(r *x509.CertificateRequest) { r.IPAddresses = []net.IP{net.ParseIP("::ffff:192.0.2.1")} }), true},
		{"the email's local part in another case", with(func(r *x509.CertificateRequest) { r.EmailAddresses = []string{"ops@example.com"} }), false},
		{"the URI's path in another case", with(func(r *x509.CertificateRequest) { r.URIs = []*url.URL{mustURL(t, "spiffe://td.example/AP/1")} }), false},
		{"another DNS name", with(func(r *x509.CertificateRequest) { r.DNSNames = []string{"ap-1.example", "c.example"} }), false},
		{"another subject", with(func(r *x509.CertificateRequest) { r.RawSubject = dn(t, rdn(utf8Attr(testCN, "ap-2"))) }), false},
	}
	for _, c := range cases {
		if got := asksAsHeld(&held, c.sent); got != c.same {
			t.Errorf("%s: asks as held = %v, want %v", c.name, got, c.same)
		}
	}
}
