package main

import (
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

// The key kept for a request held for approval is tied to the --url it
// was sent to: run again through another (a proxy, another node), the
// run is refused as another request's, and the refusal names --key
// KEYFILE, which asks with that key and collects the certificate, where
// before it offered only another --key-out or --force (a new key, whose
// request the used challenge would refuse).
func TestEnrollThroughAnotherURLNamesTheKeptKey(t *testing.T) {
	s := startServe(t, "[profiles.default]\napproval = true\n")
	upstream, err := url.Parse(s.scepURL)
	if err != nil {
		t.Fatal(err)
	}
	upstream.Path = ""
	proxy := httptest.NewServer(httputil.NewSingleHostReverseProxy(upstream))
	defer proxy.Close()

	d := t.TempDir()
	keyOut := filepath.Join(d, "key.pem")
	enroll := func(u string, extra ...string) (string, error) {
		return runCLI(append([]string{"enroll", "--url", u, "--challenge", "test", "--ca-fingerprint", s.fingerprint,
			"--subject", "CN=other-url", "--key-type", "p256", "--out", filepath.Join(d, "cert.pem")}, extra...)...)
	}
	s.expectHeld(t, "enroll through the proxy", []string{"enroll", "--url", proxy.URL + "/scep", "--challenge", "test", "--ca-fingerprint", s.fingerprint,
		"--subject", "CN=other-url", "--key-type", "p256", "--out", filepath.Join(d, "cert.pem"), "--key-out", keyOut}, "its key is saved in "+keyOut)
	kept := loadKey(t, keyOut).Public()

	out, err := enroll(s.scepURL, "--key-out", keyOut)
	want := "if it is this request's, sent to another --url (a proxy, another node), pass --key " + keyOut + " to ask with that key"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("enroll through another --url: %v, want %q\n%s", err, want, out)
	}

	s.approve(t, s.pending(t)[0])
	if out, err := enroll(s.scepURL, "--key", keyOut); err != nil {
		t.Fatalf("enroll --key %s: %v\n%s", keyOut, err, out)
	}
	if !pki.SamePublicKey(kept, certKey(t, filepath.Join(d, "cert.pem"))) {
		t.Error("the certificate collected with --key is not for the kept key")
	}
}
