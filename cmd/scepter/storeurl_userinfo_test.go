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
				name := map[string]string{"flag": "--store", "env": "SCEPTER_STORE"}[how]
				if err == nil || !strings.HasPrefix(err.Error(), name+": ") || !strings.Contains(err.Error(), "%40") {
					t.Fatalf("err = %v, want a %s error saying to write %%40", err, name)
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

// r82's URLs: a password with a raw '@' and later a raw '/' (so the '@'
// the user meant comes after the first '/'), with a bad percent-encoding
// too, or a query password with a bad one. Each is refused as a bad flag
// (exit 2) by serve and the CLI, before connecting (no DNS lookup of a
// piece of the password, no "temporarily unavailable" that systemd would
// restart on), saying what to percent-encode, and nothing printed holds 4
// bytes of the password in a row.
func TestStoreURLRefusalsQuoteNothing(t *testing.T) {
	for _, tt := range []struct{ name, url, password string }{
		{"raw @ then /", "postgres://scepter:Pa@ssword/Secret99@127.0.0.1:1/scep1", "Pa@ssword/Secret99"},
		{"raw @, / and bad %", "postgres://scepter:Pa@ss/w%zzSecret@127.0.0.1:1/scep1", "Pa@ss/w%zzSecret"},
		{"raw @, /, bad %, # and ?", "postgres://scepter:Pa@ss/w%rd#1?x@127.0.0.1:1/scep1", "Pa@ss/w%rd#1?x"},
		{"query password with bad %", "postgres://127.0.0.1:1/scep1?user=scepter&password=topsecret%zz", "topsecret%zz"},
	} {
		for _, args := range [][]string{
			{"certs", "list"},
			{"serve", "--listen", "127.0.0.1:0", "--est-listen", "off"},
		} {
			// Neither the test nor its subtests are named with a
			// piece of a password: serve logs the test's directory,
			// which is named after them.
			t.Run(tt.name+"/"+args[0], func(t *testing.T) {
				all, err := runWithStoreURL(t, args, "flag", tt.url)
				if err == nil || !strings.Contains(err.Error(), "--store") || !strings.Contains(err.Error(), "%25") {
					t.Fatalf("err = %v, want a --store error saying what to percent-encode", err)
				}
				if exitCode(err) != 2 {
					t.Errorf("exit code %d, want 2: %v", exitCode(err), err)
				}
				if strings.Contains(all, "temporarily unavailable") {
					t.Errorf("a configuration error called temporarily unavailable: %s", all)
				}
				text := strings.NewReplacer("password", "", "percent", "").Replace(all)
				for i := 0; i+4 <= len(tt.password); i++ {
					if piece := tt.password[i : i+4]; strings.Contains(text, piece) {
						t.Errorf("%q of the password %q shows: %s", piece, tt.password, all)
					}
				}
			})
		}
	}
}
