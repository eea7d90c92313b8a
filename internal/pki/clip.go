package pki

import (
	"fmt"
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
