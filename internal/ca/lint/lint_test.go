package lint

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	zx509 "github.com/zmap/zcrypto/x509"
	zlint "github.com/zmap/zlint/v3/lint"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/scepter/scepter/internal/csr"
)

// t0 is when the test's certificates start: zlint picks the lints that
// apply by a certificate's notBefore, so a fixed date keeps the outcome the
// same on any day the suite runs.
var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

var (
	caKey, _  = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	subKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caCert    = func() *x509.Certificate {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lint test CA"},
			NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
			SubjectKeyId: []byte{1, 2, 3, 4},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, caKey.Public(), caKey)
		if err != nil {
			panic(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c
	}()
)

// leaf signs a device certificate after edit changes its template.
func leaf(t testing.TB, pub crypto.PublicKey, edit func(*x509.Certificate)) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: new(big.Int).Lsh(big.NewInt(1), 120), Subject: pkix.Name{CommonName: "device-42", Organization: []string{"Example"}},
		NotBefore: t0.Add(-time.Minute), NotAfter: t0.Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true, SubjectKeyId: []byte{5, 6, 7, 8},
		DNSNames: []string{"device-42.corp"}, CRLDistributionPoints: []string{"http://ca.example/crl"},
		OCSPServer: []string{"http://ca.example/ocsp"},
	}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, pub, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestNamesAndExclusions(t *testing.T) {
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	names := l.Names()
	t.Logf("%d lints", len(names))
	if len(names) < 90 {
		t.Errorf("only %d lints", len(names))
	}
	for _, want := range []string{"e_ext_key_usage_cert_sign_without_ca", "e_subject_common_name_max_length", "e_serial_number_longer_than_20_octets", "e_ecdsa_allowed_ku", "e_rsa_allowed_ku_ee"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s missing", want)
		}
	}
	for _, n := range names {
		if _, excluded := Excluded[n]; excluded || !strings.HasPrefix(n, "e_") {
			t.Errorf("lint %s should not run", n)
		}
	}
	for n := range Replaced {
		if !slices.Contains(names, n) {
			t.Errorf("replaced lint %s does not run", n)
		}
		for _, ln := range l.lints {
			if ln.Name == n {
				t.Errorf("zlint's %s runs besides ours", n)
			}
		}
	}
	// The registry is built once: two Linters share it.
	l2, _ := New()
	if l.reg != l2.reg {
		t.Error("registry rebuilt")
	}
}

func TestCheck(t *testing.T) {
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		edit     func(*x509.Certificate)
		wantLint string // "" means clean
	}{
		{"device certificate", nil, ""},
		{"internal name with underscore", func(c *x509.Certificate) { c.DNSNames = []string{"my_host.corp"} }, ""},
		{"keyCertSign without CA", func(c *x509.Certificate) { c.KeyUsage |= x509.KeyUsageCertSign }, "e_ext_key_usage_cert_sign_without_ca"},
		{"long common name", func(c *x509.Certificate) { c.Subject.CommonName = strings.Repeat("x", 65) }, "e_subject_common_name_max_length"},
		{"keyEncipherment with an EC key", func(c *x509.Certificate) { c.KeyUsage |= x509.KeyUsageKeyEncipherment }, "e_ecdsa_allowed_ku"},
		{"21-octet serial", func(c *x509.Certificate) { c.SerialNumber = new(big.Int).Lsh(big.NewInt(1), 164) }, "e_serial_number_longer_than_20_octets"},
		// Windows and some devices send BMPStrings (UTF-16): zlint's own
		// lint read them as UTF-8 and refused every one.
		{"BMPString subject", rawSubject(value{bmp, "\x00d\x00e\x00v"}, value{bmp, "\x00\xe9\x00t\x00\xe9"}), ""},
		{"BMPString with a NUL terminator", rawSubject(value{bmp, "\x00d\x00e\x00v\x00\x00"}), ""},
		{"BMPString with a line break", rawSubject(value{bmp, "\x00d\x00\n\x00v"}), subjectControlsLint},
		{"BMPString with a C1 control", rawSubject(value{bmp, "\x00d\x00\x85"}), subjectControlsLint},
		{"BMPString with a NUL inside", rawSubject(value{bmp, "\x00d\x00\x00\x00v"}), subjectControlsLint},
		{"UTF8String with a control", rawSubject(value{cbasn1.UTF8String, "de\x01v"}), subjectControlsLint},
		{"UTF8String with a C1 control", rawSubject(value{cbasn1.UTF8String, "de\u0085v"}), subjectControlsLint},
		{"UTF8String with DEL", rawSubject(value{cbasn1.UTF8String, "de\x7fv"}), subjectControlsLint},
		{"UTF8String with U+00A0", rawSubject(value{cbasn1.UTF8String, "de\u00a0v"}), ""},
		{"PrintableString", rawSubject(value{cbasn1.PrintableString, "dev 42"}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := l.Check(leaf(t, subKey.Public(), tt.edit))
			if tt.wantLint == "" {
				if err != nil {
					t.Fatalf("unexpected failure: %v", err)
				}
				return
			}
			var f *Failure
			if !errors.As(err, &f) || !slices.Contains(f.Lints, tt.wantLint) {
				t.Fatalf("err = %v, want a failure of %s", err, tt.wantLint)
			}
			if !strings.Contains(err.Error(), tt.wantLint) {
				t.Errorf("error %q does not name %s", err, tt.wantLint)
			}
		})
	}
	if err := l.Check([]byte{0x30, 0x00}); err == nil || errors.As(err, new(*Failure)) {
		t.Errorf("garbage: err = %v, want a parse error", err)
	}
}

var bmp = cbasn1.Tag(asn1.TagBMPString)

// value is a subject attribute value: its string type and its bytes.
type value struct {
	tag   cbasn1.Tag
	bytes string
}

// rawSubject returns an edit that gives the certificate a subject of
// commonName values, one RDN each, encoded as given.
func rawSubject(values ...value) func(*x509.Certificate) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, v := range values {
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{2, 5, 4, 3})
					b.AddASN1(v.tag, func(b *cryptobyte.Builder) { b.AddBytes([]byte(v.bytes)) })
				})
			})
		}
	})
	raw := b.BytesOrPanic()
	return func(c *x509.Certificate) { c.RawSubject = raw }
}

// FuzzSubjectControls checks that subjectControls never panics, and that
// on a Name without BMPStrings it refuses exactly what zlint's lint, which
// it replaces, refuses.
func FuzzSubjectControls(f *testing.F) {
	for _, v := range []value{{cbasn1.UTF8String, "dev"}, {bmp, "\x00d"}, {cbasn1.UTF8String, "d\x01"}, {cbasn1.T61String, "d\xe9\x85"}, {cbasn1.PrintableString, ""}} {
		c := &x509.Certificate{}
		rawSubject(v)(c)
		f.Add(c.RawSubject)
	}
	zlintLint := zlint.GlobalRegistry().ByName(subjectControlsLint)
	if zlintLint == nil {
		f.Fatalf("zlint has no lint %s", subjectControlsLint)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		err := subjectControls(raw)
		if errors.Is(err, csr.ErrNotAName) || bytes.Contains(raw, []byte{byte(bmp)}) {
			return // zlint's parser is laxer; a BMPString maybe, which it reads wrong
		}
		res := zlintLint.Lint().Execute(&zx509.Certificate{RawSubject: raw})
		zlintRefuses := res.Status == zlint.Error || res.Status == zlint.Fatal
		if zlintRefuses != (err != nil) {
			t.Fatalf("subject %x: zlint %v, ours %v", raw, res.Status, err)
		}
	})
}

func BenchmarkCheck(b *testing.B) {
	l, err := New()
	if err != nil {
		b.Fatal(err)
	}
	der := leaf(b, subKey.Public(), nil)
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Check(der); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(l.lints)), "ns/lint")
}

// TestReadyInstancesAgreeWithZlint: the instances made once in New give, for
// every lint and certificate, the status zlint's own Execute gives with a
// new instance each time (NA and NE both as no result).
func TestReadyInstancesAgreeWithZlint(t *testing.T) {
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	ready := 0
	for _, inst := range l.ready {
		if inst != nil {
			ready++
		}
	}
	if ready == 0 {
		t.Fatal("no lint got a ready instance: Check makes every lint anew for every certificate")
	}
	edits := []func(*x509.Certificate){
		nil,
		func(c *x509.Certificate) { c.KeyUsage |= x509.KeyUsageCertSign },
		func(c *x509.Certificate) { c.Subject.CommonName = strings.Repeat("x", 65) },
		func(c *x509.Certificate) { c.KeyUsage |= x509.KeyUsageKeyEncipherment },
		func(c *x509.Certificate) { c.SerialNumber = new(big.Int).Lsh(big.NewInt(1), 164) },
		func(c *x509.Certificate) { c.DNSNames = []string{"-bad-.corp", "a..b"} },
		func(c *x509.Certificate) { c.SubjectKeyId = nil; c.CRLDistributionPoints = nil },
		func(c *x509.Certificate) { c.NotBefore = time.Date(2009, 1, 1, 0, 0, 0, 0, time.UTC) },
		rawSubject(value{bmp, "\x00d\x00\n\x00v"}),
	}
	status := func(r *zlint.LintResult) zlint.LintStatus {
		if r == nil || r.Status == zlint.NA || r.Status == zlint.NE {
			return zlint.NA
		}
		return r.Status
	}
	for i, edit := range edits {
		c, err := zx509.ParseCertificate(leaf(t, subKey.Public(), edit))
		if err != nil {
			t.Fatal(err)
		}
		for j, ln := range l.lints {
			if got, want := status(l.run(j, c)), status(ln.Execute(c, l.cfg)); got != want {
				t.Errorf("certificate %d, %s: %v with the ready instance, %v by zlint's Execute", i, ln.Name, got, want)
			}
		}
	}
}
