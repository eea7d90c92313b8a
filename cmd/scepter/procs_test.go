package main

import (
	"log/slog"
	"runtime"
	"testing"
)

func TestEnsureServeProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	log := slog.New(slog.DiscardHandler)
	unset := env{lookupEnv: func(string) (string, bool) { return "", false }}
	set := env{lookupEnv: func(k string) (string, bool) { return "1", k == "GOMAXPROCS" }}

	runtime.GOMAXPROCS(1)
	if n := ensureServeProcs(set, log); n != 1 || runtime.GOMAXPROCS(0) != 1 {
		t.Errorf("GOMAXPROCS=1 in the environment: %d in force, want 1 (left alone)", runtime.GOMAXPROCS(0))
	}
	if n := ensureServeProcs(unset, log); n != minServeProcs || runtime.GOMAXPROCS(0) != minServeProcs {
		t.Errorf("one P, nothing set: %d in force, want %d", runtime.GOMAXPROCS(0), minServeProcs)
	}
	runtime.GOMAXPROCS(4)
	if n := ensureServeProcs(unset, log); n != 4 || runtime.GOMAXPROCS(0) != 4 {
		t.Errorf("four Ps: %d in force, want 4", runtime.GOMAXPROCS(0))
	}
}
