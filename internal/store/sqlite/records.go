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
		if _, err := tx.ExecContext(ctx, purgeSessionsQuery, micros(now)); err != nil {
			return fmt.Errorf("sessions: %w", err)
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
	purgeSessionsQuery = `DELETE FROM sessions WHERE expires_at <= ?`
)

// auditColumns is the select list of an audit event, in the order the
// scans read it.
const auditColumns = `id, time, type, actor, profile, serial_hex, issuer_id, subject, transaction_id,
	outcome, reason, detail`

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

// insertEvents appends events inside tx, chained to the trail; a zero Time
// becomes now. The head row is read and written in the same transaction,
// whose write lock (BEGIN IMMEDIATE) keeps any other append from chaining
// to the same record. Ids are the head's plus one, so the chain's order is
// the id order even if rows were deleted behind the store's back.
func insertEvents(ctx context.Context, tx *sql.Tx, now time.Time, events []pki.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	head, err := auditHead(ctx, tx)
	if err != nil {
		return fmt.Errorf("insert audit event: %w", err)
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO audit_events
		(id, time, type, actor, profile, serial_hex, issuer_id, subject, transaction_id, outcome, reason, detail,
		 prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("insert audit event: %w", err)
	}
	defer stmt.Close()
	for _, e := range events {
		if e.Time.IsZero() {
			e.Time = now
		}
		e.Time = fromMicros(micros(e.Time)) // what is stored is what is hashed
		e.ID = head.LastID + 1
		e.Hash = pki.AuditChainHash(head.LastHash, e)
		if _, err := stmt.ExecContext(ctx, e.ID, micros(e.Time), e.Type, e.Actor, e.Profile, e.SerialHex,
			e.IssuerID, e.Subject, e.TransactionID, e.Outcome, e.Reason, e.Detail, head.LastHash, e.Hash); err != nil {
			return fmt.Errorf("insert audit event %s: %w", e.Type, err)
		}
		head = store.AuditHead{LastID: e.ID, LastHash: e.Hash, Count: head.Count + 1}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_head (one, last_id, last_hash, count) VALUES (1, ?, ?, ?)
		ON CONFLICT (one) DO UPDATE SET last_id = excluded.last_id, last_hash = excluded.last_hash, count = excluded.count`,
		head.LastID, head.LastHash, head.Count); err != nil {
		return fmt.Errorf("insert audit event: chain head: %w", err)
	}
	return nil
}

// auditHead reads the chain's head inside tx; an empty trail's is the
// genesis hash.
func auditHead(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}) (store.AuditHead, error) {
	var h store.AuditHead
	err := q.QueryRowContext(ctx, `SELECT last_id, last_hash, count FROM audit_head WHERE one = 1`).
		Scan(&h.LastID, &h.LastHash, &h.Count)
	if errors.Is(err, sql.ErrNoRows) {
		return store.AuditHead{LastHash: pki.AuditGenesis}, nil
	}
	if err != nil {
		return h, fmt.Errorf("audit chain head: %w", err)
	}
	return h, nil
}

// AuditHead implements store.Store.
func (s *Store) AuditHead(ctx context.Context) (store.AuditHead, error) {
	h, err := auditHead(ctx, s.r)
	if err != nil {
		return h, fmt.Errorf("sqlite: %w", err)
	}
	return h, nil
}

// AuditChain implements store.Store.
func (s *Store) AuditChain(ctx context.Context, afterID int64, limit int) ([]pki.AuditEvent, error) {
	if limit <= 0 {
		limit = 1000
	}
	limit = min(limit, 10000)
	rows, err := s.r.QueryContext(ctx, `SELECT `+auditColumns+`, prev_hash, hash FROM audit_events
		WHERE id > ? ORDER BY id LIMIT ?`, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit chain: %w", err)
	}
	out, err := scanAudit(rows, true)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit chain: %w", err)
	}
	return out, nil
}

// scanAudit reads auditColumns rows (followed by prev_hash and hash when
// withHashes), and closes them.
func scanAudit(rows *sql.Rows, withHashes bool) ([]pki.AuditEvent, error) {
	defer rows.Close()
	var out []pki.AuditEvent
	for rows.Next() {
		var e pki.AuditEvent
		var t int64
		dest := []any{&e.ID, &t, &e.Type, &e.Actor, &e.Profile, &e.SerialHex, &e.IssuerID,
			&e.Subject, &e.TransactionID, &e.Outcome, &e.Reason, &e.Detail}
		if withHashes {
			dest = append(dest, &e.PrevHash, &e.Hash)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		e.Time = fromMicros(t)
		out = append(out, e)
	}
	return out, rows.Err()
}

// sealAuditTrail chains the records written before the trail was a chain
// (schema version 6), in id order, the first time a store opens without a
// head row. Afterwards it does nothing: a record added later without its
// hash is not blessed here but shown by `audit verify`.
func (s *Store) sealAuditTrail(ctx context.Context) error {
	return s.withTx(ctx, func(tx *sql.Tx) error {
		var has bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM audit_head)`).Scan(&has); err != nil {
			return fmt.Errorf("seal audit trail: %w", err)
		}
		if has {
			return nil
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit_events ORDER BY id`)
		if err != nil {
			return fmt.Errorf("seal audit trail: %w", err)
		}
		events, err := scanAudit(rows, false)
		if err != nil {
			return fmt.Errorf("seal audit trail: %w", err)
		}
		head := store.AuditHead{LastHash: pki.AuditGenesis}
		for _, e := range events {
			hash := pki.AuditChainHash(head.LastHash, e)
			if _, err := tx.ExecContext(ctx, `UPDATE audit_events SET prev_hash = ?, hash = ? WHERE id = ?`,
				head.LastHash, hash, e.ID); err != nil {
				return fmt.Errorf("seal audit trail: %w", err)
			}
			head = store.AuditHead{LastID: e.ID, LastHash: hash, Count: head.Count + 1}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO audit_head (one, last_id, last_hash, count) VALUES (1, ?, ?, ?)`,
			head.LastID, head.LastHash, head.Count)
		return err
	})
}

// ListAudit implements store.Store: newest first, Limit default 100, at
// most 1000; page on with BeforeID set to the last ID returned.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]pki.AuditEvent, error) {
	q, args := auditQuery(f)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list audit: %w", err)
	}
	events, err := scanAudit(rows, false)
	if err != nil {
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
	if !f.Since.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, micros(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "time < ?")
		args = append(args, micros(f.Until))
	}
	args = append(args, pageLimit(f.Limit))
	return `SELECT ` + auditColumns + ` FROM audit_events WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY id DESC LIMIT ?`, args
}
