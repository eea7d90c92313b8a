package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

// `scepter renew --rekey` renewing in place writes nothing until every
// file could be written: when the certificate cannot be (here its
// directory is made a file while the server answers), key.pem still holds
// the old key of the old certificate, not a new key without its
// certificate; the new key is kept in key.pem.pending, and the next run
// collects the certificate with it.
func TestRenewRekeyThatCannotWriteTheCertificateKeepsTheOldPair(t *testing.T) {
	s := startServe(t, "[profiles.default]\nrenewal_window = \"100%\"\n")
	d := t.TempDir()
	certDir := filepath.Join(d, "certs")
	certPath, keyPath := filepath.Join(certDir, "cert.pem"), filepath.Join(d, "key.pem")
	if out, err := runCLI("enroll", "--url", s.scepURL, "--challenge", "test", "--subject", "CN=in-place", "--ca-fingerprint", s.fingerprint,
		"--out", certPath, "--key-out", keyPath); err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	oldKey := loadKey(t, keyPath).Public()

	upstream, err := url.Parse(s.scepURL)
	if err != nil {
		t.Fatal(err)
	}
	upstream.Path = ""
	// A proxy that, as the answer comes back, leaves no directory to put
	// the certificate in.
	away := filepath.Join(d, "certs.away")
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	proxy.ModifyResponse = func(r *http.Response) error {
		if r.Request.URL.Query().Get("operation") == "PKIOperation" {
			if err := os.Rename(certDir, away); err != nil {
				return err
			}
			return os.WriteFile(certDir, []byte("in the way\n"), 0o600)
		}
		return nil
	}
	blocking := httptest.NewServer(proxy)
	defer blocking.Close()

	renew := func(u string) (string, error) {
		return runCLI("renew", "--url", u, "--ca-fingerprint", s.fingerprint, "--cert", certPath, "--key", keyPath, "--rekey",
			"--out", certPath, "--key-out", keyPath)
	}
	if out, err := renew(blocking.URL + "/scep"); err == nil {
		t.Fatalf("renew with no place for the certificate succeeded\n%s", out)
	}
	if !pki.SamePublicKey(oldKey, loadKey(t, keyPath).Public()) {
		t.Fatal("key.pem was replaced although the certificate could not be written: the old pair no longer works")
	}
	kept := loadKey(t, keyPath+".pending").Public()

	if err := os.Remove(certDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(away, certDir); err != nil {
		t.Fatal(err)
	}
	if out, err := renew(s.scepURL); err != nil {
		t.Fatalf("renew again: %v\n%s", err, out)
	}
	if !pki.SamePublicKey(kept, certKey(t, certPath)) || !pki.SamePublicKey(kept, loadKey(t, keyPath).Public()) {
		t.Error("the renewed pair is not for the key kept by the failed run")
	}
	entries, _ := os.ReadDir(certDir)
	for _, e := range entries {
		if e.Name() != "cert.pem" && e.Name() != "chain.pem" {
			t.Errorf("left in %s: %s", certDir, e.Name())
		}
	}
}
