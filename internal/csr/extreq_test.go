package csr_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/pkitest"
)

// r126 D3: an extensionRequest attribute with two values (RFC 2985 allows
// one) is named, as crypto/x509 reads the first value only and drops the
// second's extensions unsaid; one value, or two attributes (which
// crypto/x509 reads both of), is not this function's to refuse.
func TestExtensionRequestProblem(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		attrs [][]byte
		want  string // "" for none
	}{
		{"one value", [][]byte{pkitest.ExtensionRequestOfSANs(t, "a.example")}, ""},
		{"no attribute", nil, ""},
		{"two values", [][]byte{pkitest.ExtensionRequestOfSANs(t, "a.example", "c.example")},
			"its extensionRequest attribute holds 2 values, and PKCS #9 (RFC 2985) allows exactly one"},
		{"three values", [][]byte{pkitest.ExtensionRequestOfSANs(t, "a.example", "b.example", "c.example")}, "holds 3 values"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := x509.ParseCertificateRequest(pkitest.SignedCSR(t, key, "x", tc.attrs...))
			if err != nil {
				t.Fatal(err)
			}
			if err := req.CheckSignature(); err != nil {
				t.Fatal(err)
			}
			got := csr.ExtensionRequestProblem(req)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("%q, want %q", got, tc.want)
			}
		})
	}
}

// r128: a subjectAltName sent in Microsoft's extension-request attribute
// (szOID_CERT_EXTENSIONS, as Windows' certreq sends it) is read as
// extensionRequest's is, where crypto/x509 left it out unsaid; the
// attribute is held to extensionRequest's rules (one value), and the two
// attributes asking for one extension differently are refused naming both.
func TestMicrosoftExtensions(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ms, pkcs9 := pkitest.MicrosoftExtensionRequestOfSANs, pkitest.ExtensionRequestOfSANs
	for _, tc := range []struct {
		name     string
		attrs    [][]byte
		want     string   // the problem, "" for none
		wantDNS  []string // the names read, when there is no problem
		wantExts int
	}{
		{"Microsoft's alone", [][]byte{ms(t, "a.example")}, "", []string{"a.example"}, 1},
		{"Microsoft's, then PKCS #9's, alike", [][]byte{ms(t, "a.example"), pkcs9(t, "a.example")}, "", []string{"a.example"}, 1},
		{"PKCS #9's alone", [][]byte{pkcs9(t, "a.example")}, "", []string{"a.example"}, 1},
		{"neither", nil, "", nil, 0},
		{"Microsoft's with no extension", [][]byte{ms(t, "")}, "", nil, 0},
		{"Microsoft's with no extension beside PKCS #9's", [][]byte{ms(t, ""), pkcs9(t, "b.example")}, "", []string{"b.example"}, 1},
		{"Microsoft's two values", [][]byte{ms(t, "a.example", "b.example")},
			"its Microsoft extension-request attribute (1.3.6.1.4.1.311.2.1.14) holds 2 values, and it allows exactly one", nil, 0},
		{"the two disagree", [][]byte{pkcs9(t, "a.example"), ms(t, "b.example")},
			"its extensionRequest attribute and its Microsoft extension-request attribute (1.3.6.1.4.1.311.2.1.14) ask for extension subjectAltName (2.5.29.17) differently", nil, 0},
		{"two of Microsoft's disagree", [][]byte{ms(t, "a.example"), ms(t, "b.example")},
			"its Microsoft extension-request attribute (1.3.6.1.4.1.311.2.1.14) asks for extension subjectAltName (2.5.29.17) twice, differently: ask for it once", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := x509.ParseCertificateRequest(pkitest.SignedCSR(t, key, "x", tc.attrs...))
			if err != nil {
				t.Fatal(err)
			}
			got := csr.MicrosoftExtensions(req)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("%q, want %q", got, tc.want)
			}
			if got != "" {
				return
			}
			if strings.Join(req.DNSNames, ",") != strings.Join(tc.wantDNS, ",") || len(req.Extensions) != tc.wantExts {
				t.Errorf("DNS names %q, %d extensions; want %q, %d", req.DNSNames, len(req.Extensions), tc.wantDNS, tc.wantExts)
			}
			// The request as sent still verifies: nothing of it was rewritten.
			if err := req.CheckSignature(); err != nil {
				t.Error(err)
			}
			if sans, err := csr.UnissuedSANs(req); err != nil || len(sans) != 0 {
				t.Errorf("UnissuedSANs: %q, %v", sans, err)
			}
		})
	}
}
