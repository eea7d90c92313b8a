package main

import "golang.org/x/sys/unix"

// stopCoreDumps makes this process non-dumpable (PR_SET_DUMPABLE 0): a
// crash writes no core file, which would hold the CA's and the RA's keys
// (OpenSSL's copy of an RSA key too) wherever core_pattern puts it, and
// another process of the same user may not ptrace it or read its memory
// (/proc/PID/mem, environ, fd). /proc/PID/stat and status, which
// `scepter bench --server-pid` and scripts/bench read, stay readable.
func stopCoreDumps() error {
	return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
}
