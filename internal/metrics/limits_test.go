package metrics_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/server"
)

// What the limits turn away never reaches the instrumented handler, so it
// is counted from the Guard: a request over the rate limit, one beyond
// the queue, one that waited, and one waiting at scrape time.
func TestLimitsAreCounted(t *testing.T) {
	e := newEnv(t)
	g, err := server.NewGuard(server.Limits{MaxConns: 10, MaxInflight: 1, MaxQueued: 1, QueueWait: time.Hour, RateLimit: 1, RateBurst: 1}, e.pki.Clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.m.Limits(g.Stats); err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	h := g.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("slow") != "" {
			entered <- struct{}{}
			<-release
		}
	}))
	send := func(addr, query string) int {
		req := httptest.NewRequest(http.MethodGet, "/scep?"+query, nil)
		req.RemoteAddr = addr
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	count := func(name string, labels map[string]string) float64 {
		t.Helper()
		v, ok := value(scrape(t, e.handler), name, labels)
		if !ok {
			t.Fatalf("no %s%v in the scrape", name, labels)
		}
		return v
	}
	var wg sync.WaitGroup
	wg.Go(func() { send("192.0.2.1:1", "slow=1") }) // holds the only slot
	<-entered
	if code := send("192.0.2.1:1", ""); code != http.StatusTooManyRequests {
		t.Fatalf("a second request from the same address: %d, want 429", code)
	}
	wg.Go(func() { send("192.0.2.2:1", "") }) // waits for the slot
	for count("scepter_http_waiting", nil) != 1 {
		time.Sleep(time.Millisecond)
	}
	if code := send("192.0.2.3:1", ""); code != http.StatusServiceUnavailable {
		t.Fatalf("a request beyond the queue: %d, want 503", code)
	}
	close(release)
	wg.Wait()
	for name, want := range map[string]float64{"rate_limit": 1, "busy": 1} {
		if got := count("scepter_http_refused_total", map[string]string{"reason": name}); got != want {
			t.Errorf("refused %s: %v, want %v", name, got, want)
		}
	}
	if got := count("scepter_http_waited_total", nil); got != 1 {
		t.Errorf("waited: %v, want 1", got)
	}
	if got := count("scepter_http_waiting", nil); got != 0 {
		t.Errorf("waiting after all were served: %v, want 0", got)
	}
	for _, name := range []string{"scepter_http_connections_closed_total", "scepter_http_connections_rotated_total"} {
		if got := count(name, nil); got != 0 {
			t.Errorf("%s: %v, want 0", name, got)
		}
	}
}
