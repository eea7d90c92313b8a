package main

import (
	"io"
	"log/slog"
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name string
		env  map[string]string
		want int
	}{
		{"GOGC unset: serve's target", nil, serveGCPercent},
		{"GOGC empty counts as unset", map[string]string{"GOGC": ""}, serveGCPercent},
		{"GOGC set: left to the runtime", map[string]string{"GOGC": "50"}, 77},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := debug.SetGCPercent(77) // what the runtime took from GOGC, say
			t.Cleanup(func() { debug.SetGCPercent(old) })
			e := env{lookupEnv: func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }}
			tuneGC(e, log)
			if got := debug.SetGCPercent(77); got != tc.want {
				t.Errorf("GC percent = %d, want %d", got, tc.want)
			}
		})
	}
}
