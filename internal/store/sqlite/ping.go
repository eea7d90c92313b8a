package sqlite

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/scepter/scepter/internal/store"
)

// Ping implements store.Store: one read of a real table on the reader
// pool, so it fails when the database cannot be read (the pools closed,
// the file gone bad), and never waits behind the writer. It also fails
// when the database file was removed or replaced under the server (see
// checkFile), which every read would go on answering from the old file.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.checkFile(); err != nil {
		return err
	}
	var n int64
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM audit_head`).Scan(&n); err != nil {
		return markUnavailable(fmt.Errorf("sqlite: ping: %w", err))
	}
	return nil
}

// CanWrite implements store.Store. Ping only reads, and a store whose
// reads go on can still refuse every write: a full disk, a lock another
// process holds, a read-only file system. So readiness asks this too, and
// answers from what is cheapest and says most:
//
//   - the writes since the previous call: when one of them failed for a
//     cause that outlasts the request (store.CannotWriteCause), the probe
//     below says whether that cause is over (a lock another process has
//     released since), and the write's error is the answer while it is
//     not; else when one committed, it can (no probe under load);
//   - else (no write since, or one that failed for its own reasons), a
//     probe: a transaction on a connection of its own that takes the write
//     lock, inserts and deletes one row, and commits, fsync'd. It commits
//     nothing lasting, but writes to the log and syncs it as every write
//     does, so a disk with no room for the log to grow fails it, and it
//     waits for the lock only probeWait, so a database another process
//     holds is told within the check's time.
//
// A probe writes a page or two, a certificate a few dozen: on a disk with
// room for one but not the other, the small probe would pass while every
// enrollment failed, and a node that a load balancer took out (and so gets
// no writes) would flap back in. So once a write or the probe failed for a
// full disk, the probe writes fullDiskProbeBytes more, committed apart,
// until that commits; a commit meanwhile does not end it (the search
// indexer's small writes fit where a certificate does not). Callers
// (health.Checker) call it at most every few seconds.
func (s *Store) CanWrite(ctx context.Context) error {
	if err := s.checkFile(); err != nil {
		return err
	}
	seen, err := s.writes.take()
	if seen && err != nil {
		s.latchDiskFull(err)
		if !s.diskWasFull.Load() {
			// The failure may be seconds old and its cause over (another
			// process's lock released): asked now, the store says (r142 D1:
			// /readyz failed 24 s after the lock was gone). The write's
			// own error names the cause best while it lasts.
			if perr := s.probeWrite(ctx); perr != nil {
				return err
			}
			return nil
		}
	}
	// After a full disk a commit since says little: the search indexer's
	// small background writes fit where a certificate does not.
	if s.diskWasFull.Load() {
		if err := s.probeRoom(ctx); err != nil {
			return err
		}
		s.diskWasFull.Store(false)
	}
	if seen {
		return nil
	}
	err = s.probeWrite(ctx)
	s.latchDiskFull(err)
	return err
}

// latchDiskFull remembers a write that failed for a full disk, so that
// CanWrite wants room for an issuance before it passes again.
func (s *Store) latchDiskFull(err error) {
	if errors.Is(err, store.ErrDiskFull) {
		s.diskWasFull.Store(true)
	}
}

// fullDiskProbeBytes is how much the probe writes after a full disk: more
// than an issuance's log frames (a few dozen pages), so that a disk with
// room for the small probe alone does not pass for one that can issue.
const fullDiskProbeBytes = 256 << 10

// probeRoom writes fullDiskProbeBytes in one committed transaction and
// removes them in another, so the log must really grow by as much; a full
// disk fails it with store.ErrDiskFull.
func (s *Store) probeRoom(ctx context.Context) error {
	conn, err := s.probe.Conn(ctx)
	if err != nil {
		return markUnavailable(fmt.Errorf("sqlite: write probe: %w", err))
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`PRAGMA busy_timeout = %d`, s.probeWait.Milliseconds())); err != nil {
		return markUnavailable(fmt.Errorf("sqlite: write probe: %w", err))
	}
	// expires_at -1: no real row has it (they expire in the future), so
	// the delete never meets one whatever its transaction ID.
	_, err = conn.ExecContext(ctx, `INSERT INTO nonces (transaction_id, sender_nonce, expires_at) VALUES (?, zeroblob(?), -1)`,
		probeTransactionID, fullDiskProbeBytes)
	if _, derr := conn.ExecContext(ctx, `DELETE FROM nonces WHERE transaction_id = ? AND expires_at = -1`, probeTransactionID); err == nil {
		err = derr
	}
	if err != nil {
		return markUnavailable(fmt.Errorf("sqlite: write probe (%d KiB after a full disk): %w", fullDiskProbeBytes>>10, err))
	}
	return nil
}

// defaultProbeWait is how long the write probe waits for the write lock:
// far longer than any batch of this process holds it, well within the
// readiness checks' time.
const defaultProbeWait = time.Second

// probeTransactionID names the probe's row in nonces, whose sender nonce
// is empty: a real one never is, so the probe never meets a real row.
const probeTransactionID = "scepter write probe"

// openProbe opens the write probe's connection.
func (s *Store) openProbe(ctx context.Context) error {
	db, err := openOwnConn(ctx, s.path)
	if err != nil {
		return err
	}
	s.probe, s.probeWait = db, defaultProbeWait
	return nil
}

// probeWrite runs the write probe (see CanWrite).
func (s *Store) probeWrite(ctx context.Context) error {
	conn, err := s.probe.Conn(ctx)
	if err != nil {
		return markUnavailable(fmt.Errorf("sqlite: write probe: %w", err))
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`PRAGMA busy_timeout = %d`, s.probeWait.Milliseconds())); err != nil {
		return markUnavailable(fmt.Errorf("sqlite: write probe: %w", err))
	}
	tx, err := conn.BeginTx(ctx, nil) // BEGIN IMMEDIATE: takes the write lock
	if err != nil {
		return markUnavailable(fmt.Errorf("sqlite: write probe: begin: %w", err))
	}
	for _, q := range []string{
		`INSERT INTO nonces (transaction_id, sender_nonce, expires_at) VALUES (?, x'', 0)`,
		`DELETE FROM nonces WHERE transaction_id = ? AND sender_nonce = x''`,
	} {
		if _, err := tx.ExecContext(ctx, q, probeTransactionID); err != nil {
			_ = tx.Rollback()
			return markUnavailable(fmt.Errorf("sqlite: write probe: %w", err))
		}
	}
	if err := tx.Commit(); err != nil {
		return markUnavailable(fmt.Errorf("sqlite: write probe: commit: %w", err))
	}
	s.kickCheckpointer()
	return nil
}

// writeOutcome is what the writes since CanWrite last took it say: one
// failed because the store cannot write, or one committed.
type writeOutcome struct {
	mu        sync.Mutex
	failed    error // the latest failure that names a cause, since the last take
	committed bool  // a write committed since the last take
}

// note records a write's outcome. A failure of the request's own (a
// conflict, a challenge used) says nothing about the store, so only a
// commit or a failure of store.CannotWriteCause counts.
func (o *writeOutcome) note(err error) {
	if err != nil && store.CannotWriteCause(err) == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil {
		o.failed = err
	} else {
		o.committed = true
	}
}

// take returns what the writes since the previous take say, and whether
// they said anything. A failure outweighs commits beside it: a disk with
// room for a small write but not a certificate fails the enrollments.
func (o *writeOutcome) take() (seen bool, failed error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	seen, failed = o.failed != nil || o.committed, o.failed
	o.failed, o.committed = nil, false
	return seen, failed
}
