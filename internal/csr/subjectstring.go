package csr

import (
	"encoding/asn1"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// requestParts splits der, exactly one request in PKCS#10's shape (RFC
// 2986: version 0, a Name, a SubjectPublicKeyInfo, attributes, then an
// AlgorithmIdentifier and a signature), into its subject (the whole Name
// element) and its SubjectPublicKeyInfo's contents; ok is false for
// anything else. It reads only the shape: what crypto/x509 refused in it
// is for the caller to name.
func requestParts(der []byte) (subject, spki cryptobyte.String, ok bool) {
	in := cryptobyte.String(der)
	var req, info cryptobyte.String
	var version int64
	ok = in.ReadASN1(&req, cbasn1.SEQUENCE) && in.Empty() &&
		req.ReadASN1(&info, cbasn1.SEQUENCE) && req.SkipASN1(cbasn1.SEQUENCE) && req.SkipASN1(cbasn1.BIT_STRING) && req.Empty() &&
		info.ReadASN1Integer(&version) && version == 0 && info.ReadASN1Element(&subject, cbasn1.SEQUENCE) &&
		info.ReadASN1(&spki, cbasn1.SEQUENCE) && info.SkipASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) && info.Empty()
	return subject, spki, ok
}

// SubjectStringProblem says which attribute of a PKCS#10 request's subject
// holds a value its string type does not allow ("its subject's CN is a
// UTF8String that is not valid UTF-8"), the first one, in the words a
// device's developer can act on. crypto/x509 refuses the whole request for
// such a value with encoding/asn1's words ("asn1: invalid UTF-8 string"),
// which name neither the attribute nor the subject, and read as if the
// body were not DER at all. "" when der is not exactly one request in
// PKCS#10's shape (RFC 2986: version 0, a Name, a SubjectPublicKeyInfo,
// attributes, then an AlgorithmIdentifier and a signature; SCEP relies on
// that: bytes decrypted with a wrong key never have it, so a message
// that could not be decrypted is never answered as this) or its subject
// has no such value. Each value is judged by encoding/asn1 itself, so
// that this names exactly what crypto/x509 refused.
func SubjectStringProblem(der []byte) string {
	subject, _, ok := requestParts(der)
	if !ok {
		return ""
	}
	problem := ""
	_, _ = WalkName(subject, func(oid asn1.ObjectIdentifier, tag cbasn1.Tag, value []byte) error {
		if problem != "" {
			return nil
		}
		var b cryptobyte.Builder
		b.AddASN1(tag, func(b *cryptobyte.Builder) { b.AddBytes(value) })
		elem, err := b.Bytes()
		if err != nil {
			return nil
		}
		var v any
		if _, err := asn1.Unmarshal(elem, &v); err == nil {
			return nil
		}
		if what := stringProblem(tag, value); what != "" {
			problem = fmt.Sprintf("its subject's %s is %s", attributeName(oid), what)
		}
		return nil
	}, nil)
	return problem
}

// attributeName is a subject attribute's short name (CN, O, DC), else
// its OID.
func attributeName(oid asn1.ObjectIdentifier) string {
	if name, ok := shortNames[oid.String()]; ok {
		return name
	}
	for name, known := range dnAttributes {
		if name != "E" && oid.Equal(known) { // EMAILADDRESS, not its alias
			return name
		}
	}
	return oid.String()
}

// printableSet is what a PrintableString may hold (X.680 §41.4), with "*"
// and "&", which encoding/asn1 also reads (some certificates carry them).
const printableSet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?*&"

// stringProblem says what is wrong with a string value encoding/asn1
// refused: its type and the first byte its type does not allow.
func stringProblem(tag cbasn1.Tag, v []byte) string {
	firstOutside := func(allowed func(byte) bool) string {
		for i, c := range v {
			if !allowed(c) {
				return fmt.Sprintf("byte 0x%02X at offset %d", c, i)
			}
		}
		return "a byte"
	}
	switch tag {
	case cbasn1.UTF8String:
		if !utf8.Valid(v) {
			return "a UTF8String that is not valid UTF-8 (" + firstInvalidUTF8(v) + ")"
		}
	case cbasn1.PrintableString:
		return "a PrintableString holding " + firstOutside(func(c byte) bool { return strings.IndexByte(printableSet, c) >= 0 }) +
			", outside PrintableString's set (letters, digits, space and '()+,-./:=?); a UTF8String holds any character"
	case cbasn1.IA5String:
		return "an IA5String holding " + firstOutside(func(c byte) bool { return c < utf8.RuneSelf }) + ", which is not ASCII; a UTF8String holds any character"
	case 18: // NumericString
		return "a NumericString holding " + firstOutside(func(c byte) bool { return c == ' ' || '0' <= c && c <= '9' }) + ", which is neither a digit nor a space"
	case 30: // BMPString
		return fmt.Sprintf("a BMPString of %d bytes, not whole UTF-16 characters", len(v))
	}
	return fmt.Sprintf("a value of ASN.1 tag %d that cannot be read", tag)
}

// firstInvalidUTF8 names the first byte of v that starts no valid UTF-8
// sequence.
func firstInvalidUTF8(v []byte) string {
	for i := 0; i < len(v); {
		r, size := utf8.DecodeRune(v[i:])
		if r == utf8.RuneError && size <= 1 {
			return fmt.Sprintf("byte 0x%02X at offset %d", v[i], i)
		}
		i += size
	}
	return "a byte"
}
