package cms

import (
	"bytes"
	"crypto"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync"

	"github.com/scepter/scepter/internal/pki"
)

func isUnsupported(err error) bool { return errors.Is(err, ErrUnsupportedAlgorithm) }

// DecryptKeyTransport decrypts the content for the key-transport recipient
// matching cert (by issuerAndSerialNumber or subjectKeyIdentifier; if none
// matches and there is exactly one ktri, that one is tried).
//
// It is oracle-free: for PKCS #1 v1.5 a bad padding yields a random content
// key and decryption continues as if nothing happened (RFC 3218 §2.3.2);
// every failure after the key unwrap (wrong key length, bad CBC padding, bad
// GCM tag, wrong OAEP padding) returns exactly ErrDecryption. Errors before
// that (no recipient, non-RSA key, unsupported algorithm) depend on public
// data only. Callers must still treat "decrypted, but the plaintext is not
// what was expected" exactly like ErrDecryption: with a random key CBC
// padding happens to be valid about once in 256 tries.
func (ed *EnvelopedData) DecryptKeyTransport(cert *x509.Certificate, key crypto.Decrypter) ([]byte, error) {
	if key == nil {
		return nil, errors.New("cms: DecryptKeyTransport needs a key")
	}
	if _, ok := key.Public().(*rsa.PublicKey); !ok {
		return nil, fmt.Errorf("%w: key transport needs an RSA key, have %T", ErrUnsupportedAlgorithm, key.Public())
	}
	r := ed.findKeyTransport(cert)
	if r == nil {
		return nil, ErrNoRecipient
	}
	if r.algErr != nil {
		return nil, r.algErr
	}
	keyLen := ed.Cipher.KeySize()
	if keyLen == 0 {
		return nil, fmt.Errorf("%w: content cipher %v", ErrUnsupportedAlgorithm, ed.Cipher)
	}
	var cek []byte
	switch r.KeyTransport {
	case RSAPKCS1v15:
		// Draw the substitute first so both outcomes cost the same.
		cek = make([]byte, keyLen)
		if _, err := rand.Read(cek); err != nil {
			return nil, fmt.Errorf("cms: random: %w", err)
		}
		//lint:ignore SA1019 SCEP clients use PKCS #1 v1.5 key transport; this is the safe way to decrypt it.
		k, err := key.Decrypt(rand.Reader, r.encryptedKey, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: keyLen})
		if keyUnavailable(err) {
			return nil, err
		}
		// crypto/rsa already substitutes a random key on bad padding; an HSM
		// may instead fail or return another length, so substitute here too.
		ok := 0
		if err == nil && len(k) == keyLen {
			ok = 1
		} else {
			k = make([]byte, keyLen)
		}
		subtle.ConstantTimeCopy(ok, cek, k)
	case RSAOAEP:
		// The hashes are exported, so check them: crypto/rsa panics on an unlinked hash.
		if _, err := digestOID(r.OAEPHash); err != nil {
			return nil, err
		}
		if r.OAEPMGFHash != 0 {
			if _, err := digestOID(r.OAEPMGFHash); err != nil {
				return nil, err
			}
		}
		k, err := key.Decrypt(rand.Reader, r.encryptedKey, &rsa.OAEPOptions{
			Hash: r.OAEPHash, MGFHash: r.OAEPMGFHash, Label: r.oaepLabel,
		})
		if keyUnavailable(err) {
			return nil, err
		}
		if err != nil || len(k) != keyLen {
			return nil, ErrDecryption
		}
		cek = k
	default:
		return nil, fmt.Errorf("%w: key transport %v", ErrUnsupportedAlgorithm, r.KeyTransport)
	}
	return ed.decryptContent(cek)
}

// keyUnavailable: the key could not be used at all (an HSM's token lost,
// pki.ErrUnavailable), which says nothing about the ciphertext, so it is no
// oracle: the caller answers "try again later", not "bad message".
func keyUnavailable(err error) bool {
	return err != nil && errors.Is(err, pki.ErrUnavailable)
}

func (ed *EnvelopedData) findKeyTransport(cert *x509.Certificate) *Recipient {
	var only *Recipient
	n := 0
	for i := range ed.Recipients {
		r := &ed.Recipients[i]
		if r.Kind != RecipientKeyTransport {
			continue
		}
		if matchesCert(r.IssuerAndSerial, r.SubjectKeyID, cert) {
			return r
		}
		only = r
		n++
	}
	if n == 1 {
		return only
	}
	return nil
}

// DecryptPassword decrypts the content for a password recipient (RFC 3211,
// RFC 8894 §3.2.2): PBKDF2 (HMAC-SHA1 unless another PRF is named) derives
// the KEK, which unwraps the content key with id-alg-PWRI-KEK. Every failure
// after key derivation returns exactly ErrDecryption.
func (ed *EnvelopedData) DecryptPassword(password []byte) ([]byte, error) {
	return ed.DecryptPasswordWith(password, nil)
}

// DecryptPasswordWith is DecryptPassword that takes a KEK from keys when it
// derived the same one before, and keeps what it derives there (keys nil:
// none kept).
func (ed *EnvelopedData) DecryptPasswordWith(password []byte, keys *PasswordKEKs) ([]byte, error) {
	var lastErr error = ErrNoRecipient
	budget := maxPBKDF2Iter // total PBKDF2 work per call, however many pwri there are
	for i := range ed.Recipients {
		r := &ed.Recipients[i]
		if r.Kind != RecipientPassword {
			continue
		}
		if r.algErr != nil {
			lastErr = r.algErr
			continue
		}
		kekLen := r.kekCipher.KeySize()
		if kekLen == 0 || r.kdfIter < 1 || r.kdfIter > maxPBKDF2Iter || hmacOID(r.kdfPRF) == nil {
			lastErr = fmt.Errorf("%w: pwri parameters", ErrUnsupportedAlgorithm)
			continue
		}
		if r.kdfIter > budget {
			return nil, fmt.Errorf("%w: PBKDF2 work limit reached", ErrUnsupportedAlgorithm)
		}
		budget -= r.kdfIter
		kek, err := keys.derive(password, r, kekLen)
		if err != nil {
			lastErr = fmt.Errorf("%w: PBKDF2: %v", ErrUnsupportedAlgorithm, err)
			continue
		}
		cek, ok := pwriUnwrap(r.kekCipher, kek, r.kekIV, r.encryptedKey)
		if !ok || len(cek) != ed.Cipher.KeySize() {
			lastErr = ErrDecryption
			continue
		}
		return ed.decryptContent(cek)
	}
	return nil, lastErr
}

// pwriUnwrap undoes the RFC 3211 §2.3.2 key wrap: CBC-decrypt the outer
// layer (the last block first, using the next-to-last as IV, then the rest
// with that result as IV), then the inner layer with the IV, and check the
// length byte and check value.
func pwriUnwrap(c ContentCipher, kek, iv, wrapped []byte) ([]byte, bool) {
	info, ok := c.info()
	if !ok || info.gcm {
		return nil, false
	}
	block, err := info.newBlock(kek)
	if err != nil {
		return nil, false
	}
	bs := block.BlockSize()
	n := len(wrapped)
	if n < 2*bs || n%bs != 0 || len(iv) != bs {
		return nil, false
	}
	tmp := make([]byte, n)
	cipher.NewCBCDecrypter(block, wrapped[n-2*bs:n-bs]).CryptBlocks(tmp[n-bs:], wrapped[n-bs:])
	cipher.NewCBCDecrypter(block, tmp[n-bs:]).CryptBlocks(tmp[:n-bs], wrapped[:n-bs])
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(tmp, tmp)
	l := int(tmp[0])
	if l < 3 || 4+l > n {
		return nil, false
	}
	// The three check bytes are the complement of the key's first three.
	if tmp[1]^tmp[4] != 0xff || tmp[2]^tmp[5] != 0xff || tmp[3]^tmp[6] != 0xff {
		return nil, false
	}
	return bytes.Clone(tmp[4 : 4+l]), true
}

// decryptContent decrypts the encrypted content with cek. Every failure is
// the bare ErrDecryption.
func (ed *EnvelopedData) decryptContent(cek []byte) ([]byte, error) {
	info, ok := ed.Cipher.info()
	if !ok || len(cek) != info.keySize {
		return nil, ErrDecryption
	}
	block, err := info.newBlock(cek)
	if err != nil {
		return nil, ErrDecryption
	}
	if info.gcm {
		aead, err := cipher.NewGCMWithTagSize(block, ed.tagLen)
		if err != nil || len(ed.iv) != aead.NonceSize() {
			return nil, ErrDecryption
		}
		ct := ed.ciphertext
		if ed.Authenticated {
			ct = append(bytes.Clone(ct), ed.mac...)
		}
		pt, err := aead.Open(nil, ed.iv, ct, ed.aad)
		if err != nil {
			return nil, ErrDecryption
		}
		return pt, nil
	}
	bs := block.BlockSize()
	if len(ed.iv) != bs || len(ed.ciphertext) == 0 || len(ed.ciphertext)%bs != 0 {
		return nil, ErrDecryption
	}
	pt := make([]byte, len(ed.ciphertext))
	cipher.NewCBCDecrypter(block, ed.iv).CryptBlocks(pt, ed.ciphertext)
	n, ok := unpad(pt, bs)
	if !ok {
		return nil, ErrDecryption
	}
	return pt[:n], nil
}

// unpad checks PKCS #7 padding in constant time and returns the content
// length.
func unpad(b []byte, bs int) (int, bool) {
	n := len(b)
	p := int(b[n-1])
	good := subtle.ConstantTimeLessOrEq(1, p) & subtle.ConstantTimeLessOrEq(p, bs)
	for i := 1; i <= bs; i++ {
		inPad := subtle.ConstantTimeLessOrEq(i, p)
		eq := subtle.ConstantTimeByteEq(b[n-i], byte(p))
		good &= subtle.ConstantTimeSelect(inPad, eq, 1)
	}
	if good != 1 {
		return 0, false
	}
	return n - p, true
}

// PasswordKEKs keeps the KEKs that DecryptPasswordWith derived, by all that
// went into each (the password, the PRF, the salt, the iteration count and
// the length), so that a client opening many envelopes made under one
// derived key runs PBKDF2 once: scepter's server derives one per challenge
// and hour, and a load tool opens thousands of its replies. Safe for
// concurrent use; it keeps at most 64 keys, and forgets them all when full.
// The zero value is ready to use.
type PasswordKEKs struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte][]byte
}

const maxPasswordKEKs = 64

// derive returns the KEK of recipient r for password, from k when k holds it.
func (k *PasswordKEKs) derive(password []byte, r *Recipient, kekLen int) ([]byte, error) {
	pbkdf := func() ([]byte, error) {
		return pbkdf2.Key(func() hash.Hash { return r.kdfPRF.New() }, string(password), r.kdfSalt, r.kdfIter, kekLen)
	}
	if k == nil {
		return pbkdf()
	}
	h := sha256.New()
	for _, part := range [][]byte{password, r.kdfSalt} {
		binary.Write(h, binary.BigEndian, uint64(len(part)))
		h.Write(part)
	}
	binary.Write(h, binary.BigEndian, [3]uint64{uint64(r.kdfPRF), uint64(r.kdfIter), uint64(kekLen)})
	var id [sha256.Size]byte
	h.Sum(id[:0])
	k.mu.Lock()
	kek, ok := k.m[id]
	k.mu.Unlock()
	if ok {
		return kek, nil
	}
	kek, err := pbkdf()
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil || len(k.m) >= maxPasswordKEKs {
		k.m = map[[sha256.Size]byte][]byte{}
	}
	k.m[id] = kek
	return kek, nil
}
