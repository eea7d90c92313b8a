// Package sqlstore is what the SQL implementations of store.Store (sqlite,
// postgres) share: keyset cursors, the encoding of times and SAN lists in
// columns, the scanning of rows into records, input checks and result
// assembly. The SQL text, placeholders, transactions and error mapping stay
// in each driver.
package sqlstore

import (
	"strings"

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

// SupersededEvent is the audit event of the certificate in.Supersede
// names, revoked as superseded by in's certificate in the issuance's
// transaction: every revocation is in the audit trail, this one too.
func SupersededEvent(in *store.Issuance, subject, profile string) pki.AuditEvent {
	ref, c := in.Supersede, in.Certificate
	return pki.AuditEvent{Time: in.Now, Type: pki.EventRevoked, Actor: SupersededBy, Profile: profile, SerialHex: ref.SerialHex,
		IssuerID: ref.IssuerID, Subject: subject, Outcome: "success", Reason: "superseded",
		Detail: "superseded by its renewal " + c.IssuerID + ":" + c.SerialHex}
}
