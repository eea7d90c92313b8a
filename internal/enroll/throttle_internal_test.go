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
