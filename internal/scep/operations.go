package scep

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/asn1"
	"math/big"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
)

// enroll answers PKCSReq and RenewalReq: the service decides whether the
// request is a fresh enrollment or a renewal from the evidence.
func (h *Handler) enroll(ctx context.Context, req *request) ([]byte, error) {
	plain, err := h.open(req)
	if err != nil {
		return nil, err
	}
	csrReq, err := x509.ParseCertificateRequest(plain)
	if err != nil {
		// Same answer as a failed decryption: no oracle.
		return nil, pki.Wrap(pki.EBadMessageCheck, err, errUndecryptable.Message)
	}
	if req.challenge, err = csr.ChallengePassword(csrReq); err != nil {
		return nil, pki.Wrap(pki.EBadRequest, err, "malformed challengePassword attribute")
	}
	if err := canReceive(req); err != nil {
		return nil, err
	}
	res, err := h.svc.Enroll(ctx, enroll.Request{
		CSR:           csrReq,
		Evidence:      enroll.Evidence{Challenge: req.challenge, SignerCert: req.msg.SignerCert},
		Profile:       req.profile,
		Protocol:      pki.ProtocolSCEP,
		TransactionID: req.msg.TransactionID,
		RemoteAddr:    req.remote,
		Renewal:       req.msg.MessageType == RenewalReq,
	})
	if err != nil {
		return nil, err
	}
	return h.result(req, res)
}

// result encodes an enrollment result: PENDING, or SUCCESS with the
// certificate (and the CA chain when the profile asks for it).
func (h *Handler) result(req *request, res *enroll.Result) ([]byte, error) {
	if res.Pending != nil {
		return h.certRep(req, Reply{Status: StatusPending})
	}
	certs := []*x509.Certificate{res.Certificate}
	if p, ok := h.svc.Profile(req.profile); ok && p.IncludeCACert {
		certs = append(certs, res.Chain...)
	}
	return h.success(req, certs)
}

// certPoll answers CertPoll (RFC 8894 §3.3.3) by transaction ID. Only the
// key that made the request may collect it.
func (h *Handler) certPoll(ctx context.Context, req *request) ([]byte, error) {
	plain, err := h.open(req)
	if err != nil {
		return nil, err
	}
	var ias issuerAndSubject
	if rest, err := asn1.Unmarshal(plain, &ias); err != nil || len(rest) > 0 {
		return nil, pki.Wrap(pki.EBadMessageCheck, err, errUndecryptable.Message)
	}
	res, err := h.svc.Poll(ctx, req.profile, req.msg.TransactionID)
	if err != nil {
		return nil, err
	}
	// The requester signs with the new key or, for a renewal, the old
	// certificate that signed the request.
	if res.Held == nil || !sameRequester(req.msg.SignerCert, res.Held.CSR, res.Held.SignerCert) {
		return nil, pki.Errorf(pki.EBadRequest, "the poll is not signed by the requester's key")
	}
	if !heldSubject(ias.Subject.FullBytes, res.Held) {
		return nil, pki.Errorf(pki.EBadCertID, "no request with this transaction ID for this subject")
	}
	if res.Pending != nil {
		return h.certRep(req, Reply{Status: StatusPending})
	}
	if err := canReceive(req); err != nil {
		return nil, err
	}
	return h.result(req, res)
}

// sameRequester: the poll's signer holds the key of the held CSR or of the
// certificate that signed it.
func sameRequester(signer *x509.Certificate, csrDER, signerDER []byte) bool {
	if csrDER != nil {
		if r, err := x509.ParseCertificateRequest(csrDER); err == nil && bytes.Equal(r.RawSubjectPublicKeyInfo, signer.RawSubjectPublicKeyInfo) {
			return true
		}
	}
	if signerDER != nil {
		if c, err := x509.ParseCertificate(signerDER); err == nil && bytes.Equal(c.RawSubjectPublicKeyInfo, signer.RawSubjectPublicKeyInfo) {
			return true
		}
	}
	return false
}

// heldSubject: CertPoll's IssuerAndSubject names the subject of the held
// request (or of the certificate that signed a renewal).
func heldSubject(subject []byte, held *pki.EnrollmentRequest) bool {
	if r, err := x509.ParseCertificateRequest(held.CSR); err == nil && csr.SameName(subject, r.RawSubject) {
		return true
	}
	if c, err := x509.ParseCertificate(held.SignerCert); err == nil && csr.SameName(subject, c.RawSubject) {
		return true
	}
	return false
}

// getCert answers GetCert (RFC 8894 §3.3.4): a certificate by issuer and
// serial, to a requester authenticated by a certificate we issued.
func (h *Handler) getCert(ctx context.Context, req *request) ([]byte, error) {
	plain, err := h.open(req)
	if err != nil {
		return nil, err
	}
	var ias issuerAndSerial
	if rest, err := asn1.Unmarshal(plain, &ias); err != nil || len(rest) > 0 || ias.Serial == nil || ias.Serial.Sign() <= 0 {
		return nil, pki.Wrap(pki.EBadMessageCheck, err, errUndecryptable.Message)
	}
	if err := canReceive(req); err != nil {
		return nil, err
	}
	cert, err := h.svc.GetCertificate(ctx, ias.Issuer.FullBytes, ias.Serial.Text(16), req.msg.SignerCert)
	if err != nil {
		return nil, err
	}
	return h.success(req, []*x509.Certificate{cert})
}

// issuerAndSubject is CertPoll's content (RFC 8894 §3.3.3).
type issuerAndSubject struct {
	Issuer  asn1.RawValue
	Subject asn1.RawValue
}

// issuerAndSerial is GetCert's and GetCRL's content (RFC 5652).
type issuerAndSerial struct {
	Issuer asn1.RawValue
	Serial *big.Int
}

// IssuerAndSubject encodes CertPoll content.
func IssuerAndSubject(issuer, subject []byte) ([]byte, error) {
	return asn1.Marshal(issuerAndSubject{Issuer: asn1.RawValue{FullBytes: issuer}, Subject: asn1.RawValue{FullBytes: subject}})
}

// IssuerAndSerial encodes GetCert content.
func IssuerAndSerial(issuer []byte, serial *big.Int) ([]byte, error) {
	return asn1.Marshal(issuerAndSerial{Issuer: asn1.RawValue{FullBytes: issuer}, Serial: serial})
}
