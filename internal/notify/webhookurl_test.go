package notify_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/notify"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// Chat webhooks (Slack, Teams, Discord) keep their secret in the URL's
// path: Display, the log, the stored last_error and the audit trail show
// the scheme and host only.
func TestWebhookURLPathNotShown(t *testing.T) {
	const secretPath = "/services/T000/B000/XXXXSECRETXXXX"
	for _, tc := range []struct{ url, want string }{
		{"https://hooks.example.test" + secretPath, "https://hooks.example.test/…"},
		{"https://hooks.example.test:8443/x?token=XXXXSECRETXXXX", "https://hooks.example.test:8443/…"},
		{"http://hooks.example.test/", "http://hooks.example.test"},
		{"http://hooks.example.test", "http://hooks.example.test"},
	} {
		w, err := notify.NewWebhook(notify.WebhookConfig{URL: tc.url})
		if err != nil {
			t.Fatal(err)
		}
		if got := w.Display(); got != tc.want {
			t.Errorf("Display(%q) = %q, want %q", tc.url, got, tc.want)
		}
	}

	e := newEnv(t)
	e.hook.URL += secretPath
	st := e.open()
	s := e.scheduler(st, "node", func(c *notify.Config) { c.MaxAttempts = 1 })
	cert(t, st, "1401", "quiet", t0, t0.Add(20*day)) // webhook only
	e.hook.SetStatus(http.StatusInternalServerError)
	runOnce(t, s)

	n := statuses(t, st, "1401")["webhook 30d"]
	if n.Attempts != 1 || !strings.Contains(n.LastError, "HTTP 500") || !strings.Contains(n.LastError, "/…") {
		t.Errorf("notification: %+v", n)
	}
	evs, err := st.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventNotificationFailed})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 {
		t.Fatalf("notification.failed events: %+v", evs)
	}
	for what, text := range map[string]string{"last_error": n.LastError, "log": e.log.String(), "audit reason": evs[0].Reason, "audit detail": evs[0].Detail} {
		if strings.Contains(text, "XXXXSECRET") || strings.Contains(text, "/services") {
			t.Errorf("%s shows the URL's path: %s", what, text)
		}
	}
}
