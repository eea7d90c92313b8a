package notify

import (
	"testing"
	"time"
)

// The delay after n failed sends is BackoffBase*2^(n-1), capped at
// BackoffMax, of which the jitter takes off a random part of up to half.
func TestBackoff(t *testing.T) {
	var j float64
	s := &Scheduler{cfg: Config{BackoffBase: time.Minute, BackoffMax: time.Hour, Jitter: func() float64 { return j }}}
	for _, tc := range []struct {
		n        int
		jitter   float64
		want     time.Duration
		describe string
	}{
		{1, 0, 30 * time.Second, "first retry, most jitter"},
		{1, 0.999999999, time.Minute, "first retry, no jitter"},
		{2, 0, time.Minute, "second"},
		{4, 0.5, 6 * time.Minute, "fourth, half the jitter"},
		{7, 0, 30 * time.Minute, "capped"},
		{100, 0, 30 * time.Minute, "far beyond the cap"},
		{3, 7, 4 * time.Minute, "a jitter source out of range is clamped"},
		{3, -1, 2 * time.Minute, "negative too"},
	} {
		j = tc.jitter
		if got := s.backoff(tc.n); got.Round(time.Millisecond) != tc.want {
			t.Errorf("%s: backoff(%d) with jitter %v = %v, want %v", tc.describe, tc.n, tc.jitter, got, tc.want)
		}
	}
}
