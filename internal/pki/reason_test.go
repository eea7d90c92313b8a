package pki

import "testing"

func TestReasonName(t *testing.T) {
	for _, tc := range []struct {
		code int
		name string
		ok   bool
	}{
		{ReasonUnspecified, "unspecified", true},
		{ReasonKeyCompromise, "keyCompromise", true},
		{ReasonCessationOfOperation, "cessationOfOperation", true},
		{ReasonCertificateHold, "certificateHold", true},
		{7, "", false}, // unused in RFC 5280
		{ReasonRemoveFromCRL, "removeFromCRL", true},
		{ReasonAACompromise, "aACompromise", true},
		{11, "", false},
		{-1, "", false},
	} {
		name, ok := ReasonName(tc.code)
		if name != tc.name || ok != tc.ok {
			t.Errorf("ReasonName(%d) = %q, %v; want %q, %v", tc.code, name, ok, tc.name, tc.ok)
		}
	}
}
