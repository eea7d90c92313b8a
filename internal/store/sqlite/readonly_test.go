package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A data directory this process cannot write, holding a database file it
// can: SQLite's own error was "attempt to write a readonly database
// (1544)", which sent operators to the file's mode. It now names the
// directory. Root writes anywhere, so the test needs another user.
func TestReadOnlyDirectoryIsNamed(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root can write to any directory")
	}
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "scepter.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	_, err = Open(ctx, path)
	if err == nil || !strings.Contains(err.Error(), "the directory "+dir+" is not writable") {
		t.Fatalf("Open in a read-only directory: %v, want it named", err)
	}
}
