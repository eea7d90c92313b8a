package ttlcache

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestCache(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	c := New[string, int](3)
	c.Put("a", 1, t0.Add(time.Minute), t0)
	steps := []struct {
		name string
		key  string
		at   time.Duration
		want int
		ok   bool
	}{
		{"before expiry", "a", 59 * time.Second, 1, true},
		{"at expiry", "a", time.Minute, 0, false},
		{"never put", "b", 0, 0, false},
	}
	for _, s := range steps {
		if v, ok := c.Get(s.key, t0.Add(s.at)); v != s.want || ok != s.ok {
			t.Errorf("%s: Get(%q) = %d, %v; want %d, %v", s.name, s.key, v, ok, s.want, s.ok)
		}
	}

	// Full of live entries: a new key replaces one of them, and an
	// existing key is updated in place.
	c.Put("b", 2, t0.Add(time.Hour), t0)
	c.Put("c", 3, t0.Add(time.Hour), t0)
	c.Put("d", 4, t0.Add(time.Hour), t0)
	if n := c.Len(); n != 3 {
		t.Errorf("%d entries, want 3", n)
	}
	c.Put("d", 5, t0.Add(time.Hour), t0)
	if v, _ := c.Get("d", t0); v != 5 || c.Len() != 3 {
		t.Errorf("update: d = %d with %d entries", v, c.Len())
	}
	// Expired entries go first.
	c.Put("e", 6, t0.Add(3*time.Hour), t0.Add(2*time.Hour))
	if n := c.Len(); n != 1 {
		t.Errorf("%d entries after the others expired, want 1", n)
	}
	if New[int, int](0).max != 1 {
		t.Error("a cache of no entries")
	}
}

// Many writers and readers at once stay within the bound (go test -race).
func TestCacheConcurrent(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	c := New[string, int](16)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				k := fmt.Sprintf("%d-%d", g, i%40)
				c.Put(k, i, t0.Add(time.Minute), t0)
				c.Get(k, t0)
			}
		})
	}
	wg.Wait()
	if n := c.Len(); n > 16 {
		t.Errorf("%d entries, want at most 16", n)
	}
}
