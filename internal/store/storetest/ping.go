package storetest

import (
	"context"
	"testing"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// testPing: Ping and CanWrite answer nil on an open store, empty or not,
// and an error when it cannot read: a canceled context, a closed store.
// CanWrite appends no audit event. (Run closes the
// store again when the test ends: Close must allow a second call.)
func testPing(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping on a new store: %v", err)
	}
	if err := s.AppendAudit(ctx, pki.AuditEvent{Time: t0, Type: "x", Actor: "test", Outcome: "success"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after a write: %v", err)
	}
	for i, when := range []string{"after a write", "with no write since"} {
		if err := s.CanWrite(ctx); err != nil {
			t.Fatalf("CanWrite %s (call %d): %v", when, i+1, err)
		}
	}
	if evs, err := s.ListAudit(ctx, store.AuditFilter{}); err != nil || len(evs) != 1 {
		t.Fatalf("audit trail after CanWrite: %d events (%v), want the one appended", len(evs), err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Ping(canceled); err == nil {
		t.Error("Ping with a canceled context: no error")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Ping(ctx); err == nil {
		t.Error("Ping on a closed store: no error")
	}
	if err := s.CanWrite(ctx); err == nil {
		t.Error("CanWrite on a closed store: no error")
	}
}
