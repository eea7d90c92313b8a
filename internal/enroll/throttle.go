package enroll

import (
	"sync"
	"time"

	"github.com/scepter/scepter/internal/pki"
)

// failureThrottle slows down guessing: an address with too many failed
// challenge or password checks within a window is refused outright for a
// while, the wait doubling with each new lockout up to a maximum. It lives
// in this node's memory (a per-node limit is enough to make guessing
// useless), and it is bounded: when full, the entries idle longest go.
type failureThrottle struct {
	clock      pki.Clock
	limit      int           // failures allowed within window
	window     time.Duration // counting window
	base, max  time.Duration // first and longest lockout
	maxEntries int

	mu      sync.Mutex
	entries map[string]*failureEntry
}

type failureEntry struct {
	fails        int
	windowStart  time.Time
	blockedUntil time.Time
	lockout      time.Duration // the next lockout's length
	lastSeen     time.Time
}

// Throttle defaults: 10 failures in 10 minutes lock an address out for a
// minute, then 2, 4, … up to an hour. Devices behind one NAT address share
// the budget; a fleet that fails that often has a configuration problem.
const (
	defaultFailureLimit   = 10
	defaultFailureWindow  = 10 * time.Minute
	defaultLockout        = time.Minute
	defaultMaxLockout     = time.Hour
	defaultThrottleTarget = 10000
)

func newFailureThrottle(clock pki.Clock, limit int) *failureThrottle {
	if limit <= 0 {
		limit = defaultFailureLimit
	}
	return &failureThrottle{clock: clock, limit: limit, window: defaultFailureWindow, base: defaultLockout, max: defaultMaxLockout,
		maxEntries: defaultThrottleTarget, entries: map[string]*failureEntry{}}
}

// blocked reports whether host is locked out now, and until when.
func (t *failureThrottle) blocked(host string) (time.Time, bool) {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[host]
	if e == nil || !now.Before(e.blockedUntil) {
		return time.Time{}, false
	}
	return e.blockedUntil, true
}

// failed counts a failure of host and locks it out once over the limit.
func (t *failureThrottle) failed(host string) {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[host]
	if e == nil {
		t.evict()
		e = &failureEntry{windowStart: now, lockout: t.base}
		t.entries[host] = e
	}
	e.lastSeen = now
	if now.Sub(e.windowStart) > t.window {
		e.fails, e.windowStart = 0, now
	}
	e.fails++
	if e.fails >= t.limit {
		e.blockedUntil = now.Add(e.lockout)
		e.lockout = min(2*e.lockout, t.max)
		e.fails, e.windowStart = 0, now
	}
}

// succeeded notes that host presented a good secret. That says nothing of
// the other secrets it may be guessing (another EST user's password,
// another profile's challenge): one good credential must not buy
// unlimited guesses, so the window's failures still count. It does end
// the doubling, so that devices behind one NAT address, most of them
// configured well, are not locked out for longer and longer by one that
// is not: the next lockout is the first one's length again.
func (t *failureThrottle) succeeded(host string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.entries[host]; e != nil && !t.clock.Now().Before(e.blockedUntil) {
		e.lockout = t.base
	}
}

// evict makes room for one entry, dropping the one idle longest (called
// with the lock held; a linear scan over a bounded map, only when full).
func (t *failureThrottle) evict() {
	if len(t.entries) < t.maxEntries {
		return
	}
	var oldest string
	var when time.Time
	for h, e := range t.entries {
		if oldest == "" || e.lastSeen.Before(when) {
			oldest, when = h, e.lastSeen
		}
	}
	delete(t.entries, oldest)
}
