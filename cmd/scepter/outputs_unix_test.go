//go:build unix

package main

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/keys"
)

// An output path that is a device or a FIFO (--out /dev/null, say) is
// refused before anything is asked or written: the write-then-rename would
// replace the device with a regular file, and chain.pem would be put in
// its directory. Made in a temporary directory, never in /dev.
func TestClientOutputThatIsNoRegularFileIsRefused(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	specials := map[string]string{fifo: "a named pipe"}
	null := filepath.Join(dir, "null")
	// A character device like /dev/null (1, 3), where mknod is permitted.
	if err := syscall.Mknod(null, syscall.S_IFCHR|0o666, 1<<8|3); err == nil {
		specials[null] = "a character device"
	} else {
		t.Logf("mknod not permitted (%v): only the FIFO is tried", err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	specials[sub] = "a directory"
	oldCert, oldKey := selfSigned(t, dir)
	// The URLs lead nowhere: the refusal comes before any connection.
	const scepURL, estURL = "http://127.0.0.1:1/scep", "https://127.0.0.1:1"
	for special, kind := range specials {
		out := filepath.Join(dir, "cert.pem")
		keyOut := filepath.Join(dir, "key.pem")
		tests := []struct {
			name string
			args []string
		}{
			{"enroll --out", []string{"enroll", "--url", scepURL, "--challenge", "x", "--subject", "CN=d", "--out", special, "--key-out", keyOut}},
			{"enroll --key-out", []string{"enroll", "--url", scepURL, "--challenge", "x", "--subject", "CN=d", "--out", out, "--key-out", special}},
			{"enroll --chain-out", []string{"enroll", "--url", scepURL, "--challenge", "x", "--subject", "CN=d", "--out", out, "--key-out", keyOut, "--chain-out", special}},
			{"renew --out", []string{"renew", "--url", scepURL, "--cert", oldCert, "--key", oldKey, "--out", special}},
			{"est enroll --out", []string{"est", "enroll", "--url", estURL, "--subject", "CN=d", "--out", special, "--key-out", keyOut}},
			{"est enroll --key-out", []string{"est", "enroll", "--url", estURL, "--subject", "CN=d", "--out", out, "--key-out", special}},
			{"est cacerts --out", []string{"est", "cacerts", "--url", estURL, "--out", special}},
			{"getcrl --out", []string{"getcrl", "--url", scepURL, "--cert", oldCert, "--out", special}},
		}
		for _, tt := range tests {
			t.Run(kind+"/"+tt.name, func(t *testing.T) {
				before, err := os.Lstat(special)
				if err != nil {
					t.Fatal(err)
				}
				msg, err := runCLI(tt.args...)
				if err == nil || !strings.Contains(err.Error(), special+" is "+kind+", not a regular file") {
					t.Fatalf("err = %v, want %s refused as %s\n%s", err, special, kind, msg)
				}
				after, err := os.Lstat(special)
				if err != nil || after.Mode() != before.Mode() {
					t.Errorf("%s changed: %v, %v", special, after.Mode(), err)
				}
				for _, name := range []string{"chain.pem", "cert.pem", "key.pem", "key.pem.pending"} {
					if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
						t.Errorf("%s was written", name)
					}
				}
				if entries, _ := os.ReadDir(sub); len(entries) > 0 {
					t.Errorf("%s was written into: %v", sub, entries)
				}
			})
		}
	}
}

// selfSigned writes a certificate and its key to dir (old.pem, old.key),
// for a renew that is refused before it gets anywhere.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := keys.Generate(keys.P256)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "old"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	certFile, keyFile = filepath.Join(dir, "old.pem"), filepath.Join(dir, "old.key")
	if err := keys.WriteCertFile(certFile, cert); err != nil {
		t.Fatal(err)
	}
	if err := keys.WriteKeyFile(keyFile, key); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
