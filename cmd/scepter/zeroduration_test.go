package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// An explicit zero --ndes-ttl or --webhook-timeout, from a flag, the
// environment or the config file, is refused (exit 2) naming the setting
// as it was given (the flag, the variable, or the file and its key) and
// what it takes, as a negative one is. A 0 once started the server with
// the defaults (60m, 5s) without a word, and --webhook-timeout -1s exited
// 1 naming no flag.
func TestServeRefusesZeroDurations(t *testing.T) {
	plain := []string{"--est-listen", "off", "--challenge", "test"}
	ndes := slices.Concat(plain, []string{"--ndes-user", "ndes", "--ndes-password", "pw"})
	webhook := slices.Concat(plain, []string{"--webhook-url", "https://hooks.example.com"})
	config := func(line string) string {
		p := filepath.Join(t.TempDir(), "scepter.toml")
		writeTestFile(t, p, line+"\n")
		return p
	}
	tests := []struct {
		name string
		vars map[string]string
		args []string
		want string
	}{
		{"--ndes-ttl 0s", nil, slices.Concat(ndes, []string{"--ndes-ttl", "0s"}), "--ndes-ttl 0s: want from 1m0s to"},
		{"--ndes-ttl -1m", nil, slices.Concat(ndes, []string{"--ndes-ttl", "-1m"}), "--ndes-ttl -1m0s: want from 1m0s to"},
		{"SCEPTER_NDES_TTL=0s", map[string]string{"SCEPTER_NDES_TTL": "0s"}, ndes, "SCEPTER_NDES_TTL 0s: want from"},
		{"config ndes_ttl", nil, slices.Concat(ndes, []string{"--config", config(`ndes_ttl = "0s"`)}), "/scepter.toml: ndes_ttl 0s: want from"},
		{"--webhook-timeout 0s", nil, slices.Concat(webhook, []string{"--webhook-timeout", "0s"}), "--webhook-timeout 0s: want a duration above 0s"},
		{"--webhook-timeout -1s", nil, slices.Concat(webhook, []string{"--webhook-timeout", "-1s"}), "--webhook-timeout -1s: want a duration above 0s"},
		{"SCEPTER_WEBHOOK_TIMEOUT=0s", map[string]string{"SCEPTER_WEBHOOK_TIMEOUT": "0s"}, webhook, "SCEPTER_WEBHOOK_TIMEOUT 0s"},
		{"config webhook_timeout", nil, slices.Concat(webhook, []string{"--config", config(`webhook_timeout = "0s"`)}), "/scepter.toml: webhook_timeout 0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			_, stderr, err := serveOnceWith(t, tt.vars, append([]string{"--data-dir", dir, "--listen", "127.0.0.1:0"}, tt.args...)...)
			if exitCode(err) != 2 || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v (exit %d), want a usage error saying %q\n%s", err, exitCode(err), tt.want, stderr)
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused start created the data directory %s (%v)", dir, err)
			}
		})
	}
}
