package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

// CreateChallenge implements store.Store. A zero ev.Time becomes
// ch.CreatedAt.
func (s *Store) CreateChallenge(ctx context.Context, ch pki.Challenge, ev pki.AuditEvent) error {
	bound, err := sqlstore.EncodeSANs(ch.BoundSANs)
	if err != nil {
		return pgError("postgres: create challenge %s: %w", ch.ID, err)
	}
	err = s.withTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO challenges
			(id, hash, profile, created_at, expires_at, consumed_at, created_by, bound_subject, bound_sans)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			ch.ID, ch.Hash, ch.Profile, sqlstore.Micros(ch.CreatedAt), sqlstore.Micros(ch.ExpiresAt),
			sqlstore.NullMicros(ch.ConsumedAt), ch.CreatedBy, sqlstore.NullBytes(ch.BoundSubject), bound)
		if err != nil {
			return conflict(err)
		}
		return insertEvents(ctx, tx, ch.CreatedAt, []pki.AuditEvent{ev})
	})
	if err != nil {
		return pgError("postgres: create challenge %s: %w", ch.ID, err)
	}
	return nil
}

// LookupChallenge implements store.Store.
func (s *Store) LookupChallenge(ctx context.Context, hash []byte, now time.Time) (*pki.Challenge, error) {
	// Read whatever its state, so that a refusal can say why (ChallengeUsable).
	ch, err := sqlstore.ScanChallenge(s.queryRow(ctx, `SELECT `+sqlstore.ChallengeColumns+`
		FROM challenges WHERE hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrChallengeUnusable
	} else if err == nil {
		err = sqlstore.ChallengeUsable(ch, now)
	}
	if err != nil {
		return nil, pgError("postgres: look up challenge: %w", err)
	}
	return &ch, nil
}

// ChallengeIssued implements store.Store.
func (s *Store) ChallengeIssued(ctx context.Context, hash []byte) (string, error) {
	var ref string
	err := s.queryRow(ctx, `SELECT consumed_by FROM challenges WHERE hash = $1 AND consumed_at IS NOT NULL`, hash).Scan(&ref)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", pgError("postgres: look up the certificate a challenge was used for: %w", err)
	}
	return ref, nil
}

// RecordChallengeMisuse implements store.Store. A zero ev.Time becomes now.
// The UPDATE counts and locks in one statement, on the row as committed by
// any concurrent misuse.
func (s *Store) RecordChallengeMisuse(ctx context.Context, hash []byte, now time.Time, lockAfter int, ev pki.AuditEvent) (bool, error) {
	var locked bool
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		var uses int
		err := tx.QueryRow(ctx, `UPDATE challenges SET failed_uses = failed_uses + 1,
			locked_at = CASE WHEN failed_uses + 1 >= $1::integer THEN $2::bigint ELSE NULL END
			WHERE hash = $3 AND consumed_at IS NULL AND locked_at IS NULL AND expires_at > $2::bigint
			RETURNING failed_uses`, lockAfter, sqlstore.Micros(now), hash).Scan(&uses)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrChallengeUnusable
		}
		if err != nil {
			return err
		}
		locked = uses >= lockAfter
		return insertEvents(ctx, tx, now, []pki.AuditEvent{ev})
	})
	if err != nil {
		return false, pgError("postgres: record challenge misuse: %w", err)
	}
	return locked, nil
}

// ListChallenges implements store.Store: newest first, insertion order
// breaking ties.
func (s *Store) ListChallenges(ctx context.Context, f store.ChallengeFilter) ([]pki.Challenge, string, error) {
	limit := sqlstore.PageLimit(f.Limit)
	cur, err := sqlstore.ParseListCursor(f.Cursor, sqlstore.CursorChallenge)
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list challenges: %w", err)
	}
	// Keyset: after the previous page's last challenge in this order.
	created, seq := int64(math.MaxInt64), int64(math.MaxInt64)
	if cur.Kind == sqlstore.CursorChallenge {
		created, seq = cur.Time, cur.ID
	}
	var pos []sqlstore.Cursor
	out, err := queryAll(ctx, s.pool, func(sc sqlstore.Scanner) (pki.Challenge, error) {
		p := sqlstore.Cursor{Kind: sqlstore.CursorChallenge}
		ch, err := sqlstore.ScanChallenge(sqlstore.Prefixed(sc, &p.Time, &p.ID))
		pos = append(pos, p)
		return ch, err
	}, `SELECT created_at, seq, `+sqlstore.ChallengeColumns+` FROM challenges
		WHERE created_at < $1 OR (created_at = $1 AND seq < $2)
		ORDER BY created_at DESC, seq DESC LIMIT $3`, created, seq, limit+1)
	if err != nil {
		return nil, "", pgError("postgres: list challenges: %w", err)
	}
	out, next := sqlstore.ListPage(out, pos, limit)
	return out, next, nil
}

// RememberNonce implements store.Store. A pair whose expiry has passed is
// forgotten even before PurgeExpired removes it: it is replaced, not refused.
func (s *Store) RememberNonce(ctx context.Context, transactionID string, senderNonce []byte, now, expires time.Time) error {
	err := s.withOrderedStatement(ctx, func(db execer) error {
		// One statement decides: insert a new pair, or take over an expired
		// one; a live pair matches neither and changes no row. A concurrent
		// insert of the same pair waits for this one and then finds it live.
		tag, err := db.Exec(ctx, `INSERT INTO nonces (transaction_id, sender_nonce, expires_at)
			VALUES ($1, $2, $3)
			ON CONFLICT (transaction_id, sender_nonce) DO UPDATE SET expires_at = excluded.expires_at
			WHERE nonces.expires_at <= $4`,
			transactionID, senderNonce, sqlstore.Micros(expires), sqlstore.Micros(now))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return errNonceLive
		}
		return nil
	})
	if errors.Is(err, errNonceLive) {
		err = s.nonceSeen(ctx, transactionID, senderNonce)
	}
	if err != nil {
		return pgError("postgres: remember nonce of transaction %q: %w", transactionID, err)
	}
	return nil
}

// errNonceLive: RememberNonce found the pair remembered and live.
var errNonceLive = errors.New("postgres: nonce live")

// nonceSeen is the conflict of a live pair: a NonceSeen with its expiry,
// read apart (a replay is rare, so the common path pays nothing for it),
// or ErrConflict alone when it cannot be read.
func (s *Store) nonceSeen(ctx context.Context, transactionID string, senderNonce []byte) error {
	var expires int64
	var refused bool
	// Refused only when marked for this expiry (see MarkNonceRefused).
	err := s.queryRow(ctx, `SELECT expires_at, coalesce(refused_expires_at = expires_at, false)
		FROM nonces WHERE transaction_id = $1 AND sender_nonce = $2`,
		transactionID, senderNonce).Scan(&expires, &refused)
	if err != nil {
		// The conflict stands; only when it began is unknown.
		return fmt.Errorf("replayed nonce: %w", store.ErrConflict)
	}
	return fmt.Errorf("replayed nonce: %w", &store.NonceSeen{Expires: sqlstore.FromMicros(expires), Refused: refused})
}

// MarkNonceRefused implements store.Store. The mark is the pair's expiry
// as it is now: a pair taken over once expired has another, so the mark
// lapses with the remembering it was made for, without RememberNonce's
// insert clearing it (nor a node of before the mark, which knows nothing
// of it).
func (s *Store) MarkNonceRefused(ctx context.Context, transactionID string, senderNonce []byte) error {
	err := s.withOrderedStatement(ctx, func(db execer) error {
		_, err := db.Exec(ctx, `UPDATE nonces SET refused_expires_at = expires_at
			WHERE transaction_id = $1 AND sender_nonce = $2`, transactionID, senderNonce)
		return err
	})
	if err != nil {
		return pgError("postgres: mark the nonce of transaction %q refused: %w", transactionID, err)
	}
	return nil
}

// ForgetNonce implements store.Store.
func (s *Store) ForgetNonce(ctx context.Context, transactionID string, senderNonce []byte) error {
	err := s.withOrderedStatement(ctx, func(db execer) error {
		_, err := db.Exec(ctx, `DELETE FROM nonces WHERE transaction_id = $1 AND sender_nonce = $2`, transactionID, senderNonce)
		return err
	})
	if err != nil {
		return pgError("postgres: forget nonce of transaction %q: %w", transactionID, err)
	}
	return nil
}

// PurgeExpired implements store.Store. It removes expired nonces, console
// sessions and enrollment requests past their retention (a decided one's
// counted from its decision), whatever their status (the certificate and
// the audit trail of an issued one stay; one still pending gets its
// request.expired event): serial reservations are never
// released, and challenges stay (consumed or expired) for the console and
// the audit trail.
func (s *Store) PurgeExpired(ctx context.Context, now time.Time) error {
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM nonces WHERE expires_at <= $1`, sqlstore.Micros(now)); err != nil {
			return fmt.Errorf("nonces: %w", err)
		}
		// A claim ended (expires_at 0, see newClaimedIssuanceRows) or
		// lapsed store.EndedClaimRetention ago.
		if _, err := tx.Exec(ctx, `DELETE FROM transaction_claims WHERE expires_at <= $1 AND (expires_at <> 0 OR claimed_at <= $1)`,
			sqlstore.Micros(now.Add(-store.EndedClaimRetention))); err != nil {
			return fmt.Errorf("transaction claims: %w", err)
		}
		// Nodes purging at once delete each row once (a DELETE that
		// waited for another's finds the row gone and skips it), so
		// each request that expired undecided gets its event once.
		purged, err := queryAll(ctx, tx, scanExpiredRequest, `DELETE FROM enrollment_requests WHERE `+
			sqlstore.RequestRetentionOver("$1")+` RETURNING `+sqlstore.ExpiredRequestColumns, sqlstore.Micros(now))
		if err != nil {
			return fmt.Errorf("requests: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE expires_at <= $1`, sqlstore.Micros(now)); err != nil {
			return fmt.Errorf("sessions: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM login_failures WHERE expires_at <= $1`, sqlstore.Micros(now)); err != nil {
			return fmt.Errorf("login failures: %w", err)
		}
		// Last, holding the trail's head only to append and commit.
		if err := insertEvents(ctx, tx, now, sqlstore.ExpiredRequestEvents(purged, now)); err != nil {
			return fmt.Errorf("expired requests' events: %w", err)
		}
		return nil
	})
	if err != nil {
		return pgError("postgres: purge expired: %w", err)
	}
	return nil
}

// scanExpiredRequest is sqlstore.ScanExpiredRequest with the subject
// decoded (encText).
func scanExpiredRequest(sc sqlstore.Scanner) (pki.EnrollmentRequest, error) {
	r, err := sqlstore.ScanExpiredRequest(sc)
	r.Subject = decText(r.Subject)
	return r, err
}

// AppendAudit implements store.Store. Every event needs its Time: the store
// has no clock of its own.
func (s *Store) AppendAudit(ctx context.Context, events ...pki.AuditEvent) error {
	if err := sqlstore.CheckEventTimes(events); err != nil {
		return pgError("postgres: append audit: %w", err)
	}
	if len(events) == 0 {
		return nil
	}
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		return insertEvents(ctx, tx, time.Time{}, events)
	})
	if err != nil {
		return pgError("postgres: append audit: %w", err)
	}
	return nil
}

// insertEvents appends events inside tx, chained to the trail; a zero Time
// becomes now. The head row is read FOR UPDATE and written in the same
// transaction: an appender on any node waits here until the one before it
// has committed, and then reads the head that one wrote, so no two appends
// chain to the same record. Ids are the head's plus one, so the chain's
// order is the id order even if rows were deleted behind the store's back.
// Callers append last in their transactions, so the head is held only for
// the appending and the commit.
func insertEvents(ctx context.Context, tx pgx.Tx, now time.Time, events []pki.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	head, err := lockAuditHead(ctx, tx)
	if err != nil {
		return fmt.Errorf("insert audit event: %w", err)
	}
	return appendEvents(ctx, tx, head, now, events)
}

// appendEvents is insertEvents after the chain's head, locked, was read.
func appendEvents(ctx context.Context, tx pgx.Tx, head store.AuditHead, now time.Time, events []pki.AuditEvent) error {
	var b pgx.Batch
	for _, e := range events {
		e = chainEvent(e, now)
		e.ID = head.LastID + 1
		e.Hash = pki.AuditChainHash(head.LastHash, e)
		b.Queue(`INSERT INTO audit_events
			(id, time, type, actor, profile, serial_hex, issuer_id, subject, transaction_id, outcome, reason, detail,
			 prev_hash, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			e.ID, sqlstore.Micros(e.Time), encText(e.Type), encText(e.Actor), encText(e.Profile), encText(e.SerialHex),
			encText(e.IssuerID), encText(e.Subject), encText(e.TransactionID), encText(e.Outcome), encText(e.Reason),
			encText(e.Detail), head.LastHash, e.Hash)
		head = store.AuditHead{LastID: e.ID, LastHash: e.Hash, Count: head.Count + 1}
	}
	b.Queue(`UPDATE audit_head SET last_id = $1, last_hash = $2, count = $3 WHERE one = 1`,
		head.LastID, head.LastHash, head.Count)
	br := tx.SendBatch(ctx, &b)
	defer br.Close()
	for range b.Len() {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("insert audit event: %w", afterHead(err))
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("insert audit event: %w", err)
	}
	return nil
}

// afterHead is the error of an audit event's insert: a uniqueness violation
// there (the only rule an append can break) means a record was written
// after the head outside scepter, store.ErrAuditTampered. The server's
// error is kept as text only, so that a caller's conflict() does not take
// it for a rule of its own change.
func afterHead(err error) error {
	if isUnique(err) {
		return fmt.Errorf("a record exists after the head: %w (%v)", store.ErrAuditTampered, err)
	}
	return err
}

// chainEvent is e as it is stored and hashed: at now when it has no time of
// its own, and to the microsecond.
func chainEvent(e pki.AuditEvent, now time.Time) pki.AuditEvent {
	if e.Time.IsZero() {
		e.Time = now
	}
	e.Time = sqlstore.FromMicros(sqlstore.Micros(e.Time))
	return e
}

// lockHeadQuery reads the chain's head and locks it until the transaction
// ends: every appender takes its turn there. Beside it is the trail's
// newest id (max over the primary key, one index seek), so that a record
// after the head costs no statement more to find.
const lockHeadQuery = `SELECT last_id, last_hash, count, coalesce((SELECT max(id) FROM audit_events), 0) FROM audit_head WHERE one = 1 FOR UPDATE`

// lockAuditHead reads the chain's head FOR UPDATE, and refuses a trail with
// a record after it (scanHead). Open makes sure the row exists; should it
// have been deleted behind the store's back, the table is locked against
// every other appender, and then a trail that has records is refused (store.ErrAuditTampered: chaining on would bless the removal),
// as is an empty one in a store that holds certificates (wiped whole), and
// an empty one in a store without any starts again from the genesis hash.
func lockAuditHead(ctx context.Context, tx pgx.Tx) (store.AuditHead, error) {
	h, locked, err := scanHead(tx.QueryRow(ctx, lockHeadQuery))
	if err != nil || locked {
		return h, err
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE audit_head IN EXCLUSIVE MODE`); err != nil {
		return h, fmt.Errorf("audit chain head: %w", err)
	}
	err = tx.QueryRow(ctx, `SELECT last_id, last_hash, count FROM audit_head WHERE one = 1`).
		Scan(&h.LastID, &h.LastHash, &h.Count)
	if err == nil {
		return h, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return h, fmt.Errorf("audit chain head: %w", err)
	}
	// Certificates without a head or a record had their trail wiped
	// whole (Open writes no head then). The certificate this transaction
	// records is among them, but a fresh store has its head.
	var any, certs bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM audit_events), EXISTS (SELECT 1 FROM certificates)`).Scan(&any, &certs); err != nil {
		return h, fmt.Errorf("audit chain head: %w", err)
	}
	if any {
		return h, fmt.Errorf("audit chain head: the trail has records but no head: %w", store.ErrAuditTampered)
	}
	if certs {
		return h, fmt.Errorf("audit chain head: the trail has neither records nor a head, though the store holds certificates: %w", store.ErrAuditTampered)
	}
	h = store.AuditHead{LastHash: pki.AuditGenesis}
	if _, err := tx.Exec(ctx, `INSERT INTO audit_head (one, last_id, last_hash, count) VALUES (1, $1, $2, 0)`,
		h.LastID, h.LastHash); err != nil {
		return h, fmt.Errorf("audit chain head: %w", err)
	}
	return h, nil
}

// AuditHead implements store.Store.
func (s *Store) AuditHead(ctx context.Context) (store.AuditHead, error) {
	var h store.AuditHead
	err := s.queryRow(ctx, `SELECT last_id, last_hash, count FROM audit_head WHERE one = 1`).
		Scan(&h.LastID, &h.LastHash, &h.Count)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.AuditHead{LastHash: pki.AuditGenesis}, nil
	}
	if err != nil {
		return h, pgError("postgres: audit chain head: %w", err)
	}
	return h, nil
}

// AuditChain implements store.Store.
func (s *Store) AuditChain(ctx context.Context, afterID int64, limit int) ([]pki.AuditEvent, error) {
	if limit <= 0 {
		limit = 1000
	}
	limit = min(limit, 10000)
	rows, err := s.query(ctx, `SELECT `+sqlstore.AuditColumns+`, prev_hash, hash FROM audit_events
		WHERE id > $1 OR ($3 AND id = $1) ORDER BY id LIMIT $2`, afterID, limit, afterID == math.MinInt64)
	if err != nil {
		return nil, pgError("postgres: audit chain: %w", err)
	}
	out, err := scanAudit(rows, true)
	if err != nil {
		return nil, pgError("postgres: audit chain: %w", err)
	}
	return out, nil
}

// scanAudit reads sqlstore.AuditColumns rows (followed by prev_hash and
// hash when withHashes), and closes them.
func scanAudit(rows pgx.Rows, withHashes bool) ([]pki.AuditEvent, error) {
	defer rows.Close()
	var out []pki.AuditEvent
	for rows.Next() {
		var e pki.AuditEvent
		var t int64
		if err := rows.Scan(sqlstore.AuditDest(&e, &t, withHashes)...); err != nil {
			return nil, err
		}
		e.Time = sqlstore.FromMicros(t)
		for _, f := range []*string{&e.Type, &e.Actor, &e.Profile, &e.SerialHex, &e.IssuerID, &e.Subject,
			&e.TransactionID, &e.Outcome, &e.Reason, &e.Detail} {
			*f = decText(*f)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// sealAuditTrail makes sure the chain has its head row. The first start
// that finds none chains the records written before the trail was a chain
// (schema version 6), in id order; on a new database there are none, and
// the head is the genesis. It runs under a transaction-level advisory lock
// on the migration key, so nodes starting together seal once. Afterwards
// it does nothing: a record added later without its hash is not blessed
// here but shown by `audit verify`. A trail with its head is not locked
// for at all: a node starts while another session holds the lock.
func (s *Store) sealAuditTrail(ctx context.Context) error {
	var sealed bool
	if err := s.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM audit_head)`).Scan(&sealed); err != nil {
		return fmt.Errorf("seal audit trail: %w", err)
	}
	if sealed {
		return nil
	}
	return s.withTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLockKey); err != nil {
			return fmt.Errorf("seal audit trail: %w", err)
		}
		var has bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM audit_head)`).Scan(&has); err != nil {
			return fmt.Errorf("seal audit trail: %w", err)
		}
		if has {
			return nil
		}
		// Records that carry hashes were chained by scepter: a head gone
		// missing under them is tampering, for `audit verify` to report,
		// never to bless here.
		var chained bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM audit_events WHERE hash IS NOT NULL)`).Scan(&chained); err != nil {
			return fmt.Errorf("seal audit trail: %w", err)
		}
		if chained {
			return nil
		}
		// Nor is a trail wiped whole (records and head) beside the
		// certificates each recorded with its event: a head written here
		// would have it start again as a fresh store's.
		var wiped bool
		if err := tx.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM audit_events) AND EXISTS (SELECT 1 FROM certificates)`).Scan(&wiped); err != nil {
			return fmt.Errorf("seal audit trail: %w", err)
		}
		if wiped {
			return nil
		}
		rows, err := tx.Query(ctx, `SELECT `+sqlstore.AuditColumns+` FROM audit_events ORDER BY id`)
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
			if _, err := tx.Exec(ctx, `UPDATE audit_events SET prev_hash = $1, hash = $2 WHERE id = $3`,
				head.LastHash, hash, e.ID); err != nil {
				return fmt.Errorf("seal audit trail: %w", err)
			}
			head = store.AuditHead{LastID: e.ID, LastHash: hash, Count: head.Count + 1}
		}
		_, err = tx.Exec(ctx, `INSERT INTO audit_head (one, last_id, last_hash, count) VALUES (1, $1, $2, $3)`,
			head.LastID, head.LastHash, head.Count)
		return err
	})
}

// ListAudit implements store.Store: newest first, Limit default 100, at
// most 1000; page on with BeforeID set to the last ID returned.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]pki.AuditEvent, error) {
	a := sqlstore.Args{Numbered: true}
	// Planned for its values, as ListCertificates (customPlanMode): its
	// filters' best plans differ as much.
	rows, err := s.query(ctx, sqlstore.AuditQuery(f, &a, encText), append([]any{s.listMode}, a.Values...)...)
	if err != nil {
		return nil, pgError("postgres: list audit: %w", err)
	}
	events, err := scanAudit(rows, false)
	if err != nil {
		return nil, pgError("postgres: list audit: %w", err)
	}
	return events, nil
}

// queryAll runs a query on the pool and scans every row with scan.
func queryAll[T any](ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, scan func(sqlstore.Scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
