package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

// ReserveSerial implements store.Store.
func (s *Store) ReserveSerial(ctx context.Context, issuerID, serialHex string, tbs []byte, at time.Time) error {
	err := s.withOrderedTx(ctx, func(ctx context.Context, tx *wtx) error {
		_, err := tx.ExecContext(ctx, reserveSerialQuery,
			issuerID, serialHex, sqlstore.Micros(at), sqlstore.NullBytes(tbs))
		return conflict(err)
	})
	if err != nil {
		return fmt.Errorf("sqlite: reserve serial %s/%s: %w", issuerID, serialHex, err)
	}
	return nil
}

// ReserveSerialClaiming implements store.Store: the claim and the
// reservation are one savepoint of the ordered (not flushed) write. The
// one writer runs one transaction at a time, so the claim's two
// statements decide as one: a new row (the common case, one statement),
// or else an expired or ended claim taken over, or the claimant's own
// again; a live claim of another matches neither and changes no row.
func (s *Store) ReserveSerialClaiming(ctx context.Context, c store.TransactionClaim, issuerID, serialHex string, tbs []byte) (tookOver bool, _ error) {
	at := sqlstore.Micros(c.At)
	err := s.withOrderedTx(ctx, func(ctx context.Context, tx *wtx) error {
		tookOver = false // set afresh on each run
		res, err := tx.ExecContext(ctx, claimTransactionQuery,
			c.KeyHash, []byte(c.Profile), []byte(c.TransactionID), c.Claimant, at, sqlstore.Micros(c.Expires))
		if err != nil {
			return fmt.Errorf("claim: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			res, err = tx.ExecContext(ctx, takeOverClaimQuery,
				c.Claimant, at, sqlstore.Micros(c.Expires), c.KeyHash, []byte(c.Profile), []byte(c.TransactionID), at, c.Claimant)
			if err != nil {
				return fmt.Errorf("take over claim: %w", err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				return store.ErrTransactionClaimed
			}
			tookOver = true
		}
		_, err = tx.ExecContext(ctx, reserveSerialQuery, issuerID, serialHex, at, sqlstore.NullBytes(tbs))
		return conflict(err)
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: reserve serial %s/%s for transaction %q: %w", issuerID, serialHex, c.TransactionID, err)
	}
	return tookOver, nil
}

// ReleaseTransactionClaim implements store.Store: the claim ends at c.At
// and is kept, as a recorded one is.
func (s *Store) ReleaseTransactionClaim(ctx context.Context, c store.TransactionClaim) error {
	err := s.withOrderedTx(ctx, func(ctx context.Context, tx *wtx) error {
		_, err := tx.ExecContext(ctx, `UPDATE transaction_claims SET claimed_at = ?, expires_at = 0
			WHERE key_hash = ? AND profile = ? AND transaction_id = ? AND claimant = ? AND expires_at <> 0`,
			sqlstore.Micros(c.At), c.KeyHash, []byte(c.Profile), []byte(c.TransactionID), c.Claimant)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: release claim on transaction %q: %w", c.TransactionID, err)
	}
	return nil
}

// TransactionClaimOf implements store.Store: one primary-key read.
func (s *Store) TransactionClaimOf(ctx context.Context, keyHash []byte, profile, transactionID string) (*store.TransactionClaim, error) {
	c := store.TransactionClaim{KeyHash: keyHash, Profile: profile, TransactionID: transactionID}
	var at, expires int64
	err := s.readRow(ctx, claimOfQuery, keyHash, []byte(profile), []byte(transactionID)).Scan(&c.Claimant, &at, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, markUnavailable(fmt.Errorf("sqlite: claim on transaction %q: %w", transactionID, err))
	}
	c.At, c.Expires = sqlstore.FromMicros(at), sqlstore.FromZeroMicros(expires)
	return &c, nil
}

// claimOfQuery is TransactionClaimOf's.
const claimOfQuery = `SELECT claimant, claimed_at, expires_at FROM transaction_claims
	WHERE key_hash = ? AND profile = ? AND transaction_id = ?`

// RecordIssuance implements store.Store.
func (s *Store) RecordIssuance(ctx context.Context, in store.Issuance) error {
	c := &in.Certificate
	if err := sqlstore.CheckIssuance(&in); err != nil {
		return fmt.Errorf("sqlite: record issuance of %s/%s: %w", c.IssuerID, c.SerialHex, err)
	}
	sans, err := sqlstore.EncodeSANs(c.SANs)
	if err != nil {
		return fmt.Errorf("sqlite: record issuance of %s/%s: %w", c.IssuerID, c.SerialHex, err)
	}
	var reason any
	if c.Status == pki.StatusRevoked {
		reason = c.RevokeReason
	}
	now := sqlstore.Micros(in.Now)
	// Hashed before the transaction: the writer is not held for it.
	keyHash := sqlstore.IssuanceKeyHash(&in)
	err = s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		if c.Status != pki.StatusRevoked {
			// The one writer runs one transaction at a time: a
			// keyCompromise revocation committed before this sees the key
			// here, and one after it sweeps this certificate too.
			if err := checkKeyNotCompromised(ctx, tx, keyHash); err != nil {
				return err
			}
		}
		if store.OwnKeyChecked(c) {
			// The one writer runs one transaction at a time: an RA that
			// 'ca renew-ra' recorded before this is found here.
			if err := checkKeyNotOwn(ctx, tx, keyHash); err != nil {
				return err
			}
		}
		if err := consumeChallenge(ctx, tx, in.ConsumeChallengeHash, now, c.IssuerID+":"+c.SerialHex); err != nil {
			return err
		}
		if in.CompleteRequestID != "" {
			if err := completeRequest(ctx, tx, &in); err != nil {
				return err
			}
		}
		if in.Renews != nil {
			// The one writer runs one transaction at a time: nothing can
			// revoke it between this read and the commit.
			if err := checkRenewable(ctx, tx, in.Renews); err != nil {
				return err
			}
		}
		if c := in.Claim; c != nil {
			if _, err := tx.ExecContext(ctx, endClaimQuery,
				c.KeyHash, []byte(c.Profile), []byte(c.TransactionID), c.Claimant, now, now); err != nil {
				return fmt.Errorf("end claim on transaction: %w", err)
			}
		}
		_, err := tx.ExecContext(ctx, insertCertificateQuery,
			c.IssuerID, c.SerialHex, c.Issuer, c.Subject, sans, sqlstore.Micros(c.NotBefore), sqlstore.Micros(c.NotAfter),
			string(c.Status), sqlstore.NullMicros(c.RevokedAt), reason, c.Profile, string(c.Protocol), string(c.Source),
			c.RequesterAddr, c.TransactionID, c.KeyType, c.RenewedFrom, sqlstore.Micros(c.CreatedAt), c.DER, c.RevokedBy,
			keyHash)
		if err != nil {
			return fmt.Errorf("insert certificate: %w", conflict(err))
		}
		// The serial registry holds every serial ever used, whether or not
		// it was reserved in a transaction of its own before.
		if _, err := tx.ExecContext(ctx, recordSerialQuery, c.IssuerID, c.SerialHex, now); err != nil {
			return fmt.Errorf("record serial: %w", err)
		}
		if c.Status == pki.StatusRevoked {
			if err := bumpRevocationState(ctx, tx, c.IssuerID); err != nil {
				return err
			}
			if err := recordCompromisedKey(ctx, tx, c); err != nil {
				return err
			}
		}
		events := in.Events
		if in.Supersede != nil {
			ev, err := supersede(ctx, tx, &in)
			if err != nil {
				return err
			}
			if ev != nil {
				events = append(slices.Clip(events), *ev)
			}
		}
		return insertEvents(ctx, tx, in.Now, events)
	})
	if err != nil {
		return fmt.Errorf("sqlite: record issuance of %s/%s: %w", c.IssuerID, c.SerialHex, err)
	}
	s.kickSearchIndexer()
	return nil
}

// Certificate implements store.Store.
func (s *Store) Certificate(ctx context.Context, issuerID, serialHex string) (*pki.Certificate, error) {
	row := s.readRow(ctx, `SELECT `+sqlstore.CertColumns+` FROM certificates
		WHERE issuer_id = ? AND serial_hex = ?`, issuerID, serialHex)
	c, _, err := sqlstore.ScanCert(row)
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
	var a sqlstore.Args
	certs, _, err := s.queryCerts(ctx, sqlstore.CertsBySerialQuery(serialHex, &a), a.Values...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: certificates with serial %s: %w", serialHex, err)
	}
	return certs, nil
}

// CertificatesOfTransaction implements store.Store.
func (s *Store) CertificatesOfTransaction(ctx context.Context, keyHash []byte, profile, transactionID string, issuedAfter time.Time) ([]pki.Certificate, error) {
	var a sqlstore.Args
	rows, err := s.readRows(ctx, sqlstore.CertsOfTransactionQuery(keyHash, profile, transactionID, sqlstore.Micros(issuedAfter), &a), a.Values...)
	var certs []pki.Certificate
	if err == nil {
		certs, _, err = scanCerts(rows)
	}
	if err != nil {
		return nil, markUnavailable(fmt.Errorf("sqlite: certificates of transaction %q: %w", transactionID, err))
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
	if _, term := sqlstore.CertOrder(f); indexedTerm(term) {
		// The index is filled in the background (search.go): a search
		// sees every certificate committed before it starts.
		if err := s.catchUpSearch(ctx); err != nil {
			return nil, "", fmt.Errorf("sqlite: list certificates: %w", err)
		}
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list certificates: %w", err)
	}
	certs, ids, err := scanCertsWith(rows, sqlstore.ScanListedCert)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list certificates: %w", err)
	}
	certs, next := sqlstore.NextPage(certs, ids, sqlstore.PageLimit(f.Limit), order,
		func(c pki.Certificate) pki.Certificate { return c })
	return certs, next, nil
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
func listQuery(f store.CertFilter) (q string, args []any, order sqlstore.CursorKind, err error) {
	cur, err := sqlstore.ParseCursor(f.Cursor)
	if err != nil {
		return "", nil, 0, err
	}
	if err := sqlstore.CheckCertFilter(f); err != nil {
		return "", nil, 0, err
	}
	order, term := sqlstore.CertOrder(f)
	// In the issuance order the window's index must drive the read: the
	// equality filters are then checked on its rows ("+col" keeps SQLite
	// from choosing their index, which would need a sort).
	eq := ""
	var a sqlstore.Args
	var where []string
	switch order {
	case sqlstore.CursorExpiry:
		if cur.Kind == sqlstore.CursorNewest || cur.Kind == sqlstore.CursorIssued {
			return "", nil, 0, fmt.Errorf("%w: cursor is for another order, filter is by expiry", store.ErrBadCursor)
		}
		where = append(where, "not_after < "+a.Add(sqlstore.Micros(f.NotAfterBefore)))
		if !f.NotAfterAfter.IsZero() {
			where = append(where, "not_after > "+a.Add(sqlstore.Micros(f.NotAfterAfter)))
		}
		if cur.Kind == sqlstore.CursorExpiry {
			where = append(where, "(not_after, id) > ("+a.Add(cur.Time)+", "+a.Add(cur.ID)+")")
		}
	case sqlstore.CursorIssued:
		eq = "+"
		if cur.Kind != sqlstore.CursorNone && cur.Kind != sqlstore.CursorIssued {
			return "", nil, 0, fmt.Errorf("%w: cursor is for another order than issuance time", store.ErrBadCursor)
		}
		if cur.Kind == sqlstore.CursorIssued {
			where = append(where, "(created_at, id) < ("+a.Add(cur.Time)+", "+a.Add(cur.ID)+")")
		}
		if !f.NotAfterAfter.IsZero() {
			where = append(where, "+not_after > "+a.Add(sqlstore.Micros(f.NotAfterAfter)))
		}
	default:
		if cur.Kind == sqlstore.CursorExpiry || cur.Kind == sqlstore.CursorIssued {
			return "", nil, 0, fmt.Errorf("%w: cursor is for another order, filter is newest-first", store.ErrBadCursor)
		}
		// Always bounded, so the first page is the same index range read as
		// the later ones.
		id := int64(math.MaxInt64)
		if cur.Kind == sqlstore.CursorNewest {
			id = cur.ID
		}
		where = append(where, "id < "+a.Add(id))
		if !f.NotAfterAfter.IsZero() {
			where = append(where, "+not_after > "+a.Add(sqlstore.Micros(f.NotAfterAfter)))
		}
	}
	where = sqlstore.CertFilterWhere(where, f, &a, eq)
	from, orderBy := "certificates", "id DESC"
	switch order {
	case sqlstore.CursorExpiry:
		orderBy = "not_after, id"
	case sqlstore.CursorIssued:
		orderBy = "created_at DESC, id DESC"
	}
	// The trigram index answers for three characters or more (a quoted
	// phrase matches the substring, whatever characters it holds); shorter
	// terms are a scan, bounded by LIMIT like any filter.
	phrase := `"` + strings.ReplaceAll(term, `"`, `""`) + `"`
	// A term written as openssl prints a serial also matches the stored
	// serial: the index finds the candidates by the serial's core too,
	// and the serial's conditions (or the term's) pick from them.
	serial, isSerial := sqlstore.SerialSearch(term)
	indexed := indexedTerm(term) && (!isSerial || indexedTerm(serial.Core()))
	if isSerial {
		phrase += ` OR "` + serial.Core() + `"`
	}
	// The index, or for a short term the search text, only narrows the
	// candidates (it holds the SANs' JSON punctuation, and text across
	// values); valueMatch picks the certificates from them.
	switch {
	case term == "":
	case strings.ContainsRune(term, 0) || !utf8.ValidString(term):
		// No stored text holds it (and FTS5 reads a NUL as the end of
		// its query).
		where = append(where, "0")
		term = "" // and nothing for valueMatch to pick from
	case indexed && order == sqlstore.CursorNewest:
		// Driven by the index in rowid (= id) order: a term that matches
		// most of the inventory still stops at LIMIT. The id bound
		// (where[0]) becomes the index's rowid bound.
		from = `certificates_search JOIN certificates ON certificates.id = certificates_search.rowid`
		where[0] = "certificates_search.rowid" + strings.TrimPrefix(where[0], "id")
		where = append(where, "certificates_search MATCH "+a.Add(phrase))
		orderBy = "certificates_search.rowid DESC"
	case indexed:
		where = append(where, `id IN (SELECT rowid FROM certificates_search WHERE certificates_search MATCH `+a.Add(phrase)+`)`)
	}
	if term != "" {
		if !indexed {
			// No index: a LIKE on the search text, cheaper than valueMatch,
			// which SQLite tests last (it has a correlated subquery).
			conds := []string{searchText + ` LIKE ` + a.Add("%"+sqlstore.EscapeLike(term)+"%") + ` ESCAPE '\'`}
			where = append(where, "("+strings.Join(append(conds, serial.Conds(&a)...), " OR ")+")")
		}
		where = append(where, valueMatch(term, serial, &a))
	}
	q = `SELECT ` + sqlstore.ListCertColumns("certificates") + ` FROM ` + from + ` WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY ` + orderBy + ` LIMIT ` + a.Add(sqlstore.PageLimit(f.Limit)+1)
	return q, a.Values, order, nil
}

// valueMatch is the condition that a search term (sqlstore.SearchTerm's)
// is a substring of the serial, of the subject as a search reads it
// (sqlstore.SubjectText), or of one SAN, lower case; or that it is the
// serial as openssl prints it (serial: sqlstore.SerialSearch's, the zero
// SerialMatch for a term that is none). The cheaper tests come first.
func valueMatch(term string, serial sqlstore.SerialMatch, a *sqlstore.Args) string {
	conds := append([]string{
		`instr(lower(serial_hex), ` + a.Add(term) + `) > 0`,
		`instr(` + subjectText + `, ` + a.Add(term) + `) > 0`,
		`EXISTS (SELECT 1 FROM json_each(sans) WHERE instr(lower(value), ` + a.Add(term) + `) > 0)`,
	}, serial.Conds(a)...)
	return "(" + strings.Join(conds, " OR ") + ")"
}

// indexedTerm reports whether a search for term reads the trigram index,
// which answers for three characters or more.
func indexedTerm(term string) bool {
	return utf8.RuneCountInString(term) >= 3
}

func (s *Store) queryCerts(ctx context.Context, q string, args ...any) ([]pki.Certificate, []int64, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, nil, err
	}
	return scanCerts(rows)
}

// scanCerts reads rows of sqlstore.CertColumns, and closes them.
func scanCerts(rows *sql.Rows) ([]pki.Certificate, []int64, error) {
	return scanCertsWith(rows, sqlstore.ScanCert)
}

// scanCertsWith reads rows with scan, and closes them.
func scanCertsWith(rows *sql.Rows, scan func(sqlstore.Scanner) (pki.Certificate, int64, error)) ([]pki.Certificate, []int64, error) {
	defer rows.Close()
	var (
		certs []pki.Certificate
		ids   []int64
	)
	for rows.Next() {
		c, id, err := scan(rows)

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
// for a nil hash), for the certificate by ("issuerID:serialHex", or empty for
// a held request). The WHERE clause is the whole check: consumed at most
// once, and only while unexpired, even with concurrent transactions.
func consumeChallenge(ctx context.Context, tx *wtx, hash []byte, now int64, by string) error {
	if hash == nil {
		return nil
	}
	res, err := tx.ExecContext(ctx, `UPDATE challenges SET consumed_at = ?, consumed_by = ?
		WHERE hash = ? AND consumed_at IS NULL AND locked_at IS NULL AND expires_at > ?`, now, by, hash, now)
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

// The statements of ReserveSerial and RecordIssuance (hot: see hot.go).
const (
	reserveSerialQuery = `INSERT INTO serials (issuer_id, serial_hex, reserved_at, tbs) VALUES (?, ?, ?, ?)`
	// A claim ended (recorded or released) has expires_at 0, so that it
	// is taken over at any time (another node's clock may lag), and
	// claimed_at its end, from which PurgeExpired keeps it
	// store.EndedClaimRetention.
	//
	// endClaimQuery ends a claim when its issuance is recorded, at the
	// record's time: the claimant's own, or any ended or lapsed one, or
	// none (a new ended row); another's live claim ends later by itself.
	endClaimQuery = `INSERT INTO transaction_claims
			(key_hash, profile, transaction_id, claimant, claimed_at, expires_at) VALUES (?, ?, ?, ?, ?, 0)
			ON CONFLICT (key_hash, profile, transaction_id) DO UPDATE
			SET claimant = excluded.claimant, claimed_at = excluded.claimed_at, expires_at = 0
			WHERE transaction_claims.claimant = excluded.claimant OR transaction_claims.expires_at <= ?`
	// claimTransactionQuery claims a transaction that has no row;
	// takeOverClaimQuery one whose claim is expired or ended, or its own.
	claimTransactionQuery = `INSERT INTO transaction_claims
			(key_hash, profile, transaction_id, claimant, claimed_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (key_hash, profile, transaction_id) DO NOTHING`
	takeOverClaimQuery = `UPDATE transaction_claims SET claimant = ?, claimed_at = ?, expires_at = ?
			WHERE key_hash = ? AND profile = ? AND transaction_id = ? AND (expires_at <= ? OR claimant = ?)`
	insertCertificateQuery = `INSERT INTO certificates (
			issuer_id, serial_hex, issuer_dn, subject_dn, sans, not_before, not_after,
			status, revoked_at, revoke_reason, profile, protocol, source, requester_addr,
			transaction_id, key_type, renewed_from, created_at, der, revoked_by, key_hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	recordSerialQuery = `INSERT INTO serials (issuer_id, serial_hex, reserved_at) VALUES (?, ?, ?)
			ON CONFLICT DO NOTHING`
)

// checkRenewable is Issuance.Renews's check.
func checkRenewable(ctx context.Context, tx *wtx, ref *store.CertRef) error {
	var status string
	err := tx.QueryRowContext(ctx, `SELECT status FROM certificates WHERE issuer_id = ? AND serial_hex = ?`,
		ref.IssuerID, ref.SerialHex).Scan(&status)
	return sqlstore.RenewableStatus(ref, status, errors.Is(err, sql.ErrNoRows), err)
}
