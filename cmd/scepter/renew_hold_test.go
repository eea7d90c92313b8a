package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

// `scepter renew --rekey` of a certificate on hold keeps the new key it
// made, as a RenewalReq and as an Apple-style PKCSReq alike: the server
// says the certificate is on hold and to ask for the hold to be lifted, in
// either (r87 D1: the PKCSReq was told "the signer certificate is
// revoked", and the key was removed as after a final refusal). Once the
// hold is lifted, the same command renews with that key.
func TestRenewKeepsTheKeyWhileTheCertificateIsOnHold(t *testing.T) {
	s := startServe(t, "[profiles.default]\nrenewal_window = \"100%\"\n")
	for _, tt := range []struct {
		name  string
		extra []string
	}{
		{"RenewalReq", nil},
		{"PKCSReq", []string{"--pkcsreq"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			path := func(name string) string { return filepath.Join(d, name) }
			if out, err := runCLI("enroll", "--url", s.scepURL, "--challenge", "test", "--subject", "CN=on-hold-"+tt.name, "--key-type", "rsa2048",
				"--ca-fingerprint", s.fingerprint, "--out", path("cert.pem"), "--key-out", path("key.pem")); err != nil {
				t.Fatalf("enroll: %v\n%s", err, out)
			}
			serial := loadCert(t, path("cert.pem")).SerialNumber.Text(16)
			if out, err := runCLI("certs", "revoke", "--data-dir", s.dataDir, "--reason", "certificateHold", serial); err != nil {
				t.Fatalf("certs revoke --reason certificateHold: %v\n%s", err, out)
			}
			renew := append([]string{"renew", "--url", s.scepURL, "--ca-fingerprint", s.fingerprint, "--cert", path("cert.pem"), "--key", path("key.pem"),
				"--rekey", "--out", path("new.pem"), "--key-out", path("new-key.pem")}, tt.extra...)
			out, err := runCLI(renew...)
			if err == nil {
				t.Fatalf("renewed a certificate on hold\n%s", out)
			}
			msg := err.Error()
			if !strings.Contains(msg, "badCertId") || !strings.Contains(msg, "is on hold (certificateHold); ask the operator to lift the hold") ||
				!strings.Contains(msg, "the new key is kept in") || strings.Contains(msg, "is removed") {
				t.Fatalf("%q: want the server's on-hold refusal and the new key kept", msg)
			}
			kept := keptKeyFile(t, d)

			if out, err := runCLI("certs", "unhold", "--data-dir", s.dataDir, serial); err != nil {
				t.Fatalf("certs unhold: %v\n%s", err, out)
			}
			if out, err := runCLI(renew...); err != nil {
				t.Fatalf("renew once the hold is lifted: %v\n%s", err, out)
			}
			if got, err := os.ReadFile(path("new-key.pem")); err != nil || !bytes.Equal(got, kept) {
				t.Fatalf("new-key.pem after the renewal: %v; want the key kept while on hold", err)
			}
			if !pki.SamePublicKey(certKey(t, path("new.pem")), loadKey(t, path("new-key.pem")).Public()) {
				t.Error("the renewed certificate is not for the key written beside it")
			}
		})
	}
}

// keptKeyFile is the key `scepter renew --rekey` kept in d for its
// request: the one file of d named new-key.pem*, markers aside.
func keptKeyFile(t *testing.T, d string) []byte {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(d, "new-key.pem*"))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, n := range names {
		if !strings.HasSuffix(n, heldMarkerSuffix) {
			keys = append(keys, n)
		}
	}
	if len(keys) != 1 {
		t.Fatalf("kept keys %q, want one", keys)
	}
	b, err := os.ReadFile(keys[0])
	if err != nil {
		t.Fatal(err)
	}
	return b
}
