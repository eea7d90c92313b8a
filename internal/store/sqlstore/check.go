package sqlstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// The Check functions refuse input that store.Store's contract rules out,
// before any transaction; each driver wraps the error with its name and
// the operation.

// CheckIssuance checks what RecordIssuance needs beyond the certificate.
func CheckIssuance(in *store.Issuance) error {
	c := &in.Certificate
	switch {
	case in.Now.IsZero():
		return errors.New("Issuance.Now is zero")
	case in.Supersede != nil && in.Supersede.IssuerID == c.IssuerID && in.Supersede.SerialHex == c.SerialHex:
		return errors.New("a certificate cannot supersede itself")
	}
	return nil
}

// CheckNewRequest checks a request for CreateRequest: pending (a zero
// Status means pending), with its times and a CSR.
func CheckNewRequest(r pki.EnrollmentRequest) error {
	switch {
	case r.Status != "" && r.Status != pki.RequestPending:
		return fmt.Errorf("a new request must be pending, not %q", r.Status)
	case r.CreatedAt.IsZero() || r.ExpiresAt.IsZero():
		return errors.New("CreatedAt and ExpiresAt must be set")
	case len(r.CSR) == 0:
		return errors.New("no CSR")
	}
	return nil
}

// CheckEventTimes checks that every event of AppendAudit has its Time: the
// store has no clock of its own.
func CheckEventTimes(events []pki.AuditEvent) error {
	for i := range events {
		if events[i].Time.IsZero() {
			return fmt.Errorf("event %d (%s) has no time", i, events[i].Type)
		}
	}
	return nil
}

// CheckNewUser checks a console user for CreateUser.
func CheckNewUser(u pki.User) error {
	if u.Name == "" || !u.Role.Valid() || u.PasswordHash == "" || u.CreatedAt.IsZero() {
		return errors.New("name, role, password hash and creation time are required")
	}
	return nil
}

// CheckNewToken checks an API token for CreateToken.
func CheckNewToken(t pki.APIToken) error {
	if t.ID == "" || t.Name == "" || !t.Role.Valid() || len(t.Hash) == 0 || t.CreatedAt.IsZero() {
		return errors.New("ID, name, role, hash and creation time are required")
	}
	return nil
}

// CheckNewSession checks a console session for CreateSession.
func CheckNewSession(ses pki.Session) error {
	if len(ses.Hash) == 0 || ses.User == "" || ses.CreatedAt.IsZero() || ses.ExpiresAt.IsZero() {
		return errors.New("hash, user and times are required")
	}
	return nil
}

// CheckCRL checks a CRL for PutCRL.
func CheckCRL(c store.CRL) error {
	if c.Number < 1 || len(c.DER) == 0 || c.ThisUpdate.IsZero() || c.NextUpdate.IsZero() || c.CreatedAt.IsZero() {
		return errors.New("number, DER, this and next update and creation time are required")
	}
	return nil
}

// CheckExpiryQuery checks the query of ExpiringCertificates.
func CheckExpiryQuery(q store.ExpiryQuery) error {
	if q.Now.IsZero() || q.Within <= 0 {
		return errors.New("ExpiryQuery needs Now and a positive Within")
	}
	return nil
}

// CheckNewNotification checks a notification for RecordNotifications.
func CheckNewNotification(n store.Notification) error {
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

// CheckClaim checks the query of ClaimNotifications.
func CheckClaim(q store.ClaimQuery) error {
	if q.Owner == "" || q.Now.IsZero() || q.Lease <= 0 {
		return errors.New("needs an owner, a time and a positive lease")
	}
	return nil
}

// CheckOutcome checks the outcome of FinishNotification.
func CheckOutcome(o store.NotificationOutcome) error {
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

// OutcomeValues are the values an outcome writes: the next attempt (pending
// only) and the sending time (sent only), NULL to keep the stored ones,
// and 1 for an attempt made.
func OutcomeValues(o store.NotificationOutcome) (next, sent any, attempted int) {
	if o.Status == store.NotificationPending {
		next = Micros(o.NextAttemptAt)
	}
	if o.Status == store.NotificationSent {
		sent = Micros(o.Now)
	}
	if o.Attempted {
		attempted = 1
	}
	return next, sent, attempted
}

// OutcomeRecipients are the accepted and refused recipients an outcome
// records, as stored.
func OutcomeRecipients(o store.NotificationOutcome) (accepted, refused string, err error) {
	if accepted, err = EncodeRecipients(o.Accepted); err != nil {
		return "", "", err
	}
	if refused, err = EncodeRecipients(o.Refused); err != nil {
		return "", "", err
	}
	return accepted, refused, nil
}

// SortClaimed puts claimed notifications in due order, as the contract
// returns them.
func SortClaimed(out []store.ClaimedNotification) {
	slices.SortStableFunc(out, func(a, b store.ClaimedNotification) int {
		return a.NextAttemptAt.Compare(b.NextAttemptAt)
	})
}

// ClaimRest is the claim that follows, with q.Reclaim, the taking back of
// the claimer's own running leases (claimed of them): the rest of the
// batch, on leases free or run out, and whether any of the batch is left.
func ClaimRest(q store.ClaimQuery, claimed int) (store.ClaimQuery, bool) {
	q.Limit = PageLimit(q.Limit) - claimed
	q.Reclaim = false
	return q, q.Limit > 0
}

// NextLoginAttempt is ClaimLoginAttempt's decision for a user with failed
// failures in a row and a lock until lockedUntil (zero: none), at at.
func NextLoginAttempt(failed int, lockedUntil, at time.Time, lockFor func(int) time.Duration) store.LoginAttempt {
	if at.Before(lockedUntil) {
		return store.LoginAttempt{Refused: true, Failures: failed, LockedUntil: lockedUntil}
	}
	a := store.LoginAttempt{Failures: failed + 1}
	if d := lockFor(a.Failures); d > 0 {
		a.LockedUntil = at.Add(d)
	}
	return a
}

// CaseTwin is the name among names, a JSON array of them, that differs
// from name only in case ("" when none): console:alice and console:ALICE
// would read as one person in the audit trail, so CreateUser and
// CreateESTUser refuse the second with ErrConflict, in the same
// transaction as its insert.
func CaseTwin(namesJSON []byte, name string) (string, error) {
	return findName(namesJSON, name, func(other string) bool { return other != name && strings.EqualFold(other, name) })
}

// NameTaken is the name among names, a JSON array of them, that equals
// name or differs from it only in case ("" when none). CreateToken reads
// every token's name, revoked ones too: api:NAME in the audit trail must
// name one token for ever.
func NameTaken(namesJSON []byte, name string) (string, error) {
	return findName(namesJSON, name, func(other string) bool { return strings.EqualFold(other, name) })
}

func findName(namesJSON []byte, name string, match func(string) bool) (string, error) {
	var names []string
	if err := json.Unmarshal(namesJSON, &names); err != nil {
		return "", fmt.Errorf("reading the names: %w", err)
	}
	for _, other := range names {
		if match(other) {
			return other, nil
		}
	}
	return "", nil
}

// CaseConflict is the ErrConflict for a CaseTwin or NameTaken of a what
// ("user", "EST user", "token"; twin "": nil).
func CaseConflict(what, twin string) error {
	if twin == "" {
		return nil
	}
	return fmt.Errorf("%w: a %s is named %q already", store.ErrConflict, what, twin)
}

// RenewableStatus is Issuance.Renews's verdict on the renewed
// certificate's status as read in the transaction (missing: no row; err:
// the read's other error).
func RenewableStatus(ref *store.CertRef, status string, missing bool, err error) error {
	switch {
	case missing:
		return fmt.Errorf("the renewed certificate %s/%s: %w", ref.IssuerID, ref.SerialHex, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("the renewed certificate %s/%s: %w", ref.IssuerID, ref.SerialHex, err)
	case status == string(pki.StatusRevoked):
		return fmt.Errorf("%s/%s: %w", ref.IssuerID, ref.SerialHex, store.ErrRenewsRevoked)
	}
	return nil
}
