package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/notify/notifytest"
)

// notifyConfig: certificates valid for an hour at profile "short", two of
// whose thresholds are beyond that (never sent: serve warns of them) and
// one, 59m58s, crossed two seconds after issuance; mail to a fixed address
// and to the owner's email SAN.
const notifyConfig = `
[profiles.short]
validity = "1h"
notify_before = ["30d", "2h", "3598s"]
notify_to = ["pki-ops@example.com"]
notify_owner = true
san_fixed = ["email:owner@example.com"]
`

// TestNotifyExpiry: through the real binary, a certificate enrolled with
// `scepter enroll` at a profile whose notify_before thresholds all come
// within its first seconds brings exactly one mail, for the one shorter
// than its lifetime, (to notify_to and the owner) and one signed
// webhook call, however many scans run; and `scepter notify test --to`
// reaches the same mail server.
func TestNotifyExpiry(t *testing.T) {
	t.Parallel()
	sink := notifytest.StartSMTP(t, notifytest.SMTPOptions{})
	const secret = "notify-hmac-key"
	hook := notifytest.StartWebhook(t, []byte(secret))
	dir := t.TempDir()
	cfg := filepath.Join(dir, "scepter.toml")
	writeFile(t, cfg, notifyConfig)
	secretFile := filepath.Join(dir, "hook-secret")
	writeFile(t, secretFile, secret+"\n")
	smtpURL := "smtp://" + sink.Addr
	s := startServer(t, serverOpts{prepared: true, challenge: "notify-secret", args: []string{"--config", cfg, "--challenge-profile", "short",
		"--notify-interval", "200ms", "--smtp-url", smtpURL, "--notify-from", "scepter@ca.example.com",
		"--notify-webhook-url", hook.URL, "--notify-webhook-secret-file", secretFile}})

	out := t.TempDir()
	if r := enroll(t, out, s.Base+"/scep/short", s.Challenge, "CN=expiring-1,O=Acme", "--key-type", "p256"); r.err != nil {
		t.Fatalf("enroll:\n%s", r)
	}
	c := s.Verify(filepath.Join(out, "cert.pem"))
	serial := serialHex(c.SerialNumber)

	mails := sink.WaitMails(1, 15*time.Second)
	reqs := hook.WaitRequests(1, 15*time.Second)
	if len(mails) == 0 || len(reqs) == 0 {
		t.Fatalf("after 15 s: %d mails, %d webhook calls\n%s", len(mails), len(reqs), s.Output())
	}
	// Several more scans run meanwhile; none may send again. (The wait
	// gives duplicates a chance to show; it asserts nothing about timing.)
	time.Sleep(1500 * time.Millisecond)
	mails, reqs = sink.Mails(), hook.Requests()
	if len(mails) != 1 || len(reqs) != 1 {
		t.Fatalf("%d mails and %d webhook calls, want exactly one each\n%s", len(mails), len(reqs), s.Output())
	}
	m := mails[0]
	if got := strings.Join(m.To, ","); got != "pki-ops@example.com,owner@example.com" {
		t.Errorf("mail to %s, want notify_to and the owner's email SAN", got)
	}
	if !strings.Contains(m.Header.Get("Subject"), "CN=expiring-1,O=Acme") || !strings.Contains(m.Body, serial) ||
		!strings.Contains(m.Body, "Threshold:   3598s") {
		t.Errorf("mail:\nSubject: %s\n%s", m.Header.Get("Subject"), m.Body)
	}
	r := reqs[0]
	if !r.SignatureOK {
		t.Errorf("webhook HMAC does not verify: %v", r.Header)
	}
	if r.JSON["serial"] != serial || r.JSON["threshold"] != "3598s" || r.JSON["profile"] != "short" || r.JSON["version"] != float64(1) ||
		r.JSON["not_after"] != c.NotAfter.UTC().Format(time.RFC3339) {
		t.Errorf("webhook body: %s", r.Body)
	}
	expectContains(t, "server log", s.Output(), "expiry notifications on", "expiry notification sent",
		"never sent", "profile short (validity 1h): 30d, 2h")

	res := s.MustRun("notify", "test", "--to", "someone@example.com", "--smtp-url", smtpURL, "--notify-from", "scepter@ca.example.com")
	expectContains(t, "notify test", res.stdout, "test message sent to someone@example.com")
	if got := sink.Mails(); len(got) != 2 || got[1].To[0] != "someone@example.com" {
		t.Errorf("after notify test: %+v", got)
	}
}
