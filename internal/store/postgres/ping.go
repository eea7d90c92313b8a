package postgres

import (
	"context"
	"fmt"

	"github.com/scepter/scepter/internal/store"
)

// Ping implements store.Store: one read of a real table, so it fails when
// the database cannot be read (the server down, the pool closed, the
// schema gone).
func (s *Store) Ping(ctx context.Context) error {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM audit_head`).Scan(&n); err != nil {
		return pgError("postgres: ping: %w", err)
	}
	return nil
}

// CanWrite implements store.Store: whether a transaction begun as every
// write begins it may write. A standby (after a failover that left this
// node on the old primary's address) or default_transaction_read_only
// makes every write fail with read_only_sql_transaction while reads go
// on. One read, no lock and no row written, so every node may ask it
// every few seconds. A full disk is not seen here: the server reports it
// only on the write that does not fit, whose error names it
// (store.ErrDiskFull).
func (s *Store) CanWrite(ctx context.Context) error {
	var readOnly string
	if err := s.pool.QueryRow(ctx, `SELECT current_setting('transaction_read_only')`).Scan(&readOnly); err != nil {
		return pgError("postgres: write check: %w", err)
	}
	if readOnly == "on" {
		return fmt.Errorf("%w: %w: postgres: the server's transactions are read-only (a standby, or default_transaction_read_only)", store.ErrUnavailable, store.ErrReadOnly)
	}
	return nil
}
