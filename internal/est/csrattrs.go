package est

import (
	"encoding/asn1"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// CSRAttr is one entry of a csrattrs answer (RFC 7030 §4.5.2, RFC 8951 §4):
// either a bare OID, or an attribute with values.
type CSRAttr struct {
	OID asn1.ObjectIdentifier
	// Attribute says the entry is an Attribute (with Values, each one DER
	// value) rather than a bare OID.
	Attribute bool
	Values    [][]byte
}

// maxCSRAttrs bounds what ParseCSRAttrs accepts.
const maxCSRAttrs = 256

// MarshalCSRAttrs encodes CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID.
func MarshalCSRAttrs(attrs []CSRAttr) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, a := range attrs {
			if !a.Attribute {
				b.AddASN1ObjectIdentifier(a.OID)
				continue
			}
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(a.OID)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					for _, v := range a.Values {
						b.AddBytes(v)
					}
				})
			})
		}
	})
	return b.Bytes()
}

// ParseCSRAttrs decodes a csrattrs body (after base64).
func ParseCSRAttrs(der []byte) ([]CSRAttr, error) {
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, errors.New("est: csrattrs is not a SEQUENCE")
	}
	var out []CSRAttr
	for !seq.Empty() {
		if len(out) == maxCSRAttrs {
			return nil, fmt.Errorf("est: more than %d csrattrs entries", maxCSRAttrs)
		}
		var a CSRAttr
		switch {
		case seq.PeekASN1Tag(cbasn1.OBJECT_IDENTIFIER):
			if !seq.ReadASN1ObjectIdentifier(&a.OID) {
				return nil, errors.New("est: malformed csrattrs OID")
			}
		case seq.PeekASN1Tag(cbasn1.SEQUENCE):
			var attr, set cryptobyte.String
			if !seq.ReadASN1(&attr, cbasn1.SEQUENCE) || !attr.ReadASN1ObjectIdentifier(&a.OID) || !attr.ReadASN1(&set, cbasn1.SET) || !attr.Empty() {
				return nil, errors.New("est: malformed csrattrs attribute")
			}
			a.Attribute = true
			for !set.Empty() {
				var v cryptobyte.String
				if !set.ReadAnyASN1Element(&v, nil) {
					return nil, errors.New("est: malformed csrattrs attribute value")
				}
				a.Values = append(a.Values, []byte(v))
			}
		default:
			return nil, errors.New("est: csrattrs entry is neither an OID nor an attribute")
		}
		out = append(out, a)
	}
	return out, nil
}

// Has reports whether attrs name oid, as a bare OID or an attribute.
func Has(attrs []CSRAttr, oid asn1.ObjectIdentifier) bool {
	for _, a := range attrs {
		if a.OID.Equal(oid) {
			return true
		}
	}
	return false
}
