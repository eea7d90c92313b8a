package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// SCEP enroll keeps an earlier enrollment's certificate (--out) and chain
// file as it keeps its key (--key-out): it refuses, before anything is
// sent, to replace them unless --force is given, where before it replaced
// both without a word. A chain file holding only the server's current CA
// certificates (another device's, from the same CA) is replaced, as
// nothing is lost.
func TestEnrollKeepsAnotherEnrollmentsFiles(t *testing.T) {
	s := startServe(t, "[profiles.default]\n")
	d := t.TempDir()
	path := func(name string) string { return filepath.Join(d, name) }
	enroll := func(cn, out, keyOut string, extra ...string) (string, error) {
		return runCLI(append([]string{"enroll", "--url", s.scepURL, "--challenge", "test", "--ca-fingerprint", s.fingerprint,
			"--subject", "CN=" + cn, "--key-type", "p256", "--out", out, "--key-out", keyOut}, extra...)...)
	}
	// The earlier enrollment, in the same directory: first.pem, chain.pem.
	if out, err := enroll("first", path("first.pem"), path("first.key")); err != nil {
		t.Fatalf("first enroll: %v\n%s", err, out)
	}
	first, err := os.ReadFile(path("first.pem"))
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name       string
		chainHolds []byte // what chain.pem holds before the run (nil: the first enrollment's chain)
		out        string
		force      bool
		wantErr    string // "" : enrolled
	}{
		{name: "out holds another certificate", out: "first.pem", wantErr: "--out " + path("first.pem") + " already holds a certificate for another key (CN=first"},
		{name: "out holds no certificate", out: "first.key", wantErr: "--out " + path("first.key") + " holds something that is not a certificate"},
		{name: "out replaced with --force", out: "first.pem", force: true},
		{name: "chain of the same CA", out: "second.pem"},
		{name: "chain holds a certificate that is no CA's", chainHolds: first, out: "third.pem", wantErr: "--chain-out " + path("chain.pem") + " already holds other certificates than this server's CA certificates"},
		{name: "chain holds something else", chainHolds: []byte("notes\n"), out: "fourth.pem", wantErr: "--chain-out " + path("chain.pem") + " already holds other"},
		{name: "chain replaced with --force", chainHolds: first, out: "fifth.pem", force: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.chainHolds != nil {
				if err := os.WriteFile(path("chain.pem"), tc.chainHolds, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			outBefore, _ := os.ReadFile(path(tc.out))
			chainBefore, _ := os.ReadFile(path("chain.pem"))
			var extra []string
			if tc.force {
				extra = append(extra, "--force")
			}
			said, err := enroll(strings.ReplaceAll(tc.name, " ", "-"), path(tc.out), path(tc.out+".key"), extra...)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("enroll: %v\n%s", err, said)
				}
				if c := loadCert(t, path(tc.out)); c.Subject.CommonName != strings.ReplaceAll(tc.name, " ", "-") {
					t.Errorf("%s holds %s", tc.out, c.Subject)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "--force") {
				t.Fatalf("enroll: %v, want %q and --force named\n%s", err, tc.wantErr, said)
			}
			outAfter, _ := os.ReadFile(path(tc.out))
			chainAfter, _ := os.ReadFile(path("chain.pem"))
			if !bytes.Equal(outBefore, outAfter) || !bytes.Equal(chainBefore, chainAfter) {
				t.Error("a refused run changed --out or the chain file")
			}
			if _, err := os.Stat(path(tc.out + ".key")); err == nil {
				t.Error("a refused run left a key file: it was refused before any request")
			}
		})
	}
}
