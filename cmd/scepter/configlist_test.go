package main

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// In serve's config file a TOML array is taken for the flags that take
// several values alone; for any other it was joined with commas and used:
// data_dir = ["/tmp/dA", "/tmp/dB"] made a CA in a directory "/tmp/dA,/tmp/dB"
// (r86 D3).
func TestConfigListsOnlyForListFlags(t *testing.T) {
	dir := t.TempDir()
	for i, tc := range []struct {
		name, file, want string
	}{
		{"data_dir", `data_dir = ["/tmp/dA", "/tmp/dB"]`, "data_dir must be a string, in quotes, not a list"},
		{"public_url", `public_url = ["http://a", "http://b"]`, "public_url must be a string, in quotes, not a list"},
		{"log_level", `log_level = ["warn", "debug"]`, "log_level must be a string, in quotes, not a list"},
		{"challenge_file", `challenge_file = ["x"]`, "challenge_file must be a string, in quotes, not a list"},
		{"est_server_name", `est_server_name = 3`, `est_server_name must be a string, in quotes, or a list of strings`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(dir, strings.Repeat("c", i+1)+".toml")
			writeTestFile(t, cfg, tc.file+"\n")
			e, _, _ := testEnv(nil)
			fs, f := newServeFlags(e)
			err := parseFlags(fs, e, []string{"--config", cfg}, 0, f.sections())
			var usage usageError
			if !errors.As(err, &usage) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want a usage error (exit 2) saying %q", err, tc.want)
			}
		})
	}

	cfg := filepath.Join(dir, "lists.toml")
	writeTestFile(t, cfg, "est_server_name = [\"ca.acme.example\", \"10.0.0.5\"]\nweak_keys_file = [\"a.txt\", \"b.txt\"]\n")
	e, _, _ := testEnv(nil)
	fs, f := newServeFlags(e)
	if err := parseFlags(fs, e, []string{"--config", cfg}, 0, f.sections()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.estServerNames.names, []string{"ca.acme.example", "10.0.0.5"}) || !slices.Equal(f.weakKeysFiles.names, []string{"a.txt", "b.txt"}) {
		t.Errorf("est_server_name %q, weak_keys_file %q: the lists not taken", f.estServerNames.names, f.weakKeysFiles.names)
	}
}
