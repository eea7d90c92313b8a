//go:build unix

package main

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
)

// SIGHUP (a logrotate postrotate) does not end the long-running agent, as
// it does not end serve: it says so in the log and goes on. It killed the
// agent (exit 129) without a word.
func TestAgentHangUpIsIgnored(t *testing.T) {
	_, config, _ := agentMachine(t, pki.SystemClock{}.Now().Add(-time.Hour), 90*24*time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, errb := &syncBuffer{}, &syncBuffer{}
	e := env{stdout: out, stderr: errb, lookupEnv: func(string) (string, bool) { return "", false }}
	done := make(chan error, 1)
	go func() { done <- run(ctx, e, []string{"agent", "--config", config}) }()
	waitFor := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); !strings.Contains(errb.String(), what); {
			select {
			case err := <-done:
				t.Fatalf("the agent ended (%v) before saying %q:\n%s", err, what, errb.String())
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("the agent did not say %q within 60 s:\n%s", what, errb.String())
			}
		}
	}
	waitFor("sleeping")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("SIGHUP ignored")
	select {
	case err := <-done:
		t.Fatalf("the agent ended after SIGHUP: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("stopped: %v", err)
	}
}
