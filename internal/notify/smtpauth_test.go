package notify_test

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/notify"
	"github.com/scepter/scepter/internal/notify/notifytest"
)

// A URL that names a user needs a password: without one, every send
// would authenticate with an empty one and fail. A URL without a user
// still sends without authentication.
func TestSMTPUserNeedsPassword(t *testing.T) {
	_, err := notify.NewSMTP(notify.SMTPConfig{URL: "smtp://bob@127.0.0.1:25", From: "ca@example.com"})
	if err == nil || !strings.Contains(err.Error(), "--smtp-password-file") || !strings.Contains(err.Error(), "SCEPTER_SMTP_PASSWORD") {
		t.Errorf("user without password: err = %v", err)
	}
	if _, err := notify.NewSMTP(notify.SMTPConfig{URL: "smtp://127.0.0.1:25", From: "ca@example.com"}); err != nil {
		t.Errorf("no user, no password: %v", err)
	}
}

// When authentication fails, the error says how: the server offers no
// AUTH at all, or it refused the credentials; never "dial failed".
func TestSMTPAuthFailureSaysWhy(t *testing.T) {
	ctx := context.Background()
	serverTLS, roots := selfSigned(t)
	const user, password = "bob", "correct horse battery staple"
	for _, tc := range []struct {
		name, sendPassword string
		opts               notifytest.SMTPOptions
		want               string
	}{
		{"no AUTH offered", password, notifytest.SMTPOptions{}, "offers no SMTP AUTH"},
		{"wrong password", "wrong " + password, notifytest.SMTPOptions{TLS: serverTLS, User: user, Password: password}, "refused authentication as \"bob\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := notifytest.StartSMTP(t, tc.opts)
			cfg := notify.SMTPConfig{URL: "smtp://" + user + "@" + sink.Addr, Password: tc.sendPassword, From: "ca@example.com"}
			if tc.opts.TLS != nil {
				cfg.TLSConfig = &tls.Config{RootCAs: roots}
			}
			m, err := notify.NewSMTP(cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = m.SendTest(ctx, "ops@example.com", t0)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "dial failed") ||
				strings.Contains(err.Error(), password) || !strings.Contains(err.Error(), sink.Addr) {
				t.Errorf("err = %v, want it to say %q", err, tc.want)
			}
			if len(sink.Mails()) != 0 {
				t.Error("mail sent")
			}
		})
	}
}
