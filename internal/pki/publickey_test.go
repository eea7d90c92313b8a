package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
)

func TestSamePublicKey(t *testing.T) {
	a, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	e, _, _ := ed25519.GenerateKey(rand.Reader)
	copyOfA := a.PublicKey
	type noEqual struct{ crypto.PublicKey }
	tests := []struct {
		name string
		x, y crypto.PublicKey
		want bool
	}{
		{"same key", a.Public(), a.Public(), true},
		{"equal copy", &a.PublicKey, &copyOfA, true},
		{"other key", a.Public(), b.Public(), false},
		{"other type", a.Public(), e, false},
		{"nil second", a.Public(), nil, false},
		{"nil first", nil, a.Public(), false},
		{"no Equal method", noEqual{a.Public()}, a.Public(), false},
	}
	for _, tt := range tests {
		if got := SamePublicKey(tt.x, tt.y); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}
