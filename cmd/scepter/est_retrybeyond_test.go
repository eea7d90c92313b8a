package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A 202 whose Retry-After (60 s) goes beyond --max-wait (5 s) ends the
// run at once, the server not asked again early (RFC 7030 §4.2.3), and
// says when the server asked to be asked again and that the same command
// collects then; before, the wait was cut to --max-wait and the server
// asked again at its end (r144 D2).
func TestESTEnrollRetryAfterBeyondMaxWait(t *testing.T) {
	s := &reenrollEST{t: t, hold: 5}
	u, caFile := startReenrollEST(t, s)
	d := t.TempDir()
	path := func(name string) string { return filepath.Join(d, name) }
	started := time.Now()
	out, err := runCLI("est", "enroll", "--url", u, "--cacert", caFile, "--subject", "CN=held-1", "--max-wait", "5s", "--poll-interval", "1s",
		"--out", path("cert.pem"), "--key-out", path("key.pem"))
	if took := time.Since(started); took > 4*time.Second {
		t.Errorf("enroll took %s: it waited for an ask the server said not to make", took)
	}
	for _, want := range []string{
		"the request is pending manual approval; the server asked to be asked again in 1m, at ",
		" UTC, beyond --max-wait, and is not asked earlier (RFC 7030 section 4.2.3); its key is saved in " + path("key.pem"),
		"run it at or after that time, when the server asked to be asked again",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("enroll: %v\nwant it to say %q\n%s", err, want, out)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hold != 4 {
		t.Errorf("the server was asked %d times, want once", 5-s.hold)
	}
}
