package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

// `scepter est enroll` keeps its key (0600, with its marker) before it
// asks: when the answer is lost after the server issued (at a one-time
// challenge's profile, the challenge used up with it), the same command
// asks again with that key and collects the certificate issued for it
// (r75 D1). A final refusal removes the key; a refused password, or a
// refusal that may pass, keeps it.
func TestESTEnrollKeepsItsKeyBeforeAsking(t *testing.T) {
	for _, tt := range []struct {
		name      string
		dropFirst bool
		badFirst  bool
		refuse    int
		want      []string // in the first run's error
		kept      bool     // key.pem and its marker after the first run
	}{
		{"answer lost", true, false, 0, []string{"the certificate may have been issued", "run the same command again, which asks again with that key"}, true},
		{"a bad answer", false, true, 0, []string{"no end-entity certificate for our key", "the key made for this request stays in ", "run the same command again, which asks with it"}, true},
		{"refused", false, false, http.StatusForbidden, []string{"HTTP 403", "a refusal is final", "is removed"}, false},
		{"wrong password", false, false, http.StatusUnauthorized, []string{"HTTP 401", "the credentials were refused, not the key: the key stays in "}, true},
		{"rate limited", false, false, http.StatusTooManyRequests, []string{"HTTP 429", "run the same command again later"}, true},
		{"server error", false, false, http.StatusServiceUnavailable, []string{"HTTP 503", "run the same command again later"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &reenrollEST{t: t, dropFirst: tt.dropFirst, badFirst: tt.badFirst, refuse: tt.refuse}
			u, caFile := startReenrollEST(t, s)
			d := t.TempDir()
			path := func(name string) string { return filepath.Join(d, name) }
			enroll := func() (string, error) {
				return runCLI("est", "enroll", "--url", u, "--cacert", caFile, "--subject", "CN=lost-1",
					"--out", path("cert.pem"), "--key-out", path("key.pem"))
			}
			out, err := enroll()
			if err == nil {
				t.Fatalf("first enroll succeeded\n%s", out)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("first enroll: %v; want it to say %q", err, w)
				}
			}
			if tt.badFirst && strings.Contains(err.Error(), "no answer came") {
				t.Errorf("first enroll: %v; the server answered, wrongly", err)
			}
			if _, err := os.Stat(path("cert.pem")); !os.IsNotExist(err) {
				t.Errorf("cert.pem after the failed enroll: %v", err)
			}
			fi, keyErr := os.Stat(path("key.pem"))
			_, markerErr := os.Stat(path("key.pem" + heldMarkerSuffix))
			if kept := keyErr == nil; kept != tt.kept || (markerErr == nil) != tt.kept {
				t.Fatalf("key.pem kept: %v (its marker: %v), want %v; %v", kept, markerErr == nil, tt.kept, err)
			}
			if !tt.kept {
				return
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("key.pem has mode %v, want 0600", fi.Mode().Perm())
			}
			if !strings.Contains(err.Error(), path("key.pem")) {
				t.Errorf("the error does not say where the key is: %v", err)
			}
			kept := loadKey(t, path("key.pem")).Public()

			s.mu.Lock()
			s.refuse = 0
			s.mu.Unlock()
			out, err = enroll()
			if err != nil {
				t.Fatalf("enroll again: %v\n%s", err, out)
			}
			if !strings.Contains(out, "using the key in "+path("key.pem")) {
				t.Errorf("the second run does not say it takes the kept key up:\n%s", out)
			}
			if !pki.SamePublicKey(kept, certKey(t, path("cert.pem"))) || !pki.SamePublicKey(kept, loadKey(t, path("key.pem")).Public()) {
				t.Error("the certificate is not for the key kept by the first run")
			}
			if _, err := os.Stat(path("key.pem" + heldMarkerSuffix)); !os.IsNotExist(err) {
				t.Errorf("the marker is left after the certificate was issued: %v", err)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if len(s.issued) != 1 {
				t.Errorf("%d certificates issued, want one", len(s.issued))
			}
		})
	}
}

// r112 D1: a key kept by a run that got no certificate, and no hold (an
// HTTP 503), is taken up and named as such, and the advice is to keep it,
// in every line: "held for approval" only once a hold was answered (from
// then on, whatever the later answers), and an older build's marker, which
// does not say, keeps its old words. No line says to remove the key when
// another says to keep it.
func TestESTEnrollKeptKeyWordsWhetherItWasHeld(t *testing.T) {
	const (
		noCert  = "which got no certificate (its answer was lost, or the server said to try again later)"
		noCertN = "is still the key of this request, kept by an earlier run that got no certificate"
		held    = "which was held for approval: asking with it again"
		heldN   = "is still the key of the request held for approval earlier"
		either  = "which was held for approval or whose answer was lost"
		eitherN = "is still the key of this request, saved by an earlier run that was held for approval or whose answer was lost"
	)
	type answer struct {
		refuse, hold int
		oldMarker    bool // the marker rewritten as an older build wrote it, before this run
		announce     string
		note         string
	}
	for _, tt := range []struct {
		name string
		runs []answer
	}{
		{"503, then 503", []answer{{refuse: 503}, {refuse: 503, announce: noCert, note: noCertN}, {refuse: 503, announce: noCert, note: noCertN}}},
		{"503, then held, then 503", []answer{{refuse: 503}, {hold: 1, announce: noCert}, {refuse: 503, announce: held, note: heldN}}},
		{"held, then 503", []answer{{hold: 1}, {refuse: 503, announce: held, note: heldN}, {refuse: 429, announce: held, note: heldN}}},
		{"an older build's marker", []answer{{refuse: 503}, {refuse: 503, oldMarker: true, announce: either, note: eitherN}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &reenrollEST{t: t}
			u, caFile := startReenrollEST(t, s)
			d := t.TempDir()
			path := func(name string) string { return filepath.Join(d, name) }
			for i, a := range tt.runs {
				s.mu.Lock()
				s.refuse, s.hold = a.refuse, a.hold
				s.mu.Unlock()
				if a.oldMarker {
					data, err := os.ReadFile(path("key.pem" + heldMarkerSuffix))
					if err != nil {
						t.Fatal(err)
					}
					var lines []string
					for _, l := range strings.Split(string(data), "\n") {
						if !strings.HasPrefix(l, heldMarkerHoldLine) {
							lines = append(lines, l)
						}
					}
					if err := os.WriteFile(path("key.pem"+heldMarkerSuffix), []byte(strings.Join(lines, "\n")), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				out, err := runCLI("est", "enroll", "--url", u, "--cacert", caFile, "--subject", "CN=kept-1",
					"--out", path("cert.pem"), "--key-out", path("key.pem"))
				if err == nil {
					t.Fatalf("run %d succeeded\n%s", i+1, out)
				}
				msg := err.Error()
				if a.announce != "" && !strings.Contains(out, "using the key in "+path("key.pem")+", kept by an earlier run of this request, "+a.announce) {
					t.Errorf("run %d says:\n%s\nwant it to take the key up %q", i+1, out, a.announce)
				}
				if a.note != "" && (!strings.Contains(msg, path("key.pem")+" "+a.note) || !strings.Contains(msg, "keep it")) {
					t.Errorf("run %d: %v\nwant it to say the key %q, to keep", i+1, err, a.note)
				}
				if a.announce != held && a.note != heldN && (strings.Contains(out, "held for approval:") || strings.Contains(msg, "held for approval earlier")) {
					t.Errorf("run %d says a request was held, which none was:\n%s\n%v", i+1, out, err)
				}
				if strings.Contains(out, "remove") || a.hold == 0 && strings.Contains(msg, "remove") {
					t.Errorf("run %d says to remove the key it keeps:\n%s\n%v", i+1, out, err)
				}
				if _, err := os.Stat(path("key.pem")); err != nil {
					t.Fatalf("run %d: the key is not kept: %v", i+1, err)
				}
			}
			s.mu.Lock()
			s.refuse, s.hold = 0, 0
			s.mu.Unlock()
			if out, err := runCLI("est", "enroll", "--url", u, "--cacert", caFile, "--subject", "CN=kept-1",
				"--out", path("cert.pem"), "--key-out", path("key.pem")); err != nil {
				t.Fatalf("last run: %v\n%s", err, out)
			}
			if _, err := os.Stat(path("key.pem" + heldMarkerSuffix)); !os.IsNotExist(err) {
				t.Errorf("the marker is left after the certificate was issued: %v", err)
			}
		})
	}
}
