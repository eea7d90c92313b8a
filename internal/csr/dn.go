package csr

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"strings"
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
// backslash escapes a comma, plus or backslash) and returns its DER. As in
// RFC 4514 the most significant attribute comes last.
func ParseDN(s string) ([]byte, error) {
	var rdns pkix.RDNSequence
	for _, part := range splitUnescaped(s, ',') {
		part = strings.TrimSpace(part)
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
			v = unescape(strings.TrimSpace(v))
			if v == "" {
				return nil, fmt.Errorf("empty value for %s", k)
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

func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// AttributeOID returns the OID of a DN attribute type name ("CN", "O", …).
func AttributeOID(name string) (asn1.ObjectIdentifier, bool) {
	oid, ok := dnAttributes[strings.ToUpper(name)]
	return oid, ok
}

// SameName reports whether two DER names are the same name: equal bytes,
// or equal RFC 4514 forms (the same name in another string encoding).
func SameName(a, b []byte) bool {
	if string(a) == string(b) {
		return true
	}
	na, nb := NameString(a), NameString(b)
	return na != "" && na == nb
}

// NameString renders a DER Name as RFC 4514 text ("" when it does not parse).
func NameString(raw []byte) string {
	var rdns pkix.RDNSequence
	if rest, err := asn1.Unmarshal(raw, &rdns); err != nil || len(rest) > 0 {
		return ""
	}
	var n pkix.Name
	n.FillFromRDNSequence(&rdns)
	return n.String()
}
