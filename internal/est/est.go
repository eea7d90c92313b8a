// Package est is the wire format of EST (RFC 7030, with RFC 8951's
// clarifications) that the client and the server share: paths, content
// types, base64 bodies, CSR attributes, the serverkeygen multipart reply and
// the TLS channel binding. It knows nothing about HTTP handlers or the CA.
package est

import (
	"bytes"
	"crypto/sha1"
	"crypto/tls"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// PathPrefix is where EST lives (RFC 7030 §3.2.2); an optional label (a
// profile) may follow before the operation: /.well-known/est/LABEL/OP.
const PathPrefix = "/.well-known/est/"

// Operations (RFC 7030 §3.2.2).
const (
	OpCACerts        = "cacerts"
	OpSimpleEnroll   = "simpleenroll"
	OpSimpleReenroll = "simplereenroll"
	OpServerKeyGen   = "serverkeygen"
	OpCSRAttrs       = "csrattrs"
	OpFullCMC        = "fullcmc"
)

// Content types.
const (
	ContentTypePKCS10    = "application/pkcs10"
	ContentTypeCertsOnly = "application/pkcs7-mime; smime-type=certs-only"
	ContentTypeCSRAttrs  = "application/csrattrs"
	ContentTypePKCS8     = "application/pkcs8"
	// ContentTypeServerKey is the encrypted key part of a serverkeygen
	// reply (RFC 7030 §4.4.2).
	ContentTypeServerKey = "application/pkcs7-mime; smime-type=server-generated-key"
)

// OIDs of the attributes EST adds to a CSR or lists in csrattrs.
var (
	OIDChallengePassword = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 7}
	OIDExtensionRequest  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 14}
	// OIDDecryptKeyIdentifier names a symmetric key the client shares with
	// the server (RFC 7030 §4.4.1.1, id-aa-decryptKeyID).
	OIDDecryptKeyIdentifier = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 37}
	// OIDAsymmetricDecryptKeyIdentifier names the client's key the
	// server-generated key is encrypted to (RFC 7030 §4.4.1.2,
	// id-aa-asymmDecryptKeyID).
	OIDAsymmetricDecryptKeyIdentifier = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 54}
	// OIDKeyPackage is id-ct-KP-aKeyPackage (RFC 5958), the content type of
	// the SignedData around an encrypted server-generated key.
	OIDKeyPackage = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 2, 1, 2, 78, 5}
	OIDSignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
)

// MaxBodyBytes bounds what the server reads of a request body and the client
// of a reply. A base64 CSR for RSA-8192 is under 4 KiB.
const MaxBodyBytes = 64 << 10

// ErrBadBase64 is returned for a body that is not base64.
var ErrBadBase64 = errors.New("the body is not base64 (RFC 8951)")

// DecodeBase64 decodes an EST body: base64 (RFC 4648) with any line breaks
// or other white space, padded or not. Content-Transfer-Encoding is not
// consulted (RFC 8951 says to ignore it).
func DecodeBase64(body []byte) ([]byte, error) {
	clean := make([]byte, 0, len(body))
	for _, c := range body {
		switch c {
		case ' ', '\t', '\r', '\n', '\v', '\f':
			continue
		}
		clean = append(clean, c)
	}
	clean = bytes.TrimRight(clean, "=")
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
	n, err := base64.RawStdEncoding.Decode(out, clean)
	if err != nil || n == 0 {
		return nil, ErrBadBase64
	}
	return out[:n], nil
}

// DecodeReply decodes a server's reply body as DecodeBase64 does. A body
// that is not base64 is refused saying it is the server's reply, and what
// it is where that can be told: PEM (the -----BEGIN/END----- lines sent
// along) or DER sent as it is, which some servers answer instead.
func DecodeReply(body []byte) ([]byte, error) {
	der, err := DecodeBase64(body)
	if err == nil {
		return der, nil
	}
	trimmed := bytes.TrimSpace(body)
	var raw asn1.RawValue
	switch rest, derErr := asn1.Unmarshal(body, &raw); {
	case len(trimmed) == 0:
		return nil, errors.New("the server's reply is empty, not the base64 of DER (RFC 8951)")
	case bytes.HasPrefix(trimmed, []byte("-----BEGIN")):
		return nil, errors.New("the server's reply is PEM, not the base64 of DER (RFC 8951): it carries the -----BEGIN/END----- lines, which EST leaves out")
	case derErr == nil && len(rest) == 0 && raw.Class == asn1.ClassUniversal && raw.Tag == asn1.TagSequence:
		return nil, errors.New("the server's reply is raw DER, not its base64 (RFC 8951)")
	}
	const shown = 32
	return nil, fmt.Errorf("the server's reply is not base64 (RFC 8951): it begins %q", trimmed[:min(len(trimmed), shown)])
}

// EncodeBase64 encodes a body for the wire: standard base64 without line
// breaks (strongSwan's decoder does not skip them).
func EncodeBase64(der []byte) []byte {
	out := make([]byte, base64.StdEncoding.EncodedLen(len(der)))
	base64.StdEncoding.Encode(out, der)
	return out
}

// Channel-binding labels.
const exporterLabel = "EXPORTER-Channel-Binding" // RFC 9266

// ChannelBinding returns the value that links a CSR to a TLS connection
// (RFC 7030 §3.5): tls-unique on TLS 1.2 (nil for a resumed session without
// extended master secret, which has none), tls-exporter (RFC 9266, 32
// bytes) on TLS 1.3.
func ChannelBinding(cs tls.ConnectionState) ([]byte, error) {
	switch cs.Version {
	case tls.VersionTLS13:
		v, err := cs.ExportKeyingMaterial(exporterLabel, nil, 32)
		if err != nil {
			return nil, fmt.Errorf("est: tls-exporter: %w", err)
		}
		return v, nil
	case tls.VersionTLS12:
		if len(cs.TLSUnique) == 0 {
			return nil, nil
		}
		return bytes.Clone(cs.TLSUnique), nil
	}
	return nil, fmt.Errorf("est: no channel binding for TLS version %#x", cs.Version)
}

// ChannelBindingPassword is how a binding travels in a CSR's
// challengePassword: base64 (RFC 7030 §3.5).
func ChannelBindingPassword(binding []byte) string {
	return base64.StdEncoding.EncodeToString(binding)
}

// KeyIdentifier is RFC 5280 §4.2.1.2 method 1 of a DER SubjectPublicKeyInfo:
// the SHA-1 of the subjectPublicKey BIT STRING's bits. It is how an
// AsymmetricDecryptKeyIdentifier names a key; nil for malformed input.
func KeyIdentifier(spki []byte) []byte {
	s := cryptobyte.String(spki)
	var inner cryptobyte.String
	var bits asn1.BitString
	if !s.ReadASN1(&inner, cbasn1.SEQUENCE) || !inner.SkipASN1(cbasn1.SEQUENCE) || !inner.ReadASN1BitString(&bits) {
		return nil
	}
	sum := sha1.Sum(bits.Bytes)
	return sum[:]
}
