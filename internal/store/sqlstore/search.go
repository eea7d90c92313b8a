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
	expr := prefix + "subject_dn || ' ' || " + prefix + "sans || ' ' || " + prefix + "serial_hex"
	for _, esc := range searchUnescapes {
		expr = "replace(" + expr + ", '" + strings.ReplaceAll(esc, "'", "''") + "', '" + esc[1:] + "')"
	}
	return "lower(" + expr + ")"
}
