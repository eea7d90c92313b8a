// Package enroll is the one enrollment service every protocol handler calls.
// It owns the decisions: who may enroll, which profile applies, what goes
// into the certificate, and the record of it, written before the answer
// leaves. Authentication and policy are small steps run in order, so a
// protocol or a profile can add one without touching the others.
//
// A handler translates its wire format into a Request whose Evidence is
// protocol-neutral (a challenge, a certificate the client proved it holds,
// an HTTP user, a TLS channel binding) and maps the one error type of this
// package, *pki.Error, onto its own answer. Handlers reach the store and the
// CA only through this service.
package enroll

import (
	"context"
	"crypto"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/credential"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/migrate"
)

// Evidence is what a client presents to authenticate an enrollment, in a
// protocol-neutral form. Each protocol fills what it has; the service
// decides what is enough.
type Evidence struct {
	// Challenge is a shared or one-time secret: SCEP's challengePassword.
	Challenge string
	// SignerCert is a certificate that signed the request and whose key is
	// not the request's own (SCEP: a message signed by an earlier
	// certificate). A self-signed transport certificate is not evidence.
	SignerCert *x509.Certificate
	// TLSClientCert is the certificate the client authenticated the TLS
	// connection with, and TLSChain the intermediates it sent along.
	TLSClientCert *x509.Certificate
	TLSChain      []*x509.Certificate
	// HTTPUser and HTTPPassword are HTTP Basic credentials. A password
	// whose user is not an EST user is tried as a one-time challenge.
	HTTPUser     string
	HTTPPassword string
	// Channel is set for requests that came over TLS.
	Channel *ChannelBinding
}

// ChannelBinding links a request to the TLS session it came over
// (RFC 7030 §3.5).
type ChannelBinding struct {
	// Session is the session's binding value: tls-unique on TLS 1.2,
	// tls-exporter (RFC 9266) on TLS 1.3; nil when the session has none
	// (a TLS 1.2 resumption without extended master secret).
	Session []byte
	// Claim is the value the request carries (EST: decoded from the CSR's
	// challengePassword); nil when it carries none.
	Claim []byte
}

// heldCertificate is the certificate, besides the request's key, whose
// possession the client proved.
func (e Evidence) heldCertificate() *x509.Certificate {
	if e.SignerCert != nil {
		return e.SignerCert
	}
	return e.TLSClientCert
}

// Request is one enrollment as the service sees it.
type Request struct {
	CSR      *x509.CertificateRequest
	Evidence Evidence
	// Profile is the profile name ("" selects the default profile).
	Profile       string
	Protocol      pki.Protocol
	TransactionID string
	RemoteAddr    string
	// Renewal says the client asks to renew the certificate it proved it
	// holds (Evidence.SignerCert or TLSClientCert): that certificate, not a
	// challenge, authenticates the request.
	Renewal bool
	// RenewalFirst asks to try the request as a renewal by
	// Evidence.SignerCert first and, when that certificate cannot renew,
	// by its challenge: certmonger renews with a PKCSReq signed by its
	// certificate that still carries the challenge of its first
	// enrollment. The challenge enrolls a certificate's own key when the
	// certificate is outside its window, expired or revoked; a new key
	// only when the certificate is outside its window but valid: a signer
	// of another key than the CSR's must vouch for the key change, valid
	// now and not revoked or on hold (SECURITY.md, a relayed CSR), so the
	// SCEP handler refuses a new key signed by an expired (beyond the
	// renewal grace), revoked or held certificate before its challenge is
	// looked at (scepserver's checkRekeySigner). One outcome is recorded,
	// the one returned; a challenge refused as well gives the renewal's
	// reason, and is not counted by the failure throttle.
	RenewalFirst bool
	// ServerKeyGen asks the server to make the key (EST /serverkeygen): the
	// certificate gets a new key, returned in Result.PrivateKey; the CSR
	// only supplies the names.
	ServerKeyGen bool
	// Replayed says the message was received before (SCEP: its
	// transactionID and senderNonce, signed by the same key): it is
	// answered as its first copy's resend, and never issued for unless
	// that copy's issuance died holding its claim (see checkReplay).
	Replayed bool
	// FirstSeen is when a Replayed message's first copy was received
	// (ReplayFirstSeen of RememberNonce's refusal); zero when unknown.
	FirstSeen time.Time
	// HeldOnly, when set, is the refusal of a message that may only ask
	// about a request held for approval (SCEP: a PKCSReq sent again byte
	// for byte, whose signingTime the wait made older than the clock
	// skew allows): it is answered from that request, and refused with
	// HeldOnly when none is held for it. It starts nothing.
	HeldOnly error
	// Checked is what CheckCredentials returned for this request's
	// credentials, so that Enroll does not read them again; nil: Enroll
	// reads them. It is used only for the request it was made for.
	Checked *CheckedCredentials
}

// Result is a successful enrollment: an issued certificate, or a request
// held for approval (Pending set, Certificate nil).
type Result struct {
	Certificate *x509.Certificate
	Chain       []*x509.Certificate // issuing CA up to the root
	Record      pki.Certificate
	Pending     *pki.EnrollmentRequest
	// Held is the stored request the answer comes from (pending or
	// issued), so a protocol can check the poller is the requester.
	Held *pki.EnrollmentRequest
	// PrivateKey is the key the server made (ServerKeyGen only).
	PrivateKey crypto.Signer
	// SentAgain: Certificate was issued earlier, for a request whose
	// answer was lost, and is sent again; nothing was issued now.
	SentAgain bool
	// Collected: with SentAgain, Certificate is the one issued on the
	// approval of a held request, collected after that request's
	// retention ended (found as a lost answer is) and not handed over by
	// such an answer before: counted as a poll.
	Collected bool
}

// Config is the service's policy configuration.
type Config struct {
	// StaticChallenge, when set, is accepted at StaticChallengeProfile
	// (default: the default profile) when its challenge mode allows it, and
	// nowhere else: a shared secret belongs to one profile.
	StaticChallenge        string
	StaticChallengeProfile string
	Profiles               map[string]pki.Profile
	DefaultProfile         string
	// Webhook verifies challenges for profiles in "webhook" mode.
	Webhook ChallengeVerifier
	// ManufacturerRoots are the CAs whose certificates (IDevIDs)
	// authenticate a first enrollment at profiles with ManufacturerAuth.
	ManufacturerRoots *x509.CertPool
	// WeakKeys, when set, refuses the RSA moduli it lists at every profile
	// (an operator's complete Debian weak-key lists, --weak-keys-file).
	WeakKeys pki.KeyBlocklist
	// FailedAttemptsPerAddress is how many failed challenge or password
	// checks of one identity from one address (an IPv6 /64) within 10
	// minutes lock it out (a minute, doubling up to an hour), ten times as
	// many of any identities the address itself; zero means 10.
	FailedAttemptsPerAddress int
	// PublicURL is the base URL relying parties reach this server at
	// (http://host:port): every certificate issued gets a CRL distribution
	// point, an OCSP URL and a caIssuers URL under it, unless its profile
	// sets its own. Empty: none.
	PublicURL string
	// CRLs hands out the current CRLs (SCEP GetCRL); nil: GetCRL refused.
	CRLs CRLSource
	// Observer, when set, is told the outcome of every Enroll, Poll and
	// Approve, refusals included (metrics): every protocol is counted the
	// same way, in one place.
	Observer Observer
	// Passwords bounds the EST users' argon2id checks at once; nil: as
	// many as there are CPUs, remembering each accepted user's password
	// for acceptedPasswordLifetime.
	Passwords *credential.PasswordChecker
	// IssuerReady, when set, is asked before each issuance: an error
	// refuses it as unavailable (503, try again later). A node of several
	// on one store whose CA is not the store's current one (it lacks the
	// next CA's keys at the switch) must not go on issuing from its own.
	IssuerReady func(context.Context) error
	// IssuanceGate, when set, is asked before a request is held for
	// approval or issued, before anything is claimed, reserved or signed:
	// an error refuses it as unavailable (503, try again later; see
	// Gated). serve sets it to the PostgreSQL store's SchemaAhead: a node
	// whose store another node migrated past its binary must record
	// nothing in the old shape, and need not sign what it cannot record.
	IssuanceGate func() error
	// ServerKeys, when set, lists the keys of the server's roles besides
	// the CA's own (the OCSP responders', the HTTPS certificate's), which
	// no enrollment may have certified (checkNotOwnKey). It is called per
	// request: it must be quick (read what is loaded) and safe for
	// concurrent use.
	ServerKeys func() []ServerKey
}

// ServerKey is the key of one of the server's roles (Config.ServerKeys).
type ServerKey struct {
	// Role names it in a refusal: "the OCSP responder's key".
	Role string
	Key  crypto.PublicKey
}

// Observer is told the outcome of each Enroll, Poll and Approve call. It
// is called on the request's goroutine: it must be quick and safe for
// concurrent use.
type Observer interface {
	Enrolled(Outcome)
}

// Outcome is one call's outcome, in values bounded enough to be metric
// labels: nothing in it comes from the client as it was sent.
type Outcome struct {
	// Protocol is the request's pki.Protocol, or "unknown" when the call
	// failed before it was known.
	Protocol string
	// Profile is the name of a configured profile, or UnknownProfile (a
	// name no profile has, or not known yet).
	Profile string
	// Result is ResultIssued, ResultRenewed, ResultPending, ResultPolled,
	// ResultReanswered or ResultRefused.
	Result string
	// Code is the refusal's error code (pki.EInternal for an internal
	// failure); "" unless Result is ResultRefused.
	Code pki.Code
}

// Outcome results.
const (
	// ResultIssued: a certificate was issued (a first enrollment, or the
	// approval of a held request).
	ResultIssued = "issued"
	// ResultRenewed: a certificate was issued that renews another.
	ResultRenewed = "renewed"
	// ResultPending: a request was held for approval.
	ResultPending = "pending"
	// ResultPolled: a client asking after a held request (SCEP CertPoll, a
	// request sent again) was answered from its stored state: still
	// pending, or the certificate issued on approval (counted then),
	// also when it is collected after the request's retention.
	ResultPolled = "polled"
	// ResultReanswered: a first enrollment asked again with its used-up
	// one-time challenge, its key and its names, or a renewal asked again
	// for the same key (its answer was lost), was answered with the
	// certificate issued for it then; nothing was issued.
	ResultReanswered = "reanswered"
	// ResultRefused: the call failed; Outcome.Code says why.
	ResultRefused = "refused"
	// UnknownProfile is Outcome.Profile for a profile name that is not
	// configured.
	UnknownProfile = "unknown"
)

// Service is the enrollment service.
type Service struct {
	store     store.Store
	authority *ca.Authority
	clock     pki.Clock
	log       *slog.Logger
	cfg       Config
	static    credential.Static
	// staticProfile is the one profile the static challenge is good for.
	staticProfile string
	failures      *failureThrottle
	refusals      *refusalLimiter
	passwords     *credential.PasswordChecker
	names         map[string]*namePolicy
	steps         []Step
	// claimWait bounds a copy's wait for the certificate of the issuance
	// that claimed its transaction (defaultClaimWait).
	claimWait time.Duration

	// nameKeyRead is the store's LoginNameKey, read once (nameKey).
	nameKeyRead credential.NameKey
}

// New builds a service on a loaded CA. Profiles are validated here, once:
// a profile the linter would refuse fails at start, naming the lint.
func New(st store.Store, authority *ca.Authority, clock pki.Clock, log *slog.Logger, cfg Config) (*Service, error) {
	if st == nil || authority == nil || clock == nil {
		return nil, errors.New("enroll: a store, a CA and a clock are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Profiles) == 0 {
		p := pki.DefaultProfile()
		cfg.Profiles = map[string]pki.Profile{p.Name: p}
		cfg.DefaultProfile = p.Name
	}
	if _, ok := cfg.Profiles[cfg.DefaultProfile]; !ok {
		return nil, fmt.Errorf("enroll: default profile %q is not defined", cfg.DefaultProfile)
	}
	if cfg.WeakKeys != nil {
		profiles := make(map[string]pki.Profile, len(cfg.Profiles))
		for name, p := range cfg.Profiles {
			p.Keys.Blocklist = cfg.WeakKeys
			profiles[name] = p
		}
		cfg.Profiles = profiles
	}
	issuer, _ := authority.Active(clock.Now())
	for name, p := range cfg.Profiles {
		if err := issuer.CheckProfile(p, clock.Now()); err != nil {
			return nil, fmt.Errorf("enroll: profile %q: %w", name, err)
		}
	}
	staticProfile := cfg.StaticChallengeProfile
	if staticProfile == "" {
		staticProfile = cfg.DefaultProfile
	}
	if _, ok := cfg.Profiles[staticProfile]; !ok && cfg.StaticChallenge != "" {
		return nil, fmt.Errorf("enroll: the static challenge's profile %q is not defined", staticProfile)
	}
	if cfg.Passwords == nil {
		cfg.Passwords = credential.NewRememberingPasswordChecker(0, clock.Now, acceptedPasswordLifetime)
	}
	s := &Service{store: st, authority: authority, clock: clock, log: log, cfg: cfg, static: credential.NewStatic(cfg.StaticChallenge),
		staticProfile: staticProfile, failures: newFailureThrottle(clock, cfg.FailedAttemptsPerAddress), refusals: newRefusalLimiter(clock),
		passwords: cfg.Passwords,
		names:     map[string]*namePolicy{}, claimWait: defaultClaimWait}
	for name, p := range cfg.Profiles {
		np, err := compileNames(p)
		if err != nil {
			return nil, fmt.Errorf("enroll: profile %q: %w", name, err)
		}
		s.names[name] = np
	}
	// No key-policy step: the issuer applies the key policy itself, first
	// thing in Issue, before a serial is reserved or anything signed, and
	// nothing between the steps and Issue acts on the key. Checking it here
	// too ran the weak-key checks (Fermat, ROCA, Debian) twice for every
	// enrollment. A request held for approval is checked by the issuer
	// (checkIssuable) before it is held.
	s.steps = []Step{checkProofOfPossession, checkChannelBinding, s.authenticate, s.checkNames, checkRenewalNames}
	return s, nil
}

// Profiles returns the configured profiles (a copy) and the default's name.
func (s *Service) Profiles() (map[string]pki.Profile, string) {
	out := make(map[string]pki.Profile, len(s.cfg.Profiles))
	for n, p := range s.cfg.Profiles {
		out[n] = p
	}
	return out, s.cfg.DefaultProfile
}

// Profile returns a profile by name ("" for the default).
func (s *Service) Profile(name string) (pki.Profile, bool) {
	if name == "" {
		name = s.cfg.DefaultProfile
	}
	p, ok := s.cfg.Profiles[name]
	return p, ok
}

// State is what the steps share while deciding one request.
type State struct {
	Req     Request
	Profile pki.Profile
	// PublicKey is the key to certify: the CSR's, or the one the server
	// made (ServerKeyGen).
	PublicKey crypto.PublicKey
	// RawSubject is the subject to issue: the CSR's, with the profile's
	// fixed values applied.
	RawSubject []byte
	// SANs are the names to issue: the CSR's, with the profile's fixed ones.
	SANs SANSet
	// ConsumeChallenge names the one-time challenge this issuance uses up.
	ConsumeChallenge []byte
	// ChallengeHash is the SHA-256 of the challenge that authenticated the
	// request, kept with a held request.
	ChallengeHash []byte
	// Held is the stored request a client asks about again.
	Held *pki.EnrollmentRequest
	// Renews is the record of the certificate a renewal replaces, and
	// RenewsCert that certificate (nil otherwise).
	Renews     *pki.Certificate
	RenewsCert *x509.Certificate
	// IssuedAlready is the certificate issued earlier for this very
	// request: the renewal of Renews for the same key, or the certificate
	// whose issuance used up the one-time challenge presented, for the same
	// key. A client whose answer was lost asks again, and gets it again.
	IssuedAlready *pki.Certificate
	// ChallengeUsedUp: the challenge presented is a one-time challenge an
	// issuance used up (noted for a renewal-first request only, whose
	// fallback needs it). A guess cannot be one.
	ChallengeUsedUp bool
	// AuthorizedBy names what authenticated the request, for the audit
	// trail: "est-user NAME", "challenge ID" (a one-time challenge's id,
	// never its secret), "static-challenge", "webhook",
	// "manufacturer-cert ISSUER SERIAL", "renewal SERIAL".
	AuthorizedBy string
	// Events are appended with the issuance (e.g. challenge.used).
	Events []pki.AuditEvent
	// Attempt, when set, is where the secret check notes its outcome for
	// the failure throttle (settle).
	Attempt *secretAttempt
	// CompleteRequest is the held request an approval completes.
	CompleteRequest *pki.EnrollmentRequest
	ApprovedBy      string

	// hashedKey is store.PublicKeyHash of PublicKey once keyHash made it
	// (nil before, and after PublicKey changes).
	hashedKey []byte
	// expired is the refusal of the request of this transaction whose
	// retention ended while it waited for a decision (heldExpired); nil
	// when none was found.
	expired error
	// lookedAt is when issuedForTransaction last looked for a certificate
	// of the request's SCEP transaction (zero: it did not).
	lookedAt time.Time

	// checked is what CheckCredentials read for this request (reusable),
	// decided on instead of reading it again; reading is where
	// CheckCredentials notes what it reads.
	checked, reading *CheckedCredentials
}

// keyHash is store.PublicKeyHash of st.PublicKey, made once per request:
// the compromised-key check, the resend lookup and the issuance's record
// are all keyed by it.
func (st *State) keyHash() ([]byte, error) {
	if st.hashedKey == nil {
		h, err := store.PublicKeyHash(st.PublicKey)
		if err != nil {
			return nil, err
		}
		st.hashedKey = h
	}
	return st.hashedKey, nil
}

// Step is one decision. It returns a *pki.Error to refuse.
type Step func(ctx context.Context, st *State) error

// Enroll authenticates, applies the profile, issues, and records. A refusal
// is recorded in the audit trail before it is returned (see Audited).
func (s *Service) Enroll(ctx context.Context, req Request) (*Result, error) {
	res, err := s.enrollRenewalFirst(ctx, req)
	s.observe(req.Protocol, req.Profile, res, err)
	if err != nil {
		return nil, s.recordFailure(ctx, req, err)
	}
	return res, nil
}

// observe tells the Observer the outcome of an Enroll, Poll or Approve.
// profile is the name asked for ("" for the default profile).
func (s *Service) observe(protocol pki.Protocol, profile string, res *Result, err error) {
	if s.cfg.Observer == nil {
		return
	}
	o := Outcome{Protocol: string(protocol), Profile: UnknownProfile}
	if o.Protocol == "" {
		o.Protocol = "unknown"
	}
	if profile == "" {
		profile = s.cfg.DefaultProfile
	}
	if _, ok := s.cfg.Profiles[profile]; ok {
		o.Profile = profile
	}
	switch {
	case err != nil || res == nil:
		o.Result, o.Code = ResultRefused, pki.ErrorCode(err)
	case res.Held != nil || res.Collected:
		o.Result = ResultPolled
	case res.Pending != nil:
		o.Result = ResultPending
	case res.SentAgain:
		o.Result = ResultReanswered
	case res.Record.RenewedFrom != "":
		o.Result = ResultRenewed
	default:
		o.Result = ResultIssued
	}
	s.cfg.Observer.Enrolled(o)
}

// enrollRenewalFirst is enroll, tried as a renewal first when
// req.RenewalFirst says so.
func (s *Service) enrollRenewalFirst(ctx context.Context, req Request) (*Result, error) {
	if req.Replayed {
		if err := s.checkReplay(ctx, req); err != nil {
			return nil, err
		}
	}
	if !req.RenewalFirst || req.Renewal || req.Evidence.SignerCert == nil {
		var a secretAttempt
		res, err := s.enroll(ctx, req, &a)
		s.settle(a, err)
		return res, err
	}
	asRenewal := req
	asRenewal.Renewal = true
	var renewal secretAttempt // a renewal checks no secret
	res, renewErr := s.enroll(ctx, asRenewal, &renewal)
	if renewErr == nil || !refusedRequest(renewErr) {
		s.settle(renewal, renewErr)
		return res, renewErr
	}
	var byChallenge secretAttempt
	res, err := s.enroll(ctx, req, &byChallenge)
	if err != nil && challengeRefused(err) {
		// The old challenge is expected to fail: the renewal's reason is
		// the one that helps, and the one the device is told. The used-up
		// challenge of its first enrollment is not counted against its
		// address (certmonger outside its renewal window asks every few
		// minutes and would lock out its address); any other refused
		// challenge is, or a holder of a certificate that cannot renew could
		// guess challenges here unthrottled.
		if !byChallenge.usedUp {
			s.settle(byChallenge, err)
		}
		return nil, renewErr
	}
	s.settle(byChallenge, err)
	return res, err
}

// refusedRequest: the service said no to the request itself, as opposed to
// failing to decide (store unavailable, internal error).
func refusedRequest(err error) bool {
	code := pki.ErrorCode(err)
	return code != pki.EInternal && code != pki.EUnavailable
}

// newChallengeForExpired: st, a request of the transaction of a held
// request that expired undecided (st.expired), was authenticated by
// another challenge than that request: a new request of the transaction,
// held in its place.
func newChallengeForExpired(st *State) bool {
	var e *expiredRequest
	if !errors.As(st.expired, &e) || st.ChallengeHash == nil {
		return false
	}
	return subtle.ConstantTimeCompare(st.ChallengeHash, e.request.ChallengeHash) != 1
}

// enroll decides one request, noting its secret check in attempt for the
// caller to settle once it knows which outcome the client is told.
func (s *Service) enroll(ctx context.Context, req Request, attempt *secretAttempt) (*Result, error) {
	if req.CSR == nil {
		return nil, pki.Errorf(pki.EBadRequest, "no certificate request")
	}
	profile, ok := s.Profile(req.Profile)
	if !ok {
		return nil, pki.Errorf(pki.ENotFound, "unknown profile %q", req.Profile)
	}
	if req.ServerKeyGen && !profile.ServerKeyGen {
		return nil, pki.Errorf(pki.EBadRequest, "profile %q does not allow server-side key generation", profile.Name)
	}
	st := &State{Req: req, Profile: profile, PublicKey: req.CSR.PublicKey, Attempt: attempt, checked: s.reusable(req)}
	heldAnswer := func() (*Result, bool, error) {
		// A client asking again about a held request (micromdm's
		// scepclient resends its PKCSReq instead of polling; an EST client
		// sends the same CSR again after 202) is answered from the stored
		// state once it proves the same key and authenticates again. The
		// one-time challenge the request used up still counts for it.
		if err := checkProofOfPossession(ctx, st); err != nil {
			return nil, true, err
		}
		held, err := s.heldSameKey(ctx, st)
		if RequestExpired(err) && !req.Replayed && req.HeldOnly == nil {
			// Its retention ended before anyone decided it. This request
			// is a new one of the transaction (a copy as it was is told
			// so): with a new challenge it is held in its place (see
			// hold), and it is told of the expiry if its challenge was
			// the one used up (below).
			st.expired = err
			return nil, false, nil
		}
		if err != nil || held == nil {
			return nil, err != nil, err
		}
		if s.signedByItsCertificate(held, st.Req.Evidence.heldCertificate()) {
			// Signed by the certificate this request was issued: the
			// device has it, so this is no question about the request
			// but a renewal by it (certmonger's and strongSwan's, with
			// the same key and so the same transaction ID), decided and
			// held as a new request below. Answered from the held one,
			// it got its own signer back for a renewal.
			return nil, false, nil
		}
		st.Held = held
		for _, step := range []Step{checkChannelBinding, s.authenticate} {
			if err := step(ctx, st); err != nil {
				return nil, true, err
			}
		}
		res, err := s.answer(ctx, held)
		return res, true, err
	}
	held := profile.RequireApproval && !req.ServerKeyGen
	if held || req.HeldOnly != nil {
		if res, done, err := heldAnswer(); done {
			return res, err
		}
	}
	if req.HeldOnly != nil {
		return nil, req.HeldOnly // nothing held for it (asked first)
	}
	for _, step := range s.steps {
		// A request answered with a certificate issued earlier for its key
		// (a renewal, or a first enrollment with its used-up challenge)
		// goes on too, so that its names are decided and compared below:
		// the same key asking for other names is not the lost answer.
		if err := step(ctx, st); err != nil {
			if held && st.Held == nil && challengeRefused(err) {
				// A copy of this request, sent at once, may have been
				// held meanwhile, using up the one-time challenge both
				// carry: it is answered as that one.
				if res, done, herr := heldAnswer(); done {
					return res, herr
				}
			}
			if st.expired != nil && isSpentChallenge(err) {
				// The one-time challenge its expired request used up:
				// what the client needs to know is that the request
				// expired, and to enroll again with a new one.
				return nil, st.expired
			}
			return nil, err
		}
	}
	if again := st.IssuedAlready; again != nil {
		if st.Renews != nil && !asIssued(st, again) {
			return nil, renewedWithOtherNames(st, again)
		}
		if st.Renews == nil && !asIssued(st, again) {
			// The used-up challenge is refused after all, as used
			// (spentChallenge): its holder asks for other names.
			return nil, pki.Wrap(pki.EForbidden, store.ErrChallengeUnusable,
				"this one-time challenge password was used already, by a request for this key with other names; ask for a new one")
		}
		return s.sentAgain(ctx, st, again)
	}
	if st.expired != nil && !newChallengeForExpired(st) {
		// The request that expired undecided, sent again with what
		// authenticated it (the static challenge, a webhook's challenge,
		// an EST user's password or client certificate): told so, as a
		// SCEP resend with its used one-time challenge is, until the
		// purge removes it. Held anew, it was filed as a second request
		// with a fresh retention, which could repeat forever.
		return nil, st.expired
	}
	if profile.RequireApproval {
		if req.ServerKeyGen {
			// The key would have to wait in the store for the approval.
			return nil, pki.Errorf(pki.EBadRequest, "profile %q holds requests for approval; server-side key generation cannot wait for one", profile.Name)
		}
		if req.Replayed {
			return nil, errReplayed() // nothing held for it (asked first)
		}
		if err := s.gate(); err != nil {
			return nil, err
		}
		// An administrator should not be asked to approve a request the
		// issuer would refuse: its key, subject or names.
		if err := s.checkIssuable(st); err != nil {
			return nil, err
		}
		if err := s.checkNotOwnKey(st); err != nil {
			return nil, err
		}
		if err := s.checkKeyNotCompromised(ctx, st); err != nil {
			return nil, err
		}
		return s.hold(ctx, st)
	}
	if again, err := s.issuedForTransaction(ctx, st); err != nil {
		return nil, err
	} else if again != nil {
		return s.sentAgain(ctx, st, again)
	}
	if req.Replayed {
		if again, err := s.answerReplay(ctx, st); err != nil {
			return nil, err
		} else if again != nil {
			return s.sentAgain(ctx, st, again)
		}
	}
	var key crypto.Signer
	if req.ServerKeyGen {
		var err error
		if key, st.PublicKey, err = generateFor(profile, req.CSR.PublicKey); err != nil {
			return nil, err
		}
		st.hashedKey = nil
	}
	res, err := s.issue(ctx, st)
	if err != nil {
		return nil, err
	}
	res.PrivateKey = key
	return res, nil
}

// caRequest is what the issuer is asked to certify for st: checked before a
// request is held (checkIssuable), signed at issuance.
func (s *Service) caRequest(st *State, issuer *ca.Issuer) ca.Request {
	return ca.Request{
		RawSubject:     st.RawSubject,
		DNSNames:       st.SANs.DNSNames,
		EmailAddresses: st.SANs.EmailAddresses,
		IPAddresses:    st.SANs.IPAddresses,
		URIs:           st.SANs.URIs,
		PublicKey:      st.PublicKey,
		Profile:        s.withRevocationURLs(st.Profile, issuer.ID),
	}
}

// issue signs and records a certificate. Its serial is reserved in the
// store before the CA key signs (so no signed certificate exists that the
// store does not know), and the certificate, its audit events and the
// challenge it consumes are recorded in one durable transaction before the
// answer leaves.
func (s *Service) issue(ctx context.Context, st *State) (*Result, error) {
	if err := s.gate(); err != nil {
		return nil, err
	}
	if s.cfg.IssuerReady != nil {
		if err := s.cfg.IssuerReady(ctx); err != nil {
			return nil, pki.Wrap(pki.EUnavailable, err, "this node cannot issue now (its CA is not the one in effect); try again later")
		}
	}
	if err := s.checkNotOwnKey(st); err != nil {
		return nil, err
	}
	if err := s.checkKeyNotCompromised(ctx, st); err != nil {
		return nil, err
	}
	now := s.clock.Now()
	issuer, err := s.issuerFor(st.Profile, now, st.Req.Protocol == pki.ProtocolInternal)
	if err != nil {
		return nil, err
	}
	var (
		hold      *transactionHold
		cert      *x509.Certificate
		waitUntil time.Time
	)
	for {
		hold = &transactionHold{claim: transactionClaim(st, s.clock.Now())}
		cert, err = issuer.Issue(ctx, s.caRequest(st, issuer), now, s.reserveSerial(now, st, hold))
		if !errors.Is(err, store.ErrTransactionClaimed) {
			break
		}
		// Another request of this transaction signs: a copy of this one,
		// sent at once, whose certificate is the answer; or one with other
		// names, after which this one goes on.
		if waitUntil.IsZero() {
			waitUntil = time.Now().Add(s.claimWait)
		}
		again, werr := s.awaitTransaction(ctx, st, waitUntil)
		if werr != nil {
			return nil, werr
		}
		if again != nil {
			return s.sentAgain(ctx, st, again)
		}
	}
	switch {
	case errors.Is(err, errIssuedMeanwhile):
		s.releaseClaim(ctx, hold.claim)
		return s.sentAgain(ctx, st, hold.issued)
	case err != nil:
		if hold.held {
			s.releaseClaim(ctx, hold.claim) // nothing was signed that leaves the process
		}
		return nil, err
	}
	rec := record(cert, issuer.ID, st, now)
	in := s.issuance(st, rec, now)
	if hold.held {
		in.Claim = hold.claim
	} else {
		in.Claim = transactionTrace(st, &rec)
	}
	err = s.store.RecordIssuance(ctx, in)
	if hold.held && refusedIssuance(err) {
		s.releaseClaim(ctx, hold.claim)
	}
	switch {
	case errors.Is(err, store.ErrConflict) && st.CompleteRequest != nil:
		return nil, pki.Wrap(pki.EConflict, err, "the request was decided by someone else")
	case errors.Is(err, store.ErrRenewsRevoked):
		// Revoked (or superseded by another renewal) since it was checked:
		// a revoked certificate authenticates nothing. Unless a copy of
		// this renewal superseded it: its certificate is the answer.
		if again, aerr := s.issuedForTransaction(ctx, st); aerr == nil && again != nil {
			return s.sentAgain(ctx, st, again)
		}
		return nil, s.renewsRevokedMeanwhile(ctx, st, err)
	case errors.Is(err, store.ErrKeyCompromised):
		// Revoked as compromised since checkKeyNotCompromised looked: the
		// certificate never leaves the process.
		return nil, s.keyCompromisedLate(ctx, st, err)
	case errors.Is(err, store.ErrOwnKey):
		// The key of a certificate of the server's own recorded since
		// this node loaded its CA (a new RA): the certificate never
		// leaves the process.
		return nil, ownKeyLate(err)
	case errors.Is(err, store.ErrChallengeUnusable):
		// Another request consumed the one-time challenge between our
		// check and this transaction; the certificate never leaves the
		// process, and its serial stays reserved. If that request was a
		// copy of this one (the same key), its certificate is the answer.
		if again, aerr := s.issuedForChallenge(ctx, st, st.ConsumeChallenge); aerr == nil && again != nil && asIssued(st, again) {
			return s.sentAgain(ctx, st, again)
		}
		return nil, s.challengeGoneMeanwhile(ctx, st.ConsumeChallenge, err)
	case err != nil:
		return nil, fmt.Errorf("enroll: record issuance: %w", err)
	}
	s.log.Info("certificate issued", "serial", pki.ShownSerial(rec.SerialHex), "subject", rec.Subject, "profile", rec.Profile,
		"protocol", rec.Protocol, "transaction_id", rec.TransactionID, "remote", rec.RequesterAddr)
	return &Result{Certificate: cert, Chain: issuer.Chain, Record: rec}, nil
}

// refusedIssuance: RecordIssuance refused the issuance, with nothing
// recorded: a conflict, or a store whose schema another node migrated past
// this binary's (the refusal is decided before, or rolls back, the
// writes), whose client should be served at once by an upgraded node.
// Any other failure (the store unreachable) may have recorded it after
// all: its claim is left to lapse.
func refusedIssuance(err error) bool {
	return errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrRenewsRevoked) ||
		errors.Is(err, store.ErrKeyCompromised) || errors.Is(err, store.ErrOwnKey) || errors.Is(err, store.ErrChallengeUnusable) ||
		errors.Is(err, migrate.ErrDatabaseTooNew)
}

// gatedError is a request refused by Config.IssuanceGate.
type gatedError struct{ err error }

func (e *gatedError) Error() string { return e.err.Error() }
func (e *gatedError) Unwrap() error { return e.err }

// gate refuses, as unavailable, a request this node must not hold or
// issue now (Config.IssuanceGate).
func (s *Service) gate() error {
	if s.cfg.IssuanceGate == nil {
		return nil
	}
	err := s.cfg.IssuanceGate()
	if err == nil {
		return nil
	}
	if pki.ErrorCode(err) != pki.EUnavailable {
		err = pki.Wrap(pki.EUnavailable, err, "this server issues nothing now: try again later")
	}
	return &gatedError{err}
}

// Gated reports whether err refuses a request because this node issues
// nothing now (Config.IssuanceGate), or because the store refused it for a
// schema newer than this binary's (migrate.ErrDatabaseTooNew: the first
// request after another node migrated, which the gate did not know of
// yet, refused at the serial reservation or the record): a state that
// lasts, which the node reports once (and /readyz while it lasts), and
// every refusal at WARN ("enrollment refused"), so a handler should not
// log each at ERROR.
func Gated(err error) bool {
	var g *gatedError
	return errors.As(err, &g) || errors.Is(err, migrate.ErrDatabaseTooNew)
}

// keyCompromisedLate is the refusal of an issuance the store refused
// because its key was revoked as compromised after checkKeyNotCompromised:
// the same as that check's, with the record's date and certificate when
// they can be read (a rare path: one more read).
func (s *Service) keyCompromisedLate(ctx context.Context, st *State, err error) error {
	if hash, herr := st.keyHash(); herr == nil {
		if k, kerr := s.store.CompromisedKey(ctx, hash); kerr == nil {
			return pki.Wrap(pki.EBadRequest, err, compromisedKeyText(k))
		}
	}
	return pki.Wrap(pki.EBadRequest, err, "this key was revoked as compromised; enroll with a new key")
}

// sentAgain answers a request with again, issued earlier for its key: a
// first enrollment with the certificate whose issuance used up the
// one-time challenge it presents, for its key and names, or that its SCEP
// transaction or, over EST, its credentials got (issuedForTransaction),
// or a renewal with
// the certificate that renewed st.Renews (its answer was lost, or a copy of
// it sent at once got there first). Nothing is issued, but the trail says who was sent what: the
// event is written before the answer leaves, and the answer is counted as
// sent again (ResultReanswered), not as an issuance. A certificate issued
// on the approval of a held request is its requester collecting it after
// the request's retention: said so (howIssued), and counted as a poll.
func (s *Service) sentAgain(ctx context.Context, st *State, again *pki.Certificate) (*Result, error) {
	why := "this one-time challenge was used up by its issuance, and the request asks again for the same key and names (its answer was lost)"
	switch {
	case st.Renews != nil:
		why = "it renewed " + st.Renews.SerialHex + " for the same key, and the renewal was asked again (its answer was lost, or a copy sent at once got there first)"
	case st.IssuedAlready != nil || st.ConsumeChallenge != nil:
		// A one-time challenge's: its used-up challenge found it, or a
		// copy consumed the challenge first.
	case resentByCredentials(st):
		why = "it was issued at this profile for the same key and names, authorized the same way, and the request asks again (its answer was lost, or a copy sent at once got there first)"
	default:
		why = "it was issued for this SCEP transaction, and the request asks again for the same key and names (its answer was lost, or a copy sent at once got there first)"
	}
	res, err := s.issuedResult(ctx, again.IssuerID, again.SerialHex)
	if err != nil {
		return nil, err
	}
	what, logged := "sent again", "request answered again with the certificate issued earlier for the same key"
	// Issued on the approval of a held request, this is its requester
	// collecting it after the request's retention (heldRequest no longer
	// answers from the request), not a lost answer.
	how, err := s.howIssued(ctx, again)
	if err != nil {
		return nil, err
	}
	if how.approval != "" {
		forWhat := "for this SCEP transaction"
		if st.Req.Protocol != pki.ProtocolSCEP {
			forWhat = "for this request"
		}
		what, why = how.collected(), how.approvedText(forWhat)+", and the request was sent again to collect it"
		logged = "request answered with the certificate issued on the approval of its held request"
		res.Collected = !how.sentBefore
	}
	ev := clipped(pki.AuditEvent{
		Time: s.clock.Now(), Type: pki.EventSentAgain, Actor: actor(st.Req), Profile: st.Profile.Name,
		SerialHex: again.SerialHex, IssuerID: again.IssuerID, Subject: again.Subject, TransactionID: st.Req.TransactionID,
		Outcome: "success", Detail: withAuthorizedBy("certificate "+pki.ShownSerial(again.SerialHex)+" "+what+": "+why, st),
	})
	if err := s.store.AppendAudit(ctx, ev); err != nil {
		return nil, fmt.Errorf("enroll: record certificate %s %s: %w", pki.ShownSerial(again.SerialHex), what, err)
	}
	s.log.Info(logged, "serial", pki.ShownSerial(again.SerialHex),
		"reason", what+": "+why, "transaction_id", st.Req.TransactionID, "remote", st.Req.RemoteAddr)
	res.SentAgain = true
	return res, nil
}

// reserveSerial is the issuer's reservation step: the serial and the linted
// TBS go into the store's serial registry in a transaction of its own,
// before the CA key signs, with hold's claim, when there is one, on st's
// SCEP transaction. A taken serial makes the issuer draw another. A claim
// another holds signs nothing (store.ErrTransactionClaimed), nor does one
// whose transaction a copy of st's request got a certificate for since
// issuedForTransaction looked (errIssuedMeanwhile, hold.issued): looked
// for again unless the claim proves there is none (mustLookAgain).
func (s *Service) reserveSerial(now time.Time, st *State, hold *transactionHold) ca.ReserveFunc {
	return func(ctx context.Context, issuerID, serialHex string, tbs []byte) (bool, error) {
		if hold.claim == nil {
			return s.reserved(s.store.ReserveSerial(ctx, issuerID, serialHex, tbs, now), issuerID, serialHex)
		}
		tookOver, err := s.store.ReserveSerialClaiming(ctx, *hold.claim, issuerID, serialHex, tbs)
		if err != nil {
			return s.reserved(err, issuerID, serialHex)
		}
		hold.held = true
		if !s.mustLookAgain(st, tookOver) {
			return false, nil
		}
		again, err := s.issuedForTransaction(ctx, st)
		if err != nil {
			return false, err
		}
		if again != nil {
			hold.issued = again
			return false, errIssuedMeanwhile
		}
		return false, nil
	}
}

// reserved is what the issuer is told of a reservation's outcome err.
func (s *Service) reserved(err error, issuerID, serialHex string) (taken bool, _ error) {
	if errors.Is(err, store.ErrConflict) {
		s.log.Warn("serial already taken; drawing another", "serial", serialHex, "issuer", issuerID)
		return true, nil
	}
	return false, err
}

// issuance is what RecordIssuance writes for rec: the certificate, its
// audit events, the challenge to consume, the request it completes and the
// certificate it supersedes.
func (s *Service) issuance(st *State, rec pki.Certificate, now time.Time) store.Issuance {
	evType, detail := pki.EventIssued, ""
	if st.Renews != nil {
		evType, detail = pki.EventRenewed, "renews "+pki.ShownRenewedFrom(rec.RenewedFrom)
	}
	if st.Req.ServerKeyGen {
		detail = strings.TrimPrefix(detail+", server-generated key", ", ")
	}
	who := actor(st.Req)
	if st.ApprovedBy != "" {
		who = st.ApprovedBy
	}
	detail = withAuthorizedBy(detail, st)
	events := append([]pki.AuditEvent{{
		Time: now, Type: evType, Actor: who, Profile: st.Profile.Name,
		SerialHex: rec.SerialHex, IssuerID: rec.IssuerID, Subject: rec.Subject,
		TransactionID: st.Req.TransactionID, Outcome: "success", Detail: detail,
	}}, st.Events...)
	in := store.Issuance{Certificate: rec, ConsumeChallengeHash: st.ConsumeChallenge, Now: now, Events: events, ApprovedBy: st.ApprovedBy}
	if h, err := st.keyHash(); err == nil {
		in.KeyHash = h
	}
	if st.CompleteRequest != nil {
		in.CompleteRequestID = st.CompleteRequest.ID
	}
	if st.Renews != nil {
		ref := &store.CertRef{IssuerID: st.Renews.IssuerID, SerialHex: st.Renews.SerialHex}
		in.Renews = ref
		if st.Profile.RevokeSuperseded {
			in.Supersede = ref
		}
	}
	return in
}

// withAuthorizedBy appends to an event's detail what authorised st's
// request: last, as it may end in a name the client chose, so that a
// reader can tell where it starts. An approval names the held request it
// completes, whose request.pending event says what authenticated it.
func withAuthorizedBy(detail string, st *State) string {
	by := st.AuthorizedBy
	if by == "" && st.CompleteRequest != nil {
		by = strings.TrimPrefix(approvalOfRequest, "authorized_by: ") + st.CompleteRequest.ID // howPolledWasIssued reads it
	}
	if by == "" {
		return detail
	}
	return strings.TrimPrefix(detail+", authorized_by: "+by, ", ")
}

// record turns an issued certificate into its inventory record.
func record(cert *x509.Certificate, issuerID string, st *State, now time.Time) pki.Certificate {
	return pki.Certificate{
		SerialHex:     cert.SerialNumber.Text(16),
		IssuerID:      issuerID,
		Issuer:        csr.NameString(cert.RawIssuer),
		Subject:       csr.NameString(cert.RawSubject),
		SANs:          SANs(cert),
		NotBefore:     cert.NotBefore,
		NotAfter:      cert.NotAfter,
		Status:        pki.StatusValid,
		Profile:       st.Profile.Name,
		Protocol:      st.Req.Protocol,
		Source:        pki.SourceIssued,
		RequesterAddr: st.Req.RemoteAddr,
		TransactionID: st.Req.TransactionID,
		KeyType:       keys.KeyTypeOf(cert.PublicKey),
		RenewedFrom:   renewedFrom(st.Renews),
		CreatedAt:     now,
		DER:           cert.Raw,
	}
}

func renewedFrom(c *pki.Certificate) string {
	if c == nil {
		return ""
	}
	return c.IssuerID + ":" + c.SerialHex
}

// issuerFor picks the issuing CA: the one the profile pins, or the active
// one. A configured profile pins only the CA in effect or an earlier one
// the root has not revoked; the server's own (internal) issuances, such as
// a next CA's OCSP responder certificate, any CA it holds.
func (s *Service) issuerFor(p pki.Profile, now time.Time, internal bool) (*ca.Issuer, error) {
	if p.Issuer == "" {
		issuer, _ := s.authority.Active(now)
		return issuer, nil
	}
	if internal {
		// The server's own certificates under each CA, a next one's
		// OCSP responder included.
		return PinnedIssuer(s.authority.Issuers(), p)
	}
	issuer, err := PinnedIssuer(PinnableIssuers(s.authority, now), p)
	if err != nil {
		// Checked at start: the CA it pinned is gone since (expired and
		// unloaded), which the operator, not the client, has to mend.
		return nil, pki.Wrap(pki.EUnavailable, err, "this profile's issuing CA is not available")
	}
	if slices.Contains(s.authority.RevokedIssuers(), issuer.ID) {
		return nil, pki.Errorf(pki.EUnavailable, "profile %q is pinned to issuing CA %s, which the root's CRL lists as revoked: it issues nothing more", p.Name, issuer.ID)
	}
	return issuer, nil
}

// SANs lists a certificate's subject alternative names as "type:value".
func SANs(cert *x509.Certificate) []string {
	return formatSANs(cert.DNSNames, cert.EmailAddresses, cert.IPAddresses, cert.URIs)
}

func formatSANs(dns, emails []string, ips []net.IP, uris []*url.URL) []string {
	var out []string
	for _, d := range dns {
		out = append(out, "dns:"+d)
	}
	for _, e := range emails {
		out = append(out, "email:"+e)
	}
	for _, ip := range ips {
		out = append(out, "ip:"+ip.String())
	}
	for _, u := range uris {
		out = append(out, "uri:"+u.String())
	}
	return out
}

func actor(req Request) string {
	if req.Protocol == pki.ProtocolInternal {
		return "system"
	}
	return string(req.Protocol) + ":" + pki.ClientHost(req.RemoteAddr)
}
