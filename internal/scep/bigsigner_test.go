package scep

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/pki"
)

// A signer certificate with an RSA key over cms.MaxRSABits is refused
// (badAlg) before any arithmetic, and the client is told why: its key is
// too large, not that its algorithms are unsupported.
func TestOversizedRSASignerIsToldItsKeySize(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dev"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	certFor := func(pub crypto.PublicKey) *x509.Certificate {
		t.Helper()
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return cert
	}
	raw, err := cms.Sign([]byte("envelope"), certFor(key.Public()), key, []cms.Attribute{
		{Type: oidTransactionID, Values: []asn1.RawValue{printable("tx-1")}},
		{Type: oidSenderNonce, Values: []asn1.RawValue{octets(make([]byte, 16))}},
		{Type: oidMessageType, Values: []asn1.RawValue{printable(string(PKCSReq))}},
	}, cms.SignOptions{Digest: crypto.SHA256, SigningTime: now})
	if err != nil {
		t.Fatal(err)
	}
	for _, bits := range []int{cms.MaxRSABits + 1, 16384} {
		m, err := Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		// Only the modulus' size matters: the refusal comes before it is
		// used, so no key of that size need be made (nor could sign).
		n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
		n.Add(n, big.NewInt(1))
		m.SignerCert = certFor(&rsa.PublicKey{N: n, E: 65537})
		err = m.Verify()
		want := fmt.Sprintf("the signer's RSA key of %d bits exceeds the %d-bit maximum", bits, cms.MaxRSABits)
		if pki.ErrorCode(err) != pki.EBadAlg || pki.ErrorMessage(err) != want || !errors.Is(err, cms.ErrUnsupportedAlgorithm) {
			t.Errorf("%d-bit signer: %v (%q), want badAlg %q", bits, err, pki.ErrorMessage(err), want)
		}
	}
}
