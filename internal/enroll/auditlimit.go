package enroll

import (
	"fmt"
	"sync"
	"time"

	"github.com/scepter/scepter/internal/pki"
)

// refusalLimiter bounds how many refusal events reach the audit trail, so a
// flood of bad requests cannot fill the disk: per client address (an IPv6
// /64, throttleHost) a token bucket (a burst, then one a second), and one for all addresses together.
// What it holds back is counted and said in the next event it lets through
// for that address. It lives in this node's memory and is bounded.
type refusalLimiter struct {
	clock      pki.Clock
	perAddress bucketSpec
	overall    bucketSpec
	maxEntries int

	mu         sync.Mutex
	addresses  map[string]*refusalBucket
	all        refusalBucket
	suppressed int // held back while the overall bucket was empty
}

type bucketSpec struct {
	burst float64
	rate  float64 // tokens a second
}

type refusalBucket struct {
	tokens     float64
	last       time.Time
	suppressed int
}

func newRefusalLimiter(clock pki.Clock) *refusalLimiter {
	return &refusalLimiter{clock: clock, perAddress: bucketSpec{burst: 60, rate: 1}, overall: bucketSpec{burst: 500, rate: 50},
		maxEntries: 10000, addresses: map[string]*refusalBucket{}}
}

// take decides whether a refusal from host is recorded; when it is, note
// says how many before it were held back ("" when none).
func (l *refusalLimiter) take(host string) (ok bool, note string) {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.addresses[host]
	if b == nil {
		if len(l.addresses) >= l.maxEntries {
			l.sweep(now)
		}
		b = &refusalBucket{tokens: l.perAddress.burst, last: now}
		l.addresses[host] = b
	}
	refill(b, l.perAddress, now)
	refill(&l.all, l.overall, now)
	if b.tokens < 1 || l.all.tokens < 1 {
		b.suppressed++
		l.suppressed++
		return false, ""
	}
	b.tokens--
	l.all.tokens--
	if b.suppressed > 0 {
		note = fmt.Sprintf("%d earlier refusals from this address were not recorded (rate limit)", b.suppressed)
		if b.suppressed == 1 {
			note = "1 earlier refusal from this address was not recorded (rate limit)"
		}
		l.suppressed -= b.suppressed
		b.suppressed = 0
	}
	return true, note
}

func refill(b *refusalBucket, spec bucketSpec, now time.Time) {
	if b.last.IsZero() {
		b.tokens, b.last = spec.burst, now
		return
	}
	// A clock that moved back refills nothing (and takes nothing).
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(spec.burst, b.tokens+elapsed.Seconds()*spec.rate)
		b.last = now
	}
}

// sweep drops the buckets that are full again (their address has been
// quiet), or, if none is, the half idle longest.
func (l *refusalLimiter) sweep(now time.Time) {
	for h, b := range l.addresses {
		refill(b, l.perAddress, now)
		if b.tokens >= l.perAddress.burst && b.suppressed == 0 {
			delete(l.addresses, h)
		}
	}
	for h := range l.addresses {
		if len(l.addresses) < l.maxEntries/2 {
			break
		}
		delete(l.addresses, h)
	}
}
