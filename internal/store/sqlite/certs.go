package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

const (
	defaultLimit = 100
	maxLimit     = 1000
)

// certColumns is the select list scanCert reads, in its order.
const certColumns = `id, issuer_id, serial_hex, issuer_dn, subject_dn, sans, not_before, not_after,
	status, revoked_at, revoke_reason, profile, protocol, source, requester_addr,
	transaction_id, key_type, renewed_from, created_at, der, revoked_by`

type scanner interface{ Scan(dest ...any) error }

// scanCert reads one certColumns row; id is returned for cursors.
func scanCert(sc scanner) (pki.Certificate, int64, error) {
	var (
		c                           pki.Certificate
		id                          int64
		sans, status, protocol, src string
		notBefore, notAfter, crt    int64
		revokedAt, reason           sql.NullInt64
	)
	err := sc.Scan(&id, &c.IssuerID, &c.SerialHex, &c.Issuer, &c.Subject, &sans, &notBefore, &notAfter,
		&status, &revokedAt, &reason, &c.Profile, &protocol, &src, &c.RequesterAddr,
		&c.TransactionID, &c.KeyType, &c.RenewedFrom, &crt, &c.DER, &c.RevokedBy)
	if err != nil {
		return c, 0, err
	}
	if c.SANs, err = decodeSANs(sans); err != nil {
		return c, 0, fmt.Errorf("certificate %d: %w", id, err)
	}
	c.NotBefore = fromMicros(notBefore)
	c.NotAfter = fromMicros(notAfter)
	c.Status = pki.CertStatus(status)
	c.RevokedAt = fromNullMicros(revokedAt)
	c.RevokeReason = int(reason.Int64)
	c.Protocol = pki.Protocol(protocol)
	c.Source = pki.Source(src)
	c.CreatedAt = fromMicros(crt)
	return c, id, nil
}

// ReserveSerial implements store.Store.
func (s *Store) ReserveSerial(ctx context.Context, issuerID, serialHex string, tbs []byte, at time.Time) error {
	var t any
	if len(tbs) > 0 {
		t = tbs
	}
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO serials (issuer_id, serial_hex, reserved_at, tbs) VALUES (?, ?, ?, ?)`,
			issuerID, serialHex, micros(at), t)
		return conflict(err)
	})
	if err != nil {
		return fmt.Errorf("sqlite: reserve serial %s/%s: %w", issuerID, serialHex, err)
	}
	return nil
}

// RecordIssuance implements store.Store.
func (s *Store) RecordIssuance(ctx context.Context, in store.Issuance) error {
	c := &in.Certificate
	if in.Now.IsZero() {
		return fmt.Errorf("sqlite: record issuance of %s/%s: Issuance.Now is zero", c.IssuerID, c.SerialHex)
	}
	sans, err := encodeSANs(c.SANs)
	if err != nil {
		return fmt.Errorf("sqlite: record issuance of %s/%s: %w", c.IssuerID, c.SerialHex, err)
	}
	if in.Supersede != nil && in.Supersede.IssuerID == c.IssuerID && in.Supersede.SerialHex == c.SerialHex {
		return fmt.Errorf("sqlite: record issuance of %s/%s: a certificate cannot supersede itself", c.IssuerID, c.SerialHex)
	}
	var reason any
	if c.Status == pki.StatusRevoked {
		reason = c.RevokeReason
	}
	now := micros(in.Now)
	err = s.withTx(ctx, func(tx *sql.Tx) error {
		if err := consumeChallenge(ctx, tx, in.ConsumeChallengeHash, now); err != nil {
			return err
		}
		if in.CompleteRequestID != "" {
			if err := completeRequest(ctx, tx, &in); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO certificates (
			issuer_id, serial_hex, issuer_dn, subject_dn, sans, not_before, not_after,
			status, revoked_at, revoke_reason, profile, protocol, source, requester_addr,
			transaction_id, key_type, renewed_from, created_at, der, revoked_by)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.IssuerID, c.SerialHex, c.Issuer, c.Subject, sans, micros(c.NotBefore), micros(c.NotAfter),
			string(c.Status), nullMicros(c.RevokedAt), reason, c.Profile, string(c.Protocol), string(c.Source),
			c.RequesterAddr, c.TransactionID, c.KeyType, c.RenewedFrom, micros(c.CreatedAt), c.DER, c.RevokedBy)
		if err != nil {
			return fmt.Errorf("insert certificate: %w", conflict(err))
		}
		// The serial registry holds every serial ever used, whether or not
		// it was reserved in a transaction of its own before.
		if _, err := tx.ExecContext(ctx, `INSERT INTO serials (issuer_id, serial_hex, reserved_at) VALUES (?, ?, ?)
			ON CONFLICT DO NOTHING`, c.IssuerID, c.SerialHex, now); err != nil {
			return fmt.Errorf("record serial: %w", err)
		}
		if c.Status == pki.StatusRevoked {
			if err := bumpRevocationState(ctx, tx, c.IssuerID); err != nil {
				return err
			}
		}
		if in.Supersede != nil {
			if err := supersede(ctx, tx, &in); err != nil {
				return err
			}
		}
		return insertEvents(ctx, tx, in.Now, in.Events)
	})
	if err != nil {
		return fmt.Errorf("sqlite: record issuance of %s/%s: %w", c.IssuerID, c.SerialHex, err)
	}
	return nil
}

// Certificate implements store.Store.
func (s *Store) Certificate(ctx context.Context, issuerID, serialHex string) (*pki.Certificate, error) {
	row := s.r.QueryRowContext(ctx, `SELECT `+certColumns+` FROM certificates
		WHERE issuer_id = ? AND serial_hex = ?`, issuerID, serialHex)
	c, _, err := scanCert(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: certificate %s/%s: %w", issuerID, serialHex, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: certificate %s/%s: %w", issuerID, serialHex, err)
	}
	return &c, nil
}

// CertificatesBySerial implements store.Store. Records come oldest first.
func (s *Store) CertificatesBySerial(ctx context.Context, serialHex string) ([]pki.Certificate, error) {
	certs, _, err := s.queryCerts(ctx, `SELECT `+certColumns+` FROM certificates
		WHERE serial_hex = ? ORDER BY id`, serialHex)
	if err != nil {
		return nil, fmt.Errorf("sqlite: certificates with serial %s: %w", serialHex, err)
	}
	return certs, nil
}

// ListCertificates implements store.Store with keyset pagination: each page
// continues strictly after the sort key of the previous page's last row, so
// pages neither skip nor repeat rows when others are inserted meanwhile, and
// a late page costs the same as the first.
//
// With NotAfterBefore set the order is (not_after, id) ascending; otherwise
// id descending (newest first).
func (s *Store) ListCertificates(ctx context.Context, f store.CertFilter) ([]pki.Certificate, string, error) {
	q, args, order, err := listQuery(f)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list certificates: %w", err)
	}
	limit := pageLimit(f.Limit)
	certs, ids, err := s.queryCerts(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list certificates: %w", err)
	}
	// One row more than the page was read: its presence says whether a next
	// page exists, so the last page ends with "" rather than an empty page.
	if len(certs) <= limit {
		return certs, "", nil
	}
	certs, last := certs[:limit], limit-1
	next := cursor{kind: order, id: ids[last]}
	switch order {
	case cursorExpiry:
		next.notAfter = micros(certs[last].NotAfter)
	case cursorIssued:
		next.notAfter = micros(certs[last].CreatedAt)
	}
	return certs, next.String(), nil
}

// listQuery builds the page query for f. It is separate from
// ListCertificates so the query-plan test sees exactly the SQL that runs.
//
// The shapes are chosen so that SQLite always reads an index in the output
// order and stops at LIMIT: equality filters come first in the index, the
// sort key after (see the indexes in migrations/0001_init.sql). In the
// newest-first order the NotAfterAfter bound is written +not_after, which
// keeps the planner from using the not_after index for it: that range is
// usually most of the table and would need a sort, while walking ids
// downwards meets unexpired certificates almost at once.
func listQuery(f store.CertFilter) (q string, args []any, order cursorKind, err error) {
	cur, err := parseCursor(f.Cursor)
	if err != nil {
		return "", nil, 0, err
	}
	byExpiry := !f.NotAfterBefore.IsZero()
	// With an issuance window (and no expiry order or search), the newest
	// first are read from the (created_at, id) index, which the window
	// bounds; walking ids would pass every row issued after the window.
	term := strings.ToLower(strings.TrimSpace(f.Search))
	byIssued := !byExpiry && term == "" && (!f.IssuedAfter.IsZero() || !f.IssuedBefore.IsZero())
	// In the issuance order the window's index must drive the read: the
	// equality filters are then checked on its rows ("+col" keeps SQLite
	// from choosing their index, which would need a sort).
	eq := ""
	if byIssued {
		eq = "+"
	}
	var where []string
	if byExpiry {
		if cur.kind == cursorNewest {
			return "", nil, 0, fmt.Errorf("%w: cursor is for the newest-first order, filter is by expiry", errBadCursor)
		}
		where = append(where, "not_after < ?")
		args = append(args, micros(f.NotAfterBefore))
		if !f.NotAfterAfter.IsZero() {
			where = append(where, "not_after > ?")
			args = append(args, micros(f.NotAfterAfter))
		}
		if cur.kind == cursorExpiry {
			where = append(where, "(not_after, id) > (?, ?)")
			args = append(args, cur.notAfter, cur.id)
		}
	} else if byIssued {
		if cur.kind != cursorNone && cur.kind != cursorIssued {
			return "", nil, 0, fmt.Errorf("%w: cursor is for another order than issuance time", errBadCursor)
		}
		if cur.kind == cursorIssued {
			where = append(where, "(created_at, id) < (?, ?)")
			args = append(args, cur.notAfter, cur.id)
		}
		if !f.NotAfterAfter.IsZero() {
			where = append(where, "+not_after > ?")
			args = append(args, micros(f.NotAfterAfter))
		}
	} else {
		if cur.kind == cursorExpiry || cur.kind == cursorIssued {
			return "", nil, 0, fmt.Errorf("%w: cursor is for another order, filter is newest-first", errBadCursor)
		}
		// Always bounded, so the first page is the same index range read as
		// the later ones.
		id := int64(math.MaxInt64)
		if cur.kind == cursorNewest {
			id = cur.id
		}
		where = append(where, "id < ?")
		args = append(args, id)
		if !f.NotAfterAfter.IsZero() {
			where = append(where, "+not_after > ?")
			args = append(args, micros(f.NotAfterAfter))
		}
	}
	if f.Status != "" {
		where = append(where, eq+"status = ?")
		args = append(args, string(f.Status))
	}
	if f.Profile != "" {
		where = append(where, eq+"profile = ?")
		args = append(args, f.Profile)
	}
	if f.IssuerID != "" {
		where = append(where, eq+"issuer_id = ?")
		args = append(args, f.IssuerID)
	}
	if f.Protocol != "" {
		where = append(where, eq+"protocol = ?")
		args = append(args, string(f.Protocol))
	}
	if !f.IssuedAfter.IsZero() {
		where = append(where, "created_at >= ?")
		args = append(args, micros(f.IssuedAfter))
	}
	if !f.IssuedBefore.IsZero() {
		where = append(where, "created_at < ?")
		args = append(args, micros(f.IssuedBefore))
	}
	from, orderBy := "certificates", "id DESC"
	if byIssued {
		orderBy = "created_at DESC, id DESC"
	}
	if term != "" {
		// The trigram index answers for three characters or more (a quoted
		// phrase matches the substring, whatever characters it holds);
		// shorter terms are a scan, bounded by LIMIT like any filter.
		phrase := `"` + strings.ReplaceAll(term, `"`, `""`) + `"`
		switch {
		case len([]rune(term)) >= 3 && !byExpiry:
			// Driven by the index in rowid (= id) order: a term that
			// matches most of the inventory still stops at LIMIT.
			from = `certificates_search JOIN certificates ON certificates.id = certificates_search.rowid`
			where[0] = "certificates_search.rowid < ?"
			where = append(where, "certificates_search MATCH ?")
			args = append(args, phrase)
			orderBy = "certificates_search.rowid DESC"
		case len([]rune(term)) >= 3:
			where = append(where, `id IN (SELECT rowid FROM certificates_search WHERE certificates_search MATCH ?)`)
			args = append(args, phrase)
		default:
			where = append(where, `lower(subject_dn || ' ' || sans || ' ' || serial_hex) LIKE ? ESCAPE '\'`)
			args = append(args, "%"+escapeLike(term)+"%")
		}
	}
	order = cursorNewest
	switch {
	case byExpiry:
		orderBy, order = "not_after, id", cursorExpiry
	case byIssued:
		order = cursorIssued
	}
	q = `SELECT ` + certColumns + ` FROM ` + from + ` WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY ` + orderBy + ` LIMIT ?`
	args = append(args, pageLimit(f.Limit)+1)
	return q, args, order, nil
}

// escapeLike makes s match itself in a LIKE pattern with ESCAPE '\'.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func pageLimit(n int) int {
	switch {
	case n <= 0:
		return defaultLimit
	case n > maxLimit:
		return maxLimit
	}
	return n
}

func (s *Store) queryCerts(ctx context.Context, q string, args ...any) ([]pki.Certificate, []int64, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var (
		certs []pki.Certificate
		ids   []int64
	)
	for rows.Next() {
		c, id, err := scanCert(rows)
		if err != nil {
			return nil, nil, err
		}
		certs = append(certs, c)
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	return certs, ids, nil
}

// consumeChallenge uses up a one-time challenge inside tx (nothing to do
// for a nil hash). The WHERE clause is the whole check: consumed at most
// once, and only while unexpired, even with concurrent transactions.
func consumeChallenge(ctx context.Context, tx *sql.Tx, hash []byte, now int64) error {
	if hash == nil {
		return nil
	}
	res, err := tx.ExecContext(ctx, `UPDATE challenges SET consumed_at = ?
		WHERE hash = ? AND consumed_at IS NULL AND locked_at IS NULL AND expires_at > ?`, now, hash, now)
	if err != nil {
		return fmt.Errorf("consume challenge: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("consume challenge: %w", err)
	} else if n != 1 {
		return store.ErrChallengeUnusable
	}
	return nil
}
