package notify_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/notify"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// TestPendingGivenUpAtExpiry (r120 observation 4): a notification still
// pending when its certificate expires is given up, with its audit event,
// by the first send round after the expiry, not only once its retry comes
// due (up to BackoffMax later): a retry is never put after the expiry.
func TestPendingGivenUpAtExpiry(t *testing.T) {
	e := newEnv(t)
	st := e.open()
	s := e.scheduler(st, "node", func(c *notify.Config) {
		c.BackoffBase, c.BackoffMax = time.Hour, time.Hour // a retry half an hour after a failure (no jitter)
	})
	expiry := t0.Add(10 * time.Minute)
	// "quiet": the webhook only. Both cross 1d at once; the receiver
	// fails the first, and the second is put off without a try.
	cert(t, st, "1a01", "quiet", t0.Add(-400*day), expiry)
	cert(t, st, "1a02", "quiet", t0.Add(-400*day), expiry)
	e.hook.SetStatus(http.StatusInternalServerError)
	runOnce(t, s)
	e.hook.SetStatus(http.StatusOK)
	e.clock.Set(expiry.Add(time.Second))
	if _, err := s.Deliver(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs, err := st.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventNotificationFailed})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		serial, how string
	}{
		{"1a01", "after a failed try"},
		{"1a02", "put off behind its channel's failure"},
	} {
		n := statuses(t, st, tt.serial)["webhook 1d"]
		if n.Status != store.NotificationFailed || !strings.Contains(n.LastError, "certificate expired before the notification was delivered") {
			t.Errorf("%s (%s), a second after the expiry: %s %q (next try was due %s), want failed at expiry",
				tt.serial, tt.how, n.Status, n.LastError, n.NextAttemptAt.Format(time.RFC3339))
		}
		found := false
		for _, ev := range evs {
			found = found || ev.SerialHex == tt.serial
		}
		if !found {
			t.Errorf("%s (%s): no notification.failed event", tt.serial, tt.how)
		}
	}
	if _, hooks := e.sent(); !slices.Equal(hooks, []string{"1a01 1d"}) {
		t.Errorf("webhook calls %q, want the one failed try alone: nothing is sent after the expiry", hooks)
	}
}
