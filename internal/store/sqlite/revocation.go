package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

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

// Revoke implements store.Store.
func (s *Store) Revoke(ctx context.Context, issuerID, serialHex string, reason int, at time.Time, ev pki.AuditEvent) (store.Revocation, error) {
	if at.IsZero() {
		return store.Revocation{}, fmt.Errorf("sqlite: revoke %s/%s: revocation time is zero", issuerID, serialHex)
	}
	var out store.Revocation
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		out = store.Revocation{}
		// A copy: a retried transaction decides the detail afresh.
		event := ev
		c, err := certInTx(ctx, tx, issuerID, serialHex)
		if err != nil {
			return err
		}
		switch {
		case c.Status != pki.StatusRevoked:
			_, err = tx.ExecContext(ctx, `UPDATE certificates
				SET status = ?, revoked_at = ?, revoke_reason = ?, revoked_by = ?
				WHERE issuer_id = ? AND serial_hex = ?`,
				string(pki.StatusRevoked), sqlstore.Micros(at), reason, ev.Actor, issuerID, serialHex)
		case c.RevokeReason == reasonCertificateHold && reason != reasonCertificateHold:
			// A hold made permanent keeps the hold's time: relying parties
			// have treated the certificate as revoked since then.
			_, err = tx.ExecContext(ctx, `UPDATE certificates SET revoke_reason = ?, revoked_by = ?
				WHERE issuer_id = ? AND serial_hex = ?`, reason, ev.Actor, issuerID, serialHex)
			event.Detail = store.DetailHoldMadePermanent
		case reason == store.ReasonKeyCompromise && c.RevokeReason != store.ReasonKeyCompromise:
			// A key found compromised after its certificate was revoked
			// for another reason: the reason is raised, so that the key is
			// recorded and its other certificates swept below, and the
			// time stays, the CRL entry's date.
			_, err = tx.ExecContext(ctx, `UPDATE certificates SET revoke_reason = ?, revoked_by = ?
				WHERE issuer_id = ? AND serial_hex = ?`, reason, ev.Actor, issuerID, serialHex)
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
		if out.Certificate, err = certInTx(ctx, tx, issuerID, serialHex); err != nil {
			return err
		}
		if len(refs) > 0 {
			out.AlsoRevoked = refs
		}
		return recordCompromisedKey(ctx, tx, out.Certificate)
	})
	if err != nil {
		return store.Revocation{}, fmt.Errorf("sqlite: revoke %s/%s: %w", issuerID, serialHex, err)
	}
	return out, nil
}

// revokeKeySiblings revokes, inside tx, the other certificates of c's key
// that are unexpired at `at` and not revoked for good: valid ones for
// keyCompromise at `at`, ones on hold for keyCompromise at their hold's
// time. A DER that holds no key has no siblings.
func revokeKeySiblings(ctx context.Context, tx *wtx, c *pki.Certificate, at time.Time, actor string) ([]sqlstore.KeySibling, error) {
	hash, err := store.CertKeyHash(c.DER)
	if err != nil {
		return nil, nil
	}
	var sibs []sqlstore.KeySibling
	for _, held := range []bool{false, true} {
		set, status := `status = ?, revoked_at = ?, revoke_reason = ?, revoked_by = ?`, siblingsValid
		args := []any{string(pki.StatusRevoked), sqlstore.Micros(at), store.ReasonKeyCompromise, actor,
			hash, sqlstore.Micros(at), string(pki.StatusValid)}
		if held {
			set, status = `revoke_reason = ?, revoked_by = ?`, siblingsHeld
			args = []any{store.ReasonKeyCompromise, actor,
				hash, sqlstore.Micros(at), string(pki.StatusRevoked), reasonCertificateHold}
		}
		args = append(args, c.IssuerID, c.SerialHex)
		certs, err := queryAll(ctx, tx, func(sc sqlstore.Scanner) (pki.Certificate, error) {
			c, _, err := sqlstore.ScanCert(sc)
			return c, err
		}, keySiblingsUpdate(set, status), args...)
		if err != nil {
			return nil, fmt.Errorf("revoke the other certificates of the key: %w", err)
		}
		for _, sc := range certs {
			sibs = append(sibs, sqlstore.KeySibling{Cert: sc, WasHeld: held})
		}
	}
	return sibs, nil
}

// siblingsValid and siblingsHeld select the key's valid certificates, and
// those on hold.
const (
	siblingsValid = `+status = ?`
	siblingsHeld  = `+status = ? AND +revoke_reason = ?`
)

// keySiblingsUpdate is revokeKeySiblings' statement: set on the key's
// certificates of status, bar one. It searches the key hash's index by
// its first column (plan_test.go): "+col" keeps SQLite from reading the
// index of status and expiry instead, which holds every valid
// certificate, inside the writer's transaction.
func keySiblingsUpdate(set, status string) string {
	return `UPDATE certificates SET ` + set + `
			WHERE key_hash = ? AND +not_after > ? AND ` + status + ` AND NOT (issuer_id = ? AND serial_hex = ?)
			RETURNING ` + sqlstore.CertColumns
}

// UnholdCertificate implements store.Store.
func (s *Store) UnholdCertificate(ctx context.Context, issuerID, serialHex string, at time.Time, ev pki.AuditEvent) (*pki.Certificate, bool, error) {
	if at.IsZero() {
		return nil, false, fmt.Errorf("sqlite: unhold %s/%s: time is zero", issuerID, serialHex)
	}
	var out *pki.Certificate
	var changed bool
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		c, err := certInTx(ctx, tx, issuerID, serialHex)
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
		if _, err := tx.ExecContext(ctx, `UPDATE certificates
			SET status = ?, revoked_at = NULL, revoke_reason = NULL, revoked_by = '', unheld_at = ?
			WHERE issuer_id = ? AND serial_hex = ?`, string(pki.StatusValid), sqlstore.Micros(at), issuerID, serialHex); err != nil {
			return err
		}
		// The issuer's newest unhold, which its next CRL is not dated
		// before (the row exists: the hold bumped its counter).
		if _, err := tx.ExecContext(ctx, `INSERT INTO revocation_state (issuer_id, seq, unheld_at) VALUES (?, 0, ?)
			ON CONFLICT (issuer_id) DO UPDATE SET unheld_at = MAX(unheld_at, excluded.unheld_at)`,
			issuerID, sqlstore.Micros(at)); err != nil {
			return fmt.Errorf("revocation state: %w", err)
		}
		changed = true
		out, err = revocationChanged(ctx, tx, issuerID, serialHex, at, ev)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("sqlite: unhold %s/%s: %w", issuerID, serialHex, err)
	}
	return out, changed, nil
}

// revocationChanged finishes a change of revocation status inside its
// transaction: the issuer's counter moves, the event is appended, and the
// record is read back as it now stands.
func revocationChanged(ctx context.Context, tx *wtx, issuerID, serialHex string, at time.Time, ev pki.AuditEvent) (*pki.Certificate, error) {
	if err := bumpRevocationState(ctx, tx, issuerID); err != nil {
		return nil, err
	}
	if err := insertEvents(ctx, tx, at, []pki.AuditEvent{ev}); err != nil {
		return nil, err
	}
	return certInTx(ctx, tx, issuerID, serialHex)
}

// certInTx reads one certificate inside a write transaction (the write
// lock is held, so what it reads cannot change before the commit).
func certInTx(ctx context.Context, tx *wtx, issuerID, serialHex string) (*pki.Certificate, error) {
	row := tx.QueryRowContext(ctx, `SELECT `+sqlstore.CertColumns+` FROM certificates
		WHERE issuer_id = ? AND serial_hex = ?`, issuerID, serialHex)
	c, _, err := sqlstore.ScanCert(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// bumpRevocationState counts a change of revocation status under an issuer.
func bumpRevocationState(ctx context.Context, tx *wtx, issuerID string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO revocation_state (issuer_id, seq) VALUES (?, 1)
		ON CONFLICT (issuer_id) DO UPDATE SET seq = seq + 1`, issuerID)
	if err != nil {
		return fmt.Errorf("revocation state: %w", err)
	}
	return nil
}

// RevocationState implements store.Store.
func (s *Store) RevocationState(ctx context.Context) (map[string]int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT issuer_id, seq FROM revocation_state`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: revocation state: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			return nil, fmt.Errorf("sqlite: revocation state: %w", err)
		}
		out[id] = seq
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: revocation state: %w", err)
	}
	return out, nil
}

// LastUnhold implements store.Store.
func (s *Store) LastUnhold(ctx context.Context, issuerID string) (time.Time, error) {
	var at int64
	err := s.r.QueryRowContext(ctx, `SELECT unheld_at FROM revocation_state WHERE issuer_id = ?`, issuerID).Scan(&at)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return time.Time{}, nil
	case err != nil:
		return time.Time{}, fmt.Errorf("sqlite: last unhold of %s: %w", issuerID, err)
	case at == 0:
		return time.Time{}, nil
	}
	return sqlstore.FromMicros(at), nil
}

// RevokedCertificates implements store.Store.
func (s *Store) RevokedCertificates(ctx context.Context, issuerID string, notAfterAfter time.Time) ([]store.RevokedEntry, error) {
	out, err := queryAll(ctx, s.r, sqlstore.ScanRevokedEntry, `SELECT serial_hex, revoked_at, revoke_reason FROM certificates
		WHERE issuer_id = ? AND status = ? AND not_after > ?`,
		issuerID, string(pki.StatusRevoked), sqlstore.Micros(notAfterAfter))
	if err != nil {
		return nil, fmt.Errorf("sqlite: revoked certificates of %s: %w", issuerID, err)
	}
	return out, nil
}

// LatestCRL implements store.Store.
func (s *Store) LatestCRL(ctx context.Context, issuerID string) (*store.CRL, error) {
	var c store.CRL
	var this, next, created int64
	err := s.r.QueryRowContext(ctx, `SELECT issuer_id, number, this_update, next_update, revocation_seq,
		entries, der, created_at FROM crls WHERE issuer_id = ? ORDER BY number DESC LIMIT 1`, issuerID).
		Scan(&c.IssuerID, &c.Number, &this, &next, &c.RevocationSeq, &c.Entries, &c.DER, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: latest CRL of %s: %w", issuerID, err)
	}
	c.ThisUpdate, c.NextUpdate, c.CreatedAt = sqlstore.FromMicros(this), sqlstore.FromMicros(next), sqlstore.FromMicros(created)
	return &c, nil
}

// LatestCRLNumber implements store.Store.
func (s *Store) LatestCRLNumber(ctx context.Context, issuerID string) (int64, error) {
	var n sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT MAX(number) FROM crls WHERE issuer_id = ?`, issuerID).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: latest CRL number of %s: %w", issuerID, err)
	}
	if !n.Valid {
		return 0, store.ErrNotFound
	}
	return n.Int64, nil
}

// PutCRL implements store.Store.
func (s *Store) PutCRL(ctx context.Context, c store.CRL, keep int) error {
	if err := sqlstore.CheckCRL(c); err != nil {
		return fmt.Errorf("sqlite: put CRL of %s: %w", c.IssuerID, err)
	}
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		var newest int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(number), 0) FROM crls WHERE issuer_id = ?`,
			c.IssuerID).Scan(&newest); err != nil {
			return err
		}
		if c.Number <= newest {
			return fmt.Errorf("CRL number %d, but the newest stored is %d: %w", c.Number, newest, store.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO crls (issuer_id, number, this_update, next_update,
			revocation_seq, entries, der, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			c.IssuerID, c.Number, sqlstore.Micros(c.ThisUpdate), sqlstore.Micros(c.NextUpdate), c.RevocationSeq, c.Entries,
			c.DER, sqlstore.Micros(c.CreatedAt)); err != nil {
			return conflict(err)
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM crls WHERE issuer_id = ? AND number <= ?`,
			c.IssuerID, c.Number-int64(max(keep, 1)))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: put CRL %d of %s: %w", c.Number, c.IssuerID, err)
	}
	return nil
}
