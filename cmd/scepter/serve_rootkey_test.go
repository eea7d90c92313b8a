package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/keys"
)

// serve encrypts a new CA's root.key with SCEPTER_ROOT_KEY_PASSPHRASE, as
// ca rollover and ca root export read the key with it (both it and
// --root-key-passphrase-file are refused: TestSecretGivenTwoWaysIsRefused).
// serve read only the file, so an operator who set only the variable got an
// unencrypted root.key.
func TestServeEncryptsRootKeyWithEnvironmentPassphrase(t *testing.T) {
	fromFile := writePassFile(t, "file passphrase")
	tests := []struct {
		name    string
		vars    map[string]string
		args    []string
		want    string // the passphrase that opens root.key; "" for none
		wantOut string
	}{
		{"environment", map[string]string{rootKeyPassphraseEnv: "environment passphrase"}, nil, "environment passphrase", "(encrypted)"},
		{"file", nil, []string{"--root-key-passphrase-file", fromFile}, "file passphrase", "(encrypted)"},
		{"empty environment", map[string]string{rootKeyPassphraseEnv: ""}, nil, "", "(not encrypted)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			rootKey := filepath.Join(dir, "ca", ca.RootKeyFile)
			args := append([]string{"--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test", "--data-dir", dir}, tt.args...)
			stdout, stderr, err := serveOnceWith(t, tt.vars, args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, stderr)
			}
			if !strings.Contains(stdout, rootKey+" "+tt.wantOut) {
				t.Errorf("start-up output lacks %q:\n%s", rootKey+" "+tt.wantOut, stdout)
			}
			enc, err := keys.KeyFileEncrypted(rootKey)
			if err != nil || enc != (tt.want != "") {
				t.Fatalf("root.key encrypted = %v (%v), want %v", enc, err, tt.want != "")
			}
			if tt.want == "" {
				return
			}
			if _, err := keys.LoadKeyFileWithPassphrase(rootKey, []byte(tt.want)); err != nil {
				t.Errorf("root.key does not open with %q: %v", tt.want, err)
			}
		})
	}
}
