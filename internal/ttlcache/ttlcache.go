// Package ttlcache is a bounded map whose entries expire: for what a server
// remembers to save work, which must never grow with what clients send.
package ttlcache

import (
	"sync"
	"time"
)

// Cache maps keys to values until each entry's expiry, holding at most a
// fixed number of entries. It is safe for concurrent use. Times come from
// the caller, so that a test's clock rules it.
type Cache[K comparable, V any] struct {
	max int

	mu sync.Mutex
	m  map[K]entry[V]
}

type entry[V any] struct {
	v       V
	expires time.Time
}

// New returns a cache of at most size entries (at least one).
func New[K comparable, V any](size int) *Cache[K, V] {
	return &Cache[K, V]{max: max(size, 1), m: map[K]entry[V]{}}
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

// Len is the number of entries held, expired or not.
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
