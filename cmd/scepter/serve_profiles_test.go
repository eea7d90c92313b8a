package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A configuration whose profiles serve cannot honour is refused before
// the data directory, the store or the CA is touched: a refused start
// leaves no CA and no CRL behind to be taken for a working one.
func TestServeRefusesProfilesBeforeCreatingTheCA(t *testing.T) {
	webhookProfile := "[profiles.mdm]\nchallenge = \"webhook\"\n"
	tests := []struct {
		name   string
		config string
		args   []string
		want   string
	}{
		{"webhook profile without --webhook-url", webhookProfile, nil, "profiles [mdm] use the webhook challenge: set --webhook-url"},
		{"two webhook profiles, named in order", webhookProfile + "[profiles.byod]\nchallenge = \"webhook\"\n", nil,
			"profiles [byod mdm] use the webhook challenge"},
		{"manufacturer profile without --est-client-ca-file", "[profiles.iot]\nest_manufacturer_auth = true\n", nil,
			"profiles [iot] accept manufacturer certificates: set --est-client-ca-file"},
		{"unknown --challenge-profile", "", []string{"--challenge-profile", "nope"}, `--challenge-profile "nope" is not a configured profile`},
		{"unknown --default-profile", "", []string{"--default-profile", "nope"}, `--default-profile "nope" is not a configured profile`},
		{"unknown --ndes-profile", "", []string{"--ndes-user", "ndes", "--ndes-profile", "nope"}, `--ndes-profile "nope" is not a configured profile`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			config := filepath.Join(t.TempDir(), "scepter.toml")
			if err := os.WriteFile(config, []byte(tt.config), 0o600); err != nil {
				t.Fatal(err)
			}
			_, stderr, err := serveOnce(t, append([]string{"--data-dir", dir, "--config", config}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) || exitCode(err) != 2 {
				t.Fatalf("err = %v (exit %d), want a usage error saying %q\n%s", err, exitCode(err), tt.want, stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "ca")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused start created %s/ca (%v)", dir, err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused start created the data directory %s (%v)", dir, err)
			}
		})
	}
}

// The example configuration starts as shipped (its data directory and
// listeners aside, which are a production machine's): no profile in it
// needs a setting it leaves out.
func TestServeStartsWithTheExampleConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	stdout, stderr, err := serveOnceWith(t, nil, "--config", "../../examples/scepter.toml", "--data-dir", dir,
		"--listen", "127.0.0.1:0", "--est-listen", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("serve --config examples/scepter.toml: %v\n%s\n%s", err, stdout, stderr)
	}
	if !strings.Contains(stdout, "SCEP URL:") {
		t.Errorf("no start-up lines:\n%s\n%s", stdout, stderr)
	}
}
