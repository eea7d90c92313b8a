package csr_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/pkitest"
)

// r126 D2: a well-formed request with an EC key crypto/x509 does not read
// is refused as a key the profile does not take, naming its curve or
// explicit parameters; any other request is not this function's to name.
func TestUnreadableECKeyRefusal(t *testing.T) {
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	readable, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "p224"}}, p224)
	if err != nil {
		t.Fatal(err)
	}
	p256 := []string{"P-256", "P-384"}
	for _, tc := range []struct {
		name    string
		der     []byte
		allowed []string
		want    string // "" for none
	}{
		{"brainpoolP256r1", pkitest.CSRWithECParameters(t, "bp", pkitest.OIDBrainpoolP256r1), p256,
			"EC key on curve brainpoolP256r1 is not accepted by this profile (allowed: P-256, P-384)"},
		{"secp256k1", pkitest.CSRWithECParameters(t, "k1", pkitest.OIDSecp256k1), p256,
			"EC key on curve secp256k1 is not accepted by this profile (allowed: P-256, P-384)"},
		{"an unnamed curve", pkitest.CSRWithECParameters(t, "x", asn1.ObjectIdentifier{1, 2, 3, 4}), p256,
			"EC key on curve 1.2.3.4 is not accepted by this profile"},
		{"secp256k1 at an RSA profile", pkitest.CSRWithECParameters(t, "k1", pkitest.OIDSecp256k1), nil,
			"EC keys are not accepted by this profile (RSA only); this one is on curve secp256k1"},
		{"explicit parameters", pkitest.CSRWithECParameters(t, "ex", pkitest.ExplicitP256()), p256,
			"the EC key's curve is given by explicit parameters, which RFC 5480 (section 2.1.1) does not allow"},
		{"a curve crypto/x509 reads", readable, p256, ""},
		{"P-256's OID (refused for another reason)", pkitest.CSRWithECParameters(t, "p", asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}), p256, ""},
		{"trailing bytes", append(pkitest.CSRWithECParameters(t, "bp", pkitest.OIDBrainpoolP256r1), 0), p256, ""},
		{"no request", []byte{0x30, 0}, p256, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := csr.UnreadableECKeyRefusal(tc.der, tc.allowed)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("%q, want %q", got, tc.want)
			}
		})
	}
}
