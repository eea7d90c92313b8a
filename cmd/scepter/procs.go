package main

import (
	"log/slog"
	"runtime"
)

// minServeProcs is the fewest Ps (GOMAXPROCS) serve runs with. The store's
// writes end in fsync and other blocking system calls, and the Go runtime
// hands a P blocked in one to other goroutines only after a while. With a
// single P (one CPU, or a container limited to one) requests wait for each
// other: on one pinned core, p99 was 105 ms with one P and 50 ms with two at
// concurrency 8, and 1.3 s against 0.29 s at 64, for 0.16 ms more CPU per
// enrollment at 8 (BENCHMARKS.md, docs/deployment.md). A GOMAXPROCS set in
// the environment is left as it is.
const minServeProcs = 2

// ensureServeProcs raises GOMAXPROCS to minServeProcs unless the
// environment sets it; it returns the value in force.
func ensureServeProcs(e env, log *slog.Logger) int {
	n := runtime.GOMAXPROCS(0)
	if _, set := e.lookupEnv("GOMAXPROCS"); set || n >= minServeProcs {
		return n
	}
	runtime.GOMAXPROCS(minServeProcs)
	log.Debug("GOMAXPROCS raised so that blocking store writes do not stall the server", "from", n, "to", minServeProcs)
	return minServeProcs
}
