package main

import (
	"context"
	"testing"
	"time"
)

// The purge of expired nonces and requests runs shortly after start, not
// only an hour later (a server restarted more often than hourly never
// purged), then hourly. Each wait is answered at once by the test's own
// channel, and the purges are counted, so that nothing waits.
func TestPurgeRunsShortlyAfterStartThenHourly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var waits []time.Duration
	purges := 0
	waitsBeforePurge := map[int]int{} // purge number -> waits before it
	after := func(d time.Duration) <-chan time.Time {
		waits = append(waits, d)
		if ctx.Err() != nil {
			return nil // stopped: only ctx.Done() is ready
		}
		ch := make(chan time.Time, 1)
		ch <- time.Time{}
		return ch
	}
	purgeSchedule(ctx, after, func() {
		purges++
		waitsBeforePurge[purges] = len(waits)
		if purges == 3 {
			cancel()
		}
	})
	if purges != 3 {
		t.Fatalf("%d purges, want 3", purges)
	}
	if len(waits) < 3 || waits[0] > time.Minute {
		t.Fatalf("waits %v: want the first purge at most a minute after start", waits)
	}
	if waitsBeforePurge[1] != 1 {
		t.Errorf("the first purge came after %d waits, want 1", waitsBeforePurge[1])
	}
	for i, d := range waits[1:3] {
		if d != time.Hour {
			t.Errorf("wait %d before purge %d: %v, want an hour", i+2, i+2, d)
		}
	}
}
