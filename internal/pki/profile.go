package pki

import (
	"crypto/x509"
	"time"
)

// KeyPolicy lists the subject key types a profile accepts.
type KeyPolicy struct {
	RSAMinBits int      // 0 means RSA is not allowed
	RSAMaxBits int      // upper bound against resource abuse
	ECCurves   []string // "P-256", "P-384"
}

// DefaultKeyPolicy: RSA 2048..8192 and the NIST curves P-256/P-384.
var DefaultKeyPolicy = KeyPolicy{RSAMinBits: 2048, RSAMaxBits: 8192, ECCurves: []string{"P-256", "P-384"}}

// Profile is the server-side rule set that decides what goes into a
// certificate. CSR values are only inputs to it.
type Profile struct {
	Name        string
	Validity    time.Duration
	Backdate    time.Duration // NotBefore = now - Backdate, for clock skew on devices
	KeyUsage    x509.KeyUsage
	ExtKeyUsage []x509.ExtKeyUsage
	Keys        KeyPolicy
	// ChallengeMode is "static", "onetime" or "any" (static or one-time).
	ChallengeMode string
	MaxSANs       int
	// CRLURLs and OCSPURLs go into every certificate (CDP and AIA) once set.
	CRLURLs  []string
	OCSPURLs []string
	// IssuerURLs go into AIA caIssuers.
	IssuerURLs []string
}

// DefaultProfile is what a zero-config server issues: one-year device
// certificates for TLS client authentication. RFC 5280 §4.2.1.12 allows only
// digitalSignature and/or keyAgreement beside clientAuth, so no
// keyEncipherment (the pre-issuance lint holds us to that).
func DefaultProfile() Profile {
	return Profile{
		Name:          "default",
		Validity:      365 * 24 * time.Hour,
		Backdate:      5 * time.Minute,
		KeyUsage:      x509.KeyUsageDigitalSignature,
		ExtKeyUsage:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		Keys:          DefaultKeyPolicy,
		ChallengeMode: "any",
		MaxSANs:       32,
	}
}
