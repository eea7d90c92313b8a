package postgres

import (
	"context"
	"errors"
	"testing"

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
	dbURL := pgtest.Database(t)
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
