//go:build unix

package filetrust

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The path rules take a ".." after a symbolic link from where the link
// leads, as the kernel does, where filepath.Clean takes it by text: top/L
// leads to top/a/b, so "L/../x" is top/a/x, not top/x.
func TestKernelPathRules(t *testing.T) {
	top, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(top, "a", "b"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(top, "a", "b"), filepath.Join(top, "L")); err != nil {
		t.Fatal(err)
	}
	kernel := []struct {
		base, p, want, err string
	}{
		{top, "x", top + "/x", ""},
		{top, "L/x", top + "/L/x", ""},                    // links kept when no ".." needs them
		{top, "./L//x", top + "/L/x", ""},                 // cleaned
		{top, "L/../x", top + "/a/x", ""},                 // Clean would say top/x
		{top, "L/../../x", top + "/x", ""},                // two up from a/b
		{"/elsewhere", top + "/L/../x", top + "/a/x", ""}, // absolute: base unused
		{top, "gone/../x", "", "cannot be followed"},
	}
	for _, tc := range kernel {
		got, err := KernelPath(tc.base, tc.p)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("KernelPath(%q, %q) = %q, %v; want an error saying %q", tc.base, tc.p, got, err, tc.err)
			}
		case err != nil || got != tc.want:
			t.Errorf("KernelPath(%q, %q) = %q, %v; want %q", tc.base, tc.p, got, err, tc.want)
		}
	}

	for _, tc := range []struct{ path, want string }{
		{"key.pem", "."},
		{"/key.pem", "/"},
		{"L/../ca/root.key", "L/../ca"}, // not cleaned: filepath.Dir says "ca"
		{"../agent.toml", ".."},
		{"a//b", "a/"},
	} {
		if got := LiteralDir(tc.path); got != tc.want {
			t.Errorf("LiteralDir(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}

	for _, tc := range []struct {
		p    string
		want bool
	}{{"a/../b", true}, {"..", true}, {"a/..b/c", false}, {"...", false}, {"a/b", false}} {
		if got := HasDotDot(tc.p); got != tc.want {
			t.Errorf("HasDotDot(%q) = %v, want %v", tc.p, got, tc.want)
		}
	}

	// FromRealCwd: from the working directory with its links resolved,
	// the rest as written (the caller resolves it as the kernel does).
	t.Chdir(filepath.Join(top, "L"))
	got, err := FromRealCwd("../x")
	if want := top + "/a/b/../x"; err != nil || got != want {
		t.Errorf("FromRealCwd(\"../x\") in L = %q, %v; want %q", got, err, want)
	}
	if got, err := FromRealCwd("/abs/../y"); err != nil || got != "/abs/../y" {
		t.Errorf("FromRealCwd of an absolute path = %q, %v; want it unchanged", got, err)
	}
}
