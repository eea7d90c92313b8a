package enroll

import (
	"bytes"
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
	if errors.Is(err, ca.ErrIssuerRevoked) {
		return nil, pki.Wrap(pki.EBadRequest, err, "the signer certificate was issued by an issuing CA that the root has revoked (listed on the root CRL)")
	}
	if err != nil {
		return nil, pki.Wrap(pki.EBadRequest, err, "GetCert must be signed by a certificate this CA issued")
	}
	rec, err := s.store.Certificate(ctx, issuer.ID, requester.SerialNumber.Text(16))
	if err != nil || rec.Status == pki.StatusRevoked {
		return nil, pki.Errorf(pki.EBadRequest, "the signer certificate is unknown or revoked")
	}
	if !bytes.Equal(rec.DER, requester.Raw) {
		return nil, pki.Errorf(pki.EBadRequest, "the signer certificate is not the certificate this CA issued with serial %s", rec.SerialHex)
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
