package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/bench"
)

func TestBenchUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench"}, "--url is required"},
		{[]string{"bench", "--url", "http://127.0.0.1:1/scep"}, "--challenge"},
		{[]string{"bench", "--url", "https://127.0.0.1:1", "--protocol", "est"}, "--est-user"},
		{[]string{"bench", "--url", "x", "--challenge", "c", "--protocol", "acme"}, "--protocol"},
		{[]string{"bench", "--url", "x", "--challenge", "c", "--key-type", "dsa"}, "--key-type"},
		{[]string{"bench", "--url", "x", "--challenge", "c", "--concurrency", "0"}, "--concurrency"},
		{[]string{"bench", "--url", "x", "--challenge", "c", "--server-pid", "abc"}, "--server-pid"},
		{[]string{"bench", "--url", "x", "--challenge", "c", "--server-pid", "1073741824"}, "--server-pid 1073741824: reading its CPU time"},
		{[]string{"bench", "--url", "x", "--challenge", "c", "--cacert", "a.pem", "--ca-fingerprint", "sha256:" + strings.Repeat("00", 32)}, "exclude"},
		{[]string{"bench", "--url", "https://127.0.0.1:1", "--protocol", "est", "--est-password", "p"}, "--est-user"},
		// r57: an http URL for EST is a misconfigured flag like any other.
		{[]string{"bench", "--url", "http://127.0.0.1:1", "--protocol", "est", "--challenge", "c"}, "want https://"},
		// r70 D6: so is a malformed SCEP URL, as EST's, not a failed run.
		{[]string{"bench", "--url", "127.0.0.1:1/scep", "--challenge", "c"}, `--url "127.0.0.1:1/scep": want an http:// or https:// SCEP URL`},
		{[]string{"bench", "--url", "http://127.0.0.1:1/scep,ftp://127.0.0.1:1/scep", "--challenge", "c"}, `--url "ftp://127.0.0.1:1/scep"`},
		// A user without a password would send an empty password with every
		// request, each a failed check toward the user's lockout.
		{[]string{"bench", "--url", "https://127.0.0.1:1", "--protocol", "est", "--est-user", "fleet"}, "--est-user fleet has no password: give it with --est-password-file"},
		{[]string{"bench", "--url", "https://127.0.0.1:1", "--protocol", "est", "--est-user", "fleet", "--challenge", "c"}, "--est-user fleet has no password"},
		{[]string{"bench", "--url", "x", "--challenge", "c", "--server-profile", "http://127.0.0.1:6060"}, "--duration"},
		// An explicit 0 bounds nothing; read as "not given" it made 100.
		{[]string{"bench", "--url", "x", "--challenge", "c", "--count", "0"}, "--count 0 and --duration 0 bound nothing"},
		{[]string{"bench", "--url", "x", "--challenge", "c", "--count", "0", "--duration", "0"}, "bound nothing"},
		{[]string{"bench", "--url", "x", "--challenge", "c", "--duration", "0s"}, "bound nothing"},
		// User info in an EST URL was dropped without a word; its password
		// is masked in the refusal as everywhere else.
		{[]string{"bench", "--url", "https://fleet:secretpw@127.0.0.1:8443", "--protocol", "est", "--challenge", "c"}, `--url "https://fleet:xxxxx@127.0.0.1:8443": an EST URL carries no credentials`},
		// r100 D2: an EST URL is read by the EST client's rules: a query or
		// fragment, even an empty one, is refused rather than dropped, and
		// /.well-known/estX is a typo, not label X.
		{[]string{"bench", "--url", "https://127.0.0.1:8443/.well-known/estdefault?tenant=7#x", "--protocol", "est", "--challenge", "c"}, "an EST URL has no query or fragment"},
		{[]string{"bench", "--url", "https://127.0.0.1:8443/?x=1", "--protocol", "est", "--challenge", "c"}, "an EST URL has no query or fragment"},
		{[]string{"bench", "--url", "https://127.0.0.1:8443#f", "--protocol", "est", "--challenge", "c"}, "an EST URL has no query or fragment"},
		{[]string{"bench", "--url", "https://127.0.0.1:8443/default#", "--protocol", "est", "--challenge", "c"}, "an EST URL has no query or fragment"},
		{[]string{"bench", "--url", "https://127.0.0.1:8443/.well-known/estdefault", "--protocol", "est", "--challenge", "c"}, "an EST label is one path segment"},
		// r72 D6: a port no connection can be made to is a malformed URL
		// too, not a failed connect (exit 1).
		{[]string{"bench", "--url", "http://127.0.0.1:99999/scep", "--challenge", "c"}, `--url "http://127.0.0.1:99999/scep": port 99999: want a port from 1 to 65535`},
		{[]string{"bench", "--url", "http://127.0.0.1:0/scep", "--challenge", "c"}, "port 0: want a port from 1 to 65535"},
		{[]string{"bench", "--url", "https://127.0.0.1:65536", "--protocol", "est", "--challenge", "c"}, "port 65536: want a port from 1 to 65535"},
		{[]string{"bench", "--url", "https://127.0.0.1:0/.well-known/est", "--protocol", "est", "--challenge", "c"}, "port 0: want a port from 1 to 65535"},
		// r113 D3: so is a SCEP URL whose query holds what the client sets,
		// in enroll's words (it was a failed run, exit 1, the URL twice).
		{[]string{"bench", "--url", "http://127.0.0.1:1/scep?message=x", "--challenge", "c"}, `--url: SCEP URL "http://127.0.0.1:1/scep?message=x" has "message" in its query, which the client sets for each request`},
		{[]string{"bench", "--url", "http://u:secretpw@127.0.0.1:1/scep?a=1&Operation=GetCACaps", "--challenge", "c", "--profile", "p"}, `--url: SCEP URL "http://u:xxxxx@127.0.0.1:1/scep?a=1&Operation=GetCACaps" has "Operation" in its query`},
		// r73: so is a malformed --server-profile, its password masked as
		// everywhere else.
		{[]string{"bench", "--url", "x", "--challenge", "c", "--duration", "1s", "--server-profile", "ftp://u:pw@127.0.0.1:6060"}, `--server-profile: "ftp://u:xxxxx@127.0.0.1:6060" is not an http:// URL`},
		{[]string{"bench", "--url", "x", "--challenge", "c", "--duration", "1s", "--server-profile", "http://u:pw%zz@127.0.0.1:6060"}, `--server-profile: "http://xxxxx@127.0.0.1:6060" cannot be read as a URL`},
		{[]string{"bench", "--url", "x", "--challenge", "c", "--duration", "1s", "--server-profile", "http://u:secretpw@127.0.0.1:0"}, `--server-profile: "http://u:xxxxx@127.0.0.1:0": port 0: want a port from 1 to 65535`},
	} {
		e, _, _ := testEnv(nil)
		err := run(context.Background(), e, tc.args)
		if exitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v (exit %d), want a usage error naming %q", tc.args, err, exitCode(err), tc.want)
		}
	}
}

// A 0 from the environment is as explicit as one on the command line; a
// 0 beside a bound of the other kind is no bound of its kind (the run
// gets as far as the server, which is not there: exit 1).
func TestBenchExplicitZero(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		vars     map[string]string
		wantExit int
	}{
		{nil, map[string]string{"SCEPTER_COUNT": "0"}, 2},
		{nil, map[string]string{"SCEPTER_DURATION": "0s"}, 2},
		{[]string{"--count", "0", "--duration", "1s"}, nil, 1},
		{[]string{"--count", "1", "--duration", "0"}, nil, 1},
		{nil, map[string]string{"SCEPTER_COUNT": ""}, 1}, // an empty variable is unset
	} {
		e, _, _ := testEnv(tc.vars)
		args := append([]string{"bench", "--url", "http://127.0.0.1:1/scep", "--challenge", "c", "--quiet"}, tc.args...)
		err := run(context.Background(), e, args)
		if exitCode(err) != tc.wantExit || (tc.wantExit == 2) != strings.Contains(fmt.Sprint(err), "bound nothing") {
			t.Errorf("%v %v: %v (exit %d), want exit %d", tc.args, tc.vars, err, exitCode(err), tc.wantExit)
		}
	}
}

func TestBenchOptions(t *testing.T) {
	pids := stringList{strconv.Itoa(os.Getpid()), strconv.Itoa(os.Getppid())}
	f := benchFlags{urls: stringList{"http://a/scep", "http://b/scep"}, pids: pids, protocol: "SCEP",
		concurrency: 8, count: 500, keyType: "p256", timeout: 1, quiet: true}
	e, _, _ := testEnv(map[string]string{})
	f.challenge = "secret"
	o, err := f.options(e)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.URLs) != 2 || o.Protocol != "scep" || len(o.ServerPIDs) != 2 || o.ServerPIDs[1] != os.Getppid() || o.Progress != nil || o.Challenge != "secret" {
		t.Errorf("options %+v", o)
	}
	var l stringList
	l.Set("http://a/scep, http://b/scep")
	l.Set("http://c/scep")
	if len(l) != 3 {
		t.Errorf("--url a,b --url c gave %v", l)
	}
}

func TestBenchSummary(t *testing.T) {
	r := &bench.Result{Protocol: "scep", URLs: []string{"u1", "u2"}, Concurrency: 8, KeyType: "rsa2048", PoolKeys: 500, PoolCSRs: 500,
		OK: 498, Failed: 2, Failures: map[string]int{"timeout": 1, "failInfo:badRequest": 1}, FirstErrors: []string{"u2: timeout: slow"},
		Rate: 140.2, ElapsedSeconds: 3.55, Latency: &bench.Latency{P50: 50, P90: 70, P99: 90, Max: 120, Mean: 55},
		PerURL:   []bench.URLStats{{URL: "u1", OK: 249, Failed: 1}, {URL: "u2", OK: 249, Failed: 1}},
		Server:   &bench.ServerUsage{CPUSeconds: ptr(3.2), CPUMsPerEnroll: ptr(6.43), PeakRSSKB: ptr[int64](81920), PerPID: []bench.PIDUsage{{PID: 42}, {PID: 43, Error: "gone"}}},
		Prepared: true, LoadTool: &bench.LoadToolUsage{CPUSeconds: 0.6, CPUMsPerEnroll: ptr(1.2), Cores: 0.17},
	}
	var b bytes.Buffer
	printBenchSummary(&b, r)
	for _, want := range []string{"ok:                498", "failed:            2 (failInfo:badRequest 1, timeout 1)", "enrollments/s:     140.2",
		"p50 50.0  p90 70.0  p99 90.0  max 120.0", "duplicate serials: 0", "u2: ok 249, failed 1", "6.43 ms/enrollment", "43 (unreadable: gone)",
		"80.0 MiB", "u2: timeout: slow", "requests built before the clock started", "load tool CPU:     1.20 ms/enrollment, 17% of one core"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}

// A figure that was not measured is printed as n/a, not 0 or nothing.
func TestBenchSummaryUnmeasured(t *testing.T) {
	r := &bench.Result{Protocol: "scep", URLs: []string{"u1"}, OK: 0, Failed: 3,
		Server:   &bench.ServerUsage{PerPID: []bench.PIDUsage{{PID: 42, Error: "gone"}}},
		LoadTool: &bench.LoadToolUsage{CPUSeconds: 0.01, Cores: 0.1}}
	var b bytes.Buffer
	printBenchSummary(&b, r)
	if want := "server CPU:        n/a ms/enrollment (n/a s over PID 42 (unreadable: gone))"; !strings.Contains(b.String(), want) {
		t.Errorf("summary lacks %q:\n%s", want, b.String())
	}
	// Nor latencies when nothing succeeded, nor the peak RSS of a server
	// that died (README: "n/a in the text, never 0"; null in --json).
	for _, want := range []string{"latency (ms):      n/a", "reply's headers): n/a", "server peak RSS:   n/a", "load tool CPU:     n/a ms/enrollment"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"latency_ms":null`, `"round_trip_ms":null`, `"peak_rss_kb":null`, `"cpu_ms_per_enrollment":null`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("--json lacks %s: %s", want, js)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// A --server-profile address that serves no profiling endpoints is refused
// before the run, and leaves no empty profile file behind.
func TestBenchServerProfileRefused(t *testing.T) {
	out := filepath.Join(t.TempDir(), "cpu.pprof")
	e, _, _ := testEnv(nil)
	err := run(context.Background(), e, []string{"bench", "--url", "http://127.0.0.1:1/scep", "--challenge", "c",
		"--duration", "1s", "--server-profile", "http://127.0.0.1:1", "--server-profile-out", out})
	if err == nil || !strings.Contains(err.Error(), "server profile") {
		t.Fatalf("err = %v, want the profiling endpoints refused", err)
	}
	if _, serr := os.Stat(out); !os.IsNotExist(serr) {
		t.Errorf("%s left behind: %v", out, serr)
	}
}

// A lockout after wrong challenges or passwords is not blamed on the rate
// limit, which --rate-limit 0 turns off, and the rate limit's 429 is not
// called a lockout (r70 D1).
func TestBenchSummaryLockoutAndRateLimit(t *testing.T) {
	const lockout, rateLimit = "locked this address out after too many wrong challenges", "--rate-limit 0"
	for _, tc := range []struct {
		failures                   map[string]int
		wantLockout, wantRateLimit bool
	}{
		{map[string]int{bench.ReasonLockedOut: 3}, true, false},
		{map[string]int{"http:429": 3}, false, true},
		{map[string]int{bench.ReasonLockedOut: 1, "http:429": 2}, true, true},
		{map[string]int{"failInfo:badRequest": 3}, false, false},
	} {
		var b bytes.Buffer
		printBenchSummary(&b, &bench.Result{Protocol: "est", URLs: []string{"u"}, Failed: 3, Failures: tc.failures})
		if strings.Contains(b.String(), lockout) != tc.wantLockout || strings.Contains(b.String(), rateLimit) != tc.wantRateLimit {
			t.Errorf("%v: lockout note %v, rate limit note %v; want %v, %v:\n%s", tc.failures,
				strings.Contains(b.String(), lockout), strings.Contains(b.String(), rateLimit), tc.wantLockout, tc.wantRateLimit, b.String())
		}
	}
}

// A reply that is no CMS at all (a proxy's page) is said to be no answer of
// the server and is no bad certificate; a bad certificate is said to be one
// --allow-failures does not accept (r124).
func TestBenchSummaryNotCMS(t *testing.T) {
	const note, bad = "no SCEP or EST reply at all", "bad certificates:  2 (or signed replies that failed their checks; never accepted by --allow-failures)"
	for _, tc := range []struct {
		r                 bench.Result
		wantNote, wantBad bool
	}{
		{bench.Result{OK: 3, Failed: 2, Failures: map[string]int{bench.ReasonNotCMS: 2}}, true, false},
		{bench.Result{OK: 3, Failed: 2, BadCerts: 2, Failures: map[string]int{"verify:key": 2}}, false, true},
		{bench.Result{OK: 3, Failed: 2, Failures: map[string]int{"http:500": 2}}, false, false},
	} {
		var b bytes.Buffer
		tc.r.Protocol, tc.r.URLs = "scep", []string{"u"}
		printBenchSummary(&b, &tc.r)
		if strings.Contains(b.String(), note) != tc.wantNote || strings.Contains(b.String(), bad) != tc.wantBad {
			t.Errorf("%v: note %v, bad line %v; want %v, %v:\n%s", tc.r.Failures,
				strings.Contains(b.String(), note), strings.Contains(b.String(), bad), tc.wantNote, tc.wantBad, b.String())
		}
	}
}

// A --server-pid given twice is counted once: the server's figures are
// sums over the PIDs, and a repeated one doubled them (r70 D3).
func TestBenchServerPIDCountedOnce(t *testing.T) {
	self, parent := strconv.Itoa(os.Getpid()), strconv.Itoa(os.Getppid())
	f := benchFlags{urls: stringList{"http://a/scep"}, pids: stringList{self, parent, self}, protocol: "scep",
		concurrency: 1, count: 5, keyType: "p256", timeout: 1, quiet: true, challenge: "secret"}
	e, _, _ := testEnv(map[string]string{})
	o, err := f.options(e)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{os.Getpid(), os.Getppid()}; fmt.Sprint(o.ServerPIDs) != fmt.Sprint(want) {
		t.Errorf("--server-pid %v gave %v, want %v", f.pids, o.ServerPIDs, want)
	}
}

// A --server-pid that used no CPU while certificates were issued gets a
// warning and no figure, not "0.00 ms/enrollment" (r70 D4).
func TestBenchSummaryIdleServerPID(t *testing.T) {
	r := &bench.Result{Protocol: "scep", URLs: []string{"u"}, OK: 20,
		Server: &bench.ServerUsage{PerPID: []bench.PIDUsage{{PID: 29975, CPUSeconds: ptr(0.0), PeakRSSKB: ptr[int64](1700), Idle: true}}}}
	var b bytes.Buffer
	printBenchSummary(&b, r)
	for _, want := range []string{"server CPU:        n/a ms/enrollment (n/a s over PID 29975 (used no CPU))",
		"warning:           --server-pid 29975 used no CPU time while 20 enrollments succeeded: likely not the server at --url"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "0.00 ms/enrollment") {
		t.Errorf("summary gives a figure:\n%s", b.String())
	}
}

// The rate of a run with unfinished enrollments says that the wait for
// them is not in its time.
func TestBenchSummaryUnfinished(t *testing.T) {
	for _, tc := range []struct {
		failures map[string]int
		want     string
	}{
		{map[string]int{"unfinished": 4}, "enrollments/s:     97.0 (388 ok in 4.00s; the wait for the 4 unfinished after --duration is not counted)"},
		{map[string]int{"timeout": 4}, "enrollments/s:     97.0 (388 ok in 4.00s)\n"},
	} {
		var b bytes.Buffer
		printBenchSummary(&b, &bench.Result{Protocol: "scep", URLs: []string{"u"}, OK: 388, Failed: 4, Failures: tc.failures, Rate: 97, ElapsedSeconds: 4})
		if !strings.Contains(b.String(), tc.want) {
			t.Errorf("summary lacks %q:\n%s", tc.want, b.String())
		}
	}
}

// The password of a --url's user info is sent but never shown: not in an
// error, a progress line, the summary, --json or --serials-out, whether
// the run fails at connect (SCEP, SCEP with --profile), per
// enrollment (a wrong challenge), at the URL check (exit 2; an EST URL
// with user info too) or succeeds
// (r72 D5: "http://user:secretpw@…: GetCACaps: HTTP 404").
func TestBenchMasksTheURLPassword(t *testing.T) {
	const secret = "secretpw"
	s := startServe(t, "")
	withUser := func(raw string) string { return strings.Replace(raw, "://", "://user:"+secret+"@", 1) }
	scepBase := strings.TrimSuffix(s.scepURL, "/scep")
	for _, tc := range []struct {
		name     string
		args     []string
		wantExit int
		wantSaid string // with the password masked
	}{
		{"scep ok", []string{"--url", withUser(s.scepURL)}, 0, "user:xxxxx@"},
		{"scep connect", []string{"--url", withUser(scepBase + "/nosuch")}, 1, "user:xxxxx@"},
		{"scep profile", []string{"--url", withUser(s.scepURL), "--profile", "nosuch"}, 1, "appended to http://user:xxxxx@"},
		{"scep enrollment", []string{"--url", withUser(s.scepURL), "--challenge", "wrong"}, 1, "user:xxxxx@"},
		// An EST URL takes no credentials: refused before anything is sent.
		{"est", []string{"--protocol", "est", "--url", withUser(s.estURL + "/nosuch")}, 2, "user:xxxxx@"},
		{"malformed", []string{"--url", withUser("http://127.0.0.1:abc/scep")}, 2, "xxxxx@127.0.0.1:abc"},
		{"port", []string{"--url", withUser("http://127.0.0.1:99999/scep")}, 2, "user:xxxxx@127.0.0.1:99999"},
		{"server profile", []string{"--url", withUser(s.scepURL), "--duration", "1s", "--count", "2",
			"--server-profile", withUser(scepBase), "--server-profile-out", filepath.Join(t.TempDir(), "cpu.pprof")}, 1, "user:xxxxx@"},
	} {
		for _, asJSON := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s json=%v", tc.name, asJSON), func(t *testing.T) {
				serials := filepath.Join(t.TempDir(), "serials.txt")
				args := append([]string{"bench", "--challenge", "test", "--ca-fingerprint", s.fingerprint, "--count", "2",
					"--key-type", "p256", "--serials-out", serials}, tc.args...)
				if asJSON {
					args = append(args, "--json")
				}
				e, out, errb := testEnv(nil)
				err := run(context.Background(), e, args)
				written, _ := os.ReadFile(serials)
				said := fmt.Sprintf("%v\n%s\n%s\n%s", err, out, errb, written)
				if exitCode(err) != tc.wantExit {
					t.Fatalf("exit %d, want %d:\n%s", exitCode(err), tc.wantExit, said)
				}
				if strings.Contains(said, secret) {
					t.Errorf("the password is shown:\n%s", said)
				}
				if !strings.Contains(said, tc.wantSaid) {
					t.Errorf("nothing says %q:\n%s", tc.wantSaid, said)
				}
			})
		}
	}
}

// A run that ends before its server profile's window (here at --count)
// says on stderr, with both durations, that the profile outlasted it, even
// with --quiet; one whose profile it filled says nothing (r113 D2).
func TestBenchServerProfileOutlasted(t *testing.T) {
	s := startServe(t, "")
	prof := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "a profile") // the index, then the profile
	}))
	t.Cleanup(prof.Close)
	for _, tc := range []struct {
		name, count, duration string
		want                  string // "" for no warning
	}{
		{"ended at --count", "2", "2s", "before the server profile's 2s"},
		{"ran its --duration", "0", "1s", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _, errb := testEnv(nil)
			err := run(context.Background(), e, []string{"bench", "--url", s.scepURL, "--challenge", "test", "--ca-fingerprint", s.fingerprint,
				"--key-type", "p256", "--count", tc.count, "--duration", tc.duration, "--concurrency", "1", "--quiet", "--json",
				"--server-profile", prof.URL, "--server-profile-out", filepath.Join(t.TempDir(), "cpu.pprof")})
			if err != nil {
				t.Fatalf("bench: %v\n%s", err, errb)
			}
			said := errb.String()
			if tc.want == "" {
				if strings.Contains(said, "server profile") {
					t.Errorf("a warning for a run that filled its profile:\n%s", said)
				}
			} else if !strings.Contains(said, "warning: the run ended after ") || !strings.Contains(said, tc.want) {
				t.Errorf("stderr lacks the warning %q:\n%s", tc.want, said)
			}
		})
	}
}
