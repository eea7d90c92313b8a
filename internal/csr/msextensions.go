package csr

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// oidMicrosoftExtensions is szOID_CERT_EXTENSIONS, the attribute Windows'
// certreq and some NDES-era devices send their extensions in instead of
// PKCS #9's extensionRequest. Its value is the same Extensions structure.
var oidMicrosoftExtensions = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 14}

// microsoftAttribute names the attribute in refusals.
const microsoftAttribute = "Microsoft extension-request attribute (1.3.6.1.4.1.311.2.1.14)"

// MicrosoftExtensions reads the extensions of a parsed request's Microsoft
// extension-request attributes into req (its Extensions, and the names of
// a subjectAltName among them into DNSNames, EmailAddresses, IPAddresses
// and URIs, as crypto/x509 reads extensionRequest's), so that they go
// through every check extensionRequest's do: crypto/x509 reads only
// extensionRequest, and a SAN sent this way was left out of the
// certificate unsaid (r128). It returns what is wrong, "" when nothing
// is: an attribute of other than one value, a value that is not a list of
// extensions, or an extension these attributes give twice, differently
// (given alike, it is read once).
func MicrosoftExtensions(req *x509.CertificateRequest) string {
	attrs, err := rawAttributes(req.RawTBSCertificateRequest)
	if err != nil {
		return ""
	}
	merged := append([]pkix.Extension(nil), req.Extensions...)
	from := make([]string, len(merged))
	for i := range from {
		from[i] = "extensionRequest attribute"
	}
	added := false
	for _, a := range attrs {
		if !a.oid.Equal(oidMicrosoftExtensions) {
			continue
		}
		values := cryptobyte.String(a.values)
		var value cryptobyte.String
		count := 0
		for !values.Empty() && values.ReadAnyASN1Element(&value, nil) {
			count++
		}
		if count != 1 || !values.Empty() {
			return fmt.Sprintf("its %s holds %d values, and it allows exactly one: put every extension in one", microsoftAttribute, count)
		}
		var exts []pkix.Extension
		if rest, err := asn1.Unmarshal(value, &exts); err != nil || len(rest) != 0 {
			return fmt.Sprintf("its %s is not a list of extensions", microsoftAttribute)
		}
		for _, e := range exts {
			i := extensionIndex(merged, e.Id)
			if i < 0 {
				merged, from, added = append(merged, e), append(from, microsoftAttribute), true
				continue
			}
			if merged[i].Critical != e.Critical || !bytes.Equal(merged[i].Value, e.Value) {
				if from[i] == microsoftAttribute {
					return fmt.Sprintf("its %s asks for extension %s twice, differently: ask for it once", microsoftAttribute, extensionName(e.Id))
				}
				return fmt.Sprintf("its %s and its %s ask for extension %s differently: ask for it once", from[i], microsoftAttribute, extensionName(e.Id))
			}
		}
	}
	if !added {
		return ""
	}
	// crypto/x509 reads the names of a subjectAltName with rules of its
	// own: it reads the merged extensions from a request built only for
	// that, so that a name sent in either attribute is read alike.
	read, err := parseExtensions(req, merged)
	if err != nil {
		return fmt.Sprintf("the extensions of its %s cannot be read: %v", microsoftAttribute, err)
	}
	req.Extensions = read.Extensions
	req.DNSNames, req.EmailAddresses, req.IPAddresses, req.URIs = read.DNSNames, read.EmailAddresses, read.IPAddresses, read.URIs
	return ""
}

func extensionIndex(exts []pkix.Extension, id asn1.ObjectIdentifier) int {
	for i, e := range exts {
		if e.Id.Equal(id) {
			return i
		}
	}
	return -1
}

// extensionName is id, with its name when it is the one clients send most.
func extensionName(id asn1.ObjectIdentifier) string {
	if id.Equal(oidSubjectAltName) {
		return "subjectAltName (" + id.String() + ")"
	}
	return id.String()
}

// parseExtensions has crypto/x509 parse a request of req's subject and key
// whose extensionRequest holds exts. It is never signed: only parsed.
func parseExtensions(req *x509.CertificateRequest, exts []pkix.Extension) (*x509.CertificateRequest, error) {
	extsDER, err := asn1.Marshal(exts)
	if err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1Int64(0)
			b.AddBytes(req.RawSubject)
			b.AddBytes(req.RawSubjectPublicKeyInfo)
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(oidExtensionRequest)
					b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(extsDER) })
				})
			})
		})
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}) // any algorithm: nothing is verified
		})
		b.AddASN1BitString(nil)
	})
	der, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificateRequest(der)
}
