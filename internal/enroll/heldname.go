package enroll

import (
	"encoding/asn1"
	"strings"

	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/csr"
)

var (
	oidNameDomainComponent = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}
	oidNameEmailAddress    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
)

// sameHeldSubject: a retry's subject (b) names what the held request's
// subject (a) names, as RFC 5280 §7.1 compares names: the same RDNs in the
// same order, each with the same attributes in any order, each value
// compared after RFC 4518's string preparation, as far as it matters for
// the names devices send:
//
//   - a text value in any string type is its text (PrintableString "dev"
//     is UTF8String "dev", as csr.SameName reads it);
//   - insignificant spaces go (RFC 4518 §2.6.1): leading and trailing
//     ones, and a run inside is one space; U+00A0 and the other Unicode
//     spaces count as spaces (RFC 4518 §2.2 maps them to SPACE);
//   - an attribute of DirectoryString syntax (CN, O, OU, L, ST, street,
//     title, uid…, ca.IsDirectoryStringAttribute), whose X.520 matching rule
//     is caseIgnoreMatch, is compared in any case, and so is a
//     domainComponent (RFC 5280 §7.3: as a DNS label); case is folded with
//     strings.ToLower, not RFC 4518's full case folding and NFKC: a name
//     that differs only there ("ß" and "SS") is told apart, which refuses
//     a retry rather than taking it for another request;
//   - an emailAddress by its domain in any case, its local part exactly
//     (csr.EmailKey, as an email SAN);
//   - every other attribute exactly, case and all: serialNumber, countryName
//     and dnQualifier are PrintableStrings that a device may mean
//     case-sensitively (a serial number), and an attribute type we do not
//     know has a matching rule we do not know.
//
// A value that is no text compares by its tag and bytes. Only the held
// request's match uses it: issuance, renewals and bound challenges compare
// names with csr.SameName.
func sameHeldSubject(a, b []byte) bool {
	return csr.SameNameBy(a, b, preparedValue)
}

// preparedValue is an attribute's value as sameHeldSubject compares it.
func preparedValue(oid asn1.ObjectIdentifier, tag cbasn1.Tag, value []byte) string {
	text, ok := csr.AttributeText(tag, value)
	if !ok {
		return text // "der:TAG:HEX", never equal to a text's "text:…"
	}
	prepared := strings.Join(strings.Fields(text), " ")
	if prepared == "" && text != "" {
		prepared = " " // RFC 4518 §2.6.1: spaces alone are one space
	}
	switch {
	case ca.IsDirectoryStringAttribute(oid), oid.Equal(oidNameDomainComponent):
		prepared = strings.ToLower(prepared)
	case oid.Equal(oidNameEmailAddress):
		prepared = csr.EmailKey(prepared)
	}
	return "text:" + prepared
}
