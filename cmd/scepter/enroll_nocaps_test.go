package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// A SCEP server that does not support GetCACaps (a 404 to it, from a
// server older than RFC 8894, here a proxy in front of scepter serve) is
// taken to offer no capabilities (RFC 8894 §3.5.1): enroll refuses single
// DES unless --allow-insecure-des, saying GetCACaps is not supported, and
// with it enrolls, sending PKIOperation by GET as no POSTPKIOperation was
// advertised. Before (r117), enroll stopped at the 404 either way. The
// refusal comes before a key is kept: nothing was sent (r134 D1).
func TestEnrollWithoutGetCACapsTakesNoCapabilities(t *testing.T) {
	s := startServe(t, "", "--allow-insecure-des")
	upstream, err := url.Parse(s.scepURL)
	if err != nil {
		t.Fatal(err)
	}
	upstream.Path = ""
	var mu sync.Mutex
	var pkiOperations []string
	forward := httputil.NewSingleHostReverseProxy(upstream)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("operation") {
		case "GetCACaps":
			http.Error(w, "unknown operation", http.StatusNotFound)
			return
		case "PKIOperation":
			mu.Lock()
			pkiOperations = append(pkiOperations, r.Method)
			mu.Unlock()
		}
		forward.ServeHTTP(w, r)
	}))
	defer proxy.Close()

	d := t.TempDir()
	enroll := func(extra ...string) (string, error) {
		return runCLI(append([]string{"enroll", "--url", proxy.URL + "/scep", "--challenge", "test", "--ca-fingerprint", s.fingerprint,
			"--subject", "CN=no-caps", "--out", filepath.Join(d, "cert.pem"), "--key-out", filepath.Join(d, "key.pem")}, extra...)...)
	}
	out, err := enroll()
	want := "the server does not support GetCACaps (GetCACaps: HTTP 404: unknown operation), so it is taken to offer neither AES nor DES3"
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "pass --allow-insecure-des") {
		t.Fatalf("enroll without --allow-insecure-des: %v\nwant %q\n%s", err, want, out)
	}
	mu.Lock()
	sent := len(pkiOperations)
	mu.Unlock()
	if sent != 0 {
		t.Fatalf("enroll refusing single DES sent PKIOperation %d times", sent)
	}
	// Nothing was sent, so nothing may have been issued: no key is kept
	// for a next run that would be refused alike (r134 D1).
	if strings.Contains(err.Error(), "no answer came") || strings.Contains(err.Error(), "kept") {
		t.Errorf("the refusal before sending anything speaks of a kept key: %v", err)
	}
	for _, f := range []string{"key.pem", "key.pem.request"} {
		if _, err := os.Stat(filepath.Join(d, f)); !os.IsNotExist(err) {
			t.Errorf("%s left after a refusal before anything was sent", f)
		}
	}
	out, err = enroll("--allow-insecure-des")
	if err != nil {
		t.Fatalf("enroll --allow-insecure-des: %v\n%s", err, out)
	}
	if !strings.Contains(out, "issued CN=no-caps") || !strings.Contains(out, "warning: the server does not support GetCACaps") {
		t.Errorf("enroll --allow-insecure-des said:\n%s", out)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(pkiOperations) != 1 || pkiOperations[0] != http.MethodGet {
		t.Errorf("PKIOperation sent as %v, want one GET (no POSTPKIOperation advertised)", pkiOperations)
	}
	certKey(t, filepath.Join(d, "cert.pem"))
}
