//go:build unix

package agent

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Under UMask=0077 (the example systemd units) a new generation's
// directory still takes the state directory's mode, so a service that reads
// its key as another user, or through its group, still can after a renewal
// (r58: it was 0700, and the service lost its key at its next reload).
func TestGenerationModeIgnoresTheUmask(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	keyDir := filepath.Dir(f.cert().KeyPath)
	if err := os.Chmod(keyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	l := newLayout(f.cert(), nil)
	if err := l.stateDir(); err != nil {
		t.Fatal(err)
	}
	gen, err := l.newGeneration()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{l.state, filepath.Join(l.state, gen)} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o755 {
			t.Errorf("%s: mode %o, want 755 (the key directory's, past the umask)", d, got)
		}
	}
}
