package csr

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

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
// are of a type we never issue, one string per name ("otherName
// 1.3.6.1.4.1.311.20.2.3 (Microsoft UPN)", "registeredID 1.2.3.4",
// "directoryName CN=x", "x400Address", "ediPartyName"): only DNS names,
// email addresses, URIs and IP addresses are. crypto/x509 skips the others
// without a word when it parses a request, so a request whose only name is
// a UPN would otherwise get a certificate without any. A malformed
// subjectAltName extension is an error.
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
		case sanRFC822Name, sanDNSName, sanURI, sanIPAddress:
		case sanOtherName:
			var oid asn1.ObjectIdentifier
			if !value.ReadASN1ObjectIdentifier(&oid) {
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
			// [4] EXPLICIT Name.
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
