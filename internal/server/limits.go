package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scepter/scepter/internal/httpjson"
	"github.com/scepter/scepter/internal/loglimit"
	"github.com/scepter/scepter/internal/pki"
)

// Limits bound the work anyone on the network can make a listener do
// before any authentication or cryptography: how many connections it
// keeps open, how many requests it handles at once, and how many requests
// one client address may send per second.
type Limits struct {
	// MaxConns bounds the open connections of each listener. When it is
	// reached, a new connection closes one without a request in progress:
	// one silent for a second, one that has not completed a request in 2 s
	// (a TLS handshake or headers), or an idle keep-alive (ConnLimiter);
	// when there is none, new ones wait in the kernel's queue.
	MaxConns int
	// MaxInflight bounds the requests each listener handles at once.
	MaxInflight int
	// MaxQueued bounds the requests of each listener that wait for one of
	// those MaxInflight slots, each for at most QueueWait, in the order
	// they came. A request beyond MaxQueued, or still waiting after
	// QueueWait, is answered 503 with Retry-After. A fleet's burst of
	// enrollments (an MDM rollout, a mass renewal) is then served in turn
	// instead of mostly turned away, while the work in flight stays
	// bounded: a waiting request has its headers read and holds a
	// connection and a goroutine, nothing more. Zero MaxQueued or
	// QueueWait: 503 at once.
	MaxQueued int
	QueueWait time.Duration
	// RateLimit is how many requests per second one client address may
	// send (a token bucket per address, in this process's memory);
	// RateBurst is the bucket's size. Beyond it: 429 with Retry-After.
	// Zero RateLimit switches it off.
	RateLimit float64
	RateBurst int
	// HandlerBudget is how long a request may take from its arrival,
	// queueing included, before its context ends (default
	// DefaultHandlerBudget).
	HandlerBudget time.Duration
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is
	// believed; without them only the TCP peer address counts.
	TrustedProxies []netip.Prefix
	// MonitoringPaths are the paths (GET) of the health probes and the
	// metrics: each has monitoringSlots of its own and never waits
	// behind other requests, nor behind another of them.
	MonitoringPaths []string
	// MaxClients bounds the client addresses the rate limiter tracks;
	// zero means DefaultMaxClients.
	MaxClients int
}

// Defaults of Limits, generous for a small server: real clients and our
// own test suites never meet them. The burst is large because one address
// may stand for many devices (a site behind NAT, an MDM that proxies SCEP):
// 80 devices enrolling at once send 240 requests. The sustained rate, 20 a
// second, is about 7 enrollments a second from one address.
const (
	DefaultMaxConns    = 1024
	DefaultMaxInflight = 64
	// DefaultMaxQueued and DefaultQueueWait: as many waiters as a listener
	// has connections, so that the bound is the connection limit and the
	// wait. A node that issues a few hundred certificates a second works
	// off a thousand waiting in a few seconds (measured: 1,000 SCEP
	// enrollments at once, all served, the slowest in 2.3 s, on 2 cores);
	// five seconds leaves room for slower keys and nodes, and is well
	// inside devices' own timeouts (30 s and more).
	DefaultMaxQueued = 1024
	DefaultQueueWait = 5 * time.Second
	DefaultRateLimit = 20
	DefaultRateBurst = 250
	// DefaultMaxClients addresses cost about 200 bytes each.
	DefaultMaxClients = 16384
	// newConnGrace is how long a new connection that has sent part of a
	// request is kept before it may be closed for a newcomer
	// (ConnLimiter): long enough for a TLS handshake with a client on a
	// slow network or a busy node, short beside the header timeout.
	newConnGrace = 2 * time.Second
	// busyRetryAfter is the Retry-After of a 503: requests in flight end
	// within seconds.
	busyRetryAfter = time.Second
	// refusalLogEvery is how often refusals are summarised in the log, so
	// a flood does not become a flood of log lines.
	refusalLogEvery = time.Minute
	// errorLogBurst is how many lines of the HTTP server's own error log
	// (TLS handshake errors and the like) pass per refusalLogEvery.
	errorLogBurst = 20
)

// Guard applies Limits to the listeners of one server. The rate limiter is
// shared by every listener of the process; connections and requests in
// flight are bounded per listener.
type Guard struct {
	limits  Limits
	clock   pki.Clock
	rate    *rateLimiter // nil when off
	limited *tally       // 429s
	busy    *tally       // 503s
	evicted *tally       // connections closed for newcomers
	rotated *tally       // responses that closed their connection for a newcomer

	waited  atomic.Int64 // requests that have waited for a slot
	waiting atomic.Int64 // requests waiting for a slot now
}

// LimitStats is what a Guard's limits have done since it was made, summed
// over its listeners (for metrics).
type LimitStats struct {
	RateLimited int64 // requests answered 429: the per-address rate limit
	Busy        int64 // requests answered 503: no slot free, or none in time
	Waited      int64 // requests that waited for a slot, served or not
	Waiting     int64 // requests waiting for a slot now
	Evicted     int64 // connections closed to make room for newcomers
	Rotated     int64 // responses that told their client to close its connection for a newcomer
}

// Stats reads the counts of what the limits have done.
func (g *Guard) Stats() LimitStats {
	return LimitStats{
		RateLimited: g.limited.total.Load(),
		Busy:        g.busy.total.Load(),
		Waited:      g.waited.Load(),
		Waiting:     g.waiting.Load(),
		Evicted:     g.evicted.total.Load(),
		Rotated:     g.rotated.total.Load(),
	}
}

// NewGuard checks l and returns a Guard; log and clock may be nil (no
// log, the system clock).
func NewGuard(l Limits, clock pki.Clock, log *slog.Logger) (*Guard, error) {
	if l.MaxConns < 1 {
		return nil, errors.New("server: the connection limit must be at least 1")
	}
	if l.MaxInflight < 1 {
		return nil, errors.New("server: the limit of requests in flight must be at least 1")
	}
	if l.MaxQueued < 0 || l.QueueWait < 0 {
		return nil, errors.New("server: the queue for requests in flight must not be negative (0 switches it off)")
	}
	if l.RateLimit < 0 {
		return nil, errors.New("server: the rate limit must not be negative (0 switches it off)")
	}
	if l.RateLimit > 0 && l.RateBurst < 1 {
		return nil, errors.New("server: the rate limit's burst must be at least 1")
	}
	if l.MaxClients <= 0 {
		l.MaxClients = DefaultMaxClients
	}
	if l.HandlerBudget <= 0 {
		l.HandlerBudget = DefaultHandlerBudget
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if clock == nil {
		clock = pki.SystemClock{}
	}
	g := &Guard{
		limits:  l,
		clock:   clock,
		limited: &tally{log: log, clock: clock, msg: "requests refused: rate limit per client address (429)"},
		busy:    &tally{log: log, clock: clock, msg: "requests refused: too many in flight or waiting (503)"},
		evicted: &tally{log: log, clock: clock, msg: "connections closed to make room: connection limit reached"},
		rotated: &tally{log: log, clock: clock, msg: "connections asked to close after their response to make room: connection limit reached, every connection busy"},
	}
	if l.RateLimit > 0 {
		g.rate = newRateLimiter(l.RateLimit, l.RateBurst, l.MaxClients, clock)
	}
	return g, nil
}

// Protect applies the limits to one listener and its server: it wraps the
// server's handler (Handler), hooks its ConnState, thins out its ErrorLog
// (errorLogBurst lines a minute, then a count), and returns the listener
// to serve, bounded to MaxConns. For HTTPS, wrap the returned
// listener in TLS: the limit counts TCP connections, handshakes included.
// Call it once per listener, before serving.
func (g *Guard) Protect(srv *http.Server, ln net.Listener) net.Listener {
	cl := NewConnLimiter(ln, g.limits.MaxConns, newConnGrace, g.evicted.add)
	cl.onRotate = g.rotated.add
	srv.Handler = cl.CloseWhenAsked(g.Handler(srv.Handler))
	if srv.ErrorLog != nil {
		// Go logs every failed handshake: thinned out, so that a flood of
		// them does not fill the disk.
		srv.ErrorLog = stdlog.New(&quietWriter{w: srv.ErrorLog.Writer(), clock: g.clock}, srv.ErrorLog.Prefix(), srv.ErrorLog.Flags())
	}
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		cl.ConnState(c, s)
		if prev != nil {
			prev(c, s)
		}
	}
	return cl
}

// Handler wraps one listener's handler: it settles the client address
// (r.RemoteAddr becomes the forwarded client's, port 0, when a trusted
// proxy sent the request), applies the rate limit and then the cap on
// requests in flight. Cheap requests (GetCACaps, GetCACert, cacerts) share
// the cap with the rest: they finish in microseconds, so they hardly hold
// a slot, and exempting them would leave a path that floods uncapped.
// Each call makes a new cap and queue: call it once per listener.
func (g *Guard) Handler(next http.Handler) http.Handler {
	slots := make(chan struct{}, g.limits.MaxInflight)
	var queued atomic.Int64 // this listener's waiters
	// One group of slots per path: a /readyz that hangs on the store, or
	// a flood of /metrics, leaves /healthz its own.
	monitoring := make(map[string]chan struct{}, len(g.limits.MonitoringPaths))
	for _, p := range g.limits.MonitoringPaths {
		monitoring[p] = make(chan struct{}, monitoringSlots)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// Over HTTPS, the guard's own refusals (429, 503, 400) carry
		// Strict-Transport-Security as the handlers' answers do.
		setStrictTransport(w, r)
		addr, forwarded := g.clientAddr(r)
		if forwarded {
			r2 := *r
			r2.RemoteAddr = netip.AddrPortFrom(addr, 0).String()
			r = &r2
		}
		if g.rate != nil {
			if ok, wait := g.rate.allow(clientKey(addr)); !ok {
				g.limited.add()
				refuse(w, r, http.StatusTooManyRequests, wait, "too many requests from this address")
				return
			}
		}
		// The body is read before a slot is taken: a client that sends
		// its body a byte at a time would otherwise hold a slot for the
		// whole read timeout, and some 64 of them would hold them all.
		// Bounded on its own, not by the 30 s ReadTimeout: a thousand
		// connections sending a byte every half second would otherwise
		// hold the listener (and its connection cap) for that long.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyRestWait))
		r, more, err := readBodyFirst(r)
		if err != nil {
			refuse(w, r, http.StatusBadRequest, 0, "the request body ended early or could not be read in time")
			return
		}
		if more {
			// A body longer than the guard reads ahead is read by the
			// handler, in its slot: not for the whole read timeout.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyRestWait))
		}
		held, admitted := slots, false
		if own, ok := monitoring[r.URL.Path]; ok && r.Method == http.MethodGet {
			// Never behind a burst of enrollments: an orchestrator
			// that sees its probes time out restarts a node that is
			// only busy, and the metrics that show the burst would go
			// dark with it. Slots of their own, no queue.
			held, admitted = own, take(own)
		} else {
			admitted = g.admit(r.Context(), slots, &queued)
		}
		if !admitted {
			g.busy.add()
			refuse(w, r, http.StatusServiceUnavailable, busyRetryAfter, "server busy")
			return
		}
		defer func() { <-held }()
		// A store that stops answering (PostgreSQL black-holed, its
		// connections still open) must not hold the request until the
		// client gives up and the connection closes without an answer:
		// past its budget the request's context ends, and the store's
		// error becomes 503 with Retry-After.
		ctx, cancel := context.WithDeadline(r.Context(), start.Add(g.limits.HandlerBudget))
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// DefaultHandlerBudget is how long a request may take from its arrival at
// the guard, queueing included, before its context ends: short of the
// listener's 30 s WriteTimeout, so that its answer still goes out.
const DefaultHandlerBudget = 25 * time.Second

// bodyFirstBytes is how much of a body the guard reads before the request
// takes a slot. Every enrollment, EST request and API call fits (their
// bodies are bounded at 64 KiB; a SCEP PKCSReq is a few KiB), and the
// connection cap bounds the memory: 1,024 connections of it at most.
// A longer body's rest is read by the handler, which applies its own bound.
const bodyFirstBytes = 64 << 10

// bodyRestWait bounds the time a handler may take to read the rest of a
// body longer than bodyFirstBytes (up to SCEP's 256 KiB): 256 KiB at 32
// KiB/s, far slower than any client on a network that can enroll.
const bodyRestWait = 8 * time.Second

// readBodyFirst reads up to bodyFirstBytes of r's body, and returns r with
// a body that gives those bytes and then the rest; more reports that there
// may be a rest. A body that ends early or times out is an error.
//
// A body sent with "Expect: 100-continue" is not read ahead, whatever its
// length (more is true): the first read sends "100 Continue", and the
// handler, which may refuse the announced length (413; OCSP's
// malformedRequest above its 8 KiB), must decide first. Were it read, the
// client would upload a body only to have it refused, or be sending it
// still while the refusal closed the connection and see a reset instead of
// the answer. The handler reads such a body in its slot, within
// bodyRestWait as it would the rest of any longer body: a client that
// sends it slowly holds a slot no longer than one that announces more than
// bodyFirstBytes could anyway.
func readBodyFirst(r *http.Request) (_ *http.Request, more bool, _ error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return r, false, nil
	}
	if expectsContinue(r.Header) {
		return r, true, nil
	}
	n := int64(bodyFirstBytes)
	var b bytes.Buffer
	if r.ContentLength > 0 {
		n = min(n, r.ContentLength)
		// Room for the announced length (and the read that finds the
		// end) up front, rather than doubling up to it.
		b.Grow(int(n) + bytes.MinRead)
	}
	if _, err := b.ReadFrom(io.LimitReader(r.Body, n)); err != nil {
		return r, false, err
	}
	buf := b.Bytes()
	r2 := *r
	r2.Body = bufferedBody{Reader: io.MultiReader(bytes.NewReader(buf), r.Body), Closer: r.Body}
	// Fewer than n bytes: the body ended. n of a body of that length: all of it.
	return &r2, int64(len(buf)) == n && r.ContentLength != n, nil
}

// expectsContinue reports whether h holds "Expect: 100-continue".
func expectsContinue(h http.Header) bool {
	for _, v := range h.Values("Expect") {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "100-continue") {
				return true
			}
		}
	}
	return false
}

// bufferedBody is a request body partly read ahead.
type bufferedBody struct {
	io.Reader
	io.Closer
}

// monitoringSlots bounds the requests to each of Limits.MonitoringPaths
// that each listener handles at once, apart from the other requests. They
// are cheap (readyz reuses its outcome for seconds), and load balancers,
// orchestrators and Prometheus send a few a second at most.
const monitoringSlots = 8

// take takes one of slots if one is free.
func take(slots chan struct{}) bool {
	select {
	case slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// admit takes one of slots for a request: at once when one is free,
// otherwise as one of at most MaxQueued waiters, for at most QueueWait or
// until the client goes away. Waiters get slots first come, first served:
// a channel hands a freed place to its longest-blocked sender before a
// newcomer can see it.
func (g *Guard) admit(ctx context.Context, slots chan struct{}, queued *atomic.Int64) bool {
	if take(slots) {
		return true
	}
	if g.limits.MaxQueued == 0 || g.limits.QueueWait == 0 {
		return false
	}
	defer queued.Add(-1)
	if queued.Add(1) > int64(g.limits.MaxQueued) {
		return false
	}
	g.waited.Add(1)
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	// A relative wait, like the server's read timeouts, so not the
	// injected clock, which tells dates.
	t := time.NewTimer(g.limits.QueueWait)
	defer t.Stop()
	select {
	case slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// refuse answers a request the limits turn away, and closes the connection:
// a client that is turned away should not keep a connection slot.
func refuse(w http.ResponseWriter, r *http.Request, status int, retryAfter time.Duration, reason string) {
	h := w.Header()
	if retryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(retrySeconds(retryAfter), 10))
	}
	h.Set("Connection", "close")
	h.Set("X-Content-Type-Options", "nosniff")
	if isAPIPath(r.URL.Path) {
		// The admin API answers every error in its JSON shape, detail
		// included: {"retry_after_seconds": N} for a 429 only, as the
		// API documents it; null for the rest (a 503's wait is in its
		// Retry-After, as for the API's own 503s).
		var detail any
		if status == http.StatusTooManyRequests {
			detail = map[string]int64{"retry_after_seconds": retrySeconds(retryAfter)}
		}
		h.Set("Cache-Control", "no-store")
		httpjson.WriteError(w, status, reason, detail)
		hangUp(w)
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "%d %s\n", status, reason)
	hangUp(w)
}

// hangUp keeps the server from reading the rest of a refused request's
// body before it closes the connection: net/http drains up to 256 KiB of
// it, for as long as the read timeout, so each 429 of a slow sender held
// its connection for 30 s.
func hangUp(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
}

// retrySeconds rounds up to whole seconds, at least 1 (Retry-After has no
// fractions, and 0 invites an immediate retry).
func retrySeconds(d time.Duration) int64 {
	// Rounded up without adding to d, which may be the longest Duration.
	s := int64(d / time.Second)
	if d%time.Second > 0 {
		s++
	}
	return max(s, 1)
}

// clientAddr is the address the limits apply to: the TCP peer, or, when
// the peer is a trusted proxy, the nearest address in X-Forwarded-For that
// is not one (reading from the right, since each proxy appends). forwarded
// reports that it is not the peer. An unparseable RemoteAddr gives the
// zero Addr, one bucket for all such requests.
func (g *Guard) clientAddr(r *http.Request) (addr netip.Addr, forwarded bool) {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	addr = peer.Addr().Unmap()
	if !g.trusted(addr) {
		return addr, false
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, ok := parseHop(hops[i])
		if !ok {
			break // garbage left of here came from the client: stop at the last proxy
		}
		addr = hop
		if !g.trusted(hop) {
			break
		}
	}
	return addr, addr != peer.Addr().Unmap()
}

func (g *Guard) trusted(a netip.Addr) bool {
	for _, p := range g.limits.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHop reads one X-Forwarded-For entry: an address, optionally with a
// port.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}

// clientKey groups addresses the way one client holds them: an IPv4
// address alone, an IPv6 address by its /64 (a host usually has a whole
// /64, so per-address buckets would give it 2^64 of them).
func clientKey(a netip.Addr) netip.Addr { return pki.ClientGroup(a) }

// ParsePrefixes reads a comma-separated list of CIDR prefixes or single
// addresses (a /32 or /128).
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if p, err := netip.ParsePrefix(part); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR prefix", part)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// tally counts refusals of one kind and logs a summary at most once per
// refusalLogEvery: the first refusal at once, then how many followed.
type tally struct {
	log   *slog.Logger
	clock pki.Clock
	msg   string

	total atomic.Int64 // since the start, for metrics

	mu     sync.Mutex
	count  int // since the last log line
	logged time.Time
}

func (t *tally) add() {
	t.total.Add(1)
	now := t.clock.Now()
	t.mu.Lock()
	t.count++
	if !t.logged.IsZero() && now.Sub(t.logged) < refusalLogEvery {
		t.mu.Unlock()
		return
	}
	n, since := t.count, t.logged
	t.count, t.logged = 0, now
	t.mu.Unlock()
	if since.IsZero() {
		t.log.Warn(t.msg, "count", n)
		return
	}
	t.log.Warn(t.msg, "count", n, "since", since.Format(time.RFC3339))
}

// quietWriter lets errorLogBurst lines through per refusalLogEvery and
// counts the rest, reporting the count with the first line of the next
// period. Each Write is one line (log.Logger writes whole lines).
type quietWriter struct {
	w     io.Writer
	clock pki.Clock

	mu     sync.Mutex
	window loglimit.Window
}

func (q *quietWriter) Write(p []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	pass, dropped, since := q.window.Admit(q.clock.Now(), errorLogBurst, refusalLogEvery)
	if !pass {
		return len(p), nil
	}
	if dropped > 0 {
		fmt.Fprintf(q.w, "http: %d more server errors were not logged since %s\n", dropped, since.Format(time.RFC3339))
	}
	return q.w.Write(p)
}
