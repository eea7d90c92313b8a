package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
)

// Stopping `est enroll --max-wait` or `est reenroll --rekey --max-wait`
// (SIGTERM, SIGINT: its context is cancelled) while it waits for a request
// held for approval says, as SCEP enroll does (TestStoppedEnrollWaitKeepsItsKey),
// that the request stays held and where its key is kept, to collect it by
// running the same command again; before, it said "context canceled" and
// that no answer came, though the server had answered with a hold. The
// key and its marker stay, and the same command, run again once the
// request is approved, collects the certificate for that key.
func TestStoppedESTWaitKeepsItsKey(t *testing.T) {
	s := startServe(t, "[profiles.default]\napproval = true\nrenewal_window = \"100%\"\n")
	d := t.TempDir()
	path := func(name string) string { return filepath.Join(d, name) }
	collected := func(what string, args []string) {
		t.Helper()
		ids := s.pending(t)
		if len(ids) != 1 {
			t.Fatalf("%s: held requests %v, want one", what, ids)
		}
		s.approve(t, ids[0])
		if out, err := runCLI(args...); err != nil {
			t.Fatalf("%s run again after the approval: %v\n%s", what, err, out)
		}
		if ids := s.pending(t); len(ids) != 0 {
			t.Fatalf("%s: still held: %v", what, ids)
		}
	}
	enroll := []string{"est", "enroll", "--url", s.estURL, "--ca-fingerprint", s.fingerprint, "--subject", "CN=stopped-est",
		"--out", path("cert.pem"), "--key-out", path("key.pem")}
	reenroll := []string{"est", "reenroll", "--url", s.estURL, "--ca-fingerprint", s.fingerprint, "--cert", path("cert.pem"), "--key", path("key.pem"),
		"--rekey", "--out", path("new.pem"), "--key-out", path("newkey.pem")}
	for _, tt := range []struct {
		name   string
		args   []string
		keyOut string
		cert   string
		before func(t *testing.T) // makes what the command needs
	}{
		{"est enroll", enroll, path("key.pem"), path("cert.pem"), nil},
		{"est reenroll --rekey", reenroll, path("newkey.pem"), path("new.pem"), func(t *testing.T) {
			if _, err := os.Stat(path("cert.pem")); err != nil {
				t.Skipf("est enroll did not collect its certificate: %v", err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.before != nil {
				tt.before(t)
			}
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			done := make(chan error, 1)
			e, _, errb := testEnv(map[string]string{"SCEPTER_EST_PASSWORD": "test"})
			go func() {
				done <- run(ctx, e, append(tt.args, "--max-wait", "1h", "--poll-interval", "1s"))
			}()
			for deadline := time.Now().Add(30 * time.Second); len(s.pending(t)) == 0; time.Sleep(100 * time.Millisecond) {
				if time.Now().After(deadline) {
					stop()
					t.Fatalf("no request held within 30 s: %v\n%s", <-done, errb)
				}
			}
			for _, f := range []string{tt.keyOut, tt.keyOut + heldMarkerSuffix} {
				if _, err := os.Stat(f); err != nil {
					t.Errorf("while the request waits: %v", err)
				}
			}
			sent := loadKey(t, tt.keyOut).Public()
			stop()
			err := <-done
			for _, want := range []string{"pending manual approval (waiting for it was stopped)", "its key is saved in " + tt.keyOut,
				"run the same command again"} {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("the stopped wait said %v, want %q\n%s", err, want, errb)
				}
			}
			// The stop is said once, in the user's words, not Go's (r125).
			if err != nil && (strings.Count(err.Error(), "stopped") != 1 || strings.Contains(err.Error(), "context canceled")) {
				t.Errorf("the stopped wait said %v: want the stop said once, without %q", err, "context canceled")
			}
			if err != nil && strings.Contains(err.Error(), "no answer came") {
				t.Errorf("the stopped wait said %v; the server answered with a hold", err)
			}
			for _, f := range []string{tt.keyOut, tt.keyOut + heldMarkerSuffix} {
				if _, err := os.Stat(f); err != nil {
					t.Errorf("after the wait was stopped: %v", err)
				}
			}
			collected(tt.name, tt.args)
			if got := certKey(t, tt.cert); !pki.SamePublicKey(sent, got) {
				t.Error("the collected certificate is not for the key kept by the stopped run")
			}
		})
	}
}
