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

// compromisedKeyQuery is CompromisedKey's lookup, by primary key.
const compromisedKeyQuery = `SELECT key_hash, issuer_id, serial_hex, revoked_at
	FROM compromised_keys WHERE key_hash = ?`

// CompromisedKey implements store.Store, on the read pool.
func (s *Store) CompromisedKey(ctx context.Context, keyHash []byte) (*store.CompromisedKey, error) {
	var k store.CompromisedKey
	var revokedAt int64
	err := s.readRow(ctx, compromisedKeyQuery, keyHash).Scan(&k.KeyHash, &k.IssuerID, &k.SerialHex, &revokedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, markUnavailable(fmt.Errorf("sqlite: compromised key %x: %w", keyHash, err))
	}
	k.RevokedAt = sqlstore.FromMicros(revokedAt)
	return &k, nil
}

// checkKeyNotCompromised is RecordIssuance's check, inside tx, that the
// key (a key_hash column: nil for a DER that holds no key) is not recorded
// as compromised: store.ErrKeyCompromised if it is.

// keyCompromisedQuery is checkKeyNotCompromised's: every issuance runs it
// (hotQueries).
const keyCompromisedQuery = `SELECT 1 FROM compromised_keys WHERE key_hash = ?`

func checkKeyNotCompromised(ctx context.Context, tx *wtx, keyHash any) error {
	if keyHash == nil {
		return nil
	}
	var one int
	err := tx.QueryRowContext(ctx, keyCompromisedQuery, keyHash).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("look up compromised keys: %w", err)
	}
	return store.ErrKeyCompromised
}

// ownKeyQuery is checkKeyNotOwn's: every issuance to a client runs it
// (hotQueries), a search of the small partial index certificates_own_keys
// (schema version 28), which the literal protocol lets it use, then, when
// that finds nothing, of ca_generations_key_hash (version 29): the issuing
// CAs the store records, a next one of 'ca rollover' included. A row of
// certificates has no issuer_id here, a generation no profile.
const ownKeyQuery = `SELECT profile, subject_dn, '', NULL FROM certificates
	WHERE key_hash = ?1 AND protocol = 'internal'
	UNION ALL
	SELECT '', '', issuer_id, issuer_der FROM ca_generations WHERE key_hash = ?1
	LIMIT 1`

// checkKeyNotOwn is RecordIssuance's check, inside tx, that the key of an
// issuance to a client (store.OwnKeyChecked) is not the key of one of the
// server's own certificates nor of an issuing CA the store records: an
// *store.OwnKeyError if it is. The CA's in-memory look
// (ca.Authority.OwnKeyRole) knows a new RA or a next CA only once the
// server reloads its CA; 'ca renew-ra' and 'ca rollover' record theirs
// here at once, so this closes that window without another round trip.
func checkKeyNotOwn(ctx context.Context, tx *wtx, keyHash any) error {
	if keyHash == nil {
		return nil
	}
	var own store.OwnKeyError
	var issuerDER []byte
	err := tx.QueryRowContext(ctx, ownKeyQuery, keyHash).Scan(&own.Profile, &own.Subject, &own.IssuerID, &issuerDER)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("look up the server's own keys: %w", err)
	case own.IssuerID != "":
		return sqlstore.GenerationOwnKey(own.IssuerID, issuerDER)
	}
	return &own
}

// recordCompromisedKey records c's key as compromised inside tx when c is
// revoked for keyCompromise. A key recorded already keeps its first
// record; a DER that holds no key (a record scepter did not sign, made by
// hand) records nothing, rather than keep the revocation from going
// through.
func recordCompromisedKey(ctx context.Context, tx *wtx, c *pki.Certificate) error {
	if c.Status != pki.StatusRevoked || c.RevokeReason != store.ReasonKeyCompromise {
		return nil
	}
	hash, err := store.CertKeyHash(c.DER)
	if err != nil {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO compromised_keys (key_hash, issuer_id, serial_hex, revoked_at)
		VALUES (?, ?, ?, ?) ON CONFLICT (key_hash) DO NOTHING`,
		hash, c.IssuerID, c.SerialHex, sqlstore.Micros(c.RevokedAt)); err != nil {
		return fmt.Errorf("record compromised key: %w", err)
	}
	return nil
}

// backfillCompromisedKeys records, once, the keys of the certificates
// revoked for keyCompromise before schema version 20 kept them, earliest
// revocation first. The pending row 0020 left goes in the same
// transaction; once it is gone, an open costs one read.
func (s *Store) backfillCompromisedKeys(ctx context.Context) error {
	var pending bool
	if err := s.w.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM compromised_keys_backfill)`).Scan(&pending); err != nil {
		return fmt.Errorf("backfill compromised keys: %w", err)
	}
	if !pending {
		return nil
	}
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM compromised_keys_backfill`)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err // another process did it meanwhile
		}
		certs, err := queryAll(ctx, tx, func(sc sqlstore.Scanner) (pki.Certificate, error) {
			c, _, err := sqlstore.ScanCert(sc)
			return c, err
		}, `SELECT `+sqlstore.CertColumns+` FROM certificates WHERE status = ? AND revoke_reason = ?
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
