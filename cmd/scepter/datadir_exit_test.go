//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// r78 D3: what the operator must mend in --data-dir (a file given for
// it, another user's directory, a shared one such as /tmp, one open to
// others holding files not scepter's, a key file others may read) is a
// configuration error, exit 2, as the neighbouring refusals of the same
// checks were; each message names --data-dir or the file, and says what to
// do. Before, serve exited 1 for all of these, and a file given for the
// directory gave Go's bare "mkdir X: not a directory".
func TestDataDirRefusalsExit2(t *testing.T) {
	tests := []struct {
		name     string
		root     bool                                  // needs root (gives a directory to another user)
		dataDir  func(t *testing.T, tmp string) string // the --data-dir given
		commands [][]string                            // run with --data-dir; serve's flags added by serveOnce
		want     []string
	}{
		{"a file", false, func(t *testing.T, tmp string) string {
			return writeIn(t, tmp, "afile", "", 0o600)
		}, [][]string{{"serve"}, {"certs", "list"}, {"ca", "show"}, {"audit", "list"}}, []string{"--data-dir ", "afile is a file, not a directory"}},
		// r80: an explicit empty value was a bare mkdir error, exit 1.
		{"empty", false, func(*testing.T, string) string { return "" }, [][]string{{"serve"}}, []string{"--data-dir is empty"}},
		{"a file on its path", false, func(t *testing.T, tmp string) string {
			return filepath.Join(writeIn(t, tmp, "afile", "", 0o600), "data")
		}, [][]string{{"serve"}}, []string{"--data-dir ", "cannot be made", "not a directory", "give another path"}},
		{"another user's", true, func(t *testing.T, tmp string) string {
			dir := mkdirMode(t, tmp, "nob", 0o700)
			if err := os.Chown(dir, nobodyUID, nobodyUID); err != nil {
				t.Fatal(err)
			}
			return dir
		}, [][]string{{"serve"}}, []string{"--data-dir ", "belongs to uid 65534", "give scepter a directory it owns"}},
		{"shared, as /tmp", false, func(t *testing.T, tmp string) string {
			dir := mkdirMode(t, tmp, "shared", 0o700)
			if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
				t.Fatal(err)
			}
			return dir
		}, [][]string{{"serve"}}, []string{"--data-dir ", "is a shared directory", "give scepter a directory of its own"}},
		{"open to the group, with others' files", false, func(t *testing.T, tmp string) string {
			dir := mkdirMode(t, tmp, "gw", 0o700)
			writeIn(t, dir, "notes.txt", "", 0o600)
			if err := os.Chmod(dir, 0o775); err != nil {
				t.Fatal(err)
			}
			return dir
		}, [][]string{{"serve"}}, []string{"--data-dir ", "holds notes.txt", "chmod 700"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				needRoot(t)
			}
			dir := tt.dataDir(t, t.TempDir())
			for _, c := range tt.commands {
				out, err := runOnDataDir(t, c, dir)
				wantUsageError(t, strings.Join(c, " "), err, out, tt.want)
			}
		})
	}
}

// r78 D3: a key file of the data directory that group or others may read
// (the CA's, the HTTPS key, an OCSP responder's) refuses serve and the CA
// commands with exit 2 and the chmod to run, as a secret file given with
// a flag is; before, exit 1.
func TestDataDirKeyFileModeExit2(t *testing.T) {
	dir := servedDataDir(t)
	ocspKeys, err := filepath.Glob(filepath.Join(dir, "ocsp", "*.key"))
	if err != nil || len(ocspKeys) == 0 {
		t.Fatalf("no OCSP responder key in %s: %v", dir, err)
	}
	// Without --est-listen serveOnce made no HTTPS key: its mode alone is
	// checked before it is read.
	if err := os.MkdirAll(filepath.Join(dir, "tls"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeIn(t, filepath.Join(dir, "tls"), "server.key", "key", 0o600)
	tests := []struct {
		key      string
		commands [][]string
	}{
		{filepath.Join(dir, "ca", "issuing.key"), [][]string{{"serve"}, {"ca", "show"}, {"ca", "rollover"}}},
		{filepath.Join(dir, "ca", "ra.key"), [][]string{{"serve"}, {"ca", "renew-ra"}}},
		{filepath.Join(dir, "ca", "root.key"), [][]string{{"serve"}, {"ca", "root", "crl"}}},
		{filepath.Join(dir, "tls", "server.key"), [][]string{{"serve"}}},
		{ocspKeys[0], [][]string{{"serve"}}},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.key), func(t *testing.T) {
			if err := os.Chmod(tt.key, 0o644); err != nil {
				t.Fatal(err)
			}
			defer os.Chmod(tt.key, 0o600)
			for _, c := range tt.commands {
				out, err := runOnDataDir(t, c, dir)
				wantUsageError(t, strings.Join(c, " "), err, out, []string{tt.key + " has mode 0644", "run: chmod 600 " + tt.key, "treat the key as compromised"})
			}
		})
	}
}

// runOnDataDir runs command c (serve, through serveOnce, or another) on
// the data directory dir, and returns what it printed and its error.
func runOnDataDir(t *testing.T, c []string, dir string) (string, error) {
	t.Helper()
	if c[0] == "serve" {
		stdout, stderr, err := serveOnce(t, "--data-dir", dir)
		return stdout + stderr, err
	}
	return runIn(append(c, "--data-dir", dir)...)
}
