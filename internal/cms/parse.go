package cms

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Context-specific tags used by CMS ([n] constructed, and [0] primitive).
const (
	tagExplicit0 cbasn1.Tag = 0xa0
	tagExplicit1 cbasn1.Tag = 0xa1
	tagExplicit2 cbasn1.Tag = 0xa2
	tagExplicit3 cbasn1.Tag = 0xa3
	tagImplicit0 cbasn1.Tag = 0x80
)

// ParseContentInfo parses a ContentInfo (BER accepted) and returns its
// content type and content: the single element inside the [0] EXPLICIT
// wrapper, in normalised (DER-shaped) form. content is nil if absent.
func ParseContentInfo(der []byte) (contentType asn1.ObjectIdentifier, content []byte, err error) {
	norm, err := normalize(der)
	if err != nil {
		return nil, nil, err
	}
	return parseContentInfo(norm)
}

// parseContentInfo parses an already normalised ContentInfo.
func parseContentInfo(norm []byte) (asn1.ObjectIdentifier, []byte, error) {
	s := cryptobyte.String(norm)
	var ci cryptobyte.String
	var ct asn1.ObjectIdentifier
	if !s.ReadASN1(&ci, cbasn1.SEQUENCE) || !s.Empty() {
		return nil, nil, malformed("ContentInfo is not a SEQUENCE")
	}
	if !ci.ReadASN1ObjectIdentifier(&ct) {
		return nil, nil, malformed("ContentInfo contentType")
	}
	if ci.Empty() {
		return ct, nil, nil
	}
	var wrapper, content cryptobyte.String
	if !ci.ReadASN1(&wrapper, tagExplicit0) || !ci.Empty() {
		return nil, nil, malformed("ContentInfo content is not [0] EXPLICIT")
	}
	if !wrapper.ReadAnyASN1Element(&content, nil) || !wrapper.Empty() {
		return nil, nil, malformed("ContentInfo content must be one element")
	}
	return ct, content, nil
}

// parseContentOf normalises der, checks its ContentInfo type is one of want
// and returns the type found and the content.
func parseContentOf(der []byte, want ...asn1.ObjectIdentifier) (asn1.ObjectIdentifier, cryptobyte.String, error) {
	ct, content, err := ParseContentInfo(der)
	if err != nil {
		return nil, nil, err
	}
	for _, w := range want {
		if ct.Equal(w) {
			if content == nil {
				return nil, nil, malformed("ContentInfo %v has no content", ct)
			}
			return ct, content, nil
		}
	}
	return nil, nil, malformed("unexpected content type %v", ct)
}

// readAlgorithmIdentifier reads an AlgorithmIdentifier SEQUENCE.
func readAlgorithmIdentifier(s *cryptobyte.String, ai *pkix.AlgorithmIdentifier) bool {
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return false
	}
	return parseAlgorithmContents(seq, ai)
}

// parseAlgorithmContents parses the contents (OID and optional parameters)
// of an AlgorithmIdentifier, which is also how [n] IMPLICIT ones arrive.
func parseAlgorithmContents(seq cryptobyte.String, ai *pkix.AlgorithmIdentifier) bool {
	var oid asn1.ObjectIdentifier
	if !seq.ReadASN1ObjectIdentifier(&oid) {
		return false
	}
	*ai = pkix.AlgorithmIdentifier{Algorithm: oid}
	if seq.Empty() {
		return true
	}
	var params cryptobyte.String
	if !seq.ReadAnyASN1Element(&params, nil) || !seq.Empty() {
		return false
	}
	rv, err := rawValue(params)
	if err != nil {
		return false
	}
	ai.Parameters = rv
	return true
}

// hasParams reports whether an AlgorithmIdentifier carries parameters other
// than NULL.
func hasParams(ai pkix.AlgorithmIdentifier) bool {
	p := ai.Parameters.FullBytes
	return len(p) > 0 && !(len(p) == 2 && p[0] == 0x05 && p[1] == 0x00)
}

// readIssuerAndSerial reads an IssuerAndSerialNumber SEQUENCE.
func readIssuerAndSerial(s *cryptobyte.String) (*IssuerAndSerial, bool) {
	var seq, issuer cryptobyte.String
	serial := new(big.Int)
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) ||
		!seq.ReadASN1Element(&issuer, cbasn1.SEQUENCE) ||
		!seq.ReadASN1Integer(serial) || !seq.Empty() {
		return nil, false
	}
	return &IssuerAndSerial{RawIssuer: clone(issuer), Serial: serial}, true
}

// parseAttributes parses the contents of a SET OF Attribute.
func parseAttributes(s cryptobyte.String) ([]Attribute, error) {
	var attrs []Attribute
	for !s.Empty() {
		if len(attrs) == maxAttributes {
			return nil, malformed("more than %d attributes", maxAttributes)
		}
		var a, values cryptobyte.String
		var attr Attribute
		if !s.ReadASN1(&a, cbasn1.SEQUENCE) ||
			!a.ReadASN1ObjectIdentifier(&attr.Type) ||
			!a.ReadASN1(&values, cbasn1.SET) || !a.Empty() {
			return nil, malformed("attribute")
		}
		for !values.Empty() {
			if len(attr.Values) == maxAttrValues {
				return nil, malformed("attribute %v has more than %d values", attr.Type, maxAttrValues)
			}
			var v cryptobyte.String
			if !values.ReadAnyASN1Element(&v, nil) {
				return nil, malformed("attribute %v value", attr.Type)
			}
			rv, err := rawValue(v)
			if err != nil {
				return nil, err
			}
			attr.Values = append(attr.Values, rv)
		}
		if len(attr.Values) == 0 {
			return nil, malformed("attribute %v has no value", attr.Type)
		}
		attrs = append(attrs, attr)
	}
	return attrs, nil
}
