package notify_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/notify"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// stuck is a channel whose sends hang until their context ends, as to a
// node that is about to be killed mid-send.
type stuck struct {
	name    string
	entered *signal
}

// signal is closed once, by whichever send comes first.
type signal struct {
	once sync.Once
	c    chan struct{}
}

func (c *stuck) Name() string                              { return c.name }
func (c *stuck) Wants(*pki.Certificate, *pki.Profile) bool { return true }
func (c *stuck) Send(ctx context.Context, m notify.Message) error {
	c.entered.once.Do(func() { close(c.entered.c) })
	<-ctx.Done()
	return ctx.Err()
}

// TestStuckNodeHoldsOnlyItsSend (r90 D1): a node stuck in (or killed
// during) a send holds that one notification per channel (each channel
// sends on its own, r104 D1); every other one due, on either channel, is
// sent by another node meanwhile, not held with it for the lease.
func TestStuckNodeHoldsOnlyItsSend(t *testing.T) {
	e := newEnv(t)
	st := e.open()
	for _, sn := range []string{"1a01", "1a02", "1a03"} {
		cert(t, st, sn, "default", t0, t0.Add(3*day))
	}
	other := e.scheduler(e.open(), "node-b")
	if _, err := other.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	mail := &stuck{name: notify.ChannelSMTP, entered: &signal{c: make(chan struct{})}}
	hook := &stuck{name: notify.ChannelWebhook, entered: &signal{c: make(chan struct{})}}
	doomed, err := notify.New(notify.Config{Store: st, Clock: e.clock, Profiles: e.profiles,
		Channels: []notify.Channel{mail, hook}, Owner: "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = doomed.Deliver(ctx)
	}()
	defer func() { cancel(); <-done }()
	for _, ch := range []*stuck{mail, hook} {
		select {
		case <-ch.entered.c:
		case <-time.After(10 * time.Second):
			t.Fatalf("node-a never sent on the %s channel", ch.name)
		}
	}
	runOnce(t, other)
	mails, hooks := e.sent()
	if len(mails) != 2 || len(hooks) != 2 {
		t.Errorf("while node-a is stuck in one send per channel, node-b sent mails %q and webhook calls %q: want the 2 others of 3 on each", mails, hooks)
	}
	leased := map[string]int{}
	for _, sn := range []string{"1a01", "1a02", "1a03"} {
		for k, n := range statuses(t, st, sn) {
			if n.ClaimedBy == "node-a" {
				leased[n.Channel]++
				if n.Status != store.NotificationPending {
					t.Errorf("node-a holds %s %s: %+v", sn, k, n)
				}
			}
		}
	}
	if leased[notify.ChannelSMTP] != 1 || leased[notify.ChannelWebhook] != 1 {
		t.Errorf("node-a holds %v notifications, want only the one it is sending on each channel", leased)
	}
}

// TestRestartTakesBackOwnLease (r90 D1): a node killed mid-send and
// restarted under the same Owner sends what it was sending at once, not
// after the lease; another node still waits the lease out.
func TestRestartTakesBackOwnLease(t *testing.T) {
	e := newEnv(t)
	st := e.open()
	cert(t, st, "1b01", "default", t0, t0.Add(3*day))
	if _, err := e.scheduler(st, "node-a").Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	killed := e.open()
	claimed, err := killed.ClaimNotifications(context.Background(), store.ClaimQuery{Owner: "node-a", Now: e.clock.Now(),
		Lease: notify.DefaultLease, Limit: 1})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("the killed process claimed %d: %v", len(claimed), err)
	}
	killed.Close()
	other := e.scheduler(e.open(), "node-b")
	runOnce(t, other)
	mails, hooks := e.sent()
	if len(mails)+len(hooks) != 1 {
		t.Fatalf("node-b sent mails %q, webhook calls %q: want the one not leased", mails, hooks)
	}
	e.clock.Advance(time.Minute)
	runOnce(t, e.scheduler(e.open(), "node-a"))
	mails, hooks = e.sent()
	if !slices.Equal(mails, []string{"1b01 7d"}) || !slices.Equal(hooks, []string{"1b01 7d"}) {
		t.Errorf("after node-a restarted: mails %q, webhook calls %q, want both sent once", mails, hooks)
	}
}

// TestCrashWarning (r90 D1): thresholds no longer than the lease are
// named at start: a node that dies sending one may hold it past expiry.
func TestCrashWarning(t *testing.T) {
	e := newEnv(t)
	short := pki.DefaultProfile()
	short.Name = "short"
	short.Validity = 20 * time.Minute
	short.NotifyBefore = []time.Duration{18 * time.Minute, 15 * time.Minute, 12 * time.Minute}
	short.NotifyTo = []string{opsAddr}
	e.profiles["short"] = short
	s := e.scheduler(e.open(), "node")
	want := "profile short: 15m, 12m"
	if got := s.CrashWarning(); !strings.Contains(got, want) || strings.Contains(got, "18m") || strings.Contains(got, "default") {
		t.Errorf("CrashWarning() = %q, want it to name %q alone", got, want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.Run(ctx)
	if log := e.log.String(); !strings.Contains(log, "level=WARN") || !strings.Contains(log, "profile short: 15m, 12m") {
		t.Errorf("Run logged:\n%s\nwant the warning", log)
	}
	delete(e.profiles, "short")
	if got := e.scheduler(e.open(), "node").CrashWarning(); got != "" {
		t.Errorf("CrashWarning() = %q with the default thresholds", got)
	}
}
