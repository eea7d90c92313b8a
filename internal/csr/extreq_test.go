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
