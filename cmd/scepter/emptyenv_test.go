package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// A SCEPTER_ variable set to the empty string counts as unset: the config
// file's value (or the default) applies. SCEPTER_LISTEN= overrode the
// file's listen address and was refused as --listen "", and an empty
// number or boolean failed to parse.
func TestEmptyEnvironmentVariableIsUnset(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "scepter.toml")
	writeTestFile(t, cfg, "listen = \"127.0.0.1:0\"\nest_listen = \"off\"\nchallenge = \"test\"\n")
	for _, name := range []string{
		"SCEPTER_LISTEN", "SCEPTER_EST_LISTEN", "SCEPTER_CHALLENGE",
		"SCEPTER_RATE_LIMIT", "SCEPTER_ALLOW_INSECURE_DES", "SCEPTER_MAX_CLOCK_SKEW",
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			stdout, stderr, err := serveOnceWith(t, map[string]string{name: ""}, "--config", cfg, "--data-dir", dir)
			if err != nil {
				t.Fatalf("%s= : %v\n%s", name, err, stderr)
			}
			if !strings.Contains(stdout, "SCEP URL:            http://127.0.0.1:") || strings.Contains(stdout, "EST URL:") {
				t.Errorf("%s= : not the config file's listeners:\n%s", name, stdout)
			}
		})
	}
}
