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
	err := s.queryRow(ctx, `SELECT key_hash, issuer_id, serial_hex, revoked_at
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
	// keyNotCompromisedNorOwnQry is keyNotCompromisedQry for an issuance
	// to a client (store.OwnKeyChecked), which also fails when the key is
	// that of one of the server's own certificates (protocol internal) or
	// of an issuing CA the store records (ca_generations), with a
	// logarithm of zero (sqlOwnKey). The CA's in-memory look
	// (ca.Authority.OwnKeyRole) knows a new RA or a next CA only once the
	// node reloads its CA; 'ca renew-ra' and 'ca rollover' record theirs
	// at once, so this closes that window in the statement every issuance
	// runs already: no round trip more. The literal protocol lets it search
	// the small partial index certificates_own_keys (schema version 28);
	// ca_generations holds a few rows, its key_hash indexed (version 29).
	keyNotCompromisedNorOwnQry = `SELECT 1 / (NOT EXISTS (SELECT 1 FROM compromised_keys WHERE key_hash = $1))::int,
		ln(1 - (EXISTS (SELECT 1 FROM certificates WHERE key_hash = $1 AND protocol = 'internal')
			OR EXISTS (SELECT 1 FROM ca_generations WHERE key_hash = $1))::int)`
	sqlOwnKey = "2201E" // invalid_argument_for_logarithm, raised by keyNotCompromisedNorOwnQry only
)

// lockKeyArgs are lockKeyQuery's arguments for a key hash.
func lockKeyArgs(keyHash []byte) []any { return []any{keyLockKey, hex.EncodeToString(keyHash)} }

// keyChecked is the outcome of keyNotCompromisedQry or
// keyNotCompromisedNorOwnQry. An own key comes as an *store.OwnKeyError
// without its certificate, which RecordIssuance reads (ownKeyError): the
// check fails inside the database, which returns nothing else.
func keyChecked(_ pgconn.CommandTag, err error) error {
	switch sqlState(err) {
	case sqlKeyCompromised:
		return store.ErrKeyCompromised
	case sqlOwnKey:
		return &store.OwnKeyError{}
	}
	if err != nil {
		return fmt.Errorf("look up compromised keys: %w", err)
	}
	return nil
}

// keyGuard is a key an issuance is guarded on (guardKey): its hash, and
// whether it must not be one of the server's own keys either.
type keyGuard struct {
	hash []byte
	own  bool
}

// query is the statement that checks g's key.
func (g keyGuard) query() string {
	if g.own {
		return keyNotCompromisedNorOwnQry
	}
	return keyNotCompromisedQry
}

// guardKey takes g's key's lock in tx and checks that it is not recorded
// as compromised, nor, if asked, the server's own (nothing to do for a
// nil hash: a DER that holds no key).
func guardKey(ctx context.Context, tx pgx.Tx, g keyGuard) error {
	if g.hash == nil {
		return nil
	}
	if _, err := tx.Exec(ctx, lockKeyQuery, lockKeyArgs(g.hash)...); err != nil {
		return fmt.Errorf("lock key: %w", err)
	}
	return keyChecked(tx.Exec(ctx, g.query(), g.hash))
}

// issuanceKeyGuard is what an issuance is guarded on (guardKey): its
// key_hash, unless it is recorded revoked, which may record any key; an
// issuance to a client is checked against the server's own keys too.
func issuanceKeyGuard(in *store.Issuance) keyGuard {
	if in.Certificate.Status == pki.StatusRevoked {
		return keyGuard{}
	}
	h, _ := sqlstore.IssuanceKeyHash(in).([]byte)
	return keyGuard{hash: h, own: store.OwnKeyChecked(&in.Certificate)}
}

// ownKeyError is the *store.OwnKeyError of an issuance refused for
// keyHash, with the server's certificate or issuing CA of that key read
// outside the failed transaction: a refusal's path, not every issuance's.
// Should the read fail, the refusal stands without it.
func (s *Store) ownKeyError(ctx context.Context, keyHash any) error {
	var own store.OwnKeyError
	var subject string
	var issuerDER []byte
	err := s.queryRow(ctx, `SELECT profile, subject_dn, '', NULL::bytea FROM certificates
		WHERE key_hash = $1 AND protocol = 'internal'
		UNION ALL
		SELECT '', '', issuer_id, issuer_der FROM ca_generations WHERE key_hash = $1
		LIMIT 1`, keyHash).Scan(&own.Profile, &subject, &own.IssuerID, &issuerDER)
	switch {
	case err != nil:
		return &store.OwnKeyError{}
	case own.IssuerID != "":
		return sqlstore.GenerationOwnKey(own.IssuerID, issuerDER)
	}
	own.Subject = decText(subject)
	return &own
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
	if err := s.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM compromised_keys_backfill)`).Scan(&pending); err != nil {
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
