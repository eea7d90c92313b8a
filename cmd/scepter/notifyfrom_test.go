package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestBadNotifyFromNamedAsGiven (r120 D1): a sender address that is not
// one is refused naming --notify-from as it was given (flag, variable, or
// the config file's key), by serve and by notify test alike, not as the
// mail server's setting --smtp-url.
func TestBadNotifyFromNamedAsGiven(t *testing.T) {
	config := filepath.Join(t.TempDir(), "scepter.toml")
	writeTestFile(t, config, "smtp_url = \"smtp://127.0.0.1:1\"\nnotify_from = \"not an address\"\n")
	const rest = ` "not an address": want an address like scepter@example.com`
	serve := []string{"serve", "--listen", "127.0.0.1:0", "--est-listen", "off"}
	notifyTest := []string{"notify", "test", "--to", "ops@example.com"}
	for _, tt := range []struct {
		name string
		vars map[string]string
		args []string
		want string
	}{
		{"serve flag", nil, append(serve, "--smtp-url", "smtp://127.0.0.1:1", "--notify-from", "not an address"), "--notify-from"},
		{"serve environment", map[string]string{"SCEPTER_NOTIFY_FROM": "not an address"}, append(serve, "--smtp-url", "smtp://127.0.0.1:1"), "SCEPTER_NOTIFY_FROM"},
		{"serve config file", nil, append(serve, "--config", config), "config " + config + ": notify_from"},
		{"notify test flag", nil, append(notifyTest, "--smtp-url", "smtp://127.0.0.1:1", "--notify-from", "not an address"), "--notify-from"},
		{"notify test environment", map[string]string{"SCEPTER_NOTIFY_FROM": "not an address"}, append(notifyTest, "--smtp-url", "smtp://127.0.0.1:1"), "SCEPTER_NOTIFY_FROM"},
		{"notify test config file", nil, append(notifyTest, "--config", config), "config " + config + ": notify_from"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			args := append(append([]string{}, tt.args...), "--data-dir", dir)
			e, _, _ := testEnv(tt.vars)
			err := run(context.Background(), e, args)
			if exitCode(err) != 2 || err == nil || err.Error() != tt.want+rest {
				t.Errorf("err = %v (exit %d), want exit 2 and %q", err, exitCode(err), tt.want+rest)
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused command created the data directory (%v)", err)
			}
		})
	}
}
