package server

import (
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pkitest"
)

// A flood from ever new addresses keeps at most max buckets; buckets that
// have refilled are dropped as soon as the next request comes.
func TestRateLimiterBounded(t *testing.T) {
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	l := newRateLimiter(1, 2, 100, clock)
	for i := range 100000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if ok, _ := l.allow(a); !ok {
			t.Fatalf("a new address was refused at %d", i)
		}
		if n := l.tracked(); n > 100 {
			t.Fatalf("after %d addresses: %d buckets", i+1, n)
		}
	}
	// Once every bucket would be full again, they all go.
	clock.Advance(2 * time.Second)
	l.allow(netip.MustParseAddr("192.0.2.1"))
	if n := l.tracked(); n != 1 {
		t.Fatalf("%d buckets after the refill time, want 1", n)
	}
	// An address in the middle of its burst is kept while it is used.
	b := netip.MustParseAddr("192.0.2.2")
	l.allow(b)
	l.allow(b)
	if ok, wait := l.allow(b); ok || wait != time.Second {
		t.Fatalf("third request of a burst of 2: ok=%v wait=%v", ok, wait)
	}
	// A clock stepping back neither refills nor panics.
	clock.Advance(-time.Hour)
	if ok, _ := l.allow(b); ok {
		t.Fatal("a clock step back refilled the bucket")
	}
}

// A rate so low (or a burst so large) that refilling a bucket takes longer
// than a time.Duration holds: the overflowing conversion made the refill
// time negative, every bucket was dropped as refilled before it was used,
// and the limit was off.
func TestRateLimiterWithRefillBeyondADuration(t *testing.T) {
	tests := []struct {
		name  string
		rate  float64
		burst int
	}{
		{"tiny rate", 1e-300, 1},
		{"rate and burst", 1e-9, 10},
		{"huge burst", 20, math.MaxInt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
			l := newRateLimiter(tt.rate, tt.burst, 100, clock)
			if l.refill <= 0 {
				t.Fatalf("refill time %v", l.refill)
			}
			a := netip.MustParseAddr("192.0.2.1")
			if ok, _ := l.allow(a); !ok {
				t.Fatal("the first request was refused")
			}
			if tt.burst > 1 {
				return
			}
			clock.Advance(time.Second)
			ok, wait := l.allow(a)
			if ok || wait <= 0 {
				t.Fatalf("the second request of a burst of 1: ok=%v wait=%v", ok, wait)
			}
			if s := retrySeconds(wait); s < 1e9 {
				t.Errorf("Retry-After %d s for a wait of %v", s, wait)
			}
		})
	}
}

func TestClientKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.1", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"},
		{"fe80::1%eth0", "fe80::"},
	} {
		if got := clientKey(netip.MustParseAddr(tc.in)).String(); got != tc.want {
			t.Errorf("clientKey(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
