package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A SCEP --url's own query parameters are kept with every request (r101
// D5: they were dropped without a word), so `scepter enroll` through one
// still enrolls; a query that holds operation or message, which the
// client sets itself, is refused before anything is sent (exit 2), by
// enroll, renew and getcrl alike.
func TestSCEPURLQuery(t *testing.T) {
	s := startServe(t, "")
	d := t.TempDir()
	path := func(name string) string { return filepath.Join(d, name) }
	out, err := runCLI("enroll", "--url", s.scepURL+"?tenant=acme&site=a%2Fb", "--challenge", "test", "--subject", "CN=query-1",
		"--ca-fingerprint", s.fingerprint, "--out", path("cert.pem"), "--key-out", path("key.pem"))
	if err != nil {
		t.Fatalf("enroll with a query in --url: %v\n%s", err, out)
	}
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"enroll, operation", []string{"enroll", "--url", s.scepURL + "?operation=GetCACert", "--challenge", "test", "--subject", "CN=query-2",
			"--out", path("q2.pem"), "--key-out", path("q2-key.pem")}},
		{"enroll, message", []string{"enroll", "--url", s.scepURL + "?tenant=acme&message=x", "--challenge", "test", "--subject", "CN=query-3",
			"--out", path("q3.pem"), "--key-out", path("q3-key.pem")}},
		{"renew", []string{"renew", "--url", s.scepURL + "?Operation=x", "--cert", path("cert.pem"), "--key", path("key.pem")}},
		{"getcrl", []string{"getcrl", "--url", s.scepURL + "?operation=GetCRL", "--cert", path("cert.pem")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runCLI(tt.args...)
			if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "--url: SCEP URL") ||
				!strings.Contains(err.Error(), "in its query, which the client sets for each request (RFC 8894 §4.1): remove it from the URL") {
				t.Errorf("err %v (exit %d), want the query refused with exit 2\n%s", err, exitCode(err), out)
			}
		})
	}
	for _, name := range []string{"q2-key.pem", "q3-key.pem"} {
		if _, err := os.Stat(path(name)); !os.IsNotExist(err) {
			t.Errorf("%s after a refused --url: %v", name, err)
		}
	}
}
