//go:build cgo

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/keys"
)

// A PIN file scepter refuses or cannot find (given through --pkcs11-uri's
// pin-source or --pkcs11-pin-file, in serve and in the CA commands) is a
// configuration error, exit 2, as a missing --challenge-file or pin-value=
// is; its message still shows no PIN. A PIN the token refuses, or a token
// that is not there, stays a failure (exit 1). Before, all exited 1.
func TestPKCS11PINFileRefusalsExit2(t *testing.T) {
	hsm := hsmPool.Take(t)
	const pin = "Pin98765Zq"
	pinFile := func(t *testing.T, dir string, mode os.FileMode, content string) string {
		t.Helper()
		path := filepath.Join(dir, "pin")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tests := []struct {
		name   string
		token  string                                // the token label given; hsm.Label when empty
		module func(t *testing.T, dir string) string // the module given; SoftHSM's when nil
		file   func(t *testing.T, dir string) string
		exit   int
		want   string
	}{
		{"a PIN where the file belongs", "", nil, func(*testing.T, string) string { return pin }, 2, "names no file scepter can read"},
		{"a missing file", "", nil, func(_ *testing.T, dir string) string { return filepath.Join(dir, "no-such-pin") }, 2, "no such file"},
		{"mode 0640", "", nil, func(t *testing.T, dir string) string { return pinFile(t, dir, 0o640, hsm.PIN+"\n") }, 2, "chmod 600"},
		{"in a directory others may write", "", nil, func(t *testing.T, dir string) string {
			open := filepath.Join(dir, "open")
			if err := os.Mkdir(open, 0o700); err != nil {
				t.Fatal(err)
			}
			p := pinFile(t, open, 0o600, hsm.PIN+"\n")
			if err := os.Chmod(open, 0o777); err != nil {
				t.Fatal(err)
			}
			return p
		}, 2, "chmod go-w"},
		{"an empty first line", "", nil, func(t *testing.T, dir string) string { return pinFile(t, dir, 0o600, "\n"+pin+"\n") }, 2, "first line is empty"},
		{"a PIN the token refuses", "", nil, func(t *testing.T, dir string) string { return pinFile(t, dir, 0o600, "99999999\n") }, 1, "wrong PKCS#11 PIN"},
		{"a token that is not there", "no-such-token", nil, func(t *testing.T, dir string) string { return pinFile(t, dir, 0o600, hsm.PIN+"\n") }, 1, "token not found"},
		{"a module that is not there", "", func(_ *testing.T, dir string) string { return filepath.Join(dir, "no-such-module.so") },
			func(t *testing.T, dir string) string { return pinFile(t, dir, 0o600, hsm.PIN+"\n") }, 2, "no-such-module.so does not exist"},
		{"a module that is no PKCS#11 library", "", func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "not-a-library.so")
			if err := os.WriteFile(path, []byte("not an ELF file\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			return path
		}, func(t *testing.T, dir string) string { return pinFile(t, dir, 0o600, hsm.PIN+"\n") }, 2, "not-a-library.so is not a PKCS#11 library"},
	}
	for _, tt := range tests {
		label := tt.token
		if label == "" {
			label = hsm.Label
		}
		for _, how := range []string{"pin-file", "uri"} {
			t.Run(tt.name+"/"+how, func(t *testing.T) {
				path := tt.file(t, t.TempDir())
				module := hsm.Env.Module
				if tt.module != nil {
					module = tt.module(t, t.TempDir())
				}
				flags := pkcs11Flags{module: module, token: label, pinFile: path}
				if how == "uri" {
					flags = pkcs11Flags{uri: "pkcs11:token=" + label + "?module-path=" + module + "&pin-source=" + path}
				}
				tok, err := flags.open()
				if err == nil {
					tok.Close()
					t.Fatal("no error")
				}
				if got := exitCode(err); got != tt.exit {
					t.Errorf("exit %d, want %d: %v", got, tt.exit, err)
				}
				if !strings.Contains(err.Error(), tt.want) {
					t.Errorf("error does not say %q: %v", tt.want, err)
				}
				if !strings.Contains(err.Error(), "PKCS#11") || strings.HasPrefix(err.Error(), "PKCS#11: PKCS#11") || strings.Contains(err.Error(), "keys: ") {
					t.Errorf("want the error to name PKCS#11, not to begin with it twice, and no package prefix: %v", err)
				}
				if strings.Contains(err.Error(), pin) || strings.Contains(err.Error(), hsm.PIN) {
					t.Errorf("the PIN shows: %v", err)
				}
				if ours, driver, ok := strings.Cut(err.Error(), ": failed to log"); ok && strings.Count(ours, "PKCS#11") != 1 {
					// The driver's "pkcs11: 0xA0: CKR_PIN_INCORRECT" stays, for support.
					t.Errorf("want our part of a refused login to say PKCS#11 once: %q, then %q", ours, driver)
				}
				if tt.exit == 1 && errors.Is(err, keys.ErrPINFile) {
					t.Errorf("a runtime failure marked as a PIN file refusal: %v", err)
				}
			})
		}
	}

	// The commands that take the flags pass the exit status on.
	bad := pinFile(t, t.TempDir(), 0o640, hsm.PIN+"\n")
	p11 := []string{"--pkcs11-module", hsm.Env.Module, "--pkcs11-token", hsm.Label, "--pkcs11-pin-file", bad}
	serveDir := filepath.Join(t.TempDir(), "data")
	_, stderr, err := serveOnce(t, append([]string{"--data-dir", serveDir}, p11...)...)
	wantUsageError(t, "serve", err, stderr, []string{"chmod 600"})
	// r72: a refused token leaves no new database behind; neither does
	// one that refuses the PIN (exit 1).
	wrong := pinFile(t, t.TempDir(), 0o600, "99999999\n")
	_, _, err = serveOnce(t, "--data-dir", serveDir, "--pkcs11-module", hsm.Env.Module, "--pkcs11-token", hsm.Label, "--pkcs11-pin-file", wrong)
	if exitCode(err) != 1 || !strings.Contains(fmt.Sprint(err), "wrong PKCS#11 PIN") {
		t.Errorf("serve with a wrong PIN: %v (exit %d)", err, exitCode(err))
	}
	if names, _ := os.ReadDir(serveDir); len(names) > 0 {
		var list []string
		for _, n := range names {
			if n.Name() != "serve.lock" { // the data directory's lock, empty
				list = append(list, n.Name())
			}
		}
		if len(list) > 0 {
			t.Errorf("serve refused by the token left %v in the new data directory", list)
		}
	}
	dir, _ := caDataDir(t, ca.InitOptions{})
	_, stderr, err = runCA(t, nil, dir, append([]string{"rollover", "--switch-in", "48h"}, p11...)...)
	wantUsageError(t, "ca rollover", err, stderr, []string{"chmod 600"})
}
