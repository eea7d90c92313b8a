package main

import (
	"bytes"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/ca"
)

// ca root crl --out replaces an earlier CRL, DER or PEM, but no other
// file, and writes nowhere in the data directory, where a slip of the path
// would put the CRL over the root's key or certificate (r102 D1): refused
// before anything is signed, the file left as it was.
func TestCARootCRLOutReplacesOnlyACRL(t *testing.T) {
	dir, _ := caDataDir(t, ca.InitOptions{})
	outside := t.TempDir()
	first := filepath.Join(outside, "root.crl")
	if _, _, err := runCA(t, nil, dir, "root", "crl", "--out", first); err != nil {
		t.Fatal(err)
	}
	der, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	asPEM := filepath.Join(outside, "root.crl.pem")
	if err := os.WriteFile(asPEM, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	// Replaced: an earlier CRL, DER or PEM.
	for _, out := range []string{first, asPEM} {
		stdout, _, err := runCA(t, nil, dir, "root", "crl", "--out", out)
		if err != nil || !strings.Contains(stdout, "Written to "+out) {
			t.Errorf("--out %s (an earlier CRL): %v\n%s", out, err, stdout)
		}
	}

	notes := filepath.Join(outside, "notes.txt")
	if err := os.WriteFile(notes, []byte("keep me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(outside, "ca-link")
	if err := os.Symlink(filepath.Join(dir, "ca"), link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		out, want string
	}{
		{filepath.Join(dir, "ca", "root.key"), "inside the data directory"},
		{filepath.Join(dir, "ca", "root.crt"), "inside the data directory"},
		{filepath.Join(dir, "new.crl"), "inside the data directory"},
		{filepath.Join(link, "root.crt"), "inside the data directory"},
		{notes, "holds no CRL"},
		{outside, "not a regular file"},
		{filepath.Join(outside, "missing", "root.crl"), "does not exist"},
	} {
		before, _ := os.ReadFile(tc.out)
		stdout, _, err := runCA(t, nil, dir, "root", "crl", "--out", tc.out)
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--out %s: %v, want exit 2 saying %q", tc.out, err, tc.want)
		}
		if strings.Contains(stdout, "signed") {
			t.Errorf("--out %s: a CRL was signed before the refusal:\n%s", tc.out, stdout)
		}
		if after, _ := os.ReadFile(tc.out); !bytes.Equal(before, after) {
			t.Errorf("--out %s: the file was changed", tc.out)
		}
	}
}
