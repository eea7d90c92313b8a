//go:build !linux

package main

// stopCoreDumps does nothing here: PR_SET_DUMPABLE is Linux's (see
// dumpable_linux.go).
func stopCoreDumps() error { return nil }
