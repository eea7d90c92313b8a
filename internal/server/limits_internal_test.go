package server

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pkitest"
)

// The server's own error log lets errorLogBurst lines a minute through and
// then says how many it left out.
func TestQuietWriter(t *testing.T) {
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	var buf bytes.Buffer
	l := log.New(&quietWriter{w: &buf, clock: clock}, "", 0)
	for i := range 1000 {
		l.Printf("http: TLS handshake error %d", i)
	}
	if n := strings.Count(buf.String(), "\n"); n != errorLogBurst {
		t.Fatalf("%d lines for 1000 errors, want %d", n, errorLogBurst)
	}
	clock.Advance(time.Minute)
	buf.Reset()
	l.Printf("http: TLS handshake error again")
	want := fmt.Sprintf("http: %d more server errors were not logged since 2026-11-25T12:00:00Z\nhttp: TLS handshake error again\n", 1000-errorLogBurst)
	if buf.String() != want {
		t.Fatalf("after a minute:\n%q\nwant\n%q", buf.String(), want)
	}
}

// Refusals are summarised: the first at once, then at most one line a
// minute with the count.
func TestTally(t *testing.T) {
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	var buf bytes.Buffer
	g, err := NewGuard(Limits{MaxConns: 1, MaxInflight: 1, RateLimit: 1, RateBurst: 1}, clock, slogTo(&buf))
	if err != nil {
		t.Fatal(err)
	}
	for range 500 {
		g.limited.add()
	}
	clock.Advance(time.Minute)
	g.limited.add()
	out := buf.String()
	if n := strings.Count(out, "\n"); n != 2 || !strings.Contains(out, "count=1\n") || !strings.Contains(out, "count=500 ") {
		t.Fatalf("log:\n%s", out)
	}
}

func slogTo(w *bytes.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// A request that finds every slot taken waits its turn: waiters get
// slots first come, first served; one beyond MaxQueued is refused at
// once; a waiter is refused after QueueWait, or when its client goes away.
func TestAdmitQueue(t *testing.T) {
	newGuard := func(queued int, wait time.Duration) *Guard {
		g, err := NewGuard(Limits{MaxConns: 1, MaxInflight: 1, MaxQueued: queued, QueueWait: wait}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	full := func() chan struct{} {
		slots := make(chan struct{}, 1)
		slots <- struct{}{} // a request in flight
		return slots
	}
	untilWaiting := func(waiting *atomic.Int64, n int64) {
		for waiting.Load() != n {
			time.Sleep(time.Millisecond)
		}
	}

	t.Run("first come, first served", func(t *testing.T) {
		g, slots := newGuard(2, time.Hour), full()
		var waiting atomic.Int64
		admitted := make(chan string, 2)
		for i, name := range []string{"first", "second"} {
			go func() {
				if g.admit(context.Background(), slots, &waiting) {
					admitted <- name
				}
			}()
			untilWaiting(&waiting, int64(i+1))
		}
		if g.admit(context.Background(), slots, &waiting) {
			t.Fatal("a third waiter beyond MaxQueued 2 was admitted")
		}
		if n := waiting.Load(); n != 2 {
			t.Fatalf("%d waiting after a refusal, want 2", n)
		}
		if st := g.Stats(); st.Waiting != 2 || st.Waited != 2 {
			t.Fatalf("stats %+v while two wait, want 2 waiting, 2 waited", st)
		}
		for _, want := range []string{"first", "second"} {
			<-slots // the request in flight ends
			if got := <-admitted; got != want {
				t.Fatalf("admitted %s, want %s", got, want)
			}
		}
		untilWaiting(&waiting, 0)
		for g.Stats().Waiting != 0 {
			time.Sleep(time.Millisecond)
		}
		if st := g.Stats(); st.Waited != 2 {
			t.Fatalf("stats %+v after both were served, want 2 waited", st)
		}
	})

	t.Run("gives up after QueueWait", func(t *testing.T) {
		g, slots := newGuard(2, 20*time.Millisecond), full()
		var waiting atomic.Int64
		if g.admit(context.Background(), slots, &waiting) {
			t.Fatal("admitted without a free slot")
		}
		if n := waiting.Load(); n != 0 {
			t.Fatalf("%d still counted as waiting", n)
		}
	})

	t.Run("gives up when the client goes away", func(t *testing.T) {
		g, slots := newGuard(2, time.Hour), full()
		var waiting atomic.Int64
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan bool)
		go func() { done <- g.admit(ctx, slots, &waiting) }()
		untilWaiting(&waiting, 1)
		cancel()
		if <-done {
			t.Fatal("admitted after its client went away")
		}
	})

	t.Run("no queue", func(t *testing.T) {
		for _, g := range []*Guard{newGuard(0, time.Hour), newGuard(5, 0)} {
			var waiting atomic.Int64
			if g.admit(context.Background(), full(), &waiting) {
				t.Fatal("admitted without a free slot")
			}
		}
	})

	t.Run("a free slot at once", func(t *testing.T) {
		var waiting atomic.Int64
		if !newGuard(0, 0).admit(context.Background(), make(chan struct{}, 1), &waiting) {
			t.Fatal("refused with a free slot")
		}
	})
}

func TestNegativeQueueRefused(t *testing.T) {
	for _, l := range []Limits{{MaxConns: 1, MaxInflight: 1, MaxQueued: -1}, {MaxConns: 1, MaxInflight: 1, QueueWait: -time.Second}} {
		if _, err := NewGuard(l, nil, nil); err == nil {
			t.Errorf("%+v accepted", l)
		}
	}
}
