package ca

import (
	"bytes"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/pki"
)

// maxNameLen bounds every SAN entry.
const maxNameLen = 255

var (
	oidEmailAddress = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
	// Upper bounds from RFC 5280 Appendix A for the attributes devices
	// commonly send. The linter checks them too, but a device that sends a
	// long name deserves a bad-request answer, not an internal error.
	subjectBounds = []struct {
		oid  asn1.ObjectIdentifier
		name string
		max  int
	}{
		{asn1.ObjectIdentifier{2, 5, 4, 3}, "commonName", 64},
		{asn1.ObjectIdentifier{2, 5, 4, 10}, "organizationName", 64},
		{asn1.ObjectIdentifier{2, 5, 4, 11}, "organizationalUnitName", 64},
		{asn1.ObjectIdentifier{2, 5, 4, 7}, "localityName", 128},
		{asn1.ObjectIdentifier{2, 5, 4, 8}, "stateOrProvinceName", 128},
		{asn1.ObjectIdentifier{2, 5, 4, 5}, "serialNumber", 64},
		// Bounds no lint checks: the issuer is the only guard.
		{asn1.ObjectIdentifier{2, 5, 4, 12}, "title", 64},
		{asn1.ObjectIdentifier{2, 5, 4, 65}, "pseudonym", 128},
	}
	// oidCountryName is X520countryName, PrintableString (SIZE (2)): an
	// ISO 3166 two-letter code, never "USA" (RFC 5280 Appendix A).
	oidCountryName = asn1.ObjectIdentifier{2, 5, 4, 6}
	// oidJurisdictionCountryName is the EV jurisdiction's country, an ISO
	// 3166-1 alpha-2 code as countryName is (CA/B EV Guidelines 9.2.4).
	oidJurisdictionCountryName = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 60, 2, 1, 3}
)

// subjectInfo is what Issue needs to know about a verbatim subject.
type subjectInfo struct {
	empty  bool
	emails []string // emailAddress attributes
}

// maxSubjectLen bounds the DER subject: a device's name is some hundred
// bytes, and nothing else in a request is unbounded.
const maxSubjectLen = 2048

// parseSubject checks that raw is one DER Name (SEQUENCE OF SET OF
// AttributeTypeAndValue) and nothing else, that every value is a string
// that Go's x509 parser reads (as clients will: the CA must never sign a
// certificate it cannot read back), not empty and without control, format
// (bidirectional or invisible) or line-separator characters (pki.Unreadable:
// a subject is an identifier, and one that reads as another is a greater
// harm than refusing the joiners some scripts write between letters),
// and the attribute bounds.
// CheckSubject refuses, as issuance would, a subject (DER) the issuer
// never signs: too long, an empty value or one holding a control, format
// or line-separator character, a value over its upper bound, a countryName
// or jurisdictionCountryName that is no country code. It returns the subject's emailAddress values,
// which a certificate must also carry as SANs. For what is checked before
// anything is asked of the issuer, such as a challenge bound to a subject.
func CheckSubject(raw []byte) (emails []string, err error) {
	info, err := parseSubject(raw)
	return info.emails, err
}

// CheckEmail refuses, as issuance would, an email address the issuer
// never puts in a certificate.
func CheckEmail(e string) error { return checkEmail(e) }

func parseSubject(raw []byte) (subjectInfo, error) {
	var info subjectInfo
	if len(raw) == 0 {
		info.empty = true
		return info, nil
	}
	if len(raw) > maxSubjectLen {
		return info, pki.Errorf(pki.EBadRequest, "the subject has %d bytes, at most %d are accepted", len(raw), maxSubjectLen)
	}
	empty, err := csr.WalkName(raw, func(oid asn1.ObjectIdentifier, tag cbasn1.Tag, value []byte) error {
		s, err := directoryString(tag, value)
		if err != nil {
			return pki.Errorf(pki.EBadRequest, "the subject attribute %s: %v", attributeName(oid), err)
		}
		if s == "" {
			return pki.Errorf(pki.EBadRequest, "the subject attribute %s is empty", attributeName(oid))
		}
		if i := strings.IndexFunc(s, pki.Unreadable); i >= 0 {
			r, _ := utf8.DecodeRuneInString(s[i:])
			return pki.Errorf(pki.EBadRequest, "the subject attribute %s holds the character %U", attributeName(oid), r)
		}
		if oid.Equal(oidEmailAddress) {
			info.emails = append(info.emails, s)
		}
		for _, b := range subjectBounds {
			if oid.Equal(b.oid) && utf8.RuneCountInString(s) > b.max {
				return pki.Errorf(pki.EBadRequest, "the subject %s is longer than %d characters", b.name, b.max)
			}
		}
		if (oid.Equal(oidCountryName) || oid.Equal(oidJurisdictionCountryName)) && !isCountryCode(s) {
			return pki.Errorf(pki.EBadRequest, "the subject %s %q is not an ISO 3166-1 alpha-2 country code (two capital letters, such as US or DE; XX where no country applies)%s", attributeName(oid), s, countryHint(s))
		}
		return nil
	}, nil)
	if errors.Is(err, csr.ErrNotAName) {
		return info, pki.Errorf(pki.EBadRequest, "the subject is not a valid distinguished name")
	}
	info.empty = empty
	return info, err
}

// isCountryCode reports whether s is an officially assigned ISO 3166-1
// alpha-2 code, in capitals as the standard writes them, or XX: what the
// CA/B Forum Baseline Requirements (7.1.4.2.2) and zlint's
// e_subject_country_not_iso accept. "UK" or "EU" has the right shape but
// names no country a relying party can look up.
func isCountryCode(s string) bool {
	return s == "XX" || isISO3166Alpha2(s)
}

// countryHint adds to a refusal the code meant by a common wrong one.
func countryHint(s string) string {
	if strings.EqualFold(s, "UK") {
		return "; the United Kingdom's code is GB"
	}
	return ""
}

// derSubject returns raw with the attributes of each multi-valued RDN in
// DER order (X.690 11.6: a SET OF in ascending order of the encodings), and
// the attributes whose syntax fixes a string type in it: emailAddress and
// domainComponent as IA5String, dnQualifier, countryName and
// jurisdictionCountryName as PrintableString (RFC 5280 Appendix A, RFC 4519,
// CA/B EV Guidelines), a DirectoryString given as an IA5String or
// NumericString as a UTF8String; raw itself when nothing changes. The issuer keeps
// a request's subject verbatim otherwise: a client that lists "O=x+CN=y"
// in another order would get a certificate that is not DER (RFC 5280 4.1),
// which a verifier that re-encodes names reads with a broken signature, and
// one that writes an emailAddress as a UTF8String (crypto/x509 does) one
// that breaks RFC 5280's ASN.1. The text stays the same, so the name is the
// same name (SameName). raw must have passed parseSubject.
func derSubject(raw []byte) ([]byte, error) {
	notAName := pki.Errorf(pki.EBadRequest, "the subject is not a valid distinguished name")
	in := cryptobyte.String(raw)
	var rdns cryptobyte.String
	if !in.ReadASN1(&rdns, cbasn1.SEQUENCE) {
		return nil, notAName
	}
	var sets [][][]byte
	changed := false
	for !rdns.Empty() {
		var set cryptobyte.String
		if !rdns.ReadASN1(&set, cbasn1.SET) {
			return nil, notAName
		}
		var atvs [][]byte
		var types []asn1.ObjectIdentifier
		for !set.Empty() {
			var atv, body, value cryptobyte.String
			var oid asn1.ObjectIdentifier
			var tag cbasn1.Tag
			if !set.ReadASN1Element(&atv, cbasn1.SEQUENCE) {
				return nil, notAName
			}
			if elem := atv; !elem.ReadASN1(&body, cbasn1.SEQUENCE) || !body.ReadASN1ObjectIdentifier(&oid) || !body.ReadAnyASN1(&value, &tag) {
				return nil, notAName
			}
			// X.501 §9.3: an RDN holds one value of each attribute type.
			if slices.ContainsFunc(types, oid.Equal) {
				return nil, pki.Errorf(pki.EBadRequest, "the subject has two %s attributes in one RDN: give each its own RDN", attributeName(oid))
			}
			types = append(types, oid)
			retyped, err := retypedAttribute(oid, tag, value)
			if err != nil {
				return nil, err
			}
			if retyped != nil {
				atv, changed = retyped, true
			}
			atvs = append(atvs, atv)
		}
		if !slices.IsSortedFunc(atvs, bytes.Compare) {
			slices.SortFunc(atvs, bytes.Compare)
			changed = true
		}
		sets = append(sets, atvs)
	}
	if !changed {
		return raw, nil
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, atvs := range sets {
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
				for _, atv := range atvs {
					b.AddBytes(atv)
				}
			})
		}
	})
	out, err := b.Bytes()
	if err != nil {
		return nil, pki.Wrap(pki.EInternal, err, "encoding the subject")
	}
	return out, nil
}

var (
	oidDomainComponent = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}
	oidDNQualifier     = asn1.ObjectIdentifier{2, 5, 4, 46}
)

// otherAttributeNames name, in refusals, attributes that have no bound.
var otherAttributeNames = map[string]string{
	"2.5.4.4": "surname", "2.5.4.9": "streetAddress", "2.5.4.13": "description", "2.5.4.15": "businessCategory",
	"2.5.4.17": "postalCode", "2.5.4.18": "postOfficeBox", "2.5.4.19": "physicalDeliveryOfficeName", "2.5.4.41": "name",
	"2.5.4.42": "givenName", "2.5.4.43": "initials", "2.5.4.44": "generationQualifier", "2.5.4.51": "houseIdentifier",
	"2.5.4.54": "dmdName", "2.5.4.72": "role", "2.5.4.97": "organizationIdentifier", "0.9.2342.19200300.100.1.1": "uid",
}

// IsDirectoryStringAttribute: oid is an attribute type of DirectoryString
// syntax, whose values compare without regard to case (csr's list: the held
// request's name rule needs it where this package cannot be imported).
func IsDirectoryStringAttribute(oid asn1.ObjectIdentifier) bool {
	return csr.IsDirectoryStringAttribute(oid)
}

// retypedAttribute returns the attribute re-encoded in the string type its
// syntax requires, nil when it already has it or has no fixed type.
func retypedAttribute(oid asn1.ObjectIdentifier, tag cbasn1.Tag, value []byte) ([]byte, error) {
	// A TeletexString beyond ASCII, of any attribute type, is ambiguous
	// (T.61 proper, Latin-1 as OpenSSL shows it, or UTF-8 bytes as Go and
	// many devices write it): refused rather than guessed.
	if tag == cbasn1.T61String && slices.ContainsFunc(value, func(c byte) bool { return c > unicode.MaxASCII }) {
		return nil, pki.Errorf(pki.EBadRequest, "the subject attribute %s is a TeletexString with characters beyond ASCII, which readers take in different encodings: send it as a UTF8String", attributeName(oid))
	}
	var want cbasn1.Tag
	var fits func(byte) bool
	switch {
	case oid.Equal(oidEmailAddress), oid.Equal(oidDomainComponent):
		want, fits = cbasn1.IA5String, func(c byte) bool { return c <= unicode.MaxASCII }
	case oid.Equal(oidDNQualifier), oid.Equal(oidCountryName), oid.Equal(oidJurisdictionCountryName):
		// countryName is PrintableString (SIZE (2)) too, and so is the EV
		// jurisdictionCountryName (CA/B EV Guidelines 9.2.4); some clients
		// write every attribute as a UTF8String.
		want, fits = cbasn1.PrintableString, printable
	case IsDirectoryStringAttribute(oid) && (tag == cbasn1.IA5String || tag == cbasn1.Tag(asn1.TagNumericString) || tag == cbasn1.T61String):
		// A DirectoryString (X.520: commonName, organizationName, ...) is
		// one of five string types, not the first two; the text reads the
		// same as a UTF8String, which RFC 5280 §4.1.2.6 requires of new
		// names (PrintableString or UTF8String). So for a TeletexString
		// of ASCII (one beyond ASCII is refused above). A BMPString is
		// kept (Windows and devices match their certificate by it).
		want, fits = cbasn1.UTF8String, func(byte) bool { return true }
	default:
		return nil, nil
	}
	if tag == want {
		return nil, nil
	}
	text, err := directoryString(tag, value)
	if err != nil {
		return nil, pki.Errorf(pki.EBadRequest, "the subject attribute %s: %v", attributeName(oid), err)
	}
	for i := 0; i < len(text); i++ {
		if !fits(text[i]) {
			return nil, pki.Errorf(pki.EBadRequest, "the subject attribute %s must be %s, and %q is not", attributeName(oid), stringTypeName(want), text)
		}
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		b.AddASN1(want, func(b *cryptobyte.Builder) { b.AddBytes([]byte(text)) })
	})
	return b.Bytes()
}

func stringTypeName(tag cbasn1.Tag) string {
	if tag == cbasn1.IA5String {
		return "an IA5String (ASCII)"
	}
	return "a PrintableString"
}

// canonicalName is raw in a form in which two names that RFC 5280's name
// matching (and OpenSSL's canonical encoding, behind its name hashes) take
// for one compare equal: every value decoded whatever its string type,
// lower-cased, trimmed, inner runs of spaces made one, and the attributes
// of each RDN in one order. A name that does not parse is its bytes, so
// that it still equals itself.
func canonicalName(raw []byte) string {
	var b strings.Builder
	var atvs []string
	_, err := csr.WalkName(raw, func(oid asn1.ObjectIdentifier, tag cbasn1.Tag, value []byte) error {
		v, err := directoryString(tag, value)
		if err != nil {
			v = fmt.Sprintf("#%d:%x", tag, value) // compared as it is
		}
		atvs = append(atvs, oid.String()+"="+strings.Join(strings.Fields(strings.ToLower(v)), " "))
		return nil
	}, func() {
		slices.Sort(atvs)
		b.WriteString(strings.Join(atvs, "\x00+"))
		b.WriteString("\x00,")
		atvs = atvs[:0]
	})
	if err != nil {
		return "\x00der:" + string(raw)
	}
	return b.String()
}

// AttributeName names a subject attribute in a refusal: "title",
// "domainComponent", or its OID when it has no name here.
func AttributeName(oid asn1.ObjectIdentifier) string { return attributeName(oid) }

// attributeName names a subject attribute in a refusal.
func attributeName(oid asn1.ObjectIdentifier) string {
	if oid.Equal(oidEmailAddress) {
		return "emailAddress"
	}
	if oid.Equal(oidCountryName) {
		return "countryName"
	}
	if oid.Equal(oidJurisdictionCountryName) {
		return "jurisdictionCountryName"
	}
	if oid.Equal(oidDomainComponent) {
		return "domainComponent"
	}
	if oid.Equal(oidDNQualifier) {
		return "dnQualifier"
	}
	for _, b := range subjectBounds {
		if oid.Equal(b.oid) {
			return b.name
		}
	}
	if name, ok := otherAttributeNames[oid.String()]; ok {
		return name
	}
	return oid.String()
}

// directoryString decodes an attribute value as Go's x509 parser does
// (crypto/x509 parseASN1String), and refuses what it would refuse: any
// other type (a NULL, a SEQUENCE, an OCTET STRING), a PrintableString or
// IA5String or NumericString with characters outside its alphabet, broken
// UTF-8, a BMPString of odd length.
func directoryString(tag cbasn1.Tag, v []byte) (string, error) {
	switch tag {
	case cbasn1.T61String:
		// Teletex: Go reads the bytes as they are; we take them as
		// Latin-1, so that what we check is what a reader shows.
		r := make([]rune, len(v))
		for i, b := range v {
			r[i] = rune(b)
		}
		return string(r), nil
	case cbasn1.PrintableString:
		for _, b := range v {
			if !printable(b) {
				return "", fmt.Errorf("a PrintableString with the character %q", b)
			}
		}
		return string(v), nil
	case cbasn1.UTF8String:
		if !utf8.Valid(v) {
			return "", errors.New("a UTF8String that is not UTF-8")
		}
		return string(v), nil
	case cbasn1.Tag(asn1.TagBMPString):
		if len(v)%2 != 0 {
			return "", errors.New("a BMPString of odd length")
		}
		if l := len(v); l >= 2 && v[l-1] == 0 && v[l-2] == 0 {
			// Go's parser drops a NUL terminator, OpenSSL and others show
			// it as part of the name: the name checked would not be the
			// name every relying party reads.
			return "", errors.New("a BMPString ending in a NUL")
		}
		u := make([]uint16, len(v)/2)
		for i := range u {
			u[i] = uint16(v[2*i])<<8 | uint16(v[2*i+1])
			if p := u[i]; p == 0xfffe || p == 0xffff || 0xfdd0 <= p && p <= 0xfdef || 0xd800 <= p && p <= 0xdfff {
				return "", fmt.Errorf("a BMPString with the code point %U", p)
			}
		}
		return string(utf16.Decode(u)), nil
	case cbasn1.IA5String:
		for _, b := range v {
			if b > unicode.MaxASCII {
				return "", errors.New("an IA5String that is not ASCII")
			}
		}
		return string(v), nil
	case cbasn1.Tag(asn1.TagNumericString):
		for _, b := range v {
			if !('0' <= b && b <= '9' || b == ' ') {
				return "", fmt.Errorf("a NumericString with the character %q", b)
			}
		}
		return string(v), nil
	}
	return "", unreadType(tag)
}

// stringTypesTaken are the string types directoryString decodes, as a
// refusal of another lists them.
const stringTypesTaken = "UTF8String, PrintableString, IA5String, BMPString, TeletexString or NumericString"

// unreadTypeNames name the universal ASN.1 types a refusal may meet.
var unreadTypeNames = map[cbasn1.Tag]string{
	cbasn1.BOOLEAN: "a BOOLEAN", cbasn1.INTEGER: "an INTEGER", cbasn1.BIT_STRING: "a BIT STRING", cbasn1.OCTET_STRING: "an OCTET STRING",
	cbasn1.NULL: "a NULL", cbasn1.OBJECT_IDENTIFIER: "an OBJECT IDENTIFIER", cbasn1.ENUM: "an ENUMERATED", cbasn1.SEQUENCE: "a SEQUENCE",
	cbasn1.SET: "a SET", cbasn1.UTCTime: "a UTCTime", cbasn1.GeneralizedTime: "a GeneralizedTime",
}

// unreadStringTypes are the ASN.1 string types directoryString does not
// decode: crypto/x509 reads no certificate whose name holds one
// (parseASN1String), so one issued with it could not be read back, by
// this server's inventory either. UniversalString is one of RFC 5280's
// DirectoryString choices, but a deprecated one (RFC 5280 4.1.2.6 wants
// UTF8String).
var unreadStringTypes = map[cbasn1.Tag]string{
	cbasn1.Tag(21): "a VideotexString", cbasn1.Tag(25): "a GraphicString", cbasn1.Tag(26): "a VisibleString",
	cbasn1.Tag(27): "a GeneralString", cbasn1.Tag(28): "a UniversalString", cbasn1.Tag(29): "a CHARACTER STRING",
}

// unreadType says which type a value has that directoryString does not
// decode, by name, and what the server takes instead.
func unreadType(tag cbasn1.Tag) error {
	if name, ok := unreadStringTypes[tag]; ok {
		return fmt.Errorf("%s (ASN.1 tag %d), a string type this server does not take, as crypto/x509 reads no certificate that holds one: "+
			"send a UTF8String (the types taken are %s)", name, tag, stringTypesTaken)
	}
	name, ok := unreadTypeNames[tag]
	if !ok {
		name = fmt.Sprintf("a value of ASN.1 tag %d", tag&0x1f)
		if class := tag & 0xc0; class != 0 {
			name = fmt.Sprintf("a value of tag [%d] of class %d", tag&0x1f, class>>6)
		}
	}
	return fmt.Errorf("%s, which is no string type: send a UTF8String (the types taken are %s)", name, stringTypesTaken)
}

// printable is PrintableString's alphabet, with the '*' and '&' that Go
// also accepts (crypto/x509 isPrintable).
func printable(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
		'\'' <= b && b <= ')' || '+' <= b && b <= '/' || b == ' ' || b == ':' || b == '=' || b == '?' || b == '*' || b == '&'
}

// CheckSANCount holds n, the names a certificate of profile p would carry
// (the request's with the profile's fixed ones), to p's max_sans, with a
// refusal that names what it counted and the rule.
func CheckSANCount(p pki.Profile, n int) error {
	limit := max(p.MaxSANs, 0)
	if n <= limit {
		return nil
	}
	if len(p.SANFixed) > 0 {
		return pki.Errorf(pki.EBadRequest, "%d subject alternative names with the profile's fixed ones (san_fixed), the profile allows at most %d (max_sans)", n, limit)
	}
	return pki.Errorf(pki.EBadRequest, "%d subject alternative names requested, the profile allows at most %d (max_sans)", n, limit)
}

// checkNames enforces the profile's SAN bound and the syntax of each name.
func checkNames(p pki.Profile, req *Request, subj subjectInfo) error {
	n := len(req.DNSNames) + len(req.EmailAddresses) + len(req.IPAddresses) + len(req.URIs)
	if err := CheckSANCount(p, n); err != nil {
		return err
	}
	if n == 0 && subj.empty {
		return pki.Errorf(pki.EBadRequest, "the request has neither a subject nor a subject alternative name")
	}
	for _, d := range req.DNSNames {
		if err := CheckDNSName(d); err != nil {
			return err
		}
	}
	for _, e := range req.EmailAddresses {
		if err := checkEmail(e); err != nil {
			return err
		}
	}
	for _, ip := range req.IPAddresses {
		if ip.To4() == nil && len(ip) != net.IPv6len {
			return pki.Errorf(pki.EBadRequest, "invalid IP address in the subject alternative names")
		}
	}
	for _, u := range req.URIs {
		if err := checkURI(u); err != nil {
			return err
		}
	}
	for _, e := range subj.emails {
		if !slices.Contains(req.EmailAddresses, e) {
			return pki.Errorf(pki.EBadRequest, "the subject emailAddress %q must also be a subject alternative name (RFC 5280 4.1.2.6)", e)
		}
	}
	return nil
}

// CheckDNSName accepts ASCII host names (IDNs as A-labels): labels of 1-63
// letters, digits, hyphens and underscores, not starting or ending with a
// hyphen, at most 253 characters, and a wildcard only as the whole leftmost
// label. Underscores are outside RFC 1034's preferred syntax but common in
// internal host names, so they are allowed. A name whose last label is a
// number ("10.9.9.9", "0x7f.1") is refused: it is no host name (RFC 1123
// 2.1, RFC 3696 2) but an address, and TLS stacks that match an address
// against dNSNames (OpenSSL's X509_check_host, say) would accept it for
// that address, around a profile's ip_ranges.
func CheckDNSName(d string) error {
	if len(d) > maxNameLen {
		return pki.Errorf(pki.EBadRequest, "DNS name of %d bytes is longer than %d", len(d), maxNameLen)
	}
	bad := func(why string) error {
		return pki.Errorf(pki.EBadRequest, "invalid DNS name %q: %s", d, why)
	}
	if d == "" {
		return bad("empty")
	}
	if len(d) > 253 {
		return bad("longer than 253 characters")
	}
	labels := strings.Split(d, ".")
	if IsNumberLabel(labels[len(labels)-1]) {
		return bad("an IP address, or a name ending in a number, is not a DNS name: put an address in an IP address SAN")
	}
	for i, l := range labels {
		if l == "" {
			return bad("empty label")
		}
		if l == "*" {
			if i != 0 || len(labels) < 3 {
				return bad("a wildcard must be the leftmost label of a name with at least two more labels")
			}
			continue
		}
		if len(l) > 63 {
			return bad("label longer than 63 characters")
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return bad("label starts or ends with a hyphen")
		}
		for j := 0; j < len(l); j++ {
			c := l[j]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return bad("only letters, digits, hyphens and underscores are allowed (use xn-- labels for IDNs)")
			}
		}
	}
	return nil
}

// IsNumberLabel reports whether a label reads as a number, as the URL
// standard's host parser takes it (decimal, or hexadecimal after
// 0x): a name ending in one is parsed as an IPv4 address by browsers and
// inet_aton.
func IsNumberLabel(last string) bool {
	digits := last
	isDigit := func(c byte) bool { return '0' <= c && c <= '9' }
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		digits = last[2:]
		isDigit = func(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }
		if digits == "" {
			return true // "0x" alone is the number zero
		}
	}
	if digits == "" {
		return false
	}
	for i := 0; i < len(digits); i++ {
		if !isDigit(digits[i]) {
			return false
		}
	}
	return true
}

func checkEmail(e string) error {
	if len(e) > maxNameLen {
		return pki.Errorf(pki.EBadRequest, "email address of %d bytes is longer than %d", len(e), maxNameLen)
	}
	bad := pki.Errorf(pki.EBadRequest, "invalid email address %q", e)
	if !isPrintableASCII(e) {
		return bad
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || a.Name != "" {
		return bad
	}
	at := strings.LastIndexByte(e, '@')
	if at <= 0 || strings.HasPrefix(e[at+1:], "*") || CheckDNSName(e[at+1:]) != nil {
		return bad
	}
	return nil
}

func checkURI(u *url.URL) error {
	if u == nil {
		return pki.Errorf(pki.EBadRequest, "empty URI in the subject alternative names")
	}
	s := u.String()
	if len(s) > maxNameLen {
		return pki.Errorf(pki.EBadRequest, "URI of %d bytes is longer than %d", len(s), maxNameLen)
	}
	if u.Scheme == "" || !isPrintableASCII(s) {
		return pki.Errorf(pki.EBadRequest, "invalid URI %q: it must be absolute and ASCII", s)
	}
	// RFC 5280 4.2.1.6: a URI with an authority must name a host.
	if u.Opaque == "" && strings.HasPrefix(s[len(u.Scheme)+1:], "//") && u.Hostname() == "" {
		return pki.Errorf(pki.EBadRequest, "invalid URI %q: it has an authority but no host", s)
	}
	return nil
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
