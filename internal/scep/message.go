// Package scep implements RFC 8894 messages and the SCEP HTTP handler. The
// handler only translates: it decodes a pkiMessage, hands the enrollment to
// the enroll service and encodes the outcome as a signed CertRep.
package scep

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/pki"
)

// MessageType is the decimal messageType attribute (RFC 8894 §3.2.1.2).
type MessageType string

const (
	CertRep    MessageType = "3"
	RenewalReq MessageType = "17"
	UpdateReq  MessageType = "18" // dropped by RFC 8894; refused like any unknown type
	PKCSReq    MessageType = "19"
	CertPoll   MessageType = "20"
	GetCert    MessageType = "21"
	GetCRL     MessageType = "22"
)

func (t MessageType) String() string {
	switch t {
	case CertRep:
		return "CertRep"
	case RenewalReq:
		return "RenewalReq"
	case UpdateReq:
		return "UpdateReq"
	case PKCSReq:
		return "PKCSReq"
	case CertPoll:
		return "CertPoll"
	case GetCert:
		return "GetCert"
	case GetCRL:
		return "GetCRL"
	}
	return "unknown(" + string(t) + ")"
}

// PKIStatus is the pkiStatus attribute of a CertRep.
type PKIStatus string

const (
	StatusSuccess PKIStatus = "0"
	StatusFailure PKIStatus = "2"
	StatusPending PKIStatus = "3"
)

// FailInfo is the failInfo attribute of a FAILURE CertRep.
type FailInfo string

const (
	BadAlg          FailInfo = "0"
	BadMessageCheck FailInfo = "1"
	BadRequest      FailInfo = "2"
	BadTime         FailInfo = "3"
	BadCertID       FailInfo = "4"
)

func (f FailInfo) String() string {
	switch f {
	case BadAlg:
		return "badAlg"
	case BadMessageCheck:
		return "badMessageCheck"
	case BadRequest:
		return "badRequest"
	case BadTime:
		return "badTime"
	case BadCertID:
		return "badCertId"
	}
	return "failInfo(" + string(f) + ")"
}

// FailInfoFor maps the service's closed error codes onto SCEP failInfo.
func FailInfoFor(code pki.Code) FailInfo {
	switch code {
	case pki.EBadAlg:
		return BadAlg
	case pki.EBadMessageCheck:
		return BadMessageCheck
	case pki.EBadTime:
		return BadTime
	case pki.EBadCertID, pki.ENotFound:
		return BadCertID
	default:
		return BadRequest
	}
}

// SCEP attribute OIDs (VeriSign arc 2.16.840.1.113733.1.9) and failInfoText
// (RFC 8894 §3.2.1.4.3).
var (
	oidMessageType    = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 2}
	oidPKIStatus      = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 3}
	oidFailInfo       = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 4}
	oidSenderNonce    = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 5}
	oidRecipientNonce = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 6}
	oidTransactionID  = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 7}
	oidFailInfoText   = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 24, 1}
)

// Bounds on attribute sizes: transaction IDs seen in the wild are hex or
// decimal digests (up to ~80 characters); nonces are 16 bytes. A
// senderNonce is 16 random bytes (RFC 8894 §3.2.1.5), as every client we
// know sends: replay protection is keyed on (transactionID, senderNonce),
// and a shorter one leaves a sender few values to choose from.
const (
	maxTransactionIDLen = 256
	minSenderNonceLen   = 16
	maxNonceLen         = 64
)

// ErrMalformed means the bytes are not a pkiMessage we can even answer:
// no SignedData, no signer, or no transactionID/senderNonce to echo. The
// handler answers these with HTTP 400 instead of a CertRep.
var ErrMalformed = errors.New("scep: malformed pkiMessage")

// PKIMessage is a parsed request pkiMessage (RFC 8894 §3.2). Parse fills the
// outer fields; the handler decrypts the envelope afterwards.
type PKIMessage struct {
	Raw           []byte
	TransactionID string
	MessageType   MessageType
	SenderNonce   []byte
	SigningTime   time.Time // zero when absent or malformed
	// SigningTimeErr says why a signingTime attribute that is there could
	// not be read (nil when it was, or is absent): a sender told it has
	// none would look for the wrong fix.
	SigningTimeErr error

	SignedData *cms.SignedData
	Signer     *cms.SignerInfo
	SignerCert *x509.Certificate
	Digest     crypto.Hash

	// For CertRep messages (client side).
	PKIStatus      PKIStatus
	FailInfo       FailInfo
	FailInfoText   string
	RecipientNonce []byte
}

// Parse decodes the outer SignedData and its SCEP attributes without
// verifying anything. It returns ErrMalformed (wrapped) when there is not
// enough to answer with a CertRep.
func Parse(der []byte) (*PKIMessage, error) {
	sd, err := cms.ParseSignedData(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(sd.Signers) != 1 {
		return nil, fmt.Errorf("%w: %d signers, want 1", ErrMalformed, len(sd.Signers))
	}
	m := &PKIMessage{Raw: der, SignedData: sd, Signer: &sd.Signers[0]}
	if m.TransactionID, err = printableAttr(m.Signer, oidTransactionID, maxTransactionIDLen); err != nil || m.TransactionID == "" {
		return nil, fmt.Errorf("%w: transactionID: %v", ErrMalformed, orEmpty(err))
	}
	if m.SenderNonce, err = octetAttr(m.Signer, oidSenderNonce, maxNonceLen); err != nil || len(m.SenderNonce) == 0 {
		return nil, fmt.Errorf("%w: senderNonce: %v", ErrMalformed, orEmpty(err))
	}
	mt, err := printableAttr(m.Signer, oidMessageType, 8)
	if err != nil || mt == "" {
		return nil, fmt.Errorf("%w: messageType: %v", ErrMalformed, orEmpty(err))
	}
	m.MessageType = MessageType(mt)
	// A request's nonce keys the server's replay protection. A CertRep's is
	// left as another server makes it: our client keys nothing on it.
	if m.MessageType != CertRep && len(m.SenderNonce) < minSenderNonceLen {
		return nil, fmt.Errorf("%w: senderNonce: %d bytes, want %d random bytes (RFC 8894 §3.2.1.5)", ErrMalformed, len(m.SenderNonce), minSenderNonceLen)
	}
	if v, ok := m.Signer.Attr(cms.OIDSigningTime); ok {
		m.SigningTime, m.SigningTimeErr = parseSigningTime(v)
	}
	// CertRep-only attributes; harmless when absent.
	if s, err := printableAttr(m.Signer, oidPKIStatus, 4); err == nil {
		m.PKIStatus = PKIStatus(s)
	}
	if s, err := printableAttr(m.Signer, oidFailInfo, 4); err == nil {
		m.FailInfo = FailInfo(s)
	}
	if v, ok := m.Signer.Attr(oidFailInfoText); ok {
		var s string
		if _, err := asn1.UnmarshalWithParams(v.FullBytes, &s, "utf8"); err == nil && len(s) <= 1024 {
			m.FailInfoText = s
		}
	}
	if n, err := octetAttr(m.Signer, oidRecipientNonce, maxNonceLen); err == nil {
		m.RecipientNonce = n
	}
	m.SignerCert, _ = sd.SignerCertificate(m.Signer)
	m.Digest = sd.Digest(m.Signer)
	return m, nil
}

// Verify checks the outer signature with the signer certificate the message
// carries. It must run before anything is decrypted (no oracle on unsigned
// input). It returns a *pki.Error: EBadAlg for algorithms we do not accept,
// EBadMessageCheck for anything else.
func (m *PKIMessage) Verify() error {
	if m.SignerCert == nil {
		return pki.Errorf(pki.EBadMessageCheck, "the message carries no certificate matching its signer")
	}
	return verifySigned(m.SignedData, m.Signer, m.SignerCert)
}

// VerifyWith checks the signature against a certificate known out of band
// (the client verifying a CertRep against the RA certificate).
func (m *PKIMessage) VerifyWith(cert *x509.Certificate) error {
	return verifySigned(m.SignedData, m.Signer, cert)
}

func verifySigned(sd *cms.SignedData, si *cms.SignerInfo, cert *x509.Certificate) error {
	if err := sd.Verify(si, cert); err != nil {
		if errors.Is(err, cms.ErrUnsupportedAlgorithm) {
			if k, ok := cert.PublicKey.(*rsa.PublicKey); ok && k.N != nil && k.N.BitLen() > cms.MaxRSABits {
				// Our bound (cms.MaxRSABits), not the algorithm, refused
				// it: a client told its algorithm is unsupported would
				// look for the wrong fix.
				return pki.Wrap(pki.EBadAlg, err, fmt.Sprintf("the signer's RSA key of %d bits exceeds the %d-bit maximum", k.N.BitLen(), cms.MaxRSABits))
			}
			return pki.Wrap(pki.EBadAlg, err, "unsupported signature or digest algorithm")
		}
		var attrs *cms.SignedAttrsError
		if errors.As(err, &attrs) {
			// Found before the signature was checked, from public data:
			// no oracle in naming it, and "signature verification failed"
			// would send the client looking at a signature that may be good.
			return pki.Wrap(pki.EBadMessageCheck, err, attrs.Problem)
		}
		return pki.Wrap(pki.EBadMessageCheck, err, "signature verification failed")
	}
	return nil
}

// parseSigningTime reads a signingTime attribute's value: a UTCTime or a
// GeneralizedTime (RFC 5652 section 11.3).
func parseSigningTime(v asn1.RawValue) (time.Time, error) {
	const want = "want a UTCTime or GeneralizedTime (RFC 5652 section 11.3)"
	if v.Class != asn1.ClassUniversal || (v.Tag != asn1.TagUTCTime && v.Tag != asn1.TagGeneralizedTime) {
		return time.Time{}, fmt.Errorf("%s, %s", describeASN1(v), want)
	}
	var t time.Time
	if _, err := asn1.Unmarshal(v.FullBytes, &t); err != nil {
		return time.Time{}, fmt.Errorf("%s that is no valid time (%q), %s", describeASN1(v), pki.Clip(string(v.Bytes), 40), want)
	}
	return t, nil
}

// orEmpty names why an attribute that parsed is still unusable: it is
// empty (an error of nil would read "<nil>" in the client's answer).
func orEmpty(err error) error {
	if err == nil {
		return errors.New("empty")
	}
	return err
}

// singleAttr is the one value of a SCEP attribute: each is single-valued
// and appears once (RFC 8894 §3.2.1), and two values would leave open
// which one the message means ("19" and "17": a PKCSReq or a RenewalReq).
func singleAttr(si *cms.SignerInfo, oid asn1.ObjectIdentifier) (asn1.RawValue, error) {
	var found []asn1.RawValue
	if si != nil {
		for _, a := range si.SignedAttrs {
			if a.Type.Equal(oid) {
				found = append(found, a.Values...)
			}
		}
	}
	switch len(found) {
	case 0:
		return asn1.RawValue{}, errors.New("missing")
	case 1:
		return found[0], nil
	}
	return asn1.RawValue{}, fmt.Errorf("%d values; want one", len(found))
}

func printableAttr(si *cms.SignerInfo, oid asn1.ObjectIdentifier, maxLen int) (string, error) {
	v, err := singleAttr(si, oid)
	if err != nil {
		return "", err
	}
	// PrintableString per RFC 8894; some clients use UTF8String or IA5String.
	// Each refusal says which rule it broke: a vendor told only "bad string"
	// would look for an encoding problem where the value is merely too long.
	isString := v.Class == asn1.ClassUniversal &&
		(v.Tag == asn1.TagPrintableString || v.Tag == asn1.TagUTF8String || v.Tag == asn1.TagIA5String)
	if !isString {
		return "", fmt.Errorf("%s, want a PrintableString (RFC 8894 §3.2.1; a UTF8String or IA5String is accepted too)", describeASN1(v))
	}
	if len(v.Bytes) > maxLen {
		return "", fmt.Errorf("%d bytes, at most %d", len(v.Bytes), maxLen)
	}
	// A reply echoes it, as a UTF8String when a PrintableString cannot
	// hold it: bytes that are no UTF-8 could be echoed as neither.
	if !utf8.Valid(v.Bytes) {
		return "", errors.New("not valid UTF-8")
	}
	return string(v.Bytes), nil
}

// describeASN1 names an attribute value's ASN.1 type for an error: the
// types a client might put in a SCEP attribute by mistake by name, any
// other by its class and tag.
func describeASN1(v asn1.RawValue) string {
	if v.Class == asn1.ClassUniversal {
		switch v.Tag {
		case asn1.TagBoolean:
			return "a BOOLEAN"
		case asn1.TagInteger:
			return "an INTEGER"
		case asn1.TagBitString:
			return "a BIT STRING"
		case asn1.TagOctetString:
			return "an OCTET STRING"
		case asn1.TagNull:
			return "a NULL"
		case asn1.TagOID:
			return "an OBJECT IDENTIFIER"
		case asn1.TagEnum:
			return "an ENUMERATED"
		case asn1.TagUTF8String:
			return "a UTF8String"
		case asn1.TagSequence:
			return "a SEQUENCE"
		case asn1.TagSet:
			return "a SET"
		case asn1.TagNumericString:
			return "a NumericString"
		case asn1.TagPrintableString:
			return "a PrintableString"
		case asn1.TagT61String:
			return "a T61String"
		case asn1.TagIA5String:
			return "an IA5String"
		case asn1.TagUTCTime:
			return "a UTCTime"
		case asn1.TagGeneralizedTime:
			return "a GeneralizedTime"
		case asn1.TagGeneralString:
			return "a GeneralString"
		case asn1.TagBMPString:
			return "a BMPString"
		}
		return fmt.Sprintf("a value of ASN.1 universal tag %d", v.Tag)
	}
	return fmt.Sprintf("a value of ASN.1 class %d, tag %d", v.Class, v.Tag)
}

func octetAttr(si *cms.SignerInfo, oid asn1.ObjectIdentifier, maxLen int) ([]byte, error) {
	v, err := singleAttr(si, oid)
	if err != nil {
		return nil, err
	}
	if v.Class != asn1.ClassUniversal || v.Tag != asn1.TagOctetString {
		return nil, fmt.Errorf("%s, want an OCTET STRING", describeASN1(v))
	}
	if len(v.Bytes) > maxLen {
		return nil, fmt.Errorf("%d bytes, at most %d", len(v.Bytes), maxLen)
	}
	return append([]byte(nil), v.Bytes...), nil
}

// NewNonce returns 16 fresh random bytes.
func NewNonce() ([]byte, error) {
	n := make([]byte, 16)
	if _, err := rand.Read(n); err != nil {
		return nil, fmt.Errorf("scep: nonce: %w", err)
	}
	return n, nil
}
