package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNodeOwner (r90 D1): a server leases notifications under a name
// that its data directory keeps across restarts (so a restarted server
// takes back the lease it died holding), and that another data directory
// does not share.
func TestNodeOwner(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	first, err := nodeOwner(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := nodeOwner(dir)
	if err != nil || again != first {
		t.Errorf("restarted on the same data directory: owner %q (%v), want %q", again, err, first)
	}
	host, _ := os.Hostname()
	if !strings.HasPrefix(first, host+"/") || len(first) != len(host)+1+16 {
		t.Errorf("owner %q, want %s/ and 16 hexadecimal digits", first, host)
	}
	if o, err := nodeOwner(other); err != nil || o == first {
		t.Errorf("another data directory: owner %q (%v), want another than %q", o, err, first)
	}
	fi, err := os.Stat(filepath.Join(dir, nodeIDFile))
	if err != nil || fi.Mode().Perm()&0o077 != 0 && os.PathSeparator == '/' {
		t.Errorf("node ID file: %v, %v", fi, err)
	}
	if err := os.WriteFile(filepath.Join(dir, nodeIDFile), []byte("junk\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if o, err := nodeOwner(dir); err == nil || !strings.Contains(err.Error(), "remove it") {
		t.Errorf("a damaged node ID: owner %q, err %v; want it refused", o, err)
	}
}
