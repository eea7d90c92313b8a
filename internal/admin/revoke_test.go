package admin

import "testing"

func TestNormalizeSerial(t *testing.T) {
	for in, want := range map[string]string{"0x0A:bc": "abc", "ABC": "abc", "00ff": "ff", "0XFF": "ff", " 1f ": "1f"} {
		got, err := NormalizeSerial(in)
		if err != nil || got != want {
			t.Errorf("NormalizeSerial(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "xyz", "0", "-1", "0x"} {
		if _, err := NormalizeSerial(bad); err == nil {
			t.Errorf("NormalizeSerial(%q) succeeded", bad)
		}
	}
}

func TestParseReason(t *testing.T) {
	for in, want := range map[string]int{"": 0, "unspecified": 0, "keyCompromise": 1, "KEYCOMPROMISE": 1, "cACompromise": 2,
		"affiliationChanged": 3, "superseded": 4, "cessationOfOperation": 5, "certificateHold": 6, "privilegeWithdrawn": 9} {
		got, err := ParseReason(in)
		if err != nil || got != want {
			t.Errorf("ParseReason(%q) = %d, %v; want %d", in, got, err, want)
		}
		if in != "" && in != "KEYCOMPROMISE" && ReasonName(want) != in {
			t.Errorf("ReasonName(%d) = %q, want %q", want, ReasonName(want), in)
		}
	}
	for _, bad := range []string{"removeFromCRL", "8", "compromised", "7"} {
		if _, err := ParseReason(bad); err == nil {
			t.Errorf("ParseReason(%q) succeeded", bad)
		}
	}
}
