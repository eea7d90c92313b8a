package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

// CompromisedKey implements store.Store: one primary-key read.
func (s *Store) CompromisedKey(ctx context.Context, keyHash []byte) (*store.CompromisedKey, error) {
	var k store.CompromisedKey
	var revokedAt int64
	err := s.pool.QueryRow(ctx, `SELECT key_hash, issuer_id, serial_hex, revoked_at
		FROM compromised_keys WHERE key_hash = $1`, keyHash).Scan(&k.KeyHash, &k.IssuerID, &k.SerialHex, &revokedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, pgError("postgres: compromised key %x: %w", keyHash, err)
	}
	k.RevokedAt = sqlstore.FromMicros(revokedAt)
	return &k, nil
}

// keyLockKey is the first key of the two-key advisory lock a key's
// issuances and its keyCompromise revocations take turns on (the key
// hash's hex, hashed, is the second); see crlLockKey.
const keyLockKey = 0x4b4559 // "KEY"

// The statements that guard an issuance against a key revoked as
// compromised, each its own statement: under READ COMMITTED the check's
// snapshot is taken once the lock is held, so it sees a revocation that
// committed while this one waited. The check fails inside the database
// (a division by zero, sqlKeyCompromised), so that a batch that also
// commits stops there.
const (
	lockKeyQuery         = `SELECT pg_advisory_xact_lock($1, hashtext($2))`
	keyNotCompromisedQry = `SELECT 1 / (NOT EXISTS (SELECT 1 FROM compromised_keys WHERE key_hash = $1))::int`
	sqlKeyCompromised    = "22012" // division_by_zero, raised by keyNotCompromisedQry only
)

// lockKeyArgs are lockKeyQuery's arguments for a key hash.
func lockKeyArgs(keyHash []byte) []any { return []any{keyLockKey, hex.EncodeToString(keyHash)} }

// keyChecked is the outcome of keyNotCompromisedQry.
func keyChecked(_ pgconn.CommandTag, err error) error {
	if sqlState(err) == sqlKeyCompromised {
		return store.ErrKeyCompromised
	}
	if err != nil {
		return fmt.Errorf("look up compromised keys: %w", err)
	}
	return nil
}

// guardKey takes keyHash's lock in tx and checks that it is not recorded
// as compromised (nothing to do for a nil hash: a DER that holds no key).
func guardKey(ctx context.Context, tx pgx.Tx, keyHash []byte) error {
	if keyHash == nil {
		return nil
	}
	if _, err := tx.Exec(ctx, lockKeyQuery, lockKeyArgs(keyHash)...); err != nil {
		return fmt.Errorf("lock key: %w", err)
	}
	return keyChecked(tx.Exec(ctx, keyNotCompromisedQry, keyHash))
}

// issuanceKeyGuard is the key hash an issuance is guarded on (guardKey):
// its key_hash, unless it is recorded revoked, which may record any key.
func issuanceKeyGuard(in *store.Issuance) []byte {
	if in.Certificate.Status == pki.StatusRevoked {
		return nil
	}
	h, _ := sqlstore.IssuanceKeyHash(in).([]byte)
	return h
}

// recordCompromisedKey records c's key as compromised inside tx when c is
// revoked for keyCompromise. A key recorded already keeps its first
// record; a DER that holds no key (a record scepter did not sign, made by
// hand) records nothing, rather than keep the revocation from going
// through.
func recordCompromisedKey(ctx context.Context, tx pgx.Tx, c *pki.Certificate) error {
	if c.Status != pki.StatusRevoked || c.RevokeReason != store.ReasonKeyCompromise {
		return nil
	}
	hash, err := store.CertKeyHash(c.DER)
	if err != nil {
		return nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO compromised_keys (key_hash, issuer_id, serial_hex, revoked_at)
		VALUES ($1, $2, $3, $4) ON CONFLICT (key_hash) DO NOTHING`,
		hash, c.IssuerID, c.SerialHex, sqlstore.Micros(c.RevokedAt)); err != nil {
		return fmt.Errorf("record compromised key: %w", err)
	}
	return nil
}

// backfillCompromisedKeys records, once, the keys of the certificates
// revoked for keyCompromise before schema version 20 kept them, earliest
// revocation first. The pending row 0020 left is deleted in the same
// transaction: a node opening at the same time waits for its lock, then
// deletes nothing and does nothing. Once it is gone, an open costs one
// read.
func (s *Store) backfillCompromisedKeys(ctx context.Context) error {
	var pending bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM compromised_keys_backfill)`).Scan(&pending); err != nil {
		return fmt.Errorf("backfill compromised keys: %w", err)
	}
	if !pending {
		return nil
	}
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM compromised_keys_backfill`)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		certs, err := queryAll(ctx, tx, func(sc sqlstore.Scanner) (pki.Certificate, error) {
			c, _, err := scanCert(sc)
			return c, err
		}, `SELECT `+sqlstore.CertColumns+` FROM certificates WHERE status = $1 AND revoke_reason = $2
			ORDER BY revoked_at, id`, string(pki.StatusRevoked), store.ReasonKeyCompromise)
		if err != nil {
			return err
		}
		for i := range certs {
			if err := recordCompromisedKey(ctx, tx, &certs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("backfill compromised keys: %w", err)
	}
	return nil
}
