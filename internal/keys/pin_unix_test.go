//go:build unix

package keys

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A PIN file that another user than us or root may change is refused as
// the command line refuses its secret files, naming the file and the
// chown or chmod to run: one another user owns (they may read the PIN,
// and lock it for every node by writing wrong ones), one in a directory
// anyone may write (they may replace it), one reached through a symbolic
// link in such a directory. A sticky directory (/tmp's 01777) lets no one
// replace another's file, and passes. The PIN file a URI names
// (pin-source=file:) is read the same way. Before, only the mode was
// checked, and a 0600 PIN file owned by nobody was accepted.
func TestReadPINRefusesFileOthersMayChange(t *testing.T) {
	cases := []struct {
		name  string
		root  bool // needs root (to give the file away)
		setup func(t *testing.T, base string) (path string, want []string)
	}{
		{"owned by us, in a private directory", false, func(t *testing.T, base string) (string, []string) {
			return pinIn(t, base), nil
		}},
		{"owned by another user", true, func(t *testing.T, base string) (string, []string) {
			file := pinIn(t, base)
			if err := os.Chown(file, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return file, []string{"PKCS#11 PIN file " + file + " belongs to user", "uid 65534", "not to root:", "may change the PIN", "chown root " + file}
		}},
		{"in a 0777 directory", false, func(t *testing.T, base string) (string, []string) {
			dir := dirWithMode(t, base, "open", 0o777)
			return pinIn(t, dir), []string{"PKCS#11 PIN file", "directory " + dir, "0777", "may replace the file, and so change the PIN", "chmod go-w " + dir}
		}},
		{"in a 0770 directory", false, func(t *testing.T, base string) (string, []string) {
			dir := dirWithMode(t, base, "group", 0o770)
			return pinIn(t, dir), []string{"directory " + dir, "chmod go-w " + dir}
		}},
		{"in a 01777 directory", false, func(t *testing.T, base string) (string, []string) {
			return pinIn(t, dirWithMode(t, base, "sticky", 0o1777)), nil
		}},
		{"symlink from a 0777 directory", false, func(t *testing.T, base string) (string, []string) {
			file := pinIn(t, base)
			dir := dirWithMode(t, base, "open", 0o777)
			link := filepath.Join(dir, "link")
			if err := os.Symlink(file, link); err != nil {
				t.Fatal(err)
			}
			return link, []string{"directory " + dir, "chmod go-w " + dir}
		}},
		{"symlink to a file in a 0777 directory", false, func(t *testing.T, base string) (string, []string) {
			file := pinIn(t, dirWithMode(t, base, "open", 0o777))
			link := filepath.Join(base, "link")
			if err := os.Symlink(file, link); err != nil {
				t.Fatal(err)
			}
			return link, []string{"directory " + filepath.Dir(file), "chmod go-w " + filepath.Dir(file)}
		}},
	}
	configs := []struct {
		name string
		of   func(t *testing.T, path string) PKCS11Config
	}{
		{"flag", func(t *testing.T, path string) PKCS11Config { return PKCS11Config{PINFile: path} }},
		{"uri", func(t *testing.T, path string) PKCS11Config {
			c, err := ParsePKCS11URI("pkcs11:token=t?module-path=/m.so&pin-source=file:" + path)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}},
	}
	for _, cfg := range configs {
		for _, c := range cases {
			t.Run(cfg.name+" "+c.name, func(t *testing.T) {
				if c.root && os.Geteuid() != 0 {
					t.Skip("only root may give a file to another user")
				}
				path, want := c.setup(t, t.TempDir())
				pin, err := cfg.of(t, path).readPIN()
				if want == nil {
					if err != nil || pin != "123456" {
						t.Fatalf("readPIN = %q, %v; want the PIN", pin, err)
					}
					return
				}
				if err == nil {
					t.Fatalf("readPIN = %q, want a refusal", pin)
				}
				for _, w := range append(want, path) {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
			})
		}
	}
}

// pinIn writes a PIN file with mode 0600 in dir.
func pinIn(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "pin")
	if err := os.WriteFile(p, []byte("123456\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// dirWithMode makes dir/name with mode perm (the sticky bit included),
// past the umask.
func dirWithMode(t *testing.T, dir, name string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	mode := perm.Perm()
	if perm&0o1000 != 0 {
		mode |= os.ModeSticky
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}
