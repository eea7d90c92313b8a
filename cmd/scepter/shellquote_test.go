package main

import (
	"os/exec"
	"path/filepath"
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
