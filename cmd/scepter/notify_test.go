package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/notify"
	"github.com/scepter/scepter/internal/notify/notifytest"
	"github.com/scepter/scepter/internal/pki"
)

// `scepter notify test --to` sends one mail with serve's settings, from
// flags or from the config file, and says so; a failure names the server
// and the SMTP error.
func TestNotifyTest(t *testing.T) {
	sink := notifytest.StartSMTP(t, notifytest.SMTPOptions{})
	ctx := context.Background()

	e, out, _ := testEnv(nil)
	if err := run(ctx, e, []string{"notify", "test", "--to", "ops@example.com", "--smtp-url", "smtp://" + sink.Addr, "--notify-from", "ca@example.com"}); err != nil {
		t.Fatalf("notify test: %v", err)
	}
	if !strings.Contains(out.String(), "test message sent to ops@example.com through smtp://"+sink.Addr) {
		t.Errorf("stdout: %q", out.String())
	}

	// The same settings from the config file serve reads; its other keys
	// and profiles are accepted.
	cfg := filepath.Join(t.TempDir(), "scepter.toml")
	writeTestFile(t, cfg, `listen = "127.0.0.1:0"
smtp_url = "smtp://`+sink.Addr+`"
notify_from = "Scepter CA <ca@example.com>"
notify_interval = "5m"

[profiles.default]
notify_before = ["14d", "2d"]
notify_to = ["ops@example.com"]
`)
	e, out, _ = testEnv(nil)
	if err := run(ctx, e, []string{"notify", "test", "--config", cfg, "--to", "dev@example.com"}); err != nil {
		t.Fatalf("notify test --config: %v", err)
	}
	mails := sink.Mails()
	if len(mails) != 2 || mails[1].To[0] != "dev@example.com" || mails[1].From != "ca@example.com" || !strings.Contains(mails[1].Body, "notify test") {
		t.Errorf("mails: %+v", mails)
	}

	// A server that is down: exit 1, the server and the error named.
	e, _, _ = testEnv(nil)
	err := run(ctx, e, []string{"notify", "test", "--to", "ops@example.com", "--smtp-url", "smtp://127.0.0.1:1", "--notify-from", "ca@example.com"})
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "not sent") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("server down: err = %v (exit %d)", err, exitCode(err))
	}
}

func TestNotifyTestUsage(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	writeTestFile(t, pw, "hunter2-secret\n")
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"notify"}, nil, "usage"},
		{[]string{"notify", "send"}, nil, "usage"},
		{[]string{"notify", "test", "--smtp-url", "smtp://127.0.0.1:1", "--notify-from", "a@example.com"}, nil, "--to is required"},
		{[]string{"notify", "test", "--to", "a@example.com"}, nil, "--smtp-url"},
		{[]string{"notify", "test", "--to", "a@example.com", "--smtp-url", "smtp://127.0.0.1:1"}, nil, "--notify-from"},
		{[]string{"notify", "test", "--to", "a@example.com", "--smtp-url", "smtp://u:hunter2-secret@127.0.0.1:1", "--notify-from", "a@example.com"}, nil, "must not hold a password"},
		{[]string{"notify", "test", "--to", "a@example.com", "--smtp-url", "smtp://127.0.0.1:1", "--notify-from", "a@example.com", "--smtp-password-file", pw}, nil, "names no user"},
		{[]string{"notify", "test", "--to", "a@example.com", "--smtp-url", "smtp://127.0.0.1:1", "--notify-from", "a@example.com"},
			map[string]string{"SCEPTER_SMTP_PASSWORD": "hunter2-secret"}, "names no user"},
		{[]string{"notify", "test", "--to", "a@example.com", "--smtp-url", "smtp://127.0.0.1:1", "--notify-from", "a@example.com", "--smtp-starttls", "maybe"}, nil, "--smtp-starttls"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			e, _, _ := testEnv(tc.env)
			err := run(context.Background(), e, tc.args)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if exitCode(err) != 2 {
				t.Errorf("exit code %d, want 2", exitCode(err))
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

// The server warns about mail that may go in clear, an unsigned or plain
// webhook, and profiles that expect mail without a mail server; with no
// notification settings at all it says nothing and starts nothing.
func TestNotifyWarnings(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	writeTestFile(t, secret, "hmac-key\n")
	plain := map[string]pki.Profile{"default": pki.DefaultProfile()}
	mailing := pki.DefaultProfile()
	mailing.NotifyTo = []string{"ops@example.com"}
	withMail := map[string]pki.Profile{"default": pki.DefaultProfile(), "vpn": mailing}
	const (
		noSMTP    = "--smtp-url is not set"
		clear     = "mail goes in clear"
		noRcpt    = "no profile sets notify_to"
		hookClear = "--notify-webhook-url is plain http"
		unsigned  = "not signed"
	)
	for _, tc := range []struct {
		name     string
		f        notifyFlags
		profiles map[string]pki.Profile
		channels int
		want     []string
		notWant  []string
	}{
		{"nothing set", notifyFlags{}, plain, 0, nil, []string{noSMTP, clear, noRcpt, hookClear, unsigned}},
		{"notify_to without SMTP", notifyFlags{}, withMail, 0, []string{noSMTP, "vpn"}, nil},
		{"smtp to another host", notifyFlags{smtpURL: "smtp://mail.example.com:587", from: "a@example.com", smtpStartTLS: "auto"}, withMail, 1,
			[]string{clear, "host=mail.example.com"}, []string{noSMTP, noRcpt}},
		{"smtp starttls required", notifyFlags{smtpURL: "smtp://mail.example.com:587", from: "a@example.com", smtpStartTLS: "required"}, withMail, 1,
			nil, []string{clear}},
		{"smtps", notifyFlags{smtpURL: "smtps://mail.example.com", from: "a@example.com", smtpStartTLS: "auto"}, withMail, 1, nil, []string{clear}},
		{"smtp on loopback", notifyFlags{smtpURL: "smtp://127.0.0.1:2525", from: "a@example.com", smtpStartTLS: "auto"}, withMail, 1, nil, []string{clear}},
		{"smtp without recipients", notifyFlags{smtpURL: "smtps://mail.example.com", from: "a@example.com", smtpStartTLS: "auto"}, plain, 1, []string{noRcpt}, nil},
		{"webhook plain, unsigned", notifyFlags{webhookURL: "http://hooks.example.com/n?token=s3cr3t"}, plain, 1,
			[]string{hookClear, unsigned, "host=hooks.example.com"}, []string{"s3cr3t", noSMTP}},
		{"webhook https, signed", notifyFlags{webhookURL: "https://hooks.example.com/n", webhookSecretFile: secret}, plain, 1, nil, []string{hookClear, unsigned}},
		{"webhook loopback", notifyFlags{webhookURL: "http://127.0.0.1:9/n", webhookSecretFile: secret}, plain, 1, nil, []string{hookClear}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			e, _, _ := testEnv(nil)
			chans, err := tc.f.channels(e, tc.profiles, log)
			if err != nil {
				t.Fatal(err)
			}
			if len(chans) != tc.channels {
				t.Errorf("%d channels, want %d", len(chans), tc.channels)
			}
			out := buf.String()
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("log lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("log has %q:\n%s", w, out)
				}
			}
		})
	}

	// A secret file that holds no key is refused, not taken for "unsigned".
	blank := filepath.Join(t.TempDir(), "blank")
	writeTestFile(t, blank, " \n")
	e, _, _ := testEnv(nil)
	f := notifyFlags{webhookURL: "https://hooks.example.com/n", webhookSecretFile: blank}
	if chans, err := f.channels(e, plain, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("blank webhook secret file: %d channels, err = %v", len(chans), err)
	}

	// No settings: nothing started, nothing logged.
	var buf bytes.Buffer
	f = notifyFlags{interval: notify.DefaultInterval}
	e, _, _ = testEnv(nil)
	log := slog.New(slog.NewTextHandler(&buf, nil))
	chans, err := f.checkNotifier(e, plain, log)
	if err != nil {
		t.Fatal(err)
	}
	stop, err := f.startNotifier(context.Background(), nil, plain, chans, pki.SystemClock{}, log)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if buf.Len() != 0 {
		t.Errorf("serve without notification settings logged:\n%s", buf.String())
	}
}

// Serve's new flags take their defaults and their config-file keys.
func TestServeNotifyFlags(t *testing.T) {
	e, _, _ := testEnv(map[string]string{"SCEPTER_SMTP_URL": "smtps://mail.example.com"})
	fs, f := newServeFlags(e)
	if err := parseFlags(fs, e, []string{"--notify-interval", "90s"}, 0, f.sections()); err != nil {
		t.Fatal(err)
	}
	if f.notify.interval.String() != "1m30s" || f.notify.smtpURL != "smtps://mail.example.com" || f.notify.smtpStartTLS != "auto" {
		t.Errorf("notify flags: %+v", f.notify)
	}
	// The password has no flag and no config key.
	cfg := filepath.Join(t.TempDir(), "c.toml")
	writeTestFile(t, cfg, "smtp_password = \"x\"\n")
	e, _, _ = testEnv(nil)
	fs, f = newServeFlags(e)
	if err := parseFlags(fs, e, []string{"--config", cfg}, 0, f.sections()); err == nil || !strings.Contains(err.Error(), "smtp_password") {
		t.Errorf("smtp_password in the config file: err = %v", err)
	}
}

func writeTestFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// The example config's notification settings build their channels.
func TestExampleNotifySettings(t *testing.T) {
	e, _, _ := testEnv(nil)
	fs, f := newServeFlags(e)
	if err := parseFlags(fs, e, []string{"--config", "../../examples/scepter.toml"}, 0, f.sections()); err != nil {
		t.Fatal(err)
	}
	profiles, err := f.profileSet()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	chans, err := f.notify.channels(e, profiles, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil || len(chans) != 1 {
		t.Fatalf("channels: %d, %v", len(chans), err)
	}
	if buf.Len() != 0 {
		t.Errorf("the example config draws warnings:\n%s", buf.String())
	}
	if p := profiles["mdm"]; !p.NotifyOwner || len(p.NotifyBefore) != 2 {
		t.Errorf("mdm profile: %v %v", p.NotifyBefore, p.NotifyOwner)
	}
}

// TestNotifyTestChecksToBeforeSending (r104 D2): a --to that is no mail
// address is a setting refused with the others (exit 2) before anything is
// sent: the webhook gets no test request and the mail server no message.
func TestNotifyTestChecksToBeforeSending(t *testing.T) {
	sink := notifytest.StartSMTP(t, notifytest.SMTPOptions{})
	hook := notifytest.StartWebhook(t, nil)
	for _, to := range []string{"bad addr", "ops@example.com\r\nBcc: spy@example.com", "@example.com", "ops@"} {
		t.Run(to, func(t *testing.T) {
			e, out, _ := testEnv(nil)
			err := run(context.Background(), e, []string{"notify", "test", "--to", to, "--smtp-url", "smtp://" + sink.Addr,
				"--notify-from", "ca@example.com", "--notify-webhook-url", hook.URL})
			if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "--to") || !strings.Contains(err.Error(), "is not a mail address") {
				t.Errorf("err = %v (exit %d), want exit 2 naming --to", err, exitCode(err))
			}
			if n := len(hook.Requests()); n != 0 {
				t.Errorf("the webhook got %d test requests before --to was refused", n)
			}
			if n := len(sink.Mails()); n != 0 {
				t.Errorf("the mail server got %d messages", n)
			}
			if out.Len() != 0 {
				t.Errorf("stdout: %q, want nothing sent", out.String())
			}
		})
	}
}
