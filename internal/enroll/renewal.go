package enroll

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

// authenticateRenewal accepts a renewal by a certificate the client proved
// it holds (the SCEP message's signer, the EST TLS client certificate) that
// we issued (verified by signature to our root, never by name), that is not
// revoked, not expired beyond the profile's grace, inside the renewal
// window, and whose names the new request keeps unless the profile allows
// changes.
func (s *Service) authenticateRenewal(ctx context.Context, st *State) error {
	old, signer, err := s.renewedCertificate(ctx, st)
	if err != nil {
		return err
	}
	// A certificate renews under the profile that issued it: renewing at
	// another profile's endpoint would let a certificate of one policy
	// buy one of another without that policy's authentication.
	if old.Protocol == pki.ProtocolInternal {
		// Its built-in profile is served at no label or path: "renew it
		// there" would send the client nowhere.
		return pki.Errorf(pki.EBadRequest, "this is one of the server's own certificates (%s), which the server renews itself; it is not renewed by enrollment",
			ownCertificateRole(old.Profile))
	}
	if old.Profile != "" && old.Profile != st.Profile.Name {
		return pki.Errorf(pki.EBadRequest, "this certificate was issued under profile %q; renew it there", old.Profile)
	}
	if !st.Req.ServerKeyGen {
		// Asked again with the key of a renewal already issued (its
		// answer was lost): answered with that certificate, even when
		// that renewal revoked the old one (revoke_superseded), and
		// never with a second one. Revoked otherwise (an operator's
		// keyCompromise, privilegeWithdrawn, …), the old certificate
		// authenticates nothing, this resend included: refused below.
		again, err := s.renewedAlready(ctx, old, st.Req.CSR.RawSubjectPublicKeyInfo)
		if err != nil {
			return err
		}
		if again != nil && (old.Status != pki.StatusRevoked || supersededByRenewal(old, again)) {
			st.Renews, st.RenewsCert, st.IssuedAlready = old, signer, again
			return nil
		}
	}
	if old.Status == pki.StatusRevoked {
		if err := s.rejectHeldRenewals(ctx, st.Profile.Name, st.Req.CSR.RawSubjectPublicKeyInfo, old); err != nil {
			s.log.Error("a held renewal of a revoked certificate could not be rejected; the next poll or approval rejects it", "certificate", pki.ShownSerial(old.SerialHex), "err", err)
		}
		return revokedRenewalRefusal(old)
	}
	if opens := st.Profile.RenewalOpens(signer.NotBefore, signer.NotAfter); s.clock.Now().Before(opens) {
		return pki.Errorf(pki.EBadTime, "renewal of this certificate opens at %s", opens.UTC().Format(time.RFC3339))
	}
	if !st.Profile.AllowKeyReuse && !st.Req.ServerKeyGen && bytes.Equal(st.Req.CSR.RawSubjectPublicKeyInfo, signer.RawSubjectPublicKeyInfo) {
		return pki.Errorf(pki.EBadRequest, "the profile requires a new key on renewal")
	}
	st.Renews, st.RenewsCert = old, signer
	return nil
}

// renewsRevokedMeanwhile is the refusal of a renewal whose certificate
// was revoked after it was checked, between that and the issuance's
// transaction (err, store.ErrRenewsRevoked): by a revocation, or by a
// copy of the renewal with another key that superseded it. It says what
// the same request a moment later is told (revokedRenewalRefusal: the
// serial, when and why), from the record as it is now; the bare words
// when that cannot be read.
func (s *Service) renewsRevokedMeanwhile(ctx context.Context, st *State, err error) error {
	if st.Renews != nil {
		now, rerr := s.store.Certificate(ctx, st.Renews.IssuerID, st.Renews.SerialHex)
		if rerr == nil && now.Status == pki.StatusRevoked {
			return revokedRenewalRefusal(now)
		}
		if rerr != nil {
			s.log.Warn("the certificate to renew was revoked meanwhile, and its record could not be read again to say when and why",
				"certificate", pki.ShownSerial(st.Renews.SerialHex), "err", rerr)
		}
	}
	return pki.Wrap(pki.EBadCertID, err, "the certificate to renew is revoked")
}

// revokedRenewalRefusal is the refusal of a renewal of old, revoked
// (revokedRefusal). Both protocols, and every check that meets it, say the
// same.
func revokedRenewalRefusal(old *pki.Certificate) error {
	return revokedRefusal(old, "certificate to renew", "renew")
}

// revokedRefusal is the refusal of a request authenticated by rec, a
// certificate of ours that is revoked: held names it as the client knows
// it (the certificate to renew, the signer certificate), then what to do
// once it is usable again. On hold (certificateHold) it says so, since a
// hold may be lifted and the device may come back (its administrator
// should know, and a client keeps a new key it made for the request: it
// reads "lift the hold"); otherwise it is revoked for good, and the
// refusal names the certificate (its serial as shown), when and why it
// was revoked, and that the device must enroll anew with a challenge
// (with a new key after keyCompromise): nothing it signs is taken again.
// A RenewalReq, an Apple-style PKCSReq renewal, GetCert and CertPoll
// signed by it, and EST's renewal by it, all say it in these words ("…
// is revoked", "… is on hold": the agent reads a refusal by them).
func revokedRefusal(rec *pki.Certificate, held, then string) error {
	if rec.RevokeReason == pki.ReasonCertificateHold {
		return pki.Errorf(pki.EBadCertID, "the %s is on hold (certificateHold); ask the operator to lift the hold, then %s", held, then)
	}
	reason, ok := pki.ReasonName(rec.RevokeReason)
	if !ok {
		reason = "reason " + strconv.Itoa(rec.RevokeReason)
	}
	next := "enroll anew, authenticated by a challenge"
	if rec.RevokeReason == pki.ReasonKeyCompromise {
		next = "enroll anew with a new key, authenticated by a challenge"
	}
	return &revokedForGood{pki.Errorf(pki.EBadCertID, "the %s is revoked: %s was revoked at %s (%s), and a revoked certificate authenticates nothing; %s",
		held, pki.ShownSerial(rec.SerialHex), rec.RevokedAt.UTC().Format(time.RFC3339), reason, next)}
}

// revokedForGood is revokedRefusal's refusal of a certificate revoked for
// good (not on hold), told apart by RevokedForGood.
type revokedForGood struct{ err error }

func (e *revokedForGood) Error() string { return e.err.Error() }
func (e *revokedForGood) Unwrap() error { return e.err }

// RevokedForGood reports whether err refuses a request because the
// certificate of ours that authenticated it (a SCEP signer, an EST client
// certificate) is revoked for good, not on hold: a handler that refused a
// request so, before the service looked at it, has the requests held to
// renew that certificate rejected (RejectHeldRenewals), as the service
// does when it refuses one itself.
func RevokedForGood(err error) bool {
	var r *revokedForGood
	return errors.As(err, &r)
}

// renewedCertificate is the certificate a renewal is authenticated by, as
// the client presented it (signer) and as recorded (old): one we issued
// (verified by signature to our root, never by name), not expired beyond
// the profile's grace, by an issuing CA the root has not revoked, and in
// the inventory byte for byte. It needs no request, so a
// handler may have it checked before it reads one (CheckCredentials).
func (s *Service) renewedCertificate(ctx context.Context, st *State) (old *pki.Certificate, signer *x509.Certificate, err error) {
	signer = st.Req.Evidence.heldCertificate()
	if signer == nil {
		return nil, nil, pki.Errorf(pki.EBadCertID, "a renewal must be authenticated by the certificate it renews")
	}
	// Named as the client knows it: SCEP's message signer, EST's TLS
	// client certificate.
	held := "signer certificate"
	if st.Req.Evidence.SignerCert == nil {
		held = "client certificate"
	}
	now := s.clock.Now()
	issuer, err := s.authority.IssuedByUs(signer, now)
	var caCert *ca.CACertError
	switch {
	case errors.Is(err, ca.ErrExpired):
		if now.After(signer.NotAfter.Add(st.Profile.RenewalGrace)) && !heldWhileUsable(st.Held, signer, st.Profile.RenewalGrace) {
			return nil, nil, pki.Wrap(pki.EBadTime, err, "the certificate to renew has expired")
		}
	case errors.Is(err, ca.ErrIssuerRevoked):
		return nil, nil, pki.Wrap(pki.EBadCertID, err, "the "+held+" was issued by an issuing CA that the root has revoked (listed on the root CRL)")
	case errors.As(err, &caCert):
		// Ours, but no client's: named as the server's own certificates
		// are (authenticateRenewal), and refused as they are.
		return nil, nil, pki.Wrap(pki.EBadRequest, err, fmt.Sprintf("the %s is this CA's own %s (%s), not a certificate issued to a client; "+
			"a CA certificate is not renewed by enrollment (scepter ca rollover makes the next issuing CA)", held, caCert.Role, caCert.Subject))
	case err != nil:
		return nil, nil, pki.Wrap(pki.EBadCertID, err, "the "+held+" was not issued by this CA")
	}
	old, err = s.store.Certificate(ctx, issuer.ID, signer.SerialNumber.Text(16))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, pki.Wrap(pki.EBadCertID, err, "the "+held+" is not in this CA's inventory")
	}
	if err != nil {
		return nil, nil, err
	}
	// The serial finds the record; only the same bytes make it the same
	// certificate. One signed with a stolen (or revoked) issuing CA key
	// may carry a serial of ours and other names: its names and key must
	// not renew as the recorded certificate's. From here on signer is the
	// recorded certificate, names and all.
	if err := checkAsIssued(old, signer, held); err != nil {
		return nil, nil, err
	}
	return old, signer, nil
}

// heldWhileUsable: held, the request a renewal asks about again (its
// transaction and key, st.Held), was authenticated by signer when it was
// held, while signer was valid or within its grace. Its device is then
// answered from it (the approved certificate, PENDING, the rejection)
// however long the request waited, as README promises for the whole
// retention: refused as expired, it would drop the key its approved
// certificate is for. Every other check of signer still applies; a new
// renewal by an expired certificate has no held request and is refused.
func heldWhileUsable(held *pki.EnrollmentRequest, signer *x509.Certificate, grace time.Duration) bool {
	return held != nil && held.RenewedFrom != "" && bytes.Equal(held.ClientCert, signer.Raw) &&
		!held.CreatedAt.After(signer.NotAfter.Add(grace))
}

// checkAsIssued refuses a presented certificate (held names it as the
// client knows it) that is not, byte for byte, the one rec records under
// its serial, as a certificate this CA did not issue (badCertId).
func checkAsIssued(rec *pki.Certificate, cert *x509.Certificate, held string) error {
	if bytes.Equal(rec.DER, cert.Raw) {
		return nil
	}
	return pki.Errorf(pki.EBadCertID, "the %s is not the certificate this CA issued with serial %s", held, pki.ShownSerial(rec.SerialHex))
}

// supersededByRenewal: old was revoked by the issuance of renewal, one of
// its renewals (revoke_superseded): reason superseded, by the store's
// renewal actor, no earlier than that renewal was issued. Only such a
// revocation leaves old good for asking again about that renewal; one an
// operator made, even as superseded, does not.
func supersededByRenewal(old, renewal *pki.Certificate) bool {
	return old.Status == pki.StatusRevoked && old.RevokeReason == pki.ReasonSuperseded && old.RevokedBy == sqlstore.SupersededBy &&
		renewal.RenewedFrom == renewedFrom(old) && !old.RevokedAt.Before(renewal.CreatedAt)
}

// renewedAlready is the valid renewal of old whose key is spki, if one was
// issued.
func (s *Service) renewedAlready(ctx context.Context, old *pki.Certificate, spki []byte) (*pki.Certificate, error) {
	renewals, err := s.store.RenewalsOf(ctx, old.IssuerID, old.SerialHex)
	if err != nil {
		return nil, fmt.Errorf("enroll: renewals of %s: %w", pki.ShownSerial(old.SerialHex), err)
	}
	for i := range renewals {
		r := &renewals[i]
		if r.Status != pki.StatusValid {
			continue
		}
		cert, err := x509.ParseCertificate(r.DER)
		if err == nil && bytes.Equal(cert.RawSubjectPublicKeyInfo, spki) {
			return r, nil
		}
	}
	return nil, nil
}

// checkRenewalNames runs after the subject is decided: unless the profile
// allows changes, the renewed certificate keeps the old subject and SANs,
// compared as RFC 5280 §7.1 compares names (csr.SameHeldName: CN=DEV-A
// keeps CN=dev-a, as DNS:DEV-A.Example keeps DNS:dev-a.example), over
// SCEP and EST alike. The new certificate is written as the request
// spells its names: the same names, in the device's spelling.
func checkRenewalNames(_ context.Context, st *State) error {
	if st.RenewsCert == nil || st.Profile.AllowNameChange {
		return nil
	}
	old := st.RenewsCert
	if !csr.SameHeldName(st.RawSubject, old.RawSubject) {
		return pki.Errorf(pki.EBadRequest, "a renewal must keep the subject %s", old.Subject)
	}
	// The names to issue include the profile's fixed SANs, as the old
	// certificate's do.
	if !sameSANs(st.SANs, old) {
		return pki.Errorf(pki.EBadRequest, "a renewal must keep the subject alternative names of the certificate it renews")
	}
	return nil
}

// sameSANs: the names to issue are cert's, in any order (csr.SameAltNames).
func sameSANs(sans SANSet, cert *x509.Certificate) bool {
	return csr.SameAltNames(csr.AltNames(sans), csr.AltNamesOf(cert))
}

// ownCertificateRole names what a certificate of the server's own, of this
// built-in profile, is for.
func ownCertificateRole(profile string) string {
	switch profile {
	case "tls-server": // serverProfile
		return "its HTTPS certificate"
	case "ocsp-responder": // responderProfile
		return "an OCSP responder's certificate"
	case RAProfileName:
		return "the SCEP RA's certificate; scepter ca renew-ra renews it at once"
	}
	return "profile " + profile
}
