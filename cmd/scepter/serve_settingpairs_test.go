package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A value out of range is refused whatever else is given, and a setting
// that needs another is refused without it (exit 2, naming both), from
// flags, the environment or the config file alike. --webhook-timeout 0
// was accepted without --webhook-url, and --notify-from,
// --smtp-password-file and --smtp-starttls required without --smtp-url,
// though README says such settings are refused rather than ignored.
func TestServeRefusesASettingWithoutTheOneItNeeds(t *testing.T) {
	files := t.TempDir()
	secret := filepath.Join(files, "secret")
	if err := os.WriteFile(secret, []byte("s3cret-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := func(body string) []string {
		p := filepath.Join(t.TempDir(), "scepter.toml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return []string{"--config", p}
	}
	for _, tc := range []struct {
		name string
		vars map[string]string
		args []string
		want string
	}{
		{"--webhook-timeout 0 without --webhook-url", nil, []string{"--webhook-timeout", "0"}, "--webhook-timeout 0s: want a duration above 0s"},
		{"--webhook-timeout -1s without --webhook-url", nil, []string{"--webhook-timeout", "-1s"}, "--webhook-timeout -1s: want a duration above 0s"},
		{"SCEPTER_WEBHOOK_TIMEOUT=0", map[string]string{"SCEPTER_WEBHOOK_TIMEOUT": "0s"}, nil, "SCEPTER_WEBHOOK_TIMEOUT 0s: want a duration above 0s"},
		{"webhook_timeout in the config file", nil, config("webhook_timeout = \"0s\"\n"), "webhook_timeout 0s: want a duration above 0s"},
		{"--notify-from without --smtp-url", nil, []string{"--notify-from", "ca@example.com"}, "--notify-from needs --smtp-url"},
		{"SCEPTER_NOTIFY_FROM", map[string]string{"SCEPTER_NOTIFY_FROM": "ca@example.com"}, nil, "SCEPTER_NOTIFY_FROM needs --smtp-url"},
		{"--smtp-password-file without --smtp-url", nil, []string{"--smtp-password-file", secret}, "--smtp-password-file needs --smtp-url"},
		{"smtp_password_file in the config file", nil, config("smtp_password_file = \"" + secret + "\"\n"), "smtp_password_file needs --smtp-url"},
		{"SCEPTER_SMTP_PASSWORD without --smtp-url", map[string]string{smtpPasswordEnv: "pw"}, nil, smtpPasswordEnv + " needs --smtp-url"},
		{"--smtp-starttls required without --smtp-url", nil, []string{"--smtp-starttls", "required"}, "--smtp-starttls required needs --smtp-url"},
		{"bad --smtp-starttls without --smtp-url", nil, []string{"--smtp-starttls", "maybe"}, `--smtp-starttls "maybe": want auto or required`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			args := append([]string{"--data-dir", dir, "--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test"}, tc.args...)
			_, stderr, err := serveOnceWith(t, tc.vars, args...)
			if exitCode(err) != 2 || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v (exit %d), want exit 2 saying %q\n%s", err, exitCode(err), tc.want, stderr)
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused start created the data directory %s (%v)", dir, err)
			}
		})
	}
}
