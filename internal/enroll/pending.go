package enroll

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/scepter/scepter/internal/credential"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// hold stores a request the profile wants approved and answers PENDING,
// consuming the one-time challenge that authenticated it in the same
// transaction. (A request whose transaction ID and key are held never gets
// here: it is answered from its stored state.)
func (s *Service) hold(ctx context.Context, st *State) (*Result, error) {
	now := s.clock.Now()
	id, err := credential.RandomToken(10)
	if err != nil {
		return nil, err
	}
	var clientCert []byte
	if c := st.Req.Evidence.heldCertificate(); c != nil {
		clientCert = c.Raw
	}
	// The challenge (or channel binding) is not kept with the request.
	stored, err := csr.WithoutChallengePassword(st.Req.CSR.Raw)
	if err != nil {
		return nil, pki.Wrap(pki.EBadRequest, err, "malformed certificate request")
	}
	r := pki.EnrollmentRequest{
		ID: id, TransactionID: st.Req.TransactionID, Profile: st.Profile.Name, Protocol: st.Req.Protocol,
		Status: pki.RequestPending, Subject: csr.NameString(st.Req.CSR.RawSubject), SANs: formatSANs(st.Req.CSR.DNSNames, st.Req.CSR.EmailAddresses, st.Req.CSR.IPAddresses, st.Req.CSR.URIs),
		CSR: stored, ClientCert: clientCert, RequesterAddr: st.Req.RemoteAddr,
		CreatedAt: now, ExpiresAt: now.Add(st.Profile.RequestRetention), RenewedFrom: renewedFrom(st.Renews),
		ChallengeHash: st.ChallengeHash,
	}
	detail := "request " + id
	for _, e := range st.Events {
		if e.Type == pki.EventChallengeUsed {
			detail += ", " + e.Detail + " used"
		}
	}
	ev := pki.AuditEvent{Time: now, Type: pki.EventRequestPending, Actor: actor(st.Req), Profile: st.Profile.Name,
		Subject: r.Subject, TransactionID: r.TransactionID, Outcome: "success", Detail: withAuthorizedBy(detail, st)}
	err = s.store.CreateRequest(ctx, r, st.ConsumeChallenge, ev)
	if errors.Is(err, store.ErrConflict) && st.expired != nil {
		// The request of this transaction that expired without a
		// decision is in the way: purged now (with every other whose
		// retention is over, as the hourly purge does), not before,
		// so that its requester is told it expired until then.
		if perr := s.store.PurgeExpired(ctx, now); perr != nil {
			return nil, fmt.Errorf("enroll: purge expired requests: %w", perr)
		}
		err = s.store.CreateRequest(ctx, r, st.ConsumeChallenge, ev)
	}
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrChallengeUnusable) {
		// Another node (or a copy of this request, resent by a device
		// that gave up waiting) stored it first, using up the one-time
		// challenge this request presented too; this request
		// authenticated just now, with the same key. It gets the same
		// answer, as a resend after the fact does.
		held, herr := s.heldSameKey(ctx, st)
		if herr != nil {
			return nil, herr
		}
		if held != nil {
			return s.answer(ctx, held)
		}
	}
	switch {
	case errors.Is(err, store.ErrChallengeUnusable):
		return nil, s.challengeGoneMeanwhile(ctx, st.ConsumeChallenge, err)
	case errors.Is(err, store.ErrOwnKey):
		// The key of a certificate of the server's own, or of an issuing
		// CA, recorded since this node loaded its CA (a new RA, a
		// rollover's next CA): its approval would be refused, so it is
		// refused now, as an issuance is (and nothing is held).
		return nil, ownKeyLate(err)
	case errors.Is(err, store.ErrKeyCompromised):
		// Revoked as compromised since checkKeyNotCompromised looked.
		return nil, s.keyCompromisedLate(ctx, st, err)
	case err != nil:
		return nil, fmt.Errorf("enroll: hold request: %w", err)
	}
	s.log.Info("request held for approval", "request", id, "subject", r.Subject, "profile", r.Profile, "transaction_id", r.TransactionID)
	return &Result{Pending: &r}, nil
}

// checkIssuable refuses a request the issuer would refuse (its key,
// subject or names), without reserving a serial or signing: for a request
// about to wait for an approval. The issuer is given the request as issue
// gives it.
func (s *Service) checkIssuable(st *State) error {
	now := s.clock.Now()
	issuer, err := s.issuerFor(st.Profile, now, false)
	if err != nil {
		return err
	}
	return issuer.CheckRequest(s.caRequest(st, issuer), now)
}

// heldSameKey returns the request held under this request's transaction
// ID for this request's key, or nil when none is. Transaction IDs are often
// derived from public keys, so they are not secrets: a transaction is the
// pair of its ID and the key, and another key's request under the same ID
// (pending, decided, a squatter's) is another transaction, which neither
// blocks this one nor is revealed to it. A request for the same key that
// asks for something else (another subject, other SANs) is refused:
// answered from the held request, it would wait for, and then collect, a
// certificate it no longer asks for.
//
// Over EST, whose transaction IDs the server derives from the request's
// bytes (the subject's among them), a request found under none is looked
// for by its key (heldForKey): the same key and names with the subject
// encoded otherwise (a UTF8String from openssl, a PrintableString from
// Go) are the same request, not a second one to approve for one key.
func (s *Service) heldSameKey(ctx context.Context, st *State) (*pki.EnrollmentRequest, error) {
	r, err := s.heldRequest(ctx, st.Profile.Name, st.Req.TransactionID, store.RequestKeys{CSR: st.Req.CSR.RawSubjectPublicKeyInfo})
	if errors.Is(err, store.ErrNotFound) && derivesTransactionIDs(st.Req.Protocol) {
		r, err = s.heldForKey(ctx, st)
	}
	if err == nil {
		r, err = s.heldAsAuthenticated(ctx, st, r)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	held, err := parseStoredRequest(r.CSR)
	if err != nil {
		return nil, fmt.Errorf("enroll: stored request %s: %w", r.ID, err)
	}
	if !asksAsHeld(held, st.Req.CSR) {
		return nil, askedForOtherNames(st, r)
	}
	return r, nil
}

// heldAsAuthenticated picks, of the requests of newest's transaction (its
// ID and st's key), the one authenticated as st is, by the same client
// certificate or by none: newest, unless it was authenticated otherwise
// and an earlier one was not. A key kept across renewals at an approval
// profile keeps its transaction ID, which then holds its first enrollment
// and a renewal by each certificate issued since: the first PKCSReq sent
// again as it was asks about the first, not the renewal held after it.
func (s *Service) heldAsAuthenticated(ctx context.Context, st *State, newest *pki.EnrollmentRequest) (*pki.EnrollmentRequest, error) {
	var clientCert []byte
	if c := st.Req.Evidence.heldCertificate(); c != nil {
		clientCert = c.Raw
	}
	if bytes.Equal(newest.ClientCert, clientCert) {
		return newest, nil
	}
	reqs, err := s.store.RequestsByKey(ctx, st.Profile.Name, st.Req.CSR.RawSubjectPublicKeyInfo)
	if err != nil {
		return nil, fmt.Errorf("enroll: requests of this key: %w", err)
	}
	now := s.clock.Now()
	for i := range reqs {
		r := &reqs[i]
		if r.TransactionID == newest.TransactionID && bytes.Equal(r.ClientCert, clientCert) && now.Before(r.ExpiresAt) {
			return r, nil
		}
	}
	return newest, nil
}

// signedByItsCertificate: signer, the certificate a request was
// authenticated by, is the one held request r was issued: its serial, by
// its issuing CA's name and signature. (The steps that follow check it
// fully, as a renewal's signer, byte for byte against the inventory.)
func (s *Service) signedByItsCertificate(r *pki.EnrollmentRequest, signer *x509.Certificate) bool {
	if signer == nil || r.Status != pki.RequestIssued || signer.SerialNumber == nil || signer.SerialNumber.Text(16) != r.CertSerialHex {
		return false
	}
	issuer, ok := s.authority.IssuerByID(r.CertIssuerID)
	return ok && bytes.Equal(signer.RawIssuer, issuer.Cert.RawSubject) && signer.CheckSignatureFrom(issuer.Cert) == nil
}

// derivesTransactionIDs: the protocol has no transaction ID of the
// client's; the server makes one from the request (EST: estserver hashes
// the operation, the key, the subject's bytes and the client
// certificate), so one request sent with its subject encoded otherwise
// gets another ID.
func derivesTransactionIDs(p pki.Protocol) bool { return p == pki.ProtocolEST }

// heldForKey returns the newest request of st's profile made with st's
// key, under any transaction ID, by the same protocol, operation (a
// renewal or not) and client certificate as st's (what an EST transaction
// ID is made of besides the subject), whose retention is not over; or
// store.ErrNotFound. Its names are compared by heldSameKey: one key holds
// one request at a profile, whatever its names.
func (s *Service) heldForKey(ctx context.Context, st *State) (*pki.EnrollmentRequest, error) {
	reqs, err := s.store.RequestsByKey(ctx, st.Profile.Name, st.Req.CSR.RawSubjectPublicKeyInfo)
	if err != nil {
		return nil, fmt.Errorf("enroll: requests of this key: %w", err)
	}
	var clientCert []byte
	if c := st.Req.Evidence.heldCertificate(); c != nil {
		clientCert = c.Raw
	}
	now := s.clock.Now()
	var expired *pki.EnrollmentRequest
	for i := range reqs {
		r := &reqs[i]
		if r.Protocol != st.Req.Protocol || (r.RenewedFrom != "") != st.Req.Renewal || !bytes.Equal(r.ClientCert, clientCert) {
			continue
		}
		if now.Before(r.ExpiresAt) {
			return r, nil
		}
		if expired == nil && r.Status == pki.RequestPending {
			// Past its retention undecided: the same request (its names
			// compared as a live one's are) is told so, as it is when
			// its transaction ID finds it (heldRequest), whatever
			// encoding its subject came in this time.
			held, err := parseStoredRequest(r.CSR)
			if err != nil {
				return nil, fmt.Errorf("enroll: stored request %s: %w", r.ID, err)
			}
			if asksAsHeld(held, st.Req.CSR) {
				expired = r
			}
		}
	}
	if expired != nil {
		return nil, heldExpired(expired)
	}
	return nil, store.ErrNotFound
}

// askedForOtherNames refuses a request of the key of held request r that
// asks for other names, in the words of st's protocol.
func askedForOtherNames(st *State, r *pki.EnrollmentRequest) error {
	if derivesTransactionIDs(st.Req.Protocol) {
		names := append([]string{r.Subject}, r.SANs...)
		return pki.Errorf(pki.EBadRequest, "this key was sent before with other names (%s; request %s, %s); a request is answered for the names it was first sent with, so a new request needs a new key",
			strings.Join(names, ", "), r.ID, r.Status)
	}
	return pki.Errorf(pki.EBadRequest, "this transaction ID holds another request of this key (for %s), with other names; a new request needs a new transaction ID, and so a new key where the client derives the ID from its key", r.Subject)
}

// oidSubjectAltName is the subjectAltName extension's.
var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// asksAsHeld: req asks for what the held request asks for, as the issuer
// reads a request (caRequest): the same subject compared as RFC 5280 §7.1
// compares names (csr.SameHeldName: each attribute's text, whatever its
// string type, without insignificant spaces, a DirectoryString's in any
// case), and the same subject alternative names as a set (csr.SameAltNames:
// DNS names in any case, an email's domain in any case, IP addresses by
// value); names of a type the issuer does not issue as asked
// (csr.UnissuedSANs), or a malformed extension, are compared as encoded
// instead, so that they count too. The
// key was compared already. The rest of a CSR may change between sends of
// one request and changes nothing issued: the challengePassword (not kept;
// a new one-time challenge, EST's channel binding), the signature (ECDSA
// signs anew each time), and the extensions the issuer never copies:
// certmonger makes a new subjectKeyIdentifier with each CSR, and was
// refused its approved certificate when it resubmitted. Should a profile
// come to honour a requested extension, it must be compared here.
func asksAsHeld(held, req *x509.CertificateRequest) bool {
	return csr.SameHeldName(held.RawSubject, req.RawSubject) && sameRequestedSANs(held, req)
}

// sameRequestedSANs: a and b ask for the same subject alternative names.
func sameRequestedSANs(a, b *x509.CertificateRequest) bool {
	unissuedA, errA := csr.UnissuedSANs(a)
	unissuedB, errB := csr.UnissuedSANs(b)
	if errA != nil || errB != nil || len(unissuedA) > 0 || len(unissuedB) > 0 {
		return slices.EqualFunc(sanExtensions(a), sanExtensions(b), bytes.Equal)
	}
	return csr.SameAltNames(csr.AltNamesOfRequest(a), csr.AltNamesOfRequest(b))
}

// sanExtensions are the values of a request's subjectAltName extensions
// (more than one is refused later, by checkNames), in order.
func sanExtensions(req *x509.CertificateRequest) [][]byte {
	var out [][]byte
	for _, ext := range req.Extensions {
		if ext.Id.Equal(oidSubjectAltName) {
			out = append(out, ext.Value)
		}
	}
	return out
}

// heldRequest returns the request kept for (profile, txID) made with one of
// keys. One whose retention is over is not answered: a pending one is
// refused as expired without a decision (heldExpired), so that the client
// asking after it (a CertPoll, a PKCSReq sent again) learns what became of
// it, until the hourly purge removes it or a new request of its
// transaction is held in its place (hold purges it then); a decided one is
// not found, as once purged. Neither is purged here: a purge removes every
// request past its retention, and with them what their requesters are to
// be told.
func (s *Service) heldRequest(ctx context.Context, profile, txID string, keys store.RequestKeys) (*pki.EnrollmentRequest, error) {
	r, err := s.store.RequestByTransaction(ctx, profile, txID, keys)
	if err != nil {
		return nil, err
	}
	if !s.clock.Now().Before(r.ExpiresAt) {
		if r.Status == pki.RequestPending {
			return nil, heldExpired(r)
		}
		return nil, fmt.Errorf("enroll: request %s is past its retention: %w", r.ID, store.ErrNotFound)
	}
	return r, nil
}

// expiredRequest is the cause of heldExpired's refusal.
type expiredRequest struct{ request *pki.EnrollmentRequest }

func (e *expiredRequest) Error() string {
	return "enroll: held request " + e.request.ID + " is past its retention, still pending"
}

// heldExpired refuses a message about held request r, still pending when
// its retention ended: badRequest (SCEP; RFC 8894's "transaction not
// permitted"), as a rejected request's is. The transaction is known, so
// badCertId, "no request with this transaction ID", would be false, and a
// 503 would have the client wait for what will never come.
func heldExpired(r *pki.EnrollmentRequest) error {
	return pki.Wrap(pki.EBadRequest, &expiredRequest{r}, fmt.Sprintf(
		"request %s expired at %s without a decision (it was kept %s for an approval); enroll again, with a new one-time challenge if it used one",
		r.ID, r.ExpiresAt.UTC().Format(time.RFC3339), r.ExpiresAt.Sub(r.CreatedAt)))
}

// RequestExpired says whether err refuses a message about a request held
// for approval whose retention ended before anyone decided it.
func RequestExpired(err error) bool {
	var e *expiredRequest
	return errors.As(err, &e)
}

// answer turns a held request into the answer its state calls for.
func (s *Service) answer(ctx context.Context, r *pki.EnrollmentRequest) (*Result, error) {
	switch r.Status {
	case pki.RequestPending:
		decided, err := s.rejectUnissuable(ctx, r)
		if err != nil {
			return nil, err
		}
		if decided != nil {
			return s.answer(ctx, decided)
		}
		return &Result{Pending: r, Held: r}, nil
	case pki.RequestRejected:
		reason := r.Reason
		if CheckRejectReason(reason) != nil {
			// Stored before reasons were checked: the device gets it
			// quoted, never a line break or an override as it was typed.
			reason = strconv.QuoteToASCII(reason)
		}
		code := pki.EBadRequest
		if r.DecidedBy == SystemRejecter {
			// Refused as a new request meeting the same is (a revoked
			// certificate to renew: badCertId, so a client reads it as
			// that refusal); what was revoked stays revoked.
			if why, err := s.unissuable(ctx, r); err == nil && why != nil {
				code = why.device
			}
		}
		return nil, pki.Errorf(code, "the request was rejected: %s", reason)
	case pki.RequestIssued:
		res, err := s.issuedResult(ctx, r.CertIssuerID, r.CertSerialHex)
		if err != nil {
			return nil, err
		}
		if res.Record.Status == pki.StatusRevoked {
			// Revoked before the device collected it: a certificate is
			// sent again only while it is valid.
			return nil, issuedRevokedRefusal(&res.Record)
		}
		res.Held = r
		return res, nil
	}
	return nil, fmt.Errorf("enroll: request %s has unknown status %q", r.ID, r.Status)
}

// SystemRejecter decides a held request that no approval can issue any
// more (rejectUnissuable), as DecidedBy and the audit's actor.
const SystemRejecter = "system"

// unissuableRequest is why a held request can no longer be issued: the
// reason it is rejected with, the code a device is refused with (the one
// a new request meeting the same gets) and the one an approval is.
type unissuableRequest struct {
	reason          string
	device, approve pki.Code
}

// unissuable says why held request r can no longer be approved, or nil:
// its key was revoked as compromised after it was held, or the
// certificate it renews was revoked for good. A renewal whose certificate
// is on hold (certificateHold) is not: the hold may be lifted.
func (s *Service) unissuable(ctx context.Context, r *pki.EnrollmentRequest) (*unissuableRequest, error) {
	held, err := parseStoredRequest(r.CSR)
	if err != nil {
		return nil, fmt.Errorf("enroll: stored request %s: %w", r.ID, err)
	}
	k, err := s.store.CompromisedKey(ctx, store.KeyHash(held.RawSubjectPublicKeyInfo))
	switch {
	case err == nil:
		return &unissuableRequest{reason: compromisedKeyText(k), device: pki.EBadRequest, approve: pki.EBadRequest}, nil
	case !errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("enroll: look up compromised keys: %w", err)
	}
	if r.RenewedFrom == "" {
		return nil, nil
	}
	old, err := s.certByRef(ctx, r.RenewedFrom)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("enroll: certificate renewed by request %s: %w", r.ID, err)
	}
	if old.Status != pki.StatusRevoked || old.RevokeReason == pki.ReasonCertificateHold {
		return nil, nil
	}
	reason, ok := pki.ReasonName(old.RevokeReason)
	if !ok {
		reason = "reason " + strconv.Itoa(old.RevokeReason)
	}
	return &unissuableRequest{
		reason: fmt.Sprintf("the certificate to renew, %s, was revoked on %s (%s)",
			pki.ShownSerial(old.SerialHex), old.RevokedAt.UTC().Format(time.DateOnly), reason),
		device: pki.EBadCertID, approve: pki.EConflict,
	}, nil
}

// rejectUnissuable rejects held request r, still pending, when no
// approval can issue it any more (unissuable), as an operator's rejection
// is: stored with its reason, by SystemRejecter, and audited, so that the
// device is refused for good instead of told to wait until the retention
// ends, and the pending lists and metric leave it out. It is done by the
// first answer or approval that finds it, not by the revocation: a
// revocation (a key's siblings, revoke_superseded, a hold made permanent)
// is recorded by each store in several places, and a request is decided
// where every decision is, here and in admin's Reject. It returns the
// request as decided (by this call or by someone else meanwhile), or nil
// when r may still be approved.
func (s *Service) rejectUnissuable(ctx context.Context, r *pki.EnrollmentRequest) (*pki.EnrollmentRequest, error) {
	why, err := s.unissuable(ctx, r)
	if err != nil || why == nil {
		return nil, err
	}
	now := s.clock.Now()
	ev := pki.AuditEvent{Time: now, Type: pki.EventRequestRejected, Actor: SystemRejecter, Profile: r.Profile, Subject: r.Subject,
		TransactionID: r.TransactionID, Outcome: "success", Reason: why.reason,
		Detail: "request " + r.ID + ": no approval can issue it any more"}
	err = s.store.RejectRequest(ctx, r.ID, why.reason, SystemRejecter, now, ev)
	if err != nil && !errors.Is(err, store.ErrConflict) { // ErrConflict: decided meanwhile
		return nil, fmt.Errorf("enroll: reject request %s: %w", r.ID, err)
	}
	decided, err := s.store.Request(ctx, r.ID)
	if err != nil {
		return nil, fmt.Errorf("enroll: request %s: %w", r.ID, err)
	}
	if decided.Status == pki.RequestPending { // cannot be: not to loop on it
		return nil, fmt.Errorf("enroll: request %s is still pending after its rejection", r.ID)
	}
	s.log.Info("held request rejected: no approval can issue it any more", "request", r.ID, "reason", why.reason)
	return decided, nil
}

// issuedRevokedRefusal refuses to hand a held request's device its
// certificate rec, approved and then revoked before it was collected,
// naming the revocation: on hold, that the operator may lift it (the
// device keeps its key and asks again), otherwise that it is revoked for
// good and to enroll again (with a new key after a keyCompromise).
func issuedRevokedRefusal(rec *pki.Certificate) error {
	shown := pki.ShownSerial(rec.SerialHex)
	if rec.RevokeReason == pki.ReasonCertificateHold {
		return pki.Errorf(pki.EBadRequest, "the certificate issued for this request, %s, is on hold (certificateHold) since %s; ask the operator to lift the hold, then send the request again",
			shown, rec.RevokedAt.UTC().Format(time.RFC3339))
	}
	reason, ok := pki.ReasonName(rec.RevokeReason)
	if !ok {
		reason = "reason " + strconv.Itoa(rec.RevokeReason)
	}
	then := "enroll again"
	if rec.RevokeReason == pki.ReasonKeyCompromise {
		then = "enroll again with a new key"
	}
	return pki.Errorf(pki.EBadRequest, "the certificate issued for this request, %s, was revoked at %s (%s) before it was collected; %s",
		shown, rec.RevokedAt.UTC().Format(time.RFC3339), reason, then)
}

// RejectHeldRenewals rejects, as rejectUnissuable does (by the system,
// with its reason and audit event), the requests held pending at profile
// with req's key that renew cert, when cert is a certificate of ours
// revoked for good: a handler calls it when it refuses req, signed by or
// sent over TLS with cert, before the service looks at the request
// (RevokedForGood), so that the request held for that renewal is not left
// listed pending until its retention ends (no approval can issue it). One
// renewing a certificate on hold stays pending: lifting the hold makes it
// approvable. The refusal req gets is the handler's, unchanged.
func (s *Service) RejectHeldRenewals(ctx context.Context, profile string, req *x509.CertificateRequest, cert *x509.Certificate) error {
	if req == nil || cert == nil || cert.SerialNumber == nil {
		return nil
	}
	p, ok := s.Profile(profile)
	if !ok {
		return nil
	}
	issuer, _ := s.authority.IssuedByUs(cert, s.clock.Now())
	if issuer == nil {
		return nil
	}
	old, err := s.store.Certificate(ctx, issuer.ID, cert.SerialNumber.Text(16))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("enroll: certificate %s: %w", pki.SerialText(cert.SerialNumber), err)
	case !bytes.Equal(old.DER, cert.Raw):
		return nil // not the certificate we issued under its serial
	}
	return s.rejectHeldRenewals(ctx, p.Name, req.RawSubjectPublicKeyInfo, old)
}

// rejectHeldRenewals rejects the requests held pending at profile whose
// key is spki and that renew old, when old is revoked for good
// (rejectUnissuable, which decides by the store as it is): the requests
// of the device whose renewal by old was refused, found by its key under
// any transaction ID (its own, the one it sends again, is among them).
func (s *Service) rejectHeldRenewals(ctx context.Context, profile string, spki []byte, old *pki.Certificate) error {
	if old.Status != pki.StatusRevoked || old.RevokeReason == pki.ReasonCertificateHold {
		return nil
	}
	reqs, err := s.store.RequestsByKey(ctx, profile, spki)
	if err != nil {
		return fmt.Errorf("enroll: requests of this key: %w", err)
	}
	now, renews := s.clock.Now(), renewedFrom(old)
	for i := range reqs {
		r := &reqs[i]
		if r.Status != pki.RequestPending || !now.Before(r.ExpiresAt) || r.RenewedFrom != renews {
			continue
		}
		if _, err := s.rejectUnissuable(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// MaxRejectReasonLen bounds the reason a held request is rejected with, in
// bytes: it is one line for a person on a device's screen or log.
const MaxRejectReasonLen = 500

// CheckRejectReason refuses a rejection reason that the device, which is
// sent it verbatim (a SCEP failure, an EST 403 body), or the log lines and
// pages that show it could misread: invalid UTF-8, more than
// MaxRejectReasonLen bytes, or a character a subject may not hold either
// (pki.Unreadable): a control character or line separator (a reason is one
// line: no CR, LF, tab or NUL, no U+2028), or any format character, the
// bidirectional marks, overrides and isolates (which make text read as
// other text) and the invisible ones (U+200B, U+FEFF, U+00AD…) alike.
func CheckRejectReason(reason string) error {
	if len(reason) > MaxRejectReasonLen {
		return pki.Errorf(pki.EBadRequest, "the reason has %d bytes, at most %d are accepted", len(reason), MaxRejectReasonLen)
	}
	if !utf8.ValidString(reason) {
		return pki.Errorf(pki.EBadRequest, "the reason is not valid UTF-8")
	}
	if i := strings.IndexFunc(reason, pki.Unreadable); i >= 0 {
		r, _ := utf8.DecodeRuneInString(reason[i:])
		return pki.Errorf(pki.EBadRequest, "the reason holds the character %U: a reason is one line of plain text", r)
	}
	return nil
}

func (s *Service) issuedResult(ctx context.Context, issuerID, serialHex string) (*Result, error) {
	rec, err := s.store.Certificate(ctx, issuerID, serialHex)
	if err != nil {
		return nil, fmt.Errorf("enroll: issued certificate %s: %w", serialHex, err)
	}
	cert, err := x509.ParseCertificate(rec.DER)
	if err != nil {
		return nil, fmt.Errorf("enroll: stored certificate %s: %w", serialHex, err)
	}
	res := &Result{Certificate: cert, Record: *rec}
	if issuer, ok := s.authority.IssuerByID(issuerID); ok {
		res.Chain = issuer.Chain
	}
	return res, nil
}

// Poll answers about a held request by its transaction ID, whoever asks:
// pending, the certificate, or the rejection. An unknown transaction is
// badCertId. protocol is the caller's, which the outcome is counted under.
// A protocol answering a client uses PollBy.
func (s *Service) Poll(ctx context.Context, protocol pki.Protocol, profile, txID string) (*Result, error) {
	return s.poll(ctx, Poll{Protocol: protocol, Profile: profile, TransactionID: txID})
}

// PollBy answers a client asking after its request (SCEP CertPoll), which
// proved it holds the key whose SubjectPublicKeyInfo is pollerKey: pending,
// the certificate, or the rejection. A request made with another key (not
// its CSR's, nor that of the certificate that authenticated it) is answered
// as an unknown transaction is, badCertId: transaction IDs are no secret,
// and only the requester may learn a request's state, the operator's
// rejection reason, or that it exists. protocol is the caller's, which
// the outcome is counted under.
func (s *Service) PollBy(ctx context.Context, protocol pki.Protocol, profile, txID string, pollerKey []byte) (*Result, error) {
	return s.poll(ctx, Poll{Protocol: protocol, Profile: profile, TransactionID: txID, PollerKey: pollerKey})
}

// Poll is a client's question after its request (PollChecked).
type Poll struct {
	Protocol      pki.Protocol // the outcome is counted under it
	Profile       string
	TransactionID string
	// PollerKey is the SubjectPublicKeyInfo of the key the poll was
	// signed with (see PollBy).
	PollerKey  []byte
	RemoteAddr string // for the audit trail
	// Check, when set, is the protocol's own check of what was found
	// (SCEP: the subject the poll names, the signer not revoked since),
	// made before the outcome is counted, so that a poll it refuses
	// counts as refused, not as polled. Its error is returned as it is.
	Check func(*Result) error
}

// PollChecked is PollBy for a protocol that checks what was found
// (q.Check) and names the client's address: a certificate issued at once
// for the transaction and sent again (issuedToPoller) is recorded as sent
// again, as a resent request's is.
func (s *Service) PollChecked(ctx context.Context, q Poll) (*Result, error) {
	if q.PollerKey == nil {
		return nil, pki.Errorf(pki.EBadCertID, "no request with this transaction ID")
	}
	return s.poll(ctx, q)
}

// HeldBy answers as PollBy does but counts nothing: a protocol asks it to
// decide how to answer a message (SCEP's copy of a PKCSReq or CertPoll
// sent again while its request is held), whose own operation is then
// counted once, as what it is.
func (s *Service) HeldBy(ctx context.Context, profile, txID string, pollerKey []byte) (*Result, error) {
	if pollerKey == nil { // heldAnswer would find anyone's request
		return nil, pki.Errorf(pki.EBadCertID, "no request with this transaction ID")
	}
	return s.heldAnswer(ctx, profile, txID, pollerKey)
}

// poll counts its outcome under the caller's protocol: a poll that finds
// no request is the caller's refusal too, not an "unknown" protocol's.
func (s *Service) poll(ctx context.Context, q Poll) (res *Result, err error) {
	defer func() {
		s.observe(q.Protocol, q.Profile, res, err)
		err = AlreadyCounted(err)
	}()
	res, err = s.heldAnswer(ctx, q.Profile, q.TransactionID, q.PollerKey)
	if pki.ErrorCode(err) == pki.EBadCertID && q.Protocol == pki.ProtocolSCEP && q.PollerKey != nil {
		again, lookErr := s.issuedToPoller(ctx, q.Profile, q.TransactionID, q.PollerKey)
		if lookErr != nil {
			return nil, lookErr
		}
		if again != nil {
			res, err = again, nil
		}
	}
	if err != nil {
		return nil, err
	}
	if q.Check != nil {
		if err := q.Check(res); err != nil {
			return nil, err
		}
	}
	if res.SentAgain {
		if err := s.recordPolledAgain(ctx, q, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// recordPolledAgain writes the certificate.sent_again event of a
// certificate of the poll's transaction, found with no request held for
// it, sent to a CertPoll, before the answer leaves, as sentAgain does for
// a request sent again: a certificate issued at once whose answer was
// lost, or an approved request's, collected after its retention.
func (s *Service) recordPolledAgain(ctx context.Context, q Poll, res *Result) error {
	rec := res.Record
	how, err := s.howIssued(ctx, &rec)
	if err != nil {
		return err
	}
	var what, why string
	switch {
	case how.approval != "":
		what, why = how.collected(), how.approvedText("for this SCEP transaction")+", and the requester polled for it (CertPoll)"
		res.Collected = !how.sentBefore
	case how.found:
		what, why = "sent again", "it was issued at once for this SCEP transaction, and the requester polled for it (CertPoll: its answer was lost)"
	default:
		what, why = "sent again", "it was issued for this SCEP transaction (the audit trail holds no issuance of it to say whether at once or on an approval), and the requester polled for it (CertPoll)"
	}
	ev := clipped(pki.AuditEvent{
		Time: s.clock.Now(), Type: pki.EventSentAgain, Actor: string(q.Protocol) + ":" + pki.ClientHost(q.RemoteAddr), Profile: rec.Profile,
		SerialHex: rec.SerialHex, IssuerID: rec.IssuerID, Subject: rec.Subject, TransactionID: q.TransactionID, Outcome: "success",
		Detail: "certificate " + pki.ShownSerial(rec.SerialHex) + " " + what + ": " + why,
	})
	if err := s.store.AppendAudit(ctx, ev); err != nil {
		return fmt.Errorf("enroll: record certificate %s %s: %w", pki.ShownSerial(rec.SerialHex), what, err)
	}
	s.log.Info("CertPoll answered with the certificate issued for its transaction", "serial", pki.ShownSerial(rec.SerialHex),
		"transaction_id", q.TransactionID, "remote", q.RemoteAddr, "reason", what+": "+why)
	return nil
}

// approvalOfRequest is how an issuance event's authorized_by names the
// approval that issued it (withAuthorizedBy).
const approvalOfRequest = "authorized_by: approval of request "

// issuance is how a certificate found for a request asking again, with no
// request held for it, was issued, as the trail and the store know it.
type issuance struct {
	// found: the trail holds its issuance event.
	found bool
	// approval is the ID of the request whose approval issued it; ""
	// when it was issued at once (or found is false).
	approval string
	// request is that request's record, nil when it was purged since.
	request *pki.EnrollmentRequest
	// sentBefore: the certificate was handed over before by a
	// certificate.sent_again event, so that its answer was lost.
	sentBefore bool
	// retained: the request's retention had not ended yet (a copy of
	// its request found no request held, as one sent at the same moment
	// as the approval can).
	retained bool
}

// howIssued reads the trail (and, for an approval, the request's record)
// on rec: at once for its transaction or request (its requester asks
// again because its answer did not reach it), or on the approval of a
// request whose retention ended before its requester collected it (the
// record kept until the hourly purge, or purged since); or, when the
// trail holds no issuance event of it, neither.
func (s *Service) howIssued(ctx context.Context, rec *pki.Certificate) (*issuance, error) {
	evs, err := s.store.ListAudit(ctx, store.AuditFilter{SerialHex: rec.SerialHex, Limit: 100})
	if err != nil {
		return nil, fmt.Errorf("enroll: issuance of certificate %s: %w", pki.ShownSerial(rec.SerialHex), err)
	}
	how := &issuance{}
	for _, ev := range evs {
		if ev.IssuerID != rec.IssuerID {
			continue
		}
		if ev.Type == pki.EventSentAgain {
			how.sentBefore = true
			continue
		}
		if how.found || (ev.Type != pki.EventIssued && ev.Type != pki.EventRenewed) {
			continue
		}
		how.found = true
		if _, id, approved := strings.Cut(ev.Detail, approvalOfRequest); approved {
			how.approval, _, _ = strings.Cut(id, ",")
		}
	}
	if how.approval == "" {
		return how, nil
	}
	r, err := s.store.Request(ctx, how.approval)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("enroll: request %s that issued certificate %s: %w", how.approval, pki.ShownSerial(rec.SerialHex), err)
	case r.Status == pki.RequestIssued && r.CertIssuerID == rec.IssuerID && r.CertSerialHex == rec.SerialHex:
		how.request, how.retained = r, s.clock.Now().Before(r.ExpiresAt)
	}
	return how, nil
}

// collected is what happened to an approved request's certificate found
// with no request held for it: collected (after the request's retention,
// as a rule), or sent again when the trail shows it was handed over
// before (its answer was lost).
func (how *issuance) collected() string {
	switch {
	case how.sentBefore:
		return "sent again (handed over before: its answer was lost)"
	case how.retained:
		return "collected"
	}
	return "collected after its request's retention"
}

// approvedText says how an approved request's certificate was issued
// (for, "for this SCEP transaction" or "for this request"), and what
// became of the request's record: kept, listed issued, until the hourly
// purge, or purged since.
func (how *issuance) approvedText(forWhat string) string {
	if how.request == nil {
		return "it was issued " + forWhat + " on the approval of request " + how.approval + " (whose record was purged since)"
	}
	r := how.request
	if how.retained {
		return fmt.Sprintf("it was issued %s on the approval of request %s at %s", forWhat, r.ID, r.DecidedAt.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("it was issued %s on the approval of request %s at %s; the request's retention ended at %s (%s from its approval), and it stays listed issued until the hourly purge",
		forWhat, r.ID, r.DecidedAt.UTC().Format(time.RFC3339), r.ExpiresAt.UTC().Format(time.RFC3339), r.ExpiresAt.Sub(r.DecidedAt))
}

// rsaKey reports whether spki is an RSA key: a SCEP reply can be
// encrypted to it with what a CertPoll carries. An EC requester's reply
// is keyed from the challenge, which only its PKCSReq carries: it
// collects a certificate issued at once by sending that again.
func rsaKey(spki []byte) bool {
	pub, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		return false
	}
	_, ok := pub.(*rsa.PublicKey)
	return ok
}

// issuedToPoller answers a CertPoll of a SCEP transaction that was issued
// at once, so that no request was held: a device whose PKCSReq timed out
// before its answer came (the server slow, the answer lost) and that polls
// for it, as RFC 8894 §3.3.3 lets it, gets the certificate issued for its
// transaction rather than "no request with this transaction ID" (RFC 8894
// §3.2.1.1: the server keeps answering a transaction ID with its
// outcome). Only a certificate for the poller's own key is found (it
// signed the poll with that key), at the profile, with the transaction ID,
// valid, issued within resendWindow: the key gets what was issued for it,
// as its PKCSReq sent again would. A renewal polled with the old
// certificate's key finds nothing here unless the key was kept, and is
// answered as before. Nothing is issued: poll records the answer as the
// certificate sent again (recordPolledAgain) and counts it so.
func (s *Service) issuedToPoller(ctx context.Context, profile, txID string, pollerKey []byte) (*Result, error) {
	p, ok := s.Profile(profile)
	if !ok || !rsaKey(pollerKey) {
		return nil, nil
	}
	now := s.clock.Now()
	certs, err := s.store.CertificatesOfTransaction(ctx, store.KeyHash(pollerKey), p.Name, txID, now.Add(-resendWindow))
	if err != nil {
		return nil, fmt.Errorf("enroll: certificates of polled transaction %q: %w", txID, err)
	}
	for i := range certs {
		c := &certs[i]
		if c.Protocol != pki.ProtocolSCEP || !now.Before(c.NotAfter) {
			continue
		}
		res, err := s.issuedResult(ctx, c.IssuerID, c.SerialHex)
		if err != nil {
			return nil, err
		}
		res.SentAgain = true
		return res, nil
	}
	return nil, nil
}

// heldAnswer is the answer about the request held under txID at profile,
// made with pollerKey (any request when it is nil).
func (s *Service) heldAnswer(ctx context.Context, profile, txID string, pollerKey []byte) (*Result, error) {
	p, ok := s.Profile(profile)
	if !ok {
		return nil, pki.Errorf(pki.ENotFound, "unknown profile %q", profile)
	}
	var keys store.RequestKeys // any request, for Poll
	if pollerKey != nil {
		// The request's own key, or that of the certificate that
		// authenticated it (a renewal's): another key's request under
		// this ID is another transaction, which the poller does not see.
		keys = store.RequestKeys{CSR: pollerKey, Client: pollerKey}
	}
	r, err := s.heldRequest(ctx, p.Name, txID, keys)
	if errors.Is(err, store.ErrNotFound) {
		return nil, pki.Errorf(pki.EBadCertID, "no request with this transaction ID")
	}
	if err != nil {
		return nil, err
	}
	return s.answer(ctx, r)
}

// Approve issues the certificate of a held request. The policy is applied
// again (the profile may have changed since); authentication is not, since
// it was checked when the request was held.
//
// Only the issuance is counted: an approval that fails (a second approver,
// an unknown ID, a request that can no longer be issued) is the operator's
// call going wrong, not a device's enrollment refused, and the request
// stays held as it was, but for one that no approval can issue any more,
// found so before or at the issuance's record (rejectOnApproval); Reject
// counts nothing either.
func (s *Service) Approve(ctx context.Context, id, approver string) (res *Result, err error) {
	var protocol pki.Protocol // the held request's and its profile, once found
	asked := UnknownProfile
	defer func() {
		if err == nil {
			s.observe(protocol, asked, res, err)
		}
	}()
	r, err := s.store.Request(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, pki.Errorf(pki.ENotFound, "no request %q", pki.Clip(id, 80))
	}
	if err != nil {
		return nil, err
	}
	protocol, asked = r.Protocol, r.Profile
	if r.Status != pki.RequestPending {
		return nil, pki.Errorf(pki.EConflict, "request %s is %s, not pending", id, r.Status)
	}
	if !s.clock.Now().Before(r.ExpiresAt) {
		return nil, pki.Errorf(pki.EConflict, "request %s expired at %s", id, r.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if err := s.rejectOnApproval(ctx, r); err != nil {
		return nil, err
	}
	profile, ok := s.Profile(r.Profile)
	if !ok {
		return nil, pki.Errorf(pki.EBadRequest, "request %s names profile %q, which is not configured here (removed from the config file, or the command was run without the server's --config)", id, r.Profile)
	}
	csr, err := parseStoredRequest(r.CSR)
	if err != nil {
		return nil, fmt.Errorf("enroll: stored request %s: %w", id, err)
	}
	st := &State{Req: Request{CSR: csr, Profile: r.Profile, Protocol: r.Protocol, TransactionID: r.TransactionID, RemoteAddr: r.RequesterAddr},
		Profile: profile, PublicKey: csr.PublicKey, CompleteRequest: r, ApprovedBy: approver}
	if r.RenewedFrom != "" {
		if old, err := s.certByRef(ctx, r.RenewedFrom); err == nil {
			st.Renews = old
		}
		// A certificate revoked while its renewal waited (a stolen
		// device) buys nothing; one revoked for good was refused above
		// (unissuable). A hold may be lifted: the request waits for it.
		if st.Renews != nil && st.Renews.Status == pki.StatusRevoked {
			shown := pki.ShownSerial(st.Renews.SerialHex)
			return nil, pki.Errorf(pki.EConflict, "request %s renews certificate %s, which is on hold (certificateHold); lift the hold (scepter certs unhold %s) to approve it, or reject the request", id, shown, shown)
		}
	}
	// The CSR's signature was checked when the request was held; its stored
	// copy has lost its challengePassword, so it no longer verifies.
	if err := s.checkNames(ctx, st); err != nil {
		return nil, err
	}
	// A request held before the issuer's checks ran at hold time, or under
	// a profile that has changed since, is refused here, saying that it
	// is for rejecting rather than an approval that failed for now.
	if err := s.checkIssuable(st); err != nil {
		if pki.ErrorCode(err) == pki.EBadRequest {
			return nil, pki.Wrap(pki.EBadRequest, err, fmt.Sprintf("request %s cannot be issued, reject it: %s", id, pki.ErrorMessage(err)))
		}
		return nil, err
	}
	st.Events = append(st.Events, pki.AuditEvent{Time: s.clock.Now(), Type: pki.EventRequestApproved, Actor: approver,
		Profile: r.Profile, Subject: r.Subject, TransactionID: r.TransactionID, Outcome: "success", Detail: "request " + id})
	res, err = s.issue(ctx, st)
	if err != nil && revokedMeanwhile(err) {
		// The revocation got to the store between the check above and
		// the issuance's record, which refused it: the request is
		// rejected now, as the check would have, not left pending for
		// the next approval to find.
		if rerr := s.rejectOnApproval(ctx, r); rerr != nil {
			return nil, rerr
		}
	}
	return res, err
}

// rejectOnApproval refuses the approval of held request r when no
// approval can issue it any more (unissuable), rejecting it by the system
// (rejectUnissuable) and saying so; nil when it may still be approved.
// Several approvers meeting it at once (on several nodes) decide it once:
// each is told it was rejected by the system, unless someone else decided
// it first.
func (s *Service) rejectOnApproval(ctx context.Context, r *pki.EnrollmentRequest) error {
	why, err := s.unissuable(ctx, r)
	if err != nil || why == nil {
		return err
	}
	decided, err := s.rejectUnissuable(ctx, r)
	if err != nil {
		return err
	}
	if decided.DecidedBy != SystemRejecter || decided.Status != pki.RequestRejected {
		return pki.Errorf(pki.EConflict, "request %s is %s, not pending", r.ID, decided.Status)
	}
	return pki.Errorf(why.approve, "request %s cannot be issued, so it was rejected: %s", r.ID, why.reason)
}

// revokedMeanwhile: issue refused a certificate because of a revocation
// recorded since its request was checked: its key revoked as compromised
// (found by issue's own check or by the store's record), or the
// certificate it renews revoked.
func revokedMeanwhile(err error) bool {
	var named *certificateRefusal
	return errors.Is(err, store.ErrKeyCompromised) || errors.As(err, &named) || pki.ErrorCode(err) == pki.EBadCertID
}

func (s *Service) certByRef(ctx context.Context, ref string) (*pki.Certificate, error) {
	for i := len(ref) - 1; i >= 0; i-- {
		if ref[i] == ':' {
			return s.store.Certificate(ctx, ref[:i], ref[i+1:])
		}
	}
	return nil, store.ErrNotFound
}

// parseStoredRequest reads a held request as the protocol edges read it
// when it came: with the extensions of Microsoft's extension-request
// attribute (csr.MicrosoftExtensions), so that an approval issues the
// names asked for that way too.
func parseStoredRequest(der []byte) (*x509.CertificateRequest, error) {
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, err
	}
	if problem := csr.MicrosoftExtensions(req); problem != "" {
		return nil, errors.New(problem)
	}
	return req, nil
}
