package main

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// `scepter enroll --url https://…` does not go on over plain http when the
// server redirects there (r117 D1): whoever answers on plain http could
// hand out its own RA and read the challenge. The command fails naming the
// redirect, nothing reaches the plain server, and nothing is written.
func TestEnrollRefusesARedirectToPlainHTTP(t *testing.T) {
	s := startServe(t, "")
	target, err := url.Parse(s.scepURL)
	if err != nil {
		t.Fatal(err)
	}
	var reached atomic.Int32
	relay := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		relay.ServeHTTP(w, r)
	}))
	t.Cleanup(plain.Close)
	var redirectAll atomic.Bool
	front := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if redirectAll.Load() || r.URL.Query().Get("operation") == "PKIOperation" {
			http.Redirect(w, r, plain.URL+target.Path+"?"+r.URL.RawQuery, http.StatusTemporaryRedirect)
			return
		}
		relay.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	d := t.TempDir()
	frontCA := filepath.Join(d, "front.pem")
	if err := os.WriteFile(frontCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: front.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name        string
		redirectAll bool
		want        string
	}{
		{"every operation", true, "GetCACaps: HTTP 307: the server redirects to " + plain.URL},
		{"PKIOperation only", false, "PKIOperation: HTTP 307: the server redirects to " + plain.URL},
	} {
		t.Run(tt.name, func(t *testing.T) {
			redirectAll.Store(tt.redirectAll)
			reached.Store(0)
			out := filepath.Join(d, strings.ReplaceAll(tt.name, " ", "-"))
			msg, err := runCLI("enroll", "--url", front.URL+target.Path, "--cacert", frontCA, "--ca-fingerprint", s.fingerprint,
				"--challenge", "test", "--subject", "CN=downgrade", "--out", out+".pem", "--key-out", out+"-key.pem")
			if err == nil {
				t.Fatalf("enroll succeeded through a redirect to plain http:\n%s", msg)
			}
			for _, w := range []string{tt.want, "scepter does not follow redirects", "it leaves https for plain http"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v does not say %q", err, w)
				}
			}
			if n := reached.Load(); n != 0 {
				t.Errorf("the plain http server was asked %d times, want never", n)
			}
			if _, err := os.Stat(out + ".pem"); err == nil {
				t.Error("a certificate was written")
			}
		})
	}
}
