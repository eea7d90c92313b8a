package enroll

import (
	"fmt"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pkitest"
)

// One identity's good secret clears that identity's failures only: a
// valid EST user buys no guesses at another user's password. Failures
// spread over many identities lock the address once there are ten times
// the limit, and no success clears that.
func TestThrottleByIdentity(t *testing.T) {
	clock := pkitest.NewClock(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC))
	th := newFailureThrottle(clock, 5)
	const host = "198.51.100.66"
	blocked := func(identity string) bool {
		_, b := th.blocked(host, identity)
		return b
	}
	for range 4 {
		th.failed(host, "user bob")
		th.succeeded(host, "user alice")
	}
	if blocked("user bob") {
		t.Fatal("locked after 4 failures of 5")
	}
	th.failed(host, "user bob")
	if !blocked("user bob") {
		t.Error("bob's password guessed 5 times, alice's successes in between: not locked")
	}
	if blocked("user alice") || blocked("a challenge") {
		t.Error("the address is locked for other identities after one identity's 5 failures")
	}

	// A success clears its own identity's count.
	for range 4 {
		th.failed(host, "user carol")
	}
	th.succeeded(host, "user carol")
	th.failed(host, "user carol")
	if blocked("user carol") {
		t.Error("carol locked: her own success did not clear her failures")
	}

	// Spread over many identities: 5 × 10 failures lock the address, for
	// every identity, and a success does not clear it.
	fresh := newFailureThrottle(clock, 5)
	for i := range 49 {
		fresh.failed(host, fmt.Sprintf("user u%d", i))
		fresh.succeeded(host, "user alice")
	}
	if _, b := fresh.blocked(host, "user alice"); b {
		t.Fatal("the address locked after 49 failures of 50")
	}
	fresh.failed(host, "user u49")
	if _, b := fresh.blocked(host, "user alice"); !b {
		t.Error("50 failures over 50 user names did not lock the address")
	}
	if _, b := fresh.blocked("192.0.2.1", "user alice"); b {
		t.Error("another address is locked")
	}
	clock.Advance(time.Minute)
	if _, b := fresh.blocked(host, "user alice"); b {
		t.Error("still locked after the first lockout's minute")
	}
}

// A full throttle drops the unlocked entry idle longest, never a locked
// one, however old: an attacker cannot push his own lockout out with
// failures from fresh addresses. With every entry locked, failures from
// addresses without an entry share one overflow count at the address
// limit, which then locks every address without an entry (fails closed),
// and still lets none of the locked ones go.
func TestThrottleEvictionKeepsLockouts(t *testing.T) {
	cases := []struct {
		name string
		// unlocked addresses failing once, after the locked one
		unlocked int
		// fresh addresses failing once each, after that
		fresh int
		// whether a fresh address that never failed is locked out
		freshLocked bool
	}{
		{"room made by dropping unlocked entries", 3, 3, false},
		{"no unlocked entry: fresh failures share the overflow count", 0, 49, false},
		{"the overflow count locks", 0, 50, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clock := pkitest.NewClock(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC))
			th := newFailureThrottle(clock, 5)
			// Room for the locked address's two entries and the
			// unlocked ones' two each.
			th.maxEntries = 2 + 2*c.unlocked
			const locked = "198.51.100.66"
			for range 5 {
				th.failed(locked, "user bob")
			}
			if _, b := th.blocked(locked, "user bob"); !b {
				t.Fatal("not locked after 5 failures")
			}
			for i := range c.unlocked {
				clock.Advance(time.Second)
				th.failed(fmt.Sprintf("192.0.2.%d", i), "user bob")
			}
			for i := range c.fresh {
				clock.Advance(time.Second)
				th.failed(fmt.Sprintf("2001:db8:%x::/64", i), "user bob")
			}
			if _, b := th.blocked(locked, "user bob"); !b {
				t.Error("the locked address was let go to make room")
			}
			if len(th.entries) > th.maxEntries {
				t.Errorf("%d entries, more than %d", len(th.entries), th.maxEntries)
			}
			if _, b := th.blocked("203.0.113.1", "user carol"); b != c.freshLocked {
				t.Errorf("an address without an entry locked out: %v, want %v", b, c.freshLocked)
			}
		})
	}
}
