//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// nobodyUID is the user the tests give files to: one that is not us and
// not root.
const nobodyUID = 65534

// needRoot skips a test that gives files to another user.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("only root may give files to another user")
	}
}

// servedDataDir is a data directory a serve (stopped again) set up.
func servedDataDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if _, stderr, err := serveOnce(t, "--data-dir", dir); err != nil {
		t.Fatalf("serve: %v\n%s", err, stderr)
	}
	return dir
}

// In a data directory of ours, what another user owns of the CA's
// directory, the OCSP and HTTPS keys' and the CRL numbers' is refused by
// serve (exit 2, naming the path and the chown to run): that user could read the keys (a key file is
// readable by its owner whatever its mode), replace them, or lower the
// CRL numbers the check for a restored store relies on. Before, all were
// accepted.
func TestDataDirEntriesOwnedByAnotherUser(t *testing.T) {
	needRoot(t)
	for _, tt := range []struct {
		path    string // under the data directory; made when missing
		dir     bool
		changes string
	}{
		{"ca/issuing.key", false, "read or replace the CA's keys"},
		{"ca/ra.key", false, "read or replace the CA's keys"},
		{"ca/root.crt", false, "read or replace the CA's keys and certificates"},
		{"ca", true, "read or replace the CA's keys"},
		{"ca/next", true, "read or replace the CA's keys"},
		{"ocsp", true, "read or replace the OCSP responders' keys"},
		{"ocsp/0123abcd.key", false, "read or replace the OCSP responders' keys"},
		{"tls/server.key", false, "read or replace the HTTPS key"},
		{"crl-numbers", true, "lower the CRL numbers kept there"},
		{"crl-numbers/*", false, "lower the CRL numbers kept there"},
	} {
		t.Run(tt.path, func(t *testing.T) {
			dir := servedDataDir(t)
			path := filepath.Join(dir, tt.path)
			if matches, _ := filepath.Glob(path); len(matches) > 0 {
				path = matches[0]
			} else if tt.dir {
				os.MkdirAll(path, 0o700)
			} else {
				os.MkdirAll(filepath.Dir(path), 0o700)
				os.WriteFile(path, []byte("x"), 0o600)
			}
			if err := os.Chown(path, nobodyUID, nobodyUID); err != nil {
				t.Fatal(err)
			}
			chown := "chown root "
			if tt.dir {
				chown = "chown -R root "
			}
			want := []string{path + " belongs to user " + userName(nobodyUID) + " (uid 65534), not to root: that user may " + tt.changes, "run: " + chown + path}
			_, stderr, err := serveOnce(t, "--data-dir", dir)
			wantUsageError(t, "serve", err, stderr, want)
		})
	}
}

// wantUsageError wants err a usage error that says each of want.
func wantUsageError(t *testing.T, what string, err error, out string, want []string) {
	t.Helper()
	if exitCode(err) != 2 {
		t.Fatalf("%s: err = %v (exit %d), want a usage error\n%s", what, err, exitCode(err), out)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q does not say %q", what, err, w)
		}
	}
}

// A data directory reached through a symbolic link in a directory group
// or others may write without the sticky bit is refused by serve (exit 2,
// naming the link's directory and the chmod): they could point it at
// another directory. Through a link in a sticky or
// private directory it works. Before, all were accepted.
func TestDataDirThroughSymlink(t *testing.T) {
	dir := servedDataDir(t)
	for _, tt := range []struct {
		name    string
		perm    os.FileMode
		refused bool
	}{
		{"0777", 0o777, true},
		{"0775", 0o775, true},
		{"01777", 0o1777, false},
		{"0700", 0o700, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			links := mkdirMode(t, t.TempDir(), "links", tt.perm)
			link := filepath.Join(links, "data")
			if err := os.Symlink(dir, link); err != nil {
				t.Fatal(err)
			}
			_, stderr, err := serveOnce(t, "--data-dir", link)
			if !tt.refused {
				if err != nil {
					t.Fatalf("serve: %v\n%s", err, stderr)
				}
				return
			}
			want := []string{"data dir " + link + " is a symbolic link in directory " + links, "may point it at another directory", "chmod go-w " + links}
			wantUsageError(t, "serve", err, stderr, want)
		})
	}
}
