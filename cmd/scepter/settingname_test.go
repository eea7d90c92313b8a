package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRefusalNamesSettingAsGiven (r104 D4): a value refused for its range
// or choices is named as it was given: by its flag on the command line,
// its variable in the environment, and its key and file in the config
// file (README: "refused, naming the key"), not by a --flag the user
// never typed. The rest of the message (what it takes) is the same.
func TestRefusalNamesSettingAsGiven(t *testing.T) {
	base := []string{"--listen", "127.0.0.1:0", "--est-listen", "off"}
	mail := map[string]string{"smtp-url": "smtp://127.0.0.1:1", "notify-from": "ca@example.com"}
	for _, tt := range []struct {
		flag, value string
		// others are settings the refused one needs, given on the
		// command line.
		others map[string]string
		// rest is the message after the setting's name.
		rest string
	}{
		{"notify-interval", "-1m", nil, " must be positive"},
		{"smtp-starttls", "yes", mail, ` "yes": want auto or required`},
		{"ca-key-type", "dsa", nil, ` "dsa": want p256, p384, rsa2048, rsa3072 or rsa4096`},
		{"max-conns", "0", nil, " must be at least 1"},
		{"log-level", "verbose", nil, ` "verbose": want debug, info, warn or error`},
		{"ndes-ttl", "1s", map[string]string{"ndes-user": "ndes", "ndes-password": "pw"}, " 1s: want from 1m0s to"},
	} {
		var others []string
		for k, v := range tt.others {
			others = append(others, "--"+k, v)
		}
		key := strings.ReplaceAll(tt.flag, "-", "_")
		variable := "SCEPTER_" + strings.ToUpper(key)
		t.Run(tt.flag, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			config := filepath.Join(t.TempDir(), "scepter.toml")
			line := key + ` = "` + tt.value + `"`
			if tt.flag == "max-conns" {
				line = key + " = " + tt.value
			}
			writeTestFile(t, config, line+"\n")
			for _, how := range []struct {
				name string
				vars map[string]string
				args []string
				want string
			}{
				{"flag", nil, []string{"--" + tt.flag, tt.value}, "--" + tt.flag},
				{"environment", map[string]string{variable: tt.value}, nil, variable},
				{"config file", nil, []string{"--config", config}, "config " + config + ": " + key},
			} {
				args := append(append(append([]string{"--data-dir", dir}, base...), others...), how.args...)
				_, stderr, err := serveOnceWith(t, how.vars, args...)
				if exitCode(err) != 2 || err == nil || !strings.HasPrefix(err.Error(), how.want+tt.rest) {
					t.Errorf("%s: err = %v (exit %d), want exit 2 and %q\n%s", how.name, err, exitCode(err), how.want+tt.rest, stderr)
				}
				if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s: a refused start created the data directory (%v)", how.name, err)
				}
			}
		})
	}

	// notify test refuses as serve does.
	config := filepath.Join(t.TempDir(), "scepter.toml")
	writeTestFile(t, config, "smtp_url = \"smtp://127.0.0.1:1\"\nnotify_from = \"ca@example.com\"\nsmtp_starttls = \"yes\"\n")
	e, _, _ := testEnv(nil)
	err := run(context.Background(), e, []string{"notify", "test", "--config", config, "--to", "ops@example.com"})
	if want := "config " + config + `: smtp_starttls "yes": want auto or required`; exitCode(err) != 2 || err == nil || err.Error() != want {
		t.Errorf("notify test: err = %v (exit %d), want %q", err, exitCode(err), want)
	}
}
