//go:build unix

package filetrust

import (
	"os"
	"path/filepath"
	"testing"
)

// UnsafeDir judges the directories the kernel goes through: the spelled
// ones, and, past a symbolic link, those from where it leads up to the
// root, a ".." after a link taken from where the link leads. Before, only
// the spelled directories were walked, and a safe link into a directory
// under a 0777 one passed (r108 D1).
func TestUnsafeDirFollowsLinks(t *testing.T) {
	top := t.TempDir()
	for _, d := range []string{"safe", "open/sub", "open/sub/deep", "safe/real/deep"} {
		if err := os.MkdirAll(filepath.Join(top, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(top, "open"), 0o777); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"safe/toOpen":   filepath.Join(top, "open/sub"),
		"open/toSafe":   filepath.Join(top, "safe/real"),
		"safe/deepOpen": filepath.Join(top, "open/sub/deep"),
		"safe/toReal":   filepath.Join(top, "safe/real/deep"),
	} {
		if err := os.Symlink(target, filepath.Join(top, link)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		dir    string
		unsafe string // the directory named; "" when none
	}{
		{dir: "safe", unsafe: ""},
		{dir: "safe/toReal", unsafe: ""},
		{dir: "safe/toOpen", unsafe: "open"},
		{dir: "open/toSafe", unsafe: "open"},
		{dir: "safe/deepOpen/..", unsafe: "open"},
		{dir: "safe/toReal/..", unsafe: ""},
	} {
		t.Run(tt.dir, func(t *testing.T) {
			p := UnsafeDir(top + "/" + tt.dir)
			switch {
			case tt.unsafe == "" && p != nil:
				t.Errorf("UnsafeDir = %s (mode %v), want none", p.Dir, p.Mode)
			case tt.unsafe != "" && (p == nil || p.Dir != filepath.Join(top, tt.unsafe)):
				t.Errorf("UnsafeDir = %+v, want %s", p, filepath.Join(top, tt.unsafe))
			}
		})
	}
}
