package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/scepter/scepter/internal/notify/notifytest"
)

// hookRequest is one request a test webhook receiver got.
type hookRequest struct {
	header http.Header
	body   []byte
}

// startHook starts a webhook receiver on 127.0.0.1 that answers status
// and returns its URL (with a path, as chat webhooks have) and what it got.
func startHook(t *testing.T, status int) (string, func() []hookRequest) {
	t.Helper()
	var mu sync.Mutex
	var got []hookRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, hookRequest{r.Header.Clone(), b})
		mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/hooks/SECRETPATH", func() []hookRequest {
		mu.Lock()
		defer mu.Unlock()
		return append([]hookRequest(nil), got...)
	}
}

// r87 D6: `scepter notify test` tests each channel configured: with a
// webhook it POSTs one test request, type "test", signed as
// notifications are, and says what the receiver answered; --to is
// required only with a mail server. Before, it took the webhook flags and
// ignored them: with only a webhook it asked for --to and then for
// --smtp-url, and with both it mailed and never POSTed.
func TestNotifyTestWebhook(t *testing.T) {
	ctx := context.Background()
	secretFile := filepath.Join(t.TempDir(), "hook-secret")
	writeTestFile(t, secretFile, "s3cret-hmac-key\n")

	// Only a webhook, signed: no --to needed.
	hookURL, got := startHook(t, http.StatusNoContent)
	e, out, _ := testEnv(nil)
	if err := run(ctx, e, []string{"notify", "test", "--notify-webhook-url", hookURL, "--notify-webhook-secret-file", secretFile}); err != nil {
		t.Fatalf("notify test with a webhook: %v", err)
	}
	if s := out.String(); !strings.Contains(s, "test request delivered to ") || !strings.Contains(s, "HTTP 204") || !strings.Contains(s, "signed") || strings.Contains(s, "SECRETPATH") {
		t.Errorf("stdout %q: want the delivery, its status and that it is signed, without the URL's path", s)
	}
	reqs := got()
	if len(reqs) != 1 {
		t.Fatalf("the webhook got %d requests, want 1", len(reqs))
	}
	var body struct {
		Version int    `json:"version"`
		Type    string `json:"type"`
		ID      string `json:"id"`
		Time    string `json:"time"`
		Serial  *string
	}
	if err := json.Unmarshal(reqs[0].body, &body); err != nil {
		t.Fatalf("body %q: %v", reqs[0].body, err)
	}
	if body.Version != 1 || body.Type != "test" || !strings.HasPrefix(body.ID, "test:") || body.Time == "" || body.Serial != nil {
		t.Errorf("body %s: want version 1, type test, an id test:…, the time, and no certificate fields", reqs[0].body)
	}
	h := reqs[0].header
	mac := hmac.New(sha256.New, []byte("s3cret-hmac-key"))
	mac.Write([]byte(h.Get("X-Scepter-Timestamp") + "." + string(reqs[0].body)))
	if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); h.Get("X-Scepter-Signature") != want || h.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v: want the signature %s of the timestamp and body, and JSON", h, want)
	}

	// Mail and webhook: each gets its test, and each outcome is printed.
	sink := notifytest.StartSMTP(t, notifytest.SMTPOptions{})
	hookURL, got = startHook(t, http.StatusOK)
	e, out, _ = testEnv(nil)
	mail := []string{"--smtp-url", "smtp://" + sink.Addr, "--notify-from", "ca@example.com", "--to", "ops@example.com"}
	if err := run(ctx, e, append([]string{"notify", "test", "--notify-webhook-url", hookURL}, mail...)); err != nil {
		t.Fatalf("notify test with mail and a webhook: %v", err)
	}
	if s := out.String(); !strings.Contains(s, "test message sent to ops@example.com") || !strings.Contains(s, "HTTP 200 (unsigned") {
		t.Errorf("stdout %q: want both outcomes, the webhook's unsigned", s)
	}
	if len(sink.Mails()) != 1 || len(got()) != 1 {
		t.Errorf("%d mails and %d webhook requests, want one of each", len(sink.Mails()), len(got()))
	}

	// A receiver that refuses: the mail still goes, and it exits 1 naming
	// the status.
	hookURL, _ = startHook(t, http.StatusInternalServerError)
	e, out, _ = testEnv(nil)
	err := run(ctx, e, append([]string{"notify", "test", "--notify-webhook-url", hookURL}, mail...))
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "test request not delivered") || !strings.Contains(err.Error(), "HTTP 500") ||
		strings.Contains(err.Error(), "SECRETPATH") || !strings.Contains(out.String(), "test message sent to ops@example.com") {
		t.Errorf("a refusing webhook: err = %v (exit %d), stdout %q", err, exitCode(err), out.String())
	}

	// What does not make sense is refused before anything is sent.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "nothing to test"},
		{[]string{"--to", "ops@example.com"}, "no mail server is set: set --smtp-url"},
		{[]string{"--to", "ops@example.com", "--notify-webhook-url", hookURL}, "no mail server is set"},
		{[]string{"--notify-webhook-secret-file", secretFile}, "--notify-webhook-secret-file needs --notify-webhook-url"},
		{[]string{"--smtp-url", "smtp://" + sink.Addr, "--notify-from", "ca@example.com", "--notify-webhook-url", hookURL}, "--to is required with --smtp-url"},
		{[]string{"--to", "ops@example.com", "--smtp-url", "smtp://" + sink.Addr, "--notify-from", "ca@example.com", "--notify-webhook-url", "ftp://x"}, "--notify-webhook-url"},
	} {
		e, _, _ := testEnv(nil)
		err := run(ctx, e, append([]string{"notify", "test"}, tc.args...))
		wantUsageError(t, strings.Join(tc.args, " "), err, "", []string{tc.want})
	}
	if n := len(sink.Mails()); n != 2 {
		t.Errorf("%d mails, want 2: a refused command sends none", n)
	}
}
