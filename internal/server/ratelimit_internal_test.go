package server

import (
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
