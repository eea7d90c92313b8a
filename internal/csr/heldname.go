package csr

import (
	"encoding/asn1"
	"encoding/json"
	"slices"
	"strings"

	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// directoryStringAttributes are the X.520 attribute types (2.5.4.N) of
// DirectoryString syntax (RFC 5280 Appendix A, X.520) a device may put in a
// subject: common name, surname, locality, state, street, organization,
// unit, title, description, business category, postal code, post office
// box, physical delivery office name, name, given name, initials,
// generation qualifier, house identifier, DMD name, pseudonym, role and
// organizationIdentifier.
var directoryStringAttributes = []int{3, 4, 7, 8, 9, 10, 11, 12, 13, 15, 17, 18, 19, 41, 42, 43, 44, 51, 54, 65, 72, 97}

var (
	// oidUserID is uid (RFC 4519, COSINE's userid): DirectoryString
	// syntax too.
	oidUserID = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}
	// The EV jurisdiction's locality and state (CA/B EV Guidelines
	// 9.2.4): DirectoryString as X.520's localityName and
	// stateOrProvinceName.
	oidJurisdictionLocality = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 60, 2, 1, 1}
	oidJurisdictionState    = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 60, 2, 1, 2}

	oidNameDomainComponent = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}
	oidNameEmailAddress    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
)

// IsDirectoryStringAttribute: oid is an attribute type of DirectoryString
// syntax (directoryStringAttributes, uid, the EV jurisdiction's locality
// and state), whose values compare without regard to case (X.520's
// caseIgnoreMatch).
func IsDirectoryStringAttribute(oid asn1.ObjectIdentifier) bool {
	if oid.Equal(oidJurisdictionLocality) || oid.Equal(oidJurisdictionState) || oid.Equal(oidUserID) {
		return true
	}
	return len(oid) == 4 && oid[0] == 2 && oid[1] == 5 && oid[2] == 4 && slices.Contains(directoryStringAttributes, oid[3])
}

// SameHeldName: a retry's subject (b) names what a held request's subject
// (a) names, as RFC 5280 §7.1 compares names: the same RDNs in the same
// order, each with the same attributes in any order, each value compared
// after RFC 4518's string preparation, as far as it matters for the names
// devices send:
//
//   - a text value in any string type is its text (PrintableString "dev"
//     is UTF8String "dev", as SameName reads it);
//   - insignificant spaces go (RFC 4518 §2.6.1): leading and trailing
//     ones, and a run inside is one space; U+00A0 and the other Unicode
//     spaces count as spaces (RFC 4518 §2.2 maps them to SPACE);
//   - an attribute of DirectoryString syntax (CN, O, OU, L, ST, street,
//     title, uid…, IsDirectoryStringAttribute), whose X.520 matching rule
//     is caseIgnoreMatch, is compared in any case, and so is a
//     domainComponent (RFC 5280 §7.3: as a DNS label); case is folded with
//     strings.ToLower, not RFC 4518's full case folding and NFKC: a name
//     that differs only there ("ß" and "SS") is told apart, which refuses
//     a retry rather than taking it for another request;
//   - an emailAddress by its domain in any case, its local part exactly
//     (EmailKey, as an email SAN);
//   - every other attribute exactly, case and all: serialNumber, countryName
//     and dnQualifier are PrintableStrings that a device may mean
//     case-sensitively (a serial number), and an attribute type we do not
//     know has a matching rule we do not know.
//
// A value that is no text compares by its tag and bytes. A held request's
// match uses it (the server's, and the client's marker of the key it keeps
// for one), and so does a renewal's (the subject it must keep, and SCEP's
// request signed by a certificate for its own subject): issuance and bound
// challenges compare names with SameName.
func SameHeldName(a, b []byte) bool {
	return SameNameBy(a, b, heldValue)
}

// HeldNameKey is a DER Name as SameHeldName compares it, as a string: two
// names SameHeldName calls the same have the same key, and two it tells
// apart have different keys (equal bytes aside, which it calls the same
// without reading them: a name that is not a well-formed Name has no key).
func HeldNameKey(raw []byte) (string, bool) {
	rdns, ok := nameRDNs(raw, heldValue)
	if !ok {
		return "", false
	}
	key, err := json.Marshal(rdns)
	if err != nil {
		return "", false
	}
	return string(key), true
}

// heldValue is an attribute's value as SameHeldName compares it.
func heldValue(oid asn1.ObjectIdentifier, tag cbasn1.Tag, value []byte) string {
	text, ok := AttributeText(tag, value)
	if !ok {
		return text // "der:TAG:HEX", never equal to a text's "text:…"
	}
	prepared := strings.Join(strings.Fields(text), " ")
	if prepared == "" && text != "" {
		prepared = " " // RFC 4518 §2.6.1: spaces alone are one space
	}
	switch {
	case IsDirectoryStringAttribute(oid), oid.Equal(oidNameDomainComponent):
		prepared = strings.ToLower(prepared)
	case oid.Equal(oidNameEmailAddress):
		prepared = EmailKey(prepared)
	}
	return "text:" + prepared
}
