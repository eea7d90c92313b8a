package notify_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/notify"
	"github.com/scepter/scepter/internal/notify/notifytest"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// waitFor polls cond until it holds or timeout passes (real time: the
// scheduler's goroutines and the receivers run on their own).
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHangingMailServerHoldsOnlyTheMail (r104 D1): a mail server that
// never answers the end of a message holds that mail's send for up to the
// data timeout (10 minutes). Meanwhile the webhook is sent, a certificate
// recorded later is scanned and its webhook sent too: the channels and
// the scan do not wait for each other. Stopping Run ends the hung send.
func TestHangingMailServerHoldsOnlyTheMail(t *testing.T) {
	e := newEnv(t)
	addr, received := slowDataSMTP(t, 0, "") // never answers the end of DATA
	e.smtpURL = "smtp://" + addr
	st := e.open()
	s := e.scheduler(st, "node", func(c *notify.Config) { c.Interval, c.RetryPoll = 50*time.Millisecond, 50*time.Millisecond })
	cert(t, st, "1c01", "default", t0, t0.Add(3*day))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	defer func() { cancel(); <-done }()

	waitFor(t, 10*time.Second, "the mail server never got the first mail", func() bool { return received.Load() == 1 })
	waitFor(t, 10*time.Second, "the webhook of the first certificate was not sent while its mail hangs",
		func() bool { return len(e.hook.Requests()) == 1 })
	// Recorded while the mail still hangs: the scan must find it, and its
	// webhook go out, without waiting for that mail.
	e.clock.Advance(time.Minute)
	cert(t, st, "1c02", "default", e.clock.Now(), t0.Add(3*day))
	waitFor(t, 10*time.Second, "a certificate recorded while the mail hangs was not scanned and its webhook not sent",
		func() bool { return len(e.hook.Requests()) == 2 })
	if _, hooks := e.sent(); !slices.Equal(hooks, []string{"1c01 7d", "1c02 7d"}) {
		t.Errorf("webhook calls %q, want 1c01 7d and 1c02 7d", hooks)
	}
	// The scan records each channel's intents in a pass of its own: the
	// mail's may come a scan after the webhook's.
	waitFor(t, 10*time.Second, "the mail intent of 1c02 was not recorded while the first mail hangs", func() bool {
		n := statuses(t, st, "1c02")["smtp 7d"]
		return n.Status == store.NotificationPending && n.Attempts == 0
	})
	if n := statuses(t, st, "1c01")["smtp 7d"]; n.ClaimedBy != "node" || n.Attempts != 0 {
		t.Errorf("the hanging mail of 1c01: %+v, want leased to node, in flight", n)
	}
	if n := received.Load(); n != 1 {
		t.Errorf("the mail server got %d messages while the first hangs, want 1", n)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return once stopped, with a mail send hanging")
	}
}

// TestExpiredWithoutATrySaysWhy (r104 D1): a notification given up at
// its certificate's expiry without ever being tried does not blame the
// expiry alone: its log line and audit event say it was never tried, and
// why as far as the node knows: its channel busy with a hanging send
// (and how that ended), failing (the error), or nothing known here.
func TestExpiredWithoutATrySaysWhy(t *testing.T) {
	tests := []struct {
		name string
		// mail returns the SMTP URL, its data timeout and, for a server
		// that hangs, a report that the first mail reached it: the clock
		// moves while that send hangs (nil: once the first delivery ended).
		mail func(t *testing.T, e *env) (url string, dataTimeout time.Duration, started func() bool)
		// restart delivers with a new scheduler, as after a restart.
		restart bool
		want    []string
	}{
		{
			name: "busy with a hanging send",
			mail: func(t *testing.T, e *env) (string, time.Duration, func() bool) {
				// The hang outlasts the test's move of the clock, under load too.
				addr, received := slowDataSMTP(t, 0, "")
				return "smtp://" + addr, 2 * time.Second, func() bool { return received.Load() == 1 }
			},
			want: []string{"no try of it was recorded (a send cut short by a crash leaves none), due since 2031-03-04T05:07:07Z", "the smtp channel was busy or failing",
				"its last send failed at 2031-03-04T07:07:07Z", notify.ErrOutcomeUnknown.Error()},
		},
		{
			name: "failing",
			mail: func(t *testing.T, e *env) (string, time.Duration, func() bool) {
				e.smtp.Reject(true)
				return e.smtpURL, 0, nil
			},
			want: []string{"no try of it was recorded (a send cut short by a crash leaves none), due since 2031-03-04T05:07:07Z", "the smtp channel was failing (", "451"},
		},
		{
			name: "nothing known on this node",
			mail: func(t *testing.T, e *env) (string, time.Duration, func() bool) {
				return e.smtpURL, 0, nil
			},
			restart: true,
			want: []string{"no try of it was recorded (a send cut short by a crash leaves none), due since 2031-03-04T05:07:07Z",
				"the smtp channel was busy with other notifications, or no node could send on it"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			url, dataTimeout, started := tt.mail(t, e)
			st := e.open()
			newScheduler := func() *notify.Scheduler {
				mail, err := notify.NewSMTP(notify.SMTPConfig{URL: url, From: "scepter@ca.example.com", Timeout: 5 * time.Second,
					DataTimeout: dataTimeout})
				if err != nil {
					t.Fatal(err)
				}
				return e.scheduler(st, "node", func(c *notify.Config) { c.Channels = []notify.Channel{mail} })
			}
			s := newScheduler()
			// 1d01 is due first; 1d02, due a minute later, expires two
			// hours after that.
			cert(t, st, "1d01", "default", t0, t0.Add(3*day))
			if _, err := s.Scan(context.Background()); err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(time.Minute)
			expiresAt := e.clock.Now().Add(2 * time.Hour)
			cert(t, st, "1d02", "default", e.clock.Now(), expiresAt)
			if _, err := s.Scan(context.Background()); err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.restart:
				// The node went down before it sent either; it comes
				// back after 1d02 expired.
				e.clock.Set(expiresAt)
				s = newScheduler()
			case started == nil:
				// 1d01's mail fails, 1d02's waits without a try; 1d02
				// expires before the retry.
				if _, err := s.Deliver(context.Background()); err != nil {
					t.Fatal(err)
				}
				e.clock.Set(expiresAt)
			default:
				delivered := make(chan error, 1)
				go func() {
					_, err := s.Deliver(context.Background())
					delivered <- err
				}()
				waitFor(t, 10*time.Second, "the first mail was never sent", started)
				// 1d02 expires while 1d01's mail hangs.
				e.clock.Set(expiresAt)
				if err := <-delivered; err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.Deliver(context.Background()); err != nil {
				t.Fatal(err)
			}
			n := statuses(t, st, "1d02")["smtp 1d"]
			if n.Status != store.NotificationFailed || n.Attempts != 0 {
				t.Fatalf("1d02: %+v, want failed without a try", n)
			}
			evs, err := st.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventNotificationFailed})
			if err != nil {
				t.Fatal(err)
			}
			var reason string
			for _, ev := range evs {
				if ev.SerialHex == "1d02" {
					reason = ev.Reason
				}
			}
			for _, w := range append([]string{"certificate expired before the notification was delivered"}, tt.want...) {
				if !strings.Contains(reason, w) {
					t.Errorf("notification.failed reason %q, want it to say %q", reason, w)
				}
				if !strings.Contains(e.log.String(), w) {
					t.Errorf("log does not say %q:\n%s", w, e.log.String())
				}
			}
		})
	}
}

// TestPartlySentMailLogSaysWhoHasIt (r104 observation): a mail that one
// recipient put off (451) while the others took it is logged as reaching
// those, to be retried for the rest, not as "not sent".
func TestPartlySentMailLogSaysWhoHasIt(t *testing.T) {
	e := newEnv(t)
	owner := "owner-1e01@example.com"
	sink := notifytest.StartSMTP(t, notifytest.SMTPOptions{DeferRecipients: map[string]int{owner: 2}})
	e.smtp, e.smtpURL = sink, "smtp://"+sink.Addr
	st := e.open()
	s := e.scheduler(st, "node", func(c *notify.Config) {
		c.Log = slog.New(slog.NewTextHandler(e.log, nil))
	})
	cert(t, st, "1e01", "default", t0, t0.Add(5*day))
	runOnce(t, s)
	log := e.log.String()
	if strings.Contains(log, "not sent") {
		t.Errorf("a mail one of two recipients has is logged as not sent:\n%s", log)
	}
	for _, w := range []string{"expiry notification reached 1 of 2 recipients; will retry for the rest", "delivered_to=" + opsAddr,
		"retry_for=" + owner} {
		if !strings.Contains(log, w) {
			t.Errorf("log does not say %q:\n%s", w, log)
		}
	}
	if n := statuses(t, st, "1e01")["smtp 7d"]; n.Status != store.NotificationPending || !slices.Equal(n.Accepted, []string{opsAddr}) {
		t.Errorf("after the first attempt: %+v", n)
	}
}
