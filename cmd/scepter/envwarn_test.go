package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

// A SCEPTER_ variable that names no setting is warned about on stderr with
// the nearest known name, rather than ignored in silence; settings of any
// command, and the variables read otherwise, are not: one environment
// often serves serve, the CLI and the agent.
func TestUnknownEnvWarned(t *testing.T) {
	for _, tc := range []struct {
		name    string
		command string // "serve", else a command with a --url flag only
		vars    []string
		warn    string // "" for none
	}{
		{"typo", "serve", []string{"SCEPTER_LISTN=127.0.0.1:0"}, "SCEPTER_LISTN is set in the environment but is no setting of any scepter command (nearest: SCEPTER_LISTEN)"},
		{"empty, so unset", "serve", []string{"SCEPTER_LISTN="}, ""},
		{"a setting", "serve", []string{"SCEPTER_LISTEN=127.0.0.1:0", "SCEPTER_DATA_DIR=x"}, ""},
		{"secrets and the agent's", "serve", []string{"SCEPTER_EST_PASSWORD=x", "SCEPTER_ROOT_KEY_PASSPHRASE=x", "SCEPTER_AGENT_NAME=x", "SCEPTER_TEST_POSTGRES_URL=x"}, ""},
		{"other commands' settings", "serve", []string{"SCEPTER_URL=http://x", "SCEPTER_KEY_OUT=k.pem", "SCEPTER_ONCE=true", "SCEPTER_TO=a@example.com", "SCEPTER_SWITCH_IN=720h", "SCEPTER_CONCURRENCY=8"}, ""},
		{"other prefixes", "serve", []string{"PATH=/bin", "SCEPTERX=1", "HOME=/root"}, ""},
		{"serve's setting for another command", "other", []string{"SCEPTER_DATA_DIR=x", "SCEPTER_URL=http://x"}, ""},
		{"another command's typo", "other", []string{"SCEPTER_URLL=http://x"}, "SCEPTER_URLL is set in the environment but is no setting of any scepter command (nearest: SCEPTER_URL)"},
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

// flagCommands names every command that takes flags, each by the words
// that run it: a command left out would have its variables warned about
// in the environment of the others.
func TestFlagCommandsAreEvery(t *testing.T) {
	covered := map[string]bool{"version": true} // takes no flags
	for _, words := range flagCommands() {
		var sets []*flag.FlagSet
		e := env{stdout: io.Discard, stderr: io.Discard, lookupEnv: func(string) (string, bool) { return "", false },
			probeFlags: func(fs *flag.FlagSet) { sets = append(sets, fs) }}
		err := run(context.Background(), e, words)
		if !errors.Is(err, errProbed) || len(sets) != 1 || sets[0].Name() != strings.Join(words, " ") {
			t.Errorf("%q: err = %v, %d flag sets, want that command's one", words, err, len(sets))
		}
		covered[words[0]] = true
	}
	for _, c := range commands() {
		if !covered[c.name] {
			t.Errorf("command %s is missing from flagCommands", c.name)
		}
	}
}
