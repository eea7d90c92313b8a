// Package cms implements the subset of the Cryptographic Message Syntax
// (RFC 5652) that SCEP (RFC 8894) and EST (RFC 7030) need: SignedData with
// signed attributes, certs-only ("degenerate") SignedData, and EnvelopedData
// with RSA key transport (PKCS #1 v1.5 and OAEP) and password recipients
// (RFC 3211).
//
// Every parser here reads untrusted bytes: inputs are size- and depth-bounded,
// BER is normalised to DER before parsing, and malformed input yields an error
// wrapping ErrMalformed, never a panic. Keys are crypto.Signer and
// crypto.Decrypter so that HSM-held keys work. There is no package-level
// configuration: every choice (cipher, digest, key transport) is made per call.
//
// Order matters for callers handling untrusted messages: verify the
// SignedData (Verify) before decrypting the EnvelopedData it carries, and
// answer every decryption failure, including "decrypted but not a valid
// CSR", identically: EnvelopedData is unauthenticated, so any difference is
// a padding oracle.
package cms

import (
	"crypto"
	_ "crypto/sha1" // register the digests crypto.Hash.New needs
	_ "crypto/sha256"
	_ "crypto/sha512"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Sentinel errors. Errors returned by this package wrap one of them with %w;
// the wrapped detail is meant for logs only, never for the peer.
var (
	// ErrUnsupportedAlgorithm: the message uses an algorithm or key type this
	// package does not implement or refuses (e.g. MD5). SCEP maps it to badAlg.
	ErrUnsupportedAlgorithm = errors.New("cms: unsupported algorithm")
	// ErrVerification: a signature, content-type or message-digest check
	// failed. SCEP maps it to badMessageCheck.
	ErrVerification = errors.New("cms: verification failed")
	// ErrDecryption: decryption failed. It is returned unwrapped and without
	// detail so that no decryption failure can be told apart from another
	// (padding oracle defence).
	ErrDecryption = errors.New("cms: decryption failed")
	// ErrMalformed: the input is not a well-formed CMS structure or exceeds a
	// size limit.
	ErrMalformed = errors.New("cms: malformed message")
	// ErrNoRecipient: the EnvelopedData holds no recipient usable with the
	// given certificate or password. Decided from public data only.
	ErrNoRecipient = errors.New("cms: no matching recipient")
)

// SignedAttrsError is signed attributes that break RFC 5652's rules (one
// of contentType, messageDigest or signingTime missing, repeated,
// multi-valued or of the wrong type, or not matching the content), found
// before any signature is checked: the signature may well be good. It
// wraps ErrVerification. Problem names the attribute and what is wrong
// with it, from public data alone, so a peer may be told it.
type SignedAttrsError struct {
	Problem string
}

func (e *SignedAttrsError) Error() string { return ErrVerification.Error() + ": " + e.Problem }

func (e *SignedAttrsError) Unwrap() error { return ErrVerification }

func signedAttrsError(format string, args ...any) error {
	return &SignedAttrsError{Problem: fmt.Sprintf(format, args...)}
}

// Limits applied to untrusted input. They are far above what SCEP and EST
// messages contain (a few KiB, a handful of certificates) and exist so that a
// hostile message cannot make us allocate or loop without bound.
const (
	MaxMessageSize = 2 << 20 // bytes of one encoded message
	maxDepth       = 40      // nesting of constructed BER elements
	maxCerts       = 64
	maxCRLs        = 16
	maxSigners     = 8
	maxDigestAlgs  = 16
	maxAttributes  = 64
	maxAttrValues  = 16
	maxRecipients  = 32
	maxPBKDF2Iter  = 1 << 20 // ~0.3 s of HMAC-SHA1 on one core
	maxSaltLen     = 1024
)

// Exported OIDs for the SCEP/EST layers. The package itself uses private
// copies so that a caller modifying these slices cannot change what we encode.
var (
	OIDData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	OIDSignedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	OIDEnvelopedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}
	// OIDAuthEnvelopedData (RFC 5083) is what AES-GCM content uses.
	OIDAuthEnvelopedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 23}
	OIDContentType       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	OIDMessageDigest     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	OIDSigningTime       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}
)

var (
	oidData              = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidEnvelopedData     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}
	oidAuthEnvelopedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 23}
	oidContentType       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidSigningTime       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}

	oidMD5    = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 5}
	oidSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}

	oidRSAEncryption   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidMD5WithRSA      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 4}
	oidSHA1WithRSA     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	oidSHA256WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidRSASSAPSS       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidRSAESOAEP       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7}
	oidMGF1            = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidPSpecified      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 9}
	oidECPublicKey     = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidECDSAWithSHA1   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}

	oidDESCBC    = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 7}
	oidDES3CBC   = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}
	oidAES128CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidAES128GCM = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 6}
	oidAES256GCM = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 46}

	oidPWRIKEK        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 3, 9}
	oidPBKDF2         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACWithSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}
)

// Attribute is a CMS attribute. Values are kept raw; callers decode them.
type Attribute struct {
	Type   asn1.ObjectIdentifier
	Values []asn1.RawValue
}

// IssuerAndSerial identifies a certificate by issuer name (DER, as encoded
// in the message) and serial number.
type IssuerAndSerial struct {
	RawIssuer []byte
	Serial    *big.Int
}

// NewAttribute returns an attribute whose single value is asn1.Marshal(value).
// Pass an asn1.RawValue to control the tag exactly (e.g. PrintableString).
func NewAttribute(oid asn1.ObjectIdentifier, value any) (Attribute, error) {
	der, err := asn1.Marshal(value)
	if err != nil {
		return Attribute{}, fmt.Errorf("cms: encoding attribute %v: %w", oid, err)
	}
	rv, err := rawValue(der)
	if err != nil {
		return Attribute{}, fmt.Errorf("cms: encoding attribute %v: %w", oid, err)
	}
	return Attribute{Type: cloneOID(oid), Values: []asn1.RawValue{rv}}, nil
}

func cloneOID(oid asn1.ObjectIdentifier) asn1.ObjectIdentifier {
	if oid == nil {
		return nil
	}
	return append(asn1.ObjectIdentifier(nil), oid...)
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// rawValue turns one DER element (single-byte tag, as cryptobyte requires)
// into an asn1.RawValue that re-marshals to exactly the same bytes.
func rawValue(der []byte) (asn1.RawValue, error) {
	s := cryptobyte.String(der)
	var content cryptobyte.String
	var tag cbasn1.Tag
	if !s.ReadAnyASN1(&content, &tag) || !s.Empty() {
		return asn1.RawValue{}, malformed("bad element")
	}
	full := clone(der)
	return asn1.RawValue{
		Class:      int(tag >> 6),
		Tag:        int(tag & 0x1f),
		IsCompound: tag&0x20 != 0,
		Bytes:      full[len(der)-len(content):],
		FullBytes:  full,
	}, nil
}

// hashForDigestOID maps a digest AlgorithmIdentifier OID to a hash. MD5 and
// anything unknown are refused.
func hashForDigestOID(oid asn1.ObjectIdentifier) (crypto.Hash, error) {
	switch {
	case oid.Equal(oidSHA1):
		return crypto.SHA1, nil
	case oid.Equal(oidSHA256):
		return crypto.SHA256, nil
	case oid.Equal(oidSHA384):
		return crypto.SHA384, nil
	case oid.Equal(oidSHA512):
		return crypto.SHA512, nil
	case oid.Equal(oidMD5):
		return 0, fmt.Errorf("%w: MD5 digest refused", ErrUnsupportedAlgorithm)
	}
	return 0, fmt.Errorf("%w: digest algorithm %v", ErrUnsupportedAlgorithm, oid)
}

func digestOID(h crypto.Hash) (asn1.ObjectIdentifier, error) {
	switch h {
	case crypto.SHA1:
		return oidSHA1, nil
	case crypto.SHA256:
		return oidSHA256, nil
	case crypto.SHA384:
		return oidSHA384, nil
	case crypto.SHA512:
		return oidSHA512, nil
	}
	return nil, fmt.Errorf("%w: digest %v", ErrUnsupportedAlgorithm, h)
}

// hmacOID names the PBKDF2 PRF for h; nil if h is not one we support.
func hmacOID(h crypto.Hash) asn1.ObjectIdentifier {
	switch h {
	case crypto.SHA1:
		return oidHMACWithSHA1
	case crypto.SHA256:
		return oidHMACWithSHA256
	case crypto.SHA384:
		return oidHMACWithSHA384
	case crypto.SHA512:
		return oidHMACWithSHA512
	}
	return nil
}

func digest(h crypto.Hash, msg []byte) []byte {
	w := h.New()
	w.Write(msg)
	return w.Sum(nil)
}
