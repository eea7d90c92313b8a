package keys

import (
	"crypto"
	"errors"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

// A Dir (and so its FileSource) makes the key files it creates with its
// Generate, plain or encrypted, so that tests can hand out keys made
// beforehand; the key written is the one Generate returned, and its
// error is Create's.
func TestDirCreateUsesItsGenerator(t *testing.T) {
	made, err := Generate(P256)
	if err != nil {
		t.Fatal(err)
	}
	refused := errors.New("no key for you")
	for _, tc := range []struct {
		name       string
		passphrase []byte
		key        crypto.Signer
		err        error
	}{
		{name: "plain", key: made},
		{name: "generator fails", err: refused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var asked []string
			d := &Dir{Path: t.TempDir(), Passphrase: tc.passphrase, Generate: func(keyType string) (crypto.Signer, error) {
				asked = append(asked, keyType)
				return tc.key, tc.err
			}}
			got, err := d.Create("ra", RSA2048)
			if len(asked) != 1 || asked[0] != RSA2048 {
				t.Fatalf("generator asked for %q, want one %q", asked, RSA2048)
			}
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Create = %v, want the generator's error", err)
				}
				if ok, _ := d.Has("ra"); ok {
					t.Error("a key file was written though the generator failed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			back, err := d.Open("ra")
			if err != nil {
				t.Fatal(err)
			}
			if !pki.SamePublicKey(got.Public(), tc.key.Public()) || !pki.SamePublicKey(back.Public(), tc.key.Public()) {
				t.Error("the key written is not the one the generator made")
			}
		})
	}
	// Without one, Create makes a fresh key of the type asked (Generate).
	d := &Dir{Path: t.TempDir()}
	k, err := d.Create("issuing", P384)
	if err != nil {
		t.Fatal(err)
	}
	if KeyTypeOf(k) != P384 || pki.SamePublicKey(k.Public(), made.Public()) {
		t.Errorf("Create without a generator made a %s key, want a fresh p384", KeyTypeOf(k))
	}
}
