package main

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/keys"
)

// A server whose TLS certificate does not chain to the --cacert given is
// refused saying so, naming the file, the certificate's issuer and what to
// check, by `est cacerts` and `enroll` alike, not with Go's bare "signed
// by unknown authority"; getcrl, which takes no --cacert, names what it
// does take (r92 D8).
func TestUntrustedServerAdviceNamesWhatWasGiven(t *testing.T) {
	s := startServe(t, "")
	d := t.TempDir()
	key, err := keys.Generate(keys.P256)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "another root"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(100, 0, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	other, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	otherFile := writeCerts(t, other)
	chaining := "does not chain to the CA(s) in --cacert " + otherFile
	for _, tt := range []struct {
		name string
		args []string
		want []string
	}{
		{"est cacerts", []string{"est", "cacerts", "--url", s.estURL, "--cacert", otherFile, "--out", filepath.Join(d, "cacerts.pem")},
			[]string{chaining, ": its chain leads to CN=scepter Root CA", "DATA_DIR/ca/root.crt", "--ca-fingerprint sha256:HEX"}},
		{"enroll", []string{"enroll", "--url", s.estURL + "/scep", "--cacert", otherFile, "--challenge", "test", "--subject", "CN=x",
			"--out", filepath.Join(d, "x.pem"), "--key-out", filepath.Join(d, "x-key.pem")},
			[]string{chaining, ": its chain leads to CN=scepter Root CA", "DATA_DIR/ca/root.crt", "--ca-fingerprint sha256:HEX"}},
		{"getcrl, no flag", []string{"getcrl", "--url", s.estURL + "/scep", "--cert", otherFile, "--out", filepath.Join(d, "crl.der")},
			[]string{"the system's roots", "give --ca-fingerprint sha256:HEX", "plain http:// SCEP URL"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runCLI(tt.args...)
			if err == nil {
				t.Fatalf("%s: no error\n%s", tt.name, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s: %v, want it to say %q", tt.name, err, w)
				}
			}
			if strings.Contains(tt.name, "getcrl") && strings.Contains(err.Error(), "--cacert") {
				t.Errorf("getcrl: %v offers --cacert, which it does not take", err)
			}
		})
	}
}
