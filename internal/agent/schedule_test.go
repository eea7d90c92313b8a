package agent

import (
	"crypto/x509"
	"testing"
	"time"
)

func TestRenewalPoint(t *testing.T) {
	nb := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		life        time.Duration
		renewBefore time.Duration
		want        time.Time
	}{
		{"two thirds of 90 days", 90 * 24 * time.Hour, 0, nb.Add(60 * 24 * time.Hour)},
		{"two thirds of a year", 366 * 24 * time.Hour, 0, nb.Add(244 * 24 * time.Hour)},
		{"two thirds of 3 minutes", 3 * time.Minute, 0, nb.Add(2 * time.Minute)},
		{"7 days before the end", 90 * 24 * time.Hour, 7 * 24 * time.Hour, nb.Add(83 * 24 * time.Hour)},
		{"renew_before longer than the life: due from the start", 24 * time.Hour, 48 * time.Hour, nb.Add(-24 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &x509.Certificate{NotBefore: nb, NotAfter: nb.Add(tt.life)}
			if got := RenewalPoint(c, tt.renewBefore); !got.Equal(tt.want) {
				t.Errorf("RenewalPoint = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	const initial, maxWait = 10 * time.Second, 5 * time.Minute
	// Without jitter: half the doubled wait; with jitter near 1: the whole.
	wantFull := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute}
	for i, full := range wantFull {
		failures := i + 1
		if got := Backoff(failures, initial, maxWait, 0); got != full/2 {
			t.Errorf("Backoff(%d, jitter 0) = %s, want %s", failures, got, full/2)
		}
		if got := Backoff(failures, initial, maxWait, 0.5); got != full*3/4 {
			t.Errorf("Backoff(%d, jitter 0.5) = %s, want %s", failures, got, full*3/4)
		}
		if got := Backoff(failures, initial, maxWait, 0.999999); got < full*99/100 || got > full {
			t.Errorf("Backoff(%d, jitter ~1) = %s, want just under %s", failures, got, full)
		}
	}
	// Bounded however many failures, without overflow.
	for _, n := range []int{0, -3, 62, 63, 64, 1000, 1 << 30} {
		if got := Backoff(n, initial, maxWait, 0.7); got <= 0 || got > maxWait {
			t.Errorf("Backoff(%d) = %s, want in (0, %s]", n, got, maxWait)
		}
	}
	// A bad jitter counts as none.
	if got := Backoff(1, initial, maxWait, 7); got != initial/2 {
		t.Errorf("Backoff with jitter 7 = %s", got)
	}
}
