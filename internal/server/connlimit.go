package server

import (
	"container/list"
	"net"
	"net/http"
	"sync"
)

// ConnLimiter is a net.Listener that keeps at most max connections open,
// so that file descriptors and per-connection memory stay bounded however
// many connections are opened.
//
// A plain counting limit (block Accept when full) would let anyone who
// opens max connections and sends nothing lock everyone else out until the
// header timeout frees them, and again right after. So when a connection
// arrives and the limit is reached, the connection that has waited longest
// without a request in progress (still in its TLS handshake or its request
// headers, or idle between keep-alive requests) is closed to make room.
// A connection whose request is being handled is never closed; when every
// one is, Accept waits until one ends (requests in flight are bounded by
// the server's timeouts and the in-flight cap).
//
// It learns which connections are busy from the server: set ConnState as
// the http.Server's ConnState hook (Guard.Protect does).
type ConnLimiter struct {
	net.Listener
	max     int
	onEvict func() // may be nil

	mu     sync.Mutex
	cond   *sync.Cond // signalled when a connection goes
	open   int
	idle   list.List // of *limitedConn without a request in progress, longest waiting first
	closed bool
}

// NewConnLimiter bounds ln to maxConns open connections; onEvict, when not nil,
// is called for each connection closed to make room.
func NewConnLimiter(ln net.Listener, maxConns int, onEvict func()) *ConnLimiter {
	l := &ConnLimiter{Listener: ln, max: maxConns, onEvict: onEvict}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// limitedConn is one connection the limiter counts.
type limitedConn struct {
	net.Conn
	l *ConnLimiter
	// Guarded by l.mu:
	elem *list.Element // in l.idle while it has no request in progress
	gone bool          // no longer counted
}

// Accept waits for a connection, and makes room for it when the limit is
// reached.
func (l *ConnLimiter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	for l.open >= l.max && !l.closed {
		e := l.idle.Front()
		if e == nil {
			l.cond.Wait()
			continue
		}
		victim := e.Value.(*limitedConn)
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
	if l.closed {
		l.mu.Unlock()
		c.Close()
		return nil, net.ErrClosed
	}
	lc := &limitedConn{Conn: c, l: l}
	l.open++
	lc.elem = l.idle.PushBack(lc) // no request yet
	l.mu.Unlock()
	return lc, nil
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
			lc.elem = l.idle.PushBack(lc)
		}
	case http.StateActive, http.StateHijacked:
		if lc.elem != nil {
			l.idle.Remove(lc.elem)
			lc.elem = nil
		}
	case http.StateClosed:
		l.dropLocked(lc)
	}
}

// dropLocked stops counting c; l.mu is held.
func (l *ConnLimiter) dropLocked(c *limitedConn) {
	if c.gone {
		return
	}
	if c.elem != nil {
		l.idle.Remove(c.elem)
		c.elem = nil
	}
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
