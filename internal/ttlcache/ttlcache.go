// Package ttlcache is a bounded map whose entries expire: for what a server
// remembers to save work, which must never grow with what clients send.
package ttlcache

import (
	"errors"
	"sync"
	"time"
)

// Cache maps keys to values until each entry's expiry, holding at most a
// fixed number of entries. It is safe for concurrent use. Times come from
// the caller, so that a test's clock rules it.
type Cache[K comparable, V any] struct {
	max int

	mu      sync.Mutex
	m       map[K]entry[V]
	loading map[K]*flight[V] // Load's loads under way
}

// flight is one load under way; done is closed when v and err are set.
type flight[V any] struct {
	done chan struct{}
	v    V
	err  error
}

// errLoadPanicked answers those who waited for a load that panicked.
var errLoadPanicked = errors.New("ttlcache: the load panicked")

type entry[V any] struct {
	v       V
	expires time.Time
}

// New returns a cache of at most size entries (at least one).
func New[K comparable, V any](size int) *Cache[K, V] {
	return &Cache[K, V]{max: max(size, 1), m: map[K]entry[V]{}, loading: map[K]*flight[V]{}}
}

// Get returns k's value if it has one that has not expired at now.
func (c *Cache[K, V]) Get(k K, now time.Time) (V, bool) {
	c.mu.Lock()
	e, ok := c.m[k]
	c.mu.Unlock()
	if !ok || !now.Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// Put sets k's value until expires. When the cache is full it first drops
// the entries expired at now, and if none has, any one entry.
func (c *Cache[K, V]) Put(k K, v V, expires, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.put(k, v, expires, now)
}

// put is Put with c.mu held.
func (c *Cache[K, V]) put(k K, v V, expires, now time.Time) {
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		for key, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, key)
			}
		}
		if len(c.m) >= c.max {
			for key := range c.m {
				delete(c.m, key)
				break
			}
		}
	}
	c.m[k] = entry[V]{v: v, expires: expires}
}

// Load is Get, and on a miss it calls load and keeps the value it returns
// until the expiry it returns (nothing when it fails). Callers that miss k
// while a load of k is under way wait for that load and share its outcome,
// so that a burst of requests for one missing key costs one load, not one
// each. Loads of different keys run at once.
func (c *Cache[K, V]) Load(k K, now time.Time, load func() (V, time.Time, error)) (V, error) {
	c.mu.Lock()
	if e, ok := c.m[k]; ok && now.Before(e.expires) {
		c.mu.Unlock()
		return e.v, nil
	}
	if f, ok := c.loading[k]; ok {
		c.mu.Unlock()
		<-f.done
		return f.v, f.err
	}
	f := &flight[V]{done: make(chan struct{}), err: errLoadPanicked}
	c.loading[k] = f
	c.mu.Unlock()
	var expires time.Time
	defer func() { // also when load panics: the waiters must not hang
		c.mu.Lock()
		delete(c.loading, k)
		if f.err == nil {
			c.put(k, f.v, expires, now)
		}
		c.mu.Unlock()
		close(f.done)
	}()
	v, expires, err := load()
	f.v, f.err = v, err
	return v, err
}

// Len is the number of entries held, expired or not.
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
