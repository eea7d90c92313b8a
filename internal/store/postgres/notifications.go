package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// Expiry notifications (migrations/0007_notifications.sql). Thresholds are
// stored, like times, as BIGINT microseconds.

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
	c.Issuer, c.Subject = decText(c.Issuer), decText(c.Subject)
	c.NotBefore = fromMicros(notBefore)
	c.NotAfter = fromMicros(notAfter)
	c.Status = pki.CertStatus(status)
	c.Protocol = pki.Protocol(protocol)
	c.Source = pki.Source(src)
	c.CreatedAt = fromMicros(createdAt)
	return c, id, nil
}

// renewedClause is true when another certificate names c in renewed_from
// (an index search on certificates_renewed_from).
const renewedClause = `EXISTS (SELECT 1 FROM certificates r WHERE r.renewed_from = c.issuer_id || ':' || c.serial_hex)`

// ExpiringCertificates implements store.Store: keyset pages over
// certificates_status_expiry in (not_after, id) order.
func (s *Store) ExpiringCertificates(ctx context.Context, q store.ExpiryQuery) ([]store.ExpiringCertificate, string, error) {
	query, args, err := expiringQuery(q)
	if err != nil {
		return nil, "", pgError("postgres: expiring certificates: %w", err)
	}
	rows, err := s.pool.Query(ctx, query, args...)
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
		ec := store.ExpiringCertificate{Certificate: c}
		if notified != nil {
			ec.NotifiedThreshold = time.Duration(*notified) * time.Microsecond
		}
		out = append(out, ec)
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, "", pgError("postgres: expiring certificates: %w", err)
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

// expiringQuery builds the page query of ExpiringCertificates.
func expiringQuery(q store.ExpiryQuery) (string, []any, error) {
	if q.Now.IsZero() || q.Within <= 0 {
		return "", nil, errors.New("ExpiryQuery needs Now and a positive Within")
	}
	cur, err := parseCursor(q.Cursor)
	if err != nil {
		return "", nil, err
	}
	if cur.kind == cursorNewest || cur.kind == cursorIssued {
		return "", nil, fmt.Errorf("%w: cursor is for another order", errBadCursor)
	}
	var a argList
	notified := `n.issuer_id = c.issuer_id AND n.serial_hex = c.serial_hex`
	if q.Channel != "" {
		notified += ` AND n.channel = ` + a.add(q.Channel)
	}
	query := `SELECT ` + notifyCertColumns + `,
		(SELECT MIN(n.threshold) FROM notifications n WHERE ` + notified + `)
		FROM certificates c
		WHERE c.status = ` + a.add(string(pki.StatusValid)) + ` AND c.not_after > ` + a.add(micros(q.Now)) +
		` AND c.not_after <= ` + a.add(micros(q.Now.Add(q.Within)))
	if cur.kind == cursorExpiry {
		query += ` AND (c.not_after, c.id) > (` + a.add(cur.notAfter) + `, ` + a.add(cur.id) + `)`
	}
	query += ` AND NOT ` + renewedClause + ` ORDER BY c.not_after, c.id LIMIT ` + a.add(pageLimit(q.Limit)+1)
	return query, a, nil
}

const notificationColumns = `issuer_id, serial_hex, threshold, channel, status, attempts, next_attempt_at,
	claimed_by, claimed_until, last_error, created_at, sent_at`

func scanNotification(sc scanner) (store.Notification, error) {
	var (
		n                        store.Notification
		threshold, next, created int64
		claimedUntil, sent       *int64
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

// RecordNotifications implements store.Store: INSERT … ON CONFLICT DO
// NOTHING, so of schedulers recording the same intent at once (a second
// one waits for the first's insert to commit) one inserts it.
func (s *Store) RecordNotifications(ctx context.Context, ns []store.Notification) (int, error) {
	for _, n := range ns {
		if err := checkNewNotification(n); err != nil {
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
				n.IssuerID, n.SerialHex, durMicros(n.Threshold), n.Channel,
				string(n.Status), micros(n.NextAttemptAt), n.LastError, micros(n.CreatedAt))
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

// claimQuery leases the due notifications. The CTE picks the due rows in
// due order (an index range read on notifications_due that stops at
// LIMIT) and locks them FOR UPDATE SKIP LOCKED: a row another claimer is
// taking is skipped rather than waited for, and a row another claimer took
// and committed meanwhile is re-checked on its committed version, no
// longer due, and left out. The UPDATE repeats the due conditions for good
// measure and takes the lease on exactly the rows the CTE locked.
func claimQuery(q store.ClaimQuery) (string, []any) {
	var a argList
	now := a.add(micros(q.Now))
	due := `status = 'pending' AND next_attempt_at <= ` + now + ` AND (claimed_until IS NULL OR claimed_until <= ` + now + `)`
	if len(q.Channels) > 0 {
		due += ` AND channel = ANY(` + a.add(q.Channels) + `)`
	}
	outer := `n.status = 'pending' AND n.next_attempt_at <= ` + now + ` AND (n.claimed_until IS NULL OR n.claimed_until <= ` + now + `)`
	query := `WITH due AS (
		SELECT issuer_id, serial_hex, threshold, channel FROM notifications
		WHERE ` + due + `
		ORDER BY next_attempt_at LIMIT ` + a.add(pageLimit(q.Limit)) + `
		FOR UPDATE SKIP LOCKED)
	UPDATE notifications n SET claimed_by = ` + a.add(q.Owner) + `, claimed_until = ` + a.add(micros(q.Now.Add(q.Lease))) + `
	FROM due
	WHERE n.issuer_id = due.issuer_id AND n.serial_hex = due.serial_hex AND n.threshold = due.threshold
		AND n.channel = due.channel AND ` + outer + `
	RETURNING n.issuer_id, n.serial_hex, n.threshold, n.channel, n.status, n.attempts, n.next_attempt_at,
		n.claimed_by, n.claimed_until, n.last_error, n.created_at, n.sent_at`
	return query, a
}

const supersededQuery = `SELECT MIN(threshold) FROM notifications
	WHERE issuer_id = $1 AND serial_hex = $2 AND channel = $3 AND threshold < $4 AND status IN ('pending', 'sent')`

// ClaimNotifications implements store.Store.
func (s *Store) ClaimNotifications(ctx context.Context, q store.ClaimQuery) ([]store.ClaimedNotification, error) {
	if q.Owner == "" || q.Now.IsZero() || q.Lease <= 0 {
		return nil, errors.New("postgres: claim notifications: needs an owner, a time and a positive lease")
	}
	query, args := claimQuery(q)
	var out []store.ClaimedNotification
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		claimed, err := queryAll(ctx, tx, scanNotification, query, args...)
		if err != nil {
			return err
		}
		out = make([]store.ClaimedNotification, len(claimed))
		for i, nt := range claimed {
			out[i] = store.ClaimedNotification{Notification: nt}
			if err := claimDetails(ctx, tx, &out[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, pgError("postgres: claim notifications: %w", err)
	}
	slices.SortStableFunc(out, func(a, b store.ClaimedNotification) int {
		return a.NextAttemptAt.Compare(b.NextAttemptAt)
	})
	return out, nil
}

// claimDetails adds the certificate, whether it was renewed, and any more
// urgent notification for it on the same channel.
func claimDetails(ctx context.Context, tx pgx.Tx, cl *store.ClaimedNotification) error {
	var renewed bool
	c, _, err := scanNotifyCert(tx.QueryRow(ctx, `SELECT `+notifyCertColumns+`, `+renewedClause+`
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
		durMicros(cl.Threshold)).Scan(&sup); err != nil {
		return fmt.Errorf("notification %s/%s: %w", cl.IssuerID, cl.SerialHex, err)
	}
	if sup != nil {
		cl.SupersededBy = time.Duration(*sup) * time.Microsecond
	}
	return nil
}

// finishQuery ends a lease: only the owner's, and only while pending. A
// concurrent takeover of an expired lease and this finish queue on the
// row; whichever comes second re-reads it and finds it changed.
const finishQuery = `UPDATE notifications SET status = $1, attempts = attempts + $2,
	next_attempt_at = COALESCE($3::bigint, next_attempt_at), claimed_by = '', claimed_until = NULL,
	last_error = $4, sent_at = COALESCE($5::bigint, sent_at)
	WHERE issuer_id = $6 AND serial_hex = $7 AND threshold = $8 AND channel = $9
	AND status = 'pending' AND claimed_by = $10`

// FinishNotification implements store.Store.
func (s *Store) FinishNotification(ctx context.Context, o store.NotificationOutcome) error {
	if err := checkOutcome(o); err != nil {
		return pgError("postgres: finish notification: %w", err)
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
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, finishQuery, string(o.Status), attempted, next, o.Error, sent,
			o.IssuerID, o.SerialHex, durMicros(o.Threshold), o.Channel, o.Owner)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			var exists bool
			err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM notifications
				WHERE issuer_id = $1 AND serial_hex = $2 AND threshold = $3 AND channel = $4)`,
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
		return pgError("postgres: finish notification %s/%s %s %s: %w", o.IssuerID, o.SerialHex, o.Channel, o.Threshold, err)
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

// Notifications implements store.Store: by channel (byte order, as
// SQLite), then threshold, longest first.
func (s *Store) Notifications(ctx context.Context, issuerID, serialHex string) ([]store.Notification, error) {
	out, err := queryAll(ctx, s.pool, scanNotification, `SELECT `+notificationColumns+` FROM notifications
		WHERE issuer_id = $1 AND serial_hex = $2 ORDER BY channel COLLATE "C", threshold DESC`, issuerID, serialHex)
	if err != nil {
		return nil, pgError("postgres: notifications of %s/%s: %w", issuerID, serialHex, err)
	}
	return out, nil
}
