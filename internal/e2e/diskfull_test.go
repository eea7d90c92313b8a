package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDiskFullUnderLoad: the real binary with its data directory on a
// small file system of its own (a tmpfs), filled up while devices enroll
// over SCEP and EST.
// Every enrollment that cannot be written is told 503 with Retry-After
// (come back later), never a 500 or a SCEP FAILURE; once room is made the
// same server enrolls again without a restart; and every certificate a
// client received is in the store once, with the audit chain whole.
//
// Mounting needs root (CI runs as root); where it is refused the test is
// skipped and says why.
func TestDiskFullUnderLoad(t *testing.T) {
	if onPostgres(t) {
		t.Skip("the disk of the SQLite store; PostgreSQL's outage is TestPostgresRestartUnderLoad")
	}
	mnt := filepath.Join(t.TempDir(), "tiny")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=48m,mode=0700", "tmpfs", mnt).CombinedOutput(); err != nil {
		// Not a failure even under SCEPTER_E2E_REQUIRE=1: a container
		// may run as root without the right to mount.
		t.Skipf("cannot mount a tmpfs to fill (needs root, and the right to mount): %v: %s", err, out)
	}
	// Registered before the server's own cleanup, so it runs after it.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	e := startEST(t, estOpts{challenge: "disk-full-under-load-0123", dataDir: filepath.Join(mnt, "data"), args: []string{"--rate-limit", "0"}})
	s := e.Server
	dir := t.TempDir()
	var runs []string
	// bench runs count enrollments over SCEP and as many over EST.
	bench := func(name string, count int) (ok int) {
		t.Helper()
		for _, proto := range []string{"scep", "est"} {
			args := []string{"--url", s.URL, "--ca-fingerprint", s.RootFingerprint()}
			if proto == "est" {
				args = []string{"--protocol", "est", "--url", e.HTTPS, "--cacert", e.CAFile("root.crt"), "--key-type", "p256"}
			}
			run1 := name + "-" + proto
			runs = append(runs, run1)
			serials := filepath.Join(dir, "serials-"+run1)
			// run, not mustRun: bench exits 1 when no enrollment at all
			// succeeded, which a full disk may well do.
			r := run(t, runOpts{dir: dir}, bin(t), append([]string{"bench", "--challenge", s.Challenge,
				"--count", strconv.Itoa(count), "--concurrency", "4", "--pool", "10", "--timeout", "20s", "--allow-failures", "--json", "--quiet",
				"--serials-out", serials}, args...)...)
			var res benchResult
			if i := strings.Index(r.stdout, "{"); i < 0 || json.Unmarshal([]byte(r.stdout[i:]), &res) != nil {
				t.Fatalf("%s: bench --json:\n%s", run1, r)
			}
			t.Logf("%s: %d ok, %d failed %v", run1, res.OK, res.Failed, res.Failures)
			if res.Duplicates != 0 || res.BadCerts != 0 {
				t.Errorf("%s: %d duplicate serials, %d bad certificates", run1, res.Duplicates, res.BadCerts)
			}
			for reason := range res.Failures {
				if !strings.Contains(reason, "503") {
					t.Errorf("%s: a client got %q: want 503 (come back later), never a 500, a 4xx or a FAILURE", run1, reason)
				}
			}
			for _, msg := range res.FirstErrors {
				for _, leak := range []string{"sqlite", "disk", "full", mnt} {
					if strings.Contains(strings.ToLower(msg), leak) {
						t.Errorf("%s: a client was shown the server's internals (%q): %s", run1, leak, msg)
					}
				}
			}
			if got := serialsOut(t, serials); len(got) != res.OK {
				t.Errorf("%s: %d certificates in --serials-out, bench says %d ok", run1, len(got), res.OK)
			}
			ok += res.OK
		}
		return ok
	}

	if ok := bench("before", 10); ok != 20 {
		t.Fatalf("before the disk filled up: %d of 20 enrolled", ok)
	}
	filler := filepath.Join(mnt, "filler")
	fill(t, filler)
	// The load tool waits out 503s (10 ms doubling to 1 s per worker), so
	// four workers send about four requests a second once the pauses have
	// grown: 60 each take some 15 s, over 20 refusals in a 10 s span.
	if ok := bench("full", 60); ok == 120 {
		t.Fatal("no enrollment failed with the disk full")
	}
	// Every refused request is the same condition: the log says so a few
	// times and how often (10 lines a message per 10 s, the rest counted),
	// rather than once per request on a full disk.
	checkLogNotFlooded(t, s.Output(), 10, 10*time.Second)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if ok := bench("after", 30); ok != 60 {
		t.Errorf("with room again, %d of 60 enrolled (the server should recover by itself)", ok)
	}

	stored := map[string]int{}
	inStore := 0
	for _, c := range s.ListCerts() {
		stored[normSerial(c.Serial)]++
		inStore++
	}
	received := 0
	for _, run1 := range runs {
		for _, serial := range serialsOut(t, filepath.Join(dir, "serials-"+run1)) {
			received++
			if stored[serial] != 1 {
				t.Errorf("certificate %s received by a client is in the store %d times", serial, stored[serial])
			}
		}
	}
	// A certificate in the store that no client received would be one
	// whose write was reported failed but kept.
	if inStore != received {
		t.Errorf("%d certificates in the store, %d received by clients", inStore, received)
	}
	r := s.MustRun("audit", "verify", "--data-dir", s.DataDir)
	expectContains(t, "audit verify", r.stdout, "OK:")
}

// checkLogNotFlooded fails when some WARN or ERROR message of output
// stands more than twice limit times within one span of window: the log
// limiter passes limit lines of a message per window from its first, so
// that two windows back to back hold at most twice as many; a server
// logging every refused request would hold as many as it refused.
func checkLogNotFlooded(t *testing.T, output string, limit int, window time.Duration) {
	t.Helper()
	perMsg := map[string][]time.Time{}
	for _, line := range strings.Split(output, "\n") {
		if !strings.Contains(line, "level=ERROR") && !strings.Contains(line, "level=WARN") {
			continue
		}
		_, msg, ok := strings.Cut(line, " msg=")
		if !ok {
			continue
		}
		if strings.HasPrefix(msg, `"`) {
			msg, _, _ = strings.Cut(msg[1:], `"`)
		} else {
			msg, _, _ = strings.Cut(msg, " ")
		}
		stamp, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		at, err := time.Parse(time.RFC3339Nano, stamp)
		if err != nil {
			t.Fatalf("a log line without its time: %q", line)
		}
		perMsg[msg] = append(perMsg[msg], at)
	}
	for msg, times := range perMsg {
		// In the order written; the most within any span of window.
		most, first := 0, 0
		for last := range times {
			for times[last].Sub(times[first]) > window {
				first++
			}
			most = max(most, last-first+1)
		}
		if most > 2*limit {
			t.Errorf("the log holds %d lines of %q within %v: want at most %d, the rest counted in a line of their own", most, msg, window, 2*limit)
		}
	}
}

// fill writes path until the file system has no room left.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for range 1 << 14 { // 1 GiB at most: the tmpfs is far smaller
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			for _, n := range []int{4096, 512, 1} { // the last bytes too
				small := chunk[:n]
				for {
					if _, err := f.Write(small); err != nil {
						break
					}
				}
			}
			return
		}
	}
	t.Fatal("the disk did not fill up")
}
