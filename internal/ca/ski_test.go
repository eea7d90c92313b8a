package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"math/big"
	"testing"

	"github.com/scepter/scepter/internal/pkitest"
)

// The key IDs written from a key's own encoding are those of x509's.
func TestSubjectKeyIDMatchesX509Encoding(t *testing.T) {
	rsaKey := func(bits int) *rsa.PublicKey {
		t.Helper()
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		return &k.PublicKey
	}
	ecKey := func(c elliptic.Curve) *ecdsa.PublicKey {
		t.Helper()
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return &k.PublicKey
	}
	r2048 := rsaKey(2048)
	// A modulus encodes with a leading zero octet (its top bit is set);
	// exponents of 3 and 2^31-1 encode in one and four octets.
	smallE := &rsa.PublicKey{N: r2048.N, E: 3}
	bigE := &rsa.PublicKey{N: r2048.N, E: 1<<31 - 1}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	xKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pub  crypto.PublicKey
	}{
		{"RSA-1024", rsaKey(1024)},
		{"RSA-2048", r2048},
		{"RSA e=3", smallE},
		{"RSA e=2^31-1", bigE},
		{"P-224", ecKey(elliptic.P224())},
		{"P-256", ecKey(elliptic.P256())},
		{"P-384", ecKey(elliptic.P384())},
		{"P-521", ecKey(elliptic.P521())},
		{"Ed25519", edPub},
		{"X25519", xKey.PublicKey()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := subjectKeyID(tc.pub)
			if err != nil {
				t.Fatal(err)
			}
			if want := pkitest.SubjectKeyID(t, tc.pub); !bytes.Equal(got, want) {
				t.Errorf("subjectKeyID = %x, want %x", got, want)
			}
		})
	}
}

// Keys x509 cannot encode are refused, as before, not hashed.
func TestSubjectKeyIDRefusesWhatX509Refuses(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	offCurve := &ecdsa.PublicKey{Curve: elliptic.P256(), X: k.X, Y: new(big.Int).Add(k.Y, big.NewInt(1))}
	for _, tc := range []struct {
		name string
		pub  crypto.PublicKey
	}{
		{"ECDSA point off the curve", offCurve},
		{"RSA without a modulus", &rsa.PublicKey{E: 65537}},
		{"unknown key type", struct{}{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if ski, err := subjectKeyID(tc.pub); err == nil {
				t.Errorf("subjectKeyID = %x, want an error", ski)
			}
		})
	}
}

func BenchmarkSubjectKeyID(b *testing.B) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := subjectKeyID(&k.PublicKey); err != nil {
			b.Fatal(err)
		}
	}
}
