package csr

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// otherNameTypes names the otherName types clients are known to ask for.
var otherNameTypes = map[string]string{
	"1.3.6.1.4.1.311.20.2.3": "Microsoft UPN",
	"1.3.6.1.4.1.311.25.1":   "Microsoft GUID",
	"1.3.6.1.5.5.7.8.3":      "permanentIdentifier",
	"1.3.6.1.5.5.7.8.4":      "hardwareModuleName",
	"1.3.6.1.5.5.7.8.9":      "SmtpUTF8Mailbox",
}

// GeneralName tag numbers (RFC 5280 §4.2.1.6).
const (
	sanOtherName     = 0
	sanRFC822Name    = 1
	sanDNSName       = 2
	sanX400Address   = 3
	sanDirectoryName = 4
	sanEDIPartyName  = 5
	sanURI           = 6
	sanIPAddress     = 7
	sanRegisteredID  = 8
)

// UnissuedSANs describes the subject alternative names of a request that
// would not be issued as asked, one string per name: those of a type we
// never issue ("otherName 1.3.6.1.4.1.311.20.2.3 (Microsoft UPN)",
// "registeredID 1.2.3.4", "directoryName CN=x", "x400Address",
// "ediPartyName"; only DNS names, email addresses, URIs and IP addresses
// are), which crypto/x509 skips without a word when it parses a request,
// so a request whose only name is a UPN would otherwise get a certificate
// without any; and a URI that is not RFC 3986 or that crypto/x509 would
// write back otherwise (`URI "spiffe://x/a b" (…)`: the certificate would
// name spiffe://x/a%20b, not what was asked). A malformed subjectAltName
// extension is an error, as is one whose otherName value or directoryName
// is not DER.
func UnissuedSANs(req *x509.CertificateRequest) ([]string, error) {
	var out []string
	seen := false
	for _, ext := range req.Extensions {
		if !ext.Id.Equal(oidSubjectAltName) {
			continue
		}
		if seen {
			// crypto/x509 keeps the last one: the names of the others
			// would be dropped without a word.
			return nil, errors.New("csr: more than one subjectAltName extension")
		}
		seen = true
		names, err := unissuedSANs(ext.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, names...)
	}
	return out, nil
}

// unissuedSANs walks GeneralNames ::= SEQUENCE OF GeneralName.
func unissuedSANs(der []byte) ([]string, error) {
	malformed := errors.New("csr: malformed subjectAltName extension")
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, malformed
	}
	var out []string
	for !seq.Empty() {
		var value cryptobyte.String
		var tag cbasn1.Tag
		if !seq.ReadAnyASN1(&value, &tag) || tag&0xc0 != 0x80 { // context-specific only
			return nil, malformed
		}
		number := tag & 0x1f
		// Each type has one form: crypto/x509 skips a string type sent
		// constructed (as openssl reads it), which would drop the name.
		constructed := tag&0x20 != 0
		if want := number == sanOtherName || number == sanX400Address || number == sanDirectoryName || number == sanEDIPartyName; number <= sanRegisteredID && constructed != want {
			return nil, malformed
		}
		switch number {
		case sanRFC822Name, sanDNSName, sanIPAddress:
		case sanURI:
			if problem := uriProblem(string(value)); problem != "" {
				out = append(out, "URI "+QuoteBounded(string(value))+" ("+problem+")")
			}
		case sanOtherName:
			// type-id OBJECT IDENTIFIER, value [0] EXPLICIT ANY: one
			// element each, nothing after. Left unread, a value that is
			// not DER would be refused as a name type we do not issue.
			var oid asn1.ObjectIdentifier
			var explicit, element cryptobyte.String
			if !value.ReadASN1ObjectIdentifier(&oid) ||
				!value.ReadASN1(&explicit, cbasn1.Tag(0).Constructed().ContextSpecific()) || !value.Empty() ||
				!explicit.ReadAnyASN1Element(&element, nil) || !explicit.Empty() {
				return nil, malformed
			}
			name := "otherName " + oid.String()
			if known, ok := otherNameTypes[oid.String()]; ok {
				name += " (" + known + ")"
			}
			out = append(out, name)
		case sanRegisteredID:
			// [8] IMPLICIT OBJECT IDENTIFIER: the contents are the OID's.
			var b cryptobyte.Builder
			b.AddASN1(cbasn1.OBJECT_IDENTIFIER, func(b *cryptobyte.Builder) { b.AddBytes(value) })
			oidDER, err := b.Bytes()
			encoded := cryptobyte.String(oidDER)
			var oid asn1.ObjectIdentifier
			if err != nil || !encoded.ReadASN1ObjectIdentifier(&oid) {
				return nil, malformed
			}
			out = append(out, "registeredID "+oid.String())
		case sanDirectoryName:
			// [4] EXPLICIT Name, which must be one (RFC 5280: an RDN
			// holds at least one attribute).
			if _, err := WalkName(value, func(asn1.ObjectIdentifier, cbasn1.Tag, []byte) error { return nil }, nil); err != nil {
				return nil, malformed
			}
			name := "directoryName"
			if s := NameString(value); s != "" {
				name += " " + s
			}
			out = append(out, name)
		case sanX400Address:
			out = append(out, "x400Address")
		case sanEDIPartyName:
			out = append(out, "ediPartyName")
		default:
			return nil, fmt.Errorf("csr: subjectAltName has a name of unknown type [%d]", number)
		}
	}
	return out, nil
}

// uriProblem says why a URI SAN, as the request's IA5String has it, would
// not be issued as asked, or "" when it would. crypto/x509 keeps a parsed
// *url.URL and writes url.String() into the certificate, which escapes
// what the request left raw (a space becomes %20) or normalises it: the
// certificate would name another resource than the one asked for and
// checked against uri_patterns. So the URI must use only RFC 3986's
// characters, percent-encoded correctly, and come back from url.Parse
// byte for byte; only the scheme's case may change (RFC 3986 §3.1:
// schemes are case-insensitive, and url.Parse lowers it).
func uriProblem(raw string) string {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return fmt.Sprintf("not RFC 3986: %%-escape at byte %d is not two hex digits", i)
			}
		case !uriChar(c):
			return fmt.Sprintf("not RFC 3986: %s at byte %d must be percent-encoded", strconv.QuoteRuneToASCII(rune(c)), i)
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "not a URI"
	}
	issued := u.String()
	scheme, rest, ok := strings.Cut(raw, ":")
	if issued != raw && !(ok && issued == strings.ToLower(scheme)+":"+rest) {
		return "it would be issued as " + QuoteBounded(issued)
	}
	return ""
}

// uriChar: RFC 3986 unreserved, gen-delims and sub-delims.
func uriChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~:/?#[]@!$&'()*+,;=", c) >= 0
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// maxQuoted bounds a name quoted in a refusal.
const maxQuoted = 200

// QuoteBounded quotes s (Go escapes for anything not printable ASCII), cut
// to maxQuoted bytes.
func QuoteBounded(s string) string {
	if len(s) > maxQuoted {
		return strconv.QuoteToASCII(s[:maxQuoted]) + "…"
	}
	return strconv.QuoteToASCII(s)
}
