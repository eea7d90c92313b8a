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

// For never hands one test a key twice, whatever other tests draw
// between: its subtests count as the test, and a test that drew every
// pooled key gets fresh ones.
func TestForHandsATestDistinctKeys(t *testing.T) {
	p := NewPool(2)
	mine, other := p.For(t), p.For(&named{TB: t, name: "TestOther"})
	var got []crypto.Signer
	draw := func(gen func(string) (crypto.Signer, error)) crypto.Signer {
		t.Helper()
		k, err := gen(keys.RSA2048)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	got = append(got, draw(mine))
	draw(other) // the pool's second key goes to another test
	got = append(got, draw(mine))
	t.Run("sub", func(t *testing.T) { got = append(got, draw(p.For(t))) })
	got = append(got, draw(mine))
	for i := range got {
		for j := i + 1; j < len(got); j++ {
			if pki.SamePublicKey(got[i].Public(), got[j].Public()) {
				t.Errorf("the test's keys %d and %d are one key", i, j)
			}
		}
	}
	if k := draw(other); k != p.made[keys.RSA2048][0] && k != p.made[keys.RSA2048][1] {
		t.Error("another test got a fresh key where pooled ones were its to take")
	}
}

// named is a testing.TB under another test's name.
type named struct {
	testing.TB
	name string
}

func (n *named) Name() string { return n.name }
