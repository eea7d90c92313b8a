package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
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

// fillMissingKeyHashes hashes the keys of certificates recorded with no
// key_hash after the one-time backfill had run: an older server (one that
// wrote no key_hash, and no serve.lock) still issuing into the store the
// new one had migrated (r115 D2). It runs at every open: the lookup is of
// the key hash's index (NULL first), so it costs one read when there are
// none. A certificate whose key was revoked as compromised meanwhile is
// revoked as that revocation's sweep would have (revokeKeySiblings), at
// its time and by its actor, with its audit events. A DER that holds no
// key stays NULL and is passed over.
func (s *Store) fillMissingKeyHashes(ctx context.Context) error {
	type row struct {
		id   int64
		hash []byte
	}
	for after := int64(0); ; {
		// Read outside a transaction: a store with none to fill, or a
		// read-only one, takes no write lock.
		var rows []row
		read, err := queryAll(ctx, s.w, func(sc sqlstore.Scanner) (row, error) {
			var r row
			var der []byte
			err := sc.Scan(&r.id, &der)
			r.hash, _ = sqlstore.KeyHash(der).([]byte)
			return r, err
		}, `SELECT id, der FROM certificates WHERE key_hash IS NULL AND id > ? ORDER BY id LIMIT ?`, after, s.tun.keyHashBatch)
		if err != nil {
			return fmt.Errorf("fill missing key hashes: %w", err)
		}
		for _, r := range read {
			if r.hash != nil {
				rows = append(rows, r)
			}
		}
		if len(rows) > 0 {
			err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
				// Every row of the batch hashed before any key is swept:
				// the sweep finds a key's certificates by their hash.
				var keys [][]byte
				seen := map[string]bool{}
				for _, r := range rows {
					if _, err := tx.ExecContext(ctx, `UPDATE certificates SET key_hash = ? WHERE id = ? AND key_hash IS NULL`, r.hash, r.id); err != nil {
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
		if len(read) < s.tun.keyHashBatch {
			return nil
		}
		after = read[len(read)-1].id
	}
}

// sweepCompromisedKey revokes, inside tx, the certificates of the key of
// hash that its keyCompromise revocation would have revoked had their key
// hash been known then (or had the scepter that made it revoked them):
// nothing when the key is not recorded compromised. Their events' detail
// ends with note. It returns how many it revoked.
func sweepCompromisedKey(ctx context.Context, tx *wtx, hash []byte, note string) (int, error) {
	var issuerID, serialHex string
	var revokedAt int64
	err := tx.QueryRowContext(ctx, compromisedKeyQuery, hash).Scan(new([]byte), &issuerID, &serialHex, &revokedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("look up compromised keys: %w", err)
	}
	revoked, err := certInTx(ctx, tx, issuerID, serialHex)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil // recorded by hand, or pruned: no revocation to follow
	}
	if err != nil {
		return 0, err
	}
	at := sqlstore.FromMicros(revokedAt)
	sibs, err := revokeKeySiblings(ctx, tx, revoked, at, revoked.RevokedBy)
	if err != nil || len(sibs) == 0 {
		return 0, err
	}
	ev := pki.AuditEvent{Time: at, Type: pki.EventRevoked, Actor: revoked.RevokedBy, Outcome: "success"}
	events, _ := sqlstore.KeySiblingEvents(revoked, ev, sibs)
	for i := range events {
		events[i].Detail += note
	}
	for _, id := range sqlstore.RevokedIssuers(issuerID, sibs) {
		if err := bumpRevocationState(ctx, tx, id); err != nil {
			return 0, err
		}
	}
	return len(sibs), insertEvents(ctx, tx, at, events)
}

// sweepCompromisedKeys revokes, once, the other certificates of each key
// recorded as compromised when the store came to schema version 32
// (compromised_keys_sweep): an older scepter's keyCompromise revocation
// left them valid, and the backfills only recorded the key and hashed
// them (r132 D1). It runs after those backfills, since the sweep finds a
// key's certificates by their hash, tun.sweepBatch keys a transaction
// that records how far it got: an Open cut short goes on from there, and
// a certificate revoked already is not revoked again. It returns how many
// certificates it revoked, of how many keys; once done, an open costs one
// read.
func (s *Store) sweepCompromisedKeys(ctx context.Context) (certs, keys int, err error) {
	var pending bool
	if err := s.w.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM compromised_keys_sweep)`).Scan(&pending); err != nil {
		return 0, 0, fmt.Errorf("sweep keys revoked as compromised: %w", err)
	}
	for pending {
		var batchCerts, batchKeys int
		err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
			batchCerts, batchKeys = 0, 0
			var after []byte // nil at the start: the driver reads x'' so
			err := tx.QueryRowContext(ctx, `SELECT done_after FROM compromised_keys_sweep`).Scan(&after)
			if errors.Is(err, sql.ErrNoRows) {
				pending = false // another process finished it
				return nil
			}
			if err != nil {
				return err
			}
			hashes, err := queryAll(ctx, tx, func(sc sqlstore.Scanner) ([]byte, error) {
				var h []byte
				err := sc.Scan(&h)
				return h, err
			}, `SELECT key_hash FROM compromised_keys WHERE key_hash > coalesce(?, x'') ORDER BY key_hash LIMIT ?`, after, s.tun.sweepBatch)
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
			if len(hashes) < s.tun.sweepBatch {
				pending = false
				_, err = tx.ExecContext(ctx, `DELETE FROM compromised_keys_sweep`)
				return err
			}
			_, err = tx.ExecContext(ctx, `UPDATE compromised_keys_sweep SET done_after = ?`, hashes[len(hashes)-1])
			return err
		})
		if err != nil {
			return certs, keys, fmt.Errorf("sweep keys revoked as compromised: %w", err)
		}
		certs, keys = certs+batchCerts, keys+batchKeys
		if s.tun.sweptBatch != nil {
			s.tun.sweptBatch()
		}
	}
	return certs, keys, nil
}
