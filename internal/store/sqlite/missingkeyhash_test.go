package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// An older server still issuing into the store after the new one had
// migrated it (no serve.lock before 2026-12-04) records certificates with
// no key_hash, after the one-time backfill ran. Every Open fills them in,
// and those of a key revoked as compromised meanwhile are revoked as that
// revocation would have, with its time, actor and audit events (r115 D2).
func TestOpenFillsKeyHashesWrittenWithout(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scepter.db")
	s, err := openKeyHashBatch(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	derA, keyA := testKeyCert(t)
	derB, keyB := testKeyCert(t)
	n := 2*testKeyHashBatch + 3
	insertOld(t, s.w, n, derA, derB)
	// The new server's certificate of key B, revoked for keyCompromise:
	// its sweep passes over the rows the old server wrote, which
	// have no key hash.
	if _, err := s.w.Exec(`INSERT INTO certificates (issuer_id, serial_hex, subject_dn, not_before, not_after, status, created_at, der, key_hash)
		VALUES ('issuer', 'ff00', 'CN=new', 0, ?, 'valid', 0, ?, ?)`, t0.Add(24*time.Hour).UnixMicro(), derB, keyB); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Revoke(ctx, "issuer", "ff00", store.ReasonKeyCompromise, t0, pki.AuditEvent{Type: pki.EventRevoked, Actor: "admin"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = openKeyHashBatch(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkKeyHashesFrom(t, s.w, n, keyA, keyB)
	var validB, sweptB, events int
	if err := s.w.QueryRow(`SELECT count(*) FILTER (WHERE status = 'valid'),
		count(*) FILTER (WHERE status = 'revoked' AND revoke_reason = ? AND revoked_at = ? AND revoked_by = 'admin')
		FROM certificates WHERE key_hash = ? AND serial_hex != 'ff00'`, store.ReasonKeyCompromise, t0.UnixMicro(), keyB).Scan(&validB, &sweptB); err != nil {
		t.Fatal(err)
	}
	if err := s.w.QueryRow(`SELECT count(*) FROM audit_events WHERE type = ? AND actor = 'admin' AND detail LIKE '%key hash filled in%'`,
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
	if _, err := s.Revoke(ctx, "issuer", serialOf(0), store.ReasonKeyCompromise, t0, pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
		t.Fatal(err)
	}
	var validA int
	if err := s.w.QueryRow(`SELECT count(*) FROM certificates WHERE key_hash = ? AND status = 'valid'`, keyA).Scan(&validA); err != nil || validA != 0 {
		t.Errorf("after a keyCompromise revocation of key A: %d of its certificates valid (%v), want none", validA, err)
	}
}

// checkKeyHashesFrom is checkKeyHashes for the rows insertOld made after
// others (their serials from serialOf(0)).
func checkKeyHashesFrom(t *testing.T, db *sql.DB, n int, keyA, keyB []byte) {
	t.Helper()
	for i := range n {
		var got []byte
		if err := db.QueryRow(`SELECT key_hash FROM certificates WHERE issuer_id = 'issuer' AND serial_hex = ?`, serialOf(i)).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if want := [][]byte{keyA, keyB, nil}[i%3]; string(got) != string(want) {
			t.Errorf("certificate %s: key_hash %x, want %x", serialOf(i), got, want)
		}
	}
}
