package enroll

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/credential"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// auditedError marks a refusal the service has already written to the
// audit trail, so a handler does not record it a second time.
type auditedError struct{ err error }

func (e *auditedError) Error() string { return e.err.Error() }
func (e *auditedError) Unwrap() error { return e.err }

// Audited reports whether err is a refusal the service has recorded in the
// audit trail. A handler records any other refusal with RecordRefusal.
func Audited(err error) bool {
	var a *auditedError
	return errors.As(err, &a)
}

// countedError marks an error of a call the service counted already (a
// poll, counted by its outcome), so that RecordRefusal does not count it a
// second time.
type countedError struct{ err error }

func (e *countedError) Error() string { return e.err.Error() }
func (e *countedError) Unwrap() error { return e.err }

// AlreadyCounted marks err as the refusal of a call whose outcome the
// service counted already: a protocol's check after a poll the service
// answered (the poller's subject, its revoked signer). RecordRefusal then
// records it without counting it again.
func AlreadyCounted(err error) error {
	if err == nil || counted(err) {
		return err
	}
	return &countedError{err}
}

func counted(err error) bool {
	var c *countedError
	return errors.As(err, &c)
}

// Refusal is a request refused before or outside the enrollment service's
// own decisions: an unverifiable signature, missing credentials, a
// malformed body.
type Refusal struct {
	Protocol   pki.Protocol
	Operation  string // e.g. "PKIOperation", "simpleenroll"
	RemoteAddr string
	Profile    string // as asked; "" for the default profile's URL
	// NoProfile: the request named no profile at all (a path that is no
	// EST label and operation), so Profile "" is not the default one.
	NoProfile     bool
	TransactionID string
	Subject       string
	Err           error // its code and client-safe message are recorded
}

// RecordRefusal writes a refusal to the audit trail (and the log), and
// counts it as a refused call unless the service counted it already
// (AlreadyCounted): what a protocol handler refuses before the service
// sees the request (a replay, a bad signature, an envelope that does not
// open, a body that is no request) is a refusal an operator watching the
// metrics must see as well as one the service made. Every refusal is
// counted, also those the audit trail's rate limit holds back. It returns
// the write's error; the refusal stands either way.
func (s *Service) RecordRefusal(ctx context.Context, r Refusal) error {
	if !counted(r.Err) {
		profile := r.Profile
		if r.NoProfile {
			profile = UnknownProfile
		}
		s.observe(r.Protocol, profile, nil, r.Err)
	}
	ev := clipped(pki.AuditEvent{
		Time: s.clock.Now(), Type: pki.EventRefused, Actor: string(r.Protocol) + ":" + pki.ClientHost(r.RemoteAddr),
		Profile: r.profile(s), TransactionID: r.TransactionID, Subject: r.Subject, Outcome: "failure",
		Reason: failureReason(r.Err), Detail: r.Operation,
	})
	s.log.Info("request refused", "protocol", r.Protocol, "operation", ev.Detail, "reason", ev.Reason,
		"remote", r.RemoteAddr, "transaction_id", ev.TransactionID, "err", clipErr(r.Err))
	return s.auditRefusal(ctx, r.RemoteAddr, ev)
}

// profileAsked is the profile a refused request asked for, as its record
// names it: the default profile's name for a request at the default URL
// (""), as the metrics and an issuance there name it; any other name as
// it was asked, known or not.
// profile is the profile a refusal is recorded with: none for a request
// that named none.
func (r Refusal) profile(s *Service) string {
	if r.NoProfile {
		return ""
	}
	return s.profileAsked(r.Profile)
}

func (s *Service) profileAsked(name string) string {
	if name == "" {
		return s.cfg.DefaultProfile
	}
	return name
}

// clipped bounds the fields of a refusal that a client chose, directly or
// quoted in the reason: refusals are rate-limited by count, and each must
// also be bounded in size, or one address fills the disk with 100 KB
// labels (the audit trail cannot be pruned).
func clipped(ev pki.AuditEvent) pki.AuditEvent {
	ev.Profile = pki.Clip(ev.Profile, 128)
	ev.TransactionID = pki.Clip(ev.TransactionID, 256)
	ev.Subject = pki.Clip(ev.Subject, 1024)
	ev.Reason = pki.Clip(ev.Reason, 1024)
	ev.Detail = pki.Clip(ev.Detail, 1024)
	return ev
}

// clipErr is err's text for a log line, bounded as clipped bounds the
// audit record.
func clipErr(err error) string {
	if err == nil {
		return ""
	}
	return pki.Clip(err.Error(), 2048)
}

// auditRefusal appends a refusal event unless the address (an IPv6 /64,
// grouped as the failure throttle and the rate limit group it: a client
// holds the whole /64) or everyone together has had too many lately. A refusal changes nothing, so a failed
// write is logged, returned and otherwise left: the refusal stands.
func (s *Service) auditRefusal(ctx context.Context, remote string, ev pki.AuditEvent) error {
	ok, note := s.refusals.take(throttleHost(remote))
	if !ok {
		return nil
	}
	// The client may have hung up; its refusal is recorded all the same.
	ctx = context.WithoutCancel(ctx)
	if note != "" {
		// First: the detail may end in text the client chose (the user
		// name it tried), which must stay last to be told apart.
		ev.Detail = strings.TrimSuffix(note+"; "+ev.Detail, "; ")
	}
	if err := s.store.AppendAudit(ctx, ev); err != nil {
		s.log.Error("audit write failed", "err", err, "event", ev.Type, "reason", ev.Reason)
		return err
	}
	return nil
}

// certificateRefusal is a refusal about one certificate of ours (a key
// revoked as compromised: the certificate revoked so), which its audit
// event names, so that `audit list --serial` finds every attempt to use it.
type certificateRefusal struct {
	issuerID, serialHex string
	err                 error
}

func (e *certificateRefusal) Error() string { return e.err.Error() }
func (e *certificateRefusal) Unwrap() error { return e.err }

// nameRefusedCertificate puts in ev the certificate of ours a refused
// request was about: the one a refusal names, or else the one that signed
// it (a SCEP renewal) or authenticated its TLS connection (an EST
// re-enrollment), when we issued it (revoked or expired included); and its
// subject when the request had no CSR to take one from. So an attempt to
// use a revoked certificate is found by the certificate's serial.
func (s *Service) nameRefusedCertificate(ev *pki.AuditEvent, req Request, cause error) {
	var named *certificateRefusal
	if errors.As(cause, &named) {
		ev.IssuerID, ev.SerialHex = named.issuerID, named.serialHex
		return
	}
	cert := req.Evidence.SignerCert
	if cert == nil {
		cert = req.Evidence.TLSClientCert
	}
	if cert == nil {
		return
	}
	issuer, err := s.authority.IssuedByUs(cert, s.clock.Now())
	if issuer == nil || (err != nil && !errors.Is(err, ca.ErrExpired)) {
		return
	}
	ev.IssuerID, ev.SerialHex = issuer.ID, cert.SerialNumber.Text(16)
	if ev.Subject == "" {
		ev.Subject = csr.NameString(cert.RawSubject)
	}
}

// recordFailure writes a refused enrollment to the audit trail and returns
// cause marked as recorded.
func (s *Service) recordFailure(ctx context.Context, req Request, cause error) error {
	if Audited(cause) {
		return cause
	}
	ev := pki.AuditEvent{
		Time: s.clock.Now(), Type: pki.EventEnrollFailed, Actor: actor(req), Profile: s.profileAsked(req.Profile),
		TransactionID: req.TransactionID, Outcome: "failure", Reason: failureReason(cause),
	}
	if pki.ClientGone(ctx, cause) {
		ev.Reason = "the client went away before the answer"
	}
	if req.CSR != nil {
		ev.Subject = csr.NameString(req.CSR.RawSubject)
	}
	s.nameRefusedCertificate(&ev, req, cause)
	if req.Evidence.HTTPUser != "" {
		// Without it a failed login does not say whose password was
		// guessed.
		ev.Detail = "attempted_user: " + s.attemptedUser(ctx, req.Evidence.HTTPUser)
	}
	ev = clipped(ev)
	_ = s.auditRefusal(ctx, req.RemoteAddr, ev)
	s.log.Warn("enrollment refused", "reason", ev.Reason, "subject", ev.Subject, "transaction_id", ev.TransactionID,
		"remote", req.RemoteAddr, "err", clipErr(cause))
	return &auditedError{cause}
}

// attemptedUser names the user name an EST login tried: as sent when it
// is an EST user's (clipped with the detail, escaped by every reader);
// otherwise only by its tag (credential.NameTag under the store's
// LoginNameKey, as the console names an unknown login name). A name that
// is no user's is often the password, or a live one-time challenge, typed
// into the user field, and every auditor reads the trail. Should the user
// table not answer, the name is tagged too: it may be such a secret.
func (s *Service) attemptedUser(ctx context.Context, name string) string {
	// The client may have hung up; its refusal is recorded all the same.
	ctx = context.WithoutCancel(ctx)
	_, err := s.store.ESTUser(ctx, name)
	if err == nil {
		return name
	}
	what := "unknown name"
	if !errors.Is(err, store.ErrNotFound) {
		what = "name not looked up"
	}
	key, err := s.nameKey(ctx)
	if err != nil {
		s.log.Warn("an unknown EST user name left untagged", "err", err)
		return what + " (no tag: the store's key is unreadable)"
	}
	return what + " (tag " + credential.NameTag(key, name) + ")"
}

// nameKey is the store's key of names that are no account's
// (store.LoginNameKey, the console's too), made by the first node that
// needs it and then the same for every node and every run, read once.
func (s *Service) nameKey(ctx context.Context) ([]byte, error) {
	key, err := s.nameKeyRead.Get(ctx, s.store)
	if err != nil {
		return nil, fmt.Errorf("enroll: the key of unknown names: %w", err)
	}
	return key, nil
}

// failureReason is the audit text: the client-safe message, plus the code.
func failureReason(err error) string {
	return string(pki.ErrorCode(err)) + ": " + pki.OperatorReason(err)
}
