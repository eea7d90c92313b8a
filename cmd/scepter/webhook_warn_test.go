package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The server warns at start when the webhook would carry challenges in
// clear to another host, or unsigned; it names the host and never the
// URL's query or user information.
func TestWebhookWarnings(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("hmac-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const clear, unsigned = "plain http to another host", "not signed"
	for _, tc := range []struct {
		url, secretFile string
		want, notWant   []string
	}{
		{"https://hooks.example.com/scep", secret, nil, []string{clear, unsigned}},
		{"https://hooks.example.com/scep", "", []string{unsigned}, []string{clear}},
		{"http://hooks.example.com/scep?token=s3cr3t", secret, []string{clear, "host=hooks.example.com"}, []string{unsigned, "s3cr3t"}},
		{"http://user:pw@10.1.2.3:9000/hook", "", []string{clear, unsigned, "host=10.1.2.3"}, []string{"pw@"}},
		{"HTTP://hooks.example.com/", secret, []string{clear}, nil},
		{"http://127.0.0.1:9000/hook", secret, nil, []string{clear, unsigned}},
		{"http://127.8.9.10/hook", secret, nil, []string{clear}},
		{"http://[::1]:9000/hook", secret, nil, []string{clear}},
		{"http://localhost:9000/hook", secret, nil, []string{clear}},
		{"http://hook.localhost/", secret, nil, []string{clear}},
		{"http://localhost.example.com/", secret, []string{clear}, nil},
	} {
		t.Run(tc.url+" "+filepath.Base(tc.secretFile), func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			f := &serveFlags{webhookURL: tc.url, webhookSecretFile: tc.secretFile, webhookTimeout: time.Second}
			v, err := f.webhook(log)
			if err != nil || v == nil {
				t.Fatalf("webhook: %v", err)
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
			if tc.want != nil && !strings.Contains(out, "level=WARN") {
				t.Errorf("not a warning:\n%s", out)
			}
		})
	}
	// An empty secret file is refused: taken for "no secret" it signed
	// nothing while the operator believed otherwise.
	f := &serveFlags{webhookURL: "http://127.0.0.1:9000/hook", webhookSecretFile: empty, webhookTimeout: time.Second}
	if v, err := f.webhook(slog.New(slog.DiscardHandler)); err == nil || v != nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty secret file: %v %v, want a refusal", v, err)
	}
	// No webhook, no warning.
	var buf bytes.Buffer
	if v, err := (&serveFlags{webhookTimeout: time.Second}).webhook(slog.New(slog.NewTextHandler(&buf, nil))); err != nil || v != nil || buf.Len() != 0 {
		t.Errorf("without a webhook: %v %v %q", v, err, buf.String())
	}
}
