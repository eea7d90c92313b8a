package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/scepter/scepter/internal/store/sqlstore"
)

// backfillKeyHashes hashes the keys of the certificates recorded before
// schema version 21 wrote key_hash, sqlstore.KeyHashBatch at a time, each
// batch a transaction of its own that records how far it got: writers
// wait for at most one batch, a backfill cut short goes on from there at
// the next open, and nodes opening at once take turns on the progress
// row. Once done, an open costs one read.
func (s *Store) backfillKeyHashes(ctx context.Context) error {
	var pending bool
	if err := s.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM certificates_key_hash_backfill)`).Scan(&pending); err != nil {
		return fmt.Errorf("backfill key hashes: %w", err)
	}
	for pending {
		err := s.withTx(ctx, func(tx pgx.Tx) error {
			var err error
			pending, err = backfillKeyHashBatch(ctx, tx)
			return err
		})
		if err != nil {
			return fmt.Errorf("backfill key hashes: %w", err)
		}
	}
	return nil
}

// backfillKeyHashBatch hashes the next batch inside tx (one UPDATE) and
// reports whether more remain.
func backfillKeyHashBatch(ctx context.Context, tx pgx.Tx) (bool, error) {
	var after, upto int64
	err := tx.QueryRow(ctx, `SELECT done_upto, upto FROM certificates_key_hash_backfill FOR UPDATE`).Scan(&after, &upto)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil // another node finished it
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
	}, `SELECT id, der FROM certificates WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3`, after, upto, sqlstore.KeyHashBatch)
	if err != nil {
		return false, err
	}
	ids := make([]int64, 0, len(rows))
	hashes := make([][]byte, 0, len(rows))
	for _, r := range rows {
		if h, ok := sqlstore.KeyHash(r.der).([]byte); ok {
			ids, hashes = append(ids, r.id), append(hashes, h)
		}
	}
	if len(ids) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE certificates SET key_hash = v.h
			FROM unnest($1::bigint[], $2::bytea[]) AS v(id, h) WHERE certificates.id = v.id`, ids, hashes); err != nil {
			return false, err
		}
	}
	if len(rows) < sqlstore.KeyHashBatch {
		_, err = tx.Exec(ctx, `DELETE FROM certificates_key_hash_backfill`)
		return false, err
	}
	_, err = tx.Exec(ctx, `UPDATE certificates_key_hash_backfill SET done_upto = $1`, rows[len(rows)-1].id)
	return true, err
}
