package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

// Expiry notifications (migrations/0007_notifications.sql; the recipients
// settled, 0017). Thresholds are
// stored, like times, as BIGINT microseconds.

// scanNotifyCert is sqlstore.ScanNotifyCert with the DNs decoded (see
// encText).
func scanNotifyCert(sc sqlstore.Scanner, extra ...any) (pki.Certificate, int64, error) {
	c, id, err := sqlstore.ScanNotifyCert(sc, extra...)
	c.Issuer, c.Subject = decText(c.Issuer), decText(c.Subject)
	return c, id, err
}

// ExpiringCertificates implements store.Store: keyset pages over
// certificates_status_expiry in (not_after, id) order.
func (s *Store) ExpiringCertificates(ctx context.Context, q store.ExpiryQuery) ([]store.ExpiringCertificate, string, error) {
	query, args, err := expiringQuery(q)
	if err != nil {
		return nil, "", pgError("postgres: expiring certificates: %w", err)
	}
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, "", pgError("postgres: expiring certificates: %w", err)
	}
	defer rows.Close()
	var (
		out []store.ExpiringCertificate
		ids []int64
	)
	for rows.Next() {
		var notified *int64
		c, id, err := scanNotifyCert(rows, &notified)
		if err != nil {
			return nil, "", pgError("postgres: expiring certificates: %w", err)
		}
		out = append(out, store.ExpiringCertificate{Certificate: c, NotifiedThreshold: sqlstore.FromDurMicros(notified)})

		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, "", pgError("postgres: expiring certificates: %w", err)
	}
	out, next := sqlstore.NextPage(out, ids, sqlstore.PageLimit(q.Limit), sqlstore.CursorExpiry,
		func(e store.ExpiringCertificate) pki.Certificate { return e.Certificate })
	return out, next, nil
}

// expiringQuery builds the page query of ExpiringCertificates.
func expiringQuery(q store.ExpiryQuery) (string, []any, error) {
	if err := sqlstore.CheckExpiryQuery(q); err != nil {
		return "", nil, err
	}
	cur, err := sqlstore.ParseCursor(q.Cursor)
	if err != nil {
		return "", nil, err
	}
	if cur.Kind == sqlstore.CursorNewest || cur.Kind == sqlstore.CursorIssued {
		return "", nil, fmt.Errorf("%w: cursor is for another order", store.ErrBadCursor)
	}
	a := sqlstore.Args{Numbered: true}
	query := sqlstore.ExpiringQuery(q, cur, &a)
	return query, a.Values, nil
}

// RecordNotifications implements store.Store: INSERT … ON CONFLICT DO
// NOTHING, so of schedulers recording the same intent at once (a second
// one waits for the first's insert to commit) one inserts it.
func (s *Store) RecordNotifications(ctx context.Context, ns []store.Notification) (int, error) {
	for _, n := range ns {
		if err := sqlstore.CheckNewNotification(n); err != nil {
			return 0, pgError("postgres: record notifications: %w", err)
		}
	}
	if len(ns) == 0 {
		return 0, nil
	}
	inserted := 0
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		inserted = 0
		var b pgx.Batch
		for _, n := range ns {
			b.Queue(`INSERT INTO notifications
				(issuer_id, serial_hex, threshold, channel, status, attempts, next_attempt_at, last_error, created_at)
				VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8)
				ON CONFLICT (issuer_id, serial_hex, threshold, channel) DO NOTHING`,
				n.IssuerID, n.SerialHex, sqlstore.DurMicros(n.Threshold), n.Channel,
				string(n.Status), sqlstore.Micros(n.NextAttemptAt), n.LastError, sqlstore.Micros(n.CreatedAt))
		}
		br := tx.SendBatch(ctx, &b)
		for range ns {
			tag, err := br.Exec()
			if err != nil {
				br.Close()
				return err
			}
			inserted += int(tag.RowsAffected())
		}
		return br.Close()
	})
	if err != nil {
		return 0, pgError("postgres: record notifications: %w", err)
	}
	return inserted, nil
}

// claimQuery leases the due notifications whose lease is free or has run
// out. The CTE picks the due rows in due order (an index range read on
// notifications_due that stops at LIMIT) and locks them FOR UPDATE SKIP
// LOCKED: a row another claimer is taking is skipped rather than waited
// for, and a row another claimer took and committed meanwhile is
// re-checked on its committed version, no longer due, and left out. The
// UPDATE repeats the due conditions for good measure and takes the lease
// on exactly the rows the CTE locked. q.Reclaim is ownClaimQuery's, run
// before it.
func claimQuery(q store.ClaimQuery) (string, []any) {
	a := sqlstore.Args{Numbered: true}
	now := a.Add(sqlstore.Micros(q.Now))
	due := func(n string) string {
		return n + `status = 'pending' AND ` + n + `next_attempt_at <= ` + now +
			` AND (` + n + `claimed_until IS NULL OR ` + n + `claimed_until <= ` + now + `)`
	}
	return claimUpdate(q, &a, due, "next_attempt_at")
}

// ownClaimQuery takes back, with q.Reclaim, the due notifications whose
// running lease is q.Owner's (left by a process of that name that died),
// before claimQuery takes any other: the row a killed node was sending is
// the most delayed, and no other node may take it until its lease runs out.
// They are found on notifications_leased, whose range of running leases
// holds a row or a batch per node; a lease run out is anyone's, claimQuery's.
// Only q.Owner claims under its name, and the locks and re-checks are
// claimQuery's: a row another claimer took meanwhile is left out.
func ownClaimQuery(q store.ClaimQuery) (string, []any) {
	a := sqlstore.Args{Numbered: true}
	now := a.Add(sqlstore.Micros(q.Now))
	owner := a.Add(q.Owner)
	due := func(n string) string {
		return n + `claimed_until > ` + now + ` AND ` + n + `claimed_by = ` + owner +
			` AND ` + n + `status = 'pending' AND ` + n + `next_attempt_at <= ` + now
	}
	return claimUpdate(q, &a, due, "claimed_until")
}

// claimUpdate leases to q.Owner up to q.Limit rows meeting due (its
// conditions, the columns prefixed as given) on q.Channels, in order.
func claimUpdate(q store.ClaimQuery, a *sqlstore.Args, due func(prefix string) string, order string) (string, []any) {
	inner, outer := due(""), due("n.")
	if len(q.Channels) > 0 {
		channels := a.Add(q.Channels)
		inner += ` AND channel = ANY(` + channels + `)`
		outer += ` AND n.channel = ANY(` + channels + `)`
	}
	query := `WITH due AS (
		SELECT issuer_id, serial_hex, threshold, channel FROM notifications
		WHERE ` + inner + `
		ORDER BY ` + order + ` LIMIT ` + a.Add(sqlstore.PageLimit(q.Limit)) + `
		FOR UPDATE SKIP LOCKED)
	UPDATE notifications n SET claimed_by = ` + a.Add(q.Owner) + `, claimed_until = ` + a.Add(sqlstore.Micros(q.Now.Add(q.Lease))) + `
	FROM due
	WHERE n.issuer_id = due.issuer_id AND n.serial_hex = due.serial_hex AND n.threshold = due.threshold
		AND n.channel = due.channel AND ` + outer + `
	RETURNING n.issuer_id, n.serial_hex, n.threshold, n.channel, n.status, n.attempts, n.next_attempt_at,
		n.claimed_by, n.claimed_until, n.last_error, n.created_at, n.sent_at, n.accepted, n.refused`
	return query, a.Values
}

// clampQueries bring back the times a clock that was ahead put further
// ahead than a claimer could (see store.Store.ClaimNotifications), so that
// a clock set back does not hold notifications back by as much: a range
// read of notifications_due and of notifications_leased each, which hold
// no such row but after a clock was set back. Rows another transaction
// holds are skipped, not waited for (so that two claimers cannot lock
// them in opposite orders): that one is finishing or bringing them back.
func clampQueries(q store.ClaimQuery) [][]any {
	leaseEnd := sqlstore.Micros(q.Now.Add(q.Lease))
	const key = `n.issuer_id = c.issuer_id AND n.serial_hex = c.serial_hex AND n.threshold = c.threshold AND n.channel = c.channel`
	out := [][]any{{`WITH c AS (SELECT issuer_id, serial_hex, threshold, channel FROM notifications
		WHERE claimed_until > $1 FOR UPDATE SKIP LOCKED)
	UPDATE notifications n SET claimed_until = $1 FROM c WHERE ` + key, leaseEnd}}
	if q.MaxDelay > 0 {
		out = append(out, []any{`WITH c AS (SELECT issuer_id, serial_hex, threshold, channel FROM notifications
		WHERE status = 'pending' AND next_attempt_at > $2 FOR UPDATE SKIP LOCKED)
	UPDATE notifications n SET next_attempt_at = $1 FROM c WHERE ` + key,
			sqlstore.Micros(q.Now), sqlstore.Micros(q.Now.Add(q.MaxDelay))})
	}
	return out
}

const supersededQuery = `SELECT MIN(threshold) FROM notifications
	WHERE issuer_id = $1 AND serial_hex = $2 AND channel = $3 AND threshold < $4 AND status IN ('pending', 'sent')`

// ClaimNotifications implements store.Store.
func (s *Store) ClaimNotifications(ctx context.Context, q store.ClaimQuery) ([]store.ClaimedNotification, error) {
	if err := sqlstore.CheckClaim(q); err != nil {
		return nil, pgError("postgres: claim notifications: %w", err)
	}
	var out []store.ClaimedNotification
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		for _, c := range clampQueries(q) {
			if _, err := tx.Exec(ctx, c[0].(string), c[1:]...); err != nil {
				return err
			}
		}
		out = nil
		if q.Reclaim {
			query, args := ownClaimQuery(q)
			own, err := claimRows(ctx, tx, query, args)
			if err != nil {
				return err
			}
			out = own
		}
		if rest, ok := sqlstore.ClaimRest(q, len(out)); ok {
			query, args := claimQuery(rest)
			others, err := claimRows(ctx, tx, query, args)
			if err != nil {
				return err
			}
			out = append(out, others...)
		}
		for i := range out {
			if err := claimDetails(ctx, tx, &out[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, pgError("postgres: claim notifications: %w", err)
	}
	return out, nil
}

// claimRows runs a claim, earliest due first.
func claimRows(ctx context.Context, tx pgx.Tx, query string, args []any) ([]store.ClaimedNotification, error) {
	claimed, err := queryAll(ctx, tx, sqlstore.ScanNotification, query, args...)
	if err != nil {
		return nil, err
	}
	out := make([]store.ClaimedNotification, len(claimed))
	for i, nt := range claimed {
		out[i] = store.ClaimedNotification{Notification: nt}
	}
	sqlstore.SortClaimed(out)
	return out, nil
}

// claimDetails adds the certificate, whether it was renewed, and any more
// urgent notification for it on the same channel.
func claimDetails(ctx context.Context, tx pgx.Tx, cl *store.ClaimedNotification) error {
	var renewed bool
	c, _, err := scanNotifyCert(tx.QueryRow(ctx, `SELECT `+sqlstore.NotifyCertColumns+`, `+sqlstore.RenewedClause+`
		FROM certificates c WHERE c.issuer_id = $1 AND c.serial_hex = $2`, cl.IssuerID, cl.SerialHex), &renewed)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// Not in the inventory (cannot happen through this package):
		// the caller sees an empty Status and cancels it.
		cl.Certificate = pki.Certificate{IssuerID: cl.IssuerID, SerialHex: cl.SerialHex}
	case err != nil:
		return fmt.Errorf("certificate %s/%s: %w", cl.IssuerID, cl.SerialHex, err)
	default:
		cl.Certificate, cl.Renewed = c, renewed
	}
	var sup *int64
	if err := tx.QueryRow(ctx, supersededQuery, cl.IssuerID, cl.SerialHex, cl.Channel,
		sqlstore.DurMicros(cl.Threshold)).Scan(&sup); err != nil {
		return fmt.Errorf("notification %s/%s: %w", cl.IssuerID, cl.SerialHex, err)
	}
	cl.SupersededBy = sqlstore.FromDurMicros(sup)
	return nil
}

// finishQuery ends a lease: only the owner's, and only while pending. A
// concurrent takeover of an expired lease and this finish queue on the
// row; whichever comes second re-reads it and finds it changed.
const finishQuery = `UPDATE notifications SET status = $1, attempts = attempts + $2,
	next_attempt_at = COALESCE($3::bigint, next_attempt_at), claimed_by = '', claimed_until = NULL,
	last_error = $4, sent_at = COALESCE($5::bigint, sent_at), accepted = $6, refused = $7
	WHERE issuer_id = $8 AND serial_hex = $9 AND threshold = $10 AND channel = $11
	AND status = 'pending' AND claimed_by = $12`

// FinishNotification implements store.Store.
func (s *Store) FinishNotification(ctx context.Context, o store.NotificationOutcome) error {
	if err := sqlstore.CheckOutcome(o); err != nil {
		return pgError("postgres: finish notification: %w", err)
	}
	next, sent, attempted := sqlstore.OutcomeValues(o)
	accepted, refused, err := sqlstore.OutcomeRecipients(o)
	if err != nil {
		return pgError("postgres: finish notification: %w", err)
	}
	err = s.withTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, finishQuery, string(o.Status), attempted, next, o.Error, sent, accepted, refused,
			o.IssuerID, o.SerialHex, sqlstore.DurMicros(o.Threshold), o.Channel, o.Owner)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			var exists bool
			err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM notifications
				WHERE issuer_id = $1 AND serial_hex = $2 AND threshold = $3 AND channel = $4)`,
				o.IssuerID, o.SerialHex, sqlstore.DurMicros(o.Threshold), o.Channel).Scan(&exists)
			switch {
			case err != nil:
				return err
			case exists:
				return fmt.Errorf("not pending or not leased to %s: %w", o.Owner, store.ErrConflict)
			default:
				return store.ErrNotFound
			}
		}
		return insertEvents(ctx, tx, o.Now, o.Events)
	})
	if err != nil {
		return pgError("postgres: finish notification %s/%s %s %s: %w", o.IssuerID, o.SerialHex, o.Channel, o.Threshold, err)
	}
	return nil
}

// Notifications implements store.Store: by channel (byte order, as
// SQLite), then threshold, longest first.
func (s *Store) Notifications(ctx context.Context, issuerID, serialHex string) ([]store.Notification, error) {
	issuerID, serialHex = key(issuerID), key(serialHex)
	out, err := queryAll(ctx, s.pool, sqlstore.ScanNotification, `SELECT `+sqlstore.NotificationColumns+` FROM notifications
		WHERE issuer_id = $1 AND serial_hex = $2 ORDER BY channel COLLATE "C", threshold DESC`, issuerID, serialHex)
	if err != nil {
		return nil, pgError("postgres: notifications of %s/%s: %w", issuerID, serialHex, err)
	}
	return out, nil
}
