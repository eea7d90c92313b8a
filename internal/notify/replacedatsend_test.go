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

// TestMoreUrgentReplacesAtSendTime (r120 observation 3): a more urgent
// threshold crossed after an older notification was claimed (its retry
// due, or never tried), before any scan recorded it, replaces the older
// one when it comes to be sent: the older is not sent, and the urgent one
// goes out in its place, so nobody gets the 5m and the 3m notice in one
// round. The claim saw no 3m row: Deliver runs without a scan, as a
// sender that claimed just before the scan's insert does.
func TestMoreUrgentReplacesAtSendTime(t *testing.T) {
	e := newEnv(t)
	short := pki.DefaultProfile()
	short.Name = "short" // the webhook only
	short.NotifyBefore = []time.Duration{5 * time.Minute, 3 * time.Minute}
	e.profiles["short"] = short
	st := e.open()
	s := e.scheduler(st, "node", func(c *notify.Config) { c.BackoffBase, c.BackoffMax = time.Minute, time.Minute })
	expiry := t0.Add(5 * time.Minute)
	cert(t, st, "1b01", "short", t0.Add(-400*day), expiry)
	cert(t, st, "1b02", "short", t0.Add(-400*day), expiry)
	// 5m crossed: the receiver fails the first, the second is put off
	// without a try; both are due again 30 s later.
	e.hook.SetStatus(http.StatusInternalServerError)
	runOnce(t, s)
	e.hook.SetStatus(http.StatusOK)
	e.clock.Set(expiry.Add(-3 * time.Minute)) // 3m crossed; no scan yet
	if _, err := s.Deliver(context.Background()); err != nil {
		t.Fatal(err)
	}
	runOnce(t, s) // the scan finds 3m recorded already
	if _, hooks := e.sent(); !slices.Equal(hooks, []string{"1b01 5m", "1b01 3m", "1b02 3m"}) {
		t.Errorf("webhook calls %q, want the failed 5m try, then the 3m notices alone", hooks)
	}
	for _, tt := range []struct {
		serial, how string
		want5m      store.NotificationStatus
		reason      string
	}{
		{"1b01", "after a failed try", store.NotificationFailed, "replaced by the 3m notification after 1 failed attempts"},
		{"1b02", "never tried", store.NotificationSkipped, "replaced by the 3m notification"},
	} {
		got := statuses(t, st, tt.serial)
		if n := got["webhook 5m"]; n.Status != tt.want5m || !strings.HasPrefix(n.LastError, tt.reason) {
			t.Errorf("%s (%s): 5m %s %q, want %s %q", tt.serial, tt.how, n.Status, n.LastError, tt.want5m, tt.reason)
		}
		if n := got["webhook 3m"]; n.Status != store.NotificationSent {
			t.Errorf("%s (%s): 3m %s, want sent", tt.serial, tt.how, n.Status)
		}
	}
}
