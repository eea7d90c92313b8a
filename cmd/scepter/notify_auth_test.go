package main

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
)

// An --smtp-url that names a user is refused at start, as a usage error,
// unless a password is given one of the two ways; the message names both.
// A URL without a user still needs none.
func TestSMTPUserWithoutPasswordRefused(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	writeTestFile(t, pw, "hunter2-secret\n")
	profiles := map[string]pki.Profile{"default": pki.DefaultProfile()}
	for _, tc := range []struct {
		name    string
		url     string
		pwFile  string
		env     map[string]string
		refused bool
	}{
		{"user, no password", "smtp://bob@127.0.0.1:2525", "", nil, true},
		{"user, password file", "smtp://bob@127.0.0.1:2525", pw, nil, false},
		{"user, password in the environment", "smtps://bob@127.0.0.1:2525", "", map[string]string{smtpPasswordEnv: "hunter2-secret"}, false},
		{"no user, no password", "smtp://127.0.0.1:2525", "", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _, _ := testEnv(tc.env)
			f := notifyFlags{interval: time.Minute, smtpURL: tc.url, smtpPasswordFile: tc.pwFile, smtpStartTLS: "auto", from: "ca@example.com"}
			_, err := f.checkNotifier(e, profiles, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
			if !tc.refused {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "--smtp-password-file") || !strings.Contains(err.Error(), smtpPasswordEnv) {
				t.Fatalf("err = %v (exit %d), want a usage error naming --smtp-password-file and %s", err, exitCode(err), smtpPasswordEnv)
			}
		})
	}

	// notify test reads the same settings: refused before it dials.
	e, _, _ := testEnv(nil)
	err := run(context.Background(), e, []string{"notify", "test", "--to", "ops@example.com", "--smtp-url", "smtp://bob@127.0.0.1:1", "--notify-from", "ca@example.com"})
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "no password") {
		t.Errorf("notify test: err = %v (exit %d)", err, exitCode(err))
	}
}
