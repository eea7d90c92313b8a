package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/keys"
)

// A PIN given where the PIN file's name belongs, in --pkcs11-uri's
// pin-source or --pkcs11-pin-file, is not printed by the errors of the
// PKCS#11 flags: neither when the file is missing nor when the two name
// different files.
func TestPKCS11FlagsHideAPINGivenAsItsFile(t *testing.T) {
	const pin = "HsmUserPin-1234"
	const uri = "pkcs11:token=scepter-ca?module-path=/no/such/libsofthsm2.so&pin-source="
	tests := []struct {
		name  string
		flags pkcs11Flags
		want  string
	}{
		{"pin-source holding the PIN", pkcs11Flags{uri: uri + pin}, "pin-source=file:/path/to/pin-file"},
		{"pin-file holding the PIN", pkcs11Flags{module: "/no/such/libsofthsm2.so", token: "scepter-ca", pinFile: pin}, "--pkcs11-pin-file /path/to/pin-file"},
		{"pin-file and pin-source disagree", pkcs11Flags{uri: uri + pin, pinFile: "/etc/scepter/pin"}, "name different files"},
		{"pin-source and pin-file disagree", pkcs11Flags{uri: uri + "file:/etc/scepter/pin", pinFile: pin}, "name different files"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := tt.flags.open()
			if err == nil {
				tok.Close()
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), pin) {
				t.Errorf("the PIN shows: %v", err)
			}
			if errors.Is(err, keys.ErrNoPKCS11) {
				return // built without cgo: the PIN file is never read
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error does not say %q: %v", tt.want, err)
			}
		})
	}
}
