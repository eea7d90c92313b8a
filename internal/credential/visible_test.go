package credential_test

import (
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/credential"
)

// A password shows when it has one letter, number, punctuation or symbol
// that renders as something: white space, controls, format characters,
// marks alone and the letters and symbols that render as nothing (r128 D1)
// are not enough.
func TestHasVisible(t *testing.T) {
	for _, tc := range []struct {
		password string
		want     bool
	}{
		// r128 D1: twelve of each was taken.
		{strings.Repeat("\u3164", 12), false},       // Hangul filler
		{strings.Repeat("\uffa0", 12), false},       // halfwidth Hangul filler
		{strings.Repeat("\u115f", 12), false},       // Hangul choseong filler
		{strings.Repeat("\u1160", 12), false},       // Hangul jungseong filler
		{strings.Repeat("\ufe0f", 12), false},       // variation selector 16
		{strings.Repeat("\u0301", 12), false},       // combining acute, no base
		{"\u0301", false},                           // a lone one
		{strings.Repeat("\u2800", 12), false},       // braille pattern blank
		{"\U000e0100\U000e01ef\u180b\u034f", false}, // more selectors, the grapheme joiner
		{"\u17b4\u17b5\U000e0041\U000e007f", false}, // Khmer inherent vowels, tags
		{"\ue000\U000f0000\U0010fffd", false},       // private use draws nothing known
		{"\u0378\U0003fffe", false},                 // unassigned
		{strings.Repeat("\u3164 \u200b\ufe0f", 4), false},
		{strings.Repeat(" ", 12), false},
		{strings.Repeat("\t", 12), false},
		{strings.Repeat("\u00a0\u3000", 6), false},
		{strings.Repeat("\u200b", 12), false},
		{"\u200c\u200d\u2060\ufeff\u00ad\u180e", false},
		{"\u202e\u2066\u2069\u2028\u2029\u0085", false},
		{"", false},
		{"     x      ", true},
		{strings.Repeat("\u200b", 11) + "é", true},
		{"correct horse battery staple", true},
		{"パスワードパスワード", true},
		{"🔑🔑🔑", true},
		{"❤\ufe0f❤\ufe0f", true},        // an emoji with its selector
		{"كلمة المرور السرية", true},    // Arabic
		{"密码密码密码密码密码密码", true},          // CJK
		{"비밀번호비밀번호", true},              // Hangul syllables
		{"\u3164\u3164\u3164ㄱ", true},   // a filler beside a jamo that shows
		{"e\u0301e\u0301e\u0301", true}, // a mark on a base
		{"\u2801\u2802", true},          // braille with dots
		{"............", true},          // punctuation
		{"٣٤٥٦٧٨٩٠١٢٣٤", true},          // Arabic-Indic digits
		{"$$$$$$$$$$$$", true},          // symbols
	} {
		if got := credential.HasVisible(tc.password); got != tc.want {
			t.Errorf("HasVisible(%+q) = %v, want %v", tc.password, got, tc.want)
		}
	}
}
