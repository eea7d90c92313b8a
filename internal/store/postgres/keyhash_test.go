package postgres

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

// TestKeyHashBackfill: certificates recorded before schema version 21
// (made here by writing the rows as an older binary did, and the row 0021
// leaves), more than two batches of them, have their keys hashed by the
// next Open (a DER without a key stays NULL); a revocation for
// keyCompromise then finds the key's older certificates too.
func TestKeyHashBackfill(t *testing.T) {
	ctx := context.Background()
	s, dbURL := openFresh(t)
	derA, keyA := testKeyCert(t)
	derB, keyB := testKeyCert(t)
	n := 2*sqlstore.KeyHashBatch + 3
	// Row i is of key A, B, or none, as i%3 is 0, 1 or 2.
	if _, err := s.pool.Exec(ctx, `INSERT INTO certificates (issuer_id, serial_hex, subject_dn, not_before, not_after,
		status, created_at, der)
		SELECT 'issuer', to_hex(4096 + g), 'CN=old', 0, $1, 'valid', 0,
			CASE g % 3 WHEN 0 THEN $2::bytea WHEN 1 THEN $3::bytea ELSE '\x30'::bytea END
		FROM generate_series(0, $4 - 1) AS g ORDER BY g`,
		t0.Add(24*time.Hour).UnixMicro(), derA, derB, n); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO certificates_key_hash_backfill (done_upto, upto)
		SELECT 0, MAX(id) FROM certificates`); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err := Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rows, err := s.pool.Query(ctx, `SELECT serial_hex, key_hash FROM certificates ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	seen, ofB, newestB := 0, 0, ""
	for rows.Next() {
		var serial string
		var got []byte
		if err := rows.Scan(&serial, &got); err != nil {
			t.Fatal(err)
		}
		want := [][]byte{keyA, keyB, nil}[seen%3]
		if !bytes.Equal(got, want) {
			t.Errorf("certificate %s: key_hash %x, want %x", serial, got, want)
		}
		if seen%3 == 1 {
			ofB, newestB = ofB+1, serial
		}
		seen++
	}
	rows.Close()
	if err := rows.Err(); err != nil || seen != n {
		t.Fatalf("%d certificates, %v; want %d", seen, err, n)
	}
	var left int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM certificates_key_hash_backfill`).Scan(&left); err != nil || left != 0 {
		t.Errorf("backfill rows left: %d, %v; want none", left, err)
	}

	r, err := s.Revoke(ctx, "issuer", newestB, store.ReasonKeyCompromise, t0, pki.AuditEvent{Type: pki.EventRevoked})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.AlsoRevoked) != ofB-1 {
		t.Errorf("also revoked %d certificates, want the %d others of key B", len(r.AlsoRevoked), ofB-1)
	}
}
