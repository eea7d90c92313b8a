package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/scepter/scepter/internal/store/sqlstore"
)

// backfillKeyHashes hashes the keys of the certificates recorded before
// schema version 21 wrote key_hash, sqlstore.KeyHashBatch (s.tun) at a
// time, each batch a transaction of its own that records how far it got:
// the writer is free between batches, and a backfill cut short goes on
// from there at the next open. Once done, an open costs one read.
func (s *Store) backfillKeyHashes(ctx context.Context) error {
	var pending bool
	if err := s.w.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM certificates_key_hash_backfill)`).Scan(&pending); err != nil {
		return fmt.Errorf("backfill key hashes: %w", err)
	}
	for pending {
		err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
			var err error
			pending, err = backfillKeyHashBatch(ctx, tx, s.tun.keyHashBatch)
			return err
		})
		if err != nil {
			return fmt.Errorf("backfill key hashes: %w", err)
		}
	}
	return nil
}

// backfillKeyHashBatch hashes the next batch of size certificates inside
// tx and reports whether more remain.
func backfillKeyHashBatch(ctx context.Context, tx *wtx, size int) (bool, error) {
	var after, upto int64
	err := tx.QueryRowContext(ctx, `SELECT done_upto, upto FROM certificates_key_hash_backfill`).Scan(&after, &upto)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil // another process finished it
	}
	if err != nil {
		return false, err
	}
	type row struct {
		id  int64
		der []byte
	}
	rows, err := queryAll(ctx, tx, func(sc sqlstore.Scanner) (row, error) {
		var r row
		err := sc.Scan(&r.id, &r.der)
		return r, err
	}, `SELECT id, der FROM certificates WHERE id > ? AND id <= ? ORDER BY id LIMIT ?`, after, upto, size)
	if err != nil {
		return false, err
	}
	for _, r := range rows {
		if _, err := tx.ExecContext(ctx, `UPDATE certificates SET key_hash = ? WHERE id = ?`,
			sqlstore.KeyHash(r.der), r.id); err != nil {
			return false, err
		}
	}
	if len(rows) < size {
		_, err = tx.ExecContext(ctx, `DELETE FROM certificates_key_hash_backfill`)
		return false, err
	}
	_, err = tx.ExecContext(ctx, `UPDATE certificates_key_hash_backfill SET done_upto = ?`, rows[len(rows)-1].id)
	return true, err
}
