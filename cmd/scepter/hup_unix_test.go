//go:build unix

package main

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SIGHUP (a logrotate postrotate) does not stop the server: it says so in
// the log and goes on serving.
func TestHangUpIsIgnored(t *testing.T) {
	s := serveInProcess(t, nil, "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test")
	if s.ended {
		t.Fatalf("serve ended: %v\n%s", s.err, s.errb.String())
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(s.out.String()+s.errb.String(), "SIGHUP ignored"); {
		select {
		case err := <-s.done:
			t.Fatalf("serve ended after SIGHUP: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no note of the SIGHUP within 60 s:\n%s\n%s", s.out.String(), s.errb.String())
		}
	}
	select {
	case err := <-s.done:
		t.Fatalf("serve ended after SIGHUP: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
}
