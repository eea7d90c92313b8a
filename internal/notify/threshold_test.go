package notify_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// A threshold reaches the webhook, the mail and the audit trail as it was
// configured: notify_before = ["230s"] is "230s", not Go's "3m50s". The
// store keys on the duration, so a second scan sends nothing again.
func TestThresholdAsConfigured(t *testing.T) {
	e := newEnv(t)
	p := e.profiles["default"]
	p.NotifyBefore = []time.Duration{230 * time.Second}
	e.profiles["default"] = p
	st := e.open()
	s := e.scheduler(st, "node")
	cert(t, st, "1501", "default", t0, t0.Add(200*time.Second))
	runOnce(t, s)
	e.clock.Advance(time.Second)
	runOnce(t, s)

	reqs := e.hook.Requests()
	if len(reqs) != 1 || reqs[0].JSON["threshold"] != "230s" || reqs[0].JSON["threshold_seconds"] != float64(230) {
		for _, r := range reqs {
			t.Errorf("webhook request: %v", r.JSON)
		}
		t.Errorf("%d webhook requests, want 1 with threshold 230s", len(reqs))
	}
	mails := e.smtp.Mails()
	if len(mails) != 1 || !strings.Contains(mails[0].Body, "Threshold:   230s") {
		for _, m := range mails {
			t.Errorf("mail body:\n%s", m.Body)
		}
		t.Errorf("%d mails, want 1 with threshold 230s", len(mails))
	}
	evs, err := st.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventNotificationSent})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Fatalf("notification.sent events: %+v", evs)
	}
	for _, ev := range evs {
		var d struct {
			Threshold string `json:"threshold"`
		}
		if err := json.Unmarshal([]byte(ev.Detail), &d); err != nil || d.Threshold != "230s" {
			t.Errorf("event detail %s: threshold %q, err %v", ev.Detail, d.Threshold, err)
		}
	}
}
