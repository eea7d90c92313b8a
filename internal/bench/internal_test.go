package bench

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/scep"
)

func TestParseStat(t *testing.T) {
	line := "4242 (scep ter) (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 12345 1000 50 18446744073709551615\n"
	d, err := parseStat([]byte(line))
	if err != nil || d != 3250*time.Millisecond {
		t.Errorf("parseStat = %v, %v; want 3.25s", d, err)
	}
	if _, err := parseStat([]byte("4242 (x) S 1 2")); err == nil {
		t.Error("a short line parsed")
	}
	if _, err := procCPU(os.Getpid()); err != nil {
		t.Errorf("our own /proc stat: %v", err)
	}
}

func TestParseHWM(t *testing.T) {
	kb, err := parseHWM(strings.NewReader("Name:\tscepter\nVmPeak:\t 999 kB\nVmHWM:\t   81234 kB\nVmRSS:\t 1 kB\n"))
	if err != nil || kb != 81234 {
		t.Errorf("parseHWM = %d, %v", kb, err)
	}
	if _, err := parseHWM(strings.NewReader("Name: x\n")); err == nil {
		t.Error("no VmHWM parsed")
	}
}

// A PID that cannot be read leaves the servers' figures unknown (nil, null
// in JSON), never 0, which would read as a server that used no CPU; so
// does a run without a successful enrollment for the figure per
// enrollment.
func TestServerUsageMissingPID(t *testing.T) {
	for _, tt := range []struct {
		name                string
		pids                []int
		ok                  int
		cpu, perEnroll, rss bool // known
	}{
		{"readable", []int{os.Getpid()}, 10, true, true, true},
		{"no enrollment", []int{os.Getpid()}, 0, true, false, true},
		{"one unreadable", []int{os.Getpid(), 1 << 30}, 10, false, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := readCPU(tt.pids)
			after := readCPU(tt.pids)
			u := serverUsage(tt.pids, before, after, tt.ok)
			if len(u.PerPID) != len(tt.pids) || u.PerPID[0].Error != "" || len(tt.pids) > 1 && u.PerPID[1].Error == "" {
				t.Errorf("per PID %+v", u.PerPID)
			}
			if (u.CPUSeconds != nil) != tt.cpu || (u.CPUMsPerEnroll != nil) != tt.perEnroll || (u.PeakRSSKB != nil) != tt.rss {
				t.Errorf("known: cpu %v, per enrollment %v, rss %v; want %v, %v, %v",
					u.CPUSeconds != nil, u.CPUMsPerEnroll != nil, u.PeakRSSKB != nil, tt.cpu, tt.perEnroll, tt.rss)
			}
			if u.PeakRSSKB != nil && *u.PeakRSSKB <= 0 {
				t.Errorf("peak RSS %d", *u.PeakRSSKB)
			}
			b, err := json.Marshal(u)
			if err != nil {
				t.Fatal(err)
			}
			if want := `"cpu_ms_per_enrollment":null`; !tt.perEnroll && !strings.Contains(string(b), want) {
				t.Errorf("JSON %s lacks %s", b, want)
			}
			// The unreadable PID's own figures are unknown too (r57).
			if want := `"cpu_seconds":null,"peak_rss_kb":null,"error"`; len(tt.pids) > 1 && !strings.Contains(string(b), want) {
				t.Errorf("JSON %s lacks %s", b, want)
			}
			if p := u.PerPID[0]; p.CPUSeconds == nil || p.PeakRSSKB == nil || *p.PeakRSSKB <= 0 {
				t.Errorf("the readable PID's figures: %+v", p)
			}
		})
	}
	if err := CheckServerPID(1 << 30); err == nil {
		t.Error("CheckServerPID accepts a PID that does not exist")
	}
	if err := CheckServerPID(os.Getpid()); err != nil {
		t.Errorf("CheckServerPID(our own): %v", err)
	}
}

func TestSummarise(t *testing.T) {
	var l []time.Duration
	for i := 100; i >= 1; i-- {
		l = append(l, time.Duration(i)*time.Millisecond)
	}
	s := summarise(l)
	if s.P50 != 50 || s.P90 != 90 || s.P99 != 99 || s.Max != 100 || s.Mean != 50.5 {
		t.Errorf("summarise = %+v", s)
	}
	if summarise(nil) != nil {
		t.Error("empty summary not zero")
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&client.FailureError{FailInfo: scep.BadRequest}, "failInfo:badRequest"},
		{&statusError{status: 503, err: errors.New("busy")}, "http:503"},
		// The rate limit's 429 and the lockout's, in the server's words
		// (internal/server limits.go, internal/enroll steps.go).
		{&statusError{status: 429, err: errors.New("HTTP 429 too many requests from this address")}, "http:429"},
		{&statusError{status: 429, err: errors.New("HTTP 429 too many failed attempts from this address; try again after 2026-12-06T20:17:38Z")}, ReasonLockedOut},
		{&client.FailureError{FailInfo: scep.BadRequest, Text: "too many failed attempts from this address; try again after 2026-12-06T20:17:38Z"}, ReasonLockedOut},
		// EST's pending answer (RFC 7030 §4.2.3), as SCEP's PENDING.
		{&statusError{status: 202, err: errors.New("HTTP 202")}, "pending"},
		{&verifyError{kind: "chain", err: errors.New("x")}, "verify:chain"},
		{fmt.Errorf("post: %w", context.DeadlineExceeded), "timeout"},
		{&unfinishedError{fmt.Errorf("post: %w", context.DeadlineExceeded)}, "unfinished"},
		{fmt.Errorf("post: %w", syscall.ECONNRESET), "connection reset"},
		{fmt.Errorf("post: %w", syscall.ECONNREFUSED), "connection refused"},
		{fmt.Errorf("post: %w", io.EOF), "connection closed"},
		{errors.New("CertRep signature: bad"), "verify:reply"},
		{errors.New("something else"), "error"},
	} {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("classify(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestExitError(t *testing.T) {
	for _, tc := range []struct {
		r           Result
		allow, fail bool
	}{
		{Result{OK: 5}, false, false},
		{Result{OK: 5, Failed: 1}, false, true},
		{Result{OK: 5, Failed: 1}, true, false},
		{Result{OK: 5, Failed: 1, BadCerts: 1}, true, true},
		{Result{OK: 5, Duplicates: 1}, true, true},
		{Result{OK: 5, Failed: 1, Duplicates: 1, Failures: map[string]int{"verify:duplicate": 1}}, true, true},
		// A bad certificate that repeats a serial is one failure, in
		// BadCerts and Duplicates both: the timeout beside it still fails
		// the run.
		{Result{}, true, true},
	} {
		if err := tc.r.ExitError(tc.allow); (err != nil) != tc.fail {
			t.Errorf("%+v allow=%v: ExitError = %v", tc.r, tc.allow, err)
		}
	}
	// A bad certificate that repeats a serial is one failure, in BadCerts
	// and Duplicates both: the timeout beside it is still a failed
	// enrollment.
	err := (&Result{OK: 5, Failed: 2, BadCerts: 1, Duplicates: 1, Failures: map[string]int{"verify:key": 1, "timeout": 1}}).ExitError(false)
	if err == nil || !strings.HasSuffix(err.Error(), ", 1 duplicate serial, 1 other enrollment failed") {
		t.Errorf("ExitError = %v, want the timeout counted", err)
	}
	// A malformed reply (an HTML page, a truncated CertRep) holds no
	// certificate: the message must not claim there were certificates.
	err = (&Result{Failed: 3, BadCerts: 3, Failures: map[string]int{"verify:reply": 3}}).ExitError(true)
	if err == nil || !strings.Contains(err.Error(), "3 replies or certificates failed verification") {
		t.Errorf("ExitError = %v", err)
	}
	// Each count agrees in number with its noun (r84 D3: "1 enrollments
	// failed").
	for _, tc := range []struct {
		r    Result
		want string
	}{
		{Result{OK: 3, Failed: 1, Failures: map[string]int{"interrupted": 1}}, "1 enrollment failed"},
		{Result{OK: 3, Failed: 2, Failures: map[string]int{"interrupted": 2}}, "2 enrollments failed"},
		{Result{OK: 3, Failed: 2, BadCerts: 1, Duplicates: 1, Failures: map[string]int{"verify:key": 1, "verify:duplicate": 1}},
			"1 reply or certificate failed verification, 1 duplicate serial"},
		// r113: beside duplicates, the rest are "other" (it read as if 41
		// were all the failures: "114 duplicate serials, 41 enrollments
		// failed" under "failed: 155").
		{Result{OK: 3, Failed: 155, Duplicates: 114, Failures: map[string]int{"verify:duplicate": 114, "timeout": 41}},
			"114 duplicate serials, 41 other enrollments failed"},
		{Result{OK: 3, Failed: 2, BadCerts: 1, Failures: map[string]int{"verify:key": 1, "timeout": 1}},
			"1 reply or certificate failed verification, 1 other enrollment failed"},
	} {
		if err := tc.r.ExitError(false); err == nil || err.Error() != tc.want {
			t.Errorf("ExitError = %v, want %q", err, tc.want)
		}
	}
}

func TestProfileURL(t *testing.T) {
	for _, tc := range []struct {
		base string
		d    time.Duration
		want string
	}{
		{"http://127.0.0.1:6060", 10 * time.Second, "http://127.0.0.1:6060/debug/pprof/profile?seconds=10"},
		{"http://127.0.0.1:6060/", 1200 * time.Millisecond, "http://127.0.0.1:6060/debug/pprof/profile?seconds=2"},
		{"http://127.0.0.1:6060/debug/pprof/", 100 * time.Millisecond, "http://127.0.0.1:6060/debug/pprof/profile?seconds=1"},
		{"http://[::1]:6060/debug/pprof/profile?seconds=99", 3 * time.Second, "http://[::1]:6060/debug/pprof/profile?seconds=3"},
		{"http://127.0.0.1:6060/debug/pprof", time.Second, "http://127.0.0.1:6060/debug/pprof/profile?seconds=1"},
		{"http://127.0.0.1:6060/tunnel/debug/pprof/heap", time.Second, "http://127.0.0.1:6060/tunnel/debug/pprof/profile?seconds=1"},
		{"127.0.0.1:6060", time.Second, ""},
		{"ftp://127.0.0.1:6060", time.Second, ""},
	} {
		got, err := profileURL(tc.base, tc.d)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("profileURL(%q, %v) = %q, %v; want %q", tc.base, tc.d, got, err, tc.want)
		}
	}
}

// A server profile that cannot be fetched names its URL with the password
// masked as the tool's other messages mask it (net/http writes ***).
func TestServerProfileErrorMasksAsElsewhere(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := strings.Replace(srv.URL, "http://", "http://u:secretpw@", 1)
	srv.Close() // nothing listens there now
	err := checkProfiling(context.Background(), base, 5*time.Second)
	if err == nil || strings.Contains(err.Error(), "secretpw") || strings.Contains(err.Error(), "***") || !strings.Contains(err.Error(), "u:xxxxx@") {
		t.Errorf("checkProfiling: %v, want the URL with u:xxxxx@", err)
	}
}

// A profiling endpoint that accepts but never answers is given up on at
// --timeout before the run, and the error names the endpoint, what it
// should be and the wait, not Go's bare "context deadline exceeded" (r128 D4).
func TestCheckProfilingStalledEndpoint(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	base := "http://u:secretpw@" + ln.Addr().String() + "/debug/pprof/profile"
	err = checkProfiling(context.Background(), base, 300*time.Millisecond)
	want := "server profile: the server's --pprof-listen endpoint http://u:xxxxx@" + ln.Addr().String() +
		"/debug/pprof/ gave no answer within --timeout 300ms; no run was made"
	if err == nil || err.Error() != want {
		t.Errorf("checkProfiling: %v\nwant %s", err, want)
	}
}

func TestDefaultPool(t *testing.T) {
	for _, tc := range []struct {
		count   int
		keyType string
		want    int
	}{
		{20, "rsa2048", 20},
		{5000, "rsa4096", 1000},
		{5000, "p256", 1000},
		{0, "rsa2048", 100},
		{0, "rsa3072", 100},
		{0, "p256", 1000},
		{0, "p384", 1000},
	} {
		if got := defaultPool(tc.count, tc.keyType); got != tc.want {
			t.Errorf("defaultPool(%d, %s) = %d, want %d", tc.count, tc.keyType, got, tc.want)
		}
	}
}

// failingEnroller refuses every enrollment at once, without a server.
type failingEnroller struct{}

func (failingEnroller) enroll(context.Context, *worker, int, int, *poolItem) (func() (*x509.Certificate, error), error) {
	return nil, errors.New("refused")
}

// A --count far beyond what a run can reach, bounded by --duration, must
// not reserve memory for every enrollment it names before the first one.
func TestRunHugeCountWithDuration(t *testing.T) {
	o := &Options{Protocol: SCEP, URLs: []string{"http://127.0.0.1:1/scep"}, Challenge: "x",
		Count: 1 << 46, Duration: 50 * time.Millisecond}
	if err := o.normalise(); err != nil {
		t.Fatal(err)
	}
	r := &run{o: o, targets: []*target{{url: o.URLs[0]}}, pool: &pool{items: []poolItem{{}}},
		en: failingEnroller{}, v: &verifier{seen: map[string]map[string]struct{}{}}}
	res, err := r.do(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 0 || res.Failed == 0 || res.Failed != res.Failures["error"] {
		t.Errorf("ok %d failed %d %v, want only failures", res.OK, res.Failed, res.Failures)
	}
}

// An EST reply beyond what the load tool reads is said to be too large,
// not reported as a truncated CMS structure.
func TestESTReplyTooLarge(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/pkcs7-mime")
		w.Write(bytes.Repeat([]byte("A"), maxESTReply+1))
	}))
	defer srv.Close()
	o := &Options{Protocol: EST, URLs: []string{srv.URL}, Challenge: "x"}
	if err := o.normalise(); err != nil {
		t.Fatal(err)
	}
	item := poolItem{b64: []byte("AAAA")}
	e := newESTEnroller(o, []*target{{url: srv.URL}}, &pool{items: []poolItem{item}})
	w := newWorker(o)
	defer w.transport.CloseIdleConnections()
	finish, err := e.enroll(context.Background(), w, 0, 0, &item)
	if err == nil {
		_, err = finish()
	}
	if err == nil || classify(err) != "verify:reply" || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("err = %v (%s), want a verify:reply saying the reply is too large", err, classify(err))
	}
}

// After a refused connection a worker pauses, 10 ms doubling up to a
// second while refusals go on, and not at all after anything else: a server
// that died must not turn the load tool into a connect flood counting
// thousands of failures a second (r57).
func TestNextPause(t *testing.T) {
	refused := fmt.Errorf("dial: %w", syscall.ECONNREFUSED)
	var got []time.Duration
	p := time.Duration(0)
	for i := 0; i < 9; i++ {
		p = nextPause(p, refused)
		got = append(got, p)
	}
	want := []time.Duration{10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("pauses %v, want %v ms", got, want)
		}
	}
	if p := nextPause(time.Second, nil); p != 0 {
		t.Errorf("after a success: %v", p)
	}
	if p := nextPause(time.Second, errors.New("HTTP 500")); p != 0 {
		t.Errorf("after another failure: %v", p)
	}
	// A store out of reach (503) or a limit (429) is waited out alike, not
	// met with thousands of requests a second (r82).
	for _, status := range []int{503, 429} {
		busy := &statusError{status: status, err: fmt.Errorf("HTTP %d", status)}
		if p := nextPause(0, busy); p != 10*time.Millisecond {
			t.Errorf("after a %d: %v, want 10ms", status, p)
		}
		if p := nextPause(640*time.Millisecond, busy); p != time.Second {
			t.Errorf("after a %d, at 640ms: %v, want 1s", status, p)
		}
	}
	if p := nextPause(time.Second, &statusError{status: 500, err: errors.New("HTTP 500")}); p != 0 {
		t.Errorf("after a 500: %v", p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if sleepUntil(ctx, time.Time{}, time.Hour) {
		t.Error("sleepUntil went on after the run was cancelled")
	}
	if !sleepUntil(context.Background(), time.Time{}, 0) {
		t.Error("sleepUntil(0) ended the run")
	}
}

// A server PID listed twice is read once: the figures are sums over the
// PIDs (r70 D3).
func TestNormaliseServerPIDsOnce(t *testing.T) {
	self, parent := os.Getpid(), os.Getppid()
	given := []int{self, parent, self, parent}
	o := &Options{URLs: []string{"http://127.0.0.1:1/scep"}, Challenge: "x", ServerPIDs: given}
	if err := o.normalise(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(o.ServerPIDs) != fmt.Sprint([]int{self, parent}) {
		t.Errorf("server PIDs %v, want %v", o.ServerPIDs, []int{self, parent})
	}
	if given[2] != self {
		t.Errorf("the caller's list was changed: %v", given)
	}
}

// A server PID that used no CPU time at all while many enrollments
// succeeded is not the server under load: it is marked idle and the summed
// figures are left out (nil, null in JSON), not reported as 0 ms per
// enrollment (r70 D4). Over a few enrollments a CPU time of 0 proves
// nothing, and a PID that did work is never idle.
func TestServerUsageIdlePID(t *testing.T) {
	self, parent := os.Getpid(), os.Getppid()
	for _, tt := range []struct {
		name     string
		pids     []int
		ok       int
		busy     bool // after is a second of CPU past before
		wantIdle bool
	}{
		{"idle over 20 enrollments", []int{self}, IdleEnrollments, false, true},
		{"idle over a few", []int{self}, IdleEnrollments - 1, false, false},
		{"busy", []int{self}, 1000, true, false},
		{"two PIDs, 20 enrollments each", []int{self, parent}, 2 * IdleEnrollments, false, true},
		{"two PIDs, fewer", []int{self, parent}, 2*IdleEnrollments - 1, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := readCPU(tt.pids)
			after := cpuSample{}
			for pid, r := range before {
				if tt.busy {
					r.cpu += time.Second
				}
				after[pid] = r
			}
			u := serverUsage(tt.pids, before, after, tt.ok)
			for _, p := range u.PerPID {
				if p.Idle != tt.wantIdle || p.CPUSeconds == nil {
					t.Errorf("PID %d: idle %v, CPU %v; want idle %v and its CPU time", p.PID, p.Idle, p.CPUSeconds, tt.wantIdle)
				}
			}
			if known := u.CPUSeconds != nil && u.CPUMsPerEnroll != nil && u.PeakRSSKB != nil; known == tt.wantIdle {
				t.Errorf("summed figures known %v, want %v: %+v", known, !tt.wantIdle, u)
			}
			b, err := json.Marshal(u)
			if err != nil {
				t.Fatal(err)
			}
			if want := `"cpu_ms_per_enrollment":null`; tt.wantIdle && !strings.Contains(string(b), want) {
				t.Errorf("JSON %s lacks %s", b, want)
			}
		})
	}
}

// A --count beyond what is prepared ahead, beside a --duration, builds the
// pool of a run bounded by time alone, not a CSR per enrollment it names
// (r70 D2: 20,000 CSRs, 200 s, for a 2 s run that sent 89); a smaller
// --count is built in full, its requests before the clock, with a
// --duration or without.
func TestPoolSizedForTheRun(t *testing.T) {
	for _, tc := range []struct {
		name             string
		count, pool      int
		duration         time.Duration
		keyType          string
		wantKeys, wantCS int
	}{
		{"huge count with duration", MaxPrepared + 1, 0, time.Second, "p256", 1000, 1000},
		{"huge count with duration, few keys", MaxPrepared + 1, 10, time.Second, "p256", 10, 100},
		{"huge count with duration, RSA", MaxPrepared + 1, 0, time.Second, "rsa2048", 100, 1000},
		{"count with duration, prepared", 50, 0, time.Second, "p256", 50, 50},
		{"count with duration, fewer keys", 50, 5, time.Second, "p256", 5, 50},
		{"duration alone", 0, 7, time.Second, "p256", 7, 70},
		{"count alone", 30, 0, 0, "p256", 30, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &Options{URLs: []string{"http://127.0.0.1:1/scep"}, Challenge: "x", KeyType: tc.keyType,
				Count: tc.count, Pool: tc.pool, Duration: tc.duration}
			if err := o.normalise(); err != nil {
				t.Fatal(err)
			}
			if o.Pool != tc.wantKeys {
				t.Fatalf("pool of %d keys, want %d", o.Pool, tc.wantKeys)
			}
			if tc.keyType != "p256" {
				return // RSA keys take long to make: the size is enough
			}
			var progress bytes.Buffer
			o.Progress = &progress
			p, err := buildPool(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.keys) != tc.wantKeys || len(p.items) != tc.wantCS {
				t.Errorf("%d keys and %d CSRs, want %d and %d", len(p.keys), len(p.items), tc.wantKeys, tc.wantCS)
			}
			if tc.count > 0 && tc.duration > 0 && !strings.Contains(progress.String(), "with --duration") {
				t.Errorf("progress does not say what --count with --duration builds:\n%s", progress.String())
			}
		})
	}
}
