package pki

import (
	"math/big"
	"testing"
)

// A serial is shown in whole bytes, as openssl and the certificate's DER
// have it: 0e67…, not e67… (r91 D6).
func TestShownSerial(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"e67e559a4313c4cc6c73967d742c8e6", "0e67e559a4313c4cc6c73967d742c8e6"},
		{"7f", "7f"},
		{"1", "01"},
		{"abc", "0abc"},
		{"", ""},
		{"not hex", "not hex"},
	} {
		if got := ShownSerial(tc.in); got != tc.want {
			t.Errorf("ShownSerial(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	n, _ := new(big.Int).SetString("0e67e559a4313c4cc6c73967d742c8e6", 16)
	if got := SerialText(n); got != "0e67e559a4313c4cc6c73967d742c8e6" {
		t.Errorf("SerialText = %q", got)
	}
	if got := ShownRenewedFrom("ab12:e67"); got != "ab12:0e67" {
		t.Errorf("ShownRenewedFrom = %q", got)
	}
}
