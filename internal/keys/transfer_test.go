package keys

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

func TestExportImportPEM(t *testing.T) {
	src := &Dir{Path: t.TempDir()}
	k, err := src.Create("issuing", P256)
	if err != nil {
		t.Fatal(err)
	}
	data, err := src.ExportPEM("issuing")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.ExportPEM("none"); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("ExportPEM of a missing key: %v", err)
	}
	// A key file others may read is not exported.
	os.Chmod(src.files().Path("issuing"), 0o644)
	if _, err := src.ExportPEM("issuing"); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("ExportPEM of a 0644 key: %v", err)
	}

	dst := &Dir{Path: filepath.Join(t.TempDir(), "new")}
	written, err := dst.ImportPEM("issuing", data)
	if err != nil || !written {
		t.Fatalf("ImportPEM: written=%v err=%v", written, err)
	}
	fi, err := os.Stat(dst.files().Path("issuing"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("imported key: %v, mode %v", err, fi.Mode())
	}
	back, err := dst.Open("issuing")
	if err != nil || !pki.SamePublicKey(back.Public(), k.Public()) {
		t.Fatalf("Open of the imported key: %v", err)
	}
	// Again: nothing to do.
	if written, err := dst.ImportPEM("issuing", data); err != nil || written {
		t.Errorf("ImportPEM again: written=%v err=%v", written, err)
	}
	// Another key is refused, and the file is left as it was.
	other := &Dir{Path: t.TempDir()}
	if _, err := other.Create("issuing", P256); err != nil {
		t.Fatal(err)
	}
	odata, _ := other.ExportPEM("issuing")
	if _, err := dst.ImportPEM("issuing", odata); !errors.Is(err, ErrKeyExists) {
		t.Errorf("ImportPEM of another key: %v, want ErrKeyExists", err)
	}
	if have, _ := os.ReadFile(dst.files().Path("issuing")); !bytes.Equal(have, data) {
		t.Error("a refused import changed the key file")
	}
	// Garbage is never written.
	if _, err := dst.ImportPEM("junk", []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")); err == nil {
		t.Error("ImportPEM accepted a damaged key")
	}
	if _, err := os.Stat(dst.files().Path("junk")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a damaged key was written")
	}
	// An encrypted key (a root key) is imported as it is.
	enc, err := marshalEncryptedKeyPEM(rand.Reader, k, []byte("pass"), MinPBKDF2Iterations)
	if err != nil {
		t.Fatal(err)
	}
	if written, err := dst.ImportPEM("root", enc); err != nil || !written {
		t.Fatalf("ImportPEM of an encrypted key: %v", err)
	}
}

func TestCopyKeyFile(t *testing.T) {
	from, to := &Dir{Path: t.TempDir()}, &Dir{Path: t.TempDir()}
	if err := CopyKey(from, to, "ra"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("CopyKey of a missing key: %v", err)
	}
	k, err := from.Create("ra", RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	// A stale reference in the target goes.
	if err := os.WriteFile(to.RefPath("ra"), []byte("pkcs11:token=x;object=y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CopyKey(from, to, "ra"); err != nil {
		t.Fatal(err)
	}
	if in, _ := to.InToken("ra"); in {
		t.Error("the reference stayed beside the copied key file")
	}
	back, err := to.Open("ra")
	if err != nil || !pki.SamePublicKey(back.Public(), k.Public()) {
		t.Fatalf("Open of the copy: %v", err)
	}
}

// SealPEM's Argon2id parameters, the one seal the tests pay 64 MiB for.
func TestSealPEMProductionParams(t *testing.T) {
	sealed, err := SealPEM(rand.Reader, "SCEPTER TEST", []byte("the CA's keys"), []byte("correct horse"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(sealed, []byte("\nKDF-Params: t=3,m=65536,p=4\n")) {
		t.Errorf("not sealed with t=3, 64 MiB, 4 lanes:\n%s", sealed)
	}
}

func TestSealPEM(t *testing.T) {
	pt := []byte("the CA's keys")
	// Small Argon2id parameters: the format and its checks are what is
	// tested here, the cost in TestSealPEMProductionParams.
	sealed, err := sealPEM(rand.Reader, "SCEPTER TEST", pt, []byte("correct horse"), map[string]string{"Root": "sha256:ab"}, 1, 1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, pt) {
		t.Fatal("the plaintext shows in the sealed file")
	}
	got, h, err := OpenPEM(sealed, "SCEPTER TEST", []byte("correct horse"))
	if err != nil || !bytes.Equal(got, pt) || h["Root"] != "sha256:ab" || len(h) != 1 {
		t.Fatalf("OpenPEM: %q %v %v", got, h, err)
	}
	if _, _, err := OpenPEM(sealed, "SCEPTER TEST", []byte("wrong")); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("wrong passphrase: %v", err)
	}
	if _, _, err := OpenPEM(sealed, "OTHER", []byte("correct horse")); err == nil {
		t.Error("another block type was accepted")
	}
	// An altered header (authenticated, not encrypted) is caught.
	altered := bytes.Replace(sealed, []byte("Root: sha256:ab"), []byte("Root: sha256:cd"), 1)
	if _, _, err := OpenPEM(altered, "SCEPTER TEST", []byte("correct horse")); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("altered header: %v", err)
	}
	// KDF parameters beyond the limits are refused before any work.
	huge := bytes.Replace(sealed, []byte("m=1024"), []byte("m=99999999"), 1)
	if _, _, err := OpenPEM(huge, "SCEPTER TEST", []byte("correct horse")); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("huge KDF memory: %v", err)
	}
	if _, err := SealPEM(rand.Reader, "X", pt, nil, nil); err == nil {
		t.Error("an empty passphrase was accepted")
	}
	if _, err := SealPEM(rand.Reader, "X", pt, []byte("p"), map[string]string{"Salt": "x"}); err == nil {
		t.Error("a reserved header was accepted")
	}
}
