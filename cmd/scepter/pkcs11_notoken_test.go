//go:build cgo

package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/keys"
)

// A command that needs the CA's keys, run on a data directory whose keys
// are in a token without the token flags, is a configuration error (exit
// 2) that says so once and names the flags. Before, 'requests approve'
// said "internal: signing the certificate: keys: …" and the others "PKCS#11
// token" twice, all with exit 1; nothing was issued or changed.
func TestPKCS11TokenNotGivenExit2(t *testing.T) {
	hsm := hsmPool.Take(t)
	p11 := []string{"--pkcs11-module", hsm.Env.Module, "--pkcs11-token", hsm.Label, "--pkcs11-pin-file", hsm.PINFile}
	dir := filepath.Join(t.TempDir(), "data")
	cfg := filepath.Join(t.TempDir(), "scepter.toml")
	if err := os.WriteFile(cfg, []byte("[profiles.default]\napproval = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := serveInProcess(t, nil, append([]string{"--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test", "--data-dir", dir, "--config", cfg}, p11...)...)
	if srv.ended {
		t.Fatalf("serve: %v\n%s", srv.err, srv.errb.String())
	}
	s := &testServer{dataDir: dir}
	for _, line := range strings.Split(srv.out.String(), "\n") {
		if k, v, _ := strings.Cut(line, ":"); k == "SCEP URL" {
			s.scepURL = strings.TrimSpace(v)
		}
	}
	d := t.TempDir()
	s.expectHeld(t, "enroll", []string{"enroll", "--url", s.scepURL, "--challenge", "test", "--subject", "CN=held-no-token", "--key-type", "p256",
		"--out", filepath.Join(d, "cert.pem"), "--key-out", filepath.Join(d, "key.pem")})
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	held := s.pending(t)
	if len(held) != 1 {
		t.Fatalf("held requests %v, want one", held)
	}

	tests := []struct {
		name string
		run  func(t *testing.T) (string, error)
	}{
		{"serve", func(t *testing.T) (string, error) {
			_, stderr, err := serveOnce(t, "--data-dir", dir, "--config", cfg)
			return stderr, err
		}},
		{"requests approve", func(*testing.T) (string, error) {
			return runCLI("requests", "approve", held[0], "--data-dir", dir)
		}},
		{"ca renew-ra", func(t *testing.T) (string, error) {
			_, stderr, err := runCA(t, nil, dir, "renew-ra")
			return stderr, err
		}},
		{"ca rollover", func(t *testing.T) (string, error) {
			_, stderr, err := runCA(t, nil, dir, "rollover", "--switch-in", "48h")
			return stderr, err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.run(t)
			wantUsageError(t, tt.name, err, out, []string{"the CA's keys are in a PKCS#11 token", "--pkcs11-module", "--pkcs11-token", "--pkcs11-uri", "--pkcs11-pin-file", "docs/hsm.md"})
			if n := strings.Count(err.Error(), "PKCS#11 token"); n != 1 || strings.Contains(err.Error(), "internal:") || strings.Contains(err.Error(), "keys: ") {
				t.Errorf("want PKCS#11 token said once, no \"internal:\" and no package prefix: %v", err)
			}
			if !errors.Is(err, keys.ErrNoToken) {
				t.Errorf("the error does not unwrap to keys.ErrNoToken: %v", err)
			}
		})
	}
	if got := s.pending(t); len(got) != 1 || got[0] != held[0] {
		t.Errorf("pending %v after the refusals, want %v", got, held)
	}
}
