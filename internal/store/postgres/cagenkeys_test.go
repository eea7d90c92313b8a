package postgres

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// TestCAGenerationKeysBackfill: CA generations recorded without key_hash
// (before schema version 29, or by a node of version 28 while the first
// new node migrated; made here by writing the rows as such a node did)
// have their keys hashed by the next Open, so an issuance of the next
// CA's key to a client is refused by the store, not only once the node's
// CA knows it; a DER without a key stays NULL.
func TestCAGenerationKeysBackfill(t *testing.T) {
	ctx := context.Background()
	s, dbURL := openFresh(t)
	derCur, keyCur := testKeyCert(t)
	derNext, keyNext := testKeyCert(t)
	for _, g := range []struct {
		id       string
		der      []byte
		switchAt int64
	}{{"cur", derCur, 0}, {"next", derNext, t0.UnixMicro() + 1}, {"nokey", []byte("no key"), t0.UnixMicro() + 2}} {
		if _, err := s.pool.Exec(ctx, `INSERT INTO ca_generations
			(issuer_id, root_fingerprint, issuer_der, switch_at, published_at, published_by)
			VALUES ($1, 'sha256:r', $2, $3, 0, 'node-a')`, g.id, g.der, g.switchAt); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	s, err := Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for id, want := range map[string][]byte{"cur": keyCur, "next": keyNext, "nokey": nil} {
		var got []byte
		if err := s.pool.QueryRow(ctx, `SELECT key_hash FROM ca_generations WHERE issuer_id = $1`, id).Scan(&got); err != nil || !bytes.Equal(got, want) {
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
