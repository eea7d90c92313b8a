package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/pki"
)

var now = t0.Add(24 * time.Hour)

func fromCSR(t testing.TB, csrDER []byte, prof pki.Profile) Request {
	t.Helper()
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatal(err)
	}
	return Request{
		RawSubject: csr.RawSubject, DNSNames: csr.DNSNames, EmailAddresses: csr.EmailAddresses,
		IPAddresses: csr.IPAddresses, URIs: csr.URIs, PublicKey: csr.PublicKey, Profile: prof,
	}
}

func verify(t *testing.T, a *Authority, c *x509.Certificate, at time.Time, eku []x509.ExtKeyUsage) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(a.Root)
	inter := x509.NewCertPool()
	inter.AddCert(a.Issuer.Cert)
	chains, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: at, KeyUsages: eku})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if len(chains) != 1 || len(chains[0]) != 3 {
		t.Fatalf("unexpected chains %v", chains)
	}
}

func TestIssueDeviceCertificate(t *testing.T) {
	for _, caType := range []string{"p256", "rsa2048"} {
		for _, subType := range []string{"rsa2048", "p256", "p384"} {
			t.Run(caType+"/"+subType, func(t *testing.T) {
				a := testCA(t, caType)
				sub := genKey(t, subType)
				prof := pki.DefaultProfile()
				// keyEncipherment is dropped for EC keys (RFC 8813); serverAuth
				// makes it consistent with the EKU for RSA keys.
				prof.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
				prof.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
				prof.CRLURLs = []string{"http://ca.example/crl/1.crl"}
				prof.OCSPURLs = []string{"http://ca.example/ocsp"}
				prof.IssuerURLs = []string{"http://ca.example/issuing.crt"}
				subject := rawName(t, pkix.Name{CommonName: "device-1", Organization: []string{"Acme"}, Country: []string{"DE"}})
				r := &reserver{}
				c, err := a.Issuer.Issue(context.Background(), Request{
					RawSubject: subject, DNSNames: []string{"device-1.corp"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.7")},
					EmailAddresses: []string{"ops@example.com"}, URIs: []*url.URL{{Scheme: "urn", Opaque: "uuid:3c2f6d0e-0000-4000-8000-000000000001"}},
					PublicKey: sub.Public(), Profile: prof,
				}, now, r.reserve)
				if err != nil {
					t.Fatal(err)
				}
				verify(t, a, c, now, prof.ExtKeyUsage)
				if c.IsCA || !c.BasicConstraintsValid {
					t.Errorf("IsCA=%v BasicConstraintsValid=%v", c.IsCA, c.BasicConstraintsValid)
				}
				if !bytes.Equal(c.RawSubject, subject) {
					t.Error("subject not kept verbatim")
				}
				if !bytes.Equal(c.RawIssuer, a.Issuer.Cert.RawSubject) {
					t.Error("issuer name")
				}
				wantKU := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
				if _, ec := sub.Public().(*ecdsa.PublicKey); ec {
					wantKU = x509.KeyUsageDigitalSignature // RFC 8813
				}
				if c.KeyUsage != wantKU {
					t.Errorf("KeyUsage %b, want %b", c.KeyUsage, wantKU)
				}
				if !slices.Equal(c.ExtKeyUsage, prof.ExtKeyUsage) {
					t.Errorf("EKU %v", c.ExtKeyUsage)
				}
				if !c.NotBefore.Equal(now.Add(-prof.Backdate)) || !c.NotAfter.Equal(now.Add(prof.Validity)) {
					t.Errorf("validity %v .. %v", c.NotBefore, c.NotAfter)
				}
				spki := struct {
					Alg asn1.RawValue
					Key asn1.BitString
				}{}
				if _, err := asn1.Unmarshal(c.RawSubjectPublicKeyInfo, &spki); err != nil {
					t.Fatal(err)
				}
				if ski := sha1.Sum(spki.Key.Bytes); !bytes.Equal(c.SubjectKeyId, ski[:]) {
					t.Error("SKI is not RFC 5280 method 1")
				}
				if !bytes.Equal(c.AuthorityKeyId, a.Issuer.Cert.SubjectKeyId) {
					t.Error("AKI is not the issuer SKI")
				}
				if !slices.Equal(c.CRLDistributionPoints, prof.CRLURLs) || !slices.Equal(c.OCSPServer, prof.OCSPURLs) || !slices.Equal(c.IssuingCertificateURL, prof.IssuerURLs) {
					t.Error("CDP/AIA not from the profile")
				}
				if len(r.serials) != 1 || r.serials[0] != c.SerialNumber.Text(16) {
					t.Errorf("reserved %v, issued %s", r.serials, c.SerialNumber.Text(16))
				}
				// The reservation holds the very TBS the CA key signed.
				if len(r.tbs) != 1 || !bytes.Equal(r.tbs[0], c.RawTBSCertificate) {
					t.Error("the TBS reserved with the serial is not the one signed")
				}
				if c.SignatureAlgorithm != a.Issuer.Cert.SignatureAlgorithm && caType == "p256" && c.SignatureAlgorithm != x509.ECDSAWithSHA256 {
					t.Errorf("signature algorithm %v", c.SignatureAlgorithm)
				}
			})
		}
	}
}

var (
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidSKI              = asn1.ObjectIdentifier{2, 5, 29, 14}
	oidAKI              = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidSAN              = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidCDP              = asn1.ObjectIdentifier{2, 5, 29, 31}
	oidAIA              = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1}
	oidNameConstraints  = asn1.ObjectIdentifier{2, 5, 29, 30}
	oidCertPolicies     = asn1.ObjectIdentifier{2, 5, 29, 32}
)

func TestIssueIgnoresCSRExtensions(t *testing.T) {
	a := testCA(t, "p256")
	sub := genKey(t, "rsa2048")
	must := func(v any) []byte {
		b, err := asn1.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	bc := must(struct {
		IsCA       bool
		MaxPathLen int
	}{true, 5})
	ku := must(asn1.BitString{Bytes: []byte{0x06}, BitLength: 7}) // keyCertSign|cRLSign
	eku := must([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 1}, {2, 5, 29, 37, 0}})
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: "sneaky"},
		DNSNames: []string{"sneaky.corp"},
		ExtraExtensions: []pkix.Extension{
			{Id: oidBasicConstraints, Critical: true, Value: bc},
			{Id: oidKeyUsage, Critical: true, Value: ku},
			{Id: oidExtKeyUsage, Value: eku},
			{Id: oidNameConstraints, Critical: true, Value: must(asn1.RawValue{Tag: 16, Class: 0, IsCompound: true})},
			{Id: oidCertPolicies, Value: must([]asn1.ObjectIdentifier{{2, 5, 29, 32, 0}})},
			{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2}, Value: must("DomainController")},
			{Id: asn1.ObjectIdentifier{1, 2, 3, 4, 5}, Critical: true, Value: must(42)},
		},
	}, sub)
	if err != nil {
		t.Fatal(err)
	}
	prof := pki.DefaultProfile()
	c, err := a.Issuer.Issue(context.Background(), fromCSR(t, csrDER, prof), now, okReserve)
	if err != nil {
		t.Fatal(err)
	}
	allowed := []asn1.ObjectIdentifier{oidBasicConstraints, oidKeyUsage, oidExtKeyUsage, oidSKI, oidAKI, oidSAN, oidCDP, oidAIA}
	for _, e := range c.Extensions {
		if !slices.ContainsFunc(allowed, e.Id.Equal) {
			t.Errorf("extension %v leaked into the certificate", e.Id)
		}
		if e.Id.Equal(oidBasicConstraints) && !e.Critical {
			t.Error("basicConstraints not critical")
		}
	}
	if c.IsCA || c.MaxPathLen > 0 || c.KeyUsage&x509.KeyUsageCertSign != 0 || len(c.PolicyIdentifiers) != 0 {
		t.Errorf("CA powers leaked: IsCA=%v MaxPathLen=%d ku=%b", c.IsCA, c.MaxPathLen, c.KeyUsage)
	}
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || len(c.UnknownExtKeyUsage) != 0 {
		t.Errorf("EKU %v %v, want the profile's clientAuth", c.ExtKeyUsage, c.UnknownExtKeyUsage)
	}
	if !slices.Equal(c.DNSNames, []string{"sneaky.corp"}) {
		t.Errorf("DNSNames %v", c.DNSNames)
	}
}

func TestIssueValidity(t *testing.T) {
	a := testCA(t, "p256")
	sub := genKey(t, "p256").Public()
	subject := rawName(t, pkix.Name{CommonName: "d"})
	issue := func(prof pki.Profile, at time.Time) (*x509.Certificate, error) {
		return a.Issuer.Issue(context.Background(), Request{RawSubject: subject, PublicKey: sub, Profile: prof}, at, okReserve)
	}
	long := pki.DefaultProfile()
	long.Validity = 50 * year
	c, err := issue(long, now)
	if err != nil {
		t.Fatal(err)
	}
	if !c.NotAfter.Equal(a.Issuer.Cert.NotAfter) {
		t.Errorf("NotAfter %v not clamped to the issuer's %v", c.NotAfter, a.Issuer.Cert.NotAfter)
	}
	back := pki.DefaultProfile()
	back.Backdate = 30 * 24 * time.Hour
	c, err = issue(back, now)
	if err != nil {
		t.Fatal(err)
	}
	if !c.NotBefore.Equal(a.Issuer.Cert.NotBefore) {
		t.Errorf("NotBefore %v not clamped to the issuer's %v", c.NotBefore, a.Issuer.Cert.NotBefore)
	}
	sub2 := pki.DefaultProfile()
	c, err = issue(sub2, now.Add(1500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if c.NotBefore.Nanosecond() != 0 || !c.NotBefore.Equal(now.Add(time.Second-sub2.Backdate)) {
		t.Errorf("NotBefore %v, want whole seconds", c.NotBefore)
	}
	// An issuer outside its validity is the operator's to fix, and not
	// final for the device: unavailable (503), saying why, never a 500.
	for name, tc := range map[string]struct {
		prof pki.Profile
		at   time.Time
		want pki.Code
	}{
		"issuer expired":   {pki.DefaultProfile(), a.Issuer.Cert.NotAfter.Add(time.Second), pki.EUnavailable},
		"issuer not valid": {pki.DefaultProfile(), a.Issuer.Cert.NotBefore.Add(-time.Second), pki.EUnavailable},
		"no validity":      {pki.Profile{KeyUsage: x509.KeyUsageDigitalSignature, Keys: pki.DefaultKeyPolicy}, now, pki.EInternal},
	} {
		_, err := issue(tc.prof, tc.at)
		if codeOf(err) != tc.want {
			t.Errorf("%s: err = %v, want %s", name, err, tc.want)
		}
		// Only the operator mends it: devices are asked to wait minutes.
		if tc.want == pki.EUnavailable && pki.RetryAfter(fmt.Errorf("enroll: %w", err)) != 900 {
			t.Errorf("%s: Retry-After %d s, want 900", name, pki.RetryAfter(err))
		}
	}
}

func TestIssueRefusesRequests(t *testing.T) {
	a := testCA(t, "p256")
	oidCN, oidOU := asn1.ObjectIdentifier{2, 5, 4, 3}, asn1.ObjectIdentifier{2, 5, 4, 11}
	same := func(s string) string { return s }
	shout := func(s string) string { return "  " + strings.ReplaceAll(strings.ToUpper(s), " ", "   ") + " " }
	sub := genKey(t, "p256").Public()
	cn := rawName(t, pkix.Name{CommonName: "device"})
	long := strings.Repeat("a", 60) + "."
	longDNS := strings.Repeat(long, 4) + "corp" // 248 bytes, labels ok
	prof := pki.DefaultProfile()
	few := pki.DefaultProfile()
	few.MaxSANs = 2
	none := pki.DefaultProfile()
	none.MaxSANs = 0
	u := func(s string) *url.URL {
		x, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	tests := []struct {
		name string
		req  Request
		want string // substring of the client message; "" means success
	}{
		{"ok", Request{RawSubject: cn, DNSNames: []string{"a.corp", "b.corp"}, Profile: few}, ""},
		{"too many SANs", Request{RawSubject: cn, DNSNames: []string{"a.corp", "b.corp"}, EmailAddresses: []string{"x@corp.example"}, Profile: few}, "at most 2"},
		{"SANs not allowed", Request{RawSubject: cn, DNSNames: []string{"a.corp"}, Profile: none}, "at most 0"},
		{"253-byte DNS name", Request{RawSubject: cn, DNSNames: []string{longDNS + ".abcd"}, Profile: prof}, ""},
		{"256-byte DNS name", Request{RawSubject: cn, DNSNames: []string{longDNS + "." + strings.Repeat("b", 7)}, Profile: prof}, "longer than 255"},
		{"256-byte email", Request{RawSubject: cn, EmailAddresses: []string{strings.Repeat("a", 64) + "@" + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + "." + strings.Repeat("d", 60) + ".corpcorp"}, Profile: prof}, "longer than 255"},
		{"255-byte email", Request{RawSubject: cn, EmailAddresses: []string{strings.Repeat("a", 64) + "@" + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + "." + strings.Repeat("d", 60) + ".corpcor"}, Profile: prof}, ""},
		{"256-byte URI", Request{RawSubject: cn, URIs: []*url.URL{u("https://h.corp/" + strings.Repeat("p", 241))}, Profile: prof}, "longer than 255"},
		{"empty label", Request{RawSubject: cn, DNSNames: []string{"a..corp"}, Profile: prof}, "empty label"},
		{"space in DNS name", Request{RawSubject: cn, DNSNames: []string{"a b.corp"}, Profile: prof}, "invalid DNS name"},
		{"unicode DNS name", Request{RawSubject: cn, DNSNames: []string{"bücher.corp"}, Profile: prof}, "xn--"},
		{"hyphen label", Request{RawSubject: cn, DNSNames: []string{"-a.corp"}, Profile: prof}, "hyphen"},
		{"wildcard inside", Request{RawSubject: cn, DNSNames: []string{"a.*.corp"}, Profile: prof}, "wildcard"},
		{"wildcard ok", Request{RawSubject: cn, DNSNames: []string{"*.dev.corp"}, Profile: prof}, ""},
		{"underscore ok", Request{RawSubject: cn, DNSNames: []string{"my_host.corp"}, Profile: prof}, ""},
		{"IPv4 address as a DNS name", Request{RawSubject: cn, DNSNames: []string{"10.9.9.9"}, Profile: prof}, "IP address SAN"},
		{"short IPv4 form as a DNS name", Request{RawSubject: cn, DNSNames: []string{"10.1"}, Profile: prof}, "IP address SAN"},
		{"hexadecimal address as a DNS name", Request{RawSubject: cn, DNSNames: []string{"0x7f.1"}, Profile: prof}, "IP address SAN"},
		{"hexadecimal last label", Request{RawSubject: cn, DNSNames: []string{"host.0xff"}, Profile: prof}, "IP address SAN"},
		{"single numeric label", Request{RawSubject: cn, DNSNames: []string{"1234"}, Profile: prof}, "IP address SAN"},
		{"email at an address", Request{RawSubject: cn, EmailAddresses: []string{"a@10.1.2.3"}, Profile: prof}, "invalid email"},
		{"numeric labels before a name ok", Request{RawSubject: cn, DNSNames: []string{"10.9.9.corp", "0x1.corp", "1e100.net", "host.0xg"}, Profile: prof}, ""},
		{"bad email", Request{RawSubject: cn, EmailAddresses: []string{"Bob <bob@corp.example>"}, Profile: prof}, "invalid email"},
		{"relative URI", Request{RawSubject: cn, URIs: []*url.URL{u("/path")}, Profile: prof}, "absolute"},
		{"URI without host", Request{RawSubject: cn, URIs: []*url.URL{u("https:///x")}, Profile: prof}, "no host"},
		{"intune tag URI ok", Request{RawSubject: cn, URIs: []*url.URL{u("tag:microsoft.com,2022-09-14:sid:S-1-5-21-1-2-3-1001")}, Profile: prof}, ""},
		{"bad IP", Request{RawSubject: cn, IPAddresses: []net.IP{{1, 2, 3}}, Profile: prof}, "invalid IP"},
		{"empty subject, no SAN", Request{Profile: prof}, "neither a subject nor"},
		{"empty sequence subject, no SAN", Request{RawSubject: []byte{0x30, 0}, Profile: prof}, "neither a subject nor"},
		{"empty subject with SAN", Request{DNSNames: []string{"a.corp"}, Profile: prof}, ""},
		{"garbage subject", Request{RawSubject: []byte{0x30, 0x03, 0x31, 0x01, 0x00}, Profile: prof}, "not a valid distinguished name"},
		{"trailing bytes after subject", Request{RawSubject: append(slices.Clone(cn), 0), Profile: prof}, "not a valid distinguished name"},
		{"long common name", Request{RawSubject: rawName(t, pkix.Name{CommonName: strings.Repeat("x", 65)}), Profile: prof}, "commonName is longer than 64"},
		{"subject email not in SAN", Request{RawSubject: rawName(t, pkix.Name{CommonName: "d", ExtraNames: []pkix.AttributeTypeAndValue{{Type: oidEmailAddress, Value: "d@corp.example"}}}), Profile: prof}, "must also be a subject alternative name"},
		{"subject email in SAN", Request{RawSubject: rawName(t, pkix.Name{CommonName: "d", ExtraNames: []pkix.AttributeTypeAndValue{{Type: oidEmailAddress, Value: "d@corp.example"}}}), EmailAddresses: []string{"d@corp.example"}, Profile: prof}, ""},
		{"issuing CA's name", Request{RawSubject: a.Issuer.Cert.RawSubject, Profile: prof}, "name of a CA"},
		{"root's name", Request{RawSubject: a.Root.RawSubject, Profile: prof}, "name of a CA"},
		{"issuing CA's name in UTF8String", Request{RawSubject: reencoded(t, a.Issuer.Cert.RawSubject, same), Profile: prof}, "name of a CA"},
		{"root's name in other case and spacing", Request{RawSubject: reencoded(t, a.Root.RawSubject, shout), Profile: prof}, "name of a CA"},
		{"a name like the CA's but longer", Request{RawSubject: reencoded(t, a.Issuer.Cert.RawSubject, func(s string) string { return s + " 2" }), Profile: prof}, ""},
		// Values Go's x509 parser would not read back: the CA must not sign them.
		{"NULL value", Request{RawSubject: rawSubject(atv{oidCN, cbasn1.UTF8String, "dev"}, atv{oidOU, cbasn1.NULL, ""}), Profile: prof}, "no string type"},
		{"SEQUENCE value", Request{RawSubject: rawSubject(atv{oidCN, cbasn1.UTF8String, "dev"}, atv{asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, cbasn1.SEQUENCE, ""}), Profile: prof}, "no string type"},
		{"OCTET STRING common name", Request{RawSubject: rawSubject(atv{oidCN, cbasn1.OCTET_STRING, "dev"}), Profile: prof}, "no string type"},
		// r126 D4: string types Go reads no certificate with are named as
		// such, with what is taken; no longer "no string type".
		{"UniversalString common name", Request{RawSubject: rawSubject(atv{oidCN, cbasn1.Tag(28), "\x00\x00\x00d"}), Profile: prof},
			"the subject attribute commonName: a UniversalString (ASN.1 tag 28), a string type this server does not take, as crypto/x509 reads no certificate that holds one: " +
				"send a UTF8String (the types taken are UTF8String, PrintableString, IA5String, BMPString, TeletexString or NumericString)"},
		{"VisibleString common name", Request{RawSubject: rawSubject(atv{oidCN, cbasn1.Tag(26), "dev"}), Profile: prof},
			"the subject attribute commonName: a VisibleString (ASN.1 tag 26), a string type this server does not take"},
		{"NULL value, named", Request{RawSubject: rawSubject(atv{oidCN, cbasn1.NULL, ""}), Profile: prof},
			"the subject attribute commonName: a NULL, which is no string type: send a UTF8String (the types taken are UTF8String, "},
		{"OCTET STRING, named", Request{RawSubject: rawSubject(atv{oidCN, cbasn1.OCTET_STRING, "dev"}), Profile: prof}, "an OCTET STRING, which is no string type"},
		{"context-specific value", Request{RawSubject: rawSubject(atv{oidCN, cbasn1.Tag(2).ContextSpecific(), "dev"}), Profile: prof}, "a value of tag [2] of class 2, which is no string type"},
		{"PrintableString with @", Request{RawSubject: rawSubject(atv{oidCN, cbasn1.PrintableString, "dev@corp"}), Profile: prof}, "PrintableString"},
		{"UTF8String not UTF-8", Request{RawSubject: rawSubject(atv{oidCN, cbasn1.UTF8String, "dev\xff"}), Profile: prof}, "not UTF-8"},
		{"IA5String not ASCII", Request{RawSubject: rawSubject(atv{oidCN, cbasn1.IA5String, "d\xe9v"}), Profile: prof}, "not ASCII"},
		{"NumericString with a letter", Request{RawSubject: rawSubject(atv{oidCN, cbasn1.Tag(asn1.TagNumericString), "12a"}), Profile: prof}, "NumericString"},
		{"BMPString of odd length", Request{RawSubject: rawSubject(atv{oidCN, cbasn1.Tag(asn1.TagBMPString), "\x00d\x00"}), Profile: prof}, "odd length"},
		{"BMPString surrogate", Request{RawSubject: rawSubject(atv{oidCN, cbasn1.Tag(asn1.TagBMPString), "\xd8\x00"}), Profile: prof}, "code point"},
		{"BMPString ok (Windows; zlint read it as UTF-8 and refused it)", Request{RawSubject: rawSubject(atv{oidCN, cbasn1.Tag(asn1.TagBMPString), "\x00d\x00e\x00v"}, atv{oidOU, cbasn1.Tag(asn1.TagBMPString), "\x00\xe9\x00t\x00\xe9"}), Profile: prof}, ""},
		{"BMPString ending in a NUL (Go drops it, OpenSSL shows it)", Request{RawSubject: rawSubject(atv{oidCN, cbasn1.Tag(asn1.TagBMPString), "\x00g\x00w\x00\x00"}), Profile: prof}, "ending in a NUL"},
		{"BMPString with a line break", Request{RawSubject: rawSubject(atv{oidCN, cbasn1.Tag(asn1.TagBMPString), "\x00d\x00\n\x00v"}), Profile: prof}, "U+000A"},
		{"T61String of ASCII ok", Request{RawSubject: rawSubject(atv{oidCN, cbasn1.T61String, "dev"}), Profile: prof}, ""},
		{"T61String beyond ASCII (T.61, Latin-1 or UTF-8?)", Request{RawSubject: rawSubject(atv{oidCN, cbasn1.T61String, "d\xe9v"}), Profile: prof}, "beyond ASCII"},
		{"empty common name", Request{RawSubject: rawSubject(atv{oidCN, cbasn1.UTF8String, ""}), Profile: prof}, "commonName is empty"},
		{"NUL in common name", Request{RawSubject: rawSubject(atv{oidCN, cbasn1.UTF8String, "dev\x00.corp"}), Profile: prof}, "U+0000"},
		{"right-to-left override", Request{RawSubject: rawSubject(atv{oidCN, cbasn1.UTF8String, "dev\u202egnp.exe"}), Profile: prof}, "U+202E"},
		{"title of 65 characters", Request{RawSubject: rawSubject(atv{oidCN, cbasn1.UTF8String, "dev"}, atv{asn1.ObjectIdentifier{2, 5, 4, 12}, cbasn1.UTF8String, strings.Repeat("t", 65)}), Profile: prof}, "title is longer than 64"},
		{"title of 64 characters", Request{RawSubject: rawSubject(atv{oidCN, cbasn1.UTF8String, "dev"}, atv{asn1.ObjectIdentifier{2, 5, 4, 12}, cbasn1.UTF8String, strings.Repeat("t", 64)}), Profile: prof}, ""},
		{"pseudonym of 129 characters", Request{RawSubject: rawSubject(atv{oidCN, cbasn1.UTF8String, "dev"}, atv{asn1.ObjectIdentifier{2, 5, 4, 65}, cbasn1.UTF8String, strings.Repeat("p", 129)}), Profile: prof}, "pseudonym is longer than 128"},
		{"three-letter country", Request{RawSubject: rawName(t, pkix.Name{CommonName: "d", Country: []string{"USA"}}), Profile: prof}, "ISO 3166-1 alpha-2 country code"},
		{"lower-case country", Request{RawSubject: rawName(t, pkix.Name{CommonName: "d", Country: []string{"zz"}}), Profile: prof}, "ISO 3166-1 alpha-2 country code"},
		{"country of digits", Request{RawSubject: rawName(t, pkix.Name{CommonName: "d", Country: []string{"12"}}), Profile: prof}, "ISO 3166-1 alpha-2 country code"},
		{"one-letter country", Request{RawSubject: rawName(t, pkix.Name{CommonName: "d", Country: []string{"U"}}), Profile: prof}, "ISO 3166-1 alpha-2 country code"},
		{"two-letter country ok", Request{RawSubject: rawName(t, pkix.Name{CommonName: "d", Country: []string{"DE"}}), Profile: prof}, ""},
		{"long streetAddress (the linter's bound)", Request{RawSubject: rawName(t, pkix.Name{CommonName: "d", StreetAddress: []string{strings.Repeat("s", 129)}}), Profile: prof}, "street_address"},
		{"100 KB subject", Request{RawSubject: rawSubject(slices.Repeat([]atv{{asn1.ObjectIdentifier{2, 5, 4, 12}, cbasn1.UTF8String, strings.Repeat("t", 60)}}, 1500)...), Profile: prof}, "at most 2048"},
		{"weak key", Request{RawSubject: cn, PublicKey: genKey(t, "p256").Public(), Profile: pki.Profile{Validity: time.Hour, Keys: pki.KeyPolicy{RSAMinBits: 2048}}}, "EC keys are not accepted"},
		{"EC key cannot do the profile's usages", Request{RawSubject: cn, Profile: func() pki.Profile {
			p := pki.DefaultProfile()
			p.KeyUsage = x509.KeyUsageKeyEncipherment
			return p
		}()}, "cannot be performed by a EC key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req
			if req.PublicKey == nil {
				req.PublicKey = sub
			}
			iss, cs := countingIssuer(t, a)
			// CheckRequest, for requests held for approval, gives Issue's
			// verdict without the CA key.
			cerr := iss.CheckRequest(req, now)
			if tt.want == "" && cerr != nil || tt.want != "" && (codeOf(cerr) != pki.EBadRequest || !strings.Contains(pki.ErrorMessage(cerr), tt.want)) {
				t.Errorf("CheckRequest: %v, want %q", cerr, tt.want)
			}
			if cs.n.Load() != 0 {
				t.Errorf("CheckRequest made %d signatures with the CA key", cs.n.Load())
			}
			r := &reserver{}
			c, err := iss.Issue(context.Background(), req, now, r.reserve)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				verify(t, a, c, now, req.Profile.ExtKeyUsage)
				return
			}
			if codeOf(err) != pki.EBadRequest || !strings.Contains(pki.ErrorMessage(err), tt.want) {
				t.Fatalf("err = %v, want bad request containing %q", err, tt.want)
			}
			if len(r.serials) != 0 || cs.n.Load() != 0 {
				t.Errorf("refused request reserved %d serials and made %d signatures", len(r.serials), cs.n.Load())
			}
		})
	}
}

// A multi-valued RDN whose attributes the request lists out of DER order
// ("O=aaaaaaaa+CN=b": the longer encoding first) is issued in DER order,
// as the same name; one in order is kept byte for byte.
func TestIssueSortsMultiValuedRDNs(t *testing.T) {
	a := testCA(t, "p256")
	o := atvDER(asn1.ObjectIdentifier{2, 5, 4, 10}, "aaaaaaaa")
	cn := atvDER(asn1.ObjectIdentifier{2, 5, 4, 3}, "b")
	ou := atvDER(asn1.ObjectIdentifier{2, 5, 4, 11}, "unit")
	tests := []struct {
		name      string
		subject   []byte
		wantBytes []byte
	}{
		{"out of order", nameDER([][]byte{o, cn}, [][]byte{ou}), nameDER([][]byte{cn, o}, [][]byte{ou})},
		{"out of order in a later RDN", nameDER([][]byte{ou}, [][]byte{o, cn}), nameDER([][]byte{ou}, [][]byte{cn, o})},
		{"in order", nameDER([][]byte{cn, o}, [][]byte{ou}), nameDER([][]byte{cn, o}, [][]byte{ou})},
		{"single-valued RDNs", nameDER([][]byte{o}, [][]byte{cn}), nameDER([][]byte{o}, [][]byte{cn})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &reserver{}
			c, err := a.Issuer.Issue(context.Background(), Request{RawSubject: tt.subject, PublicKey: genKey(t, "p256").Public(), Profile: pki.DefaultProfile()}, now, r.reserve)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(c.RawSubject, tt.wantBytes) {
				t.Errorf("subject %x, want %x", c.RawSubject, tt.wantBytes)
			}
			if !csr.SameName(c.RawSubject, tt.subject) {
				t.Errorf("the issued subject is another name than the requested one")
			}
		})
	}
}

// An RDN holds one value of each attribute type (X.501 §9.3): "CN=a+CN=b"
// is refused, while the same type in two RDNs is a name like any other.
func TestIssueRefusesOneTypeTwiceInAnRDN(t *testing.T) {
	a := testCA(t, "p256")
	oidCN := asn1.ObjectIdentifier{2, 5, 4, 3}
	for _, tt := range []struct {
		name    string
		subject []byte
		refused bool
	}{
		{"the same value twice", nameDER([][]byte{atvDER(oidCN, "dup"), atvDER(oidCN, "dup")}), true},
		{"two values", nameDER([][]byte{atvDER(oidCN, "a"), atvDER(oidCN, "b")}), true},
		{"two RDNs", nameDER([][]byte{atvDER(oidCN, "a")}, [][]byte{atvDER(oidCN, "b")}), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &reserver{}
			_, err := a.Issuer.Issue(context.Background(), Request{RawSubject: tt.subject, PublicKey: genKey(t, "p256").Public(), Profile: pki.DefaultProfile()}, now, r.reserve)
			if tt.refused && (err == nil || !strings.Contains(err.Error(), "two commonName attributes in one RDN")) {
				t.Errorf("err = %v, want a refusal naming commonName", err)
			}
			if !tt.refused && err != nil {
				t.Errorf("refused: %v", err)
			}
		})
	}
}

// Attributes whose syntax fixes a string type are issued in it, whatever
// the request used (crypto/x509 writes an emailAddress as a UTF8String);
// one whose text cannot be that type is refused.
func TestIssueRetypesSubjectAttributes(t *testing.T) {
	a := testCA(t, "p256")
	oidEmail := asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
	oidDC := asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}
	oidDNQ := asn1.ObjectIdentifier{2, 5, 4, 46}
	oidC := asn1.ObjectIdentifier{2, 5, 4, 6}
	oidCN := asn1.ObjectIdentifier{2, 5, 4, 3}
	cn := atvDER(oidCN, "dev")
	tests := []struct {
		name      string
		subject   []byte
		emails    []string
		wantBytes []byte // nil: refused
		wantErr   string
	}{
		{"UTF8String emailAddress", nameDER([][]byte{cn}, [][]byte{atvDER(oidEmail, "d@corp.example")}), []string{"d@corp.example"},
			nameDER([][]byte{cn}, [][]byte{atvTagged(oidEmail, cbasn1.IA5String, "d@corp.example")}), ""},
		{"IA5String emailAddress kept", nameDER([][]byte{cn}, [][]byte{atvTagged(oidEmail, cbasn1.IA5String, "d@corp.example")}), []string{"d@corp.example"},
			nameDER([][]byte{cn}, [][]byte{atvTagged(oidEmail, cbasn1.IA5String, "d@corp.example")}), ""},
		{"PrintableString domainComponent", nameDER([][]byte{atvTagged(oidDC, cbasn1.PrintableString, "corp")}, [][]byte{cn}), nil,
			nameDER([][]byte{atvTagged(oidDC, cbasn1.IA5String, "corp")}, [][]byte{cn}), ""},
		{"UTF8String dnQualifier", nameDER([][]byte{cn}, [][]byte{atvDER(oidDNQ, "q1")}), nil,
			nameDER([][]byte{cn}, [][]byte{atvTagged(oidDNQ, cbasn1.PrintableString, "q1")}), ""},
		{"non-ASCII domainComponent", nameDER([][]byte{atvDER(oidDC, "café")}, [][]byte{cn}), nil, nil, "domainComponent must be an IA5String"},
		{"dnQualifier with an @", nameDER([][]byte{cn}, [][]byte{atvDER(oidDNQ, "q@1")}), nil, nil, "dnQualifier must be a PrintableString"},
		{"UTF8String countryName", nameDER([][]byte{atvDER(oidC, "US")}, [][]byte{cn}), nil,
			nameDER([][]byte{atvTagged(oidC, cbasn1.PrintableString, "US")}, [][]byte{cn}), ""},
		{"IA5String commonName", nameDER([][]byte{atvTagged(oidCN, cbasn1.IA5String, "ia5name")}), nil,
			nameDER([][]byte{atvTagged(oidCN, cbasn1.UTF8String, "ia5name")}), ""},
		{"NumericString organizationalUnitName", nameDER([][]byte{cn}, [][]byte{atvTagged(asn1.ObjectIdentifier{2, 5, 4, 11}, cbasn1.Tag(asn1.TagNumericString), "12345")}), nil,
			nameDER([][]byte{cn}, [][]byte{atvTagged(asn1.ObjectIdentifier{2, 5, 4, 11}, cbasn1.UTF8String, "12345")}), ""},
		{"IA5String organizationIdentifier", nameDER([][]byte{atvTagged(asn1.ObjectIdentifier{2, 5, 4, 97}, cbasn1.IA5String, "VATDE-123")}, [][]byte{cn}), nil,
			nameDER([][]byte{atvTagged(asn1.ObjectIdentifier{2, 5, 4, 97}, cbasn1.UTF8String, "VATDE-123")}, [][]byte{cn}), ""},
		{"IA5String jurisdictionStateOrProvinceName", nameDER([][]byte{atvTagged(oidJurisdictionStateTest, cbasn1.IA5String, "Bavaria")}, [][]byte{cn}), nil,
			nameDER([][]byte{atvTagged(oidJurisdictionStateTest, cbasn1.UTF8String, "Bavaria")}, [][]byte{cn}), ""},
		{"T61String commonName", nameDER([][]byte{atvTagged(oidCN, cbasn1.T61String, "t61ok")}), nil,
			nameDER([][]byte{atvTagged(oidCN, cbasn1.UTF8String, "t61ok")}), ""},
		{"T61String commonName beyond ASCII", nameDER([][]byte{atvTagged(oidCN, cbasn1.T61String, "caf\xe9")}), nil, nil, "TeletexString with characters beyond ASCII"},
		{"T61String houseIdentifier beyond ASCII (r46: no DirectoryString of the list)", nameDER([][]byte{cn}, [][]byte{atvTagged(asn1.ObjectIdentifier{2, 5, 4, 51}, cbasn1.T61String, "caf\xe9")}), nil, nil, "TeletexString with characters beyond ASCII"},
		{"T61String houseIdentifier (r52: DirectoryString too)", nameDER([][]byte{cn}, [][]byte{atvTagged(asn1.ObjectIdentifier{2, 5, 4, 51}, cbasn1.T61String, "house1")}), nil,
			nameDER([][]byte{cn}, [][]byte{atvTagged(asn1.ObjectIdentifier{2, 5, 4, 51}, cbasn1.UTF8String, "house1")}), ""},
		{"T61String role", nameDER([][]byte{cn}, [][]byte{atvTagged(asn1.ObjectIdentifier{2, 5, 4, 72}, cbasn1.T61String, "admin")}), nil,
			nameDER([][]byte{cn}, [][]byte{atvTagged(asn1.ObjectIdentifier{2, 5, 4, 72}, cbasn1.UTF8String, "admin")}), ""},
		{"T61String uid", nameDER([][]byte{cn}, [][]byte{atvTagged(asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}, cbasn1.T61String, "myuid")}), nil,
			nameDER([][]byte{cn}, [][]byte{atvTagged(asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}, cbasn1.UTF8String, "myuid")}), ""},
		{"T61String name, postOfficeBox, physicalDeliveryOfficeName, dmdName", nameDER([][]byte{cn},
			[][]byte{atvTagged(asn1.ObjectIdentifier{2, 5, 4, 41}, cbasn1.T61String, "name1")}, [][]byte{atvTagged(asn1.ObjectIdentifier{2, 5, 4, 18}, cbasn1.T61String, "pob")},
			[][]byte{atvTagged(asn1.ObjectIdentifier{2, 5, 4, 19}, cbasn1.T61String, "office")}, [][]byte{atvTagged(asn1.ObjectIdentifier{2, 5, 4, 54}, cbasn1.T61String, "dmd")}), nil,
			nameDER([][]byte{cn},
				[][]byte{atvTagged(asn1.ObjectIdentifier{2, 5, 4, 41}, cbasn1.UTF8String, "name1")}, [][]byte{atvTagged(asn1.ObjectIdentifier{2, 5, 4, 18}, cbasn1.UTF8String, "pob")},
				[][]byte{atvTagged(asn1.ObjectIdentifier{2, 5, 4, 19}, cbasn1.UTF8String, "office")}, [][]byte{atvTagged(asn1.ObjectIdentifier{2, 5, 4, 54}, cbasn1.UTF8String, "dmd")}), ""},
		{"T61String uid beyond ASCII names uid", nameDER([][]byte{cn}, [][]byte{atvTagged(asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}, cbasn1.T61String, "j\xfcrgen")}), nil, nil, "subject attribute uid is a TeletexString"},
		{"T61String of an unknown type kept", nameDER([][]byte{cn}, [][]byte{atvTagged(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 7}, cbasn1.T61String, "ascii")}), nil,
			nameDER([][]byte{cn}, [][]byte{atvTagged(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 7}, cbasn1.T61String, "ascii")}), ""},
		{"T61String of an unknown type beyond ASCII", nameDER([][]byte{cn}, [][]byte{atvTagged(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 7}, cbasn1.T61String, "j\xfcrgen")}), nil, nil, "TeletexString with characters beyond ASCII"},
		{"PrintableString commonName kept", nameDER([][]byte{atvTagged(oidCN, cbasn1.PrintableString, "kept")}), nil,
			nameDER([][]byte{atvTagged(oidCN, cbasn1.PrintableString, "kept")}), ""},
		{"UTF8String jurisdictionCountryName", nameDER([][]byte{atvDER(oidJurisdictionCountryName, "DE")}, [][]byte{cn}), nil,
			nameDER([][]byte{atvTagged(oidJurisdictionCountryName, cbasn1.PrintableString, "DE")}, [][]byte{cn}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &reserver{}
			c, err := a.Issuer.Issue(context.Background(), Request{RawSubject: tt.subject, EmailAddresses: tt.emails, PublicKey: genKey(t, "p256").Public(), Profile: pki.DefaultProfile()}, now, r.reserve)
			if tt.wantErr != "" {
				if codeOf(err) != pki.EBadRequest || !strings.Contains(pki.ErrorMessage(err), tt.wantErr) {
					t.Fatalf("err = %v, want a bad request containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(c.RawSubject, tt.wantBytes) {
				t.Errorf("subject %x, want %x", c.RawSubject, tt.wantBytes)
			}
			if !csr.SameName(c.RawSubject, tt.subject) {
				t.Errorf("the issued subject is another name than the requested one")
			}
		})
	}
}

func atvDER(oid asn1.ObjectIdentifier, v string) []byte {
	return atvTagged(oid, cbasn1.UTF8String, v)
}

func atvTagged(oid asn1.ObjectIdentifier, tag cbasn1.Tag, v string) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		b.AddASN1(tag, func(b *cryptobyte.Builder) { b.AddBytes([]byte(v)) })
	})
	return b.BytesOrPanic()
}

// nameDER is a Name of the given RDNs, each the listed attributes in the
// order given (DER or not).
func nameDER(rdns ...[][]byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, atvs := range rdns {
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
				for _, atv := range atvs {
					b.AddBytes(atv)
				}
			})
		}
	})
	return b.BytesOrPanic()
}

func TestIssueEmptySubjectMarksSANCritical(t *testing.T) {
	a := testCA(t, "p256")
	c, err := a.Issuer.Issue(context.Background(), Request{DNSNames: []string{"a.corp"}, PublicKey: genKey(t, "p256").Public(), Profile: pki.DefaultProfile()}, now, okReserve)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range c.Extensions {
		if e.Id.Equal(oidSAN) && !e.Critical {
			t.Error("SAN not critical with an empty subject")
		}
	}
}

func TestSerials(t *testing.T) {
	seen := make(map[string]bool, 10000)
	for range 10000 {
		s, err := randomSerial(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if s.Sign() <= 0 {
			t.Fatalf("serial %v not positive", s)
		}
		der, _ := asn1.Marshal(s)
		if n := len(der) - 2; n > 17 {
			t.Fatalf("serial %x encodes in %d octets", s, n)
		}
		h := s.Text(16)
		if seen[h] {
			t.Fatalf("serial %s drawn twice", h)
		}
		seen[h] = true
	}
	if oddSerials {
		return // the source below is shaped to 31 digits (oddserials_on.go)
	}
	// A source of zeros never yields serial 0; one with the top bit set
	// stays positive and encodes in 17 octets.
	zeros := bytes.NewReader(append(make([]byte, 16), bytes.Repeat([]byte{0xff}, 16)...))
	s, err := randomSerial(zeros)
	if err != nil {
		t.Fatal(err)
	}
	if der, _ := asn1.Marshal(s); s.Sign() <= 0 || len(der)-2 != 17 || s.BitLen() != 128 {
		t.Errorf("serial %x", s)
	}
}

func TestIssueRetriesTakenSerials(t *testing.T) {
	a := testCA(t, "p256")
	iss, cs := countingIssuer(t, a)
	r := &reserver{taken: 2}
	c, err := iss.Issue(context.Background(), Request{RawSubject: rawName(t, pkix.Name{CommonName: "d"}), PublicKey: genKey(t, "p256").Public(), Profile: pki.DefaultProfile()}, now, r.reserve)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.serials) != 3 || r.serials[0] == r.serials[1] || r.serials[1] == r.serials[2] {
		t.Fatalf("reserved %v, want 3 distinct serials", r.serials)
	}
	if c.SerialNumber.Text(16) != r.serials[2] {
		t.Errorf("issued %s, want the third serial %s", c.SerialNumber.Text(16), r.serials[2])
	}
	if cs.n.Load() != 1 {
		t.Errorf("%d real signatures, want 1", cs.n.Load())
	}
	// Always taken: give up without signing.
	iss, cs = countingIssuer(t, a)
	r = &reserver{taken: 1000}
	_, err = iss.Issue(context.Background(), Request{RawSubject: rawName(t, pkix.Name{CommonName: "d"}), PublicKey: genKey(t, "p256").Public(), Profile: pki.DefaultProfile()}, now, r.reserve)
	if codeOf(err) != pki.EInternal || len(r.serials) != serialTries || cs.n.Load() != 0 {
		t.Errorf("err=%v tries=%d signatures=%d", err, len(r.serials), cs.n.Load())
	}
}

func TestIssueReserveErrorAborts(t *testing.T) {
	a := testCA(t, "p256")
	req := Request{RawSubject: rawName(t, pkix.Name{CommonName: "d"}), PublicKey: genKey(t, "p256").Public(), Profile: pki.DefaultProfile()}
	for _, tt := range []struct {
		err  error
		code pki.Code
	}{
		{errors.New("database is locked"), pki.EInternal},
		{pki.Errorf(pki.EConflict, "replayed"), pki.EConflict},
		// Logged as unavailable (the error's own code), not internal.
		{fmt.Errorf("%w: postgres: reserve serial: begin: FATAL: terminating connection due to administrator command (SQLSTATE 57P01)", pki.ErrUnavailable), pki.EUnavailable},
	} {
		iss, cs := countingIssuer(t, a)
		r := &reserver{err: tt.err}
		c, err := iss.Issue(context.Background(), req, now, r.reserve)
		var pe *pki.Error
		if c != nil || codeOf(err) != tt.code || !errors.Is(err, tt.err) || !errors.As(err, &pe) || pe.Code != tt.code {
			t.Errorf("err = %v, want code %s wrapping %v", err, tt.code, tt.err)
		}
		if tt.code == pki.EUnavailable && pki.ErrorMessage(err) != pki.ErrorMessage(pki.ErrUnavailable) {
			t.Errorf("told the client %q, want %q", pki.ErrorMessage(err), pki.ErrorMessage(pki.ErrUnavailable))
		}
		if len(r.serials) != 1 || cs.n.Load() != 0 {
			t.Errorf("%d reservations, %d signatures; want 1 and 0", len(r.serials), cs.n.Load())
		}
	}
	// A canceled context stops before reserving.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	iss, cs := countingIssuer(t, a)
	r := &reserver{}
	if _, err := iss.Issue(ctx, req, now, r.reserve); err == nil || len(r.serials) != 0 || cs.n.Load() != 0 {
		t.Errorf("canceled: err=%v reservations=%d signatures=%d", err, len(r.serials), cs.n.Load())
	}
	if _, err := iss.Issue(context.Background(), req, now, nil); codeOf(err) != pki.EInternal {
		t.Errorf("nil ReserveFunc: err = %v", err)
	}
}

func TestIssueLintFailureRefuses(t *testing.T) {
	a := testCA(t, "p256")
	iss, cs := countingIssuer(t, a)
	prof := pki.DefaultProfile()
	prof.KeyUsage |= x509.KeyUsageCertSign // a misconfigured profile
	r := &reserver{}
	_, err := iss.Issue(context.Background(), Request{RawSubject: rawName(t, pkix.Name{CommonName: "d"}), PublicKey: genKey(t, "rsa2048").Public(), Profile: prof}, now, r.reserve)
	// Refused as a bad request (never a 5xx for what a client sent), naming the lint.
	if codeOf(err) != pki.EBadRequest || !strings.Contains(pki.ErrorMessage(err), "e_ext_key_usage_cert_sign_without_ca") {
		t.Fatalf("err = %v, want a refusal naming the lint", err)
	}
	if len(r.serials) != 0 || cs.n.Load() != 0 {
		t.Errorf("lint failure reserved %d serials and made %d real signatures", len(r.serials), cs.n.Load())
	}
}

func TestCAKeySignsOnlyTheLintedTBS(t *testing.T) {
	a := testCA(t, "p256")
	rs := &recordingSigner{Signer: a.Issuer.Signer}
	iss, err := NewIssuer(a.Issuer.Cert, rs, a.Issuer.Chain)
	if err != nil {
		t.Fatal(err)
	}
	c, err := iss.Issue(context.Background(), Request{RawSubject: rawName(t, pkix.Name{CommonName: "d"}), PublicKey: genKey(t, "p256").Public(), Profile: pki.DefaultProfile()}, now, okReserve)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(c.RawTBSCertificate)
	if len(rs.digests) != 1 || !bytes.Equal(rs.digests[0], sum[:]) {
		t.Fatalf("CA key signed %d digests, want exactly the certificate's TBS", len(rs.digests))
	}
	if err := c.CheckSignatureFrom(a.Issuer.Cert); err != nil {
		t.Fatal(err)
	}
	// A signer that returns garbage is caught.
	bad, err := NewIssuer(a.Issuer.Cert, badSigner{a.Issuer.Signer}, a.Issuer.Chain)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Issue(context.Background(), Request{RawSubject: rawName(t, pkix.Name{CommonName: "d"}), PublicKey: genKey(t, "p256").Public(), Profile: pki.DefaultProfile()}, now, okReserve); err == nil || !strings.Contains(err.Error(), "invalid signature") {
		t.Fatalf("faulty signer: err = %v", err)
	}
}

type recordingSigner struct {
	crypto.Signer
	digests [][]byte
}

func (s *recordingSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.digests = append(s.digests, bytes.Clone(digest))
	return s.Signer.Sign(r, digest, opts)
}

type badSigner struct{ crypto.Signer }

func (s badSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	d := bytes.Clone(digest)
	d[0] ^= 1
	return s.Signer.Sign(r, d, opts)
}

func TestNewIssuerChecks(t *testing.T) {
	a := testCA(t, "p256")
	if _, err := NewIssuer(a.Issuer.Cert, genKey(t, "p256"), nil); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("mismatched key: %v", err)
	}
	if _, err := NewIssuer(a.RA.Cert, a.RA.Key, nil); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Errorf("RA as issuer: %v", err)
	}
	if _, err := NewIssuer(a.Issuer.Cert, a.Issuer.Signer, []*x509.Certificate{a.Root}); err == nil {
		t.Error("chain not starting at the issuer accepted")
	}
	i, err := NewIssuer(a.Issuer.Cert, a.Issuer.Signer, nil)
	if err != nil || i.ID != a.Issuer.ID || len(i.Chain) != 1 {
		t.Errorf("NewIssuer: %v", err)
	}
}

func TestIssueConcurrent(t *testing.T) {
	a := testCA(t, "p256")
	sub := genKey(t, "p256").Public()
	r := &reserver{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	issued := map[string]bool{}
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Go(func() {
			for n := range 8 {
				c, err := a.Issuer.Issue(context.Background(), Request{RawSubject: rawName(t, pkix.Name{CommonName: fmt.Sprintf("d-%d-%d", g, n)}), PublicKey: sub, Profile: pki.DefaultProfile()}, now, r.reserve)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				issued[c.SerialNumber.Text(16)] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(issued) != 64 {
		t.Errorf("%d distinct serials, want 64", len(issued))
	}
}

func TestOpenSSLVerify(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	for _, caType := range []string{"p256", "rsa2048"} {
		t.Run(caType, func(t *testing.T) {
			a := testCA(t, caType)
			prof := pki.DefaultProfile()
			prof.CRLURLs = []string{"http://ca.example/crl"}
			prof.OCSPURLs = []string{"http://ca.example/ocsp"}
			c, err := a.Issuer.Issue(context.Background(), Request{
				RawSubject: rawName(t, pkix.Name{CommonName: "device-7", Organization: []string{"Acme"}}),
				DNSNames:   []string{"device-7.corp"}, PublicKey: genKey(t, "rsa2048").Public(), Profile: prof,
			}, now, okReserve)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			write := func(name string, certs ...*x509.Certificate) string {
				var b []byte
				for _, c := range certs {
					b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
				}
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
				return p
			}
			root, issuing, leaf, ra := write("root.pem", a.Root), write("issuing.pem", a.Issuer.Cert), write("leaf.pem", c), write("ra.pem", a.RA.Cert)
			at := strconv.FormatInt(now.Add(time.Hour).Unix(), 10)
			for _, args := range [][]string{
				{"verify", "-x509_strict", "-attime", at, "-purpose", "sslclient", "-CAfile", root, "-untrusted", issuing, leaf},
				{"verify", "-x509_strict", "-attime", at, "-CAfile", root, "-untrusted", issuing, ra},
			} {
				out, err := exec.Command(openssl, args...).CombinedOutput()
				if err != nil || !strings.Contains(string(out), ": OK") {
					t.Errorf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
				}
			}
		})
	}
}

// BenchmarkIssue: P-256 issuing CA, RSA-2048 subject key, default profile,
// a ReserveFunc that does nothing: the CPU of the issuance pipeline alone.
func BenchmarkIssue(b *testing.B) {
	for _, caType := range []string{"p256", "rsa2048"} {
		b.Run("ca="+caType, func(b *testing.B) {
			a := testCA(b, caType)
			sub := genKey(b, "rsa2048").Public()
			req := Request{RawSubject: rawName(b, pkix.Name{CommonName: "device-1"}), DNSNames: []string{"device-1.corp"}, PublicKey: sub, Profile: pki.DefaultProfile()}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Issuer.Issue(ctx, req, now, okReserve); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCheckKeyRSA2048(b *testing.B) {
	k := genKey(b, "rsa2048").Public()
	for b.Loop() {
		if err := CheckKey(pki.DefaultKeyPolicy, k); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCheckProfile(t *testing.T) {
	a := testCA(t, "p256")
	withKU := func(ku x509.KeyUsage, eku ...x509.ExtKeyUsage) pki.Profile {
		p := pki.DefaultProfile()
		p.KeyUsage, p.ExtKeyUsage = ku, eku
		return p
	}
	withURLs := func(crl, ocsp, issuer []string) pki.Profile {
		p := pki.DefaultProfile()
		p.CRLURLs, p.OCSPURLs, p.IssuerURLs = crl, ocsp, issuer
		return p
	}
	withSANs := func(maxSANs int, fixed ...string) pki.Profile {
		p := pki.DefaultProfile()
		p.MaxSANs, p.SANFixed = maxSANs, fixed
		return p
	}
	withFixed := func(fixed map[string]string) pki.Profile {
		p := pki.DefaultProfile()
		p.SubjectFixed = fixed
		return p
	}
	tests := []struct {
		name string
		prof pki.Profile
		want string
	}{
		{"default", pki.DefaultProfile(), ""},
		{"no SANs", func() pki.Profile { p := pki.DefaultProfile(); p.MaxSANs = 0; return p }(), ""},
		{"RSA 4096 minimum", func() pki.Profile { p := pki.DefaultProfile(); p.Keys.RSAMinBits = 4096; return p }(), ""},
		{"server and client", withKU(x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth), ""},
		{"keyEncipherment with clientAuth", withKU(x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment, x509.ExtKeyUsageClientAuth), "e_key_usage_and_extended_key_usage_inconsistent"},
		{"keyCertSign", withKU(x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign), "e_ext_key_usage_cert_sign_without_ca"},
		{"EC only, encipherment only", func() pki.Profile {
			p := withKU(x509.KeyUsageKeyEncipherment)
			p.Keys = pki.KeyPolicy{ECCurves: []string{"P-256"}}
			return p
		}(), "cannot be performed by a EC key"},
		{"no keys", func() pki.Profile { p := pki.DefaultProfile(); p.Keys = pki.KeyPolicy{}; return p }(), "accepts no key type"},
		{"unknown curve", func() pki.Profile { p := pki.DefaultProfile(); p.Keys.ECCurves = []string{"brainpoolP256r1"}; return p }(), "unsupported curve"},
		{"no validity", func() pki.Profile { p := pki.DefaultProfile(); p.Validity = 0; return p }(), "no validity"},
		{"fixed subject attributes", withFixed(map[string]string{"O": "Acme", "OU": "Devices", "C": "DE"}), ""},
		{"fixed organization too long", withFixed(map[string]string{"O": strings.Repeat("o", 65)}), "organizationName is longer than 64"},
		{"fixed value with a control character", withFixed(map[string]string{"OU": "a\u202eb"}), "U+202E"},
		{"fixed country of three letters", withFixed(map[string]string{"C": "USA"}), "ISO 3166-1 alpha-2 country code"},
		{"fixed country in lower case", withFixed(map[string]string{"C": "us"}), "ISO 3166-1 alpha-2 country code"},
		{"fixed country UK", withFixed(map[string]string{"C": "UK"}), "the United Kingdom's code is GB"},
		{"fixed attributes without SANs", func() pki.Profile { p := withFixed(map[string]string{"O": "Acme"}); p.MaxSANs = 0; return p }(), ""},
		{"location URLs", withURLs([]string{"http://crl.corp/a.crl", "ldap:///CN=CA,CN=cdp?certificateRevocationList"}, []string{"http://ocsp.corp"}, []string{"https://ca.corp:8443/ca.crt"}), ""},
		{"CRL URL with a space", withURLs([]string{"not a url"}, nil, nil), "crl_urls"},
		{"relative CRL URL", withURLs([]string{"crl/a.crl"}, nil, nil), "not an absolute URL"},
		{"empty OCSP URL", withURLs(nil, []string{""}, nil), "ocsp_urls \"\": empty"},
		{"OCSP URL without a host", withURLs(nil, []string{"http:///ocsp"}, nil), "no host"},
		{"control character in an issuer URL", withURLs(nil, nil, []string{"http://ca.corp/\x01.crt"}), "issuer_urls"},
		{"non-ASCII issuer URL", withURLs(nil, nil, []string{"http://ca.corp/é.crt"}), "printable ASCII"},
		{"fixed SANs", withSANs(4, "dns:vpn.corp", "ip:10.8.0.1", "email:pki@corp.example", "uri:spiffe://corp.example/x"), ""},
		{"fixed SANs and fixed subject", func() pki.Profile {
			p := withSANs(1, "dns:vpn.corp")
			p.SubjectFixed = map[string]string{"O": "Acme"}
			return p
		}(), ""},
		{"fixed DNS name with a space", withSANs(4, "dns:bad name.corp"), "san_fixed: invalid DNS name"},
		{"fixed address as a DNS name", withSANs(4, "dns:10.8.0.1"), "san_fixed: invalid DNS name"},
		{"fixed relative URI", withSANs(4, "uri:relative/path"), "san_fixed: invalid URI"},
		{"fixed email that is none", withSANs(4, "email:not-an-email"), "san_fixed: invalid email"},
		{"fixed IP that is none", withSANs(4, "ip:10.8.0"), "not an IP address"},
		{"more fixed SANs than max_sans", withSANs(1, "dns:a.corp", "dns:b.corp"), "san_fixed: 2 subject alternative names"},
		{"ocspSigning", withKU(x509.KeyUsageDigitalSignature, x509.ExtKeyUsageOCSPSigning), "delegated OCSP responder"},
		{"ocspSigning beside clientAuth", withKU(x509.KeyUsageDigitalSignature, x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageOCSPSigning), "delegated OCSP responder"},
		{"the built-in responder profile", func() pki.Profile {
			p := withKU(x509.KeyUsageDigitalSignature, x509.ExtKeyUsageOCSPSigning)
			p.OCSPNoCheck, p.MaxSANs = true, 0
			return p
		}(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := a.Issuer.CheckProfile(tt.prof, now)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// oidJurisdictionStateTest is the EV jurisdiction's stateOrProvinceName.
var oidJurisdictionStateTest = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 60, 2, 1, 2}

// TestOddSerials: in the test-only build that asks for them, every serial
// is 31 hex digits, so that tests comparing a serial as shown with one as
// stored see the two differ on every run (scripts/test's year-ahead steps).
func TestOddSerials(t *testing.T) {
	if !oddSerials {
		t.Skip("needs -tags scepter_clockoffset and SCEPTER_TEST_ODD_SERIALS=1")
	}
	for range 100 {
		s, err := randomSerial(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if h := s.Text(16); len(h) != 31 {
			t.Fatalf("serial %s has %d hex digits, want 31", h, len(h))
		}
	}
}
