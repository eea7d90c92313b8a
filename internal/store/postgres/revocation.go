package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

// reasonCertificateHold is RFC 5280's CRLReason certificateHold, the one
// revocation that can be lifted.
const reasonCertificateHold = 6

// RevokeCertificate implements store.Store.
func (s *Store) RevokeCertificate(ctx context.Context, issuerID, serialHex string, reason int, at time.Time, ev pki.AuditEvent) (*pki.Certificate, bool, error) {
	r, err := s.Revoke(ctx, issuerID, serialHex, reason, at, ev)
	return r.Certificate, r.Changed, err
}

// Revoke implements store.Store. The certificate is read FOR UPDATE: a
// concurrent revocation waits, then decides on what this one wrote (no
// change, no second event). The rows are taken in the order issuances
// take theirs (certificates and their counts, the revocation states by
// issuer, then the audit chain's head).
func (s *Store) Revoke(ctx context.Context, issuerID, serialHex string, reason int, at time.Time, ev pki.AuditEvent) (store.Revocation, error) {
	issuerID, serialHex = key(issuerID), key(serialHex)
	if at.IsZero() {
		return store.Revocation{}, pgError("postgres: revoke %s/%s: revocation time is zero", issuerID, serialHex)
	}
	var out store.Revocation
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		out = store.Revocation{}
		// A copy: a retried transaction decides the detail afresh.
		event := ev
		c, err := lockCert(ctx, tx, issuerID, serialHex)
		if err != nil {
			return err
		}
		if reason == store.ReasonKeyCompromise {
			if err := lockKey(ctx, tx, c); err != nil {
				return err
			}
		}
		switch {
		case c.Status != pki.StatusRevoked:
			_, err = tx.Exec(ctx, `UPDATE certificates
				SET status = $1, revoked_at = $2, revoke_reason = $3, revoked_by = $4
				WHERE issuer_id = $5 AND serial_hex = $6`,
				string(pki.StatusRevoked), sqlstore.Micros(at), reason, ev.Actor, issuerID, serialHex)
		case c.RevokeReason == reasonCertificateHold && reason != reasonCertificateHold:
			// A hold made permanent keeps the hold's time: relying parties
			// have treated the certificate as revoked since then.
			_, err = tx.Exec(ctx, `UPDATE certificates SET revoke_reason = $1, revoked_by = $2
				WHERE issuer_id = $3 AND serial_hex = $4`, reason, ev.Actor, issuerID, serialHex)
			event.Detail = store.DetailHoldMadePermanent
		case reason == store.ReasonKeyCompromise && c.RevokeReason != store.ReasonKeyCompromise:
			// A key found compromised after its certificate was revoked
			// for another reason: the reason is raised, so that the key is
			// recorded and its other certificates swept below, and the
			// time stays, the CRL entry's date.
			_, err = tx.Exec(ctx, `UPDATE certificates SET revoke_reason = $1, revoked_by = $2
				WHERE issuer_id = $3 AND serial_hex = $4`, reason, ev.Actor, issuerID, serialHex)
			event.Detail = store.ReasonRaisedDetail(c.RevokeReason)
		default:
			out.Certificate = c
			return nil
		}
		if err != nil {
			return err
		}
		out.Changed = true
		var sibs []sqlstore.KeySibling
		if reason == store.ReasonKeyCompromise {
			if sibs, err = revokeKeySiblings(ctx, tx, c, at, ev.Actor); err != nil {
				return err
			}
		}
		events, refs := sqlstore.KeySiblingEvents(c, event, sibs)
		for _, id := range sqlstore.RevokedIssuers(issuerID, sibs) {
			if err := bumpRevocationState(ctx, tx, id); err != nil {
				return err
			}
		}
		if err := insertEvents(ctx, tx, at, append([]pki.AuditEvent{event}, events...)); err != nil {
			return err
		}
		if out.Certificate, err = certInTx(ctx, tx, issuerID, serialHex, ""); err != nil {
			return err
		}
		if len(refs) > 0 {
			out.AlsoRevoked = refs
		}
		return recordCompromisedKey(ctx, tx, out.Certificate)
	})
	if err != nil {
		return store.Revocation{}, pgError("postgres: revoke %s/%s: %w", issuerID, serialHex, err)
	}
	return out, nil
}

// lockKey takes the advisory lock of c's key (keyLockKey) before a
// keyCompromise revocation reads its siblings or records the key: an
// issuance of the key that took it first has committed when this
// transaction's statements read, and one that comes after reads the
// compromised key this one records. A DER that holds no key has none.
func lockKey(ctx context.Context, tx pgx.Tx, c *pki.Certificate) error {
	hash, err := store.CertKeyHash(c.DER)
	if err != nil {
		return nil
	}
	if _, err := tx.Exec(ctx, lockKeyQuery, lockKeyArgs(hash)...); err != nil {
		return fmt.Errorf("lock key: %w", err)
	}
	return nil
}

// revokeValidSiblings and markHeldSiblings are revokeKeySiblings'
// statements, each a search of the key hash's index (postgres_test.go).
const (
	revokeValidSiblings = `UPDATE certificates SET status = $5, revoked_at = $6, revoke_reason = $7, revoked_by = $8
			WHERE key_hash = $1 AND not_after > $2 AND NOT (issuer_id = $3 AND serial_hex = $4) AND status = $9
			RETURNING ` + sqlstore.CertColumns
	markHeldSiblings = `UPDATE certificates SET revoke_reason = $5, revoked_by = $6
				WHERE key_hash = $1 AND not_after > $2 AND NOT (issuer_id = $3 AND serial_hex = $4)
				AND status = $7 AND revoke_reason = $8
				RETURNING ` + sqlstore.CertColumns
)

// revokeKeySiblings revokes, inside tx, the other certificates of c's key
// that are unexpired at `at` and not revoked for good: valid ones for
// keyCompromise at `at`, ones on hold for keyCompromise at their hold's
// time. Each UPDATE locks its rows and, under READ COMMITTED, checks a
// row changed by a concurrent transaction again once that commits. A DER
// that holds no key has no siblings.
func revokeKeySiblings(ctx context.Context, tx pgx.Tx, c *pki.Certificate, at time.Time, actor string) ([]sqlstore.KeySibling, error) {
	hash, err := store.CertKeyHash(c.DER)
	if err != nil {
		return nil, nil
	}
	var sibs []sqlstore.KeySibling
	for _, held := range []bool{false, true} {
		q := revokeValidSiblings
		args := []any{hash, sqlstore.Micros(at), c.IssuerID, c.SerialHex,
			string(pki.StatusRevoked), sqlstore.Micros(at), store.ReasonKeyCompromise, actor, string(pki.StatusValid)}
		if held {
			q = markHeldSiblings
			args = []any{hash, sqlstore.Micros(at), c.IssuerID, c.SerialHex,
				store.ReasonKeyCompromise, actor, string(pki.StatusRevoked), reasonCertificateHold}
		}
		certs, err := queryAll(ctx, tx, func(sc sqlstore.Scanner) (pki.Certificate, error) {
			c, _, err := scanCert(sc)
			return c, err
		}, q, args...)
		if err != nil {
			return nil, fmt.Errorf("revoke the other certificates of the key: %w", err)
		}
		for _, sc := range certs {
			sibs = append(sibs, sqlstore.KeySibling{Cert: sc, WasHeld: held})
		}
	}
	return sibs, nil
}

// UnholdCertificate implements store.Store, with the certificate read FOR
// UPDATE as in RevokeCertificate.
func (s *Store) UnholdCertificate(ctx context.Context, issuerID, serialHex string, at time.Time, ev pki.AuditEvent) (*pki.Certificate, bool, error) {
	issuerID, serialHex = key(issuerID), key(serialHex)
	if at.IsZero() {
		return nil, false, pgError("postgres: unhold %s/%s: time is zero", issuerID, serialHex)
	}
	var out *pki.Certificate
	var changed bool
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		out, changed = nil, false
		c, err := lockCert(ctx, tx, issuerID, serialHex)
		if err != nil {
			return err
		}
		switch {
		case c.Status != pki.StatusRevoked:
			out = c
			return nil
		case c.RevokeReason != reasonCertificateHold:
			return fmt.Errorf("revoked for good (reason %d), not on hold: %w", c.RevokeReason, store.ErrConflict)
		}
		if _, err := tx.Exec(ctx, `UPDATE certificates
			SET status = $1, revoked_at = NULL, revoke_reason = NULL, revoked_by = '', unheld_at = $2
			WHERE issuer_id = $3 AND serial_hex = $4`, string(pki.StatusValid), sqlstore.Micros(at), issuerID, serialHex); err != nil {
			return err
		}
		// The issuer's newest unhold, which its next CRL is not dated
		// before (the row exists: the hold bumped its counter).
		if _, err := tx.Exec(ctx, `INSERT INTO revocation_state (issuer_id, seq, unheld_at) VALUES ($1, 0, $2)
			ON CONFLICT (issuer_id) DO UPDATE SET unheld_at = GREATEST(revocation_state.unheld_at, excluded.unheld_at)`,
			issuerID, sqlstore.Micros(at)); err != nil {
			return fmt.Errorf("revocation state: %w", err)
		}
		changed = true
		out, err = revocationChanged(ctx, tx, issuerID, serialHex, at, ev)
		return err
	})
	if err != nil {
		return nil, false, pgError("postgres: unhold %s/%s: %w", issuerID, serialHex, err)
	}
	return out, changed, nil
}

// revocationChanged finishes a change of revocation status inside its
// transaction: the issuer's counter moves, the event is appended, and the
// record is read back as it now stands.
func revocationChanged(ctx context.Context, tx pgx.Tx, issuerID, serialHex string, at time.Time, ev pki.AuditEvent) (*pki.Certificate, error) {
	if err := bumpRevocationState(ctx, tx, issuerID); err != nil {
		return nil, err
	}
	if err := insertEvents(ctx, tx, at, []pki.AuditEvent{ev}); err != nil {
		return nil, err
	}
	return certInTx(ctx, tx, issuerID, serialHex, "")
}

// lockCert reads one certificate and locks its row until the transaction
// ends: what it returns cannot change before the commit.
func lockCert(ctx context.Context, tx pgx.Tx, issuerID, serialHex string) (*pki.Certificate, error) {
	return certInTx(ctx, tx, issuerID, serialHex, " FOR UPDATE")
}

func certInTx(ctx context.Context, tx pgx.Tx, issuerID, serialHex, lock string) (*pki.Certificate, error) {
	row := tx.QueryRow(ctx, `SELECT `+sqlstore.CertColumns+` FROM certificates
		WHERE issuer_id = $1 AND serial_hex = $2`+lock, issuerID, serialHex)
	c, _, err := scanCert(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// bumpRevocationState counts a change of revocation status under an issuer
// (an upsert: concurrent bumps queue on the issuer's row and each adds
// one).
func bumpRevocationState(ctx context.Context, tx pgx.Tx, issuerID string) error {
	_, err := tx.Exec(ctx, `INSERT INTO revocation_state (issuer_id, seq) VALUES ($1, 1)
		ON CONFLICT (issuer_id) DO UPDATE SET seq = revocation_state.seq + 1`, issuerID)
	if err != nil {
		return fmt.Errorf("revocation state: %w", err)
	}
	return nil
}

// RevocationState implements store.Store.
func (s *Store) RevocationState(ctx context.Context) (map[string]int64, error) {
	rows, err := s.query(ctx, `SELECT issuer_id, seq FROM revocation_state`)
	if err != nil {
		return nil, pgError("postgres: revocation state: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			return nil, pgError("postgres: revocation state: %w", err)
		}
		out[id] = seq
	}
	if err := rows.Err(); err != nil {
		return nil, pgError("postgres: revocation state: %w", err)
	}
	return out, nil
}

// LastUnhold implements store.Store.
func (s *Store) LastUnhold(ctx context.Context, issuerID string) (time.Time, error) {
	issuerID = key(issuerID)
	var at int64
	err := s.queryRow(ctx, `SELECT unheld_at FROM revocation_state WHERE issuer_id = $1`, issuerID).Scan(&at)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return time.Time{}, nil
	case err != nil:
		return time.Time{}, pgError("postgres: last unhold of %s: %w", issuerID, err)
	case at == 0:
		return time.Time{}, nil
	}
	return sqlstore.FromMicros(at), nil
}

// RevokedCertificates implements store.Store: an index range read on
// certificates_issuer_status_expiry, by serial.
func (s *Store) RevokedCertificates(ctx context.Context, issuerID string, notAfterAfter time.Time) ([]store.RevokedEntry, error) {
	issuerID = key(issuerID)
	out, err := queryAll(ctx, s.pool, sqlstore.ScanRevokedEntry, `SELECT serial_hex, revoked_at, revoke_reason FROM certificates
		WHERE issuer_id = $1 AND status = $2 AND not_after > $3 ORDER BY serial_hex COLLATE "C"`,
		issuerID, string(pki.StatusRevoked), sqlstore.Micros(notAfterAfter))
	if err != nil {
		return nil, pgError("postgres: revoked certificates of %s: %w", issuerID, err)
	}
	return out, nil
}

// LatestCRL implements store.Store.
func (s *Store) LatestCRL(ctx context.Context, issuerID string) (*store.CRL, error) {
	issuerID = key(issuerID)
	var c store.CRL
	var this, next, created int64
	err := s.queryRow(ctx, `SELECT issuer_id, number, this_update, next_update, revocation_seq,
		entries, der, created_at FROM crls WHERE issuer_id = $1 ORDER BY number DESC LIMIT 1`, issuerID).
		Scan(&c.IssuerID, &c.Number, &this, &next, &c.RevocationSeq, &c.Entries, &c.DER, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, pgError("postgres: latest CRL of %s: %w", issuerID, err)
	}
	c.ThisUpdate, c.NextUpdate, c.CreatedAt = sqlstore.FromMicros(this), sqlstore.FromMicros(next), sqlstore.FromMicros(created)
	return &c, nil
}

// LatestCRLNumber implements store.Store.
func (s *Store) LatestCRLNumber(ctx context.Context, issuerID string) (int64, error) {
	var n *int64
	if err := s.queryRow(ctx, `SELECT MAX(number) FROM crls WHERE issuer_id = $1`, key(issuerID)).Scan(&n); err != nil {
		return 0, pgError("postgres: latest CRL number of %s: %w", issuerID, err)
	}
	if n == nil {
		return 0, store.ErrNotFound
	}
	return *n, nil
}

// crlLockKey is the first key of PutCRL's two-key advisory lock (the
// issuer's hash is the second); two-key locks never meet the one-key locks
// of migrations and CA setup.
const crlLockKey = 0x43524c // "CRL"

// PutCRL implements store.Store. The number must be above the newest one
// stored. Writers of one issuer's CRLs take turns (a transaction-level
// advisory lock), so the second of two nodes storing at once reads the
// first's number once it has committed: ErrConflict for the same number
// or a lower one, which numbers that may skip (store.Store) would
// otherwise let both commit, the lower after the higher.
func (s *Store) PutCRL(ctx context.Context, c store.CRL, keep int) error {
	if err := sqlstore.CheckCRL(c); err != nil {
		return pgError("postgres: put CRL of %s: %w", c.IssuerID, err)
	}
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, crlLockKey, c.IssuerID); err != nil {
			return err
		}
		var newest int64
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(number), 0) FROM crls WHERE issuer_id = $1`,
			c.IssuerID).Scan(&newest); err != nil {
			return err
		}
		if c.Number <= newest {
			return fmt.Errorf("CRL number %d, but the newest stored is %d: %w", c.Number, newest, store.ErrConflict)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO crls (issuer_id, number, this_update, next_update,
			revocation_seq, entries, der, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			c.IssuerID, c.Number, sqlstore.Micros(c.ThisUpdate), sqlstore.Micros(c.NextUpdate), c.RevocationSeq, c.Entries,
			c.DER, sqlstore.Micros(c.CreatedAt)); err != nil {
			return conflict(err)
		}
		_, err := tx.Exec(ctx, `DELETE FROM crls WHERE issuer_id = $1 AND number <= $2`,
			c.IssuerID, c.Number-int64(max(keep, 1)))
		return err
	})
	if err != nil {
		return pgError("postgres: put CRL %d of %s: %w", c.Number, c.IssuerID, err)
	}
	return nil
}
