package sqlite

import (
	"context"
	"fmt"
)

// Ping implements store.Store: one read of a real table on the reader
// pool, so it fails when the database cannot be read (the pools closed,
// the file gone bad), and never waits behind the writer.
func (s *Store) Ping(ctx context.Context) error {
	var n int64
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM audit_head`).Scan(&n); err != nil {
		return markUnavailable(fmt.Errorf("sqlite: ping: %w", err))
	}
	return nil
}
