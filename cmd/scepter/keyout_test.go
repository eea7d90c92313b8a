package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

// Following the README in one directory, `scepter enroll` and then
// `scepter est enroll` both default to cert.pem and key.pem: the second is
// refused instead of silently replacing the first one's key (unless
// --force), while renewing in place (`renew`, `est reenroll`, with or
// without --rekey) still replaces the key being renewed.
func TestEnrollDoesNotReplaceAnotherKey(t *testing.T) {
	s := startServe(t, "[profiles.default]\nrenewal_window = \"100%\"\n")
	d := t.TempDir()
	path := func(name string) string { return filepath.Join(d, name) }
	outs := []string{"--out", path("cert.pem"), "--key-out", path("key.pem")}
	scepEnroll := func(cn string, extra ...string) (string, error) {
		return runCLI(append(append([]string{"enroll", "--url", s.scepURL, "--challenge", "test", "--subject", "CN=" + cn, "--ca-fingerprint", s.fingerprint}, outs...), extra...)...)
	}
	estEnroll := func(cn string, extra ...string) (string, error) {
		return runCLI(append(append([]string{"est", "enroll", "--url", s.estURL, "--ca-fingerprint", s.fingerprint, "--subject", "CN=" + cn}, outs...), extra...)...)
	}
	if out, err := scepEnroll("first"); err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	first := loadKey(t, path("key.pem")).Public()
	unchanged := func(what string) {
		t.Helper()
		if !pki.SamePublicKey(first, loadKey(t, path("key.pem")).Public()) || !pki.SamePublicKey(first, certKey(t, path("cert.pem"))) {
			t.Fatalf("%s replaced key.pem or cert.pem", what)
		}
	}

	for _, tt := range []struct {
		name string
		run  func() (string, error)
	}{
		{"est enroll", func() (string, error) { return estEnroll("second") }},
		{"enroll again", func() (string, error) { return scepEnroll("second") }},
	} {
		out, err := tt.run()
		if err == nil || !strings.Contains(err.Error(), "--key-out "+path("key.pem")+" already holds another private key") ||
			!strings.Contains(err.Error(), "--force") {
			t.Fatalf("%s into the same files: %v, want a refusal naming key.pem and --force\n%s", tt.name, err, out)
		}
		unchanged(tt.name)
	}
	for _, name := range []string{"key.pem.pending"} {
		if _, err := os.Stat(path(name)); err == nil {
			t.Errorf("%s left by a refused enrollment", name)
		}
	}
	// Something else than a key is not replaced either.
	if err := os.WriteFile(path("other.pem"), []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI("enroll", "--url", s.scepURL, "--challenge", "test", "--subject", "CN=other", "--ca-fingerprint", s.fingerprint,
		"--out", path("other-cert.pem"), "--key-out", path("other.pem")); err == nil || !strings.Contains(err.Error(), "holds something that is not this request's key") {
		t.Fatalf("enroll over a file that is no key: %v\n%s", err, out)
	}

	// Renewing in place replaces the key being renewed, as before.
	renew := []string{"renew", "--url", s.scepURL, "--ca-fingerprint", s.fingerprint, "--cert", path("cert.pem"), "--key", path("key.pem")}
	if out, err := runCLI(append(renew, "--out", path("cert.pem"))...); err != nil {
		t.Fatalf("renew in place: %v\n%s", err, out)
	}
	if out, err := runCLI(append(renew, "--rekey", "--out", path("cert.pem"), "--key-out", path("key.pem"))...); err != nil {
		t.Fatalf("renew --rekey in place: %v\n%s", err, out)
	}
	reenroll := []string{"est", "reenroll", "--url", s.estURL, "--ca-fingerprint", s.fingerprint, "--cert", path("cert.pem"), "--key", path("key.pem")}
	if out, err := runCLI(append(reenroll, outs...)...); err != nil {
		t.Fatalf("est reenroll in place: %v\n%s", err, out)
	}
	if out, err := runCLI(append(append(reenroll, "--rekey"), outs...)...); err != nil {
		t.Fatalf("est reenroll --rekey in place: %v\n%s", err, out)
	}
	renewed := loadKey(t, path("key.pem")).Public()
	if pki.SamePublicKey(first, renewed) || !pki.SamePublicKey(renewed, certKey(t, path("cert.pem"))) {
		t.Fatal("the renewals in place did not leave a new matching pair")
	}

	// --force replaces it.
	if out, err := estEnroll("forced", "--force"); err != nil {
		t.Fatalf("est enroll --force: %v\n%s", err, out)
	}
	forced := loadKey(t, path("key.pem")).Public()
	if pki.SamePublicKey(forced, renewed) || !pki.SamePublicKey(forced, certKey(t, path("cert.pem"))) {
		t.Error("est enroll --force did not replace the pair")
	}
}
