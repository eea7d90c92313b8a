package postgres

import (
	"bytes"
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// An older server still issuing into the store after a newer node had
// migrated it records certificates with no key_hash, after the one-time
// backfill ran. Every Open fills them in, and those of a key revoked as
// compromised meanwhile are revoked as that revocation would have, with
// its time, actor and audit events (r115 D2).
func TestOpenFillsKeyHashesWrittenWithout(t *testing.T) {
	ctx := context.Background()
	s, dbURL := openFresh(t)
	derA, keyA := testKeyCert(t)
	derB, keyB := testKeyCert(t)
	const n = 23
	// Row i is of key A, B, or none, as i%3 is 0, 1 or 2; no key_hash.
	if _, err := s.pool.Exec(ctx, `INSERT INTO certificates (issuer_id, serial_hex, subject_dn, not_before, not_after,
		status, created_at, der)
		SELECT 'issuer', to_hex(4096 + g), 'CN=old', 0, $1, 'valid', 0,
			CASE g % 3 WHEN 0 THEN $2::bytea WHEN 1 THEN $3::bytea ELSE '\x30'::bytea END
		FROM generate_series(0, $4 - 1) AS g ORDER BY g`,
		t0.Add(24*time.Hour).UnixMicro(), derA, derB, n); err != nil {
		t.Fatal(err)
	}
	// The new server's certificate of key B, revoked for keyCompromise:
	// its sweep passes over the rows above, which have no key hash.
	if _, err := s.pool.Exec(ctx, `INSERT INTO certificates (issuer_id, serial_hex, subject_dn, not_before, not_after, status, created_at, der, key_hash)
		VALUES ('issuer', 'ff00', 'CN=new', 0, $1, 'valid', 0, $2, $3)`, t0.Add(24*time.Hour).UnixMicro(), derB, keyB); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Revoke(ctx, "issuer", "ff00", store.ReasonKeyCompromise, t0, pki.AuditEvent{Type: pki.EventRevoked, Actor: "admin"}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err := Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range n {
		var got []byte
		serial := strconv.FormatInt(int64(4096+i), 16)
		if err := s.pool.QueryRow(ctx, `SELECT key_hash FROM certificates WHERE serial_hex = $1`, serial).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if want := [][]byte{keyA, keyB, nil}[i%3]; !bytes.Equal(got, want) {
			t.Errorf("certificate %s: key_hash %x, want %x", serial, got, want)
		}
	}
	var validB, sweptB, events int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'valid'),
		count(*) FILTER (WHERE status = 'revoked' AND revoke_reason = $1 AND revoked_at = $2 AND revoked_by = 'admin')
		FROM certificates WHERE key_hash = $3 AND serial_hex <> 'ff00'`, store.ReasonKeyCompromise, t0.UnixMicro(), keyB).Scan(&validB, &sweptB); err != nil {
		t.Fatal(err)
	}
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE type = $1 AND actor = 'admin' AND detail LIKE '%key hash filled in%'`,
		pki.EventRevoked).Scan(&events); err != nil {
		t.Fatal(err)
	}
	ofB := (n + 1) / 3
	if validB != 0 || sweptB != ofB {
		t.Errorf("key B's certificates recorded without a key hash: %d valid, %d revoked for keyCompromise at its time by its actor; want 0 and %d", validB, sweptB, ofB)
	}
	if events != ofB {
		t.Errorf("%d audit events of the swept certificates, want %d", events, ofB)
	}
}
