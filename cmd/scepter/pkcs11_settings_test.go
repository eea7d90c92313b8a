package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/ca"
)

// A PKCS#11 setting that names no module, no token or no PIN file is a
// configuration error (exit 2) that says PKCS#11 once, without the keys
// package's prefix; before it read "keys: PKCS#11: no module …".
func TestPKCS11IncompleteSettingsSaidOnce(t *testing.T) {
	pin := filepath.Join(t.TempDir(), "pin")
	tests := []struct {
		name  string
		flags pkcs11Flags
		want  string
	}{
		{"a token without a module", pkcs11Flags{token: "t", pinFile: pin}, "no module"},
		{"a module without a token", pkcs11Flags{module: "/m.so", pinFile: pin}, "no token"},
		{"no PIN file", pkcs11Flags{module: "/m.so", token: "t"}, "no PIN file"},
		{"a URI naming no module", pkcs11Flags{uri: "pkcs11:token=t?pin-source=" + pin}, "no module"},
		{"a URI with an unknown attribute", pkcs11Flags{uri: "pkcs11:token=t;colour=red"}, "--pkcs11-uri: unknown attribute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.flags.config()
			if exitCode(err) != 2 || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v (exit %d), want a usage error saying %q", err, exitCode(err), tt.want)
			}
			if strings.Count(err.Error(), "PKCS#11") > 1 || strings.Contains(err.Error(), "keys: ") {
				t.Errorf("want PKCS#11 said at most once and no package prefix: %v", err)
			}
		})
	}

	// Through the commands, as the re-check ran them.
	_, stderr, err := serveOnce(t, "--data-dir", t.TempDir(), "--pkcs11-module", "", "--pkcs11-token", "t", "--pkcs11-pin-file", pin)
	wantUsageError(t, "serve", err, stderr, []string{"PKCS#11: no module"})
	if strings.Contains(err.Error(), "keys: ") {
		t.Errorf("serve: a package prefix: %v", err)
	}
	dir, _ := caDataDir(t, ca.InitOptions{})
	for _, args := range [][]string{{"ca", "renew-ra"}, {"ca", "rollover"}, {"requests", "approve", "ID"}} {
		out, err := runCLI(append(args, "--data-dir", dir, "--pkcs11-token", "t", "--pkcs11-pin-file", pin)...)
		wantUsageError(t, strings.Join(args, " "), err, out, []string{"PKCS#11: no module"})
		if strings.Contains(err.Error(), "keys: ") {
			t.Errorf("%s: a package prefix: %v", strings.Join(args, " "), err)
		}
	}
}
