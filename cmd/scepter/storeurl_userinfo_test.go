package main

import (
	"strings"
	"testing"
)

// A --store URL whose password holds a raw '@' is refused as a bad flag
// (exit 2, not "temporarily unavailable"), by serve and by the CLI, from the
// flag and from SCEPTER_STORE, saying to write %40, and printing no part of
// the password: the driver would take its tail for the host name and print
// it in its error.
func TestStoreURLRawAtRefused(t *testing.T) {
	const bad = "postgres://r3:Pa@ss-secret@127.0.0.1:1/r3?sslmode=disable&connect_timeout=2"
	for _, args := range [][]string{
		{"certs", "list"},
		{"serve", "--listen", "127.0.0.1:0", "--est-listen", "127.0.0.1:0"},
	} {
		for _, how := range []string{"flag", "env"} {
			t.Run(args[0]+"/"+how, func(t *testing.T) {
				all, err := runWithStoreURL(t, args, how, bad)
				if err == nil || !strings.Contains(err.Error(), "--store") || !strings.Contains(err.Error(), "%40") {
					t.Fatalf("err = %v, want a --store error saying to write %%40", err)
				}
				if exitCode(err) != 2 {
					t.Errorf("exit code %d, want 2: %v", exitCode(err), err)
				}
				for _, part := range []string{"ss-secret", "Pa@ss"} {
					if strings.Contains(all, part) {
						t.Errorf("%q of the password shows: %s", part, all)
					}
				}
				if strings.Contains(all, "temporarily unavailable") {
					t.Errorf("a configuration error called temporarily unavailable: %s", all)
				}
			})
		}
	}
}
