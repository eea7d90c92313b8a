//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A FIFO given where a file is read (a config file, a secret file, the
// backup a restore reads) is refused at once as no regular file. Opening
// one for reading waits for a writer: the command hung, holding the data
// directory's locks in a restore, and nothing but SIGKILL ended it.
func TestFifoAsInputFileIsRefused(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	out := t.TempDir()
	data := t.TempDir()
	tests := []struct {
		name string
		args []string
	}{
		{"--config", []string{"certs", "list", "--data-dir", filepath.Join(t.TempDir(), "data"), "--config", fifo}},
		{"--challenge-file", []string{"enroll", "--url", "http://127.0.0.1:1/scep", "--challenge-file", fifo,
			"--subject", "CN=device-1", "--out", filepath.Join(out, "cert.pem"), "--key-out", filepath.Join(out, "key.pem")}},
		{"store restore --in", []string{"store", "restore", "--data-dir", data, "--in", fifo}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, err := runCLIWithin(t, fifo, tt.args...)
			if err == nil || !strings.Contains(err.Error(), fifo+" is a named pipe, not a regular file") {
				t.Fatalf("err = %v, want %s refused as a named pipe\n%s", err, fifo, msg)
			}
		})
	}
}

// A restore refused for its FIFO leaves the data directory to a server.
func TestFifoRestoreLeavesNoLock(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	data := t.TempDir()
	if _, err := runCLIWithin(t, fifo, "store", "restore", "--data-dir", data, "--in", fifo); err == nil {
		t.Fatal("restore from a FIFO accepted")
	}
	unlock, err := lockDataDir(data)
	if err != nil {
		t.Fatalf("after the refused restore: %v", err)
	}
	unlock()
}

// runCLIWithin is runCLI that fails, rather than hangs, when the command
// is still waiting on fifo after a while: opening fifo for writing then
// lets the command's open return, and the test end.
func runCLIWithin(t *testing.T, fifo string, args ...string) (string, error) {
	t.Helper()
	type result struct {
		msg string
		err error
	}
	done := make(chan result, 1)
	go func() {
		msg, err := runCLI(args...)
		done <- result{msg, err}
	}()
	select {
	case r := <-done:
		return r.msg, r.err
	case <-time.After(20 * time.Second):
		if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
		<-done
		t.Fatalf("%v: still waiting on %s after 20s", args, fifo)
		return "", nil
	}
}
