package enroll

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
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

// With every entry locked, a full throttle drops the lock that ends first,
// never keep.
func TestThrottleEvictsTheLockEndingFirst(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	th := newFailureThrottle(pkitest.NewClock(now), 5)
	th.maxEntries = 4
	for key, ends := range map[string]time.Duration{"guesser": 4 * time.Minute, "a": 2 * time.Minute, "b": time.Minute, "keep": 30 * time.Second} {
		th.entries[key] = &failureEntry{blockedUntil: now.Add(ends), lastSeen: now.Add(-ends)}
	}
	th.evict("keep", now)
	var left []string
	for key := range th.entries {
		left = append(left, key)
	}
	slices.Sort(left)
	if got, want := strings.Join(left, " "), "a guesser keep"; got != want {
		t.Errorf("entries left %q, want %q (b's lock ends first; keep is kept)", got, want)
	}
}

// A throttle full of locks made by many addresses locks out no address
// that never failed, however many more fail (counted together, they would
// lock out every client the throttle does not hold), and keeps the lock
// that ends last.
func TestFullThrottleLocksOutNoBystander(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	clock := pkitest.NewClock(now)
	th := newFailureThrottle(clock, 5)
	th.maxEntries = 20
	th.entries["guesser"] = &failureEntry{blockedUntil: now.Add(time.Hour), lockout: time.Hour}
	for i := range th.maxEntries - 1 {
		th.entries[fmt.Sprintf("filler %d", i)] = &failureEntry{blockedUntil: now.Add(time.Minute), lockout: time.Minute}
	}
	for i := range 500 {
		th.failed(fmt.Sprintf("2001:db8:%x::/64", i), "a challenge")
	}
	if _, b := th.blocked("192.0.2.7", "user carol"); b {
		t.Error("an address that never failed is locked out")
	}
	if e := th.entries["guesser"]; e == nil || !clock.Now().Before(e.blockedUntil) {
		t.Error("the longest lock was let go")
	}
	if len(th.entries) > th.maxEntries {
		t.Errorf("%d entries, more than %d", len(th.entries), th.maxEntries)
	}
}

// A full throttle drops the unlocked entry idle longest, never a locked
// one while an unlocked one is left: an attacker cannot push his own
// lockout out with failures from fresh addresses. With every entry locked,
// it drops the lock that ends first, so an address locked again and again
// (the guesser's) outlasts addresses locked once; and an address that
// never failed is never locked out by others' failures.
func TestThrottleEvictionKeepsLockouts(t *testing.T) {
	cases := []struct {
		name string
		// addresses failing once after the guesser, each unlocked
		unlocked int
		// addresses locked once after the guesser, each
		lockedOnce int
		// fresh addresses failing once each, after that
		fresh int
	}{
		{"room made by dropping unlocked entries", 3, 0, 3},
		{"many more fresh addresses than room", 0, 2, 40},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clock := pkitest.NewClock(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC))
			th := newFailureThrottle(clock, 5)
			// Room for the guesser's two entries and the others' two each.
			th.maxEntries = 2 + 2*(c.unlocked+c.lockedOnce)
			const guesser = "198.51.100.66"
			// Locked twice: the second lock is twice the first, and ends
			// after every lock made once below.
			for range 2 {
				for range 5 {
					th.failed(guesser, "user bob")
				}
				clock.Advance(defaultLockout + time.Second)
			}
			for range 5 {
				th.failed(guesser, "user bob")
			}
			if _, b := th.blocked(guesser, "user bob"); !b {
				t.Fatal("the guesser is not locked")
			}
			for i := range c.unlocked {
				clock.Advance(time.Second)
				th.failed(fmt.Sprintf("192.0.2.%d", i), "user bob")
			}
			for i := range c.lockedOnce {
				clock.Advance(time.Second)
				for range 5 {
					th.failed(fmt.Sprintf("203.0.113.%d", i), "user bob")
				}
			}
			for i := range c.fresh {
				clock.Advance(time.Second)
				th.failed(fmt.Sprintf("2001:db8:%x::/64", i), "user bob")
			}
			if _, b := th.blocked(guesser, "user bob"); !b {
				t.Error("the guesser's lock was let go to make room")
			}
			if len(th.entries) > th.maxEntries {
				t.Errorf("%d entries, more than %d", len(th.entries), th.maxEntries)
			}
			if _, b := th.blocked("192.0.2.200", "user carol"); b {
				t.Error("an address that never failed is locked out")
			}
		})
	}
}

// A failure of several identities at once (an EST password also tried as
// a challenge) counts once against each, and once against the address:
// the address's budget is of requests, not of identities.
func TestThrottleFailureOfSeveralIdentities(t *testing.T) {
	clock := pkitest.NewClock(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC))
	th := newFailureThrottle(clock, 5)
	const host = "198.51.100.66"
	const challenges = "a challenge at profile default"
	for i := range 4 {
		th.failed(host, fmt.Sprintf("user u%d", i), challenges)
	}
	if _, b := th.blocked(host, challenges); b {
		t.Fatal("the challenges locked after 4 failures of 5")
	}
	th.failed(host, "user u4", challenges)
	if _, b := th.blocked(host, challenges); !b {
		t.Error("5 failures, each of a new user and the challenges: the challenges not locked")
	}
	if _, b := th.blocked(host, "user u0"); b {
		t.Error("user u0 locked after one failure")
	}
	for i := 5; i < 49; i++ {
		th.failed(host, fmt.Sprintf("user u%d", i), fmt.Sprintf("a challenge at profile p%d", i))
	}
	if _, b := th.blocked(host, "user alice"); b {
		t.Error("the address locked after 49 failed requests of 50, each of two identities")
	}
}

// A lockout's refusal says which lock holds, until when: the identity's
// from this address, the whole address's, or both, each with its end
// when the identity's outlasts the address's (r123 D1).
func TestLockoutTextSaysWhichLockHolds(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	webhook := pki.DefaultProfile()
	webhook.Name, webhook.ChallengeMode = "mdm", ChallengeWebhook
	for _, c := range []struct {
		name  string
		lock  lockState
		whose string
		want  string
	}{
		{"an EST user", lockState{identity: now.Add(time.Minute)}, lockedUser,
			"too many failed attempts for this EST user name from this address; try again after 2026-12-02T12:01:00Z"},
		{"a profile's challenges", lockState{identity: now.Add(2 * time.Minute)}, lockedChallenges(pki.DefaultProfile()),
			`too many failed attempts at the challenges of profile "default" from this address; try again after 2026-12-02T12:02:00Z`},
		{"the webhook's challenges", lockState{identity: now.Add(time.Minute)}, lockedChallenges(webhook),
			"too many failed attempts at the challenges of the webhook profiles from this address; try again after 2026-12-02T12:01:00Z"},
		{"the address", lockState{address: now.Add(time.Minute)}, lockedUser,
			"too many failed attempts from this address, for any user or challenge; try again after 2026-12-02T12:01:00Z"},
		{"the address, outlasting the user", lockState{address: now.Add(4 * time.Minute), identity: now.Add(time.Minute)}, lockedUser,
			"too many failed attempts from this address, for any user or challenge; try again after 2026-12-02T12:04:00Z"},
		{"the address, the user's outlasting it", lockState{address: now.Add(time.Minute), identity: now.Add(8 * time.Minute)}, lockedUser,
			"too many failed attempts from this address, for any user or challenge, until 2026-12-02T12:01:00Z, and for this EST user name until 2026-12-02T12:08:00Z; " +
				"try again after 2026-12-02T12:08:00Z"},
	} {
		if got := lockoutText(c.lock, c.whose); got != c.want {
			t.Errorf("%s:\n%q, want\n%q", c.name, got, c.want)
		}
	}
}
