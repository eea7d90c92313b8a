// Package printable shows text that someone else wrote (a subject from a
// refused request, a name from the store, a server's refusal reason) so
// that it reads as what it is: the CLI, the client and the console share
// this one rule.
package printable

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// String is s with every character that is not printable written as a Go
// escape: C0 and C1 controls (escape sequences, line breaks, tabs), DEL,
// the bidirectional controls and every other format character (U+202E,
// U+200B, U+FEFF, U+00AD…), the line and paragraph separators, and bytes
// that are not UTF-8 (\xff). So such a value can neither clear or recolour
// a terminal nor forge a line, and it cannot read as another name on a
// page ("CN=adm\u200bin" is not "CN=admin"). Letters of every script,
// marks, digits, punctuation, symbols and the ASCII space stay as they
// are (strconv.IsPrint).
func String(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case !strconv.IsPrint(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
		s = s[size:]
	}
	return b.String()
}
