package store

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"

	"github.com/scepter/scepter/internal/pki"
)

// RequestKeys says which of a transaction's requests RequestByTransaction
// looks at. Transaction IDs are no secret (clients derive them from the
// public key), so a transaction is the pair of its ID and the requester's
// key: another key's request under the same ID is another transaction.
// The zero value looks at every request.
type RequestKeys struct {
	// CSR matches a request whose CSR holds this key (a
	// SubjectPublicKeyInfo).
	CSR []byte
	// Client matches a request authenticated by a certificate (a
	// renewal's old one) that holds this key.
	Client []byte
}

// Any: k looks at every request.
func (k RequestKeys) Any() bool { return k.CSR == nil && k.Client == nil }

// Match reports whether r was made with one of k's keys, compared as
// KeyHash compares keys; the zero k matches every request.
func (k RequestKeys) Match(r *pki.EnrollmentRequest) bool {
	if k.Any() {
		return true
	}
	if k.CSR != nil && bytes.Equal(RequestKeyHash(r.CSR), KeyHash(k.CSR)) {
		return true
	}
	if k.Client == nil || r.ClientCert == nil {
		return false
	}
	h, err := CertKeyHash(r.ClientCert)
	return err == nil && bytes.Equal(h, KeyHash(k.Client))
}

// RequestKeyHash is KeyHash of the key of a held request's CSR (DER): what
// its transaction is keyed by, with its profile and transaction ID. A CSR
// that does not parse (none is held, but a test may store one) is hashed
// whole, so that copies of it still share their key.
func RequestKeyHash(csrDER []byte) []byte {
	if c, err := x509.ParseCertificateRequest(csrDER); err == nil {
		return KeyHash(c.RawSubjectPublicKeyInfo)
	}
	h := sha256.Sum256(csrDER)
	return h[:]
}

// RequestClientKeyHash is CertKeyHash of a held request's client
// certificate, nil for none (or one without a key).
func RequestClientKeyHash(certDER []byte) []byte {
	if certDER == nil {
		return nil
	}
	h, err := CertKeyHash(certDER)
	if err != nil {
		return nil
	}
	return h
}
