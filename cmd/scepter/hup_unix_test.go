//go:build unix

package main

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SIGHUP (a logrotate postrotate) does not stop the server: it says so in
// the log and goes on serving.
func TestHangUpIsIgnored(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	e := env{stdout: &out, stderr: &errb, lookupEnv: func(string) (string, bool) { return "", false }}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, e, []string{"serve", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test"})
	}()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !ok() {
			select {
			case err := <-done:
				t.Fatalf("serve ended: %v\n%s\n%s", err, out.String(), errb.String())
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s within 60 s:\n%s\n%s", what, out.String(), errb.String())
			}
		}
	}
	waitFor("banner", func() bool { return strings.Contains(out.String(), "Data directory:") })
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("note of the SIGHUP", func() bool { return strings.Contains(out.String()+errb.String(), "SIGHUP ignored") })
	select {
	case err := <-done:
		t.Fatalf("serve ended after SIGHUP: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	<-done
}
