package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/server"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// echoRemote answers 200 with the RemoteAddr it was given.
var echoRemote = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.RemoteAddr) })

// holding answers "ok", but first holds each request marked ?slow=1 until
// release is closed, after telling entered (which buffers holds of them)
// that one is held.
func holding(holds int) (h http.Handler, entered <-chan struct{}, release chan struct{}) {
	in, release := make(chan struct{}, holds), make(chan struct{})
	h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("slow") != "" {
			in <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	})
	return h, in, release
}

func guarded(t *testing.T, l server.Limits, clock *pkitest.Clock, h http.Handler) http.Handler {
	t.Helper()
	if l.MaxConns == 0 {
		l.MaxConns = 10
	}
	if l.MaxInflight == 0 {
		l.MaxInflight = 10
	}
	g, err := server.NewGuard(l, clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	return g.Handler(h)
}

func get(h http.Handler, remote string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "/scep?operation=GetCACaps", nil)
	req.RemoteAddr = remote
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

type rateStep struct {
	advance    time.Duration
	from       string
	want       int
	retryAfter string
}

// A token bucket per client address: the burst passes, then 429 with a
// Retry-After until a token is back, and other addresses are not affected.
func TestRateLimit(t *testing.T) {
	const a, b = "192.0.2.1:1000", "192.0.2.2:1000"
	for _, tc := range []struct {
		name  string
		rate  float64
		burst int
		steps []rateStep
	}{
		{name: "2/s burst 3", rate: 2, burst: 3, steps: []rateStep{
			{0, a, 200, ""}, {0, a, 200, ""}, {0, a, 200, ""},
			{0, a, 429, "1"}, // a token in 0.5 s, rounded up
			{0, b, 200, ""},  // another address has its own bucket
			{500 * time.Millisecond, a, 200, ""},
			{0, a, 429, "1"},
			{10 * time.Second, a, 200, ""}, {0, a, 200, ""}, {0, a, 200, ""}, // refilled to the burst, not beyond
			{0, a, 429, "1"},
		}},
		{name: "one every 10 s", rate: 0.1, burst: 1, steps: []rateStep{
			{0, a, 200, ""}, {0, a, 429, "10"},
			{4 * time.Second, a, 429, "6"},
			{6 * time.Second, a, 200, ""},
		}},
		{name: "an IPv6 /64 is one client", rate: 1, burst: 1, steps: []rateStep{
			{0, "[2001:db8::1]:1", 200, ""}, {0, "[2001:db8::2]:1", 429, "1"}, {0, "[2001:db8:0:1::1]:1", 200, ""},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := pkitest.NewClock(t0)
			h := guarded(t, server.Limits{RateLimit: tc.rate, RateBurst: tc.burst}, clock, echoRemote)
			for i, s := range tc.steps {
				clock.Advance(s.advance)
				rec := get(h, s.from)
				if rec.Code != s.want || rec.Header().Get("Retry-After") != s.retryAfter {
					t.Fatalf("step %d %+v: %d Retry-After %q", i, s, rec.Code, rec.Header().Get("Retry-After"))
				}
				if rec.Code == http.StatusTooManyRequests && rec.Header().Get("Connection") != "close" {
					t.Errorf("step %d: a 429 keeps the connection open", i)
				}
			}
		})
	}
}

func TestRateLimitOff(t *testing.T) {
	h := guarded(t, server.Limits{}, pkitest.NewClock(t0), echoRemote)
	for i := range 1000 {
		if rec := get(h, "192.0.2.1:1"); rec.Code != 200 {
			t.Fatalf("request %d: %d", i, rec.Code)
		}
	}
}

// Without a queue (MaxQueued 0), one request more than MaxInflight is
// answered 503 at once.
func TestInflightCap(t *testing.T) {
	slow, entered, release := holding(2)
	h := guarded(t, server.Limits{MaxInflight: 2}, pkitest.NewClock(t0), slow)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			req := httptest.NewRequest(http.MethodGet, "/?slow=1", nil)
			req.RemoteAddr = fmt.Sprintf("192.0.2.%d:1", i+1)
			h.ServeHTTP(httptest.NewRecorder(), req)
		})
		<-entered
	}
	rec := get(h, "192.0.2.9:1")
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" || rec.Header().Get("Connection") != "close" {
		t.Fatalf("third request: %d %v", rec.Code, rec.Header())
	}
	close(release)
	wg.Wait()
	if rec := get(h, "192.0.2.9:1"); rec.Code != 200 {
		t.Fatalf("after the slow ones: %d", rec.Code)
	}
}

// Health probes and metrics have slots of their own, each path its own:
// while enrollments hold every slot, with others waiting for one,
// /healthz, /readyz and /metrics are answered at once; beyond a path's
// own few, requests to it get 503 at once, and the other paths are still
// answered.
func TestMonitoringBesideTheCap(t *testing.T) {
	slow, entered, release := holding(10)
	h := guarded(t, server.Limits{MaxInflight: 1, MaxQueued: 10, QueueWait: time.Hour,
		MonitoringPaths: []string{"/healthz", "/readyz", "/metrics"}}, pkitest.NewClock(t0), slow)
	monitor := func(path string) int {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.RemoteAddr = "192.0.2.7:1"
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(release)
	wg.Go(func() { h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/scep?slow=1", nil)) })
	<-entered
	wg.Go(func() { get(h, "192.0.2.8:1") }) // waits for the slot
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code := monitor(path); code != http.StatusOK {
			t.Fatalf("%s while enrollments hold every slot: %d", path, code)
		}
	}
	// Fill /readyz's own slots with calls that hang (a store that does
	// not answer).
	for range 8 {
		wg.Go(func() { monitor("/readyz?slow=1") })
		<-entered
	}
	if code := monitor("/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz beyond its slots: %d, want 503", code)
	}
	for _, path := range []string{"/healthz", "/metrics"} {
		if code := monitor(path); code != http.StatusOK {
			t.Errorf("%s while /readyz's slots are held: %d, want 200", path, code)
		}
	}
	// A POST to a monitoring path is an ordinary request: it waits in the
	// queue (here until its client gives up) instead of taking a
	// monitoring slot.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	rec := httptest.NewRecorder()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/metrics", nil)
	req.RemoteAddr = "192.0.2.7:1"
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || ctx.Err() == nil {
		t.Errorf("a POST to /metrics: %d before its client gave up (%v), want to wait in the queue", rec.Code, ctx.Err())
	}
}

// X-Forwarded-For counts only from a trusted proxy, read from the right:
// what a client writes into it itself is left of what the proxy appends.
func TestTrustedProxy(t *testing.T) {
	proxies, err := server.ParsePrefixes("10.0.0.0/8, 2001:db8:ffff::1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		peer   string
		xff    []string
		client string // RemoteAddr the handler sees
	}{
		{"no proxy configured for this peer", "203.0.113.9:4000", []string{"198.51.100.1"}, "203.0.113.9:4000"},
		{"trusted proxy", "10.1.2.3:4000", []string{"198.51.100.1"}, "198.51.100.1:0"},
		{"client-written entry is ignored", "10.1.2.3:4000", []string{"6.6.6.6, 198.51.100.1"}, "198.51.100.1:0"},
		{"two proxies", "10.1.2.3:4000", []string{"198.51.100.1, 10.9.9.9"}, "198.51.100.1:0"},
		{"two header lines", "10.1.2.3:4000", []string{"6.6.6.6", "198.51.100.1"}, "198.51.100.1:0"},
		{"entry with port", "10.1.2.3:4000", []string{"198.51.100.1:555"}, "198.51.100.1:0"},
		{"garbage left of the client", "10.1.2.3:4000", []string{"garbage, 198.51.100.1"}, "198.51.100.1:0"},
		{"garbage from the proxy", "10.1.2.3:4000", []string{"garbage"}, "10.1.2.3:4000"},
		{"no header", "10.1.2.3:4000", nil, "10.1.2.3:4000"},
		{"only proxies", "10.1.2.3:4000", []string{"10.4.4.4"}, "10.4.4.4:0"},
		{"IPv6 proxy", "[2001:db8:ffff::1]:4000", []string{"2001:db8:1::7"}, "[2001:db8:1::7]:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := guarded(t, server.Limits{TrustedProxies: proxies}, pkitest.NewClock(t0), echoRemote)
			var hdr []string
			for _, v := range tc.xff {
				hdr = append(hdr, "X-Forwarded-For", v)
			}
			if rec := get(h, tc.peer, hdr...); rec.Body.String() != tc.client {
				t.Errorf("client %q, want %q", rec.Body.String(), tc.client)
			}
		})
	}
	// The rate limit applies to the forwarded client, not to the proxy.
	h := guarded(t, server.Limits{TrustedProxies: proxies, RateLimit: 1, RateBurst: 1}, pkitest.NewClock(t0), echoRemote)
	for i := range 5 {
		if rec := get(h, "10.0.0.1:1", "X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i)); rec.Code != 200 {
			t.Fatalf("client %d behind the proxy: %d", i, rec.Code)
		}
	}
	if rec := get(h, "10.0.0.1:1", "X-Forwarded-For", "198.51.100.0"); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("a client's second request behind the proxy: %d", rec.Code)
	}
	// Without trusted proxies the header is ignored: spoofing it buys no
	// fresh bucket.
	h = guarded(t, server.Limits{RateLimit: 1, RateBurst: 1}, pkitest.NewClock(t0), echoRemote)
	get(h, "203.0.113.9:1")
	if rec := get(h, "203.0.113.9:1", "X-Forwarded-For", "198.51.100.77"); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("X-Forwarded-For from an untrusted peer bought a new bucket: %d", rec.Code)
	}
}

func TestParsePrefixes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{"", nil, false},
		{"10.0.0.0/8", []string{"10.0.0.0/8"}, false},
		{"10.1.2.3/8, 192.0.2.1 ,::1", []string{"10.0.0.0/8", "192.0.2.1/32", "::1/128"}, false},
		{"::ffff:192.0.2.1", []string{"192.0.2.1/32"}, false},
		{"10.0.0.0/33", nil, true},
		{"proxy.example", nil, true},
	} {
		got, err := server.ParsePrefixes(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("%q: err %v", tc.in, err)
			continue
		}
		var s []string
		for _, p := range got {
			s = append(s, p.String())
		}
		if strings.Join(s, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%q: %v, want %v", tc.in, s, tc.want)
		}
	}
}

func TestNewGuardValidates(t *testing.T) {
	ok := server.Limits{MaxConns: 1, MaxInflight: 1}
	for _, tc := range []struct {
		name   string
		change func(*server.Limits)
		valid  bool
	}{
		{"minimal", func(*server.Limits) {}, true},
		{"rate limit", func(l *server.Limits) { l.RateLimit, l.RateBurst = 0.5, 1 }, true},
		{"no connections", func(l *server.Limits) { l.MaxConns = 0 }, false},
		{"no requests", func(l *server.Limits) { l.MaxInflight = 0 }, false},
		{"negative rate", func(l *server.Limits) { l.RateLimit = -1 }, false},
		{"rate without burst", func(l *server.Limits) { l.RateLimit = 5 }, false},
	} {
		l := ok
		l.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		tc.change(&l)
		if _, err := server.NewGuard(l, pkitest.NewClock(t0), nil); (err == nil) != tc.valid {
			t.Errorf("%s: err %v", tc.name, err)
		}
	}
}

// The admin API's callers get its JSON error shape from the guard too,
// detail always present: {"retry_after_seconds": N} for a 429 only, null
// for a 503 (its wait is in Retry-After, as for the API's own 503s) and for
// a 400 (a body that ended early), with the API's headers.
func TestRefusalsOfTheAPIAreJSON(t *testing.T) {
	h := guarded(t, server.Limits{RateLimit: 1, RateBurst: 1}, pkitest.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)), echoRemote)
	for i, want := range []int{http.StatusOK, http.StatusTooManyRequests} {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/certificates", nil)
		req.RemoteAddr = "192.0.2.9:1"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Fatalf("request %d: %d, want %d", i, rec.Code, want)
		}
		if want == http.StatusTooManyRequests {
			checkAPIRefusal(t, "429", rec.Result(), rec.Body.Bytes(), `{"retry_after_seconds":1}`)
		}
	}
	if rec := get(h, "192.0.2.9:1"); rec.Code != http.StatusTooManyRequests || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Errorf("429 elsewhere: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}

	// 503: the one slot held, no queue.
	slow, entered, release := holding(1)
	busy := guarded(t, server.Limits{MaxInflight: 1}, pkitest.NewClock(t0), slow)
	done := make(chan struct{})
	go func() {
		defer close(done)
		busy.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/api/v1/whoami?slow=1", nil))
	}()
	<-entered
	for _, path := range []string{"/api/v1/whoami", "/api"} {
		rec := httptest.NewRecorder()
		busy.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, nil))
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" {
			t.Errorf("%s, every slot held: %d, Retry-After %q", path, rec.Code, rec.Header().Get("Retry-After"))
		}
		checkAPIRefusal(t, "503 "+path, rec.Result(), rec.Body.Bytes(), "null")
	}
	close(release)
	<-done

	// 400: a body shorter than its Content-Length.
	srv := httptest.NewServer(guarded(t, server.Limits{}, pkitest.NewClock(t0), echoRemote))
	t.Cleanup(srv.Close)
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /api/v1/tokens HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\"")
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a body that ended early: %d %s", resp.StatusCode, b)
	}
	checkAPIRefusal(t, "400", resp, b, "null")
}

// checkAPIRefusal fails the test unless resp is in the API's error shape
// with the detail given (as compact JSON) and the API's headers.
func checkAPIRefusal(t *testing.T, name string, resp *http.Response, body []byte, detail string) {
	t.Helper()
	var e map[string]json.RawMessage
	if err := json.Unmarshal(body, &e); err != nil || len(e["error"]) < 3 {
		t.Errorf("%s: not the API's error shape: %v %s", name, err, body)
		return
	}
	d, ok := e["detail"]
	if got := strings.Join(strings.Fields(string(d)), ""); !ok || got != detail {
		t.Errorf("%s: detail %s (present: %v), want %s: %s", name, d, ok, detail, body)
	}
	for k, v := range map[string]string{"Content-Type": "application/json; charset=utf-8", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %s %q, want %q", name, k, got, v)
		}
	}
}

// A body sent a byte at a time holds no slot: the guard reads bodies
// before a request takes one, so slow senders cannot starve the rest, and
// a body that ends early is 400 without ever reaching the handler. Bodies
// reach the handler whole, longer ones than the guard reads ahead too.
func TestSlowBodiesHoldNoSlot(t *testing.T) {
	var handled atomic.Int64
	echoLen := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handled.Add(1)
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, len(b))
	})
	srv := httptest.NewServer(guarded(t, server.Limits{MaxInflight: 2}, pkitest.NewClock(t0), echoLen))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")

	for i := range 4 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n%d", i)
	}
	time.Sleep(100 * time.Millisecond) // let the server read what they sent
	for _, size := range []int{0, 10, 100 << 10} {
		resp, err := http.Post(srv.URL+"/scep?operation=PKIOperation", "application/x-pki-message", strings.NewReader(strings.Repeat("x", size)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != fmt.Sprint(size) {
			t.Errorf("a %d-byte body beside 4 slow ones: %d %q", size, resp.StatusCode, b)
		}
	}
	if n := handled.Load(); n != 3 {
		t.Errorf("the handler ran %d times, want 3 (the slow bodies never reach it)", n)
	}

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nshort")
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadRequest || handled.Load() != 3 {
		t.Errorf("a body that ends early: %d, handler ran %d times", resp.StatusCode, handled.Load())
	}
}

// Every request runs under the guard's budget: a store that stops
// answering ends with the request's context, not with the client's
// patience (the edges answer the deadline with 503).
func TestHandlerBudget(t *testing.T) {
	var deadline time.Time
	var had bool
	h := guarded(t, server.Limits{HandlerBudget: 300 * time.Millisecond}, pkitest.NewClock(t0), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		deadline, had = r.Context().Deadline()
		<-r.Context().Done()
	}))
	start := time.Now()
	get(h, "192.0.2.1:1")
	if !had || deadline.Sub(start) > time.Second || time.Since(start) > 10*time.Second {
		t.Errorf("deadline %v (set: %v), %s after the start; want one within the budget", deadline.Sub(start), had, time.Since(start))
	}
}

// A refused request's connection closes as soon as the refusal is written:
// net/http would otherwise wait to drain the unread body (up to 256 KiB,
// for the whole read timeout), so a slow sender's 429s held connections.
func TestRefusalDoesNotWaitForTheBody(t *testing.T) {
	g, err := server.NewGuard(server.Limits{MaxConns: 10, MaxInflight: 10, RateLimit: 0.001, RateBurst: 1}, pkitest.NewClock(t0), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g.Handler(echoRemote))
	defer srv.Close()
	get(g.Handler(echoRemote), "127.0.0.1:1") // the burst, spent
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Headers announcing a body, and one byte of it.
	fmt.Fprintf(conn, "POST /scep HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\nx")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429", resp.StatusCode)
	}
	if _, err := conn.Read(make([]byte, 1)); err == nil || strings.Contains(err.Error(), "timeout") {
		t.Errorf("the connection stayed open after the refusal: %v", err)
	}
}

// A body sent with "Expect: 100-continue" is not read ahead, whatever its
// length: reading it would send "100 Continue", and a handler that refuses
// the announced length (413) would then have the client upload it for
// nothing, or close the connection under a client still sending, which
// sees a reset rather than the 413 (curl sends the header above 1 MB). The
// handler decides; one that reads gets the whole body. Its bound here is
// OCSP's, under the guard's 64 KiB read-ahead (r100 D3: a body between the
// two was read, and "100 Continue" sent, before the refusal).
func TestExpectContinueLeftToTheHandler(t *testing.T) {
	const limit = 8 << 10
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > limit {
			w.Header().Set("Connection", "close")
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, len(b))
	})
	srv := httptest.NewServer(guarded(t, server.Limits{}, pkitest.NewClock(t0), h))
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Minute}}
	t.Cleanup(client.CloseIdleConnections)
	for _, tc := range []struct {
		size int
		want int
	}{
		{2 << 20, http.StatusRequestEntityTooLarge},
		{64<<10 + 1, http.StatusRequestEntityTooLarge},
		{64 << 10, http.StatusRequestEntityTooLarge},
		{9000, http.StatusRequestEntityTooLarge},
		{limit + 1, http.StatusRequestEntityTooLarge},
		{limit, http.StatusOK},
		{10, http.StatusOK},
	} {
		body := pkitest.NewCountingReader(strings.Repeat("x", tc.size))
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/x", body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = int64(tc.size)
		req.Header.Set("Expect", "100-continue")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%d bytes: %v", tc.size, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%d bytes: %d %q, want %d", tc.size, resp.StatusCode, b, tc.want)
		}
		sent := body.Sent()
		switch {
		case tc.want == http.StatusOK && (sent != int64(tc.size) || string(b) != fmt.Sprint(tc.size)):
			t.Errorf("%d bytes: %d sent, the handler read %s", tc.size, sent, b)
		case tc.want != http.StatusOK && sent != 0:
			t.Errorf("%d bytes: %d of them sent before the refusal, want none", tc.size, sent)
		}
	}
}
