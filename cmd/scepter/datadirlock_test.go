//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/pkitest"
)

// One server per data directory: a second is refused, naming the first;
// once the first lets go, the next one starts.
func TestSecondServerOnOneDataDirIsRefused(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockDataDir(dir); err == nil || !strings.Contains(err.Error(), "another scepter command (pid ") {
		t.Fatalf("second lock: %v, want a refusal naming the first server", err)
	}
	unlock()
	unlock2, err := lockDataDir(dir)
	if err != nil {
		t.Fatalf("lock after the first let go: %v", err)
	}
	unlock2()
}

// The lock file holds the server's pid: a symbolic link or a named pipe
// in its place is refused, and what the link points to is left as it was.
func TestDataDirLockRefusesANonRegularFile(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim.txt")
	if err := os.WriteFile(victim, []byte("important data\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, serveLockFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := lockDataDir(dir); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("lock through a symbolic link: %v, want a refusal naming it", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "important data\n" {
		t.Errorf("the link's target now holds %q", b)
	}
	linkDir := t.TempDir()
	if err := os.Link(victim, filepath.Join(linkDir, serveLockFile)); err != nil {
		t.Fatal(err)
	}
	unlock, err := lockDataDir(linkDir)
	if err != nil {
		t.Errorf("lock on a hard link (a data directory copied with cp -al): %v, want it taken", err)
	} else {
		if _, err := lockDataDir(linkDir); err == nil {
			t.Error("a second lock on the hard link was taken")
		}
		unlock()
	}
	if b, _ := os.ReadFile(victim); string(b) != "important data\n" {
		t.Errorf("the hard link's other name now holds %q", b)
	}
	fifoDir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(fifoDir, serveLockFile), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := lockDataDir(fifoDir); err == nil || !strings.Contains(err.Error(), "named pipe") {
		t.Errorf("lock on a named pipe: %v, want a refusal naming it", err)
	}
}

// A data directory a server ran on, with a CA and no database, is refused (its inventory is
// missing), unless the operator creates an empty one on purpose; a fresh
// data directory and a --store are not affected.
func TestCAWithoutDatabaseIsRefused(t *testing.T) {
	dir := t.TempDir()
	if err := refuseLostSQLite("", dir); err != nil {
		t.Fatalf("fresh data dir: %v", err)
	}
	if _, _, err := ca.LoadOrCreate(dir, ca.InitOptions{GenerateKey: testKeys.Generate}, pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))); err != nil {
		t.Fatal(err)
	}
	if err := refuseLostSQLite("", dir); err != nil {
		t.Fatalf("a CA imported, no server ran yet: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, publicURLFile), []byte("http://127.0.0.1:8080\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := refuseLostSQLite("", dir)
	if err == nil || !strings.Contains(err.Error(), "no database") || !strings.Contains(err.Error(), "touch") {
		t.Fatalf("CA without scepter.db: %v, want a refusal", err)
	}
	if err := refuseLostSQLite("postgres://x@127.0.0.1/db", dir); err != nil {
		t.Errorf("with --store: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "scepter.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := refuseLostSQLite("", dir); err != nil {
		t.Errorf("with an empty scepter.db made on purpose: %v", err)
	}
}

// The refusal names what holds the data directory as its lock file says:
// a serve, a restore (which takes the same lock), or, when the file names
// no command (an older scepter's, a test binary's), another scepter
// command. A restore was taken for a serve.
func TestDataDirLockNamesItsHolder(t *testing.T) {
	tests := []struct{ content, want string }{
		{"123 serve\n", "another 'scepter serve' (pid 123) is running on the data directory"},
		{"123 store restore\n", "a 'scepter store restore' (pid 123) holds the data directory"},
		{"123\n", "another scepter command (pid 123) holds the data directory"},
		{"123 $(rm -rf) x\n", "another scepter command (pid 123) holds the data directory"},
		{"", "another scepter command holds the data directory"},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSpace(tt.content), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, serveLockFile)
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			held, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()
			if err := syscall.Flock(int(held.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
				t.Fatal(err)
			}
			if _, err := lockDataDir(dir); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("lock held by %q: %v, want %q", tt.content, err, tt.want)
			}
		})
	}
}

// The lock file names the command by its leading words, never by a flag
// or what follows one.
func TestCommandOf(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--data-dir", "d"}, "serve"},
		{[]string{"store", "restore", "--in", "x"}, "store restore"},
		{[]string{"store", "restore", "extra"}, "store restore"},
		{[]string{"-test.run=X"}, ""},
		{nil, ""},
		{[]string{"Serve;"}, ""},
	}
	for _, tt := range tests {
		if got := commandOf(tt.args); got != tt.want {
			t.Errorf("commandOf(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
}

// A restore refused because another restore holds the data directory
// says so, not that a server runs there (f102 left the restore's own
// message naming serve whatever held the lock).
func TestRestoreNamesAnotherRestore(t *testing.T) {
	for _, tt := range []struct{ content, want string }{
		{"123 store restore\n", "a 'scepter store restore' (pid 123) holds the data directory"},
		{"123 serve\n", "stop scepter serve first"},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, serveLockFile)
		if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
			t.Fatal(err)
		}
		held, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Flock(int(held.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			t.Fatal(err)
		}
		_, err = runCLI("store", "restore", "--data-dir", dir, "--in", filepath.Join(t.TempDir(), "bk.db"))
		held.Close()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("lock held by %q: %v, want %q", tt.content, err, tt.want)
		}
	}
}
