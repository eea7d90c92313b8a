package main

import (
	"bytes"
	"context"
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
	// A ".." after a link goes up from where the link leads, as the
	// kernel takes it, not from the link (r106 D1): L/../ca/root.key is
	// DATA/ca/root.key when L leads to DATA/ca. The lexical parent
	// exists too, so that only the real one can refuse it.
	caLink := link
	if err := os.MkdirAll(filepath.Join(outside, "ca"), 0o700); err != nil {
		t.Fatal(err)
	}
	// A link to an earlier CRL: refused before signing (r106 D2), where
	// the write refused it after the CRL was signed and stored.
	crlLink := filepath.Join(outside, "crl-link")
	if err := os.Symlink(first, crlLink); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		out, want string
	}{
		{filepath.Join(dir, "ca", "root.key"), "inside the data directory"},
		{filepath.Join(dir, "ca", "root.crt"), "inside the data directory"},
		{filepath.Join(dir, "new.crl"), "inside the data directory"},
		{filepath.Join(link, "root.crt"), "inside the data directory"},
		{caLink + "/../ca/root.key", "inside the data directory"},
		{caLink + "/../new.crl", "inside the data directory"},
		{caLink + "/..", "inside the data directory"},
		{crlLink, "is a symbolic link"},
		{notes, "holds no CRL"},
		{outside, "is a directory"},
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

// store backup's --out takes a ".." after a link as the kernel does too
// (r106 D1: L/../bk.db was written into the data directory, and with
// --force over ca/issuing.crt).
func TestStoreBackupOutDotDotAfterALink(t *testing.T) {
	dir, _ := caDataDir(t, ca.InitOptions{})
	outside := t.TempDir()
	caLink := filepath.Join(outside, "ca-link")
	if err := os.Symlink(filepath.Join(dir, "ca"), caLink); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(outside, "ca"), 0o700); err != nil {
		t.Fatal(err)
	}
	issuing, _ := os.ReadFile(filepath.Join(dir, "ca", "issuing.crt"))
	for _, args := range [][]string{
		{"--out", caLink + "/../bk.db"},
		{"--out", caLink + "/../ca/issuing.crt", "--force"},
	} {
		e, _, _ := testEnv(nil)
		err := run(context.Background(), e, append([]string{"store", "backup", "--data-dir", dir}, args...))
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "inside the data directory") {
			t.Errorf("store backup %q: %v, want exit 2 saying it is inside the data directory", args, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "bk.db")); err == nil {
		t.Error("a backup was written into the data directory")
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "ca", "issuing.crt")); !bytes.Equal(issuing, after) {
		t.Error("ca/issuing.crt was replaced")
	}
}

// A relative --out from a working directory reached through a link
// ("cd LINK", which sets $PWD through the link, as os.Getwd returns it) is
// placed from the real directory, as the kernel places it (r107 D1: the
// check took $PWD's path and passed a file that landed in the data
// directory, the root key's copy of 'ca root export --remove' included).
func TestOutFromALinkedWorkingDirectory(t *testing.T) {
	dir, _ := caDataDir(t, ca.InitOptions{})
	outside := t.TempDir()
	caLink := filepath.Join(outside, "ca-link")
	if err := os.Symlink(filepath.Join(dir, "ca"), caLink); err != nil {
		t.Fatal(err)
	}
	t.Chdir(caLink)
	t.Setenv("PWD", caLink)
	for _, tc := range []struct {
		args []string
		file string // must not appear in the data directory
	}{
		{[]string{"ca", "root", "crl", "--data-dir", dir, "--out", "new.crl"}, filepath.Join(dir, "ca", "new.crl")},
		{[]string{"ca", "root", "crl", "--data-dir", dir, "--out", "../new.crl"}, filepath.Join(dir, "new.crl")},
		{[]string{"store", "backup", "--data-dir", dir, "--out", "b.db"}, filepath.Join(dir, "ca", "b.db")},
		{[]string{"ca", "root", "export", "--data-dir", dir, "--remove", "--out", "root-copy.key"}, filepath.Join(dir, "ca", "root-copy.key")},
	} {
		e, _, _ := testEnv(nil)
		err := run(context.Background(), e, tc.args)
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "inside the data directory") {
			t.Errorf("%q from a linked directory: %v, want exit 2 saying it is inside the data directory", tc.args, err)
		}
		if _, err := os.Stat(tc.file); err == nil {
			t.Errorf("%q wrote %s", tc.args, tc.file)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ca", "root.key")); err != nil {
		t.Errorf("the root key is gone: %v", err)
	}
}
