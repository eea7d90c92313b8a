package opensslrsa

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"math/big"
	"os"
	"sync"
	"testing"
)

// open loads libcrypto, or skips; scripts/test sets SCEPTER_E2E_REQUIRE=1,
// and then a missing library fails the test.
func open(t testing.TB) *Library {
	t.Helper()
	l, err := Open()
	if err != nil {
		if os.Getenv("SCEPTER_E2E_REQUIRE") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return l
}

var testKeys = struct {
	once sync.Once
	k    map[int]*rsa.PrivateKey
}{k: map[int]*rsa.PrivateKey{}}

func goKey(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	testKeys.once.Do(func() {
		for _, b := range []int{2048, 3072} {
			k, err := rsa.GenerateKey(rand.Reader, b)
			if err != nil {
				panic(err)
			}
			testKeys.k[b] = k
		}
	})
	return testKeys.k[bits]
}

func wrap(t testing.TB, bits int) (*Key, *rsa.PrivateKey) {
	t.Helper()
	l := open(t)
	g := goKey(t, bits)
	s, err := l.Wrap(g)
	if err != nil {
		t.Fatal(err)
	}
	k, ok := s.(*Key)
	if !ok {
		t.Fatalf("Wrap returned %T", s)
	}
	return k, g
}

func TestVersion(t *testing.T) {
	l := open(t)
	if v := l.Version(); len(v) < len("OpenSSL 3.0.0") || v[:9] != "OpenSSL 3" {
		t.Errorf("Version() = %q", v)
	}
}

// A PKCS #1 v1.5 signature is deterministic: OpenSSL's must equal
// crypto/rsa's byte for byte.
func TestSignMatchesCryptoRSA(t *testing.T) {
	for _, bits := range []int{2048, 3072} {
		k, g := wrap(t, bits)
		for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
			hh := h.New()
			hh.Write([]byte("message"))
			digest := hh.Sum(nil)
			got, err := k.Sign(rand.Reader, digest, h)
			if err != nil {
				t.Fatalf("%d %v: %v", bits, h, err)
			}
			want, _ := g.Sign(rand.Reader, digest, h)
			if !bytes.Equal(got, want) {
				t.Errorf("%d %v: signature differs from crypto/rsa's", bits, h)
			}
		}
	}
}

func TestSignOtherOptions(t *testing.T) {
	k, g := wrap(t, 2048)
	digest := sha256.Sum256([]byte("pss"))
	sig, err := k.Sign(rand.Reader, digest[:], &rsa.PSSOptions{Hash: crypto.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPSS(&g.PublicKey, crypto.SHA256, digest[:], sig, nil); err != nil {
		t.Errorf("PSS: %v", err)
	}
	if _, err := k.Sign(rand.Reader, digest[:20], crypto.SHA256); err == nil {
		t.Error("a digest of the wrong length was signed")
	}
	d512 := sha512.Sum512_256([]byte("x"))
	if _, err := k.Sign(rand.Reader, d512[:], crypto.SHA512_256); err != nil {
		t.Errorf("SHA-512/256 (crypto/rsa's): %v", err)
	}
}

func TestSessionKey(t *testing.T) {
	k, g := wrap(t, 2048)
	for _, n := range []int{16, 24, 32} {
		session := make([]byte, n)
		rand.Read(session)
		//lint:ignore SA1019 the key transport SCEP uses.
		ct, _ := rsa.EncryptPKCS1v15(rand.Reader, &g.PublicKey, session)
		got, err := k.Decrypt(rand.Reader, ct, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: n})
		if err != nil || !bytes.Equal(got, session) {
			t.Errorf("%d bytes: got %x, %v; want %x", n, got, err, session)
		}
		// Asked for another length: a random key of the length asked, and
		// no error, as from crypto/rsa.
		got, err = k.Decrypt(rand.Reader, ct, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: n + 8})
		if err != nil || len(got) != n+8 || bytes.HasPrefix(got, session) {
			t.Errorf("%d bytes asked as %d: got %x, %v", n, n+8, got, err)
		}
	}
	session := bytes.Repeat([]byte{7}, 16)
	// A ciphertext shorter than the modulus (leading zero bytes dropped).
	for {
		//lint:ignore SA1019 the key transport SCEP uses.
		ct, _ := rsa.EncryptPKCS1v15(rand.Reader, &g.PublicKey, session)
		if ct[0] != 0 {
			continue
		}
		got, err := k.Decrypt(rand.Reader, ct[1:], &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 16})
		if err != nil || !bytes.Equal(got, session) {
			t.Errorf("short ciphertext: %x, %v", got, err)
		}
		break
	}
	// Not below the modulus: refused, as by crypto/rsa (public data).
	tooBig := bytes.Repeat([]byte{0xff}, 256)
	if _, err := k.Decrypt(rand.Reader, tooBig, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 16}); !errors.Is(err, rsa.ErrDecryption) {
		t.Errorf("ciphertext ≥ N: %v", err)
	}
	if _, err := k.Decrypt(rand.Reader, append(tooBig, 1), &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 16}); !errors.Is(err, rsa.ErrDecryption) {
		t.Errorf("ciphertext longer than N: %v", err)
	}
	// OAEP goes to crypto/rsa.
	ct, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, &g.PublicKey, session, nil)
	if got, err := k.Decrypt(rand.Reader, ct, &rsa.OAEPOptions{Hash: crypto.SHA256}); err != nil || !bytes.Equal(got, session) {
		t.Errorf("OAEP: %x, %v", got, err)
	}
}

// rawEncrypt is em^e mod N: a ciphertext whose decryption is exactly em,
// padding or not.
func rawEncrypt(pub *rsa.PublicKey, em []byte) []byte {
	m := new(big.Int).SetBytes(em)
	c := m.Exp(m, big.NewInt(int64(pub.E)), pub.N)
	return c.FillBytes(make([]byte, pub.Size()))
}

// Blocks that crypto/rsa accepts or refuses, decrypted by both: where
// crypto/rsa finds a session key of the length asked, ours must be the same;
// where it refuses, ours must be random.
func TestSessionKeyAgreesWithCryptoRSA(t *testing.T) {
	k, g := wrap(t, 2048)
	size := g.Size()
	block := func(psLen, keyLen int, edit func(em []byte)) []byte {
		em := make([]byte, size)
		em[1] = 2
		for i := 2; i < 2+psLen; i++ {
			em[i] = 0x5a
		}
		em[2+psLen] = 0
		for i := 3 + psLen; i < size; i++ {
			em[i] = byte(i)
		}
		if edit != nil {
			edit(em)
		}
		_ = keyLen
		return em
	}
	const keyLen = 16
	ps := size - 3 - keyLen
	cases := map[string][]byte{
		"valid":             block(ps, keyLen, nil),
		"first byte":        block(ps, keyLen, func(em []byte) { em[0] = 1 }),
		"block type 1":      block(ps, keyLen, func(em []byte) { em[1] = 1 }),
		"no zero":           block(ps, keyLen, func(em []byte) { em[2+ps] = 9 }),
		"PS of 7 bytes":     block(ps, keyLen, func(em []byte) { em[9] = 0 }),
		"PS of 8 bytes":     block(ps, keyLen, func(em []byte) { em[10] = 0 }),
		"zero in PS":        block(ps, keyLen, func(em []byte) { em[100] = 0 }),
		"message too long":  block(ps, keyLen, func(em []byte) { em[2+ps] = 7; em[2+ps-1] = 0 }),
		"message too short": block(ps, keyLen, func(em []byte) { em[2+ps+1] = 0 }),
	}
	for name, em := range cases {
		ct := rawEncrypt(&g.PublicKey, em)
		//lint:ignore SA1019 the reference.
		msg, goErr := rsa.DecryptPKCS1v15(nil, g, ct)
		got, err := k.Decrypt(rand.Reader, ct, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: keyLen})
		if err != nil || len(got) != keyLen {
			t.Errorf("%s: %x, %v", name, got, err)
			continue
		}
		wantValid := goErr == nil && len(msg) == keyLen
		if gotValid := bytes.Equal(got, em[size-keyLen:]); gotValid != wantValid {
			t.Errorf("%s: took the block's key %v, crypto/rsa says valid %v (%v, %d bytes)", name, gotValid, wantValid, goErr, len(msg))
		}
	}
}

// checkType2Plain is checkType2 written for reading, not for time.
func checkType2Plain(em []byte) (bool, int) {
	if len(em) < 11 || em[0] != 0 || em[1] != 2 {
		return false, 0
	}
	zero := bytes.IndexByte(em[2:], 0)
	if zero < 8 {
		return false, 0
	}
	return true, 2 + zero + 1
}

func FuzzCheckType2(f *testing.F) {
	f.Add([]byte{0, 2, 1, 1, 1, 1, 1, 1, 1, 1, 0, 42})
	f.Add([]byte{0, 2, 1, 1, 1, 1, 1, 1, 1, 0, 42, 42})
	f.Add([]byte{0, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1})
	f.Add([]byte{0, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0})
	f.Fuzz(func(t *testing.T, em []byte) {
		valid, index := checkType2(em)
		wantValid, wantIndex := checkType2Plain(em)
		if (valid == 1) != wantValid || (wantValid && index != wantIndex) {
			t.Fatalf("checkType2(%x) = %d, %d; want %v, %d", em, valid, index, wantValid, wantIndex)
		}
	})
}

func TestWrapLeavesOtherKeys(t *testing.T) {
	l := open(t)
	s := &notRSA{}
	if got, err := l.Wrap(s); err != nil || got != crypto.Signer(s) {
		t.Errorf("Wrap(non-RSA) = %v, %v", got, err)
	}
}

type notRSA struct{ crypto.Signer }

func TestConcurrentUse(t *testing.T) {
	k, g := wrap(t, 2048)
	digest := sha256.Sum256([]byte("concurrent"))
	want, _ := g.Sign(nil, digest[:], crypto.SHA256)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				got, err := k.Sign(nil, digest[:], crypto.SHA256)
				if err != nil || !bytes.Equal(got, want) {
					t.Error("concurrent signature differs", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkSign(b *testing.B) {
	k, g := wrap(b, 2048)
	digest := sha256.Sum256([]byte("bench"))
	b.Run("openssl", func(b *testing.B) {
		for b.Loop() {
			k.Sign(nil, digest[:], crypto.SHA256)
		}
	})
	b.Run("crypto-rsa", func(b *testing.B) {
		for b.Loop() {
			g.Sign(nil, digest[:], crypto.SHA256)
		}
	})
}

func BenchmarkSessionKey(b *testing.B) {
	k, g := wrap(b, 2048)
	//lint:ignore SA1019 the key transport SCEP uses.
	ct, _ := rsa.EncryptPKCS1v15(rand.Reader, &g.PublicKey, make([]byte, 16))
	opts := &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 16}
	b.Run("openssl", func(b *testing.B) {
		for b.Loop() {
			k.Decrypt(rand.Reader, ct, opts)
		}
	})
	b.Run("crypto-rsa", func(b *testing.B) {
		for b.Loop() {
			g.Decrypt(rand.Reader, ct, opts)
		}
	})
}

func TestWrapOrKeep(t *testing.T) {
	l := open(t)
	var fellBack []error
	wrapKey := l.WrapOrKeep(func(_ crypto.Signer, err error) { fellBack = append(fellBack, err) })

	if _, ok := wrapKey(goKey(t, 2048)).(*Key); !ok {
		t.Error("a sound RSA key was not wrapped")
	}
	other := &notRSA{}
	if got := wrapKey(other); got != crypto.Signer(other) {
		t.Errorf("a key that is not RSA came back as %T", got)
	}
	if len(fellBack) != 0 {
		t.Fatalf("fallback called for sound keys: %v", fellBack)
	}

	// A private exponent that does not match the modulus: OpenSSL refuses
	// it or the self-test does, and the key stays Go's, said so.
	bad := *goKey(t, 2048)
	bad.D = new(big.Int).Add(bad.D, big.NewInt(2))
	bad.Precomputed = rsa.PrecomputedValues{}
	if got := wrapKey(&bad); got != crypto.Signer(&bad) {
		t.Errorf("a key that fails the self-test came back as %T", got)
	}
	if len(fellBack) != 1 || fellBack[0] == nil {
		t.Errorf("fallback calls = %v, want one with its reason", fellBack)
	}
	if l.WrapOrKeep(nil)(&bad) != crypto.Signer(&bad) {
		t.Error("WrapOrKeep(nil) did not keep a key it could not wrap")
	}
}
