package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// `scepter renew --rekey` keeps its new key only once a request carrying
// it may have reached the server, as `enroll` does: when GetCACaps or
// GetCACert fails, nothing was asked with the key, and no key or marker is
// left behind, nor does the message say one was kept. Before (r125), the
// key was kept before GetCACaps, with "run the same command again".
func TestRenewRekeyKeepsNoKeyWhenNothingWasSent(t *testing.T) {
	s := startServe(t, "[profiles.default]\nrenewal_window = \"100%\"\n")
	d := t.TempDir()
	certPath, keyPath := filepath.Join(d, "cert.pem"), filepath.Join(d, "key.pem")
	if out, err := runCLI("enroll", "--url", s.scepURL, "--challenge", "test", "--subject", "CN=renew-nothing-sent", "--ca-fingerprint", s.fingerprint,
		"--out", certPath, "--key-out", keyPath); err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	var posted atomic.Bool
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("operation") == "PKIOperation" {
			posted.Store(true)
		}
		http.Error(w, "down for maintenance", http.StatusInternalServerError)
	}))
	defer failing.Close()
	for _, tt := range []struct{ name, keyOut string }{
		{"in place", keyPath},
		{"to a new file", filepath.Join(d, "new-key.pem")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runCLI("renew", "--url", failing.URL+"/scep", "--ca-fingerprint", s.fingerprint, "--cert", certPath, "--key", keyPath,
				"--rekey", "--out", filepath.Join(d, "new.pem"), "--key-out", tt.keyOut)
			if err == nil {
				t.Fatalf("renew through a failing server succeeded:\n%s", out)
			}
			if posted.Load() {
				t.Fatal("the failing server was sent a PKIOperation")
			}
			if strings.Contains(err.Error(), "kept") {
				t.Errorf("renew said %v: no key was sent, so none is kept", err)
			}
			for _, f := range []string{tt.keyOut + heldKeySuffix, tt.keyOut + heldMarkerSuffix, tt.keyOut + heldKeySuffix + heldMarkerSuffix} {
				if _, err := os.Stat(f); err == nil {
					t.Errorf("%s was left behind", f)
				}
			}
			if tt.keyOut != keyPath {
				if _, err := os.Stat(tt.keyOut); err == nil {
					t.Errorf("%s was left behind", tt.keyOut)
				}
			}
		})
	}
}
