package main

import (
	"bytes"
	"strings"
	"testing"
)

// A SCEPTER_ variable that names no setting is warned about on stderr with
// the nearest known name, rather than ignored in silence; settings of this
// command or of serve, and the variables read otherwise, are not.
func TestUnknownEnvWarned(t *testing.T) {
	for _, tc := range []struct {
		name    string
		command string // "serve", else a command with a --url flag only
		vars    []string
		warn    string // "" for none
	}{
		{"typo", "serve", []string{"SCEPTER_LISTN=127.0.0.1:0"}, "SCEPTER_LISTN is set in the environment but is no setting of scepter serve (nearest: SCEPTER_LISTEN)"},
		{"empty, so unset", "serve", []string{"SCEPTER_LISTN="}, ""},
		{"a setting", "serve", []string{"SCEPTER_LISTEN=127.0.0.1:0", "SCEPTER_DATA_DIR=x"}, ""},
		{"secrets and the agent's", "serve", []string{"SCEPTER_EST_PASSWORD=x", "SCEPTER_ROOT_KEY_PASSPHRASE=x", "SCEPTER_AGENT_NAME=x", "SCEPTER_TEST_POSTGRES_URL=x"}, ""},
		{"other prefixes", "serve", []string{"PATH=/bin", "SCEPTERX=1", "HOME=/root"}, ""},
		{"serve's setting for another command", "other", []string{"SCEPTER_DATA_DIR=x", "SCEPTER_URL=http://x"}, ""},
		{"another command's typo", "other", []string{"SCEPTER_UR=http://x"}, "SCEPTER_UR is set in the environment but is no setting of scepter other (nearest: SCEPTER_URL)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			vars := map[string]string{}
			for _, kv := range tc.vars {
				k, v, _ := strings.Cut(kv, "=")
				vars[k] = v
			}
			e := env{stdout: &out, stderr: &errb, lookupEnv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
				environ: func() []string { return tc.vars }}
			fs := newFlagSet(e, "other", "other [flags]")
			fs.String("url", "", "a URL")
			if tc.command == "serve" {
				fs, _ = newServeFlags(e)
			}
			if err := parseFlags(fs, e, nil, 0, nil); err != nil {
				t.Fatal(err)
			}
			got := errb.String()
			if tc.warn == "" && got != "" || tc.warn != "" && !strings.Contains(got, tc.warn) {
				t.Errorf("stderr %q, want %q", got, tc.warn)
			}
		})
	}
}
