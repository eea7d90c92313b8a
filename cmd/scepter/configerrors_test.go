package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigErrorsNameTheFileOnce: every refusal of a `serve --config`
// file, whatever is wrong in it (syntax, an unknown key, a wrong type, a
// value its setting does not take, a range or a conflict checked after
// parsing, a file that cannot be read), names the file once: not "config
// c.toml: challenge and challenge_file in config c.toml" (r125), nor "config
// key skew=…", which named none.
func TestConfigErrorsNameTheFileOnce(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.txt")
	writeTestFile(t, secret, "a-secret-from-the-file\n")
	if err := os.Mkdir(filepath.Join(dir, "dir.toml"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file string // file "": none written
		want       string // after "config PATH" (or "config: … PATH")
	}{
		{"syntax", "listen = \"x\n", ": toml: line 1"},
		{"unknown key", "bogus_key = 1\n", ": unknown keys: bogus_key"},
		{"wrong type", "listen = 5\n", ": listen must be a string, in quotes, not an integer"},
		{"value its flag does not take", "notify_interval = \"zz\"\n", `: notify_interval="zz": parse error; want a duration`},
		{"value out of range", "notify_interval = \"-5m\"\n", ": notify_interval must be positive"},
		{"bad value in a section", "[profiles.a]\nvalidity = \"zz\"\n", `: [profiles]: a: validity: bad duration "zz"`},
		{"section of the wrong type", "profiles = 1\n", ": profiles must be tables"},
		{"secret and its file", "challenge = \"from-the-file-0123\"\nchallenge_file = \"" + secret + "\"\n", ": challenge and challenge_file both give the secret: give one"},
		{"a directory", "", " is a directory, not a regular file"},
		{"missing", "", ": no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".toml")
			switch {
			case tc.name == "a directory":
				path = filepath.Join(dir, "dir.toml")
			case tc.file != "":
				writeTestFile(t, path, tc.file)
			}
			e, _, _ := testEnv(nil)
			err := run(context.Background(), e, []string{"serve", "--listen", "127.0.0.1:0", "--est-listen", "off",
				"--data-dir", filepath.Join(t.TempDir(), "data"), "--config", path})
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if n := strings.Count(msg, filepath.Base(path)); n != 1 || !strings.HasPrefix(msg, "config") || !strings.Contains(msg, tc.want) {
				t.Errorf("%q names the file %d times; want once, beginning with \"config\", and %q", msg, n, tc.want)
			}
			if exitCode(err) != 2 {
				t.Errorf("exit %d, want 2: %v", exitCode(err), err)
			}
		})
	}
}
