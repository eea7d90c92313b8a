package enroll

import (
	"net/netip"
	"sync"
	"time"

	"github.com/scepter/scepter/internal/pki"
)

// failureThrottle slows down guessing: an address with too many failed
// challenge or password checks within a window is refused outright for a
// while, the wait doubling with each new lockout up to a maximum. It lives
// in this node's memory (a per-node limit is enough to make guessing
// useless), and it is bounded: when full, the unlocked entries idle longest
// go first, locked ones only when none is left (see evict).
//
// An address is an IPv4 address, or an IPv6 /64 (throttleHost): a client
// is given a whole /64 as readily as one address, and the request rate
// limit groups it so too.
//
// Failures count twice: against the address and the identity it claimed
// (an EST user, or a challenge at one profile: challengeIdentity; an EST
// password that is not its user's is tried as a challenge, and a failure
// of it counts against both), limit per window, and against the address
// alone, addressLimitFactor times as many. A lockout refuses the
// guessable secrets alone: a usable one-time challenge still passes
// (Service.throttled). A success clears its
// own identity's count, so that devices behind one NAT address, most of
// them configured well, keep working beside one that is not; but one
// valid credential buys no guesses at another user's password, and the
// address's count, which no success clears, bounds guesses spread over
// many identities.
type failureThrottle struct {
	clock      pki.Clock
	limit      int           // failures of one identity allowed within window
	window     time.Duration // counting window
	base, max  time.Duration // first and longest lockout
	maxEntries int

	mu      sync.Mutex
	entries map[string]*failureEntry // by address, and by address and identity
}

type failureEntry struct {
	fails        int
	windowStart  time.Time
	blockedUntil time.Time
	lockout      time.Duration // the next lockout's length
	lastSeen     time.Time
}

// LockedOutError is the cause of a refusal while the client's address is
// locked out: the refusal stays EUnauthorized (SCEP answers it with a
// badRequest FAILURE, as a wrong challenge), and a protocol edge that can
// say "come back later" (EST: 429 with Retry-After) finds the wait here,
// measured on the service's clock.
type LockedOutError struct {
	Until time.Time     // when the lockout ends
	Wait  time.Duration // from the refusal to Until
}

func (e *LockedOutError) Error() string {
	return "locked out after too many failed attempts until " + e.Until.UTC().Format(time.RFC3339)
}

// RetryAfterSeconds is Wait in whole seconds, rounded up, at least one: a
// client that waits that long finds the lock ended.
func (e *LockedOutError) RetryAfterSeconds() int {
	return max(1, int((e.Wait+time.Second-1)/time.Second))
}

// Throttle defaults: 10 failures of one identity in 10 minutes lock an
// address out for a minute, then 2, 4, … up to an hour; so do 100 failures
// of any identities. Devices behind one NAT address share the budget; a
// fleet that fails that often has a configuration problem.
const (
	defaultFailureLimit   = 10
	addressLimitFactor    = 10
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

// throttleHost is the address a client's failures count against, from its
// address ("192.0.2.1:5000", "[2001:db8::1]:0" or a bare address): an IPv4
// address as it is (an IPv4-mapped IPv6 address as IPv4), an IPv6 address
// as its /64, as the request rate limit groups clients (server.clientKey).
// Per address, a client with a /64 would start a fresh count on each of
// its 2^64 addresses: unlimited guesses.
func throttleHost(remote string) string {
	host := pki.ClientHost(remote)
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	g := pki.ClientGroup(a)
	if g.Is6() {
		return netip.PrefixFrom(g, 64).String() // as it read before: "2001:db8::/64"
	}
	return g.String()
}

// identityKey is the entry of host's attempts as identity.
func identityKey(host, identity string) string { return host + "\x00" + identity }

// lockState is what holds a client back now: its address's lock (after
// failures of any identities) and its identity's from that address, each
// as when it ends; zero where none holds.
type lockState struct {
	address, identity time.Time
}

// until is when the later of the locks ends: the client is refused until then.
func (l lockState) until() time.Time {
	if l.identity.After(l.address) {
		return l.identity
	}
	return l.address
}

// blocked reports whether host, or host as identity, is locked out now,
// and which lock holds until when.
func (t *failureThrottle) blocked(host, identity string) (lockState, bool) {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	var l lockState
	if e := t.entries[host]; e != nil && now.Before(e.blockedUntil) {
		l.address = e.blockedUntil
	}
	if e := t.entries[identityKey(host, identity)]; e != nil && now.Before(e.blockedUntil) {
		l.identity = e.blockedUntil
	}
	return l, !l.until().IsZero()
}

// failed counts one failure of host as each of identities (an EST
// password also tried as a challenge is a guess at both) and once against
// host itself, and locks out whichever is over its limit.
func (t *failureThrottle) failed(host string, identities ...string) {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, identity := range identities {
		idKey := identityKey(host, identity)
		if i == 0 {
			t.count(t.entry(host, idKey, now), t.limit*addressLimitFactor, now)
		}
		t.count(t.entry(idKey, host, now), t.limit, now)
	}
}

// entry is key's entry, made room for if need be; sibling is the other
// entry the same failure counts against, which making room must not drop
// (t.mu held).
func (t *failureThrottle) entry(key, sibling string, now time.Time) *failureEntry {
	if e := t.entries[key]; e != nil {
		return e
	}
	t.evict(sibling, now)
	e := &failureEntry{windowStart: now, lockout: t.base}
	t.entries[key] = e
	return e
}

// count is one failure against e (t.mu held).
func (t *failureThrottle) count(e *failureEntry, limit int, now time.Time) {
	e.lastSeen = now
	if now.Sub(e.windowStart) > t.window {
		e.fails, e.windowStart = 0, now
	}
	e.fails++
	if e.fails >= limit {
		e.blockedUntil = now.Add(e.lockout)
		e.lockout = min(2*e.lockout, t.max)
		e.fails, e.windowStart = 0, now
	}
}

// succeeded forgets the failures of host as identity: it has that secret.
// The address's own count stays.
func (t *failureThrottle) succeeded(host, identity string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := identityKey(host, identity)
	if e := t.entries[key]; e != nil && !t.clock.Now().Before(e.blockedUntil) {
		delete(t.entries, key)
	}
}

// evict makes room for one entry when the map is full (t.mu held; a
// linear scan over a bounded map, only when full): it drops the unlocked
// entry idle longest, never keep, and when every entry is locked, the one
// whose lock ends first.
//
// Locked entries go last so that an attacker with many addresses cannot
// unlock the address he guesses from by filling the map with fresh
// failures: he must first hold every entry locked beyond that address's
// lock, which has doubled with each lockout, and all that buys him is
// one more round of the limit's guesses. Refusing new entries instead
// would leave his further addresses uncounted; counting them in one shared
// entry would, once it locked, lock out every client the map does not
// hold: an outage any holder of enough addresses could cause.
func (t *failureThrottle) evict(keep string, now time.Time) {
	if len(t.entries) < t.maxEntries {
		return
	}
	var idle, soonest string
	var idleSince, endsAt time.Time
	for k, e := range t.entries {
		switch {
		case k == keep:
		case now.Before(e.blockedUntil):
			if soonest == "" || e.blockedUntil.Before(endsAt) {
				soonest, endsAt = k, e.blockedUntil
			}
		case idle == "" || e.lastSeen.Before(idleSince):
			idle, idleSince = k, e.lastSeen
		}
	}
	if idle == "" {
		idle = soonest
	}
	delete(t.entries, idle)
}
