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

// key is a lookup key as PostgreSQL can take it. Text that no stored row
// can hold (a NUL, invalid UTF-8: a login name, a filter or a path segment
// a client chose) would fail the statement, which the edges answer with
// 500; encoded as encText encodes it, it matches nothing, or the row whose
// text was stored so, as SQLite would.
func key(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	return encText(s)
}
