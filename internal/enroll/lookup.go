package enroll

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// GetCertificate returns a certificate we issued, by issuer name and
// serial, to a requester who proves it holds a valid certificate of ours
// (SCEP GetCert): the one recorded, byte for byte, by an issuing CA the
// root has not revoked.
func (s *Service) GetCertificate(ctx context.Context, rawIssuer []byte, serialHex string, requester *x509.Certificate) (*x509.Certificate, error) {
	now := s.clock.Now()
	if requester == nil {
		return nil, pki.Errorf(pki.EBadRequest, "GetCert must be signed by a certificate this CA issued")
	}
	issuer, err := s.authority.IssuedByUs(requester, now)
	if errors.Is(err, ca.ErrExpired) {
		return nil, pki.Wrap(pki.EBadTime, err, "the signer certificate has expired")
	}
	// A signer of ours that is revoked, unknown or not as issued is
	// answered badCertId, as GetCRL and CertPoll answer it
	// (CheckNotRevoked); a store that cannot tell is unavailable (503,
	// ask again), never a final FAILURE.
	if errors.Is(err, ca.ErrIssuerRevoked) {
		return nil, pki.Wrap(pki.EBadCertID, err, "the signer certificate was issued by an issuing CA that the root has revoked (listed on the root CRL)")
	}
	if err != nil {
		return nil, pki.Wrap(pki.EBadRequest, err, "GetCert must be signed by a certificate this CA issued")
	}
	serial := requester.SerialNumber.Text(16)
	rec, err := s.store.Certificate(ctx, issuer.ID, serial)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, pki.Errorf(pki.EBadCertID, "the signer certificate is not in this CA's inventory")
	case err != nil:
		return nil, fmt.Errorf("enroll: GetCert signer %s: %w", serial, err)
	case rec.Status == pki.StatusRevoked:
		return nil, revokedRefusal(rec, "signer certificate", "send the request again")
	}
	if err := checkAsIssued(rec, requester, "signer certificate"); err != nil {
		return nil, err
	}
	for _, i := range s.authority.Issuers() {
		// As GetCRL matches the issuer: a client may re-encode the name.
		if !csr.SameName(i.Cert.RawSubject, rawIssuer) {
			continue
		}
		rec, err := s.store.Certificate(ctx, i.ID, serialHex)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return x509.ParseCertificate(rec.DER)
	}
	return nil, pki.Errorf(pki.EBadCertID, "no certificate with this issuer and serial number")
}
