package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

// CreateChallenge implements store.Store. A zero ev.Time becomes
// ch.CreatedAt.
func (s *Store) CreateChallenge(ctx context.Context, ch pki.Challenge, ev pki.AuditEvent) error {
	bound, err := sqlstore.EncodeSANs(ch.BoundSANs)
	if err != nil {
		return fmt.Errorf("sqlite: create challenge %s: %w", ch.ID, err)
	}
	err = s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO challenges
			(id, hash, profile, created_at, expires_at, consumed_at, created_by, bound_subject, bound_sans)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			ch.ID, ch.Hash, ch.Profile, sqlstore.Micros(ch.CreatedAt), sqlstore.Micros(ch.ExpiresAt),
			sqlstore.NullMicros(ch.ConsumedAt), ch.CreatedBy, sqlstore.NullBytes(ch.BoundSubject), bound)
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

// LookupChallenge implements store.Store.
func (s *Store) LookupChallenge(ctx context.Context, hash []byte, now time.Time) (*pki.Challenge, error) {
	// Read whatever its state, so that a refusal can say why (ChallengeUsable).
	ch, err := sqlstore.ScanChallenge(s.readRow(ctx, `SELECT `+sqlstore.ChallengeColumns+`
		FROM challenges WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrChallengeUnusable
	} else if err == nil {
		err = sqlstore.ChallengeUsable(ch, now)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: look up challenge: %w", err)
	}
	return &ch, nil
}

// ChallengeIssued implements store.Store.
func (s *Store) ChallengeIssued(ctx context.Context, hash []byte) (string, error) {
	var ref string
	err := s.readRow(ctx, `SELECT consumed_by FROM challenges WHERE hash = ? AND consumed_at IS NOT NULL`, hash).Scan(&ref)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("sqlite: look up the certificate a challenge was used for: %w", err)
	}
	return ref, nil
}

// RecordChallengeMisuse implements store.Store. A zero ev.Time becomes now.
func (s *Store) RecordChallengeMisuse(ctx context.Context, hash []byte, now time.Time, lockAfter int, ev pki.AuditEvent) (bool, error) {
	var locked bool
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		var uses int
		err := tx.QueryRowContext(ctx, `UPDATE challenges SET failed_uses = failed_uses + 1,
			locked_at = CASE WHEN failed_uses + 1 >= ? THEN ? ELSE NULL END
			WHERE hash = ? AND consumed_at IS NULL AND locked_at IS NULL AND expires_at > ?
			RETURNING failed_uses`, lockAfter, sqlstore.Micros(now), hash, sqlstore.Micros(now)).Scan(&uses)
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
func (s *Store) ListChallenges(ctx context.Context, f store.ChallengeFilter) ([]pki.Challenge, string, error) {
	limit := sqlstore.PageLimit(f.Limit)
	cur, err := sqlstore.ParseListCursor(f.Cursor, sqlstore.CursorChallenge)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list challenges: %w", err)
	}
	// Keyset: after the previous page's last challenge in this order.
	created, rowid := int64(math.MaxInt64), int64(math.MaxInt64)
	if cur.Kind == sqlstore.CursorChallenge {
		created, rowid = cur.Time, cur.ID
	}
	var pos []sqlstore.Cursor
	out, err := queryAll(ctx, s.r, func(sc sqlstore.Scanner) (pki.Challenge, error) {
		p := sqlstore.Cursor{Kind: sqlstore.CursorChallenge}
		ch, err := sqlstore.ScanChallenge(sqlstore.Prefixed(sc, &p.Time, &p.ID))
		pos = append(pos, p)
		return ch, err
	}, `SELECT created_at, rowid, `+sqlstore.ChallengeColumns+` FROM challenges
		WHERE created_at < ? OR (created_at = ? AND rowid < ?)
		ORDER BY created_at DESC, rowid DESC LIMIT ?`, created, created, rowid, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list challenges: %w", err)
	}
	out, next := sqlstore.ListPage(out, pos, limit)
	return out, next, nil
}

// RememberNonce implements store.Store. A pair whose expiry has passed is
// forgotten even before PurgeExpired removes it: it is replaced, not refused.
func (s *Store) RememberNonce(ctx context.Context, transactionID string, senderNonce []byte, now, expires time.Time) error {
	err := s.withOrderedTx(ctx, func(ctx context.Context, tx *wtx) error {
		// One statement decides: insert a new pair, or take over an expired
		// one; a live pair matches neither and changes no row.
		res, err := tx.ExecContext(ctx, insertNonceQuery,
			transactionID, senderNonce, sqlstore.Micros(expires), sqlstore.Micros(now))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return nonceSeen(tx.QueryRowContext(ctx, nonceExpiryQuery, transactionID, senderNonce))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: remember nonce of transaction %q: %w", transactionID, err)
	}
	return nil
}

// nonceExpiryQuery reads a live pair's expiry, and whether its run ended
// refused (marked for this expiry: see MarkNonceRefused), for its replay's
// NonceSeen: a replay is rare, so the common path pays nothing for it.
const nonceExpiryQuery = `SELECT expires_at, coalesce(refused_expires_at = expires_at, 0)
	FROM nonces WHERE transaction_id = ? AND sender_nonce = ?`

// nonceSeen is the conflict of a pair that row (nonceExpiryQuery) holds:
// a NonceSeen with its expiry, or ErrConflict alone when it cannot be read.
func nonceSeen(row *sql.Row) error {
	var expires int64
	var refused bool
	if err := row.Scan(&expires, &refused); err != nil {
		// The conflict stands; only when it began is unknown.
		return fmt.Errorf("replayed nonce: %w", store.ErrConflict)
	}
	return fmt.Errorf("replayed nonce: %w", &store.NonceSeen{Expires: sqlstore.FromMicros(expires), Refused: refused})
}

// MarkNonceRefused implements store.Store. The mark is the pair's expiry
// as it is now: a pair taken over once expired has another, so the mark
// lapses with the remembering it was made for, without the hot insert
// (insertNonceQuery) clearing it.
func (s *Store) MarkNonceRefused(ctx context.Context, transactionID string, senderNonce []byte) error {
	err := s.withOrderedTx(ctx, func(ctx context.Context, tx *wtx) error {
		_, err := tx.ExecContext(ctx, `UPDATE nonces SET refused_expires_at = expires_at
			WHERE transaction_id = ? AND sender_nonce = ?`, transactionID, senderNonce)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: mark the nonce of transaction %q refused: %w", transactionID, err)
	}
	return nil
}

// ForgetNonce implements store.Store.
func (s *Store) ForgetNonce(ctx context.Context, transactionID string, senderNonce []byte) error {
	err := s.withOrderedTx(ctx, func(ctx context.Context, tx *wtx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM nonces WHERE transaction_id = ? AND sender_nonce = ?`, transactionID, senderNonce)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: forget nonce of transaction %q: %w", transactionID, err)
	}
	return nil
}

// PurgeExpired implements store.Store. It removes expired nonces and
// enrollment requests past their retention (a decided one's counted from
// its decision), whatever their status (the certificate and the audit
// trail of an issued one stay; one still pending gets its
// request.expired event): serial reservations are never released,
// and challenges stay (consumed or expired) for the console and the audit
// trail.
func (s *Store) PurgeExpired(ctx context.Context, now time.Time) error {
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		if _, err := tx.ExecContext(ctx, purgeNoncesQuery, sqlstore.Micros(now)); err != nil {
			return fmt.Errorf("nonces: %w", err)
		}
		kept := sqlstore.Micros(now.Add(-store.EndedClaimRetention))
		if _, err := tx.ExecContext(ctx, purgeClaimsQuery, kept, kept); err != nil {
			return fmt.Errorf("transaction claims: %w", err)
		}
		if err := purgeRequests(ctx, tx, now); err != nil {
			return fmt.Errorf("requests: %w", err)
		}
		if _, err := tx.ExecContext(ctx, purgeSessionsQuery, sqlstore.Micros(now)); err != nil {
			return fmt.Errorf("sessions: %w", err)
		}
		if _, err := tx.ExecContext(ctx, purgeLoginFailuresQuery, sqlstore.Micros(now)); err != nil {
			return fmt.Errorf("login failures: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: purge expired: %w", err)
	}
	return nil
}

const (
	purgeNoncesQuery = `DELETE FROM nonces WHERE expires_at <= ?`
	// A claim ended (expires_at 0, see endClaimQuery) or lapsed
	// store.EndedClaimRetention ago.
	purgeClaimsQuery   = `DELETE FROM transaction_claims WHERE expires_at <= ? AND (expires_at <> 0 OR claimed_at <= ?)`
	purgeSessionsQuery = `DELETE FROM sessions WHERE expires_at <= ?`
	// An unknown name's failures (ClaimUnknownLoginAttempt).
	purgeLoginFailuresQuery = `DELETE FROM login_failures WHERE expires_at <= ?`
)

// purgeRequestsQuery deletes the requests whose retention is over at its
// time, given twice, returning what the event of one that expired
// undecided names.
func purgeRequestsQuery() string {
	return `DELETE FROM enrollment_requests WHERE ` + sqlstore.RequestRetentionOver("?") +
		` RETURNING ` + sqlstore.ExpiredRequestColumns
}

// purgeRequests deletes the requests whose retention is over at now and
// records, in tx, a request.expired event for each that was still
// pending (sqlstore.ExpiredRequestEvents).
func purgeRequests(ctx context.Context, tx *wtx, now time.Time) error {
	rows, err := tx.QueryContext(ctx, purgeRequestsQuery(), sqlstore.Micros(now), sqlstore.Micros(now))
	if err != nil {
		return err
	}
	var purged []pki.EnrollmentRequest
	for rows.Next() {
		r, err := sqlstore.ScanExpiredRequest(rows)
		if err != nil {
			rows.Close()
			return err
		}
		purged = append(purged, r)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	return insertEvents(ctx, tx, now, sqlstore.ExpiredRequestEvents(purged, now))
}

// AppendAudit implements store.Store. Every event needs its Time: the store
// has no clock of its own.
func (s *Store) AppendAudit(ctx context.Context, events ...pki.AuditEvent) error {
	if err := sqlstore.CheckEventTimes(events); err != nil {
		return fmt.Errorf("sqlite: append audit: %w", err)
	}
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
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
func insertEvents(ctx context.Context, tx *wtx, now time.Time, events []pki.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	head, err := appendHead(ctx, tx)
	if err != nil {
		return fmt.Errorf("insert audit event: %w", err)
	}
	if head.LastID == 0 {
		// Only on an empty trail's first append, so off the hot path: open
		// writes the head of every trail but a wiped one, so records
		// without one had it removed, and certificates without a head (or
		// a record) had their trail wiped whole. The certificate this
		// transaction records is among them, but a fresh store has its
		// head.
		var any, sealed, certs bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM audit_events), EXISTS (SELECT 1 FROM audit_head),
			EXISTS (SELECT 1 FROM certificates)`).Scan(&any, &sealed, &certs); err != nil {
			return fmt.Errorf("insert audit event: %w", err)
		}
		if any {
			return fmt.Errorf("insert audit event: the trail has records but no head: %w", store.ErrAuditTampered)
		}
		if !sealed && certs {
			return fmt.Errorf("insert audit event: the trail has neither records nor a head, though the store holds certificates: %w", store.ErrAuditTampered)
		}
	}
	stmt, err := tx.PrepareContext(ctx, insertAuditEventQuery)
	if err != nil {
		return fmt.Errorf("insert audit event: %w", err)
	}
	defer stmt.Close()
	for _, e := range events {
		if e.Time.IsZero() {
			e.Time = now
		}
		e.Time = sqlstore.FromMicros(sqlstore.Micros(e.Time)) // what is stored is what is hashed
		e.ID = head.LastID + 1
		e.Hash = pki.AuditChainHash(head.LastHash, e)
		if _, err := stmt.ExecContext(ctx, e.ID, sqlstore.Micros(e.Time), e.Type, e.Actor, e.Profile, e.SerialHex,
			e.IssuerID, e.Subject, e.TransactionID, e.Outcome, e.Reason, e.Detail, head.LastHash, e.Hash); err != nil {
			if isUnique(err) {
				// The driver's error is kept as text only: a caller's
				// conflict() must not take it for a uniqueness rule of its
				// own change.
				return fmt.Errorf("insert audit event %s: record %d exists after the head: %w (%v)", e.Type, e.ID, store.ErrAuditTampered, err)
			}
			return fmt.Errorf("insert audit event %s: %w", e.Type, err)
		}
		head = store.AuditHead{LastID: e.ID, LastHash: e.Hash, Count: head.Count + 1}
	}
	if _, err := tx.ExecContext(ctx, updateAuditHeadQuery,
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
	err := q.QueryRowContext(ctx, auditHeadQuery).
		Scan(&h.LastID, &h.LastHash, &h.Count)
	if errors.Is(err, sql.ErrNoRows) {
		return store.AuditHead{LastHash: pki.AuditGenesis}, nil
	}
	if err != nil {
		return h, fmt.Errorf("audit chain head: %w", err)
	}
	return h, nil
}

// appendHead is auditHead for an append, which refuses a trail with a
// record after its head (renumbered or written outside scepter): chained
// on, the new records would fill the gap below it and lengthen a trail
// that no longer verifies. The newest id is read in the head's statement,
// as max over the primary key is one B-tree seek, so every issuance pays
// no statement more for it.
func appendHead(ctx context.Context, tx *wtx) (store.AuditHead, error) {
	h := store.AuditHead{LastHash: pki.AuditGenesis}
	var newest int64
	err := tx.QueryRowContext(ctx, appendHeadQuery).Scan(&h.LastID, &h.LastHash, &h.Count, &newest)
	if errors.Is(err, sql.ErrNoRows) {
		return h, nil // no head: insertEvents looks at why
	}
	if err != nil {
		return h, fmt.Errorf("audit chain head: %w", err)
	}
	if newest > h.LastID {
		return h, fmt.Errorf("audit chain head: record %d comes after the head, record %d: %w",
			newest, h.LastID, store.ErrAuditTampered)
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
	rows, err := s.r.QueryContext(ctx, `SELECT `+sqlstore.AuditColumns+`, prev_hash, hash FROM audit_events
		WHERE id > ? OR (? AND id = ?) ORDER BY id LIMIT ?`, afterID, afterID == math.MinInt64, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit chain: %w", err)
	}
	out, err := scanAudit(rows, true)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit chain: %w", err)
	}
	return out, nil
}

// scanAudit reads sqlstore.AuditColumns rows (followed by prev_hash and
// hash when withHashes), and closes them.
func scanAudit(rows *sql.Rows, withHashes bool) ([]pki.AuditEvent, error) {
	defer rows.Close()
	var out []pki.AuditEvent
	for rows.Next() {
		var e pki.AuditEvent
		var t int64
		if err := rows.Scan(sqlstore.AuditDest(&e, &t, withHashes)...); err != nil {
			return nil, err
		}
		e.Time = sqlstore.FromMicros(t)
		out = append(out, e)
	}
	return out, rows.Err()
}

// sealAuditTrail chains the records written before the trail was a chain
// (schema version 6), in id order, the first time a store opens without a
// head row. Afterwards it does nothing: a record added later without its
// hash is not blessed here but shown by `audit verify`.
func (s *Store) sealAuditTrail(ctx context.Context) error {
	return s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		var has bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM audit_head)`).Scan(&has); err != nil {
			return fmt.Errorf("seal audit trail: %w", err)
		}
		if has {
			return nil
		}
		// Records that carry hashes were chained by scepter: a head gone
		// missing under them is tampering (deleted to have the trail
		// resealed over an edit), for `audit verify` to report, never to
		// bless here.
		var chained bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM audit_events WHERE hash IS NOT NULL)`).Scan(&chained); err != nil {
			return fmt.Errorf("seal audit trail: %w", err)
		}
		if chained {
			return nil
		}
		// Nor is a trail wiped whole (records and head) beside the
		// certificates each recorded with its event: a head written here
		// would have it start again as a fresh store's.
		if wiped, err := wipedTrail(ctx, tx); err != nil || wiped {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+sqlstore.AuditColumns+` FROM audit_events ORDER BY id`)
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

// wipedTrail reports, in sealAuditTrail, a trail without records in a
// store that holds certificates.
func wipedTrail(ctx context.Context, tx *wtx) (bool, error) {
	var wiped bool
	err := tx.QueryRowContext(ctx, `SELECT NOT EXISTS (SELECT 1 FROM audit_events) AND EXISTS (SELECT 1 FROM certificates)`).Scan(&wiped)
	if err != nil {
		return false, fmt.Errorf("seal audit trail: %w", err)
	}
	return wiped, nil
}

// ListAudit implements store.Store: newest first, Limit default 100, at
// most 1000; page on with BeforeID set to the last ID returned.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]pki.AuditEvent, error) {
	var a sqlstore.Args
	rows, err := s.r.QueryContext(ctx, sqlstore.AuditQuery(f, &a, nil), a.Values...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list audit: %w", err)
	}
	events, err := scanAudit(rows, false)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list audit: %w", err)
	}
	return events, nil
}

// The statements of RememberNonce and insertEvents (hot: see hot.go).
const (
	insertNonceQuery = `INSERT INTO nonces (transaction_id, sender_nonce, expires_at)
			VALUES (?, ?, ?)
			ON CONFLICT (transaction_id, sender_nonce) DO UPDATE SET expires_at = excluded.expires_at
			WHERE nonces.expires_at <= ?`
	insertAuditEventQuery = `INSERT INTO audit_events
		(id, time, type, actor, profile, serial_hex, issuer_id, subject, transaction_id, outcome, reason, detail,
		 prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	updateAuditHeadQuery = `INSERT INTO audit_head (one, last_id, last_hash, count) VALUES (1, ?, ?, ?)
		ON CONFLICT (one) DO UPDATE SET last_id = excluded.last_id, last_hash = excluded.last_hash, count = excluded.count`
	auditHeadQuery = `SELECT last_id, last_hash, count FROM audit_head WHERE one = 1`
	// appendHeadQuery is auditHeadQuery with the trail's newest id beside
	// the head (appendHead).
	appendHeadQuery = `SELECT last_id, last_hash, count, coalesce((SELECT max(id) FROM audit_events), 0) FROM audit_head WHERE one = 1`
)
