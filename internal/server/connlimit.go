package server

import (
	"container/list"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// ConnLimiter is a net.Listener that keeps at most max connections open,
// so that file descriptors and per-connection memory stay bounded however
// many connections are opened.
//
// A plain counting limit (block Accept when full) would let anyone who
// opens max connections and sends nothing lock everyone else out until the
// header timeout frees them, and again right after. So when a connection
// arrives and the limit is reached, a connection without a request in
// progress (still in its TLS handshake or its request headers, or idle
// between keep-alive requests) is closed to make room: which one, below.
// A connection whose request is being handled is never closed; when every
// one is, Accept waits until one ends (requests in flight are bounded by
// the server's timeouts and the in-flight cap).
//
// Under a legitimate crowd of more clients than max, closing the
// longest-waiting connection turns most of the crowd away: every newcomer
// closes a connection accepted just before it, before the server could
// even read that one's request (measured: 2,000 SCEP clients with
// keep-alive against the default 1,024 lost 5,014 of 6,000 enrollments,
// EST clients 4,961). Yet a flood of connections that send nothing must
// still be cleared as fast as it comes. So the connection closed for a
// newcomer is, in this order:
//   - the oldest new one that has sent nothing at all (neither read by the
//     server nor waiting in its socket) in quietGrace;
//   - the oldest new one that has talked but not completed a request in
//     grace (a slow TLS handshake or slow headers), unless what it sent
//     waits unread in its socket: then the server is the slow one, busy
//     with a crowd, and the client did its part;
//   - the one idle longest between keep-alive requests, once idle for
//     idleGrace and unless its next request waits unread in its socket:
//     its client sends its next request on a new connection.
//
// When there is none of these, the next response on any connection tells
// its client to close it (Connection: close; a GOAWAY on HTTP/2), and the
// newcomer takes its place. Under a crowd of clients that keep their
// connections busy, that is how they take turns: every connection is idle
// for only the moment between a reply and the next request.
//
// A client resends a request that meets a closed kept-alive connection
// only if it had not sent it yet (Go's resends a POST only then), and not
// at all when a new connection fails in its TLS handshake; so a
// connection is not closed under a client that did its part, or whose
// next request may be on its way. Closing idle connections at once, 2,000
// EST clients kept alive against the default 1,024 lost 0–101 of 6,000
// enrollments per run to it.
//
// Until a connection goes, the newcomer, and every one behind it, waits in
// the kernel's queue.
//
// It learns which connections are busy from the server: set ConnState as
// the http.Server's ConnState hook (Guard.Protect does).
type ConnLimiter struct {
	net.Listener
	max      int
	grace    time.Duration
	onEvict  func() // may be nil
	onRotate func() // may be nil: called for each response that closes its connection when asked

	mu     sync.Mutex
	cond   *sync.Cond // signalled when a connection goes or becomes idle, and when a new one comes of age
	open   int
	fresh  list.List // of new *limitedConn, no request yet, oldest first
	idle   list.List // of *limitedConn idle between requests, longest idle first
	closed bool

	// closeAsks is how many responses are to close their connections
	// for a newcomer waiting in Accept (see CloseWhenAsked).
	closeAsks atomic.Int64
}

// NewConnLimiter bounds ln to maxConns open connections. A new connection
// is kept for at least quietGrace, and one that talks for at least grace;
// onEvict, when not nil, is called for each connection closed to make
// room.
func NewConnLimiter(ln net.Listener, maxConns int, grace time.Duration, onEvict func()) *ConnLimiter {
	l := &ConnLimiter{Listener: ln, max: maxConns, grace: grace, onEvict: onEvict}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// limitedConn is one connection the limiter counts.
type limitedConn struct {
	net.Conn
	l        *ConnLimiter
	accepted time.Time
	heard    atomic.Bool // the client has sent something (see talked)
	// Guarded by l.mu:
	elem      *list.Element // in l.fresh or l.idle while it has no request in progress
	in        *list.List    // which of them
	idleSince time.Time     // when it went into l.idle
	gone      bool          // no longer counted
}

// Accept waits for a connection, and makes room for it when the limit is
// reached.
func (l *ConnLimiter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	asked := false
	for l.open >= l.max && !l.closed {
		victim, wait := l.victimLocked(time.Now())
		if victim == nil {
			if !asked {
				asked = true
				l.closeAsks.Add(1)
			}
			var t *time.Timer
			if wait > 0 {
				t = time.AfterFunc(wait, func() {
					l.mu.Lock()
					l.cond.Broadcast()
					l.mu.Unlock()
				})
			}
			l.cond.Wait()
			if t != nil {
				t.Stop()
			}
			continue
		}
		l.dropLocked(victim)
		l.mu.Unlock()
		// The server's goroutine for it sees the error and ends; its own
		// Close later finds it already uncounted.
		victim.Conn.Close()
		if l.onEvict != nil {
			l.onEvict()
		}
		l.mu.Lock()
	}
	if asked {
		// Room came another way: the ask is not needed any more.
		l.takeCloseAsk()
	}
	if l.closed {
		l.mu.Unlock()
		c.Close()
		return nil, net.ErrClosed
	}
	lc := &limitedConn{Conn: c, l: l, accepted: time.Now()}
	l.open++
	l.waitingLocked(lc, &l.fresh) // no request yet
	l.mu.Unlock()
	return lc, nil
}

// CloseWhenAsked wraps the listener's handler: while a newcomer waits for
// room and no connection may be closed for it, the next response to be
// written closes its connection after it (see ConnLimiter).
func (l *ConnLimiter) CloseWhenAsked(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &closeOnAsk{ResponseWriter: w, l: l}
		next.ServeHTTP(cw, r)
		cw.decide() // a handler that wrote nothing
	})
}

// closeOnAsk decides whether its response closes the connection when the
// response starts, so that one under way when a newcomer comes can carry
// it.
type closeOnAsk struct {
	http.ResponseWriter
	l       *ConnLimiter
	decided bool
}

func (w *closeOnAsk) decide() {
	if w.decided {
		return
	}
	w.decided = true
	if w.l.takeCloseAsk() {
		w.Header().Set("Connection", "close")
		if w.l.onRotate != nil {
			w.l.onRotate()
		}
	}
}

func (w *closeOnAsk) WriteHeader(code int) {
	if code >= 200 { // not an interim response
		w.decide()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *closeOnAsk) Write(b []byte) (int, error) {
	w.decide()
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *closeOnAsk) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// CloseAsks is how many responses are asked now to close their
// connections for a newcomer (0 or 1 but for a moment: one Accept waits at
// a time).
func (l *ConnLimiter) CloseAsks() int64 { return l.closeAsks.Load() }

// takeCloseAsk consumes one ask, if there is one.
func (l *ConnLimiter) takeCloseAsk() bool {
	for {
		n := l.closeAsks.Load()
		if n <= 0 {
			return false
		}
		if l.closeAsks.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// quietGrace is how long a new connection that has sent nothing is kept
// before it may be closed for a newcomer. A client sends its request, or
// its TLS ClientHello, as soon as it is connected, but a busy client (or a
// busy node's kernel queue) may take a while; a flood of connections that
// send nothing is still cleared at the rate it comes, after this delay.
const quietGrace = time.Second

// idleGrace is how long a connection idle between keep-alive requests is
// kept before it may be closed for a newcomer. A client with more to send
// sends its next request as soon as it has read the reply; closed at
// once, the connection's end can overtake that request.
const idleGrace = 250 * time.Millisecond

// victimLocked picks the connection to close for a newcomer (see
// ConnLimiter). When there is none, wait is how long until a new one may
// be closed (0: not before a connection goes or becomes idle). l.mu is
// held.
func (l *ConnLimiter) victimLocked(now time.Time) (victim *limitedConn, wait time.Duration) {
	var aged *limitedConn
	soonest := func(d time.Duration) {
		if wait == 0 || d < wait {
			wait = d
		}
	}
scan:
	for e := l.fresh.Front(); e != nil; e = e.Next() {
		c := e.Value.(*limitedConn)
		age := now.Sub(c.accepted)
		switch {
		case age < quietGrace:
			// This one and all after it, which are younger, are kept.
			soonest(quietGrace - age)
			break scan
		case !c.talked():
			return c, 0
		case age >= l.grace:
			if aged == nil && pendingBytes(c.Conn) == 0 {
				aged = c
			}
		default:
			soonest(l.grace - age)
		}
	}
	if aged != nil {
		return aged, 0
	}
	for e := l.idle.Front(); e != nil; e = e.Next() {
		c := e.Value.(*limitedConn)
		idle := now.Sub(c.idleSince)
		if idle < idleGrace {
			// This one and all after it, idle for less, are kept.
			soonest(idleGrace - idle)
			break
		}
		if pendingBytes(c.Conn) > 0 {
			continue // its next request has come: the server reads it next
		}
		return c, 0
	}
	return nil, wait
}

// talked says whether the client has sent anything on c: bytes the server
// has read, or bytes waiting in the socket for the server to read them
// (its goroutine may not have run yet on a busy node).
func (c *limitedConn) talked() bool {
	if c.heard.Load() {
		return true
	}
	if pendingBytes(c.Conn) > 0 {
		c.heard.Store(true)
		return true
	}
	return false
}

// Read notes that the client has sent something, for talked.
func (c *limitedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && !c.heard.Load() {
		c.heard.Store(true)
	}
	return n, err
}

// waitingLocked puts c at the back of list (l.fresh or l.idle): it has no
// request in progress. l.mu is held.
func (l *ConnLimiter) waitingLocked(c *limitedConn, list *list.List) {
	c.elem, c.in = list.PushBack(c), list
}

// busyLocked takes c off its list: a request is in progress. l.mu is held.
func (l *ConnLimiter) busyLocked(c *limitedConn) {
	if c.elem != nil {
		c.in.Remove(c.elem)
		c.elem, c.in = nil, nil
	}
}

// Close stops accepting; open connections stay (the server closes them).
func (l *ConnLimiter) Close() error {
	l.mu.Lock()
	l.closed = true
	l.cond.Broadcast()
	l.mu.Unlock()
	return l.Listener.Close()
}

// Open is the number of connections counted now.
func (l *ConnLimiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// ConnState follows the server's view of each connection (the
// http.Server.ConnState hook): a connection is evictable while it is new
// or idle, and not while a request is in progress.
func (l *ConnLimiter) ConnState(c net.Conn, s http.ConnState) {
	lc := unwrapLimited(c)
	if lc == nil || lc.l != l {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if lc.gone {
		return
	}
	switch s {
	case http.StateNew:
		// Already queued by Accept, by its arrival time.
	case http.StateIdle:
		if lc.elem == nil {
			lc.idleSince = time.Now()
			l.waitingLocked(lc, &l.idle)
			l.cond.Broadcast() // an Accept may be waiting for a connection to close
		}
	case http.StateActive, http.StateHijacked:
		l.busyLocked(lc)
	case http.StateClosed:
		l.dropLocked(lc)
	}
}

// dropLocked stops counting c; l.mu is held.
func (l *ConnLimiter) dropLocked(c *limitedConn) {
	if c.gone {
		return
	}
	l.busyLocked(c)
	c.gone = true
	l.open--
	l.cond.Broadcast()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.l.mu.Lock()
	c.l.dropLocked(c)
	c.l.mu.Unlock()
	return err
}

// unwrapLimited finds our connection under the server's view of it (a
// *tls.Conn on the HTTPS listener).
func unwrapLimited(c net.Conn) *limitedConn {
	for c != nil {
		switch v := c.(type) {
		case *limitedConn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}
