//go:build cgo

package keys

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A token key whose reference file cannot be written is destroyed: nothing
// would name it, and its label would refuse every later Create.
func TestDirCreateDestroysAKeyItCannotRecord(t *testing.T) {
	tok, _ := openToken(t)
	d := &Dir{Path: t.TempDir(), Token: tok}
	// A dangling symbolic link: no key is there, and the reference file
	// is refused (it would replace the link).
	if err := os.Symlink(filepath.Join(d.Path, "nowhere"), d.RefPath("issuing")); err != nil {
		t.Fatal(err)
	}
	_, err := d.Create("issuing", P256)
	if err == nil || !strings.Contains(err.Error(), "was destroyed") || !strings.Contains(err.Error(), "object=scepter-issuing") {
		t.Fatalf("Create with a reference file it cannot write: %v, want an error saying the key was destroyed", err)
	}
	if ok, err := tok.Has("issuing"); ok || err != nil {
		t.Fatalf("the key is left in the token (%v)", err)
	}
	if err := os.Remove(d.RefPath("issuing")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Create("issuing", P256); err != nil {
		t.Fatalf("Create once the link is gone: %v", err)
	}
}
