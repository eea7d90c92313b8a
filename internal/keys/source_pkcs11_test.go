//go:build cgo

package keys

import (
	"crypto"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ThalesGroup/crypto11"

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

// addPair generates in tok, behind scepter's back, a P-256 key pair
// labelled label (the full label, prefix included), as another CA sharing
// the token or an operator's tool would, and returns its public key.
func addPair(t *testing.T, tok Token, label string) crypto.PublicKey {
	t.Helper()
	id, err := randomID()
	if err != nil {
		t.Fatal(err)
	}
	public, err := crypto11.NewAttributeSetWithIDAndLabel(id, []byte(label))
	if err != nil {
		t.Fatal(err)
	}
	private := public.Copy()
	for _, a := range []crypto11.AttributeType{crypto11.CkaPrivate, crypto11.CkaSensitive} {
		if err := private.Set(a, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := private.Set(crypto11.CkaExtractable, false); err != nil {
		t.Fatal(err)
	}
	k, err := tok.(*pkcs11Token).ctx.GenerateECDSAKeyPairWithAttributes(public, private, elliptic.P256())
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

// Destroying a key destroys the pair its reference file recorded and no
// other of its label, which may be another CA's key: deleting that one
// left the other CA unable to sign or decrypt.
func TestDestroyLeavesOtherKeysOfTheLabel(t *testing.T) {
	tok, _ := openToken(t)
	tests := []struct {
		name     string
		goneOurs bool // our key removed from the token beforehand
	}{
		{"ours and another", false},
		{"only another left", true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &Dir{Path: t.TempDir(), Token: tok, Suffix: fmt.Sprintf("-%d", i)}
			ours, err := d.Create("ra", P256)
			if err != nil {
				t.Fatal(err)
			}
			label := "scepter-ra" + d.Suffix
			if tt.goneOurs {
				if err := tok.Remove("ra" + d.Suffix); err != nil {
					t.Fatal(err)
				}
			}
			theirs := addPair(t, tok, label)
			if err := d.Destroy("ra"); err != nil {
				t.Fatalf("Destroy: %v", err)
			}
			if in, _ := d.InToken("ra"); in {
				t.Error("Destroy left the reference file")
			}
			left, err := tok.Open("ra" + d.Suffix)
			if err != nil {
				t.Fatalf("the other key of %q is gone: %v", label, err)
			}
			if !pki.SamePublicKey(left.Public(), theirs) || pki.SamePublicKey(left.Public(), ours.Public()) {
				t.Error("Destroy removed the other key and left its own")
			}
			// Told apart by the public key, not by the label.
			ref := tok.Ref("ra" + d.Suffix)
			if err := tok.RemoveRefKey(ref, ours.Public()); !errors.Is(err, ErrKeyNotFound) || !strings.Contains(err.Error(), "were left") {
				t.Errorf("RemoveRefKey of a key not in the token: %v, want ErrKeyNotFound saying the others were left", err)
			}
			if ok, _ := tok.Has("ra" + d.Suffix); !ok {
				t.Error("RemoveRefKey removed another key")
			}
		})
	}

	// By reference alone, of two keys of one label, none is destroyed.
	if _, err := tok.Create("dup", P256); err != nil {
		t.Fatal(err)
	}
	addPair(t, tok, "scepter-dup")
	if err := tok.RemoveRef(tok.Ref("dup")); err == nil || !strings.Contains(err.Error(), "none was") {
		t.Errorf("RemoveRef of an ambiguous label: %v", err)
	}
	if err := tok.Remove("dup"); err == nil {
		t.Error("Remove of an ambiguous label succeeded")
	}
	if _, err := tok.Open("dup"); err == nil || !strings.Contains(err.Error(), "2 keys") {
		t.Errorf("after the refused removals: %v, want both keys still there", err)
	}
}
