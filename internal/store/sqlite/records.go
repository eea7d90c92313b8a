package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// CreateChallenge implements store.Store. A zero ev.Time becomes
// ch.CreatedAt.
func (s *Store) CreateChallenge(ctx context.Context, ch pki.Challenge, ev pki.AuditEvent) error {
	bound, err := encodeSANs(ch.BoundSANs)
	if err != nil {
		return fmt.Errorf("sqlite: create challenge %s: %w", ch.ID, err)
	}
	var subject any
	if len(ch.BoundSubject) > 0 {
		subject = ch.BoundSubject
	}
	err = s.withTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO challenges
			(id, hash, profile, created_at, expires_at, consumed_at, created_by, bound_subject, bound_sans)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			ch.ID, ch.Hash, ch.Profile, micros(ch.CreatedAt), micros(ch.ExpiresAt),
			nullMicros(ch.ConsumedAt), ch.CreatedBy, subject, bound)
		if err != nil {
			return conflict(err)
		}
		return insertEvents(ctx, tx, ch.CreatedAt, []pki.AuditEvent{ev})
	})
	if err != nil {
		return fmt.Errorf("sqlite: create challenge %s: %w", ch.ID, err)
	}
	return nil
}

const challengeColumns = `id, hash, profile, created_at, expires_at, consumed_at, created_by,
	bound_subject, bound_sans, failed_uses, locked_at`

func scanChallenge(sc scanner) (pki.Challenge, error) {
	var (
		ch               pki.Challenge
		created, expires int64
		consumed, locked sql.NullInt64
		subject          []byte
		bound            string
	)
	err := sc.Scan(&ch.ID, &ch.Hash, &ch.Profile, &created, &expires, &consumed, &ch.CreatedBy,
		&subject, &bound, &ch.FailedUses, &locked)
	if err != nil {
		return ch, err
	}
	if len(subject) > 0 {
		ch.BoundSubject = subject
	}
	if ch.BoundSANs, err = decodeSANs(bound); err != nil {
		return ch, fmt.Errorf("challenge %s: %w", ch.ID, err)
	}
	ch.CreatedAt = fromMicros(created)
	ch.ExpiresAt = fromMicros(expires)
	ch.ConsumedAt = fromNullMicros(consumed)
	ch.LockedAt = fromNullMicros(locked)
	return ch, nil
}

// LookupChallenge implements store.Store.
func (s *Store) LookupChallenge(ctx context.Context, hash []byte, now time.Time) (*pki.Challenge, error) {
	ch, err := scanChallenge(s.r.QueryRowContext(ctx, `SELECT `+challengeColumns+`
		FROM challenges WHERE hash = ? AND consumed_at IS NULL AND locked_at IS NULL AND expires_at > ?`, hash, micros(now)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: look up challenge: %w", store.ErrChallengeUnusable)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: look up challenge: %w", err)
	}
	return &ch, nil
}

// RecordChallengeMisuse implements store.Store. A zero ev.Time becomes now.
func (s *Store) RecordChallengeMisuse(ctx context.Context, hash []byte, now time.Time, lockAfter int, ev pki.AuditEvent) (bool, error) {
	var locked bool
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		var uses int
		err := tx.QueryRowContext(ctx, `UPDATE challenges SET failed_uses = failed_uses + 1,
			locked_at = CASE WHEN failed_uses + 1 >= ? THEN ? ELSE NULL END
			WHERE hash = ? AND consumed_at IS NULL AND locked_at IS NULL AND expires_at > ?
			RETURNING failed_uses`, lockAfter, micros(now), hash, micros(now)).Scan(&uses)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrChallengeUnusable
		}
		if err != nil {
			return err
		}
		locked = uses >= lockAfter
		return insertEvents(ctx, tx, now, []pki.AuditEvent{ev})
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: record challenge misuse: %w", err)
	}
	return locked, nil
}

// ListChallenges implements store.Store.
func (s *Store) ListChallenges(ctx context.Context, limit int) ([]pki.Challenge, error) {
	if limit <= 0 {
		limit = defaultLimit
	}
	limit = min(limit, maxLimit)
	rows, err := s.r.QueryContext(ctx, `SELECT `+challengeColumns+` FROM challenges ORDER BY created_at DESC, rowid DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list challenges: %w", err)
	}
	defer rows.Close()
	var out []pki.Challenge
	for rows.Next() {
		ch, err := scanChallenge(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list challenges: %w", err)
		}
		out = append(out, ch)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list challenges: %w", err)
	}
	return out, nil
}

// RememberNonce implements store.Store. A pair whose expiry has passed is
// forgotten even before PurgeExpired removes it: it is replaced, not refused.
func (s *Store) RememberNonce(ctx context.Context, transactionID string, senderNonce []byte, now, expires time.Time) error {
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		// One statement decides: insert a new pair, or take over an expired
		// one; a live pair matches neither and changes no row.
		res, err := tx.ExecContext(ctx, `INSERT INTO nonces (transaction_id, sender_nonce, expires_at)
			VALUES (?, ?, ?)
			ON CONFLICT (transaction_id, sender_nonce) DO UPDATE SET expires_at = excluded.expires_at
			WHERE nonces.expires_at <= ?`,
			transactionID, senderNonce, micros(expires), micros(now))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("replayed nonce: %w", store.ErrConflict)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: remember nonce of transaction %q: %w", transactionID, err)
	}
	return nil
}

// PurgeExpired implements store.Store. It removes expired nonces and
// enrollment requests past their retention, whatever their status (the
// certificate and the audit trail of an issued one stay): serial
// reservations are never released, and challenges stay (consumed or
// expired) for the console and the audit trail.
func (s *Store) PurgeExpired(ctx context.Context, now time.Time) error {
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, purgeNoncesQuery, micros(now)); err != nil {
			return fmt.Errorf("nonces: %w", err)
		}
		if _, err := tx.ExecContext(ctx, purgeRequestsQuery, micros(now)); err != nil {
			return fmt.Errorf("requests: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: purge expired: %w", err)
	}
	return nil
}

const (
	purgeNoncesQuery   = `DELETE FROM nonces WHERE expires_at <= ?`
	purgeRequestsQuery = `DELETE FROM enrollment_requests WHERE expires_at <= ?`
)

// AppendAudit implements store.Store. Every event needs its Time: the store
// has no clock of its own.
func (s *Store) AppendAudit(ctx context.Context, events ...pki.AuditEvent) error {
	for i := range events {
		if events[i].Time.IsZero() {
			return fmt.Errorf("sqlite: append audit: event %d (%s) has no time", i, events[i].Type)
		}
	}
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		return insertEvents(ctx, tx, time.Time{}, events)
	})
	if err != nil {
		return fmt.Errorf("sqlite: append audit: %w", err)
	}
	return nil
}

// insertEvents appends events inside tx; a zero Time becomes now.
func insertEvents(ctx context.Context, tx *sql.Tx, now time.Time, events []pki.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO audit_events
		(time, type, actor, profile, serial_hex, issuer_id, subject, transaction_id, outcome, reason, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("insert audit event: %w", err)
	}
	defer stmt.Close()
	for _, e := range events {
		t := e.Time
		if t.IsZero() {
			t = now
		}
		if _, err := stmt.ExecContext(ctx, micros(t), e.Type, e.Actor, e.Profile, e.SerialHex,
			e.IssuerID, e.Subject, e.TransactionID, e.Outcome, e.Reason, e.Detail); err != nil {
			return fmt.Errorf("insert audit event %s: %w", e.Type, err)
		}
	}
	return nil
}

// ListAudit implements store.Store: newest first, Limit default 100, at
// most 1000; page on with BeforeID set to the last ID returned.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]pki.AuditEvent, error) {
	q, args := auditQuery(f)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list audit: %w", err)
	}
	defer rows.Close()
	var events []pki.AuditEvent
	for rows.Next() {
		var e pki.AuditEvent
		var t int64
		if err := rows.Scan(&e.ID, &t, &e.Type, &e.Actor, &e.Profile, &e.SerialHex, &e.IssuerID,
			&e.Subject, &e.TransactionID, &e.Outcome, &e.Reason, &e.Detail); err != nil {
			return nil, fmt.Errorf("sqlite: list audit: %w", err)
		}
		e.Time = fromMicros(t)
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list audit: %w", err)
	}
	return events, nil
}

func auditQuery(f store.AuditFilter) (string, []any) {
	where := []string{"id < ?"}
	args := []any{int64(1<<63 - 1)}
	if f.BeforeID > 0 {
		args[0] = f.BeforeID
	}
	if f.Type != "" {
		where = append(where, "type = ?")
		args = append(args, f.Type)
	}
	if f.SerialHex != "" {
		where = append(where, "serial_hex = ?")
		args = append(args, f.SerialHex)
	}
	args = append(args, pageLimit(f.Limit))
	return `SELECT id, time, type, actor, profile, serial_hex, issuer_id, subject, transaction_id,
		outcome, reason, detail FROM audit_events WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY id DESC LIMIT ?`, args
}
