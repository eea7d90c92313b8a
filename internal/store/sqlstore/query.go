package sqlstore

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// Args collects a query's parameters and writes their placeholders: ?
// (SQLite) in the zero value, $1, $2, … (PostgreSQL) when Numbered.
type Args struct {
	Numbered bool
	Values   []any
}

// Add appends v and returns its placeholder.
func (a *Args) Add(v any) string {
	a.Values = append(a.Values, v)
	if a.Numbered {
		return "$" + strconv.Itoa(len(a.Values))
	}
	return "?"
}

// CheckRequestFilter refuses a filter no listing answers: expired
// requests are known only at a time.
func CheckRequestFilter(f store.RequestFilter) error {
	if f.Status == pki.RequestExpired && f.Now.IsZero() {
		return errors.New("the expired requests asked for with no time (Now is zero)")
	}
	return nil
}

// RequestsAt gives each of list its status at now (StatusAt), when now is
// set: a pending request past its retention is expired.
func RequestsAt(list []pki.EnrollmentRequest, now time.Time) {
	if now.IsZero() {
		return
	}
	for i := range list {
		list[i].Status = list[i].StatusAt(now)
	}
}

// RequestsQuery is the ListRequests query for f: newest first, an index
// range read in output order that stops at LIMIT (one row more than the
// page, to know whether there is a next one). The seq bound is always
// there (as in the certificate listing) so that an unfiltered listing is a
// range read too. Each row is seq, then RequestColumns.
// beforeSeq, when not 0, is the seq of the previous page's last request
// (f.Cursor's).
func RequestsQuery(f store.RequestFilter, beforeSeq int64, a *Args) string {
	if beforeSeq == 0 {
		beforeSeq = math.MaxInt64
	}
	where := []string{"seq < " + a.Add(beforeSeq)}
	switch {
	case f.Status == pki.RequestExpired:
		// Stored pending; CheckRequestFilter refused a zero Now.
		where = append(where, "status = "+a.Add(string(pki.RequestPending)), "expires_at <= "+a.Add(Micros(f.Now)))
	case f.Status == pki.RequestPending && !f.Now.IsZero():
		where = append(where, "status = "+a.Add(string(pki.RequestPending)), "expires_at > "+a.Add(Micros(f.Now)))
	case f.Status != "":
		where = append(where, "status = "+a.Add(string(f.Status)))
	}
	if f.Profile != "" {
		where = append(where, "profile = "+a.Add(f.Profile))
	}
	return `SELECT seq, ` + RequestColumns + ` FROM enrollment_requests WHERE ` +
		strings.Join(where, " AND ") + ` ORDER BY seq DESC LIMIT ` + a.Add(PageLimit(f.Limit)+1)
}

// AuditQuery is the ListAudit query for f, newest first. text, when not
// nil, is how the driver stores text, for the equality filters to match.
func AuditQuery(f store.AuditFilter, a *Args, text func(string) string) string {
	if text == nil {
		text = func(s string) string { return s }
	}
	before := int64(math.MaxInt64)
	if f.BeforeID > 0 {
		before = f.BeforeID
	}
	where := []string{"id < " + a.Add(before)}
	if f.Type != "" {
		where = append(where, "type = "+a.Add(text(f.Type)))
	}
	if f.SerialHex != "" {
		where = append(where, "serial_hex = "+a.Add(text(f.SerialHex)))
	}
	if !f.Since.IsZero() {
		where = append(where, "time >= "+a.Add(Micros(f.Since)))
	}
	if !f.Until.IsZero() {
		where = append(where, "time < "+a.Add(Micros(f.Until)))
	}
	return `SELECT ` + AuditColumns + ` FROM audit_events WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY id DESC LIMIT ` + a.Add(PageLimit(f.Limit))
}

// CertOrder is the order ListCertificates lists f in, and f's search term
// (SearchTerm: trimmed, lower case, RFC 4514 escapes removed). With NotAfterBefore it is (not_after, id)
// ascending; with an issuance window and no search, (created_at, id)
// descending, read from the window's index (walking ids would pass every
// row issued after the window); otherwise id descending, newest first.
func CertOrder(f store.CertFilter) (order CursorKind, term string) {
	term = SearchTerm(f.Search)
	switch {
	case !f.NotAfterBefore.IsZero():
		return CursorExpiry, term
	case term == "" && (!f.IssuedAfter.IsZero() || !f.IssuedBefore.IsZero()):
		return CursorIssued, term
	}
	return CursorNewest, term
}

// CertFilterWhere appends to where the conditions of f's equality filters
// and issuance window. prefix goes before the equality filters' columns:
// SQLite's unary "+" keeps its planner off their indexes.
func CertFilterWhere(where []string, f store.CertFilter, a *Args, prefix string) []string {
	if f.Status != "" {
		where = append(where, prefix+"status = "+a.Add(string(f.Status)))
	}
	if f.Profile != "" {
		where = append(where, prefix+"profile = "+a.Add(f.Profile))
	}
	if f.IssuerID != "" {
		where = append(where, prefix+"issuer_id = "+a.Add(f.IssuerID))
	}
	if f.Protocol != "" {
		where = append(where, prefix+"protocol = "+a.Add(string(f.Protocol)))
	}
	if !f.IssuedAfter.IsZero() {
		where = append(where, "created_at >= "+a.Add(Micros(f.IssuedAfter)))
	}
	if !f.IssuedBefore.IsZero() {
		where = append(where, "created_at < "+a.Add(Micros(f.IssuedBefore)))
	}
	if renewed := RenewedWhere(f.Renewed, "certificates"); renewed != "" {
		// A search of certificates_renewed_from per row read: the
		// order's index still drives the read.
		where = append(where, renewed)
	}
	return where
}

// CheckCertFilter refuses a filter no listing answers.
func CheckCertFilter(f store.CertFilter) error {
	switch f.Renewed {
	case store.RenewedAny, store.RenewedYes, store.RenewedNo:
		return nil
	}
	return fmt.Errorf("renewed filter %q: want %q, %q or none", string(f.Renewed), store.RenewedYes, store.RenewedNo)
}

// ExpiringQuery is the page query of ExpiringCertificates after cur (an
// expiry cursor, or none): the valid certificates expiring within q.Within
// of q.Now and not renewed, in (not_after, id) order, each with the
// shortest threshold recorded for it (on q.Channel, when set).
func ExpiringQuery(q store.ExpiryQuery, cur Cursor, a *Args) string {
	notified := `n.issuer_id = c.issuer_id AND n.serial_hex = c.serial_hex`
	if q.Channel != "" {
		notified += ` AND n.channel = ` + a.Add(q.Channel)
	}
	query := `SELECT ` + NotifyCertColumns + `,
		(SELECT MIN(n.threshold) FROM notifications n WHERE ` + notified + `)
		FROM certificates c
		WHERE c.status = ` + a.Add(string(pki.StatusValid)) + ` AND c.not_after > ` + a.Add(Micros(q.Now)) +
		` AND c.not_after <= ` + a.Add(Micros(q.Now.Add(q.Within)))
	if cur.Kind == CursorExpiry {
		query += ` AND (c.not_after, c.id) > (` + a.Add(cur.Time) + `, ` + a.Add(cur.ID) + `)`
	}
	return query + ` AND NOT ` + RenewedClause + ` ORDER BY c.not_after, c.id LIMIT ` + a.Add(PageLimit(q.Limit)+1)
}

// RenewalsQuery is the RenewalsOf query, oldest first: a search of
// certificates_renewed_from, which holds the renewals only (see
// RenewedClause).
func RenewalsQuery(issuerID, serialHex string, a *Args) string {
	return `SELECT ` + CertColumns + ` FROM certificates WHERE renewed_from = ` + a.Add(issuerID+":"+serialHex) +
		` AND renewed_from <> '' ORDER BY id`
}

// CertsBySerialQuery is the CertificatesBySerial query, oldest first. The
// inventory's key is (issuer_id, serial_hex) and no index has the serial
// first (one would cost a log page per issuance: schema version 12), so
// it walks the issuers present, an index seek each, and searches the key
// under each. A store has a handful of issuers: a few index searches, as
// cheap as a serial index, at any size.
//
// PostgreSQL guesses a hundred rows for the walk, and then prefers one read
// of the whole key filtered on the serial to a search per issuer; a
// LATERAL subquery with a LIMIT (the key is unique) leaves it no other way
// than a search per issuer. SQLite has no LATERAL, and searches per issuer
// from a join (or skips through the key's issuers once ANALYZE has run).
func CertsBySerialQuery(serialHex string, a *Args) string {
	const walk = `WITH RECURSIVE issuers(issuer) AS (
		SELECT (SELECT MIN(issuer_id) FROM certificates)
		UNION ALL
		SELECT (SELECT MIN(c.issuer_id) FROM certificates c WHERE c.issuer_id > issuers.issuer)
			FROM issuers WHERE issuers.issuer IS NOT NULL)
	`
	serial := a.Add(serialHex)
	if a.Numbered {
		return walk + `SELECT ` + CertColumns + ` FROM issuers CROSS JOIN LATERAL (
		SELECT ` + CertColumns + ` FROM certificates
		WHERE issuer_id = issuers.issuer AND serial_hex = ` + serial + ` LIMIT 1) c
	ORDER BY id`
	}
	return walk + `SELECT ` + CertColumns + ` FROM issuers JOIN certificates ON certificates.issuer_id = issuers.issuer
	WHERE certificates.serial_hex = ` + serial + `
	ORDER BY id`
}

// CertsOfTransactionQuery is the CertificatesOfTransaction query: a
// search of the (key_hash, transaction_id) index (schema version 22;
// certificates has no index on the transaction ID alone: version 12
// dropped it, as one more random index write per issuance), its few rows
// filtered. SQLite would rather read the profile's index (most of the
// table), or scan in id order for the LIMIT: "+col" keeps it from using
// any other index (PostgreSQL has no such hint, and needs none).
func CertsOfTransactionQuery(keyHash []byte, profile, transactionID string, issuedAfter int64, a *Args) string {
	no := "+"
	if a.Numbered {
		no = ""
	}
	return `SELECT ` + CertColumns + ` FROM certificates WHERE key_hash = ` + a.Add(keyHash) +
		` AND transaction_id = ` + a.Add(transactionID) +
		` AND ` + no + `profile = ` + a.Add(profile) + ` AND ` + no + `status = ` + a.Add(string(pki.StatusValid)) +
		` AND ` + no + `created_at > ` + a.Add(issuedAfter) + ` ORDER BY key_hash, transaction_id, id LIMIT 8`
}
