package ndes

import (
	"net/netip"
	"testing"
	"time"
)

// A flood of failures from many addresses keeps at most MaxClients
// records, and the records of a quiet past are dropped as new ones come.
func TestFailuresBounded(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	f := newFailures(Lockout{MaxClients: 100})
	for i := range 10000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		for range 6 {
			f.fail(a, now)
		}
		if n := f.tracked(); n > 100 {
			t.Fatalf("after %d addresses: %d records", i+1, n)
		}
	}
	// The most recent address is still locked out; the oldest were let go.
	if wait, _ := f.locked(netip.AddrFrom4([4]byte{10, 0, 39, 15}), now); wait == 0 {
		t.Error("the last address is not locked out")
	}
	if wait, _ := f.locked(netip.AddrFrom4([4]byte{10, 0, 0, 0}), now); wait != 0 {
		t.Error("the first address is still tracked")
	}
	// Once their time is up, the next failure clears them all.
	f.fail(netip.MustParseAddr("192.0.2.1"), now.Add(DefaultLockoutMax+DefaultLockoutWindow))
	if n := f.tracked(); n != 1 {
		t.Errorf("%d records after the window, want 1", n)
	}
}

func TestClientKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.1", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"},
		{"fe80::1%eth0", "fe80::"},
		{"not-an-address", "invalid IP"},
	} {
		if got := clientKey(tc.in).String(); got != tc.want {
			t.Errorf("clientKey(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
