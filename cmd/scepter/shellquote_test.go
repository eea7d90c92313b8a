package main

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestShellQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/var/lib/scepter", "/var/lib/scepter"},
		{"data-1_2/x.y+z@h:p,q=r%s", "data-1_2/x.y+z@h:p,q=r%s"},
		{"", "''"},
		{"sp ace/d", "'sp ace/d'"},
		{"it's", `'it'\''s'`},
		{"'", `''\'''`},
		{"~/d", "'~/d'"},
		{"$HOME/d", "'$HOME/d'"},
		{"a;rm -rf b", "'a;rm -rf b'"},
		{"a`b`\"c\"\\d*?[e]", "'a`b`\"c\"\\d*?[e]'"},
		{"tab\there", "'tab\there'"},
		{"dätä dir", "'dätä dir'"},
	} {
		if got := shellQuote(tc.in); got != tc.want {
			t.Errorf("shellQuote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// What shellQuote writes, a shell reads back as the one word it quoted.
func TestShellQuoteRoundTrip(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	for _, in := range []string{"plain/dir", "sp ace/dätä dir", "it's", "''", "$(id)`id`", "a\nb", "~", "-x", "*"} {
		out, err := exec.Command(sh, "-c", "printf %s "+shellQuote(in)).Output()
		if err != nil || string(out) != in {
			t.Errorf("sh read %s back as %q (%v), want %q", shellQuote(in), out, err, in)
		}
	}
}

// serve's first start suggests taking the root key offline: the command
// names the data directory as one word, though its path has a space.
func TestServeQuotesTheDataDirItSuggests(t *testing.T) {
	data := filepath.Join(t.TempDir(), "sp ace", "d")
	s := serveInProcess(t, nil, "--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test", "--data-dir", data)
	if s.ended {
		t.Fatalf("serve: %v\n%s", s.err, s.errb.String())
	}
	defer s.stop()
	want := "scepter ca root export --data-dir '" + data + "' --out FILE --remove"
	if !strings.Contains(s.out.String(), want) {
		t.Errorf("serve's start-up lines do not suggest %q:\n%s", want, s.out.String())
	}
}

// The chmod a file mode check asks for names the file as one word.
func TestFileModeAdviceQuotesThePath(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no mode bits")
	}
	file := filepath.Join(t.TempDir(), "sp ace", "challenge")
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, file, "s3cret\n")
	for _, tc := range []struct {
		mode fs.FileMode
		want string
	}{
		{0o666, "run: chmod go-w '" + file + "'"},
		{0o644, "run: chmod 600 '" + file + "'"}, // not o-r, which leaves it readable by its group
	} {
		if err := os.Chmod(file, tc.mode); err != nil {
			t.Fatal(err)
		}
		e, _, errb := testEnv(nil)
		err := checkSecretFileMode(e, "--challenge-file", file)
		if said := errb.String() + fmt.Sprint(err); !strings.Contains(said, tc.want) {
			t.Errorf("mode %04o: %s, want it to say %q", tc.mode, said, tc.want)
		}
	}
}
