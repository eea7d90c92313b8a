// Package ca owns scepter's keys and signing: the root and issuing CA, the
// SCEP registration authority (RA), and the issuance pipeline (check key and
// names, build from the profile, lint with a throwaway key, reserve the
// serial, sign). It knows nothing about HTTP or the store's implementation.
package ca

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
)

// RA is the SCEP registration authority: it signs CertReps and decrypts the
// envelopes clients encrypt to its certificate.
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

// Decrypter returns the RA key as a crypto.Decrypter (always possible for an
// RA built by this package).
func (r *RA) Decrypter() crypto.Decrypter {
	d, _ := r.Key.(crypto.Decrypter)
	return d
}

// Authority is the loaded CA: the root, the issuing CA(s) and the RA.
//
// Issuer is the current issuing CA. Every issuer that may still sign for
// renewal or revocation is reachable through IssuerByID and Issuers, so a
// CA rollover (a next issuing CA and RA beside the current ones, old issuers
// kept) can be added without changing callers that look issuers up by the
// IssuerID stored with each certificate.
type Authority struct {
	Root   *x509.Certificate
	Issuer *Issuer
	RA     *RA

	issuers []*Issuer // current first
	// rootSigner is the root key when it is loaded: nothing is signed with
	// it after creation today; a CA rollover will sign the next issuing CA.
	rootSigner crypto.Signer
}

// NewAuthority assembles an Authority from parts that are already loaded
// (LoadOrCreate is the usual way; tests build CAs in memory). issuer's chain
// must end at root; extra are older issuers still accepted by IssuerByID.
func NewAuthority(root *x509.Certificate, issuer *Issuer, ra *RA, extra ...*Issuer) (*Authority, error) {
	if root == nil || issuer == nil || ra == nil {
		return nil, errors.New("ca: an authority needs a root, an issuer and an RA")
	}
	if last := issuer.Chain[len(issuer.Chain)-1]; !last.Equal(root) {
		return nil, fmt.Errorf("ca: the chain of issuer %q does not end at the root", issuer.Cert.Subject)
	}
	if ra.Cert == nil || ra.Key == nil {
		return nil, errors.New("ca: the RA needs a certificate and a key")
	}
	if _, ok := ra.Key.(crypto.Decrypter); !ok {
		return nil, errors.New("ca: the RA key cannot decrypt (it must be an RSA key implementing crypto.Decrypter)")
	}
	a := &Authority{Root: root, Issuer: issuer, RA: ra, issuers: []*Issuer{issuer}}
	for _, e := range extra {
		if e != nil && e.ID != issuer.ID {
			a.issuers = append(a.issuers, e)
		}
	}
	return a, nil
}

// IssuerByID returns the issuer whose IssuerID (hex SHA-256 of its
// certificate) is id.
func (a *Authority) IssuerByID(id string) (*Issuer, bool) {
	for _, i := range a.issuers {
		if i.ID == id {
			return i, true
		}
	}
	return nil, false
}

// Issuers returns every issuer, the current one first.
func (a *Authority) Issuers() []*Issuer { return slices.Clone(a.issuers) }

// RootFingerprint is "sha256:" and the lower-case hex SHA-256 of the root
// certificate's DER, the value clients pin.
func (a *Authority) RootFingerprint() string {
	return Fingerprint(a.Root)
}

// Fingerprint is "sha256:" and the lower-case hex SHA-256 of c's DER.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}
