package server

import (
	"container/list"
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/scepter/scepter/internal/pki"
)

// rateLimiter is a token bucket per client address, in this process's
// memory. It tracks at most max addresses, least recently seen forgotten
// first, so a flood from many (or spoofed) addresses costs bounded memory;
// a bucket that has refilled is dropped as soon as it is the least recently
// seen, since a full bucket and no bucket behave the same.
type rateLimiter struct {
	rate  float64 // tokens per second
	burst float64
	max   int
	clock pki.Clock
	// refill is how long an empty bucket takes to fill up.
	refill time.Duration

	mu      sync.Mutex
	buckets map[netip.Addr]*list.Element
	lru     list.List // of *bucket, most recently seen at the front
}

type bucket struct {
	addr   netip.Addr
	tokens float64
	last   time.Time
}

func newRateLimiter(rate float64, burst, maxClients int, clock pki.Clock) *rateLimiter {
	return &rateLimiter{
		rate:    rate,
		burst:   float64(burst),
		max:     maxClients,
		clock:   clock,
		refill:  seconds(float64(burst) / rate),
		buckets: map[netip.Addr]*list.Element{},
	}
}

// allow takes a token from addr's bucket. Without one it reports how long
// until there is one.
func (l *rateLimiter) allow(addr netip.Addr) (bool, time.Duration) {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.forgetRefilled(now)
	var b *bucket
	if e, ok := l.buckets[addr]; ok {
		b = e.Value.(*bucket)
		// A clock that stepped back adds nothing.
		if elapsed := now.Sub(b.last); elapsed > 0 {
			b.tokens = min(l.burst, b.tokens+elapsed.Seconds()*l.rate)
		}
		b.last = now
		l.lru.MoveToFront(e)
	} else {
		if len(l.buckets) >= l.max {
			l.remove(l.lru.Back())
		}
		b = &bucket{addr: addr, tokens: l.burst, last: now}
		l.buckets[addr] = l.lru.PushFront(b)
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, seconds((1 - b.tokens) / l.rate)
}

// seconds converts s seconds to a Duration, saturating at the longest one.
// A very low --rate-limit (or a very large --rate-burst) makes a refill
// longer than a Duration holds, and converting a float out of int64's
// range gives a negative Duration on amd64: a negative refill time dropped
// every bucket at once, switching the limit off.
func seconds(s float64) time.Duration {
	ns := s * float64(time.Second)
	if ns >= math.MaxInt64 || math.IsNaN(ns) {
		return math.MaxInt64
	}
	return time.Duration(ns)
}

// forgetRefilled drops buckets that have been left alone long enough to be
// full again. The list is ordered by last use, so it stops at the first
// one that is not.
func (l *rateLimiter) forgetRefilled(now time.Time) {
	for e := l.lru.Back(); e != nil; e = l.lru.Back() {
		if now.Sub(e.Value.(*bucket).last) < l.refill {
			return
		}
		l.remove(e)
	}
}

func (l *rateLimiter) remove(e *list.Element) {
	delete(l.buckets, e.Value.(*bucket).addr)
	l.lru.Remove(e)
}

// tracked is how many addresses the limiter holds (for tests).
func (l *rateLimiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
