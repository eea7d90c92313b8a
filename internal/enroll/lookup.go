package enroll

import (
	"context"
	"crypto/x509"
	"errors"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// GetCertificate returns a certificate we issued, by issuer name and
// serial, to a requester who proves it holds a valid certificate of ours
// (SCEP GetCert).
func (s *Service) GetCertificate(ctx context.Context, rawIssuer []byte, serialHex string, requester *x509.Certificate) (*x509.Certificate, error) {
	now := s.clock.Now()
	if requester == nil {
		return nil, pki.Errorf(pki.EBadRequest, "GetCert must be signed by a certificate this CA issued")
	}
	issuer, err := s.authority.IssuedByUs(requester, now)
	if errors.Is(err, ca.ErrExpired) {
		return nil, pki.Wrap(pki.EBadTime, err, "the signer certificate has expired")
	}
	if err != nil {
		return nil, pki.Wrap(pki.EBadRequest, err, "GetCert must be signed by a certificate this CA issued")
	}
	rec, err := s.store.Certificate(ctx, issuer.ID, requester.SerialNumber.Text(16))
	if err != nil || rec.Status == pki.StatusRevoked {
		return nil, pki.Errorf(pki.EBadRequest, "the signer certificate is unknown or revoked")
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
