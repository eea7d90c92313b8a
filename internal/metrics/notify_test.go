package metrics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/notify"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// flaky is a notification channel whose first send fails.
type flaky struct{ sends int }

func (f *flaky) Name() string                              { return notify.ChannelWebhook }
func (f *flaky) Wants(*pki.Certificate, *pki.Profile) bool { return true }
func (f *flaky) Send(ctx context.Context, m notify.Message) error {
	f.sends++
	if f.sends == 1 {
		return errors.New("receiver down")
	}
	return nil
}

// Notifications sent and failed are counted by channel, through the
// scheduler's observer.
func TestNotificationsAreCounted(t *testing.T) {
	e := newEnv(t)
	e.issue(t, "device-n")
	ch := &flaky{}
	sched, err := notify.New(notify.Config{Store: e.pki.Store, Clock: e.pki.Clock, Channels: []notify.Channel{ch},
		Jitter: func() float64 { return 0 }, Observer: e.m})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e.pki.Clock.Advance(340 * 24 * time.Hour) // the 30-day threshold is crossed
	if err := sched.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	e.pki.Clock.Advance(notify.DefaultBackoffBase)
	if err := sched.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if ch.sends != 2 {
		t.Fatalf("%d sends, want 2 (a failure, then the retry)", ch.sends)
	}
	fams := scrape(t, e.handler)
	expect(t, fams, "scepter_notifications_failed_total", map[string]string{"channel": "webhook"}, 1)
	expect(t, fams, "scepter_notifications_sent_total", map[string]string{"channel": "webhook"}, 1)
}

// down is a notification channel whose every send fails.
type down struct{ sends int }

func (d *down) Name() string                              { return notify.ChannelWebhook }
func (d *down) Wants(*pki.Certificate, *pki.Profile) bool { return true }
func (d *down) Send(ctx context.Context, m notify.Message) error {
	d.sends++
	return errors.New("receiver down")
}

// Notifications given up for good are counted by channel, apart from the
// failed tries (r120 observation 1): alerting on lost notifications needed
// the audit trail.
func TestNotificationsGivenUpAreCounted(t *testing.T) {
	for _, tt := range []struct {
		name        string
		maxAttempts int
		// after the first failed try, the clock moves on so far
		then      time.Duration
		wantTries int
	}{
		{"certificate expired first", 0, 31 * 24 * time.Hour, 1},
		{"tries ran out", 2, notify.DefaultBackoffMax, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.issue(t, "device-g")
			ch := &down{}
			sched, err := notify.New(notify.Config{Store: e.pki.Store, Clock: e.pki.Clock, Channels: []notify.Channel{ch},
				Jitter: func() float64 { return 0 }, Observer: e.m, MaxAttempts: tt.maxAttempts})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			e.pki.Clock.Advance(340 * 24 * time.Hour) // the 30-day threshold is crossed
			_ = sched.RunOnce(ctx)
			fams := scrape(t, e.handler)
			expect(t, fams, "scepter_notifications_given_up_total", map[string]string{"channel": "webhook"}, 0)
			e.pki.Clock.Advance(tt.then)
			_ = sched.RunOnce(ctx)
			if ch.sends != tt.wantTries {
				t.Fatalf("%d sends, want %d", ch.sends, tt.wantTries)
			}
			fams = scrape(t, e.handler)
			expect(t, fams, "scepter_notifications_failed_total", map[string]string{"channel": "webhook"}, float64(tt.wantTries))
			expect(t, fams, "scepter_notifications_given_up_total", map[string]string{"channel": "webhook"}, 1)
			expect(t, fams, "scepter_notifications_sent_total", map[string]string{"channel": "webhook"}, 0)
		})
	}
}

// The sent and failed counts of the channels a node has are exported at 0
// from its start, before any notification (r90 D2): a series that appears
// at its first event breaks rate() across a restart and fires absent().
// A channel the node does not have gets none.
func TestNotificationCountsStartAtZero(t *testing.T) {
	e := newEnv(t)
	if _, err := notify.New(notify.Config{Store: e.pki.Store, Clock: e.pki.Clock, Channels: []notify.Channel{&flaky{}},
		Observer: e.m}); err != nil {
		t.Fatal(err)
	}
	fams := scrape(t, e.handler)
	expect(t, fams, "scepter_notifications_sent_total", map[string]string{"channel": "webhook"}, 0)
	expect(t, fams, "scepter_notifications_failed_total", map[string]string{"channel": "webhook"}, 0)
	expect(t, fams, "scepter_notifications_given_up_total", map[string]string{"channel": "webhook"}, 0)
	for _, name := range []string{"scepter_notifications_sent_total", "scepter_notifications_failed_total", "scepter_notifications_given_up_total"} {
		if got := labelValues(fams, name, "channel"); len(got) != 1 {
			t.Errorf("%s: channels %v, want webhook alone", name, got)
		}
	}
}

// ocspStats stands for the OCSP responder.
type ocspStats struct{ signed, served int64 }

func (o ocspStats) Stats() (int64, int64) { return o.signed, o.served }

// OCSP answers and CRL generations are exported too.
func TestOCSPAndCRLCounters(t *testing.T) {
	e := newEnv(t)
	if err := e.m.OCSP(ocspStats{signed: 3, served: 10}); err != nil {
		t.Fatal(err)
	}
	if err := e.m.OCSP(ocspStats{}); err == nil {
		t.Error("a second responder was registered: its counts would be mixed with the first's")
	}
	st := e.m.Store(e.pki.Store)
	if err := st.PutCRL(context.Background(), storeCRL(e), 2); err != nil {
		t.Fatal(err)
	}
	fams := scrape(t, e.handler)
	expect(t, fams, "scepter_ocsp_responses_total", map[string]string{}, 10)
	expect(t, fams, "scepter_ocsp_signatures_total", map[string]string{}, 3)
	expect(t, fams, "scepter_crls_published_total", map[string]string{}, 1)
}

// storeCRL is a first CRL generation of the fixture's issuer (its DER is
// not looked at by the store).
func storeCRL(e *env) store.CRL {
	now := e.pki.Clock.Now()
	return store.CRL{IssuerID: e.pki.Issuer().ID, Number: 1, ThisUpdate: now, NextUpdate: now.Add(time.Hour),
		DER: []byte{0x30, 0x00}, CreatedAt: now}
}
