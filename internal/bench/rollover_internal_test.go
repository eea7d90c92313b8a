package bench

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"testing"
	"time"
)

func testCert(t *testing.T, cn string, ca bool, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA: ca, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature}
	if ca {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	if parent == nil {
		parent, parentKey = tmpl, k
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, k.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

// A rollover that switches while the tool runs: certificates of the new
// issuing CA, which chains to the root known from the start, are good once
// the CA certificates are fetched again; an issuer chaining elsewhere stays
// refused, and the servers are asked once per unknown issuer, not per
// certificate.
func TestVerifierLearnsTheNextIssuingCA(t *testing.T) {
	root, rootKey := testCert(t, "root", true, nil, nil)
	oldCA, _ := testCert(t, "issuing 1", true, root, rootKey)
	newCA, newKey := testCert(t, "issuing 2", true, root, rootKey)
	otherRoot, otherKey := testCert(t, "other root", true, nil, nil)
	rogue, rogueKey := testCert(t, "issuing 2", true, otherRoot, otherKey)
	fetches := 0
	tg := &target{caCerts: []*x509.Certificate{oldCA, root}, fetchCA: func(context.Context) ([]*x509.Certificate, error) {
		fetches++
		return []*x509.Certificate{newCA, root, rogue}, nil
	}}
	now := func() time.Time { return time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC) }
	v, err := newVerifier([]*target{tg}, now)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		leaf, _ := testCert(t, "device", false, newCA, newKey)
		id, err := v.check(leaf, leaf.RawSubjectPublicKeyInfo)
		if err != nil {
			t.Fatalf("certificate %d of the new issuing CA: %v", i, err)
		}
		if want := issuerIDOf(newCA); id != want {
			t.Errorf("issuer ID %s, want %s", id, want)
		}
	}
	leaf, _ := testCert(t, "device", false, rogue, rogueKey)
	if _, err := v.check(leaf, leaf.RawSubjectPublicKeyInfo); err == nil {
		t.Error("a certificate of an issuing CA under another root was accepted")
	}
	if fetches != 1 {
		t.Errorf("the CA certificates were fetched %d times, want once", fetches)
	}
}

func issuerIDOf(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}
