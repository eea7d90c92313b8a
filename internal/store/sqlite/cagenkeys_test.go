package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/migrate"
)

// TestCAGenerationKeysBackfill opens a database of schema version 28,
// whose CA generations have no key_hash (a current CA and a next one
// 'ca rollover' recorded before the upgrade): Open hashes their keys, so
// an issuance of the next CA's key to a client is refused by the store,
// not only once the server's CA knows it; a DER without a key stays NULL.
func TestCAGenerationKeysBackfill(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scepter.db")
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.Up(ctx, db, migrationsBefore(t, "0029"), dialect()); err != nil {
		t.Fatal(err)
	}
	derCur, keyCur := testKeyCert(t)
	derNext, keyNext := testKeyCert(t)
	for _, g := range []struct {
		id       string
		der      []byte
		switchAt int64
	}{{"cur", derCur, 0}, {"next", derNext, t0.UnixMicro() + 1}, {"nokey", []byte("no key"), t0.UnixMicro() + 2}} {
		if _, err := db.ExecContext(ctx, `INSERT INTO ca_generations
			(issuer_id, root_fingerprint, issuer_der, switch_at, published_at, published_by)
			VALUES (?, 'sha256:r', ?, ?, 0, 'node-a')`, g.id, g.der, g.switchAt); err != nil {
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
	defer s.Close()
	for id, want := range map[string][]byte{"cur": keyCur, "next": keyNext, "nokey": nil} {
		var got []byte
		if err := s.w.QueryRowContext(ctx, `SELECT key_hash FROM ca_generations WHERE issuer_id = ?`, id).Scan(&got); err != nil || !bytes.Equal(got, want) {
			t.Errorf("generation %s: key_hash %x, %v; want %x", id, got, err, want)
		}
	}
	c := testCert("0a")
	c.DER = derNext
	err = s.RecordIssuance(ctx, store.Issuance{Certificate: c, Now: t0, Events: []pki.AuditEvent{{Type: pki.EventIssued}}})
	var own *store.OwnKeyError
	if !errors.As(err, &own) || own.IssuerID != "next" {
		t.Errorf("issuing the next CA's key to a client: %v; want an *OwnKeyError naming issuing CA next", err)
	}
}
