package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
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

// fillMissingKeyHashes hashes the keys of certificates recorded with no
// key_hash after the one-time backfill had run: an older server (one that
// wrote no key_hash) still issuing into the store a newer node had
// migrated (r115 D2). It runs at every open: the lookup is of the key
// hash's index, so it costs one read when there are none. A certificate
// whose key was revoked as compromised meanwhile is revoked as that
// revocation's sweep would have (revokeKeySiblings), at its time and by
// its actor, with its audit events. A DER that holds no key stays NULL
// and is passed over.
func (s *Store) fillMissingKeyHashes(ctx context.Context) error {
	type row struct {
		id   int64
		hash []byte
	}
	for after := int64(0); ; {
		// Read outside a transaction: a store with none to fill takes no
		// lock.
		var rows []row
		read, err := queryAll(ctx, s.pool, func(sc sqlstore.Scanner) (row, error) {
			var r row
			var der []byte
			err := sc.Scan(&r.id, &der)
			r.hash, _ = sqlstore.KeyHash(der).([]byte)
			return r, err
		}, `SELECT id, der FROM certificates WHERE key_hash IS NULL AND id > $1 ORDER BY id LIMIT $2`, after, sqlstore.KeyHashBatch)
		if err != nil {
			return fmt.Errorf("fill missing key hashes: %w", err)
		}
		for _, r := range read {
			if r.hash != nil {
				rows = append(rows, r)
			}
		}
		if len(rows) > 0 {
			err := s.withTx(ctx, func(tx pgx.Tx) error {
				// Every row of the batch hashed before any key is swept:
				// the sweep finds a key's certificates by their hash.
				var keys [][]byte
				seen := map[string]bool{}
				for _, r := range rows {
					if _, err := tx.Exec(ctx, `UPDATE certificates SET key_hash = $1 WHERE id = $2 AND key_hash IS NULL`, r.hash, r.id); err != nil {
						return err
					}
					if !seen[string(r.hash)] {
						seen[string(r.hash)] = true
						keys = append(keys, r.hash)
					}
				}
				for _, k := range keys {
					if _, err := sweepCompromisedKey(ctx, tx, k, sqlstore.NoteKeyHashFilledIn); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("fill missing key hashes: %w", err)
			}
		}
		if len(read) < sqlstore.KeyHashBatch {
			return nil
		}
		after = read[len(read)-1].id
	}
}

// sweepCompromisedKey revokes, inside tx, the certificates of the key of
// hash that its keyCompromise revocation would have revoked had their key
// hash been known then (or had the scepter that made it revoked them):
// nothing when the key is not recorded compromised. Their events' detail
// ends with note. It takes the key's lock first, as a revocation does
// (lockKey), and returns how many it revoked.
func sweepCompromisedKey(ctx context.Context, tx pgx.Tx, hash []byte, note string) (int, error) {
	var issuerID, serialHex string
	var micros int64
	err := tx.QueryRow(ctx, `SELECT issuer_id, serial_hex, revoked_at FROM compromised_keys WHERE key_hash = $1`, hash).
		Scan(&issuerID, &serialHex, &micros)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("look up compromised keys: %w", err)
	}
	revokedAt := sqlstore.FromMicros(micros)
	revoked, err := certInTx(ctx, tx, issuerID, serialHex, "")
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil // recorded by hand, or pruned: no revocation to follow
	}
	if err != nil {
		return 0, err
	}
	if err := lockKey(ctx, tx, revoked); err != nil {
		return 0, err
	}
	sibs, err := revokeKeySiblings(ctx, tx, revoked, revokedAt, revoked.RevokedBy)
	if err != nil || len(sibs) == 0 {
		return 0, err
	}
	ev := pki.AuditEvent{Time: revokedAt, Type: pki.EventRevoked, Actor: revoked.RevokedBy, Outcome: "success"}
	events, _ := sqlstore.KeySiblingEvents(revoked, ev, sibs)
	for i := range events {
		events[i].Detail += note
	}
	for _, id := range sqlstore.RevokedIssuers(issuerID, sibs) {
		if err := bumpRevocationState(ctx, tx, id); err != nil {
			return 0, err
		}
	}
	return len(sibs), insertEvents(ctx, tx, revokedAt, events)
}

// sweepCompromisedKeys revokes, once, the other certificates of each key
// recorded as compromised when the database came to schema version 32
// (compromised_keys_sweep): an older scepter's keyCompromise revocation
// left them valid, and the backfills only recorded the key and hashed
// them (r132 D1). It runs after those backfills, since the sweep finds a
// key's certificates by their hash, batch keys a transaction that holds
// the progress row's lock and records how far it got: an open cut short
// goes on from there, nodes opening at once take turns, and a
// certificate revoked already is not revoked again. swept (nil but in
// tests) is called after each committed batch. It returns how many
// certificates it revoked, of how many keys; once done, an open costs one
// read.
func (s *Store) sweepCompromisedKeys(ctx context.Context, batch int, swept func()) (certs, keys int, err error) {
	var pending bool
	if err := s.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM compromised_keys_sweep)`).Scan(&pending); err != nil {
		return 0, 0, fmt.Errorf("sweep keys revoked as compromised: %w", err)
	}
	for pending {
		var batchCerts, batchKeys int
		err := s.withTx(ctx, func(tx pgx.Tx) error {
			batchCerts, batchKeys = 0, 0
			var after []byte
			err := tx.QueryRow(ctx, `SELECT done_after FROM compromised_keys_sweep FOR UPDATE`).Scan(&after)
			if errors.Is(err, pgx.ErrNoRows) {
				pending = false // another node finished it
				return nil
			}
			if err != nil {
				return err
			}
			hashes, err := queryAll(ctx, tx, func(sc sqlstore.Scanner) ([]byte, error) {
				var h []byte
				err := sc.Scan(&h)
				return h, err
			}, `SELECT key_hash FROM compromised_keys WHERE key_hash > coalesce($1::bytea, ''::bytea) ORDER BY key_hash LIMIT $2`, after, batch)
			if err != nil {
				return err
			}
			for _, h := range hashes {
				n, err := sweepCompromisedKey(ctx, tx, h, sqlstore.NoteUpgradeSweep)
				if err != nil {
					return err
				}
				if n > 0 {
					batchCerts, batchKeys = batchCerts+n, batchKeys+1
				}
			}
			if len(hashes) < batch {
				pending = false
				_, err = tx.Exec(ctx, `DELETE FROM compromised_keys_sweep`)
				return err
			}
			_, err = tx.Exec(ctx, `UPDATE compromised_keys_sweep SET done_after = $1`, hashes[len(hashes)-1])
			return err
		})
		if err != nil {
			return certs, keys, fmt.Errorf("sweep keys revoked as compromised: %w", err)
		}
		certs, keys = certs+batchCerts, keys+batchKeys
		if swept != nil {
			swept()
		}
	}
	return certs, keys, nil
}
