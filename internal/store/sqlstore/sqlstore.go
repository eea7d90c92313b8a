// Package sqlstore is what the SQL implementations of store.Store (sqlite,
// postgres) share: keyset cursors, the encoding of times and SAN lists in
// columns, the scanning of rows into records, input checks and result
// assembly. The SQL text, placeholders, transactions and error mapping stay
// in each driver.
package sqlstore

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// Scanner is a row to read: *sql.Row, *sql.Rows, pgx.Row, pgx.Rows.
type Scanner interface{ Scan(dest ...any) error }

// Page sizes of the listings.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// PageLimit is the page size for a requested limit: the default for none,
// at most MaxLimit.
func PageLimit(n int) int {
	switch {
	case n <= 0:
		return DefaultLimit
	case n > MaxLimit:
		return MaxLimit
	}
	return n
}

// EscapeLike makes s match itself in a LIKE pattern whose escape character
// is the backslash (ESCAPE '\' in SQLite, the default in PostgreSQL).
func EscapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// ReasonSuperseded is RFC 5280's CRLReason superseded, that of a
// certificate a renewal replaced.
const ReasonSuperseded = pki.ReasonSuperseded

// SupersededBy is the revoked_by of a certificate a renewal superseded,
// and the actor of its audit event.
const SupersededBy = "system:renewal"

// ExpiredBy is the actor of a held request's EventRequestExpired.
const ExpiredBy = "system"

// ExpiredRequestColumns is the RETURNING list of a purge's DELETE of
// enrollment requests that ScanExpiredRequest reads: what the event of
// one that expired undecided names.
const ExpiredRequestColumns = `id, profile, transaction_id, status, subject_dn, created_at, expires_at`

// ScanExpiredRequest reads one ExpiredRequestColumns row.
func ScanExpiredRequest(sc Scanner) (pki.EnrollmentRequest, error) {
	var r pki.EnrollmentRequest
	var status string
	var created, expires int64
	if err := sc.Scan(&r.ID, &r.Profile, &r.TransactionID, &status, &r.Subject, &created, &expires); err != nil {
		return r, err
	}
	r.Status, r.CreatedAt, r.ExpiresAt = pki.RequestStatus(status), FromMicros(created), FromMicros(expires)
	return r, nil
}

// ExpiredRequestEvents are the audit events of the requests a purge at
// now removed that were still pending (expired without a decision), in
// the order they expired: written in the purge's transaction, so that
// each is recorded once, by the node whose purge removed it, and the
// trail says what became of a request whose record is gone. A decided
// request gets none: its decision was recorded.
func ExpiredRequestEvents(purged []pki.EnrollmentRequest, now time.Time) []pki.AuditEvent {
	slices.SortFunc(purged, func(a, b pki.EnrollmentRequest) int {
		return cmp.Or(a.ExpiresAt.Compare(b.ExpiresAt), strings.Compare(a.ID, b.ID))
	})
	var events []pki.AuditEvent
	for _, r := range purged {
		if r.Status != pki.RequestPending {
			continue
		}
		events = append(events, pki.AuditEvent{Time: now, Type: pki.EventRequestExpired, Actor: ExpiredBy, Profile: r.Profile,
			Subject: r.Subject, TransactionID: r.TransactionID, Outcome: "success",
			Detail: fmt.Sprintf("request %s expired at %s without a decision (it was kept %s for an approval); its record was purged",
				r.ID, r.ExpiresAt.UTC().Format(time.RFC3339), r.ExpiresAt.Sub(r.CreatedAt))})
	}
	return events
}

// SupersededEvent is the audit event of the certificate in.Supersede
// names, revoked as superseded by in's certificate in the issuance's
// transaction: every revocation is in the audit trail, this one too.
func SupersededEvent(in *store.Issuance, subject, profile string) pki.AuditEvent {
	ref, c := in.Supersede, in.Certificate
	return pki.AuditEvent{Time: in.Now, Type: pki.EventRevoked, Actor: SupersededBy, Profile: profile, SerialHex: ref.SerialHex,
		IssuerID: ref.IssuerID, Subject: subject, Outcome: "success", Reason: "superseded",
		Detail: "superseded by its renewal " + c.IssuerID + ":" + c.SerialHex}
}
