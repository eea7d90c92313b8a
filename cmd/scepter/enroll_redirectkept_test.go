package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A PKIOperation answered with a redirect is refused (scepter follows
// none), and the key kept before the request stays; the message says the
// server redirected the request, where to, and why the key is kept (what
// passed it on may have taken it), where before it said that no answer
// came (r125).
func TestEnrollRedirectedPKIOperationSaysSo(t *testing.T) {
	s := startServe(t, "")
	target, err := url.Parse(s.scepURL)
	if err != nil {
		t.Fatal(err)
	}
	relay := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	elsewhere := "http://127.0.0.1:9/scep"
	for _, status := range []int{http.StatusFound, http.StatusPermanentRedirect} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get("operation") == "PKIOperation" {
					http.Redirect(w, r, elsewhere+"?"+r.URL.RawQuery, status)
					return
				}
				relay.ServeHTTP(w, r)
			}))
			defer front.Close()
			d := t.TempDir()
			keyOut := filepath.Join(d, "key.pem")
			out, err := runCLI("enroll", "--url", front.URL+target.Path, "--ca-fingerprint", s.fingerprint, "--challenge", "test",
				"--subject", "CN=redirected", "--out", filepath.Join(d, "cert.pem"), "--key-out", keyOut)
			if err == nil {
				t.Fatalf("enroll through a redirect succeeded:\n%s", out)
			}
			for _, want := range []string{"the server redirects to " + elsewhere, "the server redirected the request instead of answering it",
				"its key is kept in " + keyOut, "given --key " + keyOut} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("enroll said %v\nwant %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "no answer came") {
				t.Errorf("enroll said %v: the redirect was an answer", err)
			}
			for _, f := range []string{keyOut, keyOut + heldMarkerSuffix} {
				if _, err := os.Stat(f); err != nil {
					t.Errorf("the key kept for the request: %v", err)
				}
			}
		})
	}
}
