package pki

import (
	"strings"
	"time"
	"unicode"
)

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

// ShortDuration is d, in whole seconds, as a person types a lifetime or a
// wait: "1h29m", "2h", "90s" → "1m30s", not Go's "1h29m0s" and "2h0m0s".
func ShortDuration(d time.Duration) string {
	s := d.Truncate(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
