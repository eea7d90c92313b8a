package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// benchResult is the part of `scepter bench --json` the test reads.
type benchResult struct {
	Protocol string         `json:"protocol"`
	OK       int            `json:"ok"`
	Failed   int            `json:"failed"`
	Failures map[string]int `json:"failures"`
	// FirstErrors are the first failures' messages, as clients saw them.
	FirstErrors []string `json:"first_errors"`
	Duplicates  int      `json:"duplicate_serials"`
	BadCerts    int      `json:"bad_certs"`
	Rate        float64  `json:"enrollments_per_second"`
	Latency     struct {
		P50, P90, P99, Max float64
	} `json:"latency_ms"`
	Server *struct {
		CPUSeconds float64 `json:"cpu_seconds"`
		PeakRSSKB  int64   `json:"peak_rss_kb"`
		PerPID     []struct {
			PID   int    `json:"pid"`
			Error string `json:"error"`
		} `json:"per_pid"`
	} `json:"server"`
}

// runBench runs `scepter bench --json` and checks what every run must show:
// all enrollments good, no duplicate serial, sane figures, the server's
// use read, and every serial received in the server's inventory.
func runBench(t *testing.T, s *Server, count int, args ...string) {
	t.Helper()
	serials := filepath.Join(t.TempDir(), "serials.txt")
	args = append([]string{"bench", "--count", strconv.Itoa(count), "--concurrency", "4", "--json", "--quiet",
		"--serials-out", serials, "--server-pid", strconv.Itoa(s.p.cmd.Process.Pid)}, args...)
	r := s.MustRun(args...)
	var res benchResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("bench --json output is not JSON: %v\n%s", err, r)
	}
	if res.OK != count || res.Failed != 0 || res.Duplicates != 0 || res.BadCerts != 0 {
		t.Fatalf("ok %d failed %d (%v) dup %d bad %d, want %d/0/0/0\n%s", res.OK, res.Failed, res.Failures, res.Duplicates, res.BadCerts, count, r)
	}
	if l := res.Latency; res.Rate <= 0 || l.P50 <= 0 || l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.Max {
		t.Errorf("figures not sane: rate %.1f latency %+v", res.Rate, l)
	}
	if res.Server == nil || len(res.Server.PerPID) != 1 || res.Server.PerPID[0].Error != "" || res.Server.PeakRSSKB <= 0 {
		t.Errorf("server usage not read: %+v", res.Server)
	}
	b, err := os.ReadFile(serials)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != count {
		t.Fatalf("%d lines in --serials-out, want %d:\n%s", len(lines), count, b)
	}
	inventory := map[string]string{}
	for _, c := range s.ListCerts() {
		inventory[normSerial(c.Serial)] = c.Protocol
	}
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("--serials-out line %q: want SERIAL ISSUER-ID URL", line)
		}
		if p, ok := inventory[normSerial(f[0])]; !ok || p != res.Protocol {
			t.Errorf("serial %s: in the inventory %v with protocol %q, want %q", f[0], ok, p, res.Protocol)
		}
	}
}

func TestBenchSCEP(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{prepared: true, challenge: "bench-challenge-0123456789"})
	runBench(t, s, 40, "--pool", "10", "--url", s.URL, "--challenge", s.Challenge, "--ca-fingerprint", s.RootFingerprint())
}

func TestBenchEST(t *testing.T) {
	t.Parallel()
	e := startEST(t, estOpts{prepared: true, challenge: "bench-challenge-0123456789"})
	runBench(t, e.Server, 40, "--protocol", "est", "--url", e.HTTPS, "--challenge", e.Challenge,
		"--key-type", "p256", "--cacert", e.CAFile("root.crt"))
}

// TestBenchBurstQueued: a burst of 32 devices at once against a server
// that handles 2 requests at a time is served in full, each request
// waiting its turn (--max-queued, --queue-wait), not turned away with 503.
//
// It runs beside other tests: a request waits at most the default
// --queue-wait of 5 s before a 503, and the slowest enrollment of the
// burst, its wait included, took 1.5 s on 2 CPUs at a load of 26 (another
// run of this package's parallel tests beside it).
func TestBenchBurstQueued(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{prepared: true, challenge: "bench-challenge-0123456789", args: []string{"--max-inflight", "2", "--rate-limit", "0"}})
	runBench(t, s, 96, "--concurrency", "32", "--pool", "8", "--url", s.URL, "--challenge", s.Challenge, "--ca-fingerprint", s.RootFingerprint())
}
