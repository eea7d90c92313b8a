package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// errStdoutDiscarded: stdout is /dev/null (or closed, which Go reopens on
// /dev/null), so a secret printed once would be lost.
var errStdoutDiscarded = errors.New("stdout is /dev/null (or was closed): the secret, printed this once, would be lost; capture it (> FILE, or $(…))")

// checkSecretOut refuses, before anything is made, a stdout that throws
// away what is written to it.
func checkSecretOut(e env) error {
	f, ok := e.stdout.(*os.File)
	if !ok {
		return nil
	}
	out, err := f.Stat()
	if err != nil {
		return nil // the write will say
	}
	if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(out, null) {
		return errStdoutDiscarded
	}
	return nil
}

// writeSecret prints a secret shown this once. A reader that went away
// (a closed pipe) is an error the caller can act on, not SIGPIPE killing
// the process with the secret stored and seen by nobody.
func writeSecret(e env, secret string) error {
	signal.Ignore(syscall.SIGPIPE)
	_, err := fmt.Fprintln(e.stdout, secret)
	return err
}
