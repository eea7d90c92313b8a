package console

import (
	"testing"
	"time"
)

func TestParseTTL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration // 0: refused
	}{
		{"60m", time.Hour},
		{" 24h ", 24 * time.Hour},
		{"7d", 7 * 24 * time.Hour},
		{"1s", time.Second},
		{"", 0},
		{"0", 0},
		{"0d", 0},
		{"-5h", 0},
		{"1ns", 0},
		{"500ms", 0},
		{"999ms", 0},
		{"soon", 0},
	} {
		got, err := parseTTL(tc.in)
		if tc.want == 0 {
			if _, ok := err.(badInput); !ok {
				t.Errorf("parseTTL(%q) = %s, %v; want a bad-input refusal", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseTTL(%q) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}
