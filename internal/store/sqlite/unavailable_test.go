package sqlite

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// A full database is the store being unavailable for now, not an internal
// error: the write that did not fit is marked store.ErrUnavailable (the
// protocol edges answer 503 with Retry-After), nothing of it is kept, and
// once there is room again the same write succeeds. The limit is SQLite's
// own max_page_count, which fails a write with the SQLITE_FULL a full disk
// gives.
func TestFullDatabaseIsUnavailable(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	var pages int
	if err := s.w.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
		t.Fatal(err)
	}

	var full error
	var serial string
	for i := 0; i < 1000 && full == nil; i++ {
		serial = fmt.Sprintf("%04x", i+1)
		c := testCert(serial)
		c.DER = make([]byte, 2000) // fills the free room of the last pages in a few writes
		full = s.RecordIssuance(ctx, store.Issuance{Certificate: c, Now: t0})
	}
	if full == nil {
		t.Fatal("1,000 certificates fit in a database held at its size")
	}
	if !errors.Is(full, store.ErrUnavailable) || pki.ErrorCode(full) != pki.EUnavailable {
		t.Fatalf("a full database gave %v (code %s), want store.ErrUnavailable", full, pki.ErrorCode(full))
	}
	if _, err := s.Certificate(ctx, "issuer", serial); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the certificate whose write failed: %v, want ErrNotFound", err)
	}
	// An ordered write fails the same way.
	if err := s.RememberNonce(ctx, "tx-full", make([]byte, 3000), t0, t0.Add(1e12)); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("a nonce in a full database: %v, want store.ErrUnavailable", err)
	}
	// Reads go on.
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping with the database full: %v", err)
	}

	if _, err := s.w.ExecContext(ctx, `PRAGMA max_page_count = 1073741823`); err != nil {
		t.Fatal(err)
	}
	c := testCert(serial)
	c.DER = make([]byte, 2000)
	if err := s.RecordIssuance(ctx, store.Issuance{Certificate: c, Now: t0}); err != nil {
		t.Fatalf("the same write with room again: %v", err)
	}
	// A conflict is the request's fault, not the store's.
	err := s.RecordIssuance(ctx, store.Issuance{Certificate: c, Now: t0})
	if !errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("the same certificate twice: %v, want ErrConflict and not ErrUnavailable", err)
	}
}
