// Package ops is every operation a person or a script performs through the
// admin API or the console, with the role each needs. Both front ends call
// it and nothing else, so the console can do nothing the API cannot; each
// operation delegates to the same service the CLI uses (admin, enroll,
// auth), so neither can do what the CLI's rules forbid.
package ops

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/audit"
	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/printable"
	"github.com/scepter/scepter/internal/store"
)

// Kicker is told that revocation state changed here, so CRLs and OCSP
// answers follow at once instead of at the next poll (the CRL publisher).
type Kicker interface{ Kick() }

// Ops is the operations layer. Safe for concurrent use.
type Ops struct {
	st        store.Store
	admin     *admin.Service
	enroll    *enroll.Service
	auth      *auth.Service
	authority *ca.Authority
	clock     pki.Clock
	log       *slog.Logger
	kick      Kicker
	// userRemoved is Config.UserRemoved.
	userRemoved func(name string)
}

// Config are Ops's parts. Kick and UserRemoved may be nil.
type Config struct {
	Store     store.Store
	Admin     *admin.Service
	Enroll    *enroll.Service
	Auth      *auth.Service
	Authority *ca.Authority
	Clock     pki.Clock
	Log       *slog.Logger
	Kick      Kicker
	// UserRemoved, when set, is told the name (as stored) of each console
	// user removed: what is kept of that user outside the store (the
	// generated admin password in the data directory) goes too.
	UserRemoved func(name string)
}

// New builds the operations layer.
func New(c Config) *Ops {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return &Ops{st: c.Store, admin: c.Admin, enroll: c.Enroll, auth: c.Auth, authority: c.Authority, clock: c.Clock, log: c.Log, kick: c.Kick,
		userRemoved: c.UserRemoved}
}

// Auth is the principal service (login, tokens).
func (o *Ops) Auth() *auth.Service { return o.auth }

// Now is the operations' clock.
func (o *Ops) Now() time.Time { return o.clock.Now() }

// --- certificates ----------------------------------------------------------

// CertQuery selects certificates. Status "expired" means valid but past
// NotAfter; ExpiringWithin keeps unexpired ones expiring within it, by
// expiry.
type CertQuery struct {
	Status         string // valid, revoked, expired, or ""
	Profile        string
	IssuerID       string
	Protocol       string
	Search         string
	ExpiringWithin time.Duration
	IssuedAfter    time.Time
	IssuedBefore   time.Time
	// Renewed "false" keeps the certificates no renewal replaced (those
	// still to renew), "true" only those a renewal replaced; "" both.
	Renewed string
	Limit   int
	Cursor  string
}

// MaxPage bounds a page of any list.
const MaxPage = 500

// Certificates returns one page and the next page's cursor ("" at the end).
func (o *Ops) Certificates(ctx context.Context, p auth.Principal, q CertQuery) ([]pki.Certificate, string, error) {
	if err := auth.Require(p, pki.RoleAuditor); err != nil {
		return nil, "", err
	}
	if q.Limit < 0 || q.Limit > MaxPage {
		return nil, "", pki.Errorf(pki.EBadRequest, "limit %d: want 1 to %d", q.Limit, MaxPage)
	}
	if len(q.Search) > 256 {
		return nil, "", pki.Errorf(pki.EBadRequest, "the search text is longer than 256 characters")
	}
	if !utf8.ValidString(q.Search) {
		// No subject, SAN or serial holds such bytes, so the search would
		// find nothing and say nothing of why (q=%ff).
		return nil, "", pki.Errorf(pki.EBadRequest, "the search text is not UTF-8 (percent-encode its characters as UTF-8 bytes)")
	}
	if strings.ContainsFunc(q.Search, unicode.IsControl) {
		// No subject, SAN or serial holds one (issuance refuses them), and
		// a NUL would cut the store's search short.
		return nil, "", pki.Errorf(pki.EBadRequest, "the search text holds a control character")
	}
	// What the caller asked for, not what it became at now: the next page
	// of "valid" is asked for later.
	filter := []string{"certificates", q.Status, q.Profile, strings.ToLower(q.IssuerID), q.Protocol, q.Search,
		q.ExpiringWithin.String(), filterTime(q.IssuedAfter), filterTime(q.IssuedBefore)}
	if q.Renewed != "" {
		// Only when given: a cursor of a listing without it, given
		// before the filter existed, still reads.
		filter = append(filter, "renewed="+q.Renewed)
	}
	cursor, err := unbindCursor(filter, q.Cursor)
	if err != nil {
		return nil, "", err
	}
	now := o.clock.Now()
	f := store.CertFilter{Profile: q.Profile, IssuerID: strings.ToLower(q.IssuerID), Protocol: pki.Protocol(q.Protocol),
		Search: q.Search, IssuedAfter: q.IssuedAfter, IssuedBefore: q.IssuedBefore, Limit: q.Limit, Cursor: cursor}
	switch q.Status {
	case "":
	case "valid":
		f.Status, f.NotAfterAfter = pki.StatusValid, now
	case "revoked":
		f.Status = pki.StatusRevoked
	case "expired":
		f.Status, f.NotAfterBefore = pki.StatusValid, now
	default:
		return nil, "", pki.Errorf(pki.EBadRequest, "status %q: want valid, revoked or expired", q.Status)
	}
	if q.ExpiringWithin < 0 {
		return nil, "", pki.Errorf(pki.EBadRequest, "expiring_within must not be negative")
	}
	if q.ExpiringWithin > 0 {
		if q.Status == "expired" {
			return nil, "", pki.Errorf(pki.EBadRequest, "expiring_within and status=expired exclude each other")
		}
		if q.Status == "" {
			// Those still to renew, as /metrics and the console's
			// links count them: a revoked certificate needs no renewal.
			f.Status = pki.StatusValid
		}
		f.NotAfterAfter, f.NotAfterBefore = now, now.Add(q.ExpiringWithin)
	}
	if !q.IssuedAfter.IsZero() && !q.IssuedBefore.IsZero() && !q.IssuedAfter.Before(q.IssuedBefore) {
		return nil, "", pki.Errorf(pki.EBadRequest, "issued_after must be before issued_before")
	}
	switch store.RenewedFilter(q.Renewed) {
	case store.RenewedAny, store.RenewedYes, store.RenewedNo:
		f.Renewed = store.RenewedFilter(q.Renewed)
	default:
		return nil, "", pki.Errorf(pki.EBadRequest, "renewed %q: want false (leave out the certificates a renewal replaced) or true (only those)",
			pki.Clip(q.Renewed, 64))
	}
	certs, next, err := o.st.ListCertificates(ctx, f)
	return certs, bindCursor(filter, next), storeCursorError(err)
}

// CertificateDetail is one certificate with what surrounds it.
type CertificateDetail struct {
	Record pki.Certificate
	Cert   *x509.Certificate
	// Chain is the issuing CA up to the root.
	Chain []*x509.Certificate
	// RenewedFrom is the chain of certificates this one renews, newest
	// first; RenewedBy the certificates that renew it.
	RenewedFrom []pki.Certificate
	RenewedBy   []pki.Certificate
	Events      []pki.AuditEvent
}

// Certificate finds one certificate by serial (and issuer, when several CAs
// used the serial).
func (o *Ops) Certificate(ctx context.Context, p auth.Principal, serial, issuerID string) (*CertificateDetail, error) {
	if err := auth.Require(p, pki.RoleAuditor); err != nil {
		return nil, err
	}
	rec, err := o.find(ctx, serial, issuerID)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(rec.DER)
	if err != nil {
		return nil, fmt.Errorf("ops: stored certificate %s: %w", pki.ShownSerial(rec.SerialHex), err)
	}
	d := &CertificateDetail{Record: *rec, Cert: cert}
	if i, ok := o.authority.IssuerByID(rec.IssuerID); ok {
		d.Chain = i.Chain
	}
	// Walk back through what it renews, bounded against a cycle.
	for from, n := rec.RenewedFrom, 0; from != "" && n < 64; n++ {
		issuer, sn, ok := strings.Cut(from, ":")
		if !ok {
			break
		}
		prev, err := o.st.Certificate(ctx, issuer, sn)
		if err != nil {
			break
		}
		d.RenewedFrom = append(d.RenewedFrom, *prev)
		from = prev.RenewedFrom
	}
	if d.RenewedBy, err = o.st.RenewalsOf(ctx, rec.IssuerID, rec.SerialHex); err != nil {
		return nil, err
	}
	evs, err := o.st.ListAudit(ctx, store.AuditFilter{SerialHex: rec.SerialHex, Limit: 200})
	if err != nil {
		return nil, err
	}
	for _, e := range evs {
		if e.IssuerID == "" || e.IssuerID == rec.IssuerID {
			d.Events = append(d.Events, e)
		}
	}
	return d, nil
}

func (o *Ops) find(ctx context.Context, serial, issuerID string) (*pki.Certificate, error) {
	sn, err := admin.NormalizeSerial(serial)
	if err != nil {
		return nil, err
	}
	recs, err := o.st.CertificatesBySerial(ctx, sn)
	if err != nil {
		return nil, err
	}
	var match []pki.Certificate
	for _, r := range recs {
		if issuerID == "" || strings.HasPrefix(r.IssuerID, strings.ToLower(issuerID)) {
			match = append(match, r)
		}
	}
	switch len(match) {
	case 0:
		if len(recs) == 0 {
			return nil, pki.Errorf(pki.ENotFound, "no certificate with serial %s", sn)
		}
		// The serial is known, the issuer is what matched nothing: say
		// so, or the caller is told the certificate does not exist.
		var ids []string
		for _, r := range recs {
			// 16 hex digits pick an issuer as well as 64, and stay readable.
			ids = append(ids, r.IssuerID[:min(16, len(r.IssuerID))])
		}
		from, give := "issuer "+ids[0], "that ID"
		if len(ids) > 1 {
			from, give = "issuers "+strings.Join(ids, ", "), "one of those IDs"
		}
		return nil, pki.Errorf(pki.ENotFound, "no certificate with serial %s from an issuer whose ID starts with %q; that serial is known from %s: give %s (or a prefix of it) as issuer, or leave issuer out",
			sn, strings.ToLower(issuerID), from, give)
	case 1:
		return &match[0], nil
	}
	return nil, pki.Errorf(pki.EConflict, "serial %s was issued by %d CAs; name one with issuer", sn, len(match))
}

// Revoke revokes a certificate (see admin.Service.Revoke).
func (o *Ops) Revoke(ctx context.Context, p auth.Principal, serial, issuerID, reason string) (admin.Revocation, error) {
	if err := auth.Require(p, pki.RoleOperator); err != nil {
		return admin.Revocation{}, err
	}
	code, err := admin.ParseReason(reason)
	if err != nil {
		return admin.Revocation{}, err
	}
	r, err := o.admin.Revoke(ctx, serial, issuerID, code, p.Actor())
	if err == nil && r.Changed && o.kick != nil {
		o.kick.Kick()
	}
	return r, err
}

// Unhold lifts a certificateHold.
func (o *Ops) Unhold(ctx context.Context, p auth.Principal, serial, issuerID string) (admin.Revocation, error) {
	if err := auth.Require(p, pki.RoleOperator); err != nil {
		return admin.Revocation{}, err
	}
	r, err := o.admin.Unhold(ctx, serial, issuerID, p.Actor())
	if err == nil && r.Changed && o.kick != nil {
		o.kick.Kick()
	}
	return r, err
}

// --- requests held for approval ------------------------------------------------

// Requests lists held requests (status "" for pending, "all" for any), one
// page of limit, and the next page's cursor ("" at the end). A request
// still pending when its retention ran out is expired: listed with status
// "expired", not "pending".
func (o *Ops) Requests(ctx context.Context, p auth.Principal, status, profile string, limit int, cursor string) ([]pki.EnrollmentRequest, string, error) {
	if err := auth.Require(p, pki.RoleAuditor); err != nil {
		return nil, "", err
	}
	f := store.RequestFilter{Status: pki.RequestPending, Profile: profile}
	switch status {
	case "", "pending":
	case "all":
		f.Status = ""
	case "issued", "rejected", "expired":
		f.Status = pki.RequestStatus(status)
	default:
		return nil, "", pki.Errorf(pki.EBadRequest, "status %q: want pending, issued, rejected, expired or all", status)
	}
	if limit < 1 || limit > MaxPage {
		return nil, "", pki.Errorf(pki.EBadRequest, "limit %d: want 1 to %d", limit, MaxPage)
	}
	filter := []string{"requests", string(f.Status), profile}
	var err error
	if f.Cursor, err = unbindCursor(filter, cursor); err != nil {
		return nil, "", err
	}
	f.Limit = limit
	list, next, err := o.admin.Requests(ctx, f)
	return list, bindCursor(filter, next), storeCursorError(err)
}

// Request is one request held for approval, by its ID, whatever its
// status, with its status now (expired when it was still pending as its
// retention ran out), as Requests lists it.
func (o *Ops) Request(ctx context.Context, p auth.Principal, id string) (*pki.EnrollmentRequest, error) {
	if err := auth.Require(p, pki.RoleAuditor); err != nil {
		return nil, err
	}
	r, err := o.st.Request(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, pki.Errorf(pki.ENotFound, "no request %q", pki.Clip(id, 80))
	}
	if err != nil {
		return nil, fmt.Errorf("ops: request %s: %w", id, err)
	}
	r.Status = r.StatusAt(o.Now())
	return r, nil
}

// Approve issues a held request's certificate; one approver wins.
func (o *Ops) Approve(ctx context.Context, p auth.Principal, id string) (*enroll.Result, error) {
	if err := auth.Require(p, pki.RoleOperator); err != nil {
		return nil, err
	}
	return o.enroll.Approve(ctx, id, p.Actor())
}

// Reject refuses a held request with a reason.
func (o *Ops) Reject(ctx context.Context, p auth.Principal, id, reason string) error {
	if err := auth.Require(p, pki.RoleOperator); err != nil {
		return err
	}
	if strings.TrimSpace(reason) == "" {
		return pki.Errorf(pki.EBadRequest, "a reason is required")
	}
	// admin.Reject checks the reason's length and characters.
	return o.admin.Reject(ctx, id, reason, p.Actor())
}

// --- challenges ----------------------------------------------------------------

// Challenges lists one-time challenges (never a secret), newest first, one
// page of limit, and the next page's cursor ("" at the end).
func (o *Ops) Challenges(ctx context.Context, p auth.Principal, limit int, cursor string) ([]pki.Challenge, string, error) {
	if err := auth.Require(p, pki.RoleAuditor); err != nil {
		return nil, "", err
	}
	if limit < 1 || limit > MaxPage {
		return nil, "", pki.Errorf(pki.EBadRequest, "limit %d: want 1 to %d", limit, MaxPage)
	}
	filter := []string{"challenges"}
	inner, err := unbindCursor(filter, cursor)
	if err != nil {
		return nil, "", err
	}
	list, next, err := o.admin.Challenges(ctx, store.ChallengeFilter{Limit: limit, Cursor: inner})
	return list, bindCursor(filter, next), storeCursorError(err)
}

// NewChallenge mints a one-time challenge and returns its secret, shown
// once. A caller whose credential expires (a token with an expiry) mints
// none that outlives it: a challenge is a way in too.
func (o *Ops) NewChallenge(ctx context.Context, p auth.Principal, spec admin.ChallengeSpec) (string, pki.Challenge, error) {
	if err := auth.Require(p, pki.RoleOperator); err != nil {
		return "", pki.Challenge{}, err
	}
	// The range first: the token's rule below names a lifetime it allows,
	// which must be one the range allows too.
	if err := admin.CheckChallengeTTL(spec.TTL); err != nil {
		return "", pki.Challenge{}, err
	}
	now := o.clock.Now()
	if err := auth.RequireWithin(p, now, now.Add(spec.TTL), "challenge"); err != nil {
		return "", pki.Challenge{}, err
	}
	spec.Actor = p.Actor()
	return o.admin.NewChallengeFor(ctx, spec)
}

// DeleteChallenge removes a challenge.
func (o *Ops) DeleteChallenge(ctx context.Context, p auth.Principal, id string) error {
	if err := auth.Require(p, pki.RoleOperator); err != nil {
		return err
	}
	return o.admin.DeleteChallenge(ctx, id, p.Actor())
}

// --- audit ---------------------------------------------------------------------

// NoteRoleRefusal records a request refused because its principal's role
// does not allow it (err holds an *auth.RoleError; for any other error it
// does nothing and says false): a change (any method but GET and HEAD) as
// an action.refused audit event naming the principal, the method and path
// and the role it lacked, and in the log at WARN; a read in the log alone,
// since it changes nothing and a principal may send reads as fast as it
// likes (the log's limiter bounds a flood, where the trail keeps each
// record). Nothing changed, so the event is written on its own, past a
// client that hung up; a write that fails is logged, and the refusal
// stands either way. It reports whether err was a role refusal.
func (o *Ops) NoteRoleRefusal(ctx context.Context, err error, method, path string) bool {
	var re *auth.RoleError
	if !errors.As(err, &re) {
		return false
	}
	action := method + " " + printable.String(pki.Clip(path, 200))
	reason := pki.ErrorMessage(re)
	o.log.Warn("refused by role", "actor", re.Principal.Actor(), "action", action, "role", string(re.Principal.Role), "needs", string(re.Need))
	if method == http.MethodGet || method == http.MethodHead {
		return true
	}
	ev := pki.AuditEvent{Time: o.clock.Now(), Type: pki.EventActionRefused, Actor: re.Principal.Actor(),
		Outcome: "failure", Reason: reason, Detail: action}
	if err := o.st.AppendAudit(context.WithoutCancel(ctx), ev); err != nil {
		o.log.Error("auditing an action refused by role", "actor", re.Principal.Actor(), "action", action, "err", err)
	}
	return true
}

// EventTypes are the audit event types scepter writes.
var EventTypes = []string{
	pki.EventIssued, pki.EventRenewed, pki.EventSentAgain, pki.EventRevoked, pki.EventUnheld, pki.EventCertRecorded,
	pki.EventEnrollFailed, pki.EventRefused,
	pki.EventRequestPending, pki.EventRequestApproved, pki.EventRequestRejected, pki.EventRequestExpired,
	pki.EventChallengeCreated, pki.EventChallengeUsed, pki.EventChallengeMisused, pki.EventChallengeDeleted,
	pki.EventNotificationSent, pki.EventNotificationFailed,
	pki.EventLoginSucceeded, pki.EventLoginFailed, pki.EventLoginLocked, pki.EventLogout, pki.EventUserAdded, pki.EventUserRemoved,
	pki.EventNDESLoginFailed, pki.EventNDESLoginLocked,
	pki.EventTokenCreated, pki.EventTokenRevoked, pki.EventTokenSentInClear, pki.EventActionRefused, pki.EventESTUserAdded, pki.EventESTUserRemoved,
	pki.EventCAInitialized, pki.EventCARollover, pki.EventCAPublished, pki.EventCAPromoted, pki.EventCARootKeyExported,
	pki.EventCARootCRLSigned, "ca.keys_exported", "ca.keys_imported", // the last two: cmd/scepter's key transfer
	pki.EventKeyDestroyed, pki.EventStoreBehind, pki.EventRestoreCarriedForward, pki.EventServerStarted,
}

// Audit lists events, newest first. A type that is none of EventTypes and
// that no event in the trail has is refused: a misspelt one
// (certificate.revoke) would answer an empty list, which reads as a quiet
// trail.
func (o *Ops) Audit(ctx context.Context, p auth.Principal, f store.AuditFilter) ([]pki.AuditEvent, error) {
	if err := auth.Require(p, pki.RoleAuditor); err != nil {
		return nil, err
	}
	if f.Limit < 0 || f.Limit > MaxPage {
		return nil, pki.Errorf(pki.EBadRequest, "limit %d: want 1 to %d", f.Limit, MaxPage)
	}
	if f.SerialHex != "" {
		sn, err := admin.NormalizeSerial(f.SerialHex)
		if err != nil {
			return nil, err
		}
		f.SerialHex = sn
	}
	evs, err := o.st.ListAudit(ctx, f)
	if err != nil || len(evs) > 0 || f.Type == "" || slices.Contains(EventTypes, f.Type) {
		return evs, err
	}
	// None in the page: is there any of this type at all? (A type another
	// version wrote is known by its events.)
	ever, err := o.st.ListAudit(ctx, store.AuditFilter{Type: f.Type, Limit: 1})
	if err != nil || len(ever) > 0 {
		return evs, err
	}
	return nil, pki.Errorf(pki.EBadRequest, "event type %.64q: no such type, and no event of it in the trail; want one of %s",
		f.Type, strings.Join(EventTypes, ", "))
}

// VerifyAudit checks the audit trail's hash chain, and where it starts,
// as `scepter audit verify` does.
func (o *Ops) VerifyAudit(ctx context.Context, p auth.Principal) (audit.Report, error) {
	if err := auth.Require(p, pki.RoleAuditor); err != nil {
		return audit.Report{}, err
	}
	return audit.VerifyTrail(ctx, o.st)
}

// --- CAs and profiles --------------------------------------------------------------

// CAInfo is one issuing CA and its place in the rollover.
type CAInfo struct {
	ID    string
	State string // current, next, previous
	Cert  *x509.Certificate
	// SwitchAt is when a next CA takes over.
	SwitchAt time.Time
}

// CAs lists the issuing CAs: current, next (with its switch time), previous.
func (o *Ops) CAs(ctx context.Context, p auth.Principal) ([]CAInfo, *x509.Certificate, error) {
	if err := auth.Require(p, pki.RoleAuditor); err != nil {
		return nil, nil, err
	}
	now := o.clock.Now()
	cur, _ := o.authority.Active(now)
	out := []CAInfo{{ID: cur.ID, State: "current", Cert: cur.Cert}}
	if next, _, ok := o.authority.Next(now); ok {
		at, _ := o.authority.SwitchAt()
		out = append(out, CAInfo{ID: next.ID, State: "next", Cert: next.Cert, SwitchAt: at})
	}
	for _, prev := range o.authority.Previous() {
		if prev.ID != cur.ID {
			out = append(out, CAInfo{ID: prev.ID, State: "previous", Cert: prev.Cert})
		}
	}
	return out, o.authority.Root, nil
}

// Profiles returns the configured profiles by name and the default's name.
func (o *Ops) Profiles(ctx context.Context, p auth.Principal) ([]pki.Profile, string, error) {
	if err := auth.Require(p, pki.RoleAuditor); err != nil {
		return nil, "", err
	}
	m, def := o.enroll.Profiles()
	out := make([]pki.Profile, 0, len(m))
	for _, pr := range m {
		out = append(out, pr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, def, nil
}

// Dashboard returns the counts and the last `days` days.
func (o *Ops) Dashboard(ctx context.Context, p auth.Principal, days int) (store.Dashboard, int, error) {
	if err := auth.Require(p, pki.RoleAuditor); err != nil {
		return store.Dashboard{}, 0, err
	}
	if days < 1 || days > 366 {
		return store.Dashboard{}, 0, pki.Errorf(pki.EBadRequest, "days %d: want 1 to 366", days)
	}
	d, err := o.st.Dashboard(ctx, o.clock.Now(), days)
	return d, int(d.Pending), err
}

// --- EST users, tokens, people ----------------------------------------------------------

// ESTUsers lists EST users.
func (o *Ops) ESTUsers(ctx context.Context, p auth.Principal) ([]pki.ESTUser, error) {
	if err := auth.Require(p, pki.RoleAuditor); err != nil {
		return nil, err
	}
	return o.admin.ESTUsers(ctx)
}

// AddESTUser creates an EST user.
func (o *Ops) AddESTUser(ctx context.Context, p auth.Principal, name, password, profile string) (pki.ESTUser, error) {
	if err := auth.Require(p, pki.RoleAdmin); err != nil {
		return pki.ESTUser{}, err
	}
	if err := auth.RequireLasting(p, "an EST user"); err != nil {
		return pki.ESTUser{}, err
	}
	return o.admin.AddESTUser(ctx, name, password, profile, p.Actor())
}

// RemoveESTUser deletes an EST user.
func (o *Ops) RemoveESTUser(ctx context.Context, p auth.Principal, name string) error {
	if err := auth.Require(p, pki.RoleAdmin); err != nil {
		return err
	}
	_, err := o.admin.RemoveESTUser(ctx, name, p.Actor())
	return err
}

// Tokens, NewToken and RevokeToken manage API tokens (admin only).
func (o *Ops) Tokens(ctx context.Context, p auth.Principal) ([]pki.APIToken, error) {
	return o.auth.Tokens(ctx, p)
}

func (o *Ops) NewToken(ctx context.Context, p auth.Principal, name string, role pki.Role, ttl time.Duration) (string, pki.APIToken, error) {
	return o.auth.NewToken(ctx, name, role, ttl, p)
}

func (o *Ops) RevokeToken(ctx context.Context, p auth.Principal, idOrName string) (pki.APIToken, error) {
	return o.auth.RevokeToken(ctx, idOrName, p)
}

// Users, AddUser and RemoveUser manage console users (admin only).
func (o *Ops) Users(ctx context.Context, p auth.Principal) ([]pki.User, error) {
	return o.auth.Users(ctx, p)
}

func (o *Ops) AddUser(ctx context.Context, p auth.Principal, name string, role pki.Role, password string) (pki.User, error) {
	return o.auth.AddUser(ctx, name, role, password, p)
}

// RemoveUser takes the name in any case, as names are unique regardless of
// case; it is resolved to the stored spelling first, so that removing
// yourself as ALICE is refused as removing alice is, and the audit trail
// names the user as stored.
func (o *Ops) RemoveUser(ctx context.Context, p auth.Principal, name string) error {
	if err := auth.Require(p, pki.RoleAdmin); err != nil {
		return err
	}
	users, err := o.st.ListUsers(ctx)
	if err != nil {
		return fmt.Errorf("ops: remove user %q: %w", name, err)
	}
	stored := name
	for _, u := range users {
		if u.Name == name {
			stored = name
			break
		}
		if strings.EqualFold(u.Name, name) {
			stored = u.Name
		}
	}
	if err := o.auth.RemoveUser(ctx, stored, p); err != nil {
		return err
	}
	if o.userRemoved != nil {
		o.userRemoved(stored)
	}
	return nil
}

// IsNotFound reports whether err says a named thing does not exist.
func IsNotFound(err error) bool {
	return pki.ErrorCode(err) == pki.ENotFound || errors.Is(err, store.ErrNotFound)
}
