//go:build unix

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/scep"
)

// Hostile tests: floods of connections, slow clients, wrong challenges and
// password guesses against the real binary. The attacker connects from
// 127.0.0.2 and the legitimate client from 127.0.0.1, so the per-address
// limits can tell them apart; everything stays on 127.0.0.0/8. The tests
// are not parallel: their timings and the server's memory are measured
// while nothing else runs.

const attackerIP = "127.0.0.2"

// rssBound is how much the server's resident memory may grow under a
// flood: generous, the point is "bounded", not a benchmark.
const rssBound = 150 // MB

// floodServer is a `scepter serve` with a known HTTPS port, its PID for
// /proc, and the clients of both sides.
type floodServer struct {
	*Server
	HTTPSAddr string
	pid       int
	roots     *x509.CertPool
}

func startFloodServer(t *testing.T, args ...string) *floodServer {
	t.Helper()
	needAttackerAddress(t)
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc to measure the server's memory and descriptors")
	}
	httpsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	s := startServer(t, serverOpts{prepared: true, challenge: "flood-secret", args: append([]string{"--est-listen", httpsAddr}, args...)})
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, s.CAFile("root.crt")))
	return &floodServer{Server: s, HTTPSAddr: httpsAddr, pid: s.p.cmd.Process.Pid, roots: roots}
}

// needAttackerAddress ends the test where 127.0.0.2 is not a local
// address (macOS without an alias).
func needAttackerAddress(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", attackerIP+":0")
	if err != nil {
		if requireAll() {
			t.Fatalf("cannot use %s as a source address: %v", attackerIP, err)
		}
		t.Skipf("cannot use %s as a source address: %v", attackerIP, err)
	}
	l.Close()
}

func dialerFrom(ip string) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
}

// httpFrom is an HTTP client whose connections come from ip and which
// trusts the server's root for HTTPS.
func (s *floodServer) httpFrom(ip string) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext:         dialerFrom(ip).DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: s.roots},
		MaxIdleConnsPerHost: 16,
	}}
}

// rssMB is the server's resident memory, from /proc/PID/status.
func (s *floodServer) rssMB(t *testing.T) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no VmRSS in /proc/%d/status", s.pid)
	}
	kb, _ := strconv.Atoi(string(m[1]))
	return float64(kb) / 1024
}

// fds is how many file descriptors the server holds open.
func (s *floodServer) fds(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.pid))
	if errors.Is(err, fs.ErrPermission) {
		// serve makes itself non-dumpable, so that only root may look
		// into its descriptors: as another user this count cannot be had.
		t.Skipf("the server's descriptors cannot be counted by uid %d (serve is not dumpable): run as root", os.Geteuid())
	}
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// waitFDs polls until the server holds at most n descriptors.
func (s *floodServer) waitFDs(t *testing.T, n int, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := s.fds(t)
		if got <= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// legitEnroll runs `scepter enroll` from 127.0.0.1 and fails the test
// unless it gets its certificate.
func (s *floodServer) legitEnroll(t *testing.T, cn string) time.Duration {
	t.Helper()
	start := time.Now()
	dir := t.TempDir()
	if r := enroll(t, dir, s.URL, s.Challenge, "CN="+cn+",O=Acme", "--key-type", "p256"); r.err != nil {
		t.Fatalf("a legitimate enrollment failed under attack:\n%s", r)
	}
	s.Verify(filepath.Join(dir, "cert.pem"))
	return time.Since(start)
}

// legitCACerts fetches EST cacerts over HTTPS from 127.0.0.1.
func (s *floodServer) legitCACerts(t *testing.T) {
	t.Helper()
	resp, err := s.httpFrom("127.0.0.1").Get("https://" + s.HTTPSAddr + "/.well-known/est/cacerts")
	if err != nil {
		t.Fatalf("EST cacerts under attack: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("EST cacerts under attack: HTTP %d", resp.StatusCode)
	}
}

// openFileBudget is how many more descriptors this test process may open.
func openFileBudget(t *testing.T) int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	return int(rl.Cur) - 256
}

// dialMany opens n connections to addr from the attacker's address and
// leaves them open (closed at the end of the test).
func dialMany(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	d := dialerFrom(attackerIP)
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("attacker connection %d of %d: %v", len(conns)+1, n, err)
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	return conns
}

// stillOpen counts the connections the server has not closed.
func stillOpen(conns []net.Conn) int {
	n := 0
	buf := make([]byte, 1)
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(buf); errors.Is(err, os.ErrDeadlineExceeded) {
			n++
		}
	}
	return n
}

// TestFloodConnections: thousands of connections that send nothing, to
// both listeners. The server keeps at most --max-conns (1024) of each,
// closing the longest-waiting for newcomers, so its descriptors and memory
// stay bounded, and a legitimate enrollment and an EST request are served
// while the attacker's connections are open.
func TestFloodConnections(t *testing.T) {
	const maxConns = 1024 // the default
	s := startFloodServer(t)
	s.legitEnroll(t, "flood-warmup") // memory of a server that has worked
	rssBefore, fdsBefore := s.rssMB(t), s.fds(t)

	plainN, tlsN := 2000, 1200
	if budget := openFileBudget(t); plainN+tlsN > budget {
		plainN, tlsN = budget*5/8, budget*3/8
		t.Logf("open-file limit: %d + %d connections", plainN, tlsN)
	}
	start := time.Now()
	plain := dialMany(t, s.Addr, plainN)
	tlsConns := dialMany(t, s.HTTPSAddr, tlsN)
	dialed := time.Since(start)
	time.Sleep(300 * time.Millisecond) // let the server accept what it will
	fdsDuring := s.fds(t)
	if limit := fdsBefore + 2*maxConns + 8; fdsDuring > limit {
		t.Errorf("the server holds %d descriptors under the flood, more than %d (before: %d, limit %d per listener)", fdsDuring, limit, fdsBefore, maxConns)
	}
	took := s.legitEnroll(t, "flood-device")
	s.legitCACerts(t)
	rssDuring := s.rssMB(t)
	elapsed := time.Since(start)
	openPlain, openTLS := stillOpen(plain), stillOpen(tlsConns)
	if elapsed > 9*time.Second {
		t.Logf("note: %v passed; the header timeout (10 s) may have closed attacker connections already", elapsed)
	}
	if openPlain > maxConns || openTLS > maxConns {
		t.Errorf("%d plain and %d TLS attacker connections open, limit %d per listener", openPlain, openTLS, maxConns)
	}
	if openPlain == 0 || openTLS == 0 {
		t.Errorf("no attacker connection was kept (%d plain, %d TLS): the test did not flood", openPlain, openTLS)
	}
	for _, c := range append(plain, tlsConns...) {
		c.Close()
	}
	fdsAfter := s.waitFDs(t, fdsBefore+4, 5*time.Second)
	rssAfter := s.rssMB(t)
	t.Logf("flood: %d plain + %d TLS connections from %s dialed in %v; server descriptors %d before, %d during, %d after; "+
		"attacker connections still open at the end: %d plain, %d TLS; legitimate enroll took %v; RSS %.1f MB before, %.1f during, %.1f after",
		plainN, tlsN, attackerIP, dialed.Round(time.Millisecond), fdsBefore, fdsDuring, fdsAfter, openPlain, openTLS,
		took.Round(time.Millisecond), rssBefore, rssDuring, rssAfter)
	if rssDuring-rssBefore > rssBound {
		t.Errorf("RSS grew by %.1f MB under the flood (bound %d MB)", rssDuring-rssBefore, rssBound)
	}
	if fdsAfter > fdsBefore+4 {
		t.Errorf("the server still holds %d descriptors after the flood ended (%d before)", fdsAfter, fdsBefore)
	}
}

// TestSlowloris: clients that send their request headers a byte at a time,
// and TLS clients that never finish the handshake, are dropped by
// --read-header-timeout (2 s here; Go's server applies it to the
// handshake too), not kept for as long as they keep trickling; a
// legitimate enrollment and an EST request are served meanwhile.
func TestSlowloris(t *testing.T) {
	const timeout = 2 * time.Second
	s := startFloodServer(t, "--read-header-timeout", timeout.String())
	fdsBefore := s.fds(t)
	const n = 300 // of each kind
	type drop struct {
		kind  string
		after time.Duration
	}
	drops := make(chan drop, 3*n)
	// watch waits until the server closes c and reports when.
	watch := func(kind string, c net.Conn, start time.Time) {
		c.SetReadDeadline(start.Add(20 * time.Second))
		io.Copy(io.Discard, c)
		drops <- drop{kind, time.Since(start)}
	}
	d := dialerFrom(attackerIP)
	dial := func(addr string) (net.Conn, time.Time) {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("attacker: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c, time.Now()
	}
	start := time.Now()
	// trickle sends msg one byte every 500 ms until the server hangs up.
	trickle := func(c net.Conn, msg []byte) {
		for _, b := range msg {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	headers := []byte("GET /scep?operation=GetCACaps HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + strings.Repeat("a", 100))
	// A handshake record of 512 bytes, ClientHello type, that never ends.
	hello := append([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}, make([]byte, 100)...)
	for range n {
		// Headers that never end.
		plainConn, at := dial(s.Addr)
		go watch("plain headers", plainConn, at)
		go trickle(plainConn, headers)
		// A TLS handshake that never starts.
		silentConn, at := dial(s.HTTPSAddr)
		go watch("TLS silent", silentConn, at)
		// A ClientHello that never ends.
		helloConn, at := dial(s.HTTPSAddr)
		go watch("TLS trickle", helloConn, at)
		go trickle(helloConn, hello)
	}
	dialed := time.Since(start)
	fdsDuring := s.fds(t)
	took := s.legitEnroll(t, "slowloris-device")
	s.legitCACerts(t)
	if limit := fdsBefore + 3*n + 8; fdsDuring > limit {
		t.Errorf("the server holds %d descriptors, more than %d", fdsDuring, limit)
	}
	var slowest, fastest time.Duration
	perKind := map[string][2]time.Duration{} // fastest and slowest drop
	deadline := time.After(timeout + 8*time.Second)
	for i := range 3 * n {
		select {
		case d := <-drops:
			slowest = max(slowest, d.after)
			if fastest == 0 || d.after < fastest {
				fastest = d.after
			}
			k := perKind[d.kind]
			if k[0] == 0 || d.after < k[0] {
				k[0] = d.after
			}
			k[1] = max(k[1], d.after)
			perKind[d.kind] = k
		case <-deadline:
			t.Fatalf("after %v only %d of %d slow connections were dropped", time.Since(start), i, 3*n)
		}
	}
	fdsAfter := s.waitFDs(t, fdsBefore+4, 5*time.Second)
	t.Logf("slowloris: %d plain + %d silent TLS + %d trickling TLS connections from %s (dialed in %v); dropped after %v to %v (per kind %v); "+
		"legitimate enroll took %v; server descriptors %d before, %d during, %d after",
		n, n, n, attackerIP, dialed.Round(time.Millisecond), fastest.Round(time.Millisecond), slowest.Round(time.Millisecond), perKind,
		took.Round(time.Millisecond), fdsBefore, fdsDuring, fdsAfter)
	if slowest > timeout+3*time.Second {
		t.Errorf("a slow connection lasted %v with a %v header timeout", slowest, timeout)
	}
	if fastest < timeout-500*time.Millisecond {
		t.Errorf("a slow connection was dropped after %v, before the %v timeout: something else closed it", fastest, timeout)
	}
}

// TestHostileWrongChallenges: 1,000 PKCSReqs with wrong challenges from one
// address, eight at a time, made with our client library. Each is refused
// (a CertRep FAILURE badRequest, or 429 from the rate limit or a throttle
// of failed challenges), none is issued, the server's memory stays
// bounded, and a legitimate client enrolls meanwhile. With the rate limit
// off every request reaches the challenge check.
func TestHostileWrongChallenges(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"default limits", nil},
		{"rate limit off", []string{"--rate-limit", "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startFloodServer(t, tc.args...)
			s.legitEnroll(t, "challenge-warmup")
			rssBefore := s.rssMB(t)
			ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
			defer cancel()
			attacker := &client.SCEP{URL: s.URL, HTTP: s.httpFrom(attackerIP)}
			caps, err := attacker.GetCACaps(ctx)
			if err != nil {
				t.Fatal(err)
			}
			caCerts, err := attacker.GetCACert(ctx)
			if err != nil {
				t.Fatal(err)
			}
			const total, workers = 1000, 8
			var refused, limited, issued atomic.Int64
			var otherMu sync.Mutex
			var others []string
			jobs := make(chan int)
			var wg sync.WaitGroup
			start := time.Now()
			for range workers {
				wg.Go(func() {
					for i := range jobs {
						err := wrongChallenge(ctx, attacker, caCerts, caps, i)
						var fe *client.FailureError
						switch {
						case err == nil:
							issued.Add(1)
						case errors.As(err, &fe) && fe.FailInfo == scep.BadRequest:
							refused.Add(1)
						case strings.Contains(err.Error(), "HTTP 429"):
							limited.Add(1)
						default:
							otherMu.Lock()
							others = append(others, err.Error())
							otherMu.Unlock()
						}
					}
				})
			}
			// The legitimate client starts once the attack runs.
			legit := make(chan result, 1)
			go func() {
				time.Sleep(100 * time.Millisecond)
				dir := t.TempDir()
				r := enroll(t, dir, s.URL, s.Challenge, "CN=challenge-device,O=Acme", "--key-type", "p256")
				legit <- r
			}()
			var rssPeak float64
			sample := time.NewTicker(100 * time.Millisecond)
			defer sample.Stop()
		feed:
			for i := range total {
				for {
					select {
					case jobs <- i:
						continue feed
					case <-sample.C:
						rssPeak = max(rssPeak, s.rssMB(t))
					case <-ctx.Done():
						break feed
					}
				}
			}
			close(jobs)
			wg.Wait()
			elapsed := time.Since(start)
			rssPeak = max(rssPeak, s.rssMB(t))
			r := <-legit
			if r.err != nil {
				t.Errorf("the legitimate client did not enroll during the attack:\n%s", r)
			}
			rssAfter := s.rssMB(t)
			t.Logf("%d wrong challenges from %s in %v (%.0f/s): %d FAILURE badRequest, %d HTTP 429, %d other, %d issued; RSS %.1f MB before, %.1f peak, %.1f after",
				total, attackerIP, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), refused.Load(), limited.Load(), len(others), issued.Load(),
				rssBefore, rssPeak, rssAfter)
			if issued.Load() != 0 {
				t.Errorf("%d certificates issued for wrong challenges", issued.Load())
			}
			if len(others) > 0 {
				t.Errorf("%d answers were neither FAILURE badRequest nor 429, e.g. %s", len(others), others[0])
			}
			if got := refused.Load() + limited.Load(); got != total {
				t.Errorf("%d of %d requests answered (ctx: %v)", got, total, ctx.Err())
			}
			if refused.Load() == 0 {
				t.Error("no request reached the challenge check")
			}
			if rssPeak-rssBefore > rssBound {
				t.Errorf("RSS grew by %.1f MB (bound %d MB)", rssPeak-rssBefore, rssBound)
			}
			for _, c := range s.ListCerts() {
				if strings.Contains(c.Subject, "attacker") {
					t.Errorf("a certificate was issued to the attacker: %+v", c)
				}
			}
		})
	}
}

// wrongChallenge sends one PKCSReq with a fresh P-256 key (so each is a
// new transaction) and a wrong challenge.
func wrongChallenge(ctx context.Context, c *client.SCEP, caCerts []*x509.Certificate, caps client.Caps, i int) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	challenge := fmt.Sprintf("wrong-%d", i)
	der, err := csr.Create(csr.Template{Subject: pkix.Name{CommonName: fmt.Sprintf("attacker-%d", i)}, ChallengePassword: challenge}, key)
	if err != nil {
		return err
	}
	_, err = c.Enroll(ctx, client.EnrollRequest{CSR: der, Key: key, CACerts: caCerts, Caps: caps, Challenge: challenge})
	return err
}

// TestFloodInflightCap (regression): with --max-inflight 1, a request
// whose body trickles in holds the only slot, and a second request, after
// waiting --queue-wait for it, is answered 503 with Retry-After rather
// than handled, while health probes and metrics are answered; once the
// slow one ends, requests are served again.
func TestFloodInflightCap(t *testing.T) {
	s := startFloodServer(t, "--max-inflight", "1", "--queue-wait", "300ms")
	legit := s.httpFrom("127.0.0.1")
	var resp *http.Response
	var slowConns []net.Conn
	defer func() {
		for _, c := range slowConns {
			c.Close()
		}
	}()
	for attempt := 0; ; attempt++ {
		slow, err := dialerFrom(attackerIP).Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		slowConns = append(slowConns, slow)
		// Headers complete, body promised longer than the 64 KiB the
		// server reads before a request takes a slot, and sent only that
		// far: the handler runs, reading the rest, and holds the slot (for
		// up to 8 s; a body sent slowly from its start holds none).
		fmt.Fprintf(slow, "POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-pki-message\r\nContent-Length: 100000\r\n\r\n%s",
			s.Addr, strings.Repeat("0", 64<<10+10))
		time.Sleep(200 * time.Millisecond) // for the server to read the headers
		if resp, err = legit.Get(s.URL + "?operation=GetCACaps"); err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable || attempt == 5 {
			break
		}
		// Only if the slow request itself met a busy server (it answers
		// then, 503), try again.
		slow.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := slow.Read(make([]byte, 1)); err != nil {
			break // no answer: it does hold the slot, and the cap let another through
		}
	}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a second request while one is in flight: HTTP %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Health probes and metrics have slots of their own: answered while
	// the slot is held.
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _, err := httpGet(s.Base + path); err != nil || code != http.StatusOK {
			t.Fatalf("%s while the only slot is held: %d %v, want 200", path, code, err)
		}
	}
	// Served again once the slow one ends. Polled gently: the rate limit
	// applies to this client too.
	for _, c := range slowConns {
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _, err := httpGet(s.URL + "?operation=GetCACaps")
		if err == nil && code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not served again after the slow request ended: %d %v", code, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFloodRateLimit (regression): with a low --rate-limit, a burst from
// one address gets 429 with Retry-After once its bucket is empty, while
// another address is served.
func TestFloodRateLimit(t *testing.T) {
	s := startFloodServer(t, "--rate-limit", "1", "--rate-burst", "5")
	attacker := s.httpFrom(attackerIP)
	var codes []int
	for range 20 {
		resp, err := attacker.Get(s.URL + "?operation=GetCACaps")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == http.StatusTooManyRequests {
			if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
				t.Errorf("429 with Retry-After %q", resp.Header.Get("Retry-After"))
			}
		}
	}
	ok, limited := 0, 0
	for _, c := range codes {
		switch c {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
			limited++
		}
	}
	if ok < 5 || ok > 7 || limited != 20-ok {
		t.Errorf("20 quick requests from one address: %d served, %d refused with 429 (%v); want the burst of 5 (and maybe a refill) served, the rest 429", ok, limited, codes)
	}
	// Another address has its own bucket.
	resp, err := s.httpFrom("127.0.0.1").Get(s.URL + "?operation=GetCACaps")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("another address while the first is limited: HTTP %d", resp.StatusCode)
	}
	// SCEP devices are not starved for long: one token a second.
	time.Sleep(1100 * time.Millisecond)
	resp, err = attacker.Get(s.URL + "?operation=GetCACaps")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the limited address a second later: HTTP %d", resp.StatusCode)
	}
}

// TestNDESPageHostile: the NDES page hands out credentials, so on plain
// HTTP it is served to local clients only. Every address in 127.0.0.0/8 is
// local, so a remote client is played by a reverse proxy on 127.0.0.1
// (--trusted-proxy) that names it in X-Forwarded-For: it gets 403 naming
// the https URL, and the page over HTTPS. Five wrong passwords from one
// address lock that address out (429 with Retry-After, also for the right
// password), while other addresses still get their passwords.
func TestNDESPageHostile(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "ndes-password")
	writeFile(t, pw, "ndes-admin-pass\n")
	s := startFloodServer(t, "--ndes-user", "mdm", "--ndes-password-file", pw, "--trusted-proxy", "127.0.0.1")
	type answer struct {
		code       int
		retryAfter string
		body       string
	}
	const remote, otherRemote = "192.0.2.10", "198.51.100.20"
	fetch := func(from, xff, url, user, pass string) answer {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.SetBasicAuth(user, pass)
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		resp, err := s.httpFrom(from).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return answer{resp.StatusCode, resp.Header.Get("Retry-After"), decodeUTF16LE(b) + string(b)}
	}
	plainURL := s.Base + "/certsrv/mscep_admin/"
	httpsURL := "https://" + s.HTTPSAddr + "/certsrv/mscep_admin/"
	passwordOnPage := regexp.MustCompile(`The enrollment challenge password is: <B> (\S+)`)
	served := func(a answer) bool { return a.code == http.StatusOK && passwordOnPage.MatchString(a.body) }

	for _, tc := range []struct {
		name      string
		from, xff string
		url       string
		serve     bool
	}{
		{"plain HTTP, a remote client through the proxy", "127.0.0.1", remote, plainURL, false},
		{"plain HTTP, a local connector", attackerIP, "", plainURL, true},
		{"plain HTTP, X-Forwarded-For from a peer that is no proxy is ignored", attackerIP, remote, plainURL, true},
		{"HTTPS, the remote client through the proxy", "127.0.0.1", remote, httpsURL, true},
		{"HTTPS, directly", attackerIP, "", httpsURL, true},
	} {
		a := fetch(tc.from, tc.xff, tc.url, "mdm", "ndes-admin-pass")
		switch {
		case tc.serve && !served(a):
			t.Errorf("%s: HTTP %d, want the page", tc.name, a.code)
		case !tc.serve && (a.code != http.StatusForbidden || !strings.Contains(a.body, httpsURL) || passwordOnPage.MatchString(a.body)):
			t.Errorf("%s: HTTP %d %q, want 403 naming %s", tc.name, a.code, a.body, httpsURL)
		}
	}
	// Guessing, from the attacker's own address and from a remote client
	// behind the proxy: each is locked out on its own.
	for _, g := range []struct{ from, xff string }{{attackerIP, ""}, {"127.0.0.1", remote}} {
		var got []int
		for i := range 5 {
			got = append(got, fetch(g.from, g.xff, httpsURL, "mdm", fmt.Sprintf("guess-%d", i)).code)
		}
		if fmt.Sprint(got) != "[401 401 401 401 429]" {
			t.Errorf("five wrong passwords from %s %s: %v, want four 401 and a 429", g.from, g.xff, got)
		}
		a := fetch(g.from, g.xff, httpsURL, "mdm", "ndes-admin-pass")
		if ra, _ := strconv.Atoi(a.retryAfter); a.code != http.StatusTooManyRequests || ra < 1 || ra > 60 || passwordOnPage.MatchString(a.body) {
			t.Errorf("the right password from %s %s during its lockout: HTTP %d, Retry-After %q", g.from, g.xff, a.code, a.retryAfter)
		}
	}
	if !served(fetch("127.0.0.1", otherRemote, httpsURL, "mdm", "ndes-admin-pass")) || !served(fetch("127.0.0.1", "", httpsURL, "mdm", "ndes-admin-pass")) {
		t.Error("other addresses are refused during the lockouts")
	}
	if !strings.Contains(s.Output(), "locked out") || !strings.Contains(s.Output(), remote) {
		t.Error("the lockouts are not in the server log with the client's address")
	}
	if strings.Contains(s.Output(), "guess-") || strings.Contains(s.Output(), "ndes-admin-pass") {
		t.Error("a password appears in the server log")
	}
}
