package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
)

// A server whose transactions are read-only (a standby, or
// default_transaction_read_only) answers reads and refuses every write:
// CanWrite says so, and a write fails as unavailable naming the cause
// (503, not 500), while the same database opened writable passes.
func TestCanWriteOnAReadOnlyServer(t *testing.T) {
	ctx := context.Background()
	dbURL := migrated.Database(t)
	rw, err := Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rw.Close() })
	if err := rw.CanWrite(ctx); err != nil {
		t.Fatalf("CanWrite on a writable server: %v", err)
	}

	ro, err := Open(ctx, pgtest.WithParam(t, dbURL, "default_transaction_read_only", "on"), migrate.WithoutMigrating())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ro.Close() })
	if err := ro.Ping(ctx); err != nil {
		t.Fatalf("Ping on a read-only server: %v (reads go on)", err)
	}
	err = ro.CanWrite(ctx)
	if !errors.Is(err, store.ErrReadOnly) || !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("CanWrite on a read-only server: %v, want store.ErrReadOnly and store.ErrUnavailable", err)
	}
	err = ro.AppendAudit(ctx, pki.AuditEvent{Time: t0, Type: "x", Actor: "test", Outcome: "success"})
	if !errors.Is(err, store.ErrReadOnly) || pki.ErrorCode(err) != pki.EUnavailable {
		t.Fatalf("a write on a read-only server: %v (code %s), want store.ErrReadOnly, unavailable", err, pki.ErrorCode(err))
	}
}

// holdLock begins a transaction on a connection of its own to dbURL, runs
// lock in it, and returns the session's pid and a release that rolls it
// back (also run at the test's end).
func holdLock(t *testing.T, dbURL, lock string) (pid int64, release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `BEGIN`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, lock); err != nil {
		t.Fatalf("%s: %v", lock, err)
	}
	released := false
	release = func() {
		if released {
			return
		}
		released = true
		if _, err := conn.Exec(ctx, `ROLLBACK`); err != nil {
			t.Errorf("ROLLBACK: %v", err)
		}
		conn.Close(ctx)
	}
	t.Cleanup(release)
	return pid, release
}

// A lock another session holds that the writes of an issuance wait for
// (LOCK TABLE in psql, a migration, a session idle in a transaction that
// holds the audit trail's head) fails CanWrite within about a second,
// naming it, as store.ErrLocked; once it is released CanWrite passes. A
// lock that writes do not wait for (ACCESS SHARE, ROW SHARE) passes. The
// store has one connection: naming the holder needs no other.
func TestCanWriteSeesALockAnotherSessionHolds(t *testing.T) {
	ctx := context.Background()
	dbURL := migrated.Database(t)
	s, err := Open(ctx, pgtest.WithParam(t, dbURL, "pool_max_conns", "1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	tests := []struct {
		lock   string
		blocks bool
		names  string // what the error says of the holder, after its pid
	}{
		{`LOCK TABLE certificates IN ACCESS EXCLUSIVE MODE`, true, "holds AccessExclusiveLock on certificates"},
		{`LOCK TABLE serials IN SHARE MODE`, true, "holds ShareLock on serials"},
		{`LOCK TABLE audit_events IN EXCLUSIVE MODE`, true, "holds ExclusiveLock on audit_events"},
		{`LOCK TABLE nonces IN SHARE ROW EXCLUSIVE MODE`, true, "holds ShareRowExclusiveLock on nonces"},
		{`LOCK TABLE transaction_claims IN ACCESS EXCLUSIVE MODE`, true, "holds AccessExclusiveLock on transaction_claims"},
		{`SELECT 1 FROM audit_head FOR UPDATE`, true, ""},
		{`LOCK TABLE certificates IN ACCESS SHARE MODE`, false, ""},
		{`SELECT 1 FROM certificates FOR SHARE`, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.lock, func(t *testing.T) {
			pid, release := holdLock(t, dbURL, tt.lock)
			// Generous: the probe waits a second for each lock.
			probeCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			err := s.CanWrite(probeCtx)
			if !tt.blocks {
				if err != nil {
					t.Fatalf("CanWrite while another session holds %q: %v, want nil (writes do not wait for it)", tt.lock, err)
				}
				return
			}
			if !errors.Is(err, store.ErrLocked) || !errors.Is(err, store.ErrUnavailable) || probeCtx.Err() != nil {
				t.Fatalf("CanWrite while another session holds %q: %v, want store.ErrLocked and store.ErrUnavailable before the context ends", tt.lock, err)
			}
			if !strings.Contains(err.Error(), "a lock held by another session") {
				t.Errorf("CanWrite: %q does not say a lock held by another session", err)
			}
			if tt.names != "" && !strings.Contains(err.Error(), fmt.Sprintf("pid %d %s", pid, tt.names)) {
				t.Errorf("CanWrite: %q does not name the holder, pid %d %s", err, pid, tt.names)
			}
			release()
			if err := s.CanWrite(ctx); err != nil {
				t.Fatalf("CanWrite once the lock is released: %v", err)
			}
		})
	}
	// The probes left nothing behind.
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM nonces) + (SELECT count(*) FROM audit_events)`).Scan(&n); err != nil || n != 0 {
		t.Errorf("rows after the probes: %d (%v), want none", n, err)
	}
}

// A write that waits for a lock another session holds fails after the
// sessions' lock_timeout (DefaultLockTimeout unless the URL sets one) as
// store.ErrLocked, which the protocol edges answer with 503, rather than
// waiting until the request's context ends and naming nothing.
func TestWriteWaitingForALockFailsAsLocked(t *testing.T) {
	ctx := context.Background()
	dbURL := migrated.Database(t)
	for _, tt := range []struct{ url, want string }{
		{dbURL, "10s"},
		{pgtest.WithParam(t, dbURL, "lock_timeout", "300ms"), "300ms"},
	} {
		s, err := Open(ctx, tt.url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		var got string
		if err := s.pool.QueryRow(ctx, `SHOW lock_timeout`).Scan(&got); err != nil || got != tt.want {
			t.Fatalf("lock_timeout of a store opened with %s: %q (%v), want %q", Redact(tt.url), got, err, tt.want)
		}
	}

	s, err := Open(ctx, pgtest.WithParam(t, dbURL, "lock_timeout", "300ms"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	holdLock(t, dbURL, `LOCK TABLE certificates IN ACCESS EXCLUSIVE MODE`)
	writeCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err = s.RecordIssuance(writeCtx, store.Issuance{Certificate: testCert("01"), Now: t0,
		Events: []pki.AuditEvent{{Time: t0, Type: pki.EventIssued, Actor: "test", Outcome: "success"}}})
	if !errors.Is(err, store.ErrLocked) || pki.ErrorCode(err) != pki.EUnavailable || writeCtx.Err() != nil {
		t.Fatalf("an issuance waiting for a table lock: %v (code %s), want store.ErrLocked, unavailable, before the context ends", err, pki.ErrorCode(err))
	}
}

// LockCASetup waits for the node that creates the CA as long as its
// context lets, however short the sessions' lock_timeout, and gives its
// connection back to the pool with the lock_timeout it had.
func TestLockCASetupWaitsPastLockTimeout(t *testing.T) {
	ctx := context.Background()
	dbURL := pgtest.WithParam(t, migrated.Database(t), "lock_timeout", "50ms")
	holder, err := Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Close() })
	s, err := Open(ctx, pgtest.WithParam(t, dbURL, "pool_max_conns", "1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	unlock, err := holder.LockCASetup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unlock) // before holder.Close, which waits for its connection
	waitCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := s.LockCASetup(waitCtx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("LockCASetup while another node holds it: %v, want to wait until its context ends", err)
	}
	unlock()
	unlock2, err := s.LockCASetup(ctx)
	if err != nil {
		t.Fatalf("LockCASetup once released: %v", err)
	}
	t.Cleanup(unlock2)
	unlock2()
	var got string
	if err := s.pool.QueryRow(ctx, `SHOW lock_timeout`).Scan(&got); err != nil || got != "50ms" {
		t.Errorf("lock_timeout of the pool's connection after LockCASetup: %q (%v), want 50ms", got, err)
	}
}
