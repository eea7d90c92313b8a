package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGKILLUnderLoad: the server on SQLite is killed (SIGKILL, no
// shutdown) twice while `scepter bench` enrolls at concurrency 8, and
// started again on the same data directory. The writes of concurrent
// enrollments are committed together (group commit), so this is where an
// answer sent before its commit would show: every certificate a client
// received must be in the store after the restart, exactly once, and the
// audit trail must verify.
func TestSIGKILLUnderLoad(t *testing.T) {
	t.Parallel()
	const challenge = "sigkill-under-load-0123"
	args := []string{"--rate-limit", "0"}
	s := startServer(t, serverOpts{prepared: true, challenge: challenge, args: args})
	dir := t.TempDir()
	received := map[string]int{}
	for round := 1; round <= 2; round++ {
		serials := filepath.Join(dir, "serials-"+string(rune('0'+round)))
		load := startProc(t, dir, nil, bin(t), "bench", "--url", s.URL, "--challenge", challenge, "--ca-fingerprint", s.RootFingerprint(),
			"--duration", "30s", "--concurrency", "8", "--pool", "20", "--timeout", "10s", "--allow-failures", "--json", "--quiet",
			"--serials-out", serials)
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if b, _ := os.ReadFile(serials); strings.Count(string(b), "\n") >= 60 || load.exited() {
				break
			}
		}
		// Killed with writes in flight: at concurrency 8 there always are.
		if err := s.p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-s.p.done
		s.stopOnce.Do(func() {}) // killed on purpose: not a failure of the test
		// The load stops too (SIGTERM: it prints what it got so far)
		// rather than knocking on a closed port until its --duration ends.
		_ = load.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-load.done:
		case <-time.After(2 * time.Minute):
			t.Fatal("scepter bench did not stop by itself")
		}
		out := load.out.String()
		var res benchResult
		if i := strings.Index(out, "{"); i < 0 || json.Unmarshal([]byte(out[i:]), &res) != nil {
			t.Fatalf("round %d: bench --json: %v\n%s", round, load.err, out)
		}
		t.Logf("round %d: %d ok, then killed (%d failed after)", round, res.OK, res.Failed)
		if res.Duplicates != 0 || res.BadCerts != 0 {
			t.Errorf("round %d: %d duplicate serials, %d bad certificates", round, res.Duplicates, res.BadCerts)
		}
		got := serialsOut(t, serials)
		for _, serial := range got {
			received[serial]++
		}
		if n := len(got); n != res.OK || n < 60 {
			t.Fatalf("round %d: %d certificates in --serials-out, bench says %d ok (want at least 60 before the kill)", round, n, res.OK)
		}
		s = startServer(t, serverOpts{challenge: challenge, args: args, dataDir: s.DataDir})
	}
	stored := map[string]int{}
	for _, e := range s.ListCerts() {
		stored[normSerial(e.Serial)]++
	}
	for serial, times := range received {
		if times != 1 {
			t.Errorf("serial %s was received %d times", serial, times)
		}
		if stored[serial] != 1 {
			t.Errorf("certificate %s was received by a client but is in the store %d times after the kill", serial, stored[serial])
		}
	}
	t.Logf("%d certificates received across two kills, %d in the store", len(received), len(stored))
	r := s.MustRun("audit", "verify", "--data-dir", s.DataDir)
	expectContains(t, "audit verify", r.stdout, "OK:")
}
