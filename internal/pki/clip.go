package pki

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Clip returns s cut to at most max bytes (at a character boundary) with
// the length it had, so that text a client chose (a label, a subject, a
// transaction ID, a reason quoting them) costs the audit trail and the
// log a bounded number of bytes per refusal.
func Clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", s[:cut], len(s))
}

// Plural is n and what, with an s for any n but 1: "1 attempt", "3
// attempts".
func Plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
