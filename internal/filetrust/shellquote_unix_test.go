//go:build unix

package filetrust_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/filetrust"
)

// The chmod Check asks for names the directory as one shell word, however
// it is spelt (r54: "run: chmod go-w /tmp/g w" pasted chmods two paths).
func TestCheckQuotesThePathItAsksToChmod(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "it's $x w")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o775); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "challenge")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := filetrust.Check("--challenge-file", file, "the challenge")
	if err == nil || !strings.Contains(err.Error(), "run: chmod go-w "+filetrust.ShellQuote(dir)) || !strings.Contains(err.Error(), `'\''`) {
		t.Errorf("Check: %v, want the chmod with the directory quoted", err)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/var/lib/scepter": "/var/lib/scepter",
		"sp ace/d":         "'sp ace/d'",
		"it's":             `'it'\''s'`,
		"":                 "''",
		"~/x":              "'~/x'",
	} {
		if got := filetrust.ShellQuote(in); got != want {
			t.Errorf("ShellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
