package scepserver

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
)

// enroll answers PKCSReq and RenewalReq. SCEP's own authentication rules
// are applied here and turned into protocol-neutral evidence: a signer we
// did not issue (self-signed, or anyone else's) only transports the request
// and must carry its key (RFC 8894 §2.3); a signer we issued is a
// certificate the client proved it holds; a RenewalReq, or a PKCSReq signed by such a certificate without a
// challenge (how Apple devices, Cisco routers and certmonger renew), asks to
// renew it.
func (h *Handler) enroll(ctx context.Context, req *request) ([]byte, error) {
	plain, err := h.open(ctx, req)
	if err != nil {
		return nil, err
	}
	csrReq, err := x509.ParseCertificateRequest(plain)
	if err != nil {
		// A request in PKCS#10's shape whose subject holds a value its
		// string type does not allow is a client's bug, named: bytes
		// decrypted with a wrong key never have that shape. Anything
		// else gets the same answer as a failed decryption: no oracle.
		if problem := csr.SubjectStringProblem(plain); problem != "" {
			return nil, pki.Wrap(pki.EBadRequest, err, "the certificate request cannot be read: "+problem)
		}
		// So is a well-formed request with an EC key crypto/x509 does
		// not read: refused as any key the profile does not take.
		p, _ := h.svc.Profile(req.profile)
		if refusal := csr.UnreadableECKeyRefusal(plain, p.Keys.ECCurves); refusal != "" {
			return nil, pki.Wrap(pki.EBadRequest, err, refusal)
		}
		return nil, h.undecryptable(ctx, req, err, "a PKCS#10 certificate request Go can read")
	}
	// crypto/x509 reads one value of an extensionRequest attribute: a
	// second one's extensions would be dropped unsaid.
	if problem := csr.ExtensionRequestProblem(csrReq); problem != "" {
		return nil, pki.Errorf(pki.EBadRequest, "the certificate request cannot be read: %s", problem)
	}
	// Nor does it read Microsoft's extension-request attribute.
	if problem := csr.MicrosoftExtensions(csrReq); problem != "" {
		return nil, pki.Errorf(pki.EBadRequest, "the certificate request cannot be read: %s", problem)
	}
	if req.challenge, err = csr.ChallengePassword(csrReq); err != nil {
		var tooLong *csr.ChallengeTooLongError
		if errors.As(err, &tooLong) {
			return nil, pki.Wrap(pki.EBadRequest, err, tooLong.Problem())
		}
		return nil, pki.Wrap(pki.EBadRequest, err, "malformed challengePassword attribute")
	}
	if err := canReceive(req); err != nil {
		return nil, err
	}
	signer := req.msg.SignerCert
	renewalReq := req.msg.MessageType == scep.RenewalReq
	// A PKCSReq signed by another key than the request's is let through
	// only for a certificate of ours, usable now, re-keying its own
	// subject: otherwise whoever holds a device's CSR (and the challenge
	// inside it) could have it issued and the certificate encrypted to
	// them. Checked before the challenge is looked at, so a refused relay
	// leaves a one-time challenge to its device. A RenewalReq signed by a
	// certificate not ours is refused by the service as one that names no
	// certificate to renew (badCertId).
	if !renewalReq && !bytes.Equal(signer.RawSubjectPublicKeyInfo, csrReq.RawSubjectPublicKeyInfo) {
		if err := h.checkRekeySigner(ctx, signer, csrReq, req.profile, req.msg.TransactionID); err != nil {
			if enroll.RevokedForGood(err) {
				// No approval can issue the renewal by it held for this
				// device: rejected now, as the service does when it
				// refuses a RenewalReq by it; the answer stays this one.
				if rerr := h.svc.RejectHeldRenewals(ctx, req.profile, csrReq, signer); rerr != nil {
					h.log.Error("scep: a held renewal of the revoked signer certificate could not be rejected; the next poll or approval rejects it",
						"remote", req.remote, "transaction_id", req.msg.TransactionID, "err", rerr)
				}
			}
			return nil, err
		}
	}
	ev := enroll.Evidence{Challenge: req.challenge}
	if !isSelfSigned(signer) {
		ev.SignerCert = signer
	}
	er := enroll.Request{
		CSR:           csrReq,
		Evidence:      ev,
		Profile:       req.profile,
		Protocol:      pki.ProtocolSCEP,
		TransactionID: req.msg.TransactionID,
		RemoteAddr:    req.remote,
		Renewal:       renewalReq || (req.challenge == "" && ev.SignerCert != nil),
		Replayed:      req.replayed,
		FirstSeen:     req.firstSeen,
		HeldOnly:      req.heldOnly,
	}
	// certmonger renews with a PKCSReq signed by its certificate that
	// still carries the challenge of the first enrollment, long used up:
	// the service renews by the certificate first, and falls back to the
	// challenge only when that certificate cannot renew.
	er.RenewalFirst = !er.Renewal && ev.SignerCert != nil && csr.SameHeldName(csrReq.RawSubject, signer.RawSubject) && h.issuedByOurCA(signer)
	res, err := h.svc.Enroll(ctx, er)
	if err != nil {
		return nil, err
	}
	return h.result(req, res)
}

// checkRekeySigner decides a PKCSReq signed by another key than its
// CSR's. Decided by signature, never by names: a signer whose issuer name
// differs from its subject may still be made by anyone. A certificate of
// ours authenticates only itself, so the CSR must ask for its subject (a
// re-key or renewal of the same device); and only while it is valid, in
// the inventory as issued and not revoked (on hold included), as a
// renewal's or GetCert's signer; an expired one within the profile's
// renewal grace still renews (the service then judges it as a renewal).
// Expired and revoked signers, and foreign ones for their own subject, get
// the failInfo a renewal by them gets (badTime, badCertId). A signer of an
// issuing CA the root's CRL lists is no longer taken for ours (its RA is
// dropped, and it is valid by no chain the service accepts), but it is not
// another CA's either: it is refused as the service refuses it
// (CheckNotRevoked), saying its CA is revoked on the root CRL, as a
// RenewalReq and a GetCert by it are. A signer expired past its grace
// still asks again about the request it had held for approval while it
// was valid (txID and the CSR's key find it): the service answers that
// one from its record, checking the signer as it does.
func (h *Handler) checkRekeySigner(ctx context.Context, signer *x509.Certificate, csrReq *x509.CertificateRequest, profile, txID string) error {
	if !h.issuedByOurCA(signer) {
		if err := h.svc.CheckNotRevoked(ctx, signer); err != nil {
			return err
		}
		if !isSelfSigned(signer) && csr.SameName(csrReq.RawSubject, signer.RawSubject) {
			// An Apple-style renewal by a certificate not ours: badCertId,
			// as a RenewalReq by it gets (it names no certificate to renew).
			// The failInfo only; the refusal is the same.
			return pki.Errorf(pki.EBadCertID, "the signer certificate was not issued by this CA, so it cannot renew: a request for another key must be signed by that key (with a challenge) or by a certificate of ours")
		}
		return pki.Errorf(pki.EBadRequest, "the signer certificate's key differs from the request's key, and the signer is not a certificate this CA issued")
	}
	// Its own subject as a renewal compares it (RFC 5280 §7.1: CN in any
	// case), so that a renewal it signs is judged by the service.
	if !csr.SameHeldName(csrReq.RawSubject, signer.RawSubject) {
		return pki.Errorf(pki.EBadRequest, "the signer certificate's key differs from the request's key, and its subject differs from the request's: a certificate of ours signs only a request for its own subject")
	}
	var grace time.Duration
	if p, ok := h.svc.Profile(profile); ok {
		grace = p.RenewalGrace
	}
	now := h.clock.Now()
	switch {
	case now.After(signer.NotAfter.Add(grace)):
		held, err := h.asksAboutHeld(ctx, profile, txID, csrReq.RawSubjectPublicKeyInfo)
		if err != nil {
			return err
		}
		if !held {
			return pki.Errorf(pki.EBadTime, "the signer certificate has expired; a request for another key must be signed by that key or by a valid certificate")
		}
	case now.Before(signer.NotAfter) && !h.svc.IssuedHere(signer):
		return pki.Errorf(pki.EBadCertID, "the signer certificate is not valid now")
	}
	return h.svc.CheckNotRevoked(ctx, signer)
}

// asksAboutHeld: a request is held (pending, decided, or past its
// retention undecided) under txID at profile for key, as the service
// looks it up for the message; an error only when the store cannot tell.
func (h *Handler) asksAboutHeld(ctx context.Context, profile, txID string, key []byte) (bool, error) {
	_, err := h.svc.HeldBy(ctx, profile, txID, key)
	switch code := pki.ErrorCode(err); {
	case err == nil, code == pki.EBadRequest:
		return true, nil
	case code == pki.EInternal || code == pki.EUnavailable:
		return false, err
	}
	return false, nil
}

// issuedByOurCA: the certificate is signed by one of our issuing CAs:
// one whose RA we hold (current, next or previous; expired or not), or
// any the service knows, valid now by its chain to our root (a previous
// CA whose RA key is gone). checkRekeySigner then checks it fully; it
// also routes a PKCSReq to renewal first.
func (h *Handler) issuedByOurCA(cert *x509.Certificate) bool {
	for _, ra := range h.svc.RAs() {
		for _, ca := range ra.Chain {
			if ca.IsCA && bytes.Equal(cert.RawIssuer, ca.RawSubject) && cert.CheckSignatureFrom(ca) == nil {
				return true
			}
		}
	}
	return h.svc.IssuedHere(cert)
}

// isSelfSigned goes by the names alone. It only decides whether a signer
// is offered to the service as evidence; the key check above does not
// depend on it.
func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject)
}

// result encodes an enrollment result: PENDING, or SUCCESS with the
// certificate (and the CA chain when the profile asks for it).
func (h *Handler) result(req *request, res *enroll.Result) ([]byte, error) {
	if res.Pending != nil {
		return h.certRep(req, scep.Reply{Status: scep.StatusPending})
	}
	certs := []*x509.Certificate{res.Certificate}
	if p, ok := h.svc.Profile(req.profile); ok && p.IncludeCACert {
		certs = append(certs, res.Chain...)
	}
	reply, err := h.success(req, certs)
	if err != nil {
		// The RA key failed after the CA signed (its token away a
		// moment): the certificate is issued and recorded, the device is
		// told 503, and the operator must be able to tell from the log.
		return nil, fmt.Errorf("scep: certificate %s is issued and recorded, but its CertRep could not be made; the same message sent again is answered with it: %w",
			res.Record.SerialHex, err)
	}
	return reply, nil
}

// certPoll answers CertPoll (RFC 8894 §3.3.3) by transaction ID. Only the
// key that made the request may learn anything about it: the service
// answers any other as about an unknown transaction ID.
func (h *Handler) certPoll(ctx context.Context, req *request) ([]byte, error) {
	plain, err := h.open(ctx, req)
	if err != nil {
		return nil, err
	}
	ias, err := scep.ParseIssuerAndSubject(plain)
	if err != nil {
		return nil, h.undecryptable(ctx, req, err, "an IssuerAndSubject")
	}
	// The requester signs with the new key or, for a renewal, the old
	// certificate that signed the request.
	// The poll's own checks run before the service counts it, so a poll
	// they refuse counts as refused.
	res, err := h.svc.PollChecked(ctx, enroll.Poll{Protocol: pki.ProtocolSCEP, Profile: req.profile, TransactionID: req.msg.TransactionID,
		PollerKey: req.msg.SignerCert.RawSubjectPublicKeyInfo, RemoteAddr: req.remote,
		Check: func(res *enroll.Result) error { return h.checkPoll(ctx, req, ias, res) }})
	if err != nil {
		return nil, err
	}
	// The service counted the poll by what it found: a refusal from here
	// on is recorded, not counted again.
	reply, err := h.answerPoll(req, res)
	return reply, enroll.AlreadyCounted(err)
}

// checkPoll refuses a CertPoll whose signer or subject is not that of
// res, what the service found for its transaction and key.
func (h *Handler) checkPoll(ctx context.Context, req *request, ias *scep.IssuerAndSubject, res *enroll.Result) error {
	if res.Held == nil && (!res.SentAgain || res.Certificate == nil) {
		return fmt.Errorf("scep: CertPoll of transaction %q answered without its held request", req.msg.TransactionID)
	}
	// A renewal's old certificate revoked since it was held authenticates
	// nothing more.
	if err := h.svc.CheckNotRevoked(ctx, req.msg.SignerCert); err != nil {
		return err
	}
	if !polledSubject(ias.Subject.FullBytes, res) && !csr.SameHeldName(req.msg.SignerCert.RawSubject, ias.Subject.FullBytes) {
		return pki.Errorf(pki.EBadCertID, "no request with this transaction ID for this subject")
	}
	return nil
}

// answerPoll answers a CertPoll about res, what the service found for its
// transaction and key, once checkPoll let it through.
func (h *Handler) answerPoll(req *request, res *enroll.Result) ([]byte, error) {
	if res.Pending != nil {
		return h.certRep(req, scep.Reply{Status: scep.StatusPending})
	}
	if _, ec := req.msg.SignerCert.PublicKey.(*ecdsa.PublicKey); ec && res.Certificate != nil {
		// Its reply is keyed from the challenge, which only the request
		// carries (and which is not kept). A FAILURE ends the transaction:
		// a client gives up, and may drop its key. PENDING keeps it
		// asking, and its PKCSReq sent again with the same transaction ID
		// (as ours and micromdm's send) collects the certificate.
		h.log.Info("scep: CertPoll of an EC requester answered PENDING: its certificate is issued, but the reply is encrypted with a key from the challenge, which a CertPoll does not carry; the client must send its PKCSReq again (same transaction ID) to collect it",
			"remote", req.remote, "transaction_id", req.msg.TransactionID, "profile", req.profile)
		return h.certRep(req, scep.Reply{Status: scep.StatusPending})
	}
	if err := canReceive(req); err != nil {
		return nil, err
	}
	return h.result(req, res)
}

// polledSubject: CertPoll's IssuerAndSubject names the subject of what it
// polls for: the held request (heldSubject), or the certificate issued at
// once for its transaction, whose subject is the request's as issued.
func polledSubject(subject []byte, res *enroll.Result) bool {
	if res.Held == nil {
		return csr.SameHeldName(res.Certificate.RawSubject, subject)
	}
	return heldSubject(subject, res.Held)
}

// heldSubject: CertPoll's IssuerAndSubject names the subject of the held
// request or of the certificate that authenticated it (a renewal's). A
// poll signed by the requester's key may also name the subject of its own
// (self-signed) signer certificate, as some clients do. Names compare as a
// held request's retry is matched (csr.SameHeldName: RFC 5280 §7.1, CN=AP-1
// is CN=ap-1), so that a device whose PKCSReq sent again is answered about
// its held request is answered about it when it polls as well.
func heldSubject(subject []byte, held *pki.EnrollmentRequest) bool {
	if r, err := x509.ParseCertificateRequest(held.CSR); err == nil && csr.SameHeldName(r.RawSubject, subject) {
		return true
	}
	if c, err := x509.ParseCertificate(held.ClientCert); err == nil && csr.SameHeldName(c.RawSubject, subject) {
		return true
	}
	return false
}

// getCert answers GetCert (RFC 8894 §3.3.4): a certificate by issuer and
// serial, to a requester authenticated by a certificate we issued.
func (h *Handler) getCert(ctx context.Context, req *request) ([]byte, error) {
	ias, err := h.openIssuerAndSerial(ctx, req)
	if err != nil {
		return nil, err
	}
	cert, err := h.svc.GetCertificate(ctx, ias.Issuer.FullBytes, ias.Serial.Text(16), req.msg.SignerCert)
	if err != nil {
		return nil, err
	}
	return h.success(req, []*x509.Certificate{cert})
}

// getCRL answers GetCRL (RFC 8894 §3.3.4): the current CRL of the CA that
// IssuerAndSerialNumber names, in a certs-only SignedData's crls field,
// enveloped to the requester like any CertRep. A CRL is public (it is
// served at /crl/ to anyone), so any signer may ask: a device whose
// certificate was revoked, or expired, needs it as much as any.
func (h *Handler) getCRL(ctx context.Context, req *request) ([]byte, error) {
	ias, err := h.openIssuerAndSerial(ctx, req)
	if err != nil {
		return nil, err
	}
	der, issuer, err := h.svc.CurrentCRL(ctx, ias.Issuer.FullBytes, ias.Serial.Text(16))
	if err != nil {
		return nil, err
	}
	inner, err := cms.DegenerateCRLs([][]byte{der}, issuer)
	if err != nil {
		return nil, fmt.Errorf("scep: GetCRL reply: %w", err)
	}
	return h.successWith(req, inner)
}

// openIssuerAndSerial decrypts GetCert's and GetCRL's content, an
// IssuerAndSerialNumber, and checks the reply can be encrypted to the
// requester.
func (h *Handler) openIssuerAndSerial(ctx context.Context, req *request) (*scep.IssuerAndSerial, error) {
	plain, err := h.open(ctx, req)
	if err != nil {
		return nil, err
	}
	ias, err := scep.ParseIssuerAndSerial(plain)
	if err != nil {
		return nil, h.undecryptable(ctx, req, err, "an IssuerAndSerialNumber")
	}
	if err := canReceive(req); err != nil {
		return nil, err
	}
	return ias, nil
}
