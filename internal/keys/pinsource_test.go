package keys

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// A PIN put where the PIN file's name belongs (pin-source=1234, or
// --pkcs11-pin-file 1234) is never printed in the error that refuses it:
// only a name that is plainly a path (it holds a '/') is shown, and the
// error says how to give the file.
func TestPINSourceErrorsHideThePIN(t *testing.T) {
	const pin = "HsmUserPin-1234"
	missingDir := filepath.Join(t.TempDir(), "no-such-dir", "pin")
	tests := []struct {
		name string
		uri  string // parsed, then its PIN file read
		file string // read as the PIN file when uri is empty
		want string // the error says this
		show string // and shows this (a path), when set
	}{
		{"pin-source holding the PIN", "pkcs11:token=t?module-path=/m.so&pin-source=" + pin, "", "pin-source=file:/path/to/pin-file", ""},
		{"pin-file holding the PIN", "", pin, "--pkcs11-pin-file /path/to/pin-file", ""},
		{"pin-source PIN with a colon", "pkcs11:token=t?module-path=/m.so&pin-source=Hsm:UserPin-1234", "", "only file: is supported", ""},
		{"file: URI whose host is the PIN", "pkcs11:token=t?module-path=/m.so&pin-source=file://" + pin + "/x", "", "names the host", ""},
		{"missing file given as a path", "pkcs11:token=t?module-path=/m.so&pin-source=file:" + missingDir, "", "no such file", missingDir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			cfg := PKCS11Config{PINFile: tt.file}
			if tt.uri != "" {
				cfg, err = ParsePKCS11URI(tt.uri)
			}
			if err == nil {
				_, err = cfg.readPIN()
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, secret := range []string{pin, "UserPin-1234"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the PIN shows: %v", err)
				}
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error does not say %q: %v", tt.want, err)
			}
			if tt.show != "" {
				if !strings.Contains(err.Error(), tt.show) {
					t.Errorf("error does not name the path %s: %v", tt.show, err)
				}
				if !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("errors.Is(fs.ErrNotExist) = false: %v", err)
				}
			}
		})
	}
}
