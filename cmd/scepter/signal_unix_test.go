//go:build unix

package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// signalHelperEnv makes TestSignalHelperProcess a command that heeds no
// context after the first signal (as one blocked opening a FIFO did).
const signalHelperEnv = "SCEPTER_TEST_SIGNAL_HELPER"

func TestSignalHelperProcess(t *testing.T) {
	if os.Getenv(signalHelperEnv) != "1" {
		t.Skip("run by TestSecondSignalEndsProcess")
	}
	ctx, stop := signalContext()
	defer stop()
	fmt.Println("ready")
	<-ctx.Done()
	fmt.Println("stopping")
	time.Sleep(time.Minute) // stuck: only the second signal ends this
	os.Exit(3)
}

// The first SIGINT or SIGTERM cancels the command's context and leaves it
// running (serve shuts down gracefully); a second one ends the process at
// once with the signal's default action, even when the command is stuck
// where no context reaches. Every signal was caught: such a command could
// be ended by SIGKILL alone.
func TestSecondSignalEndsProcess(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestSignalHelperProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), signalHelperEnv+"=1")
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill() })
			lines := bufio.NewScanner(stdout)
			expectLine := func(want string) {
				t.Helper()
				if !lines.Scan() || lines.Text() != want {
					t.Fatalf("helper said %q (%v), want %q", lines.Text(), lines.Err(), want)
				}
			}
			expectLine("ready")
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			expectLine("stopping") // the first signal did not end it
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case err := <-exited:
				var ee *exec.ExitError
				if !errors.As(err, &ee) {
					t.Fatalf("helper ended with %v, want it killed by %v", err, sig)
				}
				if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != sig {
					t.Fatalf("helper ended with %v, want it killed by %v", err, sig)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("helper still running 20s after the second %v", sig)
			}
		})
	}
}
