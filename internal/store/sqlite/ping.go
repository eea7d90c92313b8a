package sqlite

import (
	"context"
	"fmt"
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
