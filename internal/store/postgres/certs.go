package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

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

// searchText is the expression the certificates_search trigram index is
// built on (migrations/0008_console_api.sql); queries spell it the same so
// that the planner matches them to the index.
const searchText = `lower(subject_dn || ' ' || sans || ' ' || serial_hex)`

// scanCert reads one certColumns row; id is returned for cursors.
func scanCert(sc scanner) (pki.Certificate, int64, error) {
	var (
		c                           pki.Certificate
		id                          int64
		sans, status, protocol, src string
		notBefore, notAfter, crt    int64
		revokedAt                   *int64
		reason                      *int32
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
	c.Issuer, c.Subject = decText(c.Issuer), decText(c.Subject)
	c.NotBefore = fromMicros(notBefore)
	c.NotAfter = fromMicros(notAfter)
	c.Status = pki.CertStatus(status)
	c.RevokedAt = fromNullMicros(revokedAt)
	if reason != nil {
		c.RevokeReason = int(*reason)
	}
	c.Protocol = pki.Protocol(protocol)
	c.Source = pki.Source(src)
	c.CreatedAt = fromMicros(crt)
	return c, id, nil
}

func encodeSANs(sans []string) (string, error) {
	if len(sans) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(sans)
	if err != nil {
		return "", fmt.Errorf("encode SANs: %w", err)
	}
	return string(b), nil
}

// decodeSANs returns nil for an empty list, so a record reads back the same
// whether it was stored with nil or an empty slice.
func decodeSANs(s string) ([]string, error) {
	var sans []string
	if err := json.Unmarshal([]byte(s), &sans); err != nil {
		return nil, fmt.Errorf("decode SANs: %w", err)
	}
	if len(sans) == 0 {
		return nil, nil
	}
	return sans, nil
}

// ReserveSerial implements store.Store. A second reservation of the same
// serial, concurrent or not, hits the primary key: ErrConflict.
func (s *Store) ReserveSerial(ctx context.Context, issuerID, serialHex string, tbs []byte, at time.Time) error {
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx,
			`INSERT INTO serials (issuer_id, serial_hex, reserved_at, tbs) VALUES ($1, $2, $3, $4)`,
			issuerID, serialHex, micros(at), nullBytes(tbs))
		return conflict(err)
	})
	if err != nil {
		return pgError("postgres: reserve serial %s/%s: %w", issuerID, serialHex, err)
	}
	return nil
}

// RecordIssuance implements store.Store.
func (s *Store) RecordIssuance(ctx context.Context, in store.Issuance) error {
	c := &in.Certificate
	if in.Now.IsZero() {
		return pgError("postgres: record issuance of %s/%s: Issuance.Now is zero", c.IssuerID, c.SerialHex)
	}
	sans, err := encodeSANs(c.SANs)
	if err != nil {
		return pgError("postgres: record issuance of %s/%s: %w", c.IssuerID, c.SerialHex, err)
	}
	if in.Supersede != nil && in.Supersede.IssuerID == c.IssuerID && in.Supersede.SerialHex == c.SerialHex {
		return pgError("postgres: record issuance of %s/%s: a certificate cannot supersede itself", c.IssuerID, c.SerialHex)
	}
	var reason any
	if c.Status == pki.StatusRevoked {
		reason = c.RevokeReason
	}
	now := micros(in.Now)
	err = s.withTx(ctx, func(tx pgx.Tx) error {
		if err := consumeChallenge(ctx, tx, in.ConsumeChallengeHash, now); err != nil {
			return err
		}
		if in.CompleteRequestID != "" {
			if err := completeRequest(ctx, tx, &in); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO certificates (
			issuer_id, serial_hex, issuer_dn, subject_dn, sans, not_before, not_after,
			status, revoked_at, revoke_reason, profile, protocol, source, requester_addr,
			transaction_id, key_type, renewed_from, created_at, der, revoked_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`,
			c.IssuerID, c.SerialHex, encText(c.Issuer), encText(c.Subject), sans, micros(c.NotBefore), micros(c.NotAfter),
			string(c.Status), nullMicros(c.RevokedAt), reason, c.Profile, string(c.Protocol), string(c.Source),
			c.RequesterAddr, c.TransactionID, c.KeyType, c.RenewedFrom, micros(c.CreatedAt), c.DER, c.RevokedBy)
		if err != nil {
			return fmt.Errorf("insert certificate: %w", conflict(err))
		}
		// The serial registry holds every serial ever used, whether or not
		// it was reserved in a transaction of its own before.
		if _, err := tx.Exec(ctx, `INSERT INTO serials (issuer_id, serial_hex, reserved_at) VALUES ($1, $2, $3)
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
		return pgError("postgres: record issuance of %s/%s: %w", c.IssuerID, c.SerialHex, err)
	}
	return nil
}

// Certificate implements store.Store.
func (s *Store) Certificate(ctx context.Context, issuerID, serialHex string) (*pki.Certificate, error) {
	row := s.pool.QueryRow(ctx, `SELECT `+certColumns+` FROM certificates
		WHERE issuer_id = $1 AND serial_hex = $2`, issuerID, serialHex)
	c, _, err := scanCert(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, pgError("postgres: certificate %s/%s: %w", issuerID, serialHex, store.ErrNotFound)
	}
	if err != nil {
		return nil, pgError("postgres: certificate %s/%s: %w", issuerID, serialHex, err)
	}
	return &c, nil
}

// CertificatesBySerial implements store.Store. Records come oldest first.
func (s *Store) CertificatesBySerial(ctx context.Context, serialHex string) ([]pki.Certificate, error) {
	certs, _, err := s.queryCerts(ctx, `SELECT `+certColumns+` FROM certificates
		WHERE serial_hex = $1 ORDER BY id`, serialHex)
	if err != nil {
		return nil, pgError("postgres: certificates with serial %s: %w", serialHex, err)
	}
	return certs, nil
}

// ListCertificates implements store.Store with keyset pagination: each page
// continues strictly after the sort key of the previous page's last row, so
// pages neither skip nor repeat rows when others are inserted meanwhile, and
// a late page costs the same as the first.
//
// With NotAfterBefore set the order is (not_after, id) ascending; with an
// issuance window (and no search), (created_at, id) descending; otherwise
// id descending (newest first).
func (s *Store) ListCertificates(ctx context.Context, f store.CertFilter) ([]pki.Certificate, string, error) {
	q, args, order, err := listQuery(f)
	if err != nil {
		return nil, "", pgError("postgres: list certificates: %w", err)
	}
	limit := pageLimit(f.Limit)
	certs, ids, err := s.queryCerts(ctx, q, args...)
	if err != nil {
		return nil, "", pgError("postgres: list certificates: %w", err)
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

// listQuery builds the page query for f, separate from ListCertificates so
// the query-plan test sees exactly the SQL that runs.
//
// Every shape is a range read of an index in the output order (the
// indexes of migrations/0001_init.sql, one per equality filter and order)
// or, for a search of three characters or more, a lookup in the trigram
// index, and every one ends with LIMIT: the planner reads the index in
// order and stops at LIMIT when the filter matches much, and looks the
// term up in the trigram index when it matches little.
func listQuery(f store.CertFilter) (q string, args []any, order cursorKind, err error) {
	cur, err := parseCursor(f.Cursor)
	if err != nil {
		return "", nil, 0, err
	}
	var a argList
	byExpiry := !f.NotAfterBefore.IsZero()
	term := strings.ToLower(strings.TrimSpace(f.Search))
	// With an issuance window (and no expiry order or search), the newest
	// first are read from the (created_at, id) index, which the window
	// bounds; walking ids would pass every row issued after the window.
	byIssued := !byExpiry && term == "" && (!f.IssuedAfter.IsZero() || !f.IssuedBefore.IsZero())
	var where []string
	switch {
	case byExpiry:
		if cur.kind == cursorNewest || cur.kind == cursorIssued {
			return "", nil, 0, fmt.Errorf("%w: cursor is for another order, filter is by expiry", errBadCursor)
		}
		where = append(where, "not_after < "+a.add(micros(f.NotAfterBefore)))
		if !f.NotAfterAfter.IsZero() {
			where = append(where, "not_after > "+a.add(micros(f.NotAfterAfter)))
		}
		if cur.kind == cursorExpiry {
			where = append(where, "(not_after, id) > ("+a.add(cur.notAfter)+", "+a.add(cur.id)+")")
		}
	case byIssued:
		if cur.kind != cursorNone && cur.kind != cursorIssued {
			return "", nil, 0, fmt.Errorf("%w: cursor is for another order than issuance time", errBadCursor)
		}
		if cur.kind == cursorIssued {
			where = append(where, "(created_at, id) < ("+a.add(cur.notAfter)+", "+a.add(cur.id)+")")
		}
		if !f.NotAfterAfter.IsZero() {
			where = append(where, "not_after > "+a.add(micros(f.NotAfterAfter)))
		}
	default:
		if cur.kind == cursorExpiry || cur.kind == cursorIssued {
			return "", nil, 0, fmt.Errorf("%w: cursor is for another order, filter is newest-first", errBadCursor)
		}
		// Always bounded, so the first page is the same index range read as
		// the later ones.
		id := int64(math.MaxInt64)
		if cur.kind == cursorNewest {
			id = cur.id
		}
		where = append(where, "id < "+a.add(id))
		if !f.NotAfterAfter.IsZero() {
			where = append(where, "not_after > "+a.add(micros(f.NotAfterAfter)))
		}
	}
	if f.Status != "" {
		where = append(where, "status = "+a.add(string(f.Status)))
	}
	if f.Profile != "" {
		where = append(where, "profile = "+a.add(f.Profile))
	}
	if f.IssuerID != "" {
		where = append(where, "issuer_id = "+a.add(f.IssuerID))
	}
	if f.Protocol != "" {
		where = append(where, "protocol = "+a.add(string(f.Protocol)))
	}
	if !f.IssuedAfter.IsZero() {
		where = append(where, "created_at >= "+a.add(micros(f.IssuedAfter)))
	}
	if !f.IssuedBefore.IsZero() {
		where = append(where, "created_at < "+a.add(micros(f.IssuedBefore)))
	}
	if term != "" {
		if len([]rune(term)) >= 3 {
			// LIKE on the indexed expression: the trigram index answers it
			// (and rechecks its candidates), whatever characters the term
			// holds.
			where = append(where, searchText+` LIKE `+a.add("%"+escapeLike(term)+"%"))
		} else {
			// Too short for trigrams: a trigram index would have to read
			// all of itself. strpos is no index operator, so the planner
			// walks the order's index and stops at LIMIT instead.
			where = append(where, `strpos(`+searchText+`, `+a.add(term)+`) > 0`)
		}
	}
	orderBy := "id DESC"
	order = cursorNewest
	switch {
	case byExpiry:
		orderBy, order = "not_after, id", cursorExpiry
	case byIssued:
		orderBy, order = "created_at DESC, id DESC", cursorIssued
	}
	q = `SELECT ` + certColumns + ` FROM certificates WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY ` + orderBy + ` LIMIT ` + a.add(pageLimit(f.Limit)+1)
	return q, a, order, nil
}

// escapeLike makes s match itself in a LIKE pattern (PostgreSQL's default
// escape character is the backslash).
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
	rows, err := s.pool.Query(ctx, q, args...)
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
// for a nil hash). The WHERE clause is the whole check: a concurrent
// consumer waits for this transaction's row lock and then re-evaluates the
// clause on the committed row, which is consumed, so it changes nothing.
func consumeChallenge(ctx context.Context, tx pgx.Tx, hash []byte, now int64) error {
	if hash == nil {
		return nil
	}
	tag, err := tx.Exec(ctx, `UPDATE challenges SET consumed_at = $1
		WHERE hash = $2 AND consumed_at IS NULL AND locked_at IS NULL AND expires_at > $1`, now, hash)
	if err != nil {
		return fmt.Errorf("consume challenge: %w", err)
	}
	if tag.RowsAffected() != 1 {
		return store.ErrChallengeUnusable
	}
	return nil
}
