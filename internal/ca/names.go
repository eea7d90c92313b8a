package ca

import (
	"encoding/asn1"
	"net"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

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
	}
)

// subjectInfo is what Issue needs to know about a verbatim subject.
type subjectInfo struct {
	empty  bool
	emails []string // emailAddress attributes
}

// parseSubject checks that raw is one DER Name (SEQUENCE OF SET OF
// AttributeTypeAndValue) and nothing else, and checks the attribute bounds.
func parseSubject(raw []byte) (subjectInfo, error) {
	var info subjectInfo
	if len(raw) == 0 {
		info.empty = true
		return info, nil
	}
	bad := func() (subjectInfo, error) {
		return info, pki.Errorf(pki.EBadRequest, "the subject is not a valid distinguished name")
	}
	input := cryptobyte.String(raw)
	var rdns cryptobyte.String
	if !input.ReadASN1(&rdns, cbasn1.SEQUENCE) || !input.Empty() {
		return bad()
	}
	info.empty = rdns.Empty()
	for !rdns.Empty() {
		var set cryptobyte.String
		if !rdns.ReadASN1(&set, cbasn1.SET) || set.Empty() {
			return bad()
		}
		for !set.Empty() {
			var atv cryptobyte.String
			var oid asn1.ObjectIdentifier
			var tag cbasn1.Tag
			var value cryptobyte.String
			if !set.ReadASN1(&atv, cbasn1.SEQUENCE) ||
				!atv.ReadASN1ObjectIdentifier(&oid) ||
				!atv.ReadAnyASN1(&value, &tag) || !atv.Empty() {
				return bad()
			}
			s, ok := decodeDirectoryString(tag, value)
			if oid.Equal(oidEmailAddress) {
				// RFC 5280 wants IA5String, but Go and others write
				// UTF8String; any readable string is accepted.
				if !ok {
					return info, pki.Errorf(pki.EBadRequest, "the subject emailAddress cannot be read")
				}
				info.emails = append(info.emails, s)
			}
			for _, b := range subjectBounds {
				if oid.Equal(b.oid) && ok && utf8.RuneCountInString(s) > b.max {
					return info, pki.Errorf(pki.EBadRequest, "the subject %s is longer than %d characters", b.name, b.max)
				}
			}
		}
	}
	return info, nil
}

// decodeDirectoryString decodes the string types devices use; ok is false
// for other types, which are left to the linter.
func decodeDirectoryString(tag cbasn1.Tag, v []byte) (string, bool) {
	switch int(tag) {
	case asn1.TagUTF8String, asn1.TagPrintableString, asn1.TagIA5String, asn1.TagT61String, asn1.TagNumericString:
		if !utf8.Valid(v) {
			return "", false
		}
		return string(v), true
	case asn1.TagBMPString:
		if len(v)%2 != 0 {
			return "", false
		}
		u := make([]uint16, len(v)/2)
		for i := range u {
			u[i] = uint16(v[2*i])<<8 | uint16(v[2*i+1])
		}
		return string(utf16.Decode(u)), true
	}
	return "", false
}

// checkNames enforces the profile's SAN bound and the syntax of each name.
func checkNames(p pki.Profile, req *Request, subj subjectInfo) error {
	n := len(req.DNSNames) + len(req.EmailAddresses) + len(req.IPAddresses) + len(req.URIs)
	if n > max(p.MaxSANs, 0) {
		return pki.Errorf(pki.EBadRequest, "%d subject alternative names requested, the profile allows at most %d", n, max(p.MaxSANs, 0))
	}
	if n == 0 && subj.empty {
		return pki.Errorf(pki.EBadRequest, "the request has neither a subject nor a subject alternative name")
	}
	for _, d := range req.DNSNames {
		if err := checkDNSName(d); err != nil {
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

// checkDNSName accepts ASCII host names (IDNs as A-labels): labels of 1-63
// letters, digits, hyphens and underscores, not starting or ending with a
// hyphen, at most 253 characters, and a wildcard only as the whole leftmost
// label. Underscores are outside RFC 1034's preferred syntax but common in
// internal host names, so they are allowed.
func checkDNSName(d string) error {
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
	if at <= 0 || strings.HasPrefix(e[at+1:], "*") || checkDNSName(e[at+1:]) != nil {
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
