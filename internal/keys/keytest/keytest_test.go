package keytest

import (
	"crypto"
	"testing"

	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// The pool's promise to the tests that compare keys: any Size
// consecutive keys of a type are distinct, later ones are earlier ones
// again (that is the saving), and key types other than RSA are fresh.
func TestPoolHandsOutDistinctKeysInTurn(t *testing.T) {
	const size = 3
	p := NewPool(size)
	var got []crypto.Signer
	for range 2*size + 1 {
		k, err := p.Generate(keys.RSA2048)
		if err != nil {
			t.Fatal(err)
		}
		if keys.KeyTypeOf(k) != keys.RSA2048 {
			t.Fatalf("a %s key, want rsa2048", keys.KeyTypeOf(k))
		}
		got = append(got, k)
	}
	for i := range got {
		for j := i + 1; j < len(got) && j < i+size; j++ {
			if pki.SamePublicKey(got[i].Public(), got[j].Public()) {
				t.Errorf("keys %d and %d are one key, within %d consecutive", i, j, size)
			}
		}
		if i >= size && got[i] != got[i-size] {
			t.Errorf("key %d is not key %d again: the pool made a fresh one", i, i-size)
		}
	}
	a, err := p.Generate(keys.P256)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Generate(keys.P256)
	if err != nil {
		t.Fatal(err)
	}
	if keys.KeyTypeOf(a) != keys.P256 || pki.SamePublicKey(a.Public(), b.Public()) {
		t.Error("p256 keys are not fresh ones")
	}
	if _, err := p.Generate("dsa1024"); err == nil {
		t.Error("an unknown key type was accepted")
	}
}
