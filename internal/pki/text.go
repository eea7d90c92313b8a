package pki

import "unicode"

// Unreadable reports the characters a name or a one-line text shown to a
// person must not hold: controls (a NUL cuts C strings short, line breaks
// forge log lines), the line and paragraph separators (U+2028, U+2029:
// line breaks too, to a browser or an editor), and every format character
// (Unicode category Cf): the bidirectional marks, overrides and isolates,
// which make text read as other text ("dev\u202egnp.exe"), and the
// invisible ones, which make two texts that differ read the same
// ("adm\u200bin" as "admin", with U+200B to U+200D, U+2060, U+FEFF,
// U+00AD, U+180E…).
func Unreadable(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.In(r, unicode.Zl, unicode.Zp)
}
