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

// Stopping `enroll --max-wait` (SIGTERM, SIGINT: its context is cancelled)
// while it waits for a request held for approval leaves the key made for
// that request on disk with its marker, kept before the request was sent:
// the server holds the request (and has used up a one-time challenge), and
// once it is approved the same command, run again, collects the
// certificate for that key. Before, the key lived only in memory until the
// wait ended, and was lost.
func TestStoppedEnrollWaitKeepsItsKey(t *testing.T) {
	s := startServe(t, "[profiles.default]\napproval = true\n")
	d := t.TempDir()
	keyOut := filepath.Join(d, "key.pem")
	enroll := []string{"enroll", "--url", s.scepURL, "--challenge", "test", "--ca-fingerprint", s.fingerprint,
		"--subject", "CN=stopped-wait", "--key-type", "p256", "--out", filepath.Join(d, "cert.pem"), "--key-out", keyOut}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	e, _, errb := testEnv(nil)
	go func() {
		done <- run(ctx, e, append(enroll, "--max-wait", "1h", "--poll-interval", "1s"))
	}()
	for deadline := time.Now().Add(30 * time.Second); len(s.pending(t)) == 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no request held within 30 s")
		}
	}
	for _, f := range []string{keyOut, keyOut + heldMarkerSuffix} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("while the request waits: %v", err)
		}
	}
	sent := loadKey(t, keyOut).Public()
	stop()
	err := <-done
	for _, want := range []string{"pending manual approval (waiting for it was stopped)", "its key is saved in " + keyOut, "run the same command again"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("the stopped wait said %v, want %q\n%s", err, want, errb)
		}
	}
	// The stop is said once, in the user's words, not Go's (r125).
	if err != nil && (strings.Count(err.Error(), "stopped") != 1 || strings.Contains(err.Error(), "context canceled")) {
		t.Errorf("the stopped wait said %v: want the stop said once, without %q", err, "context canceled")
	}
	for _, f := range []string{keyOut, keyOut + heldMarkerSuffix} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("after the wait was stopped: %v", err)
		}
	}

	ids := s.pending(t)
	if len(ids) != 1 {
		t.Fatalf("held requests %v, want one", ids)
	}
	s.approve(t, ids[0])
	if out, err := runCLI(enroll...); err != nil {
		t.Fatalf("enroll run again after the approval: %v\n%s", err, out)
	}
	if got := certKey(t, filepath.Join(d, "cert.pem")); !pki.SamePublicKey(sent, got) {
		t.Error("the collected certificate is not for the key kept by the stopped run")
	}
	if len(s.pending(t)) != 0 {
		t.Errorf("still held: %v", s.pending(t))
	}
}
