package credential_test

import (
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/credential"
)

// A password shows when it has one character that is not white space, a
// control or an invisible format character.
func TestHasVisible(t *testing.T) {
	for _, tc := range []struct {
		password string
		want     bool
	}{
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
	} {
		if got := credential.HasVisible(tc.password); got != tc.want {
			t.Errorf("HasVisible(%+q) = %v, want %v", tc.password, got, tc.want)
		}
	}
}
