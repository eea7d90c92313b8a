package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
)

// `est enroll --max-wait` asks again after a 503 that carries Retry-After
// (RFC 7030 §4.2.3: a server under load may send it), as after a 202,
// within --max-wait, and collects the certificate once the server
// answers; a bare 503, a run without --max-wait, or a 503 that lasts
// beyond --max-wait ends the run as before, the key kept with "run the
// same command again later". Before (r117), every 503 ended the run.
func TestESTEnrollWaitsOutA503WithRetryAfter(t *testing.T) {
	for _, tt := range []struct {
		name       string
		busy       int
		retryAfter string
		maxWait    string
		wantErr    bool
		minTook    time.Duration
	}{
		{"Retry-After: 1 twice", 2, "1", "30s", false, 2 * time.Second},
		{"an HTTP date", 1, "date", "30s", false, 0},
		{"a bare 503", 1, "", "30s", true, 0},
		{"no --max-wait", 1, "1", "0s", true, 0},
		// r144 D2: the second answer's Retry-After goes beyond what is
		// left, so the server is not asked a third time.
		{"beyond --max-wait", 100, "1", "2s", true, time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			retryAfter := tt.retryAfter
			if retryAfter == "date" {
				retryAfter = pki.SystemClock{}.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat)
			}
			s := &reenrollEST{t: t, busy: tt.busy, busyRetryAfter: retryAfter}
			u, caFile := startReenrollEST(t, s)
			d := t.TempDir()
			path := func(name string) string { return filepath.Join(d, name) }
			started := time.Now()
			out, err := runCLI("est", "enroll", "--url", u, "--cacert", caFile, "--subject", "CN=busy-1", "--max-wait", tt.maxWait, "--poll-interval", "1s",
				"--out", path("cert.pem"), "--key-out", path("key.pem"))
			took := time.Since(started)
			if took < tt.minTook {
				t.Errorf("enroll took %s, want at least %s (Retry-After honoured)", took, tt.minTook)
			}
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("enroll: %v\n%s", err, out)
				}
				if !strings.Contains(out, "HTTP 503: busy; asking again in") {
					t.Errorf("enroll did not say it asks again:\n%s", out)
				}
				if !pki.SamePublicKey(loadKey(t, path("key.pem")).Public(), certKey(t, path("cert.pem"))) {
					t.Error("the certificate is not for the key")
				}
				return
			}
			want := "HTTP 503: busy; the key is kept in " + path("key.pem") + ": run the same command again later, which asks with it"
			if tt.busy > 1 {
				// r134: both waits named; r144 D2: and when to ask again.
				want = "HTTP 503: busy; not asked again within --max-wait 2s: the server asked to wait 1s, until "
				if err == nil || !strings.Contains(err.Error(), "running the same command then asks again; the key is kept in "+path("key.pem")) {
					t.Errorf("enroll: %v, want it to say the key is kept", err)
				}
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("enroll: %v, want %q\n%s", err, want, out)
			}
			if _, err := os.Stat(path("key.pem" + heldMarkerSuffix)); err != nil {
				t.Errorf("the key's marker: %v", err)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if asked := tt.busy - s.busy; tt.retryAfter == "" || tt.maxWait == "0s" {
				if asked != 1 {
					t.Errorf("asked %d times, want once", asked)
				}
			} else if asked < 2 {
				t.Errorf("asked %d times within --max-wait, want more than once", asked)
			}
		})
	}
}
