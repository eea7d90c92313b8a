package postgres

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

	"github.com/scepter/scepter/internal/store"
)

// TestCompromisedKeysBackfill: certificates revoked for keyCompromise
// before schema version 20 (made here by writing the rows as an older
// binary did, and the pending row 0020 leaves) have their keys recorded
// by the next Open, earliest revocation first, and only once.
func TestCompromisedKeysBackfill(t *testing.T) {
	ctx := context.Background()
	s, dbURL := openFresh(t)
	derA, keyA := testKeyCert(t)
	derB, keyB := testKeyCert(t)
	for _, c := range []struct {
		serial    string
		der       []byte
		revokedAt int64
		reason    int
	}{
		{"01", derA, 200, 1},
		{"02", derA, 100, 1}, // the same key, revoked earlier: its record is kept
		{"03", derB, 100, 4},
		{"04", []byte{0x30}, 100, 1}, // no key in it: skipped
	} {
		cert := testCert(c.serial)
		cert.DER = c.der
		if err := s.RecordIssuance(ctx, store.Issuance{Certificate: cert, Now: t0}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.pool.Exec(ctx, `UPDATE certificates SET status = 'revoked', revoked_at = $1, revoke_reason = $2
			WHERE serial_hex = $3`, c.revokedAt, c.reason, c.serial); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO compromised_keys_backfill (pending) VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err := Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.CompromisedKey(ctx, keyA)
	if err != nil || got.SerialHex != "02" || got.IssuerID != "issuer" || got.RevokedAt.UnixMicro() != 100 {
		t.Errorf("key of 01 and 02 after the upgrade: %+v, %v; want 02's record", got, err)
	}
	if _, err := s.CompromisedKey(ctx, keyB); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("key of a superseded certificate: %v, want ErrNotFound", err)
	}
	// Done once: a record removed by hand is not put back by the next Open.
	if _, err := s.pool.Exec(ctx, `DELETE FROM compromised_keys`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CompromisedKey(ctx, keyA); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the second Open backfilled again: %v", err)
	}
}

// testKeyCert is a self-signed certificate of a new key, and the key's
// store.KeyHash.
func testKeyCert(t *testing.T) (der, keyHash []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kcdev"},
		NotBefore: t0, NotAfter: t0.Add(time.Hour)}
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
