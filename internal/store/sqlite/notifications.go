package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// Expiry notifications (migrations/0007_notifications.sql). Thresholds are
// stored, like times, as INTEGER microseconds.

// notifyCertColumns is what a notification needs of a certificate: no DER,
// which a scan over every certificate expiring within 30 days would read
// for nothing.
const notifyCertColumns = `c.id, c.issuer_id, c.serial_hex, c.issuer_dn, c.subject_dn, c.sans, c.not_before,
	c.not_after, c.status, c.profile, c.protocol, c.source, c.transaction_id, c.key_type, c.renewed_from, c.created_at`

func scanNotifyCert(sc scanner, extra ...any) (pki.Certificate, int64, error) {
	var (
		c                              pki.Certificate
		id                             int64
		sans, status, protocol, src    string
		notBefore, notAfter, createdAt int64
	)
	dest := append([]any{&id, &c.IssuerID, &c.SerialHex, &c.Issuer, &c.Subject, &sans, &notBefore,
		&notAfter, &status, &c.Profile, &protocol, &src, &c.TransactionID, &c.KeyType, &c.RenewedFrom, &createdAt}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return c, 0, err
	}
	var err error
	if c.SANs, err = decodeSANs(sans); err != nil {
		return c, 0, fmt.Errorf("certificate %d: %w", id, err)
	}
	c.NotBefore = fromMicros(notBefore)
	c.NotAfter = fromMicros(notAfter)
	c.Status = pki.CertStatus(status)
	c.Protocol = pki.Protocol(protocol)
	c.Source = pki.Source(src)
	c.CreatedAt = fromMicros(createdAt)
	return c, id, nil
}

// renewedClause is true when another certificate names c in renewed_from
// (an index search on certificates_renewed_from). || is standard SQL, so
// the PostgreSQL driver can say the same.
const renewedClause = `EXISTS (SELECT 1 FROM certificates r WHERE r.renewed_from = c.issuer_id || ':' || c.serial_hex)`

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
		var notified sql.NullInt64
		c, id, err := scanNotifyCert(rows, &notified)
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: expiring certificates: %w", err)
		}
		out = append(out, store.ExpiringCertificate{Certificate: c, NotifiedThreshold: time.Duration(notified.Int64) * time.Microsecond})
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("sqlite: expiring certificates: %w", err)
	}
	limit := pageLimit(q.Limit)
	if len(out) <= limit {
		return out, "", nil
	}
	out = out[:limit]
	last := limit - 1
	next := cursor{kind: cursorExpiry, notAfter: micros(out[last].Certificate.NotAfter), id: ids[last]}
	return out, next.String(), nil
}

// expiringQuery builds the page query of ExpiringCertificates, separate so
// the query-plan test sees the SQL that runs.
func expiringQuery(q store.ExpiryQuery) (string, []any, error) {
	if q.Now.IsZero() || q.Within <= 0 {
		return "", nil, errors.New("ExpiryQuery needs Now and a positive Within")
	}
	cur, err := parseCursor(q.Cursor)
	if err != nil {
		return "", nil, err
	}
	if cur.kind == cursorNewest {
		return "", nil, fmt.Errorf("%w: cursor is for the newest-first order", errBadCursor)
	}
	notified := `n.issuer_id = c.issuer_id AND n.serial_hex = c.serial_hex`
	var args []any
	if q.Channel != "" {
		notified += ` AND n.channel = ?`
		args = append(args, q.Channel)
	}
	query := `SELECT ` + notifyCertColumns + `,
		(SELECT MIN(n.threshold) FROM notifications n WHERE ` + notified + `)
		FROM certificates c
		WHERE c.status = ? AND c.not_after > ? AND c.not_after <= ?`
	args = append(args, string(pki.StatusValid), micros(q.Now), micros(q.Now.Add(q.Within)))
	if cur.kind == cursorExpiry {
		query += ` AND (c.not_after, c.id) > (?, ?)`
		args = append(args, cur.notAfter, cur.id)
	}
	query += ` AND NOT ` + renewedClause + ` ORDER BY c.not_after, c.id LIMIT ?`
	args = append(args, pageLimit(q.Limit)+1)
	return query, args, nil
}

const notificationColumns = `issuer_id, serial_hex, threshold, channel, status, attempts, next_attempt_at,
	claimed_by, claimed_until, last_error, created_at, sent_at`

func scanNotification(sc scanner) (store.Notification, error) {
	var (
		n                        store.Notification
		threshold, next, created int64
		claimedUntil, sent       sql.NullInt64
		status                   string
	)
	err := sc.Scan(&n.IssuerID, &n.SerialHex, &threshold, &n.Channel, &status, &n.Attempts, &next,
		&n.ClaimedBy, &claimedUntil, &n.LastError, &created, &sent)
	if err != nil {
		return n, err
	}
	n.Threshold = time.Duration(threshold) * time.Microsecond
	n.Status = store.NotificationStatus(status)
	n.NextAttemptAt = fromMicros(next)
	n.ClaimedUntil = fromNullMicros(claimedUntil)
	n.CreatedAt = fromMicros(created)
	n.SentAt = fromNullMicros(sent)
	return n, nil
}

func durMicros(d time.Duration) int64 { return d.Microseconds() }

// RecordNotifications implements store.Store.
func (s *Store) RecordNotifications(ctx context.Context, ns []store.Notification) (int, error) {
	for _, n := range ns {
		if err := checkNewNotification(n); err != nil {
			return 0, fmt.Errorf("sqlite: record notifications: %w", err)
		}
	}
	if len(ns) == 0 {
		return 0, nil
	}
	inserted := 0
	err := s.withTx(ctx, func(tx *sql.Tx) error {
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
			res, err := stmt.ExecContext(ctx, n.IssuerID, n.SerialHex, durMicros(n.Threshold), n.Channel,
				string(n.Status), micros(n.NextAttemptAt), n.LastError, micros(n.CreatedAt))
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

func checkNewNotification(n store.Notification) error {
	switch {
	case n.IssuerID == "" || n.SerialHex == "" || n.Channel == "":
		return errors.New("notification needs an issuer, a serial and a channel")
	case n.Threshold <= 0:
		return fmt.Errorf("notification %s/%s: threshold must be positive", n.IssuerID, n.SerialHex)
	case n.Status != store.NotificationPending && n.Status != store.NotificationSkipped:
		return fmt.Errorf("notification %s/%s: status %q, want pending or skipped", n.IssuerID, n.SerialHex, n.Status)
	case n.CreatedAt.IsZero() || n.NextAttemptAt.IsZero():
		return fmt.Errorf("notification %s/%s: CreatedAt and NextAttemptAt must be set", n.IssuerID, n.SerialHex)
	}
	return nil
}

// claimQuery leases the due notifications (see claimSQL).
func claimQuery(q store.ClaimQuery) (string, []any) {
	n := micros(q.Now)
	due := `status = 'pending' AND next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until <= ?)`
	dueArgs := []any{n, n}
	if len(q.Channels) > 0 {
		due += ` AND channel IN (?` + strings.Repeat(`, ?`, len(q.Channels)-1) + `)`
		for _, c := range q.Channels {
			dueArgs = append(dueArgs, c)
		}
	}
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
	query := `UPDATE notifications SET claimed_by = ?, claimed_until = ?
	WHERE ` + outer + `
	AND (issuer_id, serial_hex, threshold, channel) IN (
		SELECT issuer_id, serial_hex, threshold, channel FROM notifications
		WHERE ` + due + `
		ORDER BY next_attempt_at LIMIT ?)
	RETURNING ` + notificationColumns
	args := append([]any{q.Owner, micros(q.Now.Add(q.Lease))}, dueArgs...)
	args = append(args, dueArgs...)
	args = append(args, pageLimit(q.Limit))
	return query, args
}

const supersededQuery = `SELECT MIN(threshold) FROM notifications
	WHERE issuer_id = ? AND serial_hex = ? AND channel = ? AND threshold < ? AND status IN ('pending', 'sent')`

// ClaimNotifications implements store.Store.
func (s *Store) ClaimNotifications(ctx context.Context, q store.ClaimQuery) ([]store.ClaimedNotification, error) {
	if q.Owner == "" || q.Now.IsZero() || q.Lease <= 0 {
		return nil, errors.New("sqlite: claim notifications: needs an owner, a time and a positive lease")
	}
	query, args := claimQuery(q)
	var out []store.ClaimedNotification
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		out = nil
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			nt, err := scanNotification(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, store.ClaimedNotification{Notification: nt})
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
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
	slices.SortStableFunc(out, func(a, b store.ClaimedNotification) int {
		return a.NextAttemptAt.Compare(b.NextAttemptAt)
	})
	return out, nil
}

// claimDetails adds the certificate, whether it was renewed, and any more
// urgent notification for it on the same channel.
func claimDetails(ctx context.Context, tx *sql.Tx, cl *store.ClaimedNotification) error {
	var renewed bool
	c, _, err := scanNotifyCert(tx.QueryRowContext(ctx, `SELECT `+notifyCertColumns+`, `+renewedClause+`
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
	var sup sql.NullInt64
	if err := tx.QueryRowContext(ctx, supersededQuery, cl.IssuerID, cl.SerialHex, cl.Channel,
		durMicros(cl.Threshold)).Scan(&sup); err != nil {
		return fmt.Errorf("notification %s/%s: %w", cl.IssuerID, cl.SerialHex, err)
	}
	cl.SupersededBy = time.Duration(sup.Int64) * time.Microsecond
	return nil
}

const finishQuery = `UPDATE notifications SET status = ?, attempts = attempts + ?,
	next_attempt_at = COALESCE(?, next_attempt_at), claimed_by = '', claimed_until = NULL,
	last_error = ?, sent_at = COALESCE(?, sent_at)
	WHERE issuer_id = ? AND serial_hex = ? AND threshold = ? AND channel = ?
	AND status = 'pending' AND claimed_by = ?`

// FinishNotification implements store.Store.
func (s *Store) FinishNotification(ctx context.Context, o store.NotificationOutcome) error {
	if err := checkOutcome(o); err != nil {
		return fmt.Errorf("sqlite: finish notification: %w", err)
	}
	var next, sent any
	if o.Status == store.NotificationPending {
		next = micros(o.NextAttemptAt)
	}
	if o.Status == store.NotificationSent {
		sent = micros(o.Now)
	}
	attempted := 0
	if o.Attempted {
		attempted = 1
	}
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, finishQuery, string(o.Status), attempted, next, o.Error, sent,
			o.IssuerID, o.SerialHex, durMicros(o.Threshold), o.Channel, o.Owner)
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
				o.IssuerID, o.SerialHex, durMicros(o.Threshold), o.Channel).Scan(&exists)
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

func checkOutcome(o store.NotificationOutcome) error {
	switch o.Status {
	case store.NotificationPending:
		if o.NextAttemptAt.IsZero() {
			return errors.New("a pending outcome needs NextAttemptAt")
		}
	case store.NotificationSent, store.NotificationFailed, store.NotificationSkipped, store.NotificationCancelled:
	default:
		return fmt.Errorf("unknown status %q", o.Status)
	}
	if o.Owner == "" || o.Now.IsZero() {
		return errors.New("an outcome needs the lease owner and a time")
	}
	return nil
}

// Notifications implements store.Store.
func (s *Store) Notifications(ctx context.Context, issuerID, serialHex string) ([]store.Notification, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+notificationColumns+` FROM notifications
		WHERE issuer_id = ? AND serial_hex = ? ORDER BY channel, threshold DESC`, issuerID, serialHex)
	if err != nil {
		return nil, fmt.Errorf("sqlite: notifications of %s/%s: %w", issuerID, serialHex, err)
	}
	defer rows.Close()
	var out []store.Notification
	for rows.Next() {
		n, err := scanNotification(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: notifications of %s/%s: %w", issuerID, serialHex, err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: notifications of %s/%s: %w", issuerID, serialHex, err)
	}
	return out, nil
}
