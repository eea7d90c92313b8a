package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `scepter enroll` and `renew` over https to a server whose TLS certificate
// our own CA issued (serve's HTTPS listener): --ca-fingerprint pins the
// server's TLS to that CA, as it does for `scepter est`, and --cacert
// names the CA instead; with neither, the system roots do not know it.
func TestEnrollOverHTTPSPinsTheServersTLS(t *testing.T) {
	s := startServe(t, "[profiles.default]\nrenewal_window = \"100%\"\n")
	httpsURL := s.estURL + "/scep"
	if !strings.HasPrefix(httpsURL, "https://") {
		t.Fatalf("the HTTPS listener's URL is %q", httpsURL)
	}
	d := t.TempDir()
	path := func(name string) string { return filepath.Join(d, name) }
	enroll := func(name string, extra ...string) (string, error) {
		args := append([]string{"enroll", "--url", httpsURL, "--challenge", "test", "--subject", "CN=" + name,
			"--out", path(name + ".pem"), "--key-out", path(name + "-key.pem"), "--chain-out", path(name + "-chain.pem")}, extra...)
		return runCLI(args...)
	}
	if out, err := enroll("pinned", "--ca-fingerprint", s.fingerprint); err != nil {
		t.Fatalf("enroll over https with --ca-fingerprint: %v\n%s", err, out)
	}
	otherCA := "sha256:" + strings.Repeat("ab", 32)
	for _, tt := range []struct {
		name  string
		extra []string
		want  string // in the error; "" for success
	}{
		{"cacert", []string{"--cacert", path("pinned-chain.pem")}, ""},
		{"cacert and fingerprint", []string{"--cacert", path("pinned-chain.pem"), "--ca-fingerprint", s.fingerprint}, ""},
		{"system roots", nil, "certificate signed by unknown authority"},
		{"another CA's fingerprint", []string{"--ca-fingerprint", otherCA}, otherCA},
	} {
		t.Run(tt.name, func(t *testing.T) {
			name := strings.ReplaceAll(tt.name, " ", "-")
			out, err := enroll(name, tt.extra...)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("enroll: %v\n%s", err, out)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("enroll: %v, want an error saying %q\n%s", err, tt.want, out)
			case tt.want != "":
				if _, serr := os.Stat(path(name + ".pem")); serr == nil {
					t.Error("a certificate was written")
				}
			}
		})
	}
	if out, err := runCLI("renew", "--url", httpsURL, "--ca-fingerprint", s.fingerprint, "--cert", path("pinned.pem"), "--key", path("pinned-key.pem"),
		"--out", path("renewed.pem")); err != nil {
		t.Fatalf("renew over https with --ca-fingerprint: %v\n%s", err, out)
	}
	if _, err := runCLI("enroll", "--url", s.scepURL, "--cacert", path("pinned-chain.pem"), "--subject", "CN=x"); err == nil ||
		!strings.Contains(err.Error(), "--cacert") {
		t.Errorf("--cacert with an http URL: %v, want a usage error", err)
	}
}
