package ocsp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Status is a certificate's status in a response.
type Status int

const (
	Good Status = iota
	Revoked
	Unknown
)

func (s Status) String() string {
	switch s {
	case Good:
		return "good"
	case Revoked:
		return "revoked"
	case Unknown:
		return "unknown"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// SingleResponse is the answer about one certificate.
type SingleResponse struct {
	CertID     CertID // echoed as the client sent it (CertID.Raw)
	Status     Status
	RevokedAt  time.Time // Revoked only
	Reason     int       // Revoked only; 0 (unspecified) is left out
	ThisUpdate time.Time
	NextUpdate time.Time
}

// Signer signs responses: a delegated responder certificate and its key
// (or the issuing CA itself).
type Signer struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// IncludeCert puts Cert in the response, which a delegated responder
	// must do so the client can check it chains to the CA.
	IncludeCert bool
}

// Error responses (RFC 6960 §4.2.1): an OCSPResponse with only a status.
var (
	MalformedRequestResponse = []byte{0x30, 0x03, 0x0a, 0x01, 0x01}
	InternalErrorResponse    = []byte{0x30, 0x03, 0x0a, 0x01, 0x02}
	TryLaterResponse         = []byte{0x30, 0x03, 0x0a, 0x01, 0x03}
	UnauthorizedResponse     = []byte{0x30, 0x03, 0x0a, 0x01, 0x06}
)

var (
	oidBasic         = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}
	oidECDSAWithSHA2 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA3 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA5 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidSHA256WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
)

// signatureAlgorithm picks the response signature for the responder key:
// ECDSA with the curve's hash, or SHA-256 with RSA (PKCS #1 v1.5).
func signatureAlgorithm(pub crypto.PublicKey) (asn1.ObjectIdentifier, crypto.Hash, bool, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return oidECDSAWithSHA2, crypto.SHA256, false, nil
		case elliptic.P384():
			return oidECDSAWithSHA3, crypto.SHA384, false, nil
		case elliptic.P521():
			return oidECDSAWithSHA5, crypto.SHA512, false, nil
		}
	case *rsa.PublicKey:
		return oidSHA256WithRSA, crypto.SHA256, true, nil
	}
	return nil, 0, false, fmt.Errorf("ocsp: unsupported responder key %T", pub)
}

// responderKeyHash is the byKey ResponderID: SHA-1 of the responder's
// subjectPublicKey BIT STRING value (RFC 6960 §4.2.1).
func responderKeyHash(cert *x509.Certificate) ([]byte, error) {
	key, err := publicKeyBits(cert)
	if err != nil {
		return nil, fmt.Errorf("ocsp: responder certificate: %w", err)
	}
	sum := sha1.Sum(key)
	return sum[:], nil
}

// BuildResponse signs a successful BasicOCSPResponse:
//
//	ResponseData ::= SEQUENCE { responderID byKey [2] EXPLICIT KeyHash, producedAt GeneralizedTime,
//	                            responses SEQUENCE OF SingleResponse, responseExtensions [1] EXPLICIT Extensions OPTIONAL }
//
// with the nonce, when there is one, echoed in responseExtensions.
func BuildResponse(responses []SingleResponse, producedAt time.Time, nonce []byte, s Signer) ([]byte, error) {
	if len(responses) == 0 {
		return nil, errors.New("ocsp: no responses")
	}
	sigOID, hash, rsaNull, err := signatureAlgorithm(s.Key.Public())
	if err != nil {
		return nil, err
	}
	keyHash, err := responderKeyHash(s.Cert)
	if err != nil {
		return nil, err
	}
	var tbs cryptobyte.Builder
	tbs.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(tag2, func(b *cryptobyte.Builder) { b.AddASN1OctetString(keyHash) })
		b.AddASN1GeneralizedTime(producedAt.UTC().Truncate(time.Second))
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			for _, r := range responses {
				addSingle(b, r)
			}
		})
		if nonce != nil {
			b.AddASN1(tag1, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(oidNonce)
						b.AddASN1OctetString(nonce)
					})
				})
			})
		}
	})
	tbsDER, err := tbs.Bytes()
	if err != nil {
		return nil, fmt.Errorf("ocsp: encode response data: %w", err)
	}
	h := hash.New()
	h.Write(tbsDER)
	sig, err := s.Key.Sign(rand.Reader, h.Sum(nil), hash)
	if err != nil {
		return nil, fmt.Errorf("ocsp: sign response: %w", err)
	}
	var basic cryptobyte.Builder
	basic.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbsDER)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(sigOID)
			if rsaNull {
				b.AddASN1NULL()
			}
		})
		b.AddASN1BitString(sig)
		if s.IncludeCert {
			b.AddASN1(tag0, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(s.Cert.Raw) })
			})
		}
	})
	basicDER, err := basic.Bytes()
	if err != nil {
		return nil, fmt.Errorf("ocsp: encode basic response: %w", err)
	}
	var out cryptobyte.Builder
	out.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Enum(0) // successful
		b.AddASN1(tag0, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidBasic)
				b.AddASN1OctetString(basicDER)
			})
		})
	})
	return out.Bytes()
}

// Implicit tags of CertStatus.
var (
	tagGood    = cbasn1.Tag(0).ContextSpecific()
	tagRevoked = cbasn1.Tag(1).Constructed().ContextSpecific()
	tagUnknown = cbasn1.Tag(2).ContextSpecific()
)

func addSingle(b *cryptobyte.Builder, r SingleResponse) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(r.CertID.Raw)
		switch r.Status {
		case Good:
			b.AddASN1(tagGood, func(*cryptobyte.Builder) {})
		case Revoked:
			b.AddASN1(tagRevoked, func(b *cryptobyte.Builder) {
				b.AddASN1GeneralizedTime(r.RevokedAt.UTC().Truncate(time.Second))
				if r.Reason != 0 {
					b.AddASN1(tag0, func(b *cryptobyte.Builder) { b.AddASN1Enum(int64(r.Reason)) })
				}
			})
		default:
			b.AddASN1(tagUnknown, func(*cryptobyte.Builder) {})
		}
		b.AddASN1GeneralizedTime(r.ThisUpdate.UTC().Truncate(time.Second))
		if !r.NextUpdate.IsZero() {
			b.AddASN1(tag0, func(b *cryptobyte.Builder) {
				b.AddASN1GeneralizedTime(r.NextUpdate.UTC().Truncate(time.Second))
			})
		}
	})
}
