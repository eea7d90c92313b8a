package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/keys"
)

// A key used as it is, `est reenroll --key K` without --rekey and
// `est enroll --csr-key K`, stays where it is: the default --key-out
// (key.pem in the working directory) got a second copy of the private key
// (r110 observation). A --key-out given still gets it, as `renew` does.
func TestESTKeyUsedAsItIsIsNotCopied(t *testing.T) {
	s := &reenrollEST{t: t}
	u, caFile := startReenrollEST(t, s)
	for _, tt := range []struct {
		name    string
		args    func(path func(string) string) []string
		keyOut  string // "" when none is given
		wantKey string // the output's key line, after "key:"
	}{
		{"reenroll without --rekey", func(path func(string) string) []string {
			return []string{"est", "reenroll", "--cert", path("cert.pem"), "--key", path("old.key")}
		}, "", "old.key (kept)"},
		{"reenroll with --key-out", func(path func(string) string) []string {
			return []string{"est", "reenroll", "--cert", path("cert.pem"), "--key", path("old.key"), "--key-out", path("copy.key")}
		}, "copy.key", "copy.key"},
		{"enroll --csr-key", func(path func(string) string) []string {
			return []string{"est", "enroll", "--cert", path("cert.pem"), "--key", path("old.key"), "--subject", "CN=gw-9", "--csr-key", path("csr.key")}
		}, "", "csr.key (kept)"},
		{"enroll --csr-key with --key-out", func(path func(string) string) []string {
			return []string{"est", "enroll", "--cert", path("cert.pem"), "--key", path("old.key"), "--subject", "CN=gw-9", "--csr-key", path("csr.key"), "--key-out", path("copy.key")}
		}, "copy.key", "copy.key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			t.Chdir(d)
			path := func(name string) string { return filepath.Join(d, name) }
			oldKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			csrKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err := keys.WriteCertFile(path("cert.pem"), s.issueNames(&x509.Certificate{Subject: pkix.Name{CommonName: "gw-9"}}, oldKey.Public(), 90)); err != nil {
				t.Fatal(err)
			}
			if err := keys.WriteKeyFile(path("old.key"), oldKey); err != nil {
				t.Fatal(err)
			}
			if err := keys.WriteKeyFile(path("csr.key"), csrKey); err != nil {
				t.Fatal(err)
			}
			args := append(tt.args(path), "--url", u, "--cacert", caFile, "--out", path("new.pem"))
			out, err := runCLI(args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if _, err := os.Stat(path("key.pem")); err == nil {
				t.Errorf("key.pem was written: a second copy of the private key")
			}
			if tt.keyOut != "" {
				if _, err := os.Stat(path(tt.keyOut)); err != nil {
					t.Errorf("--key-out %s was not written: %v", tt.keyOut, err)
				}
			}
			if !strings.Contains(out, "key:         "+path(tt.wantKey)) {
				t.Errorf("output does not name the key as %q:\n%s", path(tt.wantKey), out)
			}
		})
	}
}
