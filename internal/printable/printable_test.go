package printable

import "testing"

func TestString(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"plain", "CN=device-1,O=Example", "CN=device-1,O=Example"},
		{"other scripts and marks stay", "CN=Grüße 東京 नमस्ते", "CN=Grüße 東京 नमस्ते"},
		{"escape sequence and a forged line", "denied\x1b[2J\nissued CN=x", `denied\x1b[2J\nissued CN=x`},
		{"invalid UTF-8", "bad \xff byte", `bad \xff byte`},
		{"C1 control", "a\u009b31m", `a\u009b31m`},
		{"bidi override", "CN=printer-7 \u202enimda\u202c", `CN=printer-7 \u202enimda\u202c`},
		{"bidi isolates and marks", "\u2066\u2069\u200e\u200f\u061c", `\u2066\u2069\u200e\u200f\u061c`},
		{"zero width space", "CN=adm\u200bin", `CN=adm\u200bin`},
		{"zero width joiners and word joiner", "a\u200c\u200d\u2060b", `a\u200c\u200d\u2060b`},
		{"byte order mark", "CN=adm\ufeffin", `CN=adm\ufeffin`},
		{"soft hyphen", "CN=adm\u00adin", `CN=adm\u00adin`},
		{"Mongolian vowel separator", "CN=adm\u180ein", `CN=adm\u180ein`},
		{"line and paragraph separators", "a\u2028b\u2029c", `a\u2028b\u2029c`},
	} {
		if got := String(tc.in); got != tc.want {
			t.Errorf("%s: String(%q) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
}
