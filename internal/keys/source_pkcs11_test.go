//go:build cgo

package keys

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

// Dir with a real token (SoftHSM2): keys made there, found by reference.
func TestDirWithToken(t *testing.T) {
	dir := t.TempDir()
	tok, st := openToken(t)
	d := &Dir{Path: dir, Token: tok}
	k, err := d.Create("issuing", P384)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "issuing.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a token key left a key file: %v", err)
	}
	ref, pub, err := ReadRefFile(filepath.Join(dir, "issuing.pkcs11"))
	if err != nil || ref != "pkcs11:token="+st.Label+";object=scepter-issuing" || !pki.SamePublicKey(k.Public(), pub) {
		t.Fatalf("reference file: %q, %v (public key recorded: %v)", ref, err, pub != nil)
	}
	if in, _ := d.InToken("issuing"); !in || d.Exportable() {
		t.Error("InToken false or Exportable true for a token key")
	}
	if !strings.Contains(d.Where("issuing"), "object=scepter-issuing") {
		t.Errorf("Where = %s", d.Where("issuing"))
	}
	if _, err := d.Create("issuing", P384); !errors.Is(err, ErrKeyExists) {
		t.Errorf("Create again: %v", err)
	}
	if _, err := d.ExportPEM("issuing"); !errors.Is(err, ErrNotExportable) {
		t.Errorf("ExportPEM of a token key: %v, want ErrNotExportable", err)
	}

	// The directory moves; the key follows its reference.
	moved := filepath.Join(t.TempDir(), "moved")
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	back, err := (&Dir{Path: moved, Token: tok}).Open("issuing")
	if err != nil || !pki.SamePublicKey(back.Public(), k.Public()) {
		t.Fatalf("Open after a move: %v", err)
	}
	digest := sha256.Sum256([]byte("x"))
	if _, err := back.Sign(rand.Reader, digest[:], crypto.SHA384); err != nil {
		t.Errorf("Sign: %v", err)
	}

	// Without the token: refused, or a stand-in with the recorded public key.
	if _, err := (&Dir{Path: moved}).Open("issuing"); !errors.Is(err, ErrNoToken) || !strings.Contains(err.Error(), "--pkcs11") {
		t.Errorf("Open without a token: %v, want ErrNoToken naming the flags", err)
	}
	stub, err := (&Dir{Path: moved, Unopened: true}).Open("issuing")
	if err != nil || !pki.SamePublicKey(stub.Public(), k.Public()) {
		t.Fatalf("Unopened: %v", err)
	}
	if _, err := stub.Sign(rand.Reader, digest[:], crypto.SHA256); !errors.Is(err, ErrNoToken) {
		t.Errorf("stand-in signed: %v", err)
	}

	// Another token: the reference names the first one.
	other, _ := openToken(t)
	if _, err := (&Dir{Path: moved, Token: other}).Open("issuing"); err == nil || !strings.Contains(err.Error(), st.Label) {
		t.Errorf("Open with another token: %v", err)
	}
	// The key in the token replaced by another of the same label.
	if err := tok.Remove("issuing"); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.Create("issuing", P384); err != nil {
		t.Fatal(err)
	}
	if _, err := (&Dir{Path: moved, Token: tok}).Open("issuing"); err == nil || !strings.Contains(err.Error(), "not the one") {
		t.Errorf("Open of a replaced token key: %v", err)
	}
	// A key file beside a reference is ambiguous.
	if err := WriteKeyFile(filepath.Join(moved, "issuing.key"), genKey(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := (&Dir{Path: moved, Token: tok}).Open("issuing"); err == nil || !strings.Contains(err.Error(), "both") {
		t.Errorf("Open with both a key file and a reference: %v", err)
	}
	// Remove drops the reference, never the token's key.
	os.Remove(filepath.Join(moved, "issuing.key"))
	if err := (&Dir{Path: moved, Token: tok}).Remove("issuing"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := tok.Has("issuing"); !ok {
		t.Error("Dir.Remove destroyed the token key")
	}
}

func TestDirSuffixReuseAndDestroy(t *testing.T) {
	tok, st := openToken(t)
	// A key already in the token under the label is never taken over (it
	// may be another CA's): refused, naming it, the token and the remedies.
	placed, err := tok.Create("ra", RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	first := &Dir{Path: t.TempDir(), Token: tok}
	k, err := first.Create("ra", RSA2048)
	if !errors.Is(err, ErrKeyExists) || k != nil {
		t.Fatalf("Create over a key in the token: %v, want ErrKeyExists", err)
	}
	for _, want := range []string{`"scepter-ra"`, st.Label, "--pkcs11-key-prefix", "--delete-object"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not say %s: %v", want, err)
		}
	}
	if in, _ := first.InToken("ra"); in {
		t.Error("a refused Create wrote a reference file")
	}
	// A later generation gets a label of its own.
	later := &Dir{Path: t.TempDir(), Token: tok, Suffix: "-abcd", LabelPrefix: "x-"}
	k2, err := later.Create("ra", RSA2048)
	if err != nil || pki.SamePublicKey(k2.Public(), placed.Public()) {
		t.Fatalf("suffixed Create: %v (same key: %v)", err, err == nil)
	}
	if ok, _ := tok.Has("x-ra-abcd"); !ok {
		t.Error("no key x-ra-abcd in the token")
	}
	// Destroy removes the key from the token and its reference.
	if err := later.Destroy("ra"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := tok.Has("x-ra-abcd"); ok {
		t.Error("Destroy left the token key")
	}
	if in, _ := later.InToken("ra"); in {
		t.Error("Destroy left the reference file")
	}
}

// CopyKey moves a token key's reference, never the key.
func TestCopyKeyReference(t *testing.T) {
	tok, _ := openToken(t)
	from := &Dir{Path: t.TempDir(), Token: tok}
	k, err := from.Create("issuing", P256)
	if err != nil {
		t.Fatal(err)
	}
	to := &Dir{Path: t.TempDir(), Token: tok}
	// A key file of that name in the target is replaced by the reference.
	if err := WriteKeyFile(filepath.Join(to.Path, "issuing.key"), genKey(t)); err != nil {
		t.Fatal(err)
	}
	if err := CopyKey(from, to, "issuing"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(to.Path, "issuing.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("the key file stayed beside the copied reference")
	}
	back, err := to.Open("issuing")
	if err != nil || !pki.SamePublicKey(back.Public(), k.Public()) {
		t.Fatalf("Open of the copied reference: %v", err)
	}
}
