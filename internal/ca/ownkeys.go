package ca

import (
	"crypto"
	"crypto/x509"

	"github.com/scepter/scepter/internal/pki"
)

// OwnKeyRole tells whether pub is the key of
// one of this CA's own certificates: the root's, an issuing CA's (current,
// next or previous, the root's CRL revoked it or not, and every
// certificate of their chains), an RA's (current, next, renewed or a
// previous CA's). role names it for a refusal ("the root CA's key").
//
// A CA must never certify its own keys as an end entity's: that
// certificate would make any signature of a CA key one a relying party
// may take as the client's, and its revocation for keyCompromise would
// mark the CA's key compromised. Keys compare as keys (modulus and
// exponent, curve and point), whatever the encoding of the request. The
// look is a comparison with the dozen or so certificates of the issuer set
// in effect (Reload and SetNext replace it): no store read.
func (a *Authority) OwnKeyRole(pub crypto.PublicKey) (role string, ok bool) {
	k, comparable := pub.(interface{ Equal(crypto.PublicKey) bool })
	if !comparable {
		return "", false
	}
	same := func(c *x509.Certificate) bool {
		return c != nil && c.PublicKey != nil && k.Equal(c.PublicKey)
	}
	if same(a.Root) {
		return "the root CA's key", true
	}
	s := a.state.Load()
	for _, i := range s.all {
		if same(i.Cert) {
			return "the key of the issuing CA " + i.Cert.Subject.String(), true
		}
		for _, c := range i.Chain {
			if same(c) {
				return "the key of the CA " + c.Subject.String(), true
			}
		}
	}
	ras := append([]*x509.Certificate{raCert(s.currentRA), raCert(s.nextRA)}, raCerts(s.retiredRAs)...)
	ras = append(ras, raCerts(s.previousRAs)...)
	for _, c := range ras {
		if same(c) {
			return "the SCEP RA's key (" + c.Subject.String() + ")", true
		}
	}
	return "", false
}

func raCert(ra *pki.RA) *x509.Certificate {
	if ra == nil {
		return nil
	}
	return ra.Cert
}

func raCerts(ras []*pki.RA) []*x509.Certificate {
	out := make([]*x509.Certificate, 0, len(ras))
	for _, ra := range ras {
		out = append(out, raCert(ra))
	}
	return out
}
