package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/store"
)

// CanWrite fails, naming the cause, while the store reads but cannot
// write (Ping passes throughout), and passes again by itself once it can:
// a full database (SQLite's max_page_count gives the SQLITE_FULL of a full
// disk) and a write lock held by another connection, as an sqlite3 shell
// in BEGIN EXCLUSIVE holds it. Its probe leaves no row and no audit event.
func TestCanWriteNamesWhyTheStoreCannotWrite(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// block makes writes fail and returns what lets them through again.
		block func(t *testing.T, s *Store) (unblock func())
		want  error
	}{
		{"disk full", fillDatabase, store.ErrDiskFull},
		{"locked by another process", holdWriteLock, store.ErrLocked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTemp(t)
			s.probeWait = 20 * time.Millisecond
			if err := s.CanWrite(ctx); err != nil {
				t.Fatalf("CanWrite on a new store: %v", err)
			}
			events := countRows(t, s, "audit_events")

			unblock := tt.block(t, s)
			err := s.CanWrite(ctx)
			if !errors.Is(err, tt.want) || !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("CanWrite while blocked: %v, want %v and store.ErrUnavailable", err, tt.want)
			}
			if err := s.Ping(ctx); err != nil {
				t.Fatalf("Ping while blocked: %v (reads go on)", err)
			}
			// No write since: the probe answers, and still fails.
			if err := s.CanWrite(ctx); !errors.Is(err, tt.want) {
				t.Fatalf("CanWrite again while blocked: %v, want %v", err, tt.want)
			}

			unblock()
			// No write since either: the probe sees the store writes again.
			if err := s.CanWrite(ctx); err != nil {
				t.Fatalf("CanWrite once writes go through: %v", err)
			}
			if n, e := countRows(t, s, "nonces WHERE transaction_id = '"+probeTransactionID+"'"), countRows(t, s, "audit_events"); n != 0 || e != events {
				t.Errorf("the probes left rows: %d nonces, audit events %d → %d", n, events, e)
			}
		})
	}
}

// A write that committed since the last call answers CanWrite without a
// probe; a failure of the request's own (a conflict) is no sign.
func TestCanWriteAnswersFromTheWritesSince(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	if err := s.RecordIssuance(ctx, store.Issuance{Certificate: testCert("01"), Now: t0}); err != nil {
		t.Fatal(err)
	}
	// The probe would fail at once: only the write's outcome can answer.
	unblock := holdWriteLock(t, s)
	s.probeWait = 0
	if err := s.CanWrite(ctx); err != nil {
		t.Fatalf("CanWrite after a write that committed: %v", err)
	}
	if err := s.CanWrite(ctx); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("CanWrite with no write since, the lock held: %v, want store.ErrLocked", err)
	}
	unblock()
	// The probe waits for the lock again, as serve's does: the search
	// index, held back by the lock too, may take it for a moment now, and
	// a probe that waited for nothing failed on it (CI117, 1 run).
	s.probeWait = defaultProbeWait
	if err := s.RecordIssuance(ctx, store.Issuance{Certificate: testCert("01"), Now: t0}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("the same certificate twice: %v, want ErrConflict", err)
	}
	if err := s.CanWrite(ctx); err != nil {
		t.Fatalf("CanWrite after a conflict: %v", err)
	}
}

// fillDatabase holds the database at its size and writes until a write
// does not fit.
func fillDatabase(t *testing.T, s *Store) func() {
	t.Helper()
	ctx := context.Background()
	var pages int
	if err := s.w.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	// On both writing connections: the probe's too.
	for _, db := range []*sql.DB{s.w, s.probe} {
		if _, err := db.ExecContext(ctx, fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
			t.Fatal(err)
		}
	}
	var full error
	for i := 0; i < 1000 && full == nil; i++ {
		c := testCert(fmt.Sprintf("f%04x", i))
		c.DER = make([]byte, 2000)
		full = s.RecordIssuance(ctx, store.Issuance{Certificate: c, Now: t0})
	}
	if !errors.Is(full, store.ErrDiskFull) {
		t.Fatalf("filling the database: %v, want store.ErrDiskFull", full)
	}
	// The probe's row must need a page of its own to fail: fill the
	// nonces' pages too, on the probe's connection.
	i := 0
	for _, size := range []int{500, 100, 10, 1} {
		for ; ; i++ {
			_, err := s.probe.ExecContext(ctx, `INSERT INTO nonces (transaction_id, sender_nonce, expires_at) VALUES (?, randomblob(?), 1)`, fmt.Sprintf("fill-%d", i), size)
			if err != nil {
				break
			}
		}
	}
	return func() {
		for _, db := range []*sql.DB{s.w, s.probe} {
			if _, err := db.ExecContext(ctx, `PRAGMA max_page_count = 1073741823`); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// holdWriteLock takes the database's write lock on a connection of its
// own, as another process would, until the returned func is called.
func holdWriteLock(t *testing.T, s *Store) func() {
	t.Helper()
	ctx := context.Background()
	other, err := sql.Open("sqlite", dsn(s.path, false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	tx, err := other.BeginTx(ctx, nil) // BEGIN IMMEDIATE
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM nonces WHERE 0`); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
	}
}

func countRows(t *testing.T, s *Store, table string) int {
	t.Helper()
	var n int
	if err := s.r.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// After a write failed for a full disk, a disk with room for the small
// probe alone (a page or two) is still full for an issuance: CanWrite
// stays failed until the probe finds room for fullDiskProbeBytes, so a node
// a load balancer took out does not flap back in (r61).
func TestCanWriteAfterAFullDiskWantsRoomForAnIssuance(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	s.probeWait = 20 * time.Millisecond
	unblock := fillDatabase(t, s)
	if err := s.CanWrite(ctx); !errors.Is(err, store.ErrDiskFull) {
		t.Fatalf("CanWrite on the full disk: %v, want store.ErrDiskFull", err)
	}
	var pages int
	if err := s.w.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	// Room for a few pages: the small probe would pass.
	for _, db := range []*sql.DB{s.w, s.probe} {
		if _, err := db.ExecContext(ctx, fmt.Sprintf(`PRAGMA max_page_count = %d`, pages+4)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		// A small write that commits meanwhile (the search indexer's)
		// proves no room for an issuance.
		s.writes.note(nil)
		if err := s.CanWrite(ctx); !errors.Is(err, store.ErrDiskFull) {
			t.Fatalf("CanWrite %d with room for a few pages only: %v, want store.ErrDiskFull", i, err)
		}
	}
	unblock()
	if err := s.CanWrite(ctx); err != nil {
		t.Fatalf("CanWrite with room again: %v", err)
	}
	if n := countRows(t, s, "nonces WHERE transaction_id = '"+probeTransactionID+"'"); n != 0 {
		t.Errorf("the probes left %d rows", n)
	}
	// Unlatched: the small probe answers again.
	if s.diskWasFull.Load() {
		t.Error("still taken for a full disk after the probe found room")
	}
}

// A write that failed since the last call fails CanWrite only while its
// cause lasts: once another process's lock is gone, CanWrite passes at
// once, where it answered from the failure however old it was (r142 D1:
// /readyz failed 24 s after the lock was released).
func TestCanWriteAfterAFailedWriteAsksWhetherItIsOver(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	s.probeWait = 20 * time.Millisecond
	unblock := holdWriteLock(t, s)
	failed := s.probeWrite(ctx) // the failure a write meets under the lock
	if !errors.Is(failed, store.ErrLocked) {
		t.Fatalf("a write under another's lock: %v, want store.ErrLocked", failed)
	}
	s.writes.note(failed)
	if err := s.CanWrite(ctx); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("CanWrite while the lock is held: %v, want store.ErrLocked", err)
	}
	s.writes.note(failed)
	unblock()
	s.probeWait = defaultProbeWait
	if err := s.CanWrite(ctx); err != nil {
		t.Fatalf("CanWrite once the lock is gone, a failed write since: %v", err)
	}
}
