package postgres

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// PostgreSQL's text cannot hold a NUL character, nor, in a UTF8 database,
// invalid UTF-8, both of which SQLite stores as given. Text that may carry
// either from outside (every field of an audit record, whose hash must
// verify on exactly what was written; the subject of a CSR) goes through
// encText on the way in and decText on the way out: text without them is
// stored as it is, other text as escMarker followed by its Go-quoted form.
// Text that begins with escMarker is quoted too, so decoding is exact. An
// equality filter encodes its value the same way, so it still matches.

// escMarker is U+FFFE, a Unicode noncharacter: no real text begins with it.
const escMarker = "\uFFFE"

func encText(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) && !strings.HasPrefix(s, escMarker) {
		return s
	}
	return escMarker + strconv.Quote(s)
}

func decText(s string) string {
	q, ok := strings.CutPrefix(s, escMarker)
	if !ok {
		return s
	}
	if u, err := strconv.Unquote(q); err == nil {
		return u
	}
	return s
}
