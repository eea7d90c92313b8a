package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/pki"
)

// A request held across a CA rollover's switch by `enroll --max-wait`
// pinning the old issuing CA is refused (it does not chain to the pinned
// CA) and its key kept, as before; the message now says that the
// certificate chains to the pinned CA's root through the new CA, and to
// pin the root (or the new CA), and the run so pinned collects it. Before
// (r125 D5) it said "x509: certificate signed by unknown authority" and to
// run the same command again, which fails the same way every time.
func TestEnrollPinningTheOldIssuingCAIsToldToPinTheRoot(t *testing.T) {
	s := startServe(t, "[profiles.default]\napproval = true\n", "--ca-reload-interval", "200ms")
	d := t.TempDir()
	path := func(name string) string { return filepath.Join(d, name) }
	before := issuingCAs(t, s)
	if len(before) != 1 {
		t.Fatalf("issuing CAs %d, want one", len(before))
	}
	oldPin := client.Fingerprint(before[0])
	enroll := func(pin string, extra ...string) (string, error) {
		return runCLI(append([]string{"enroll", "--url", s.scepURL, "--challenge", "test", "--ca-fingerprint", pin,
			"--subject", "CN=pinned-issuing", "--out", path("cert.pem"), "--key-out", path("key.pem")}, extra...)...)
	}
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := enroll(oldPin, "--max-wait", "90s", "--poll-interval", "1s")
		done <- result{out, err}
	}()
	var ids []string
	for deadline := time.Now().Add(30 * time.Second); len(ids) == 0; time.Sleep(100 * time.Millisecond) {
		if ids = s.pending(t); len(ids) == 0 && time.Now().After(deadline) {
			t.Fatal("no request held within 30 s")
		}
	}
	newPin := client.Fingerprint(rollOverTo(t, s, before))
	s.approve(t, ids[0])
	r := <-done
	if r.err == nil {
		t.Fatalf("enroll pinning the old issuing CA took a certificate of the new one:\n%s", r.out)
	}
	msg := r.err.Error()
	for _, want := range []string{"it chains to the pinned CA's root", "pin that root instead, --ca-fingerprint " + s.fingerprint,
		"or the new CA, --ca-fingerprint " + newPin, "the key made for this request stays in " + path("key.pem")} {
		if !strings.Contains(msg, want) {
			t.Errorf("enroll said %v\nwant %q", msg, want)
		}
	}
	for _, wrong := range []string{"signed by unknown authority", "run the same command again"} {
		if strings.Contains(msg, wrong) {
			t.Errorf("enroll said %v, with %q", msg, wrong)
		}
	}
	sent := loadKey(t, path("key.pem")).Public()
	if out, err := enroll(s.fingerprint); err != nil {
		t.Fatalf("enroll pinning the root: %v\n%s", err, out)
	}
	if !pki.SamePublicKey(sent, certKey(t, path("cert.pem"))) {
		t.Error("the certificate collected with the root pinned is not for the kept key")
	}
}
