package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/server"
)

// listening is a real server on 127.0.0.1 behind a Guard.
type listening struct {
	addr    string
	guard   *server.Guard
	limiter *server.ConnLimiter
	srv     *http.Server
	done    chan error
}

// serveGuarded serves h on 127.0.0.1 with the limits, the way `scepter
// serve` does: the Guard's listener, wrapped in TLS when tlsConf is set,
// and the production timeouts except for readHeader.
func serveGuarded(t *testing.T, l server.Limits, readHeader time.Duration, tlsConf *tls.Config, h http.Handler) *listening {
	t.Helper()
	g, err := server.NewGuard(l, pki.SystemClock{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: readHeader, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: log.New(io.Discard, "", 0)}
	limited := g.Protect(srv, ln)
	s := &listening{addr: ln.Addr().String(), guard: g, limiter: limited.(*server.ConnLimiter), srv: srv, done: make(chan error, 1)}
	if tlsConf != nil {
		srv.TLSConfig = tlsConf
		limited = tls.NewListener(limited, tlsConf)
	}
	go func() { s.done <- srv.Serve(limited) }()
	t.Cleanup(func() { srv.Close() })
	return s
}

// waitOpen polls until the limiter counts n connections.
func (s *listening) waitOpen(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.limiter.Open() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want %d", s.limiter.Open(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func dialN(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var conns []net.Conn
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		t.Cleanup(func() { c.Close() })
	}
	return conns
}

// closedWithin reports whether the server closes c within d (a read ends
// with EOF or a reset rather than the deadline).
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	return !errors.Is(err, os.ErrDeadlineExceeded)
}

var ok200 = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })

func getOK(t *testing.T, url string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
}

// statusOf GETs url with c and returns the status, 0 when there was no
// answer.
func statusOf(c *http.Client, url string) int {
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// When full, a newcomer is served and, once a second has passed, the
// connection that has waited longest without sending anything is closed;
// the others stay.
func TestConnLimitEvictsLongestWaiting(t *testing.T) {
	s := serveGuarded(t, server.Limits{MaxConns: 3, MaxInflight: 10}, 10*time.Second, nil, ok200)
	var conns []net.Conn
	for i := range 3 {
		conns = append(conns, dialN(t, s.addr, 1)...)
		s.waitOpen(t, i+1) // accepted in this order
	}
	getOK(t, "http://"+s.addr+"/")
	if !closedWithin(conns[0], 2*time.Second) {
		t.Error("the oldest waiting connection was not closed")
	}
	for i, c := range conns[1:] {
		if closedWithin(c, 100*time.Millisecond) {
			t.Errorf("connection %d was closed", i+1)
		}
	}
	if n := s.limiter.Open(); n > 3 {
		t.Errorf("%d connections open", n)
	}
}

// A connection whose request is being handled is never closed for a
// newcomer: the newcomer waits until one ends. Closing the server while
// Accept waits ends Serve.
func TestConnLimitKeepsBusyConnections(t *testing.T) {
	h, entered, release := holding(2)
	s := serveGuarded(t, server.Limits{MaxConns: 2, MaxInflight: 10}, 10*time.Second, nil, h)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var wg sync.WaitGroup
	slowStatus := make(chan int, 2)
	for range 2 {
		wg.Go(func() { slowStatus <- statusOf(client, "http://"+s.addr+"/?slow=1") })
		<-entered
	}
	fast := make(chan int, 1)
	go func() { fast <- statusOf(client, "http://"+s.addr+"/fast") }()
	select {
	case code := <-fast:
		t.Fatalf("a third connection was served (%d) while two requests held the limit", code)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	wg.Wait()
	for range 2 {
		if code := <-slowStatus; code != 200 {
			t.Errorf("a busy connection was broken: %d", code)
		}
	}
	if code := <-fast; code != 200 {
		t.Fatalf("the waiting connection: %d", code)
	}

	// Fill it again with two busy requests, queue one more, and close.
	release = make(chan struct{})
	defer close(release)
	for range 2 {
		go client.Get("http://" + s.addr + "/?slow=1")
		<-entered
	}
	dialN(t, s.addr, 1)
	time.Sleep(50 * time.Millisecond) // let Accept take it and wait
	s.srv.Close()
	select {
	case <-s.done:
	case <-time.After(2 * time.Second):
		t.Fatal("Serve did not return after Close while Accept waited for room")
	}
}

// Clients that never finish their TLS handshake or their request headers
// are dropped by ReadHeaderTimeout, which Go's server also applies to the
// handshake; many of them never hold more than MaxConns connections, and a
// real client is served meanwhile.
func TestSlowClientsAreDropped(t *testing.T) {
	tlsConf := selfSigned(t)
	const timeout = 300 * time.Millisecond
	for _, tc := range []struct {
		name  string
		tls   bool
		write func(net.Conn) // what the slow client sends, in the background
	}{
		{"TLS, nothing sent", true, func(net.Conn) {}},
		{"TLS, half a ClientHello", true, func(c net.Conn) { c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}) }},
		{"TLS, ClientHello a byte at a time", true, func(c net.Conn) {
			for _, b := range []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03} {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}},
		{"plain, nothing sent", false, func(net.Conn) {}},
		{"plain, headers a byte at a time", false, func(c net.Conn) {
			for _, b := range []byte("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa") {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Each case has a server of its own and mostly waits for the
			// header timeout: they run side by side.
			t.Parallel()
			var conf *tls.Config
			scheme := "http"
			if tc.tls {
				conf, scheme = tlsConf, "https"
			}
			s := serveGuarded(t, server.Limits{MaxConns: 20, MaxInflight: 10}, timeout, conf, ok200)
			start := time.Now()
			conns := dialN(t, s.addr, 50)
			for _, c := range conns {
				go tc.write(c)
			}
			if n := s.limiter.Open(); n > 20 {
				t.Errorf("%d connections open, limit 20", n)
			}
			// A real client gets through meanwhile.
			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
			resp, err := client.Get(scheme + "://" + s.addr + "/")
			if err != nil {
				t.Fatalf("a real client during the slow ones: %v", err)
			}
			resp.Body.Close()
			// Every slow one is closed, by eviction or by the timeout, well
			// before the test's patience ends.
			for i, c := range conns {
				if !closedWithin(c, 3*time.Second) {
					t.Fatalf("slow connection %d still open after %v", i, time.Since(start))
				}
			}
			if d := time.Since(start); d < timeout {
				t.Errorf("all dropped after %v, before the timeout itself", d)
			}
			s.waitOpen(t, 0)
		})
	}
}

func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// A new connection is kept for a while even when the limit is reached, so
// that a crowd of clients does not close each other's connections before
// their requests are read; a newcomer waits, then takes its place: one
// that has sent nothing after quietGrace (1 s), one that has sent part of
// a request after grace. An idle keep-alive connection makes room at once.
func TestConnLimitGrace(t *testing.T) {
	const quiet, grace = time.Second, 1500 * time.Millisecond
	// Each case has a listener of its own and runs in parallel with the
	// others: they spend their time waiting out the limiter's delays.
	listen := func(t *testing.T) (net.Listener, string) {
		t.Helper()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln, ln.Addr().String()
	}
	// replaced runs an Accept for a newcomer on l, which is full with old,
	// and reports how long the newcomer waited; old must be closed then.
	replaced := func(t *testing.T, l *server.ConnLimiter, addr string, old net.Conn) time.Duration {
		t.Helper()
		dialN(t, addr, 1)
		start := time.Now()
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		waited := time.Since(start)
		defer c.Close()
		if _, err := old.Read(make([]byte, 1)); err == nil {
			t.Fatal("the connection was not closed for the newcomer")
		}
		return waited
	}
	accept := func(t *testing.T, l *server.ConnLimiter) net.Conn {
		t.Helper()
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	t.Run("sent nothing", func(t *testing.T) {
		t.Parallel()
		ln, addr := listen(t)
		l := server.NewConnLimiter(ln, 1, grace, nil)
		dialN(t, addr, 1)
		if waited := replaced(t, l, addr, accept(t, l)); waited < quiet*3/4 {
			t.Errorf("the newcomer was accepted after %v: a new connection is kept for %v", waited, quiet)
		}
	})
	t.Run("sent part of a request", func(t *testing.T) {
		t.Parallel()
		ln, addr := listen(t)
		l := server.NewConnLimiter(ln, 1, grace, nil)
		client := dialN(t, addr, 1)[0]
		if _, err := io.WriteString(client, "GET / HTTP/1.1\r\n"); err != nil {
			t.Fatal(err)
		}
		talking := accept(t, l)
		// The server has read what came; the rest is late.
		if _, err := talking.Read(make([]byte, 64)); err != nil {
			t.Fatal(err)
		}
		if waited := replaced(t, l, addr, talking); waited < grace*3/4 {
			t.Errorf("the newcomer was accepted after %v: a new connection that talks is kept for %v", waited, grace)
		}
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		t.Parallel()
		ln, addr := listen(t)
		l := server.NewConnLimiter(ln, 1, time.Hour, nil)
		dialN(t, addr, 1)
		kept := accept(t, l)
		l.ConnState(kept, http.StateActive)
		l.ConnState(kept, http.StateIdle)
		const idleGrace = 250 * time.Millisecond
		if waited := replaced(t, l, addr, kept); waited < idleGrace*3/4 || waited > quiet/2 {
			t.Errorf("the newcomer waited %v for a connection idle between requests, want about %v", waited, idleGrace)
		}
	})
	// What a client sent that the server has not read yet (a busy node)
	// is the server's delay, not the client's: neither a new connection
	// past its grace nor an idle one whose next request has come is
	// closed for it (the client would not resend a request it sent). The
	// newcomer waits until one ends.
	for _, tc := range []struct {
		name string
		idle bool
	}{{"request sent, unread", false}, {"idle keep-alive with its next request unread", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ln, addr := listen(t)
			l := server.NewConnLimiter(ln, 1, 300*time.Millisecond, nil)
			client := dialN(t, addr, 1)[0]
			kept := accept(t, l)
			if tc.idle {
				l.ConnState(kept, http.StateActive)
				l.ConnState(kept, http.StateIdle)
			}
			if _, err := io.WriteString(client, "POST /.well-known/est/simpleenroll HTTP/1.1\r\n"); err != nil {
				t.Fatal(err)
			}
			dialN(t, addr, 1)
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := l.Accept()
				if err != nil {
					t.Error(err)
				}
				accepted <- c
			}()
			if closedWithin(client, 1500*time.Millisecond) {
				t.Fatal("the connection was closed under a request waiting unread in its socket")
			}
			select {
			case <-accepted:
				t.Fatal("the newcomer was accepted beyond the limit")
			default:
			}
			kept.Close()
			select {
			case c := <-accepted:
				c.Close()
			case <-time.After(5 * time.Second):
				t.Fatal("the newcomer was not accepted once the connection ended")
			}
		})
	}
}

// A crowd of clients that keep their connections busy takes turns: when
// a newcomer finds no connection it may close, the next response tells
// its client to close its connection, which the client does without an
// error, and the newcomer is served.
func TestConnLimitAsksBusyClientsToTakeTurns(t *testing.T) {
	h, entered, release := holding(1)
	s := serveGuarded(t, server.Limits{MaxConns: 1, MaxInflight: 10}, 10*time.Second, nil, h)
	kept := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	slow := make(chan *http.Response, 1)
	go func() {
		resp, err := kept.Post("http://"+s.addr+"/?slow=1", "text/plain", strings.NewReader("a request"))
		if err != nil {
			t.Error(err)
		}
		slow <- resp
	}()
	<-entered
	newcomer := make(chan int, 1)
	go func() {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
		newcomer <- statusOf(c, "http://"+s.addr+"/fast")
	}()
	// Accept takes the newcomer, finds no connection to close and asks.
	for deadline := time.Now().Add(5 * time.Second); s.limiter.CloseAsks() != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the waiting newcomer asked for %d closes, want 1", s.limiter.CloseAsks())
		}
	}
	close(release)
	resp := <-slow
	if resp == nil {
		t.Fatal("the busy client's request failed")
	}
	resp.Body.Close()
	if !resp.Close {
		t.Error("the response did not tell its client to close the connection for the waiting newcomer")
	}
	select {
	case code := <-newcomer:
		if code != 200 {
			t.Fatalf("the newcomer: %d", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the newcomer was not served after the busy connection closed")
	}
	// The client that gave up its connection goes on, on a new one, and
	// no later response is told to close when nobody waits.
	for range 3 {
		resp, err := kept.Post("http://"+s.addr+"/fast", "text/plain", strings.NewReader("next"))
		if err != nil {
			t.Fatalf("the client's next request: %v", err)
		}
		resp.Body.Close()
		if resp.Close {
			t.Error("a response asked its client to close although no newcomer waited")
		}
	}
	if n := s.limiter.CloseAsks(); n != 0 {
		t.Errorf("%d asks left after the newcomer came in", n)
	}
	if st := s.guard.Stats(); st.Rotated != 1 || st.Evicted != 0 {
		t.Errorf("stats: %d asked to close, %d closed; want 1 and 0", st.Rotated, st.Evicted)
	}
}
