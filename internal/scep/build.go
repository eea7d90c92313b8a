package scep

import (
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/cms"
)

// Identity is a certificate and its key, used to sign a pkiMessage.
type Identity struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Reply describes a CertRep to build.
type Reply struct {
	TransactionID  string
	RecipientNonce []byte // the request's senderNonce
	Status         PKIStatus
	FailInfo       FailInfo // FAILURE only
	FailInfoText   string   // FAILURE only; client-safe text
	Digest         crypto.Hash
	// Envelope is the pkcsPKIEnvelope (SUCCESS only): EnvelopedData holding
	// a certs-only SignedData.
	Envelope    []byte
	SigningTime time.Time
}

// BuildCertRep signs a CertRep with a fresh senderNonce of our own.
func BuildCertRep(r Reply, signer Identity) ([]byte, error) {
	nonce, err := NewNonce()
	if err != nil {
		return nil, err
	}
	attrs := []attrValue{
		{oidTransactionID, transactionID(r.TransactionID)},
		{oidMessageType, printable(string(CertRep))},
		{oidPKIStatus, printable(string(r.Status))},
		{oidSenderNonce, octets(nonce)},
		{oidRecipientNonce, octets(r.RecipientNonce)},
	}
	if r.Status == StatusFailure {
		attrs = append(attrs, attrValue{oidFailInfo, printable(string(r.FailInfo))})
		if r.FailInfoText != "" {
			attrs = append(attrs, attrValue{oidFailInfoText, asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagUTF8String, Bytes: []byte(r.FailInfoText)}})
		}
	}
	return sign(r.Envelope, attrs, signer, r.Digest, r.SigningTime)
}

// Request describes a client pkiMessage to build.
type Request struct {
	Type          MessageType
	TransactionID string
	SenderNonce   []byte
	Digest        crypto.Hash
	// Envelope is the pkcsPKIEnvelope: EnvelopedData to the RA/CA holding
	// the CSR (PKCSReq, RenewalReq) or IssuerAndSubject/IssuerAndSerial.
	Envelope    []byte
	SigningTime time.Time
}

// BuildRequest signs a client pkiMessage with the signer identity (a
// self-signed certificate for a first enrollment, the current certificate
// for a renewal).
func BuildRequest(r Request, signer Identity) ([]byte, error) {
	attrs := []attrValue{
		{oidTransactionID, transactionID(r.TransactionID)},
		{oidMessageType, printable(string(r.Type))},
		{oidSenderNonce, octets(r.SenderNonce)},
	}
	return sign(r.Envelope, attrs, signer, r.Digest, r.SigningTime)
}

type attrValue struct {
	oid   asn1.ObjectIdentifier
	value asn1.RawValue
}

func printable(s string) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagPrintableString, Bytes: []byte(s)}
}

// transactionID encodes a transaction ID as a PrintableString (RFC 8894
// §3.2.1.1), or as a UTF8String when it holds characters a PrintableString
// cannot (a client's own ID, echoed: Parse accepts both), so the CertRep
// stays valid DER that strict parsers read.
func transactionID(s string) asn1.RawValue {
	if !isPrintableString(s) {
		return asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagUTF8String, Bytes: []byte(s)}
	}
	return printable(s)
}

// isPrintableString: only the characters of X.680's PrintableString.
func isPrintableString(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte(" '()+,-./:=?", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func octets(b []byte) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagOctetString, Bytes: b}
}

func sign(content []byte, attrs []attrValue, signer Identity, digest crypto.Hash, signingTime time.Time) ([]byte, error) {
	cattrs := make([]cms.Attribute, 0, len(attrs))
	for _, a := range attrs {
		ca, err := cms.NewAttribute(a.oid, a.value)
		if err != nil {
			return nil, fmt.Errorf("scep: attribute %v: %w", a.oid, err)
		}
		cattrs = append(cattrs, ca)
	}
	if digest == 0 {
		digest = crypto.SHA256
	}
	der, err := cms.Sign(content, signer.Cert, signer.Key, cattrs, cms.SignOptions{
		Digest: digest,
		// strongSwan accepts a CertRep only with rsaEncryption here, and
		// every other client accepts it too.
		RSAEncryptionOID: true,
		SigningTime:      signingTime,
	})
	if err != nil {
		return nil, fmt.Errorf("scep: sign: %w", err)
	}
	return der, nil
}
