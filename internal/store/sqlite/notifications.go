package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

// Expiry notifications (migrations/0007_notifications.sql; the recipients
// settled, 0017). Thresholds are
// stored, like times, as INTEGER microseconds.

// ExpiringCertificates implements store.Store: keyset pages over
// certificates_status_expiry in (not_after, id) order.
func (s *Store) ExpiringCertificates(ctx context.Context, q store.ExpiryQuery) ([]store.ExpiringCertificate, string, error) {
	query, args, err := expiringQuery(q)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: expiring certificates: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: expiring certificates: %w", err)
	}
	defer rows.Close()
	var (
		out []store.ExpiringCertificate
		ids []int64
	)
	for rows.Next() {
		var notified *int64
		c, id, err := sqlstore.ScanNotifyCert(rows, &notified)
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: expiring certificates: %w", err)
		}
		out = append(out, store.ExpiringCertificate{Certificate: c, NotifiedThreshold: sqlstore.FromDurMicros(notified)})
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("sqlite: expiring certificates: %w", err)
	}
	out, next := sqlstore.NextPage(out, ids, sqlstore.PageLimit(q.Limit), sqlstore.CursorExpiry,
		func(e store.ExpiringCertificate) pki.Certificate { return e.Certificate })
	return out, next, nil
}

// expiringQuery builds the page query of ExpiringCertificates, separate so
// the query-plan test sees the SQL that runs.
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
	var a sqlstore.Args
	query := sqlstore.ExpiringQuery(q, cur, &a)
	return query, a.Values, nil
}

// RecordNotifications implements store.Store.
func (s *Store) RecordNotifications(ctx context.Context, ns []store.Notification) (int, error) {
	for _, n := range ns {
		if err := sqlstore.CheckNewNotification(n); err != nil {

			return 0, fmt.Errorf("sqlite: record notifications: %w", err)
		}
	}
	if len(ns) == 0 {
		return 0, nil
	}
	inserted := 0
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		inserted = 0
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO notifications
			(issuer_id, serial_hex, threshold, channel, status, attempts, next_attempt_at, last_error, created_at)
			VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)
			ON CONFLICT (issuer_id, serial_hex, threshold, channel) DO NOTHING`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, n := range ns {
			res, err := stmt.ExecContext(ctx, n.IssuerID, n.SerialHex, sqlstore.DurMicros(n.Threshold), n.Channel,
				string(n.Status), sqlstore.Micros(n.NextAttemptAt), n.LastError, sqlstore.Micros(n.CreatedAt))
			if err != nil {
				return err
			}
			k, err := res.RowsAffected()
			if err != nil {
				return err
			}
			inserted += int(k)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: record notifications: %w", err)
	}
	return inserted, nil
}

// claimQuery leases the due notifications whose lease is free or has run
// out, earliest due first. q.Reclaim is ownClaimQuery's, run before it.
func claimQuery(q store.ClaimQuery) queryArgs {
	n := sqlstore.Micros(q.Now)
	due := `status = 'pending' AND next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until <= ?)`
	dueArgs := []any{n, n}
	due, dueArgs = channelFilter(q, due, dueArgs)
	// The subquery picks the due rows in due order (an index range read on
	// notifications_due that stops at LIMIT), the UPDATE finds them by
	// primary key: the unary + keeps the planner from walking every due row
	// of notifications_due instead, which an outage makes many. The outer
	// WHERE repeats the conditions, so that on a database whose UPDATE
	// re-reads rows another transaction changed (PostgreSQL, whose driver
	// adds FOR UPDATE SKIP LOCKED to the subquery) a row claimed meanwhile
	// is not claimed twice. On SQLite the transaction holds the write lock
	// (BEGIN IMMEDIATE) throughout anyway.
	outer := strings.NewReplacer("status =", "+status =", "next_attempt_at <=", "+next_attempt_at <=").Replace(due)
	return claimUpdate(q, outer, due, dueArgs, "next_attempt_at")
}

// ownClaimQuery takes back, with q.Reclaim, the due notifications whose
// running lease is q.Owner's (left by a process of that name that died),
// before claimQuery takes any other: the row a killed node was sending is
// the most delayed, and no other node may take it until its lease runs out.
// They are found on notifications_leased, whose range of running leases
// holds a row or a batch per node; a lease run out is anyone's, claimQuery's.
func ownClaimQuery(q store.ClaimQuery) queryArgs {
	n := sqlstore.Micros(q.Now)
	// The unary + keeps notifications_due, which an outage fills, out of
	// the subquery; the outer WHERE reads the rows by key.
	due := `claimed_until > ? AND claimed_by = ? AND +status = 'pending' AND +next_attempt_at <= ?`
	dueArgs := []any{n, q.Owner, n}
	due, dueArgs = channelFilter(q, due, dueArgs)
	outer := strings.Replace(due, "claimed_until >", "+claimed_until >", 1)
	return claimUpdate(q, outer, due, dueArgs, "claimed_until")
}

// channelFilter adds q.Channels to the conditions of a claim.
func channelFilter(q store.ClaimQuery, due string, args []any) (string, []any) {
	if len(q.Channels) > 0 {
		due += ` AND channel IN (?` + strings.Repeat(`, ?`, len(q.Channels)-1) + `)`
		for _, c := range q.Channels {
			args = append(args, c)
		}
	}
	return due, args
}

// claimUpdate leases to q.Owner up to q.Limit rows meeting due, in order,
// found by key among those meeting outer (due, the index kept out of it).
func claimUpdate(q store.ClaimQuery, outer, due string, dueArgs []any, order string) queryArgs {
	query := `UPDATE notifications SET claimed_by = ?, claimed_until = ?
	WHERE ` + outer + `
	AND (issuer_id, serial_hex, threshold, channel) IN (
		SELECT issuer_id, serial_hex, threshold, channel FROM notifications
		WHERE ` + due + `
		ORDER BY ` + order + ` LIMIT ?)
	RETURNING ` + sqlstore.NotificationColumns
	args := append([]any{q.Owner, sqlstore.Micros(q.Now.Add(q.Lease))}, dueArgs...)
	args = append(args, dueArgs...)
	args = append(args, sqlstore.PageLimit(q.Limit))
	return queryArgs{query, args}
}

// queryArgs is a statement and its arguments.
type queryArgs struct {
	q    string
	args []any
}

// clampQueries bring back the times a clock that was ahead put further
// ahead than a claimer could (see store.Store.ClaimNotifications), so that
// a clock set back does not hold notifications back by as much: a range
// read of notifications_due and of notifications_leased each, which hold
// no such row but after a clock was set back.
func clampQueries(q store.ClaimQuery) []queryArgs {
	leaseEnd := sqlstore.Micros(q.Now.Add(q.Lease))
	out := []queryArgs{{`UPDATE notifications SET claimed_until = ? WHERE claimed_until > ?`, []any{leaseEnd, leaseEnd}}}
	if q.MaxDelay > 0 {
		out = append(out, queryArgs{`UPDATE notifications SET next_attempt_at = ? WHERE status = 'pending' AND next_attempt_at > ?`,
			[]any{sqlstore.Micros(q.Now), sqlstore.Micros(q.Now.Add(q.MaxDelay))}})
	}
	return out
}

const supersededQuery = `SELECT MIN(threshold) FROM notifications
	WHERE issuer_id = ? AND serial_hex = ? AND channel = ? AND threshold < ? AND status IN ('pending', 'sent')`

// ClaimNotifications implements store.Store.
func (s *Store) ClaimNotifications(ctx context.Context, q store.ClaimQuery) ([]store.ClaimedNotification, error) {
	if err := sqlstore.CheckClaim(q); err != nil {
		return nil, fmt.Errorf("sqlite: claim notifications: %w", err)
	}
	var out []store.ClaimedNotification
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		for _, c := range clampQueries(q) {
			if _, err := tx.ExecContext(ctx, c.q, c.args...); err != nil {
				return err
			}
		}
		out = nil
		if q.Reclaim {
			own, err := claimRows(ctx, tx, ownClaimQuery(q))
			if err != nil {
				return err
			}
			out = own
		}
		if rest, ok := sqlstore.ClaimRest(q, len(out)); ok {
			others, err := claimRows(ctx, tx, claimQuery(rest))
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
		return nil, fmt.Errorf("sqlite: claim notifications: %w", err)
	}
	return out, nil
}

// claimRows runs a claim, earliest due first.
func claimRows(ctx context.Context, tx *wtx, qa queryArgs) ([]store.ClaimedNotification, error) {
	claimed, err := queryAll(ctx, tx, sqlstore.ScanNotification, qa.q, qa.args...)
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
func claimDetails(ctx context.Context, tx *wtx, cl *store.ClaimedNotification) error {
	var renewed bool
	c, _, err := sqlstore.ScanNotifyCert(tx.QueryRowContext(ctx, `SELECT `+sqlstore.NotifyCertColumns+`, `+sqlstore.RenewedClause+`
		FROM certificates c WHERE c.issuer_id = ? AND c.serial_hex = ?`, cl.IssuerID, cl.SerialHex), &renewed)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		// Not in the inventory (cannot happen through this package):
		// the caller sees an empty Status and cancels it.
		cl.Certificate = pki.Certificate{IssuerID: cl.IssuerID, SerialHex: cl.SerialHex}
	case err != nil:
		return fmt.Errorf("certificate %s/%s: %w", cl.IssuerID, cl.SerialHex, err)
	default:
		cl.Certificate, cl.Renewed = c, renewed
	}
	var sup *int64
	if err := tx.QueryRowContext(ctx, supersededQuery, cl.IssuerID, cl.SerialHex, cl.Channel,
		sqlstore.DurMicros(cl.Threshold)).Scan(&sup); err != nil {
		return fmt.Errorf("notification %s/%s: %w", cl.IssuerID, cl.SerialHex, err)
	}
	cl.SupersededBy = sqlstore.FromDurMicros(sup)
	return nil
}

const finishQuery = `UPDATE notifications SET status = ?, attempts = attempts + ?,
	next_attempt_at = COALESCE(?, next_attempt_at), claimed_by = '', claimed_until = NULL,
	last_error = ?, sent_at = COALESCE(?, sent_at), accepted = ?, refused = ?
	WHERE issuer_id = ? AND serial_hex = ? AND threshold = ? AND channel = ?
	AND status = 'pending' AND claimed_by = ?`

// FinishNotification implements store.Store.
func (s *Store) FinishNotification(ctx context.Context, o store.NotificationOutcome) error {
	if err := sqlstore.CheckOutcome(o); err != nil {
		return fmt.Errorf("sqlite: finish notification: %w", err)
	}
	next, sent, attempted := sqlstore.OutcomeValues(o)
	accepted, refused, err := sqlstore.OutcomeRecipients(o)
	if err != nil {
		return fmt.Errorf("sqlite: finish notification: %w", err)
	}
	err = s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		res, err := tx.ExecContext(ctx, finishQuery, string(o.Status), attempted, next, o.Error, sent, accepted, refused,
			o.IssuerID, o.SerialHex, sqlstore.DurMicros(o.Threshold), o.Channel, o.Owner)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			// The write lock is held: the answer cannot change before the
			// rollback.
			var exists bool
			err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM notifications
				WHERE issuer_id = ? AND serial_hex = ? AND threshold = ? AND channel = ?)`,
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
		return fmt.Errorf("sqlite: finish notification %s/%s %s %s: %w", o.IssuerID, o.SerialHex, o.Channel, o.Threshold, err)
	}
	return nil
}

// Notifications implements store.Store.
func (s *Store) Notifications(ctx context.Context, issuerID, serialHex string) ([]store.Notification, error) {
	out, err := queryAll(ctx, s.r, sqlstore.ScanNotification, `SELECT `+sqlstore.NotificationColumns+` FROM notifications
		WHERE issuer_id = ? AND serial_hex = ? ORDER BY channel, threshold DESC`, issuerID, serialHex)
	if err != nil {
		return nil, fmt.Errorf("sqlite: notifications of %s/%s: %w", issuerID, serialHex, err)
	}
	return out, nil

}
