package pki

import (
	"crypto"
	"crypto/x509"
)

// RA is the SCEP registration authority: the certificate clients encrypt
// their requests to and that signs the replies, with its key.
type RA struct {
	Cert *x509.Certificate
	// Key is an RSA key; it also implements crypto.Decrypter (see Decrypter).
	Key crypto.Signer
	// Chain is the RA certificate, the issuing CA, the root; when IsCA the
	// RA certificate is the issuing CA's, so it is just the issuer's chain.
	Chain []*x509.Certificate
	// IsCA is true when the issuing CA itself acts as RA (RA mode "ca").
	IsCA bool
}

// Decrypter returns the RA key as a crypto.Decrypter, or nil when it cannot
// decrypt (an RA built by package ca always can).
func (r *RA) Decrypter() crypto.Decrypter {
	d, _ := r.Key.(crypto.Decrypter)
	return d
}
