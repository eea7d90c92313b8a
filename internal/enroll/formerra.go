package enroll

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"math/big"
	"slices"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// maxFormerRAPages bounds the pages of RA records FormerRA reads for a
// subjectKeyIdentifier: an inventory holds a few RA certificates per CA,
// and a request must not make the server read without end.
const maxFormerRAPages = 5

// FormerRARecord is what FormerRA knows of a SCEP RA certificate of ours
// that no loaded RA is: its inventory record, and what became of the
// issuing CA that issued it, which the record alone does not tell.
type FormerRARecord struct {
	pki.Certificate
	// CADiscarded: its issuing CA was a next CA discarded before its
	// switch (ca rollover --discard), which revoked it
	// (cessationOfOperation) with every certificate that CA had issued.
	CADiscarded bool
	// CARevoked: the root's CRL lists its issuing CA, whose RAs decrypt
	// no more (their keys may be destroyed too).
	CARevoked bool
}

// FormerRA is the inventory record of the SCEP RA certificate of ours that
// a request envelope names as its recipient, by issuer and serial
// (rawIssuer and serial) or else by subjectKeyID, with what became of its
// issuing CA: found false when the inventory lists no RA certificate of
// that name. The SCEP handler asks it only about an envelope no loaded RA
// is addressed to (one revoked and replaced, or retired, or discarded or
// revoked with its CA, or none of ours), to say so: a rare path, which
// reads the store.
func (s *Service) FormerRA(ctx context.Context, rawIssuer []byte, serial *big.Int, subjectKeyID []byte) (ra FormerRARecord, found bool, err error) {
	rec, found, err := s.formerRA(ctx, rawIssuer, serial, subjectKeyID)
	if err != nil || !found {
		return FormerRARecord{}, false, err
	}
	ra = FormerRARecord{Certificate: rec}
	_, ra.CARevoked = s.authority.RevokedIssuerReason(rec.IssuerID)
	if rec.Status == pki.StatusRevoked && rec.RevokeReason == pki.ReasonCessationOfOperation {
		// A discard revokes for cessationOfOperation; the store says
		// whether this one was a discard's.
		discarded, err := s.store.DiscardedCAGenerations(ctx)
		if err != nil {
			return FormerRARecord{}, false, fmt.Errorf("enroll: looking up whether the issuing CA %s of the RA certificate the request is encrypted to was discarded: %w", rec.IssuerID, err)
		}
		ra.CADiscarded = slices.ContainsFunc(discarded, func(d store.DiscardedCAGeneration) bool { return d.IssuerID == rec.IssuerID })
	}
	return ra, true, nil
}

// formerRA is FormerRA's inventory record.
func (s *Service) formerRA(ctx context.Context, rawIssuer []byte, serial *big.Int, subjectKeyID []byte) (rec pki.Certificate, found bool, err error) {
	matches := func(c pki.Certificate) bool {
		if c.Profile != RAProfileName {
			return false
		}
		cert, err := x509.ParseCertificate(c.DER)
		if err != nil {
			return false
		}
		if serial != nil {
			// As GetCert matches an issuer: a client may re-encode the name.
			return cert.SerialNumber.Cmp(serial) == 0 && csr.SameName(cert.RawIssuer, rawIssuer)
		}
		return len(subjectKeyID) > 0 && bytes.Equal(cert.SubjectKeyId, subjectKeyID)
	}
	if serial != nil {
		if serial.Sign() < 0 {
			return pki.Certificate{}, false, nil
		}
		recs, err := s.store.CertificatesBySerial(ctx, serial.Text(16))
		if err != nil {
			return pki.Certificate{}, false, fmt.Errorf("enroll: looking up the certificate %s the request is encrypted to: %w", serial.Text(16), err)
		}
		for _, c := range recs {
			if matches(c) {
				return c, true, nil
			}
		}
		return pki.Certificate{}, false, nil
	}
	if len(subjectKeyID) == 0 {
		return pki.Certificate{}, false, nil
	}
	f := store.CertFilter{Profile: RAProfileName, Limit: 1000}
	for range maxFormerRAPages {
		recs, next, err := s.store.ListCertificates(ctx, f)
		if err != nil {
			return pki.Certificate{}, false, fmt.Errorf("enroll: looking up the RA certificate the request is encrypted to: %w", err)
		}
		for _, c := range recs {
			if matches(c) {
				return c, true, nil
			}
		}
		if next == "" {
			break
		}
		f.Cursor = next
	}
	return pki.Certificate{}, false, nil
}
