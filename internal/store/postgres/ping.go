package postgres

import (
	"context"
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
