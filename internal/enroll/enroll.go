// Package enroll is the one enrollment service every protocol handler calls.
// It owns the decisions: who may enroll, which profile applies, what goes
// into the certificate, and the record of it, written before the answer
// leaves. Authentication and policy are small steps run in order, so a
// protocol or a profile can add one without touching the others.
package enroll

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// Evidence is what a client presents to authenticate an enrollment, in a
// protocol-neutral form. Each protocol fills what it has.
type Evidence struct {
	// Challenge is the CSR's challengePassword (SCEP) or an EST OTP.
	Challenge string
	// SignerCert is the certificate that signed a SCEP pkiMessage: self-signed
	// for a first enrollment, or one we issued for a renewal.
	SignerCert *x509.Certificate
	// TLSClientCert and HTTPUser are for EST (later).
	TLSClientCert *x509.Certificate
	HTTPUser      string
	// ChannelBinding is tls-unique / tls-exporter for EST PoP linking (later).
	ChannelBinding []byte
}

// Request is one enrollment as the service sees it.
type Request struct {
	CSR           *x509.CertificateRequest
	Evidence      Evidence
	Profile       string // "" selects the default profile
	Protocol      pki.Protocol
	TransactionID string
	RemoteAddr    string
	// Renewal says the client asked to renew (SCEP RenewalReq): it must be
	// authenticated by a certificate we issued, not by a challenge.
	Renewal bool
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
}

// Config is the service's policy configuration.
type Config struct {
	// StaticChallenge, when set, is accepted for profiles whose challenge
	// mode allows it.
	StaticChallenge string
	Profiles        map[string]pki.Profile
	DefaultProfile  string
	// Webhook verifies challenges for profiles in "webhook" mode.
	Webhook ChallengeVerifier
}

// Service is the enrollment service.
type Service struct {
	store     store.Store
	authority *ca.Authority
	clock     pki.Clock
	log       *slog.Logger
	cfg       Config
	static    staticSecret
	names     map[string]*namePolicy
	steps     []Step
}

// New builds a service. Profiles are validated here, once. authority may be
// nil for a service that only manages challenges (the CLI).
func New(st store.Store, authority *ca.Authority, clock pki.Clock, log *slog.Logger, cfg Config) (*Service, error) {
	if len(cfg.Profiles) == 0 {
		p := pki.DefaultProfile()
		cfg.Profiles = map[string]pki.Profile{p.Name: p}
		cfg.DefaultProfile = p.Name
	}
	if _, ok := cfg.Profiles[cfg.DefaultProfile]; !ok {
		return nil, fmt.Errorf("enroll: default profile %q is not defined", cfg.DefaultProfile)
	}
	// A profile the linter would refuse fails here, at start, naming the
	// lint, rather than on every enrollment.
	if authority != nil {
		for name, p := range cfg.Profiles {
			if err := authority.Issuer.CheckProfile(p, clock.Now()); err != nil {
				return nil, fmt.Errorf("enroll: profile %q: %w", name, err)
			}
		}
	}
	s := &Service{store: st, authority: authority, clock: clock, log: log, cfg: cfg, static: newStaticSecret(cfg.StaticChallenge),
		names: map[string]*namePolicy{}}
	for name, p := range cfg.Profiles {
		np, err := compileNames(p)
		if err != nil {
			return nil, fmt.Errorf("enroll: profile %q: %w", name, err)
		}
		s.names[name] = np
	}
	s.steps = []Step{checkProofOfPossession, checkSigner, s.authenticate, s.checkNames, checkRenewalNames, checkPolicy}
	return s, nil
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
	// RawSubject is the subject to issue: the CSR's, with the profile's
	// fixed values applied.
	RawSubject []byte
	// SANs are the names to issue: the CSR's, with the profile's fixed ones.
	SANs SANSet
	// ConsumeChallenge names the one-time challenge this issuance uses up.
	ConsumeChallenge []byte
	// Renews is the certificate a renewal replaces (nil otherwise).
	Renews *pki.Certificate
	// Events are appended with the issuance (e.g. challenge.used).
	Events []pki.AuditEvent
	// CompleteRequest is the held request an approval completes.
	CompleteRequest *pki.EnrollmentRequest
	ApprovedBy      string
}

// Step is one decision. It returns a *pki.Error to refuse.
type Step func(ctx context.Context, st *State) error

// Enroll authenticates, applies the profile, issues, and records.
func (s *Service) Enroll(ctx context.Context, req Request) (*Result, error) {
	res, err := s.enroll(ctx, req)
	if err != nil {
		s.recordFailure(ctx, req, err)
		return nil, err
	}
	return res, nil
}

func (s *Service) enroll(ctx context.Context, req Request) (*Result, error) {
	if req.CSR == nil {
		return nil, pki.Errorf(pki.EBadRequest, "no certificate request")
	}
	profile, ok := s.Profile(req.Profile)
	if !ok {
		return nil, pki.Errorf(pki.EBadRequest, "unknown profile %q", req.Profile)
	}
	st := &State{Req: req, Profile: profile}
	if profile.RequireApproval {
		// A client asking again about a held request (micromdm's
		// scepclient resends its PKCSReq instead of polling) is answered
		// from the stored state once it proves the same key; a one-time
		// challenge was used up when the request was held.
		for _, step := range []Step{checkProofOfPossession, checkSigner} {
			if err := step(ctx, st); err != nil {
				return nil, err
			}
		}
		if res, ok, err := s.answerSameKey(ctx, st); ok {
			return res, err
		}
	}
	for _, step := range s.steps {
		if err := step(ctx, st); err != nil {
			return nil, err
		}
	}
	if profile.RequireApproval {
		return s.hold(ctx, st)
	}
	return s.issue(ctx, st)
}

// issue signs and records a certificate in one durable transaction. The
// serial is registered with the certificate: should a 128-bit random serial
// ever be taken, the record fails, the signed certificate is dropped
// without having left the process, and a new serial is drawn.
func (s *Service) issue(ctx context.Context, st *State) (*Result, error) {
	now := s.clock.Now()
	issuer, err := s.issuerFor(st.Profile, now)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		cert, rec, err := s.sign(ctx, st, issuer, now)
		if err != nil {
			return nil, err
		}
		err = s.store.RecordIssuance(ctx, s.issuance(st, rec, now))
		switch {
		case errors.Is(err, store.ErrConflict) && st.CompleteRequest != nil:
			return nil, pki.Wrap(pki.EConflict, err, "the request was decided by someone else")
		case errors.Is(err, store.ErrConflict) && attempt < maxSerialDraws:
			s.log.Warn("serial already taken; drawing another", "serial", rec.SerialHex, "issuer", rec.IssuerID)
			continue
		case errors.Is(err, store.ErrChallengeUnusable):
			// Another request consumed the one-time challenge between our
			// check and this transaction; the certificate never leaves the
			// process.
			return nil, pki.Wrap(pki.EBadRequest, err, "challenge password is not valid")
		case err != nil:
			return nil, fmt.Errorf("enroll: record issuance: %w", err)
		}
		s.log.Info("certificate issued", "serial", rec.SerialHex, "subject", rec.Subject, "profile", rec.Profile,
			"protocol", rec.Protocol, "transaction_id", rec.TransactionID, "remote", rec.RequesterAddr)
		return &Result{Certificate: cert, Chain: issuer.Chain, Record: rec}, nil
	}
}

// maxSerialDraws bounds redraws: a second collision of 128 random bits
// means a broken random source or store, not bad luck.
const maxSerialDraws = 3

// noReservation: the serial is registered with the certificate itself.
func noReservation(context.Context, string, string) (bool, error) { return false, nil }

func (s *Service) sign(ctx context.Context, st *State, issuer *ca.Issuer, now time.Time) (*x509.Certificate, pki.Certificate, error) {
	csr := st.Req.CSR
	cert, err := issuer.Issue(ctx, ca.Request{
		RawSubject:     st.RawSubject,
		DNSNames:       st.SANs.DNSNames,
		EmailAddresses: st.SANs.EmailAddresses,
		IPAddresses:    st.SANs.IPAddresses,
		URIs:           st.SANs.URIs,
		PublicKey:      csr.PublicKey,
		Profile:        st.Profile,
	}, now, noReservation)
	if err != nil {
		return nil, pki.Certificate{}, err
	}
	return cert, record(cert, issuer.ID, st, now), nil
}

// issuance is what RecordIssuance writes for rec: the certificate, its
// audit events, the challenge to consume, the request it completes and the
// certificate it supersedes.
func (s *Service) issuance(st *State, rec pki.Certificate, now time.Time) store.Issuance {
	evType, detail := pki.EventIssued, ""
	if st.Renews != nil {
		evType, detail = pki.EventRenewed, "renews "+rec.RenewedFrom
	}
	who := actor(st.Req)
	if st.ApprovedBy != "" {
		who = st.ApprovedBy
	}
	events := append([]pki.AuditEvent{{
		Time: now, Type: evType, Actor: who, Profile: st.Profile.Name,
		SerialHex: rec.SerialHex, IssuerID: rec.IssuerID, Subject: rec.Subject,
		TransactionID: st.Req.TransactionID, Outcome: "success", Detail: detail,
	}}, st.Events...)
	in := store.Issuance{Certificate: rec, ConsumeChallengeHash: st.ConsumeChallenge, Now: now, Events: events, ApprovedBy: st.ApprovedBy}
	if st.CompleteRequest != nil {
		in.CompleteRequestID = st.CompleteRequest.ID
	}
	if st.Renews != nil && st.Profile.RevokeSuperseded {
		in.Supersede = &store.CertRef{IssuerID: st.Renews.IssuerID, SerialHex: st.Renews.SerialHex}
	}
	return in
}

// record turns an issued certificate into its inventory record.
func record(cert *x509.Certificate, issuerID string, st *State, now time.Time) pki.Certificate {
	return pki.Certificate{
		SerialHex:     cert.SerialNumber.Text(16),
		IssuerID:      issuerID,
		Issuer:        cert.Issuer.String(),
		Subject:       cert.Subject.String(),
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

// issuerFor picks the issuing CA: the one the profile pins, or the active one.
func (s *Service) issuerFor(p pki.Profile, now time.Time) (*ca.Issuer, error) {
	if p.Issuer == "" {
		issuer, _ := s.authority.Active(now)
		return issuer, nil
	}
	for _, i := range s.authority.Issuers() {
		if strings.HasPrefix(i.ID, strings.ToLower(p.Issuer)) {
			return i, nil
		}
	}
	return nil, fmt.Errorf("enroll: profile %q names issuer %q, which is not loaded", p.Name, p.Issuer)
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
	return string(req.Protocol) + ":" + clientHost(req.RemoteAddr)
}

// clientHost is the host part of a client address ("192.0.2.1:5000").
func clientHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

func (s *Service) recordFailure(ctx context.Context, req Request, cause error) {
	ev := pki.AuditEvent{
		Time: s.clock.Now(), Type: pki.EventEnrollFailed, Actor: actor(req), Profile: req.Profile,
		TransactionID: req.TransactionID, Outcome: "failure", Reason: failureReason(cause),
	}
	if req.CSR != nil {
		ev.Subject = req.CSR.Subject.String()
	}
	if err := s.store.AppendAudit(ctx, ev); err != nil {
		s.log.Error("audit write failed", "err", err)
	}
	s.log.Warn("enrollment refused", "reason", ev.Reason, "subject", ev.Subject, "transaction_id", req.TransactionID,
		"remote", req.RemoteAddr, "err", cause)
}

// failureReason is the audit text: the client-safe message, plus the code.
func failureReason(err error) string {
	return string(pki.ErrorCode(err)) + ": " + pki.ErrorMessage(err)
}
