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

// Two devices enrolled in one directory, each with its own --out and the
// default key.pem: the second is refused (README: a --key-out that holds
// another private key is refused unless --force) instead of taking up the
// first one's issued key, which certified one private key for two devices
// (r57 D5). A key kept for a request held for approval is taken up only by
// the same request: the same names at the same URL.
func TestEnrollNeverTakesUpAnotherDevicesKey(t *testing.T) {
	s := startServe(t, "")
	held := startServe(t, "[profiles.default]\napproval = true\n") // holds every request for approval
	for _, tt := range []struct {
		name                                       string
		url, heldURL, fingerprint, heldFingerprint string
		args                                       []string
	}{
		{"enroll", s.scepURL, held.scepURL, s.fingerprint, held.fingerprint, []string{"enroll", "--challenge", "test", "--key-type", "p256"}},
		{"est enroll", s.estURL, held.estURL, s.fingerprint, held.fingerprint, []string{"est", "enroll"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			path := func(name string) string { return filepath.Join(d, name) }
			enroll := func(url, fingerprint, cn string) []string {
				return append(append([]string{}, tt.args...), "--url", url, "--ca-fingerprint", fingerprint, "--subject", "CN="+cn,
					"--out", path(cn+".pem"), "--key-out", path("key.pem"))
			}
			refused := func(what string, args []string, want string) {
				t.Helper()
				out, err := runCLI(args...)
				if err == nil || !strings.Contains(err.Error(), "--key-out "+path("key.pem")+" already holds "+want) || !strings.Contains(err.Error(), "--force") {
					t.Fatalf("%s: %v, want a refusal saying key.pem holds %s, naming --force\n%s", what, err, want, out)
				}
				if strings.Contains(out, "using the key in") {
					t.Errorf("%s took up key.pem:\n%s", what, out)
				}
			}

			if out, err := runCLI(enroll(tt.url, tt.fingerprint, "device-1")...); err != nil {
				t.Fatalf("device-1: %v\n%s", err, out)
			}
			first := loadKey(t, path("key.pem")).Public()
			refused("device-2", enroll(tt.url, tt.fingerprint, "device-2"), "another private key")
			if _, err := os.Stat(path("device-2.pem")); !os.IsNotExist(err) {
				t.Errorf("device-2.pem written: %v", err)
			}
			if !pki.SamePublicKey(first, loadKey(t, path("key.pem")).Public()) || !pki.SamePublicKey(first, certKey(t, path("device-1.pem"))) {
				t.Fatal("device-1's key.pem or certificate changed")
			}

			// A held request's key, in another directory.
			d = t.TempDir()
			heldArgs := enroll(tt.heldURL, tt.heldFingerprint, "held-1")
			held.expectHeld(t, "held-1", heldArgs, "its key is saved in "+path("key.pem"))
			heldKey := loadKey(t, path("key.pem")).Public()
			if _, err := os.Stat(path("key.pem.request")); err != nil {
				t.Fatalf("no marker beside the held key: %v", err)
			}
			refused("other names", enroll(tt.heldURL, tt.heldFingerprint, "held-2"), "the key of another request")
			refused("another URL", enroll(tt.url, tt.fingerprint, "held-1"), "the key of another request")
			held.expectHeld(t, "held-1 again", heldArgs)
			if !pki.SamePublicKey(heldKey, loadKey(t, path("key.pem")).Public()) {
				t.Fatal("the held request's key changed")
			}
			ids := held.pending(t)
			held.approve(t, ids[0])
			if out, err := runCLI(heldArgs...); err != nil || !strings.Contains(out, "using the key in "+path("key.pem")) {
				t.Fatalf("collecting held-1: %v\n%s", err, out)
			}
			if !pki.SamePublicKey(heldKey, certKey(t, path("held-1.pem"))) {
				t.Error("held-1's certificate is not for the key made for it")
			}
			if _, err := os.Stat(path("key.pem.request")); !os.IsNotExist(err) {
				t.Errorf("key.pem.request left after the certificate was issued: %v", err)
			}
			// Issued now: no other request takes it up either.
			refused("after the issuance", enroll(tt.heldURL, tt.heldFingerprint, "held-3"), "another private key")
		})
	}
}
