package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// After a wrong challenge the key kept for the request stays (README),
// and its marker now says that the challenge was refused, not the key; the
// next run, with the right challenge, says it takes up the key of a
// request whose challenge was refused and collects with it. Before (r125)
// the marker and the next run said that its answer was lost or that the
// server said to try again later, neither of which happened.
func TestEnrollAfterAWrongChallengeSaysItWasRefused(t *testing.T) {
	s := startServe(t, "")
	d := t.TempDir()
	keyOut := filepath.Join(d, "key.pem")
	enroll := func(challenge string) (string, error) {
		return runCLI("enroll", "--url", s.scepURL, "--ca-fingerprint", s.fingerprint, "--challenge", challenge,
			"--subject", "CN=wrong-challenge", "--out", filepath.Join(d, "cert.pem"), "--key-out", keyOut)
	}
	out, err := enroll("not-the-challenge")
	if err == nil {
		t.Fatalf("enroll with a wrong challenge succeeded:\n%s", out)
	}
	if want := "the challenge was refused, not the key"; !strings.Contains(err.Error(), want) {
		t.Errorf("enroll said %v, want %q", err, want)
	}
	marker, rerr := os.ReadFile(keyOut + heldMarkerSuffix)
	if rerr != nil {
		t.Fatal(rerr)
	}
	for _, want := range []string{"the server refused its challenge or password, not its key", heldMarkerHoldLine + "no"} {
		if !strings.Contains(string(marker), want) {
			t.Errorf("the marker says:\n%s\nwant %q", marker, want)
		}
	}
	if strings.Contains(string(marker), "answer was lost") {
		t.Errorf("the marker says:\n%s\nno answer was lost", marker)
	}
	out, err = enroll("test")
	if err != nil {
		t.Fatalf("enroll with the right challenge: %v\n%s", err, out)
	}
	if want := "using the key in " + keyOut + ", kept by an earlier run of this request, whose challenge or password the server refused (not the key)"; !strings.Contains(out, want) {
		t.Errorf("the next run said:\n%s\nwant %q", out, want)
	}
}
