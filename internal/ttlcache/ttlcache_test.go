package ttlcache

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
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

// Load loads a missing key once for all who ask meanwhile, keeps what it
// loaded until the expiry the load gave, and keeps nothing of a load that
// failed or panicked (whose waiters get an error, not a zero value).
func TestLoad(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	c := New[string, int](4)
	var loads atomic.Int32
	release := make(chan struct{})
	slow := func() (int, time.Time, error) {
		loads.Add(1)
		<-release
		return 7, t0.Add(time.Minute), nil
	}
	const callers = 16
	var started, wg sync.WaitGroup
	started.Add(callers)
	for range callers {
		wg.Go(func() {
			started.Done()
			if v, err := c.Load("k", t0, slow); v != 7 || err != nil {
				t.Errorf("Load = %d, %v; want 7, nil", v, err)
			}
		})
	}
	started.Wait()
	// Most callers are waiting on the one load by now; one that comes
	// later finds the value kept, which is as good.
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := loads.Load(); n != 1 {
		t.Errorf("%d loads for one key, want 1", n)
	}
	if v, ok := c.Get("k", t0.Add(59*time.Second)); v != 7 || !ok {
		t.Errorf("kept value = %d, %v; want 7 until the load's expiry", v, ok)
	}
	if _, ok := c.Get("k", t0.Add(time.Minute)); ok {
		t.Error("kept after the load's expiry")
	}

	failed := errors.New("no")
	if _, err := c.Load("f", t0, func() (int, time.Time, error) { return 0, t0.Add(time.Hour), failed }); err != failed {
		t.Errorf("failed load: err = %v", err)
	}
	if v, err := c.Load("f", t0, func() (int, time.Time, error) { return 3, t0.Add(time.Hour), nil }); v != 3 || err != nil {
		t.Errorf("after a failed load: %d, %v; want a new load", v, err)
	}

	// A load that panics: its waiter gets an error rather than hanging or
	// a zero value, and the key loads again.
	waiter := make(chan error, 1)
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic did not reach the loader")
			}
		}()
		c.Load("p", t0, func() (int, time.Time, error) {
			go func() {
				_, err := c.Load("p", t0, func() (int, time.Time, error) { return 1, t0.Add(time.Hour), nil })
				waiter <- err
			}()
			time.Sleep(20 * time.Millisecond) // let it wait on this load (if late, it loads: nil)
			panic("load failed")
		})
	}()
	if err := <-waiter; err != nil && err != errLoadPanicked {
		t.Errorf("waiter of a panicked load: %v", err)
	}
	if _, err := c.Load("p", t0, func() (int, time.Time, error) { return 2, t0.Add(time.Hour), nil }); err != nil {
		t.Errorf("after a panicked load: %v", err)
	}
}
