package pki

import (
	"testing"
	"time"
)

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

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 10 * time.Second: "10s", 90 * time.Second: "1m30s", time.Minute: "1m", 10 * time.Minute: "10m",
		2 * time.Hour: "2h", 89*time.Minute + 59*time.Second: "1h29m59s", 2*time.Hour + 10*time.Minute: "2h10m",
		1500 * time.Millisecond: "1s", 720 * time.Hour: "720h",
	} {
		if got := ShortDuration(d); got != want {
			t.Errorf("ShortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
