package pki

import "testing"

func TestUnreadable(t *testing.T) {
	for _, tc := range []struct {
		r    rune
		want bool
	}{
		{'a', false}, {'ä', false}, {'–', false}, {' ', false}, {'\u00a0', false}, {'漢', false},
		{'\n', true}, {'\x00', true}, {'\x1b', true}, {'\u0085', true},
		{'\u2028', true}, {'\u2029', true},
		{'\u202e', true}, {'\u2066', true}, {'\u200f', true}, {'\u061c', true},
		{'\u200b', true}, {'\u200d', true}, {'\u2060', true}, {'\ufeff', true}, {'\u00ad', true},
	} {
		if got := Unreadable(tc.r); got != tc.want {
			t.Errorf("Unreadable(%U) = %v, want %v", tc.r, got, tc.want)
		}
	}
}
