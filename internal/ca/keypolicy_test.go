package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"math/big"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

func rsaKey(t *testing.T, bits int) crypto.PublicKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

func ecKey(t *testing.T, c elliptic.Curve) crypto.PublicKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

// closePrimes builds a 2048-bit modulus whose factors are neighbouring
// primes, which Fermat's method factors at once.
func closePrimes(t *testing.T) *rsa.PublicKey {
	t.Helper()
	p, err := rand.Prime(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	q := new(big.Int).Add(p, big.NewInt(2))
	for !q.ProbablyPrime(20) {
		q.Add(q, big.NewInt(2))
	}
	return &rsa.PublicKey{N: new(big.Int).Mul(p, q), E: 65537}
}

func TestCheckKey(t *testing.T) {
	rsa2048 := rsaKey(t, 2048).(*rsa.PublicKey)
	big2048 := rsa2048.N
	e3 := &rsa.PublicKey{N: big2048, E: 3}
	small := &rsa.PublicKey{N: new(big.Int).Mul(big.NewInt(751), new(big.Int).Rsh(big2048, 10)), E: 65537}
	if small.N.BitLen() < 2048 {
		small.N.Lsh(small.N, uint(2048-small.N.BitLen()))
	}
	even := &rsa.PublicKey{N: new(big.Int).SetBit(new(big.Int).Set(big2048), 0, 0), E: 65537}
	ed, _, _ := ed25519.GenerateKey(rand.Reader)
	offCurve := ecKey(t, elliptic.P256()).(*ecdsa.PublicKey)
	offCurve = &ecdsa.PublicKey{Curve: offCurve.Curve, X: offCurve.X, Y: new(big.Int).Add(offCurve.Y, big.NewInt(1))}

	def := pki.DefaultKeyPolicy
	withP521 := pki.KeyPolicy{RSAMinBits: 2048, RSAMaxBits: 4096, ECCurves: []string{"P-256", "p521"}}
	ecOnly := pki.KeyPolicy{ECCurves: []string{"P-256"}}
	rsaOnly := pki.KeyPolicy{RSAMinBits: 3072}
	tests := []struct {
		name   string
		policy pki.KeyPolicy
		pub    crypto.PublicKey
		want   string // "" = accepted
	}{
		{"RSA-1024", def, rsaKey(t, 1024), "RSA key of 1024 bits is below the profile minimum of 2048"},
		{"RSA-2048", def, rsa2048, ""},
		{"RSA-3072", def, rsaKey(t, 3072), ""},
		{"RSA-4096", def, rsaKey(t, 4096), ""},
		{"RSA-4096 above max", withP521, rsaKey(t, 4096+8), "above the profile maximum of 4096"},
		{"RSA-2048 below 3072", rsaOnly, rsa2048, "below the profile minimum of 3072"},
		{"RSA above default max", pki.KeyPolicy{RSAMinBits: 2048}, &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 8192), E: 65537}, "above the profile maximum of 8192"},
		{"exponent 3", def, e3, "exponent 3 is not allowed"},
		{"small factor", def, small, "small prime factor"},
		{"even modulus", def, even, "small prime factor"},
		{"close primes", def, closePrimes(t), "too close together"},
		{"RSA not allowed", ecOnly, rsa2048, "RSA keys are not accepted"},
		{"P-256", def, ecKey(t, elliptic.P256()), ""},
		{"P-384", def, ecKey(t, elliptic.P384()), ""},
		{"P-224 refused", def, ecKey(t, elliptic.P224()), "EC key on curve P-224 is not accepted by this profile (allowed: P-256, P-384)"},
		{"P-521 refused", def, ecKey(t, elliptic.P521()), "curve P-521 is not accepted"},
		{"P-521 listed", withP521, ecKey(t, elliptic.P521()), ""},
		{"P-384 not listed", withP521, ecKey(t, elliptic.P384()), "not accepted"},
		{"EC not allowed", rsaOnly, ecKey(t, elliptic.P256()), "EC keys are not accepted by this profile (RSA only)"},
		{"point not on curve", def, offCurve, "not a valid point"},
		{"Ed25519", def, ed, "Ed25519 keys are not accepted"},
		{"nil", def, nil, "no public key"},
		{"empty RSA", def, &rsa.PublicKey{}, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckKey(tt.policy, tt.pub)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if codeOf(err) != pki.EBadRequest || !strings.Contains(pki.ErrorMessage(err), tt.want) {
				t.Fatalf("err = %v, want bad request containing %q", err, tt.want)
			}
		})
	}
}

func TestFermatBoundary(t *testing.T) {
	// Random 2048-bit keys are never flagged.
	for range 5 {
		k := rsaKey(t, 2048).(*rsa.PublicKey)
		if fermatFactorable(k.N, fermatRounds) {
			t.Fatal("random key flagged")
		}
	}
	// Fermat needs about (p-q)^2 / (8 sqrt(n)) rounds: factors 2^516 apart
	// take ~32 rounds (found), 2^520 apart ~512 rounds (beyond the bound).
	p, _ := rand.Prime(rand.Reader, 1024)
	apart := func(bits uint) *big.Int {
		q := new(big.Int).Add(p, new(big.Int).Lsh(big.NewInt(1), bits))
		for !q.ProbablyPrime(20) {
			q.Add(q, big.NewInt(1))
		}
		return new(big.Int).Mul(p, q)
	}
	if n := apart(516); !fermatFactorable(n, fermatRounds) || fermatFactorable(n, 1) {
		t.Error("factors 2^516 apart: want found within 100 rounds but not in 1")
	}
	if fermatFactorable(apart(520), fermatRounds) {
		t.Error("factors 2^520 apart found within 100 rounds")
	}
	if !fermatFactorable(big.NewInt(49), 1) {
		t.Error("perfect square not flagged")
	}
}
