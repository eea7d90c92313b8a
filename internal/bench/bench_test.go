package bench_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/bench"
	"github.com/scepter/scepter/internal/est/estserver"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/scep/scepserver"
	"github.com/scepter/scepter/internal/server"
)

// scepServer is an in-process SCEP server on 127.0.0.1 with the fixture's
// CA, store and service, its clock pinned at fixture.Start.
type scepServer struct {
	pki     *fixture.PKI
	handler http.Handler
	url     string
}

func newSCEPServer(t *testing.T) *scepServer {
	t.Helper()
	return newSCEPServerWith(t, fixture.Options{})
}

// newSCEPServerWith is newSCEPServer with the fixture made with fo.
func newSCEPServerWith(t *testing.T, fo fixture.Options) *scepServer {
	t.Helper()
	p := fixture.New(t, fo)
	h, err := scepserver.New(p.Service, p.Clock, p.Log, scepserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for pattern, handler := range h.Routes() {
		mux.Handle(pattern, handler)
	}
	s := &scepServer{pki: p, handler: mux}
	s.url = s.listen(t, mux) + "/scep"
	return s
}

// listen serves handler on another 127.0.0.1 port and returns its base URL.
func (s *scepServer) listen(t *testing.T, handler http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return srv.URL
}

// issuerID is the hex SHA-256 of the active issuing CA certificate.
func (s *scepServer) issuerID() string {
	sum := sha256.Sum256(s.pki.Issuer().Cert.Raw)
	return hex.EncodeToString(sum[:])
}

func (s *scepServer) options(urls ...string) bench.Options {
	return bench.Options{URLs: urls, Challenge: fixture.Challenge, KeyType: "rsa2048", Now: s.pki.Clock.Now, Timeout: 20 * time.Second}
}

func run(t *testing.T, o bench.Options) *bench.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := bench.Run(ctx, o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

func TestRunSCEP(t *testing.T) {
	s := newSCEPServer(t)
	serialsPath := filepath.Join(t.TempDir(), "serials.txt")
	f, err := os.Create(serialsPath)
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	o := s.options(s.url)
	o.Count, o.Concurrency, o.SerialsOut, o.Progress, o.KeepIssued = 50, 4, f, &progress, true
	o.ServerPIDs = []int{os.Getpid()} // the server runs in this process
	res := run(t, o)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if res.OK != 50 || res.Failed != 0 || res.Attempted != 50 || res.Duplicates != 0 || res.BadCerts != 0 {
		t.Fatalf("ok %d failed %d attempted %d dup %d bad %d, want 50/0/50/0/0: %v %v", res.OK, res.Failed, res.Attempted, res.Duplicates, res.BadCerts, res.Failures, res.FirstErrors)
	}
	if err := res.ExitError(false); err != nil {
		t.Errorf("ExitError = %v, want nil", err)
	}
	l := res.Latency
	if !(l.P50 > 0 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max && l.Mean > 0 && l.Mean <= l.Max) {
		t.Errorf("latency not sane: %+v", l)
	}
	// Each enrollment's wait for the server is part of its latency, so
	// every order statistic is too.
	rt := res.RoundTrip
	if !(rt.P50 > 0 && rt.P50 <= rt.P90 && rt.P90 <= rt.P99 && rt.P99 <= rt.Max &&
		rt.P50 <= l.P50 && rt.P90 <= l.P90 && rt.P99 <= l.P99 && rt.Max <= l.Max && rt.Mean <= l.Mean) {
		t.Errorf("round trip not sane: %+v against latency %+v", rt, l)
	}
	if res.Rate <= 0 || res.ElapsedSeconds <= 0 || res.PoolKeys != 50 || res.PoolCSRs != 50 || res.Concurrency != 4 || res.Protocol != "scep" {
		t.Errorf("result not sane: %+v", res)
	}
	if res.Server == nil || len(res.Server.PerPID) != 1 || res.Server.PerPID[0].Error != "" || res.Server.PeakRSSKB == nil || *res.Server.PeakRSSKB <= 0 || res.Server.CPUSeconds == nil || *res.Server.CPUSeconds < 0 || res.Server.CPUMsPerEnroll == nil {
		t.Errorf("server usage not sane: %+v", res.Server)
	}
	for _, want := range []string{"building the pool: 50 rsa2048 keys, 50 CSRs", "signing and encrypting 50 requests", "checking 50 replies (after the clock)"} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, progress.String())
		}
	}
	// With a count, requests are built before the clock and replies
	// checked after it: the load tool does little while it runs.
	if !res.Prepared {
		t.Error("Prepared = false, want true with a count")
	}
	if lt := res.LoadTool; lt == nil || lt.CPUSeconds < 0 || lt.Cores < 0 || lt.CPUMsPerEnroll == nil || *lt.CPUMsPerEnroll < 0 {
		t.Errorf("load tool usage not sane: %+v", lt)
	}

	// The serials file: one line per certificate, "SERIAL ISSUER-ID URL",
	// serials unique, matching the certificates received.
	b, err := os.ReadFile(serialsPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 50 {
		t.Fatalf("serials file has %d lines, want 50:\n%s", len(lines), b)
	}
	issued := map[string]bool{}
	subjects := map[string]bool{}
	for _, is := range res.Issued {
		issued[is.Serial] = true
		subjects[is.Cert.Subject.CommonName] = true
	}
	seen := map[string]bool{}
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) != 3 || f[1] != s.issuerID() || f[2] != s.url {
			t.Fatalf("serials line %q: want SERIAL %s %s", line, s.issuerID(), s.url)
		}
		if seen[f[0]] || !issued[f[0]] {
			t.Errorf("serial %s repeated or not among the certificates received", f[0])
		}
		seen[f[0]] = true
	}
	if len(subjects) != 50 {
		t.Errorf("%d distinct subjects among 50 certificates, want 50", len(subjects))
	}
}

// Fewer RSA keys than enrollments: keys are reused, each enrollment with a
// CSR (and subject) of its own; the reply is encrypted to the RSA key.
func TestRunSCEPReusedRSAKeys(t *testing.T) {
	s := newSCEPServer(t)
	o := s.options(s.url)
	o.KeyType, o.Count, o.Pool, o.Concurrency, o.KeepIssued = "rsa2048", 6, 2, 2, true
	res := run(t, o)
	if res.OK != 6 || res.Failed != 0 || res.PoolKeys != 2 || res.PoolCSRs != 6 {
		t.Fatalf("ok %d failed %d keys %d csrs %d, want 6/0/2/6: %v", res.OK, res.Failed, res.PoolKeys, res.PoolCSRs, res.FirstErrors)
	}
	subjects, keys := map[string]bool{}, map[string]bool{}
	for _, is := range res.Issued {
		subjects[is.Cert.Subject.CommonName] = true
		keys[string(is.Cert.RawSubjectPublicKeyInfo)] = true
	}
	if len(subjects) != 6 || len(keys) != 2 {
		t.Errorf("%d subjects and %d keys, want 6 and 2", len(subjects), len(keys))
	}
}

// An EC key receives its certificate in a password-based envelope, both
// with replies opened after the clock and on it, by workers that share the
// challenge's KEKs (go test -race).
func TestRunSCEPEC(t *testing.T) {
	s := newSCEPServer(t)
	for _, onClock := range []bool{false, true} {
		o := s.options(s.url)
		o.KeyType, o.Count, o.Concurrency, o.OnClock = "p256", 6, 3, onClock
		res := run(t, o)
		if res.OK != 6 || res.Failed != 0 {
			t.Fatalf("on the clock %v: ok %d failed %d: %v", onClock, res.OK, res.Failed, res.FirstErrors)
		}
	}
}

func TestRunWrongChallenge(t *testing.T) {
	s := newSCEPServer(t)
	o := s.options(s.url)
	o.Challenge, o.Count, o.Concurrency, o.Pool = "not-the-challenge", 4, 2, 2
	res := run(t, o)
	if res.OK != 0 || res.Failed != 4 {
		t.Fatalf("ok %d failed %d, want 0/4: %v", res.OK, res.Failed, res.Failures)
	}
	if len(res.Failures) != 1 || res.Failures["failInfo:badRequest"] != 4 {
		t.Errorf("failures %v, want failInfo:badRequest 4", res.Failures)
	}
	if len(res.FirstErrors) == 0 || !strings.Contains(res.FirstErrors[0], "badRequest") {
		t.Errorf("first errors %q do not name the failInfo", res.FirstErrors)
	}
	if res.ExitError(false) == nil || res.ExitError(true) == nil {
		t.Error("ExitError is nil for a run where nothing succeeded")
	}
}

func TestRunRoundRobin(t *testing.T) {
	s := newSCEPServer(t)
	var perNode [2]atomic.Int64
	count := func(i int, h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("operation") == "PKIOperation" {
				perNode[i].Add(1)
			}
			h.ServeHTTP(w, r)
		})
	}
	a := s.listen(t, count(0, s.handler)) + "/scep"
	b := s.listen(t, count(1, s.handler)) + "/scep"
	var serials bytes.Buffer
	o := s.options(a, b)
	o.Count, o.Concurrency, o.SerialsOut, o.Pool = 20, 3, &serials, 5
	res := run(t, o)
	if res.OK != 20 || res.Failed != 0 || len(res.PerURL) != 2 {
		t.Fatalf("ok %d failed %d per URL %+v: %v", res.OK, res.Failed, res.PerURL, res.FirstErrors)
	}
	for i, u := range []string{a, b} {
		if res.PerURL[i].URL != u || res.PerURL[i].OK != 10 || perNode[i].Load() != 10 {
			t.Errorf("URL %d: %+v, node saw %d PKIOperations; want %s with 10", i, res.PerURL[i], perNode[i].Load(), u)
		}
	}
	byURL := map[string]int{}
	sc := bufio.NewScanner(&serials)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		byURL[f[len(f)-1]]++
	}
	if byURL[a] != 10 || byURL[b] != 10 {
		t.Errorf("serials by URL %v, want 10 each", byURL)
	}
}

// A node that dies mid-request (the connection closes with no answer) and
// one that hangs: both count as failed, never as ok, and the run ends.
func TestRunDeadAndHungNodes(t *testing.T) {
	s := newSCEPServer(t)
	breaking := func(hang bool) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("operation") != "PKIOperation" {
				s.handler.ServeHTTP(w, r)
				return
			}
			if hang {
				// The server notices the client has gone (and cancels the
				// context) only once the body has been read.
				io.Copy(io.Discard, r.Body)
				select {
				case <-r.Context().Done():
				case <-time.After(time.Minute):
				}
				return
			}
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				if tc, ok := conn.(*net.TCPConn); ok {
					tc.SetLinger(0) // a reset, as from a killed process
				}
				conn.Close()
			}
		})
	}
	dead := s.listen(t, breaking(false)) + "/scep"
	hung := s.listen(t, breaking(true)) + "/scep"
	o := s.options(s.url, dead, hung)
	o.Count, o.Concurrency, o.Timeout, o.Pool = 9, 3, 3*time.Second, 3
	start := time.Now()
	res := run(t, o)
	if time.Since(start) > 30*time.Second {
		t.Errorf("the run took %v", time.Since(start))
	}
	if res.OK != 3 || res.Failed != 6 || res.BadCerts != 0 {
		t.Fatalf("ok %d failed %d bad %d, want 3/6/0: %v %v", res.OK, res.Failed, res.BadCerts, res.Failures, res.FirstErrors)
	}
	if res.Failures["timeout"] != 3 {
		t.Errorf("failures %v: want timeout 3", res.Failures)
	}
	if n := res.Failures["connection reset"] + res.Failures["connection closed"]; n != 3 {
		t.Errorf("failures %v: want 3 connection resets or closes", res.Failures)
	}
	if res.ExitError(true) != nil || res.ExitError(false) == nil {
		t.Errorf("ExitError(allow) = %v, ExitError(strict) = %v", res.ExitError(true), res.ExitError(false))
	}
}

// OnClock: every request is built, and every reply checked, on the clock,
// each reply before the worker's next request.
func TestRunSCEPOnClock(t *testing.T) {
	s := newSCEPServer(t)
	o := s.options(s.url)
	o.Count, o.Concurrency, o.OnClock, o.KeepIssued = 12, 3, true, true
	res := run(t, o)
	if res.OK != 12 || res.Failed != 0 || res.Duplicates != 0 || res.Prepared || len(res.Issued) != 12 {
		t.Fatalf("ok %d failed %d dup %d prepared %v issued %d, want 12/0/0/false/12: %v",
			res.OK, res.Failed, res.Duplicates, res.Prepared, len(res.Issued), res.FirstErrors)
	}
}

func TestRunDuration(t *testing.T) {
	s := newSCEPServer(t)
	o := s.options(s.url)
	o.Duration, o.Pool, o.Concurrency = 300*time.Millisecond, 5, 2
	res := run(t, o)
	if res.OK == 0 || res.Failed != 0 || res.ElapsedSeconds > 20 {
		t.Fatalf("ok %d failed %d in %.1fs: %v", res.OK, res.Failed, res.ElapsedSeconds, res.FirstErrors)
	}
	if res.Prepared {
		t.Error("Prepared with no count: a run of unknown length cannot build its requests ahead")
	}
}

func TestRunEST(t *testing.T) {
	var conns atomic.Int64
	_, o := newESTServer(t, func(srv *httptest.Server) {
		srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				conns.Add(1)
			}
		}
	})
	srvURL := o.URLs[0]
	o.Count, o.Concurrency = 20, 2
	res := run(t, o)
	if res.OK != 20 || res.Failed != 0 || res.Duplicates != 0 {
		t.Fatalf("ok %d failed %d dup %d: %v", res.OK, res.Failed, res.Duplicates, res.FirstErrors)
	}
	if rt, l := res.RoundTrip, res.Latency; !(rt.P50 > 0 && rt.P99 <= l.P99 && rt.Mean <= l.Mean) {
		t.Errorf("round trip not sane: %+v against latency %+v", rt, l)
	}
	if want := srvURL + "/.well-known/est/simpleenroll"; res.URLs[0] != want {
		t.Errorf("URL %q, want %q", res.URLs[0], want)
	}
	// Two connections to bootstrap trust and fetch /cacerts, then one kept
	// alive per worker.
	if n := conns.Load(); n > 4 {
		t.Errorf("%d TLS connections for 20 enrollments by 2 workers: connections are not kept alive", n)
	}

	// A wrong password: 401 for each.
	o.Challenge, o.Count = "wrong-password", 3
	res = run(t, o)
	if res.OK != 0 || res.Failures["http:401"] != 3 {
		t.Errorf("wrong password: ok %d failures %v, want http:401 3", res.OK, res.Failures)
	}
}

func TestRunSetupErrors(t *testing.T) {
	s := newSCEPServer(t)
	for name, o := range map[string]bench.Options{
		"no url":            {Challenge: "x"},
		"no challenge":      {URLs: []string{s.url}},
		"bad protocol":      {URLs: []string{s.url}, Challenge: "x", Protocol: "acme"},
		"bad key type":      {URLs: []string{s.url}, Challenge: "x", KeyType: "dsa"},
		"wrong fingerprint": {URLs: []string{s.url}, Challenge: "x", CAFingerprint: "sha256:" + strings.Repeat("00", 32)},
		"est over http":     {URLs: []string{s.url}, Challenge: "x", Protocol: "est"},
	} {
		o.Now = s.pki.Clock.Now
		if _, err := bench.Run(context.Background(), o); err == nil {
			t.Errorf("%s: Run succeeded", name)
		}
	}
}

// ServerProfile: as the clock starts, a CPU profile of the run's duration
// (whole seconds, rounded up) is asked from the server's profiling
// endpoints, and the run ends only once it has been written; a profile that
// fails makes the run's error, after the run. An address that serves no
// profiling endpoints is refused before the run.
func TestRunServerProfile(t *testing.T) {
	s := newSCEPServer(t)
	var asked atomic.Value
	prof := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/debug/pprof/" || r.URL.Path == "/broken/debug/pprof/":
			io.WriteString(w, "the index") // asked before the run
		case r.URL.Path == "/broken/debug/pprof/profile":
			asked.Store(r.URL.String())
			http.Error(w, "could not enable CPU profiling: already in use", http.StatusInternalServerError)
		case r.URL.Path == "/debug/pprof/profile":
			asked.Store(r.URL.String())
			io.WriteString(w, "a profile")
		case strings.HasPrefix(r.URL.Path, "/moved/"):
			http.Redirect(w, r, strings.TrimPrefix(r.URL.Path, "/moved"), http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(prof.Close)

	var out bytes.Buffer
	o := s.options(s.url)
	o.Duration, o.Pool, o.Concurrency = 300*time.Millisecond, 5, 2
	o.ServerProfile, o.ServerProfileOut = prof.URL+"/debug/pprof/", &out
	res := run(t, o)
	if res.OK == 0 || out.String() != "a profile" || asked.Load() != "/debug/pprof/profile?seconds=1" {
		t.Fatalf("ok %d, profile %q, asked %v", res.OK, out.String(), asked.Load())
	}
	// The run of 300 ms ended before the profile's second: said (r113 D2).
	if res.ServerProfileSeconds != 1 || !strings.Contains(res.ProfileOutlasted(), "before the server profile's 1s") {
		t.Errorf("profile window %v, ProfileOutlasted %q", res.ServerProfileSeconds, res.ProfileOutlasted())
	}

	o.ServerProfile = prof.URL + "/broken"
	res, err := bench.Run(context.Background(), o)
	if res == nil || res.OK == 0 || err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("a failed profile: result %v, error %v", res != nil, err)
	}

	// Not profiling endpoints: refused before the run. A redirect is not
	// followed, as the enrollments' are not.
	for _, base := range []string{s.url, prof.URL + "/nothing-here", "127.0.0.1:6060", prof.URL + "/moved"} {
		o.ServerProfile = base
		if res, err := bench.Run(context.Background(), o); res != nil || err == nil {
			t.Errorf("profiling endpoints at %s: result %v, error %v; want no run", base, res != nil, err)
		}
	}

	o.ServerProfile = prof.URL
	o.Duration, o.Count = 0, 3
	if _, err := bench.Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "duration") {
		t.Errorf("a profile without a duration: %v", err)
	}
}

// A profiling endpoint that answers its index but never the profile holds
// the run no longer than --timeout past the profile's window, not 30 s
// whatever --timeout says, and the error says what timed out, not only
// "context deadline exceeded" (r124 observation 2).
func TestRunServerProfileStalled(t *testing.T) {
	s := newSCEPServer(t)
	prof := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/debug/pprof/" {
			io.WriteString(w, "the index")
			return
		}
		<-r.Context().Done() // the profile never comes
	}))
	t.Cleanup(prof.Close)
	o := s.options(s.url)
	o.Duration, o.Pool, o.Concurrency, o.Timeout = 300*time.Millisecond, 5, 2, 2*time.Second
	o.ServerProfile, o.ServerProfileOut = prof.URL, io.Discard
	start := time.Now()
	res, err := bench.Run(context.Background(), o)
	took := time.Since(start)
	if res == nil {
		t.Fatalf("the run: no result, error %v", err)
	}
	want := prof.URL + "/debug/pprof/profile?seconds=1: no profile within --timeout 2s after its 1s window"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Run: %v, want an error saying %q", err, want)
	}
	// The window (1 s) and --timeout (2 s), with room for a slow machine.
	if took > 15*time.Second {
		t.Errorf("the run took %v: held past --timeout by the stalled profile", took)
	}
}

// A server that stops answering must not hold a run bounded by --duration
// for the whole per-enrollment --timeout: the enrollments in flight when
// the duration ends get a short drain, then count as unfinished.
func TestRunDurationHungServer(t *testing.T) {
	s := newSCEPServer(t)
	hung := s.listen(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("operation") != "PKIOperation" {
			s.handler.ServeHTTP(w, r)
			return
		}
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(time.Minute):
		}
	})) + "/scep"
	o := s.options(hung)
	o.Duration, o.Concurrency, o.Pool, o.Timeout = 200*time.Millisecond, 2, 2, 40*time.Second
	// Not DrainTime's 5 s: the hung requests are cut off all the same.
	o.Drain = 300 * time.Millisecond
	start := time.Now()
	res := run(t, o)
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("the run took %v with --duration %v", took, o.Duration)
	}
	if res.OK != 0 || res.Failed != 2 || res.Failures["unfinished"] != 2 {
		t.Errorf("ok %d failed %d %v, want 2 unfinished", res.OK, res.Failed, res.Failures)
	}
	if res.ExitError(true) == nil {
		t.Error("a run in which nothing succeeded exits 0")
	}
}

// A server PID whose CPU time cannot be read is refused before the run: it
// would measure nothing.
func TestRunRefusesAnUnreadableServerPID(t *testing.T) {
	_, err := bench.Run(context.Background(), bench.Options{URLs: []string{"http://127.0.0.1:1/scep"}, Challenge: "c", ServerPIDs: []int{1 << 30}})
	if err == nil || !strings.Contains(err.Error(), "server PID 1073741824") {
		t.Fatalf("Run: %v, want the PID refused", err)
	}
}

// newESTServer is an in-process EST server over TLS on 127.0.0.1 with the
// fixture's CA, its clock pinned; the options trust its root by
// fingerprint. configure, when not nil, sees the server before it starts.
func newESTServer(t *testing.T, configure func(*httptest.Server)) (*fixture.PKI, bench.Options) {
	t.Helper()
	return newESTServerWith(t, fixture.Options{}, configure)
}

// newESTServerWith is newESTServer with the fixture made with fo.
func newESTServerWith(t *testing.T, fo fixture.Options, configure func(*httptest.Server)) (*fixture.PKI, bench.Options) {
	t.Helper()
	p := fixture.New(t, fo)
	mux, err := server.TLSMux(server.Handlers{EST: estserver.New(p.Service, p.Log, estserver.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := server.ManagedCertificate(context.Background(), filepath.Join(p.Dir, "tls"), []string{"127.0.0.1"}, p.Service, "", p.Clock, p.Log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = server.TLSConfig(cert.GetCertificate, 0, 0)
	pair, _ := cert.GetCertificate(nil)
	srv.TLS.Certificates, srv.TLS.GetCertificate = []tls.Certificate{*pair}, nil
	if configure != nil {
		configure(srv)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	sum := sha256.Sum256(p.Authority.Root.Raw)
	return p, bench.Options{Protocol: "est", URLs: []string{srv.URL}, Challenge: fixture.Challenge, KeyType: "p256",
		CAFingerprint: "sha256:" + hex.EncodeToString(sum[:]), Now: p.Clock.Now, Timeout: 20 * time.Second}
}

// After too many wrong challenges or passwords the server locks the
// address out: later refusals, even with the right challenge, are counted
// as a lockout, over SCEP (a badRequest) and EST (a 429) alike, and not as
// the status they came with: an EST 429 read as the per-address rate limit
// sent the reader to --rate-limit 0, which changes nothing (r70 D1).
func TestRunLockedOut(t *testing.T) {
	s := newSCEPServer(t)
	_, est := newESTServer(t, nil)
	for name, o := range map[string]bench.Options{"scep": s.options(s.url), "est": est} {
		t.Run(name, func(t *testing.T) {
			o.KeyType, o.Pool, o.Concurrency = "p256", 2, 1
			right := o.Challenge
			// The fixture's limit: 10 wrong ones lock the address out.
			o.Challenge, o.Count = "not-the-challenge", 10
			res := run(t, o)
			if res.OK != 0 || res.Failures[bench.ReasonLockedOut] != 0 {
				t.Fatalf("wrong challenge: ok %d failures %v, want refusals before any lockout", res.OK, res.Failures)
			}
			o.Challenge, o.Count = right, 2
			res = run(t, o)
			if res.OK != 0 || res.Failed != 2 || res.Failures[bench.ReasonLockedOut] != 2 {
				t.Fatalf("right challenge after the lockout: ok %d failures %v, want %q 2: %v", res.OK, res.Failures, bench.ReasonLockedOut, res.FirstErrors)
			}
			if len(res.FirstErrors) != 1 || !strings.Contains(res.FirstErrors[0], "try again after") {
				t.Errorf("first errors %q do not give the lockout's end", res.FirstErrors)
			}
		})
	}
}

// A SCEP URL that fails at connect is named as requested, with the profile
// appended: a profile named in the URL too shows doubled (r70 D6). Its 404
// to GetCACaps is taken as no capabilities (RFC 8894 §3.5.1), so the
// 404 that stops it is GetCACert's.
func TestRunNamesTheSCEPURLRequested(t *testing.T) {
	s := newSCEPServer(t)
	o := s.options(s.url + "/default")
	o.Profile = "default"
	_, err := bench.Run(context.Background(), o)
	want := s.url + `/default/default (profile "default" appended to ` + s.url + "/default): GetCACert: HTTP 404"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Run: %v, want an error naming %q", err, want)
	}
	if err := bench.CheckSCEPURL("127.0.0.1:8080/scep", ""); err == nil {
		t.Error("CheckSCEPURL accepts a URL without a scheme")
	}
	if err := bench.CheckSCEPURL(s.url, "default"); err != nil {
		t.Errorf("CheckSCEPURL(%s): %v", s.url, err)
	}
}

// So is an EST one, with the profile appended where the URL names no
// label (r113 D4: the bare --url); a URL naming the label already is named
// as given.
func TestRunNamesTheESTURLRequested(t *testing.T) {
	_, o := newESTServer(t, nil)
	base := o.URLs[0]
	for _, tc := range []struct {
		url, profile, want string
	}{
		{base, "nosuch", base + `/.well-known/est/nosuch (profile "nosuch" appended to ` + base + "): cacerts: HTTP 404"},
		{base + "/", "nosuch", base + `/.well-known/est/nosuch (profile "nosuch" appended to ` + base + "/): cacerts: HTTP 404"},
		{base + "/.well-known/est", "nosuch", base + `/.well-known/est/nosuch (profile "nosuch" appended to ` + base + "/.well-known/est): cacerts: HTTP 404"},
		{base + "/nosuch", "nosuch", base + "/nosuch: cacerts: HTTP 404"},
		{base + "/nosuch", "", base + "/nosuch: cacerts: HTTP 404"},
	} {
		o.URLs, o.Profile, o.Count = []string{tc.url}, tc.profile, 1
		_, err := bench.Run(context.Background(), o)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s, profile %q: %v, want an error starting %q", tc.url, tc.profile, err, tc.want)
		}
	}
}

// A port no connection can be made to is refused by the URL check, as a
// malformed URL, for SCEP and EST alike; one in range, or none, is not
// (r72 D6: port 99999 failed at dial, port 0 with "connection refused").
func TestCheckURLPort(t *testing.T) {
	for _, tc := range []struct {
		scep, est string
		want      string // "" for accepted
	}{
		{"http://127.0.0.1:0/scep", "https://127.0.0.1:0", "port 0: want a port from 1 to 65535"},
		{"http://127.0.0.1:65536/scep", "https://127.0.0.1:65536/.well-known/est", "port 65536: want a port from 1 to 65535"},
		{"http://127.0.0.1:99999/scep", "https://127.0.0.1:99999/label", "port 99999: want a port from 1 to 65535"},
		{"http://127.0.0.1:1/scep", "https://127.0.0.1:1", ""},
		{"https://127.0.0.1:65535/scep", "https://127.0.0.1:65535", ""},
		{"http://localhost/scep", "https://localhost", ""},
		{"http://[::1]:8080/scep", "https://[::1]:8443", ""},
	} {
		for _, c := range []struct {
			raw   string
			check func(string, string) error
		}{{tc.scep, bench.CheckSCEPURL}, {tc.est, bench.CheckESTURL}} {
			err := c.check(c.raw, "")
			if tc.want == "" && err != nil {
				t.Errorf("%s: %v, want it accepted", c.raw, err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("%s: %v, want %q", c.raw, err, tc.want)
			}
		}
	}
}

// A server that stops answering during a run bounded by --duration: the
// drain in which the enrollments then in flight get no reply is not in the
// rate's time, which ends at the last reply or at the duration (r70: 388
// ok "in 9.00s" for a server that answered 97/s for 4 s).
func TestRunDrainNotInTheRate(t *testing.T) {
	s := newSCEPServer(t)
	const answered = 1
	var enrollments atomic.Int64
	freezes := s.listen(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("operation") != "PKIOperation" || enrollments.Add(1) <= answered {
			s.handler.ServeHTTP(w, r)
			return
		}
		io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	})) + "/scep"
	o := s.options(freezes)
	// Two workers from the start: one enrollment hangs whatever the
	// machine's speed (with one worker, a first enrollment slower than
	// the duration under the race detector on a loaded machine left none
	// to hang, CI101); the other is answered, then its next one hangs.
	o.KeyType, o.Duration, o.Concurrency, o.Pool = "p256", 3*time.Second, 2, 2
	o.Drain = 3 * time.Second
	start := time.Now()
	res := run(t, o)
	took := time.Since(start)
	if res.OK != answered || res.Failures["unfinished"] < 1 {
		t.Fatalf("ok %d failures %v, want %d ok and the rest unfinished", res.OK, res.Failures, answered)
	}
	// The run itself waited the drain out: that is the time to leave out.
	if took < o.Drain {
		t.Fatalf("the run took %v, less than its drain %v", took, o.Drain)
	}
	// The hung enrollment started before the duration ended, after the
	// last reply: so the clock stops at the duration.
	if res.ElapsedSeconds != o.Duration.Seconds() {
		t.Errorf("clock %.3fs for a run of %v with a drain of %v, want the duration, %v", res.ElapsedSeconds, took, o.Drain, o.Duration)
	}
	if want := float64(res.OK) / res.ElapsedSeconds; res.Rate != want {
		t.Errorf("rate %v, want %v", res.Rate, want)
	}
}

// An EST run bounded by time alone sends each CSR once: beyond the pool's
// CSRs each enrollment signs one of its own, since the server answers a
// CSR sent again (the same key and names, the same EST user or static
// challenge) with the certificate it issued for it, which the run would
// count as a duplicate serial.
func TestRunESTDurationBeyondThePool(t *testing.T) {
	_, o := newESTServer(t, nil)
	o.Duration, o.Pool, o.Concurrency = time.Second, 1, 2 // 10 CSRs
	res := run(t, o)
	if res.OK <= 10 {
		t.Fatalf("ok %d failed %d: the run did not get past the pool's 10 CSRs: %v", res.OK, res.Failed, res.FirstErrors)
	}
	if res.Failed != 0 || res.Duplicates != 0 {
		t.Fatalf("ok %d failed %d dup %d: %v %v", res.OK, res.Failed, res.Duplicates, res.Failures, res.FirstErrors)
	}
}

// cancelOn is a progress writer that cancels the run when a line says
// what it waits for.
type cancelOn struct {
	says   string
	cancel context.CancelFunc
}

func (c cancelOn) Write(p []byte) (int, error) {
	if strings.Contains(string(p), c.says) {
		c.cancel()
	}
	return len(p), nil
}

// ^C before the clock starts says what it interrupted and how far that
// got, not only "context canceled" (r84 D3).
func TestRunInterruptedBeforeTheClock(t *testing.T) {
	s := newSCEPServer(t)
	for _, tc := range []struct {
		at   string // the progress line that interrupts
		want string
	}{
		{"building the pool", `^interrupted while building the pool: \d+ of 20 p256 keys made$`},
		{"signing and encrypting", `^interrupted while signing and encrypting the requests: \d+ of 20 built$`},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		o := s.options(s.url)
		o.KeyType, o.Count, o.Progress = "p256", 20, cancelOn{tc.at, cancel}
		res, err := bench.Run(ctx, o)
		cancel()
		if res != nil || err == nil || !regexp.MustCompile(tc.want).MatchString(err.Error()) || !errors.Is(err, context.Canceled) {
			t.Errorf("interrupted at %q: %v, %v; want %s, wrapping context.Canceled", tc.at, res, err, tc.want)
		}
	}
}

// A server that accepts connections and never answers holds the setup for
// --timeout, or for --duration when that is shorter (r124: a run of
// --duration 3s waited the whole --timeout of 30 s at GetCACaps): the
// error names the step and says what bounded it (r113: a bare "context
// deadline exceeded").
func TestRunSetupTimeoutNamesTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		var held []net.Conn // accepted, never answered
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	silent := ln.Addr().String()
	for _, tc := range []struct {
		protocol, url, step string
	}{
		{"scep", "http://" + silent + "/scep", "operation=GetCACaps"},
		{"est", "https://" + silent, "TLS handshake"},
	} {
		for _, b := range []struct {
			name              string
			count             int
			duration, timeout time.Duration
			want              string
		}{
			{"count alone", 1, 0, 300 * time.Millisecond, "no answer within --timeout 300ms"},
			{"duration shorter", 0, 300 * time.Millisecond, 40 * time.Second, "no answer within --duration 300ms"},
			{"duration beside a count", 5, 300 * time.Millisecond, 40 * time.Second, "no answer within --duration 300ms"},
			{"timeout shorter", 0, 40 * time.Second, 300 * time.Millisecond, "no answer within --timeout 300ms"},
		} {
			o := bench.Options{Protocol: tc.protocol, URLs: []string{tc.url}, Challenge: "c", KeyType: "p256", Count: b.count, Duration: b.duration,
				CAFingerprint: "sha256:" + strings.Repeat("00", 32), Timeout: b.timeout, Now: time.Now}
			start := time.Now()
			_, err := bench.Run(context.Background(), o)
			// Far below the 40 s neither bound may be held to, with room
			// for a slow machine.
			if took := time.Since(start); took > 20*time.Second {
				t.Errorf("%s, %s: the setup held the run %v", tc.protocol, b.name, took)
			}
			if err == nil || !strings.Contains(err.Error(), tc.step) || !strings.Contains(err.Error(), b.want) {
				t.Errorf("%s, %s: %v, want the step %q and %q", tc.protocol, b.name, err, tc.step, b.want)
			}
		}
	}
}
