// Package opensslrsa makes the private-key operations of an RSA key held in
// memory (a key file's) through the system's OpenSSL 3, loaded at run time
// from libcrypto.so.3. On this project's reference machine OpenSSL signs
// with RSA-2048 in 0.26 ms against crypto/rsa's 0.87 ms, and RSA
// operations are most of a SCEP enrollment's CPU: the RA decrypts every
// request's content key and signs every reply, and an RSA CA signs every
// certificate.
//
// Nothing here is needed: a build without cgo, a machine without OpenSSL 3
// or a key that fails the self-test leaves crypto/rsa in charge, and an
// operation OpenSSL is not asked to do (PSS, OAEP, a decryption whose
// padding error the caller wants) goes to crypto/rsa too. The binary does
// not link OpenSSL; it looks the library up when asked to.
//
// PKCS #1 v1.5 decryption takes the raw RSA result from OpenSSL and checks
// the padding here in constant time, as crypto/rsa does, so that a bad
// padding answers exactly like a good one (see Key.Decrypt).
package opensslrsa

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
)

// ErrUnavailable: OpenSSL cannot be used here (no cgo, no libcrypto.so.3,
// or a version before 3.0).
var ErrUnavailable = errors.New("opensslrsa: OpenSSL 3 is not available")

// Version is the loaded library's version, "OpenSSL 3.0.19".
func (l *Library) Version() string {
	v := l.version
	return fmt.Sprintf("OpenSSL %d.%d.%d", v>>28, (v>>20)&0xff, (v>>4)&0xff)
}

// Key is an RSA private key whose PKCS #1 v1.5 signatures and session-key
// decryptions OpenSSL makes. It is a crypto.Signer and crypto.Decrypter.
type Key struct {
	goKey *rsa.PrivateKey
	p     *pkey
}

// Wrap returns key as a *Key when it is an *rsa.PrivateKey, and key itself
// otherwise. Before it hands a Key out it checks that OpenSSL and crypto/rsa
// agree on it: the same signature, byte for byte, and a session key
// decrypted back.
func (l *Library) Wrap(key crypto.Signer) (crypto.Signer, error) {
	goKey, ok := key.(*rsa.PrivateKey)
	if !ok {
		return key, nil
	}
	der := x509.MarshalPKCS1PrivateKey(goKey)
	p, err := l.importKey(der)
	clear(der)
	if err != nil {
		return nil, err
	}
	k := &Key{goKey: goKey, p: p}
	if err := k.selfTest(); err != nil {
		return nil, err
	}
	return k, nil
}

// WrapOrKeep is Wrap for ca.InitOptions.WrapKey: a key that OpenSSL
// cannot take, or that fails the self-test, stays as it is (Go's
// crypto/rsa makes its operations), and fallback, when not nil, is told
// which key and why.
func (l *Library) WrapOrKeep(fallback func(key crypto.Signer, err error)) func(crypto.Signer) crypto.Signer {
	return func(key crypto.Signer) crypto.Signer {
		w, err := l.Wrap(key)
		if err != nil {
			if fallback != nil {
				fallback(key, err)
			}
			return key
		}
		return w
	}
}

func (k *Key) selfTest() error {
	digest := sha256.Sum256([]byte("scepter opensslrsa self-test"))
	want, err := k.goKey.Sign(nil, digest[:], crypto.SHA256)
	if err != nil {
		return fmt.Errorf("opensslrsa: self-test: %w", err)
	}
	got, err := k.sign(digest[:], crypto.SHA256)
	if err != nil || !bytes.Equal(got, want) {
		return fmt.Errorf("opensslrsa: self-test: OpenSSL's signature differs from crypto/rsa's (%v)", err)
	}
	const keyLen = 16
	session := make([]byte, keyLen)
	if _, err := rand.Read(session); err != nil {
		return err
	}
	//lint:ignore SA1019 the key transport SCEP uses.
	ct, err := rsa.EncryptPKCS1v15(rand.Reader, &k.goKey.PublicKey, session)
	if err != nil {
		return fmt.Errorf("opensslrsa: self-test: %w", err)
	}
	back, err := k.sessionKey(rand.Reader, ct, keyLen)
	if err != nil || !bytes.Equal(back, session) {
		return fmt.Errorf("opensslrsa: self-test: OpenSSL did not decrypt a session key back (%v)", err)
	}
	return nil
}

// Public returns the *rsa.PublicKey.
func (k *Key) Public() crypto.PublicKey { return &k.goKey.PublicKey }

// Sign makes a PKCS #1 v1.5 signature of digest through OpenSSL; PSS, an
// unhashed message and hashes other than SHA-1 and SHA-2 go to crypto/rsa.
func (k *Key) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	h := opts.HashFunc()
	if _, pss := opts.(*rsa.PSSOptions); pss || mdIndex(h) < 0 {
		return k.goKey.Sign(r, digest, opts)
	}
	if len(digest) != h.Size() {
		return nil, errors.New("opensslrsa: input must be hashed message")
	}
	sig, err := k.sign(digest, h)
	if err != nil {
		// OpenSSL failing on a key it passed the self-test with is not
		// expected; crypto/rsa answers rather than the request failing.
		return k.goKey.Sign(r, digest, opts)
	}
	return sig, nil
}

func (k *Key) sign(digest []byte, h crypto.Hash) ([]byte, error) {
	sig := make([]byte, k.goKey.Size())
	n, err := k.p.sign(h, digest, sig)
	if err != nil {
		return nil, err
	}
	if n != len(sig) {
		return nil, fmt.Errorf("opensslrsa: signature of %d bytes, want %d", n, len(sig))
	}
	return sig, nil
}

// mdIndex is h's place among the digests OpenSSL signs with (the md array
// of lib_cgo.go's scepter_ossl, in the same order), or -1 for a hash left
// to crypto/rsa.
func mdIndex(h crypto.Hash) int {
	switch h {
	case crypto.SHA1:
		return 0
	case crypto.SHA224:
		return 1
	case crypto.SHA256:
		return 2
	case crypto.SHA384:
		return 3
	case crypto.SHA512:
		return 4
	}
	return -1
}

// Decrypt decrypts a PKCS #1 v1.5 session key (opts a
// *rsa.PKCS1v15DecryptOptions with SessionKeyLen > 0) through OpenSSL, as
// rsa.DecryptPKCS1v15SessionKey does: a bad padding or a key of another
// length yields a random key of SessionKeyLen bytes and no error, in the
// same time as a good one. Any other decryption goes to crypto/rsa.
func (k *Key) Decrypt(r io.Reader, ciphertext []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	o, ok := opts.(*rsa.PKCS1v15DecryptOptions)
	if !ok || o.SessionKeyLen <= 0 {
		return k.goKey.Decrypt(r, ciphertext, opts)
	}
	return k.sessionKey(r, ciphertext, o.SessionKeyLen)
}

func (k *Key) sessionKey(r io.Reader, ciphertext []byte, keyLen int) ([]byte, error) {
	size := k.goKey.Size()
	// Both checks depend on public lengths only, as crypto/rsa's do.
	if size-(keyLen+3+8) < 0 || len(ciphertext) > size || len(ciphertext) == 0 {
		return nil, rsa.ErrDecryption
	}
	if r == nil {
		r = rand.Reader
	}
	key := make([]byte, keyLen)
	if _, err := io.ReadFull(r, key); err != nil {
		return nil, err
	}
	in := make([]byte, size)
	copy(in[size-len(ciphertext):], ciphertext)
	em := make([]byte, size)
	n, err := k.p.decryptRaw(in, em)
	if err != nil || n != size {
		// OpenSSL refuses a ciphertext not below the modulus (public);
		// anything else is unexpected, and crypto/rsa answers it.
		if new(big.Int).SetBytes(in).Cmp(k.goKey.N) < 0 {
			return k.goKey.Decrypt(r, ciphertext, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: keyLen})
		}
		return nil, rsa.ErrDecryption
	}
	valid, index := checkType2(em)
	valid &= subtle.ConstantTimeEq(int32(size-index), int32(keyLen))
	subtle.ConstantTimeCopy(valid, key, em[size-keyLen:])
	clear(em)
	return key, nil
}

// checkType2 reports whether em is a PKCS #1 v1.5 encryption block,
// 0x00 0x02 PS 0x00 M with at least eight nonzero bytes of PS, as valid 1 or
// 0, and where M starts. Its time and memory accesses do not depend on em's
// bytes.
func checkType2(em []byte) (valid, index int) {
	if len(em) < 11 {
		return 0, 0
	}
	leadingZero := subtle.ConstantTimeByteEq(em[0], 0)
	blockType2 := subtle.ConstantTimeByteEq(em[1], 2)
	searching, zeroAt := 1, 0
	for i := 2; i < len(em); i++ {
		isZero := subtle.ConstantTimeByteEq(em[i], 0)
		zeroAt = subtle.ConstantTimeSelect(searching&isZero, i, zeroAt)
		searching &^= isZero
	}
	// PS is em[2:zeroAt]: eight bytes or more means zeroAt ≥ 10.
	longEnough := subtle.ConstantTimeLessOrEq(10, zeroAt)
	valid = leadingZero & blockType2 & (searching ^ 1) & longEnough
	return valid, zeroAt + 1
}
