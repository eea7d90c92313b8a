package csr

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

var dnAttributes = map[string]asn1.ObjectIdentifier{
	"CN":           {2, 5, 4, 3},
	"SERIALNUMBER": {2, 5, 4, 5},
	"C":            {2, 5, 4, 6},
	"L":            {2, 5, 4, 7},
	"ST":           {2, 5, 4, 8},
	"STREET":       {2, 5, 4, 9},
	"O":            {2, 5, 4, 10},
	"OU":           {2, 5, 4, 11},
	"POSTALCODE":   {2, 5, 4, 17},
	"DC":           {0, 9, 2342, 19200300, 100, 1, 25},
	"UID":          {0, 9, 2342, 19200300, 100, 1, 1},
	"EMAILADDRESS": {1, 2, 840, 113549, 1, 9, 1},
	"E":            {1, 2, 840, 113549, 1, 9, 1},
}

// ParseDN reads an RFC 4514 style name such as "CN=device-1,O=Acme" (a
// backslash escapes a comma, plus, backslash or another RFC 4514 special,
// or gives an octet as two hex digits) and returns its DER. As in
// RFC 4514 the most significant attribute comes last.
func ParseDN(s string) ([]byte, error) {
	var rdns pkix.RDNSequence
	for _, part := range splitUnescaped(s, ',') {
		part = trimUnescaped(part)
		if part == "" {
			continue
		}
		var rdn pkix.RelativeDistinguishedNameSET
		for _, atv := range splitUnescaped(part, '+') {
			k, v, ok := strings.Cut(atv, "=")
			if !ok {
				return nil, fmt.Errorf("%q is not TYPE=value", atv)
			}
			oid, ok := dnAttributes[strings.ToUpper(strings.TrimSpace(k))]
			if !ok {
				return nil, fmt.Errorf("unknown attribute type %q", strings.TrimSpace(k))
			}
			v, err := unescape(trimUnescaped(v))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", strings.TrimSpace(k), err)
			}
			if v == "" {
				return nil, fmt.Errorf("empty value for %s", k)
			}
			// X.501 §9.3, and the CA refuses it.
			if slices.ContainsFunc(rdn, func(a pkix.AttributeTypeAndValue) bool { return a.Type.Equal(oid) }) {
				return nil, fmt.Errorf("%s twice in one RDN (%q): give each its own RDN", strings.TrimSpace(k), part)
			}
			rdn = append(rdn, pkix.AttributeTypeAndValue{Type: oid, Value: v})
		}
		rdns = append(rdns, rdn)
	}
	if len(rdns) == 0 {
		return nil, errors.New("empty name")
	}
	for i, j := 0, len(rdns)-1; i < j; i, j = i+1, j-1 {
		rdns[i], rdns[j] = rdns[j], rdns[i]
	}
	return asn1.Marshal(rdns)
}

func splitUnescaped(s string, sep byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// trimUnescaped is s without the white space around it, but for a space
// a backslash escapes ("CN=x\ " ends in a space, as RFC 4514 writes one).
func trimUnescaped(s string) string {
	s = strings.TrimLeftFunc(s, unicode.IsSpace)
	t := strings.TrimRightFunc(s, unicode.IsSpace)
	if t != s && (len(t)-len(strings.TrimRight(t, "\\")))%2 == 1 {
		_, size := utf8.DecodeRuneInString(s[len(t):])
		t = s[:len(t)+size] // the escaped one stays (unescape judges it)
	}
	return t
}

// dnSpecials are the characters RFC 4514 §3 lets a backslash escape
// (besides a pair of hex digits).
const dnSpecials = "\"+,;<>\\ #="

// unescape reads an attribute value's RFC 4514 escapes: a backslash before
// one of dnSpecials stands for it, a backslash before two hex digits for
// that octet (the octets making UTF-8). Any other backslash is refused,
// not dropped: "CN=c\qx" read as "CN=cqx" would bind or ask for a name
// nobody wrote. So is what RFC 4514 allows only escaped (", ;, <, > and
// a leading #, which RFC 4514 reads as the hex of a BER value, not
// supported here), rather than read as text its writer may have meant
// otherwise (RFC 2253's ; between RDNs).
func unescape(s string) (string, error) {
	if strings.HasPrefix(s, "#") {
		return "", errors.New(`a value that starts with # is, in RFC 4514, the hex of a BER encoding, which is not taken here: write \# for a value that starts with a # sign`)
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			if strings.IndexByte(`";<>`, c) >= 0 {
				return "", fmt.Errorf(`%c must be escaped in a value (\%c); RDNs are separated by a comma`, c, c)
			}
			b.WriteByte(c)
			continue
		}
		switch {
		case i+1 == len(s):
			return "", errors.New(`the value ends in a backslash, which escapes nothing (RFC 4514: write \\ for a backslash)`)
		case strings.IndexByte(dnSpecials, s[i+1]) >= 0:
			b.WriteByte(s[i+1])
			i++
		case i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			octet, _ := hex.DecodeString(s[i+1 : i+3])
			b.Write(octet)
			i += 2
		default:
			r, _ := utf8.DecodeRuneInString(s[i+1:])
			return "", fmt.Errorf(`the escape \%c (%U) is not one of RFC 4514's: a backslash goes before one of , + " \ ; < > = # or a space, or before two hex digits (\2C for a comma); write \\ for a backslash`, r, r)
		}
	}
	if !utf8.ValidString(b.String()) {
		return "", errors.New(`its hex escapes (\XX) do not make UTF-8`)
	}
	return b.String(), nil
}

// AttributeOID returns the OID of a DN attribute type name ("CN", "O", …).
func AttributeOID(name string) (asn1.ObjectIdentifier, bool) {
	oid, ok := dnAttributes[strings.ToUpper(name)]
	return oid, ok
}

// SameName reports whether two DER names are the same name: equal bytes, or
// the same RDNs in the same order, each with the same attributes and values,
// where a value in one string type equals the same text in another
// (PrintableString "dev" is UTF8String "dev"). Anything else differs: a
// second CN, RDNs in another order, a value that is no string and not the
// same bytes. (Comparing rendered text would not do: pkix.Name keeps one
// CN, so CN=evil+CN=dev would read as CN=dev.)
func SameName(a, b []byte) bool {
	return SameNameBy(a, b, func(_ asn1.ObjectIdentifier, tag cbasn1.Tag, v []byte) string {
		return attributeValue(tag, v)
	})
}

// SameNameBy is SameName with each attribute's value compared as value
// gives it (a matching rule: equal strings are equal values).
func SameNameBy(a, b []byte, value func(asn1.ObjectIdentifier, cbasn1.Tag, []byte) string) bool {
	if string(a) == string(b) {
		return true
	}
	ra, okA := nameRDNs(a, value)
	rb, okB := nameRDNs(b, value)
	if !okA || !okB || len(ra) != len(rb) {
		return false
	}
	for i := range ra {
		if !slices.Equal(ra[i], rb[i]) {
			return false
		}
	}
	return true
}

// ErrNotAName: WalkName's input is not one DER Name.
var ErrNotAName = errors.New("not a DER Name")

// WalkName reads raw as one DER Name (SEQUENCE OF non-empty SET OF
// AttributeTypeAndValue) and nothing else: it calls atv with each
// attribute, and rdnDone (when not nil) after each RDN. It stops at atv's
// first error; a malformed name is ErrNotAName. empty reports a name of no
// RDN. The issuer, the lint and SameName read names with it.
func WalkName(raw []byte, atv func(oid asn1.ObjectIdentifier, tag cbasn1.Tag, value []byte) error, rdnDone func()) (empty bool, err error) {
	input := cryptobyte.String(raw)
	var rdns cryptobyte.String
	if !input.ReadASN1(&rdns, cbasn1.SEQUENCE) || !input.Empty() {
		return false, ErrNotAName
	}
	empty = rdns.Empty()
	for !rdns.Empty() {
		var set cryptobyte.String
		if !rdns.ReadASN1(&set, cbasn1.SET) || set.Empty() {
			return false, ErrNotAName
		}
		for !set.Empty() {
			var seq, value cryptobyte.String
			var oid asn1.ObjectIdentifier
			var tag cbasn1.Tag
			if !set.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1ObjectIdentifier(&oid) ||
				!seq.ReadAnyASN1(&value, &tag) || !seq.Empty() {
				return false, ErrNotAName
			}
			if err := atv(oid, tag, value); err != nil {
				return false, err
			}
		}
		if rdnDone != nil {
			rdnDone()
		}
	}
	return empty, nil
}

// nameRDNs reads a DER Name as its RDNs, each the sorted list of its
// attributes as "OID=" and what value makes of the attribute's value.
func nameRDNs(raw []byte, value func(asn1.ObjectIdentifier, cbasn1.Tag, []byte) string) ([][]string, bool) {
	var rdns [][]string
	var rdn []string
	_, err := WalkName(raw, func(oid asn1.ObjectIdentifier, tag cbasn1.Tag, v []byte) error {
		rdn = append(rdn, oid.String()+"="+value(oid, tag, v))
		return nil
	}, func() {
		slices.Sort(rdn)
		rdns, rdn = append(rdns, rdn), nil
	})
	return rdns, err == nil
}

// attributeValue is a Name attribute's value for comparison: the text of
// a string type, whatever its encoding ("text:…"); the tag and bytes of
// anything else ("der:TAG:HEX").
func attributeValue(tag cbasn1.Tag, v []byte) string {
	switch tag {
	case cbasn1.UTF8String, cbasn1.PrintableString, cbasn1.IA5String, cbasn1.T61String, 18 /* NumericString */, 26 /* VisibleString */ :
		return "text:" + string(v)
	case 30: // BMPString, UTF-16
		if len(v)%2 != 0 {
			break
		}
		u := make([]uint16, len(v)/2)
		for i := range u {
			u[i] = uint16(v[2*i])<<8 | uint16(v[2*i+1])
			if utf16.IsSurrogate(rune(u[i])) {
				return fmt.Sprintf("der:%d:%x", tag, v) // no text: compared as bytes
			}
		}
		return "text:" + string(utf16.Decode(u))
	case 28: // UniversalString, UTF-32
		if len(v)%4 != 0 {
			break
		}
		r := make([]rune, len(v)/4)
		for i := range r {
			r[i] = rune(v[4*i])<<24 | rune(v[4*i+1])<<16 | rune(v[4*i+2])<<8 | rune(v[4*i+3])
			if !utf8.ValidRune(r[i]) {
				return fmt.Sprintf("der:%d:%x", tag, v)
			}
		}
		return "text:" + string(r)
	}
	return fmt.Sprintf("der:%d:%x", tag, v)
}

// AttributeText is a Name attribute's value as text, whatever string
// type spells it; ok is false for a value that is no text.
func AttributeText(tag cbasn1.Tag, value []byte) (text string, ok bool) {
	return strings.CutPrefix(attributeValue(tag, value), "text:")
}

// NameString renders a DER Name as RFC 4514 text ("" when it does not
// parse): every attribute, in the name's own order (the most significant
// RDN last), the attributes of a multi-valued RDN joined with "+". It does
// not go through pkix.Name, which keeps one value per known attribute type
// (CN=allowed+CN=other would read as CN=other) and reorders the attributes;
// whoever judges or records a subject must see all of it. A value that is
// no text, or of a type without a short name, is "#" and its DER in hex, as
// RFC 4514 writes it.
func NameString(raw []byte) string {
	var b strings.Builder
	var rdns []string
	var atvs []string
	_, err := WalkName(raw, func(oid asn1.ObjectIdentifier, tag cbasn1.Tag, value []byte) error {
		atvs = append(atvs, attributeString(oid, tag, value))
		return nil
	}, func() {
		rdns = append(rdns, strings.Join(atvs, "+"))
		atvs = nil
	})
	if err != nil {
		return ""
	}
	for i := len(rdns) - 1; i >= 0; i-- {
		b.WriteString(rdns[i])
		if i > 0 {
			b.WriteByte(',')
		}
	}
	return b.String()
}

// shortNames are the attribute types RFC 4514 (and Go's pkix) print by
// name; any other type is printed as its OID with a hex value, as pkix does.
var shortNames = map[string]string{
	"2.5.4.3": "CN", "2.5.4.5": "SERIALNUMBER", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST",
	"2.5.4.9": "STREET", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.17": "POSTALCODE",
}

// attributeString is one "TYPE=value" of RFC 4514.
func attributeString(oid asn1.ObjectIdentifier, tag cbasn1.Tag, value []byte) string {
	name, known := shortNames[oid.String()]
	text, isText := AttributeText(tag, value)
	if !known || !isText {
		if !known {
			name = oid.String()
		}
		var b cryptobyte.Builder
		b.AddASN1(tag, func(b *cryptobyte.Builder) { b.AddBytes(value) })
		der, err := b.Bytes()
		if err != nil { // a tag WalkName would not have read
			der = value
		}
		return name + "=#" + hex.EncodeToString(der)
	}
	return name + "=" + escapeValue(text)
}

// escapeValue escapes an attribute value as RFC 4514 section 2.4 asks (and
// as pkix does): the special characters, a leading "#" or space, a trailing
// space, and NUL as \00.
func escapeValue(v string) string {
	var b strings.Builder
	for i, c := range v {
		switch {
		case c == 0:
			b.WriteString(`\00`)
			continue
		case strings.ContainsRune(`,+"\<>;`, c),
			c == ' ' && (i == 0 || i == len(v)-1),
			c == '#' && i == 0:
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}
