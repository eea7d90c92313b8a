package sqlstore

import "strings"

// A subject is stored as RFC 4514 text, in which a comma, a plus and a few
// others inside a value are escaped with a backslash: "CN=Doe\, John". A
// person searches for what they see, "Doe, John". So the search index holds
// the text with those escapes removed, and a search term loses them the
// same way: "Doe, John" and "Doe\, John" both find the certificate, and
// "CN=Doe, John,O=Acme" still matches across attributes.
//
// Both sides go through the same chain of replacements (SQL replace() in
// the index, strings.ReplaceAll on the term), the escaped backslash last,
// so they agree on any text. The stores' migrations (0016) spell
// SearchText's expression out; a test keeps them equal.
//
// The index holds subject, SANs and serial as one text, the SANs as they
// are stored, a JSON array: it also holds brackets, quotes and commas no
// certificate has ("[]", `localhost"`, `","`), and text that runs from one
// value into the next. So the index only narrows the candidates: a search
// also requires the term to be a substring of the subject (SubjectText),
// of one SAN (lower case) or of the serial, and a term that runs from one
// into another (the subject into a SAN, say) matches nothing.

// searchUnescapes are the RFC 4514 escapes the search text drops, in the
// order they are replaced.
var searchUnescapes = []string{`\,`, `\+`, `\"`, `\<`, `\>`, `\;`, `\=`, `\#`, `\ `, `\\`}

// SearchTerm is a search term as the search index holds text: trimmed,
// lower case, RFC 4514 escapes removed.
func SearchTerm(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, esc := range searchUnescapes {
		s = strings.ReplaceAll(s, esc, esc[1:])
	}
	return s
}

// SearchText is the SQL expression of a certificate's search text, on the
// columns named with prefix ("" or "new." or "old."): subject, SANs and
// serial, lower case, RFC 4514 escapes removed as SearchTerm removes them.
func SearchText(prefix string) string {
	return searchLower(prefix + "subject_dn || ' ' || " + prefix + "sans || ' ' || " + prefix + "serial_hex")
}

// SubjectText is the SQL expression of a certificate's subject as a search
// term is matched with it: lower case, RFC 4514 escapes removed, as in
// SearchText.
func SubjectText() string {
	return searchLower("subject_dn")
}

// searchLower is the SQL expression of text expr as a search sees it:
// lower case, without the RFC 4514 escapes SearchTerm removes.
func searchLower(expr string) string {
	for _, esc := range searchUnescapes {
		expr = "replace(" + expr + ", '" + strings.ReplaceAll(esc, "'", "''") + "', '" + esc[1:] + "')"
	}
	return "lower(" + expr + ")"
}

// SerialMatch is how a search term written as openssl prints a serial
// also matches the stored serial_hex, which is hex without colons or
// leading zeros: openssl pads the first octet ("06D5…" for serial 6d5…)
// and -text separates octets with colons ("06:d5:66:…"), so the term
// itself is found in no search text.
type SerialMatch struct {
	// Contains: serial_hex holds these digits (the term without its
	// colons) anywhere; "" when the term has no colons, and the search
	// text finds them as they are.
	Contains string
	// Prefix: serial_hex starts with these digits (the term's without
	// their leading zeros, which only pad the first octet); "" when the
	// term starts with no zero.
	Prefix string
}

// Core is a substring of every serial_hex the match finds: what an index
// of the search text narrows the candidates with.
func (m SerialMatch) Core() string {
	if m.Prefix != "" {
		return m.Prefix
	}
	return m.Contains
}

// Conds are m's conditions on serial_hex, to be ORed with the search
// text's: patterns of hex digits only, nothing to escape for LIKE.
func (m SerialMatch) Conds(a *Args) []string {
	var conds []string
	if m.Contains != "" {
		conds = append(conds, "serial_hex LIKE "+a.Add("%"+m.Contains+"%"))
	}
	if m.Prefix != "" {
		conds = append(conds, "serial_hex LIKE "+a.Add(m.Prefix+"%"))
	}
	return conds
}

// SerialSearch reads a search term (SearchTerm's) as a serial or a part
// of one, written as openssl prints it: hex digits, with an optional 0x,
// or in octets separated by colons (an inner octet of two digits; the
// first and last may be cut, and a colon may end a line of -text output).
// ok is false when the term is no such serial, or when the search text
// finds it as it is (no colon, no leading zero). A term with colons that
// reads otherwise ("fe80::1", "12:30:00.5") is no serial.
func SerialSearch(term string) (m SerialMatch, ok bool) {
	digits := strings.TrimPrefix(term, "0x")
	if strings.Contains(digits, ":") {
		groups := strings.Split(strings.Trim(digits, ":"), ":")
		for i, g := range groups {
			if len(g) == 0 || len(g) > 2 || (len(g) == 1 && i != 0 && i != len(groups)-1) {
				return SerialMatch{}, false
			}
		}
		digits = strings.Join(groups, "")
		m.Contains = digits
	}
	if digits == "" || strings.Trim(digits, "0123456789abcdef") != "" {
		return SerialMatch{}, false
	}
	if trimmed := strings.TrimLeft(digits, "0"); trimmed != digits && trimmed != "" {
		m.Prefix = trimmed
	}
	if digits != term && m.Contains == "" && m.Prefix == "" {
		// 0x and digits without leading zeros: the digits themselves.
		m.Contains = digits
	}
	return m, m.Contains != "" || m.Prefix != ""
}
