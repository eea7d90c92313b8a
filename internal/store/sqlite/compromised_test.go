package sqlite

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"errors"
	"io/fs"
	"math/big"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/migrate"
)

// TestCompromisedKeysBackfill opens a database of schema version 18 whose
// certificates were revoked for keyCompromise before the keys were
// recorded: the first Open records them, earliest revocation first, and
// only once.
func TestCompromisedKeysBackfill(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scepter.db")
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	old := fstest.MapFS{}
	ms, err := fs.Glob(migrationFiles, "migrations/00*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if name := filepath.Base(m); name < "0019" {
			body, err := migrationFiles.ReadFile(m)
			if err != nil {
				t.Fatal(err)
			}
			old[name] = &fstest.MapFile{Data: body}
		}
	}
	if _, err := migrate.Up(ctx, db, old, dialect()); err != nil {
		t.Fatal(err)
	}
	derA, keyA := testKeyCert(t)
	derB, keyB := testKeyCert(t)
	derC, keyC := testKeyCert(t)
	for _, c := range []struct {
		serial    string
		der       []byte
		revokedAt int64
		reason    int
	}{
		{"01", derA, 200, 1},
		{"02", derA, 100, 1}, // the same key, revoked earlier: its record is kept
		{"03", derB, 100, 4},
		{"04", derC, 100, 6},
		{"05", []byte{0x30}, 100, 1}, // no key in it: skipped
	} {
		if _, err := db.Exec(`INSERT INTO certificates (issuer_id, serial_hex, subject_dn, not_before, not_after,
			status, revoked_at, revoke_reason, created_at, der) VALUES ('issuer', ?, 'CN=kcdev', 0, 1, 'revoked', ?, ?, 0, ?)`,
			c.serial, c.revokedAt, c.reason, c.der); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.CompromisedKey(ctx, keyA)
	if err != nil || got.SerialHex != "02" || got.IssuerID != "issuer" || got.RevokedAt.UnixMicro() != 100 {
		t.Errorf("key of 01 and 02 after the upgrade: %+v, %v; want 02's record", got, err)
	}
	for name, k := range map[string][]byte{"superseded": keyB, "on hold": keyC} {
		if _, err := s.CompromisedKey(ctx, k); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("key of a certificate %s: %v, want ErrNotFound", name, err)
		}
	}
	// Done once: a record removed by hand is not put back by the next Open.
	if _, err := s.w.Exec(`DELETE FROM compromised_keys`); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, path)
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
