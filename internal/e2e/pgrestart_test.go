package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/store/postgres/pgtest"
)

// TestPostgresRestartUnderLoad: `scepter bench` keeps enrolling while the
// node's PostgreSQL is stopped and started again. The node turns not
// ready and back by itself, the clients are told 503 in between, and every
// certificate a client received is in the store exactly once.
func TestPostgresRestartUnderLoad(t *testing.T) {
	t.Parallel()
	pg := pgtest.StartServer(t)
	db := pg.Database(t)
	s := startServer(t, serverOpts{challenge: "restart-under-load-0123", args: []string{"--store", db, "--rate-limit", "0"}})
	readyz := func(want int, within time.Duration) {
		t.Helper()
		waitReadyz(t, s.Base, want, within)
	}
	readyz(http.StatusOK, 30*time.Second)

	dir := t.TempDir()
	serials := filepath.Join(dir, "serials")
	load := startProc(t, dir, nil, bin(t), "bench", "--url", s.URL, "--challenge", s.Challenge, "--ca-fingerprint", s.RootFingerprint(),
		"--duration", "20s", "--concurrency", "4", "--pool", "20", "--timeout", "10s", "--allow-failures", "--json", "--quiet",
		"--serials-out", serials)
	// Let the load run, then take the database away under it.
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if b, _ := os.ReadFile(serials); strings.Count(string(b), "\n") >= 10 || load.exited() {
			break
		}
	}
	pg.Stop(t)
	readyz(http.StatusServiceUnavailable, 30*time.Second)
	time.Sleep(2 * time.Second)
	pg.Start(t)
	readyz(http.StatusOK, 45*time.Second)
	select {
	case <-load.done:
	case <-time.After(2 * time.Minute):
		t.Fatal("scepter bench did not stop by itself")
	}
	if load.err != nil {
		t.Fatalf("scepter bench: %v\n%s", load.err, load.out.String())
	}
	out := load.out.String()
	var res benchResult
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res); err != nil {
		t.Fatalf("bench --json: %v\n%s", err, out)
	}
	t.Logf("under load across the restart: %d ok, %d failed %v", res.OK, res.Failed, res.Failures)
	if res.Duplicates != 0 || res.BadCerts != 0 {
		t.Errorf("%d duplicate serials, %d bad certificates", res.Duplicates, res.BadCerts)
	}
	if res.Failed == 0 {
		t.Error("no enrollment failed while PostgreSQL was down: the load did not overlap the outage")
	}
	for reason := range res.Failures {
		if strings.Contains(reason, "500") || strings.HasPrefix(reason, "failInfo") {
			t.Errorf("during the outage a client got %q: want 503 (come back later), never a 500 or a FAILURE", reason)
		}
	}
	// Every certificate received is in the store, once.
	stored := map[string]int{}
	for _, e := range s.ListCerts("--store", db) {
		stored[normSerial(e.Serial)]++
	}
	received := serialsOut(t, serials)
	for _, serial := range received {
		if n := stored[serial]; n != 1 {
			t.Errorf("certificate %s received by a client is in the store %d times", serial, n)
		}
	}
	if len(received) != res.OK || len(received) == 0 {
		t.Errorf("%d certificates in --serials-out, bench says %d ok", len(received), res.OK)
	}
	r := s.MustRun("audit", "verify", "--data-dir", s.DataDir, "--store", db)
	expectContains(t, "audit verify", r.stdout, "OK:")
}

// serialsOut reads the serials (normalised) of a `scepter bench
// --serials-out` file: a line per certificate, SERIAL ISSUER-ID URL.
func serialsOut(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var serials []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(line); len(f) == 3 {
			serials = append(serials, normSerial(f[0]))
		}
	}
	return serials
}
