package cms

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// SignOptions are the per-call choices for Sign.
type SignOptions struct {
	// Digest is SHA-1, SHA-256, SHA-384 or SHA-512; zero means SHA-256.
	Digest crypto.Hash
	// ExtraCertificates are added to the certificates field after the
	// signer certificate (which is always included).
	ExtraCertificates []*x509.Certificate
	// RSAEncryptionOID writes signatureAlgorithm rsaEncryption instead of
	// shaXWithRSAEncryption for RSA signers (strongSwan 5.9 needs it).
	RSAEncryptionOID bool
	// SigningTime, if non-zero, is added as the signingTime attribute.
	SigningTime time.Time
	// ContentType is the eContentType; nil means id-data. (EST's
	// server-generated keys are id-ct-KP-aKeyPackage.)
	ContentType asn1.ObjectIdentifier
}

// Sign returns a DER ContentInfo(SignedData) encapsulating content as
// id-data (or opts.ContentType), signed by key (RSA PKCS #1 v1.5 or ECDSA) whose certificate is
// cert. Signed attributes are content-type, message-digest, signing-time (if
// requested) and attrs.
func Sign(content []byte, cert *x509.Certificate, key crypto.Signer, attrs []Attribute, opts SignOptions) ([]byte, error) {
	if cert == nil || key == nil {
		return nil, errors.New("cms: Sign needs a certificate and a key")
	}
	if err := checkParsed(cert); err != nil {
		return nil, err
	}
	h := opts.Digest
	if h == 0 {
		h = crypto.SHA256
	}
	digestAlg, err := digestOID(h)
	if err != nil {
		return nil, err
	}
	pub := key.Public()
	if k, ok := pub.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(cert.PublicKey) {
		return nil, errors.New("cms: signing key does not match the signer certificate")
	}
	var sigAlg asn1.ObjectIdentifier
	sigNullParams := false
	switch pub.(type) {
	case *rsa.PublicKey:
		sigNullParams = true
		sigAlg = map[crypto.Hash]asn1.ObjectIdentifier{
			crypto.SHA1: oidSHA1WithRSA, crypto.SHA256: oidSHA256WithRSA,
			crypto.SHA384: oidSHA384WithRSA, crypto.SHA512: oidSHA512WithRSA,
		}[h]
		if opts.RSAEncryptionOID {
			sigAlg = oidRSAEncryption
		}
	case *ecdsa.PublicKey:
		sigAlg = map[crypto.Hash]asn1.ObjectIdentifier{
			crypto.SHA1: oidECDSAWithSHA1, crypto.SHA256: oidECDSAWithSHA256,
			crypto.SHA384: oidECDSAWithSHA384, crypto.SHA512: oidECDSAWithSHA512,
		}[h]
	default:
		return nil, fmt.Errorf("%w: signer key type %T (RSA or ECDSA only)", ErrUnsupportedAlgorithm, pub)
	}

	ctype, version := oidData, int64(1)
	if opts.ContentType != nil && !opts.ContentType.Equal(oidData) {
		ctype, version = opts.ContentType, 3 // RFC 5652 §5.1
	}
	encAttrs, err := encodeSignedAttrs(ctype, digest(h, content), attrs, opts.SigningTime)
	if err != nil {
		return nil, err
	}
	// The signature covers the attributes encoded as a DER SET OF.
	var sb cryptobyte.Builder
	sb.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { addAll(b, encAttrs) })
	set, err := finish(&sb)
	if err != nil {
		return nil, err
	}
	sig, err := key.Sign(rand.Reader, digest(h, set), h)
	if err != nil {
		return nil, fmt.Errorf("cms: signing: %w", err)
	}

	certs := []*x509.Certificate{cert}
	for _, c := range opts.ExtraCertificates {
		if err := checkParsed(c); err != nil {
			return nil, err
		}
		if !c.Equal(cert) {
			certs = append(certs, c)
		}
	}

	size := len(content) + len(sig)
	for _, c := range certs {
		size += len(c.Raw)
	}
	for _, a := range encAttrs {
		size += len(a)
	}
	b := sizedBuilder(size)
	addContentInfo(b, oidSignedData, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1Int64(version)
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { addAlgorithm(b, digestAlg, false) })
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(ctype)
				b.AddASN1(tagExplicit0, func(b *cryptobyte.Builder) { b.AddASN1OctetString(content) })
			})
			addCertificates(b, certs)
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1Int64(1)
					addIssuerAndSerial(b, cert)
					addAlgorithm(b, digestAlg, false)
					b.AddASN1(tagExplicit0, func(b *cryptobyte.Builder) { addAll(b, encAttrs) })
					addAlgorithm(b, sigAlg, sigNullParams)
					b.AddASN1OctetString(sig)
				})
			})
		})
	})
	return finish(b)
}

// encodeSignedAttrs returns the DER Attribute encodings in SET OF order.
func encodeSignedAttrs(ctype asn1.ObjectIdentifier, md []byte, attrs []Attribute, signingTime time.Time) ([][]byte, error) {
	var out [][]byte
	add := func(oid asn1.ObjectIdentifier, value func(*cryptobyte.Builder)) error {
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oid)
			b.AddASN1(cbasn1.SET, value)
		})
		enc, err := b.Bytes()
		if err != nil {
			return fmt.Errorf("cms: encoding attribute %v: %w", oid, err)
		}
		out = append(out, enc)
		return nil
	}
	if err := add(oidContentType, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(ctype) }); err != nil {
		return nil, err
	}
	if err := add(oidMessageDigest, func(b *cryptobyte.Builder) { b.AddASN1OctetString(md) }); err != nil {
		return nil, err
	}
	if !signingTime.IsZero() {
		t := signingTime.UTC()
		err := add(oidSigningTime, func(b *cryptobyte.Builder) {
			// RFC 5652 §11.3: UTCTime for 1950-2049, GeneralizedTime otherwise.
			if t.Year() >= 1950 && t.Year() < 2050 {
				b.AddASN1UTCTime(t)
			} else {
				b.AddASN1GeneralizedTime(t)
			}
		})
		if err != nil {
			return nil, err
		}
	}
	for _, a := range attrs {
		if a.Type.Equal(oidContentType) || a.Type.Equal(oidMessageDigest) || a.Type.Equal(oidSigningTime) {
			return nil, fmt.Errorf("cms: attribute %v is set by Sign itself", a.Type)
		}
		if len(a.Values) == 0 {
			return nil, fmt.Errorf("cms: attribute %v has no value", a.Type)
		}
		var values [][]byte
		for _, v := range a.Values {
			enc, err := asn1.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("cms: encoding attribute %v: %w", a.Type, err)
			}
			values = append(values, enc)
		}
		slices.SortFunc(values, bytes.Compare) // DER SET OF order
		if err := add(a.Type, func(b *cryptobyte.Builder) { addAll(b, values) }); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(out, bytes.Compare)
	return out, nil
}

// DegenerateCertificates returns a DER certs-only SignedData (no content, no
// signers) carrying certs in the given order, as GetCACert, CertRep and
// EST /cacerts use.
func DegenerateCertificates(certs []*x509.Certificate) ([]byte, error) {
	for _, c := range certs {
		if err := checkParsed(c); err != nil {
			return nil, err
		}
	}
	return degenerate(certs, nil)
}

// DegenerateCRLs returns a DER certs-only SignedData (no content, no
// signers) carrying CRLs (DER) in its crls field, as SCEP GetCRL answers,
// and the certificates of their issuers when given: a client whose copy of
// the CA certificates predates a CA switch can then check a CRL of the
// previous CA.
func DegenerateCRLs(crls [][]byte, issuers ...*x509.Certificate) ([]byte, error) {
	if len(crls) == 0 {
		return nil, errors.New("cms: no CRL")
	}
	for _, c := range issuers {
		if err := checkParsed(c); err != nil {
			return nil, err
		}
	}
	return degenerate(issuers, crls)
}

// degenerate builds a SignedData with no content and no signers.
func degenerate(certs []*x509.Certificate, crls [][]byte) ([]byte, error) {
	var b cryptobyte.Builder
	addContentInfo(&b, oidSignedData, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1Int64(1)
			b.AddASN1(cbasn1.SET, func(*cryptobyte.Builder) {})
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidData) })
			addCertificates(b, certs)
			if len(crls) > 0 {
				b.AddASN1(tagExplicit1, func(b *cryptobyte.Builder) {
					for _, c := range crls {
						b.AddBytes(c)
					}
				})
			}
			b.AddASN1(cbasn1.SET, func(*cryptobyte.Builder) {})
		})
	})
	return finish(&b)
}

// Encoding helpers.

// sizedBuilder returns a builder whose buffer holds payload bytes of
// content and the headers around them: a message's bytes are mostly a few
// large fields (certificates, ciphertext, signature), so the buffer is
// allocated once instead of doubling its way up through every size below.
func sizedBuilder(payload int) *cryptobyte.Builder {
	return cryptobyte.NewBuilder(make([]byte, 0, payload+builderHeaders))
}

// builderHeaders is room for the tags, lengths, OIDs and small fields of a
// ContentInfo beyond its payload (about 200 bytes in a CertRep's).
const builderHeaders = 512

func addContentInfo(b *cryptobyte.Builder, ct asn1.ObjectIdentifier, content func(*cryptobyte.Builder)) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(ct)
		b.AddASN1(tagExplicit0, content)
	})
}

// addCertificates writes the [0] IMPLICIT certificates field, keeping the
// caller's order (clients read meaning into it); nothing if certs is empty.
func addCertificates(b *cryptobyte.Builder, certs []*x509.Certificate) {
	if len(certs) == 0 {
		return
	}
	b.AddASN1(tagExplicit0, func(b *cryptobyte.Builder) {
		for _, c := range certs {
			b.AddBytes(c.Raw)
		}
	})
}

// checkParsed rejects certificates we cannot name in a sid/rid.
func checkParsed(c *x509.Certificate) error {
	if c == nil || len(c.Raw) == 0 || len(c.RawIssuer) == 0 || c.SerialNumber == nil {
		return errors.New("cms: certificate must come from x509.ParseCertificate")
	}
	return nil
}

func addIssuerAndSerial(b *cryptobyte.Builder, cert *x509.Certificate) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(cert.RawIssuer)
		b.AddASN1BigInt(cert.SerialNumber)
	})
}

func addAlgorithm(b *cryptobyte.Builder, oid asn1.ObjectIdentifier, nullParams bool) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if nullParams {
			b.AddASN1NULL()
		}
	})
}

func addAll(b *cryptobyte.Builder, elems [][]byte) {
	for _, e := range elems {
		b.AddBytes(e)
	}
}

func finish(b *cryptobyte.Builder) ([]byte, error) {
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("cms: encoding: %w", err)
	}
	return out, nil
}
