package storetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// keyCert is a certificate of a new key, self-signed, with its key's
// KeyHash as a CSR of that key gives it.
func keyCert(t *testing.T) (der, keyHash []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kcdev"},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour)}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return der, store.KeyHash(spki)
}

// testCompromisedKeys: a revocation for keyCompromise, and only that,
// records the certificate's key, in its transaction; the first record of
// a key stays.
func testCompromisedKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	derA, keyA := keyCert(t)
	derB, keyB := keyCert(t)
	derC, keyC := keyCert(t)
	derD, keyD := keyCert(t)
	certOf := func(serial string, der []byte) pki.Certificate {
		c := newCert(issuerA, serial, t0.Add(time.Hour))
		c.DER = der
		return c
	}
	for _, c := range []pki.Certificate{certOf("c0", derA), certOf("c1", derA), certOf("c2", derB),
		certOf("c3", derC), newCert(issuerA, "c4", t0.Add(time.Hour))} {
		mustRecord(t, s, issuance(c))
	}
	// Recorded revoked for keyCompromise already (an import).
	imported := certOf("c5", derD)
	imported.Status, imported.RevokedAt, imported.RevokeReason = pki.StatusRevoked, t0.Add(-time.Minute), 1
	mustRecord(t, s, issuance(imported))

	at := t0.Add(10 * time.Minute)
	revoke := func(serial string, reason int, at time.Time) {
		t.Helper()
		if _, _, err := s.RevokeCertificate(ctx, issuerA, serial, reason, at, pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
			t.Fatalf("revoke %s: %v", serial, err)
		}
	}
	if _, err := s.CompromisedKey(ctx, keyA); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a key no revocation named: %v, want ErrNotFound", err)
	}
	revoke("c0", 1, at)
	revoke("c1", 1, at.Add(time.Hour)) // the same key again: the first record stays
	revoke("c2", 4, at)                // superseded: the key is not compromised
	revoke("c3", 6, at)                // on hold, then made permanent for keyCompromise
	revoke("c3", 1, at.Add(time.Hour))
	revoke("c4", 1, at) // a DER without a key: revoked all the same

	steps := []struct {
		name   string
		hash   []byte
		want   error
		serial string
		at     time.Time
	}{
		{"revoked for keyCompromise", keyA, nil, "c0", at},
		{"revoked for another reason", keyB, store.ErrNotFound, "", time.Time{}},
		{"hold made permanent keeps the hold's time", keyC, nil, "c3", at},
		{"recorded revoked for keyCompromise", keyD, nil, "c5", t0.Add(-time.Minute)},
		{"unknown", make([]byte, 32), store.ErrNotFound, "", time.Time{}},
	}
	for _, st := range steps {
		got, err := s.CompromisedKey(ctx, st.hash)
		wantErr(t, st.name, err, st.want)
		if st.want != nil || err != nil {
			continue
		}
		if string(got.KeyHash) != string(st.hash) || got.IssuerID != issuerA || got.SerialHex != st.serial || !got.RevokedAt.Equal(normTime(st.at)) {
			t.Errorf("%s: %+v, want %s/%s revoked at %v", st.name, got, issuerA, st.serial, st.at)
		}
	}
	if c, err := s.Certificate(ctx, issuerA, "c4"); err != nil || c.Status != pki.StatusRevoked || c.RevokeReason != 1 {
		t.Errorf("c4: %+v, %v; want revoked for keyCompromise", c, err)
	}
}
