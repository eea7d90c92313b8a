package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/pki"
)

// A request held with --ca-fingerprint pinning the issuing CA, run again
// after a CA rollover's switch with the same pin, finds the pin matching
// none of GetCACert's certificates: the run now says that the server no
// longer sends the pinned CA, to pin the root (naming its fingerprint) or
// the CA that issues now, and that the key stays; the run so pinned
// collects the certificate with it. Before (r125 D5), it said to run the
// same command again later, which fails alike every time.
func TestEnrollRerunPinningAReplacedIssuingCAIsToldToPinTheRoot(t *testing.T) {
	s := startServe(t, "[profiles.default]\napproval = true\n", "--ca-reload-interval", "200ms")
	d := t.TempDir()
	path := func(name string) string { return filepath.Join(d, name) }
	before := issuingCAs(t, s)
	if len(before) != 1 {
		t.Fatalf("issuing CAs %d, want one", len(before))
	}
	oldPin := client.Fingerprint(before[0])
	args := func(pin string) []string {
		return []string{"enroll", "--url", s.scepURL, "--challenge", "test", "--ca-fingerprint", pin,
			"--subject", "CN=pinned-rerun", "--out", path("cert.pem"), "--key-out", path("key.pem")}
	}
	s.expectHeld(t, "enroll pinning the issuing CA", args(oldPin), "its key is saved in "+path("key.pem"))
	sent := loadKey(t, path("key.pem")).Public()

	newPin := client.Fingerprint(rollOverTo(t, s, before))
	out, err := runCLI(args(oldPin)...)
	if err == nil {
		t.Fatalf("enroll pinning the replaced issuing CA succeeded:\n%s", out)
	}
	msg := err.Error()
	for _, want := range []string{"no certificate from the server matches CA fingerprint " + oldPin,
		"the server no longer sends that CA (a CA rollover replaced it?)",
		"pin the root instead, --ca-fingerprint " + s.fingerprint, "or the CA that issues now, --ca-fingerprint " + newPin,
		path("key.pem") + " is still the key of the request held for approval earlier", "keep it, and the command run with that --ca-fingerprint takes it up"} {
		if !strings.Contains(msg, want) {
			t.Errorf("enroll said %v\nwant %q", msg, want)
		}
	}
	if strings.Contains(msg, "run the same command again") {
		t.Errorf("enroll said %v, with advice to run it again as it is", msg)
	}
	if !pki.SamePublicKey(sent, loadKey(t, path("key.pem")).Public()) {
		t.Fatal("the kept key changed")
	}

	s.approve(t, s.pending(t)[0])
	if out, err := runCLI(args(s.fingerprint)...); err != nil {
		t.Fatalf("enroll pinning the root: %v\n%s", err, out)
	}
	if !pki.SamePublicKey(sent, certKey(t, path("cert.pem"))) {
		t.Error("the certificate collected with the root pinned is not for the kept key")
	}
}
