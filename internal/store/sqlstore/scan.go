package sqlstore

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// The select lists below name the columns of the schema both drivers'
// migrations create alike; each Scan function reads its list in order.
// Nullable columns are scanned into pointers, which database/sql and pgx
// both set to nil for NULL.

// CertColumns is the select list ScanCert reads.
const CertColumns = `id, issuer_id, serial_hex, issuer_dn, subject_dn, sans, not_before, not_after,
	status, revoked_at, revoke_reason, profile, protocol, source, requester_addr,
	transaction_id, key_type, renewed_from, created_at, der, revoked_by, unheld_at`

// ScanCert reads one CertColumns row; id is returned for cursors.
func ScanCert(sc Scanner) (pki.Certificate, int64, error) {
	var (
		c                           pki.Certificate
		id                          int64
		sans, status, protocol, src string
		notBefore, notAfter, crt    int64
		revokedAt, reason, unheldAt *int64
	)
	err := sc.Scan(&id, &c.IssuerID, &c.SerialHex, &c.Issuer, &c.Subject, &sans, &notBefore, &notAfter,
		&status, &revokedAt, &reason, &c.Profile, &protocol, &src, &c.RequesterAddr,
		&c.TransactionID, &c.KeyType, &c.RenewedFrom, &crt, &c.DER, &c.RevokedBy, &unheldAt)
	if err != nil {
		return c, 0, err
	}
	if c.SANs, err = DecodeSANs(sans); err != nil {
		return c, 0, fmt.Errorf("certificate %d: %w", id, err)
	}
	c.NotBefore = FromMicros(notBefore)
	c.NotAfter = FromMicros(notAfter)
	c.Status = pki.CertStatus(status)
	c.RevokedAt = FromNullMicros(revokedAt)
	c.RevokeReason = NullInt(reason)
	c.UnheldAt = FromNullMicros(unheldAt)
	c.Protocol = pki.Protocol(protocol)
	c.Source = pki.Source(src)
	c.CreatedAt = FromMicros(crt)
	return c, id, nil
}

// NotifyCertColumns is what a notification needs of a certificate c: no
// DER, which a scan over every certificate expiring within 30 days would
// read for nothing.
const NotifyCertColumns = `c.id, c.issuer_id, c.serial_hex, c.issuer_dn, c.subject_dn, c.sans, c.not_before,
	c.not_after, c.status, c.profile, c.protocol, c.source, c.transaction_id, c.key_type, c.renewed_from, c.created_at`

// ScanNotifyCert reads one NotifyCertColumns row followed by extra
// columns into extra.
func ScanNotifyCert(sc Scanner, extra ...any) (pki.Certificate, int64, error) {
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
	if c.SANs, err = DecodeSANs(sans); err != nil {
		return c, 0, fmt.Errorf("certificate %d: %w", id, err)
	}
	c.NotBefore = FromMicros(notBefore)
	c.NotAfter = FromMicros(notAfter)
	c.Status = pki.CertStatus(status)
	c.Protocol = pki.Protocol(protocol)
	c.Source = pki.Source(src)
	c.CreatedAt = FromMicros(createdAt)
	return c, id, nil
}

// RenewedClause is true when another certificate names c in renewed_from
// (an index search on certificates_renewed_from). That index holds the
// renewals only (schema version 13), and a planner uses a partial index
// only for a query that implies its condition: hence the term that
// renewed_from is not empty.
const RenewedClause = `EXISTS (SELECT 1 FROM certificates r WHERE r.renewed_from = c.issuer_id || ':' || c.serial_hex AND r.renewed_from <> '')`

// renewedBy is true when another certificate names the row of table in
// renewed_from, as RenewedClause is for c.
func renewedBy(table string) string {
	return `EXISTS (SELECT 1 FROM certificates r WHERE r.renewed_from = ` + table + `.issuer_id || ':' || ` + table +
		`.serial_hex AND r.renewed_from <> '')`
}

// ListCertColumns is the select list ScanListedCert reads: CertColumns,
// then the newest renewal's "issuerID:serialHex" (empty for none), an index
// search on certificates_renewed_from per row listed, in the page's one
// query. table names the certificates table in the query's FROM.
func ListCertColumns(table string) string {
	return CertColumns + `,
	COALESCE((SELECT r.issuer_id || ':' || r.serial_hex FROM certificates r
		WHERE r.renewed_from = ` + table + `.issuer_id || ':' || ` + table + `.serial_hex AND r.renewed_from <> ''
		ORDER BY r.id DESC LIMIT 1), '')`
}

// ScanListedCert reads one ListCertColumns row.
func ScanListedCert(sc Scanner) (pki.Certificate, int64, error) {
	var renewedBy string
	c, id, err := ScanCert(extraScanner{sc, []any{&renewedBy}})
	c.RenewedBy = renewedBy
	return c, id, err
}

// extraScanner scans extra destinations after those of its caller.
type extraScanner struct {
	Scanner
	extra []any
}

func (e extraScanner) Scan(dest ...any) error {
	return e.Scanner.Scan(append(dest, e.extra...)...)
}

// RenewedWhere is the condition of f.Renewed on the row of table, "" for
// none.
func RenewedWhere(f store.RenewedFilter, table string) string {
	switch f {
	case store.RenewedYes:
		return renewedBy(table)
	case store.RenewedNo:
		return `NOT ` + renewedBy(table)
	}
	return ""
}

// NotificationColumns is the select list ScanNotification reads.
const NotificationColumns = `issuer_id, serial_hex, threshold, channel, status, attempts, next_attempt_at,
	claimed_by, claimed_until, last_error, created_at, sent_at, accepted, refused`

// ScanNotification reads one NotificationColumns row.
func ScanNotification(sc Scanner) (store.Notification, error) {
	var (
		n                         store.Notification
		threshold, next, created  int64
		claimedUntil, sent        *int64
		status, accepted, refused string
	)
	err := sc.Scan(&n.IssuerID, &n.SerialHex, &threshold, &n.Channel, &status, &n.Attempts, &next,
		&n.ClaimedBy, &claimedUntil, &n.LastError, &created, &sent, &accepted, &refused)
	if err != nil {
		return n, err
	}
	if n.Accepted, err = decodeRecipients(accepted); err != nil {
		return n, err
	}
	if n.Refused, err = decodeRecipients(refused); err != nil {
		return n, err
	}
	n.Threshold = FromDurMicros(&threshold)
	n.Status = store.NotificationStatus(status)
	n.NextAttemptAt = FromMicros(next)
	n.ClaimedUntil = FromNullMicros(claimedUntil)
	n.CreatedAt = FromMicros(created)
	n.SentAt = FromNullMicros(sent)
	return n, nil
}

// EncodeRecipients stores the accepted or refused recipients of a
// notification as a JSON array ("[]" for none).
func EncodeRecipients(rs []string) (string, error) {
	if len(rs) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(rs)
	if err != nil {
		return "", fmt.Errorf("encode recipients: %w", err)
	}
	return string(b), nil
}

// decodeRecipients reads EncodeRecipients' text; nil for none.
func decodeRecipients(s string) ([]string, error) {
	var rs []string
	if err := json.Unmarshal([]byte(s), &rs); err != nil {
		return nil, fmt.Errorf("decode recipients: %w", err)
	}
	if len(rs) == 0 {
		return nil, nil
	}
	return rs, nil
}

// ChallengeColumns is the select list ScanChallenge reads.
const ChallengeColumns = `id, hash, profile, created_at, expires_at, consumed_at, created_by,
	bound_subject, bound_sans, failed_uses, locked_at`

// ScanChallenge reads one ChallengeColumns row.
func ScanChallenge(sc Scanner) (pki.Challenge, error) {
	var (
		ch               pki.Challenge
		created, expires int64
		consumed, locked *int64
		subject          []byte
		bound            string
	)
	err := sc.Scan(&ch.ID, &ch.Hash, &ch.Profile, &created, &expires, &consumed, &ch.CreatedBy,
		&subject, &bound, &ch.FailedUses, &locked)
	if err != nil {
		return ch, err
	}
	if len(subject) > 0 {
		ch.BoundSubject = subject
	}
	if ch.BoundSANs, err = DecodeSANs(bound); err != nil {
		return ch, fmt.Errorf("challenge %s: %w", ch.ID, err)
	}
	ch.CreatedAt = FromMicros(created)
	ch.ExpiresAt = FromMicros(expires)
	ch.ConsumedAt = FromNullMicros(consumed)
	ch.LockedAt = FromNullMicros(locked)
	return ch, nil
}

// ChallengeUsable is nil when ch, read by its hash, may still enroll at
// now: neither used, locked nor expired. Otherwise it is a
// *store.SpentChallengeError (a store.ErrChallengeUnusable) saying which,
// which the holder of the secret may be told.
func ChallengeUsable(ch pki.Challenge, now time.Time) error {
	switch {
	case !ch.ConsumedAt.IsZero():
		return &store.SpentChallengeError{ID: ch.ID}
	case !ch.LockedAt.IsZero():
		return &store.SpentChallengeError{ID: ch.ID, Locked: true}
	case !ch.ExpiresAt.After(now):
		return &store.SpentChallengeError{ID: ch.ID, Expired: true}
	}
	return nil
}

// RequestColumns is the select list ScanRequest reads.
const RequestColumns = `id, transaction_id, profile, protocol, status, subject_dn, sans, csr,
	signer_cert, requester_addr, created_at, expires_at, decided_at, decided_by, reason,
	renewed_from, cert_issuer_id, cert_serial_hex, challenge_hash`

// ScanRequest reads one RequestColumns row.
func ScanRequest(sc Scanner) (pki.EnrollmentRequest, error) {
	var (
		r                      pki.EnrollmentRequest
		protocol, status, sans string
		created, expires       int64
		decided                *int64
		signerCert, chHash     []byte
	)
	err := sc.Scan(&r.ID, &r.TransactionID, &r.Profile, &protocol, &status, &r.Subject, &sans, &r.CSR,
		&signerCert, &r.RequesterAddr, &created, &expires, &decided, &r.DecidedBy, &r.Reason,
		&r.RenewedFrom, &r.CertIssuerID, &r.CertSerialHex, &chHash)
	if err != nil {
		return r, err
	}
	if r.SANs, err = DecodeSANs(sans); err != nil {
		return r, fmt.Errorf("request %s: %w", r.ID, err)
	}
	if len(signerCert) > 0 {
		r.ClientCert = signerCert
	}
	if len(chHash) > 0 {
		r.ChallengeHash = chHash
	}
	r.Protocol = pki.Protocol(protocol)
	r.Status = pki.RequestStatus(status)
	r.CreatedAt = FromMicros(created)
	r.ExpiresAt = FromMicros(expires)
	r.DecidedAt = FromNullMicros(decided)
	if decided != nil && r.Status != pki.RequestPending {
		r.ExpiresAt = FromMicros(decidedExpiry(created, expires, *decided))
	}
	return r, nil
}

// decidedExpiry is when the retention of a request decided at decided
// ends: its retention (expires, as stored when it was held, less created)
// counted from its decision, so that a late approval leaves its device
// the whole retention to collect the certificate, and a late rejection
// its device as long to be told so; never before the retention from when
// it was held (a decision dated earlier by a node whose clock is behind).
// The column keeps the time it was held with: a row decided by any
// version reads so, and RequestRetentionOver purges by the same rule.
func decidedExpiry(created, expires, decided int64) int64 {
	return max(expires, decided+(expires-created))
}

// RequestRetentionOver is the condition on an enrollment_requests row
// that its retention is over at now (a placeholder, written twice): a
// pending request's at its expires_at, a decided one's at decidedExpiry.
// expires_at <= now comes first, so that the purge reads the expires_at
// index: a decided request's retention never ends before it.
func RequestRetentionOver(now string) string {
	return `expires_at <= ` + now + ` AND (status = '` + string(pki.RequestPending) + `' OR decided_at IS NULL OR decided_at + (expires_at - created_at) <= ` + now + `)`
}

// UserColumns is the select list ScanUser reads.
const UserColumns = `name, role, password_hash, created_at, created_by, failed_logins, locked_until, last_login_at`

// ScanUser reads one UserColumns row.
func ScanUser(sc Scanner) (pki.User, error) {
	var u pki.User
	var role string
	var created int64
	var locked, last *int64
	if err := sc.Scan(&u.Name, &role, &u.PasswordHash, &created, &u.CreatedBy, &u.FailedLogins, &locked, &last); err != nil {
		return u, err
	}
	u.Role, u.CreatedAt = pki.Role(role), FromMicros(created)
	u.LockedUntil, u.LastLoginAt = FromNullMicros(locked), FromNullMicros(last)
	return u, nil
}

// TokenColumns is the select list ScanToken reads.
const TokenColumns = `id, name, role, hash, created_at, created_by, expires_at, revoked_at, last_used_at`

// ScanToken reads one TokenColumns row.
func ScanToken(sc Scanner) (pki.APIToken, error) {
	var t pki.APIToken
	var role string
	var created int64
	var expires, revoked, used *int64
	if err := sc.Scan(&t.ID, &t.Name, &role, &t.Hash, &created, &t.CreatedBy, &expires, &revoked, &used); err != nil {
		return t, err
	}
	t.Role, t.CreatedAt = pki.Role(role), FromMicros(created)
	t.ExpiresAt, t.RevokedAt, t.LastUsedAt = FromNullMicros(expires), FromNullMicros(revoked), FromNullMicros(used)
	return t, nil
}

// ESTUserColumns is the select list ScanESTUser reads.
const ESTUserColumns = `name, password_hash, profile, created_at, created_by`

// ScanESTUser reads one ESTUserColumns row.
func ScanESTUser(sc Scanner) (pki.ESTUser, error) {
	var u pki.ESTUser
	var created int64
	err := sc.Scan(&u.Name, &u.PasswordHash, &u.Profile, &created, &u.CreatedBy)
	u.CreatedAt = FromMicros(created)
	return u, err
}

// CAGenerationColumns is the select list ScanCAGeneration reads.
const CAGenerationColumns = `issuer_id, root_fingerprint, issuer_der, ra_der, switch_at,
		published_at, published_by, promoted_at`

// ScanCAGeneration reads one CAGenerationColumns row.
func ScanCAGeneration(sc Scanner) (store.CAGeneration, error) {
	var g store.CAGeneration
	var switchAt, publishedAt int64
	var promotedAt *int64
	if err := sc.Scan(&g.IssuerID, &g.RootFingerprint, &g.IssuerDER, &g.RADER, &switchAt, &publishedAt, &g.PublishedBy, &promotedAt); err != nil {
		return g, err
	}
	g.SwitchAt, g.PublishedAt, g.PromotedAt = FromZeroMicros(switchAt), FromMicros(publishedAt), FromNullMicros(promotedAt)
	return g, nil
}

// AuditColumns is the select list of an audit event, in the order
// AuditDest reads it.
const AuditColumns = `id, time, type, actor, profile, serial_hex, issuer_id, subject, transaction_id,
	outcome, reason, detail`

// AuditDest returns the scan destinations of AuditColumns (followed by
// prev_hash and hash when withHashes) for e; the time goes to *t, for
// FromMicros.
func AuditDest(e *pki.AuditEvent, t *int64, withHashes bool) []any {
	dest := []any{&e.ID, t, &e.Type, &e.Actor, &e.Profile, &e.SerialHex, &e.IssuerID,
		&e.Subject, &e.TransactionID, &e.Outcome, &e.Reason, &e.Detail}
	if withHashes {
		dest = append(dest, &e.PrevHash, &e.Hash)
	}
	return dest
}

// ScanRevokedEntry reads a row of serial_hex, revoked_at, revoke_reason.
func ScanRevokedEntry(sc Scanner) (store.RevokedEntry, error) {
	var e store.RevokedEntry
	var at, reason *int64
	if err := sc.Scan(&e.SerialHex, &at, &reason); err != nil {
		return e, err
	}
	e.RevokedAt, e.Reason = FromNullMicros(at), NullInt(reason)
	return e, nil
}

// Prefixed is sc reading the row's first columns into dest, then the rest
// into what its Scan is given: a position selected before a row's usual
// columns.
func Prefixed(sc Scanner, dest ...any) Scanner {
	return prefixed{sc, dest}
}

type prefixed struct {
	sc   Scanner
	dest []any
}

func (p prefixed) Scan(dest ...any) error {
	return p.sc.Scan(append(p.dest[:len(p.dest):len(p.dest)], dest...)...)
}
