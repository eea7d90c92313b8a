package cms

import (
	"bytes"
	"crypto"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// EncryptOptions are the per-call choices for Encrypt and EncryptPassword.
type EncryptOptions struct {
	// Cipher encrypts the content; zero means AES-256-CBC. The GCM ciphers
	// produce an AuthEnvelopedData (RFC 5083/5084), the others an
	// EnvelopedData.
	Cipher ContentCipher
	// KeyTransport for Encrypt; zero means RSAPKCS1v15.
	KeyTransport KeyTransport
	// OAEPHash is the OAEP hash for RSAOAEP; zero means SHA-1, the ASN.1
	// default that every OAEP implementation reads.
	OAEPHash crypto.Hash
	// OAEPMGFHash is MGF1's hash for RSAOAEP; zero means OAEPHash. RFC 4055
	// lets the two differ, and a reply answers in the request's pair: the
	// recipient decrypts with the hashes it chose, whatever the parameters
	// say.
	OAEPMGFHash crypto.Hash
	// PasswordIterations is the PBKDF2 iteration count for EncryptPassword;
	// zero means 100000, less than 10000 is refused.
	PasswordIterations int
	// ContentType is the type of the encrypted content; nil means id-data.
	// (EST encrypts a SignedData: id-signedData.)
	ContentType asn1.ObjectIdentifier
}

const (
	defaultPasswordIterations = 100000
	minPasswordIterations     = 10000
)

// Encrypt returns a DER ContentInfo(EnvelopedData) of content for RSA
// recipient certificates, each named by issuerAndSerialNumber. Recipients
// with other key types are refused: they need key agreement or a password.
func Encrypt(content []byte, recipients []*x509.Certificate, opts EncryptOptions) ([]byte, error) {
	if len(recipients) == 0 {
		return nil, errors.New("cms: Encrypt needs at least one recipient")
	}
	kt, oaep, err := keyTransportOptions(opts)
	if err != nil {
		return nil, err
	}
	for _, c := range recipients {
		if err := checkParsed(c); err != nil {
			return nil, err
		}
		if _, ok := c.PublicKey.(*rsa.PublicKey); !ok {
			return nil, fmt.Errorf("%w: recipient %q has a %T key; key transport needs RSA (use EncryptPassword for other keys)",
				ErrUnsupportedAlgorithm, c.Subject.String(), c.PublicKey)
		}
	}
	s, err := seal(opts.Cipher, content, opts.ContentType)
	if err != nil {
		return nil, err
	}
	var ktris [][]byte
	for _, c := range recipients {
		ri, err := keyTransportRecipient(c.PublicKey.(*rsa.PublicKey), s.cek, kt, oaep, 0, func(b *cryptobyte.Builder) { addIssuerAndSerial(b, c) })
		if err != nil {
			return nil, fmt.Errorf("cms: encrypting the content key for %q: %w", c.Subject.String(), err)
		}
		ktris = append(ktris, ri)
	}
	return s.envelope(0, ktris) // RFC 5652 §6.1: only v0 ktri, no extras -> version 0
}

// EncryptToKey returns a DER ContentInfo(EnvelopedData) of content for one
// RSA public key that has no certificate, named by subjectKeyIdentifier
// (EST serverkeygen encrypts to the key an AsymmetricDecryptKeyIdentifier
// names).
func EncryptToKey(content []byte, pub *rsa.PublicKey, subjectKeyID []byte, opts EncryptOptions) ([]byte, error) {
	if pub == nil || len(subjectKeyID) == 0 {
		return nil, errors.New("cms: EncryptToKey needs an RSA key and its key identifier")
	}
	kt, oaep, err := keyTransportOptions(opts)
	if err != nil {
		return nil, err
	}
	s, err := seal(opts.Cipher, content, opts.ContentType)
	if err != nil {
		return nil, err
	}
	ri, err := keyTransportRecipient(pub, s.cek, kt, oaep, 2, func(b *cryptobyte.Builder) {
		b.AddASN1(tagImplicit0, func(b *cryptobyte.Builder) { b.AddBytes(subjectKeyID) })
	})
	if err != nil {
		return nil, fmt.Errorf("cms: encrypting the content key: %w", err)
	}
	return s.envelope(2, [][]byte{ri}) // RFC 5652 §6.1: a v2 ktri makes version 2
}

// oaepHashes are RSAES-OAEP's two hashes: the one that hashes the label,
// and MGF1's.
type oaepHashes struct {
	hash, mgf crypto.Hash
}

// keyTransportOptions applies the defaults: PKCS #1 v1.5, SHA-1 for OAEP,
// and MGF1 with the OAEP hash.
func keyTransportOptions(opts EncryptOptions) (KeyTransport, oaepHashes, error) {
	kt := opts.KeyTransport
	if kt == 0 {
		kt = RSAPKCS1v15
	}
	oaep := oaepHashes{hash: opts.OAEPHash, mgf: opts.OAEPMGFHash}
	if oaep.hash == 0 {
		oaep.hash = crypto.SHA1
	}
	if oaep.mgf == 0 {
		oaep.mgf = oaep.hash
	}
	if kt == RSAOAEP {
		for _, h := range []crypto.Hash{oaep.hash, oaep.mgf} {
			if _, err := digestOID(h); err != nil {
				return 0, oaepHashes{}, err
			}
		}
	} else if kt != RSAPKCS1v15 {
		return 0, oaepHashes{}, fmt.Errorf("%w: key transport %v", ErrUnsupportedAlgorithm, kt)
	}
	return kt, oaep, nil
}

// keyTransportRecipient encrypts cek to pub and encodes the
// KeyTransRecipientInfo, its recipient identifier written by addRID.
func keyTransportRecipient(pub *rsa.PublicKey, cek []byte, kt KeyTransport, oaep oaepHashes, version int64, addRID func(*cryptobyte.Builder)) ([]byte, error) {
	var ek []byte
	var err error
	if kt == RSAOAEP {
		ek, err = rsa.EncryptOAEPWithOptions(rand.Reader, pub, cek, &rsa.OAEPOptions{Hash: oaep.hash, MGFHash: oaep.mgf})
	} else {
		// Deprecated in crypto/rsa, but it is what SCEP clients decrypt.
		ek, err = rsa.EncryptPKCS1v15(rand.Reader, pub, cek)
	}
	if err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(version) // 0: issuerAndSerialNumber, 2: subjectKeyIdentifier
		addRID(b)
		if kt == RSAOAEP {
			addOAEPAlgorithm(b, oaep)
		} else {
			addAlgorithm(b, oidRSAEncryption, true)
		}
		b.AddASN1OctetString(ek)
	})
	return finish(&b)
}

// EncryptPassword returns a DER ContentInfo(EnvelopedData) of content for a
// password recipient (RFC 3211; RFC 8894 §3.2.2 uses it for clients without
// RSA keys): PBKDF2-HMAC-SHA256 with a random salt derives an AES-CBC KEK
// of the content cipher's key size (AES-128 for DES), which wraps the
// content key with id-alg-PWRI-KEK. It is NewPasswordKey and
// EncryptPasswordKey in one.
func EncryptPassword(content, password []byte, opts EncryptOptions) ([]byte, error) {
	key, err := NewPasswordKey(password, opts.Cipher, opts.PasswordIterations)
	if err != nil {
		return nil, err
	}
	return EncryptPasswordKey(content, key, opts)
}

// PasswordKey is a key-encryption key that PBKDF2-HMAC-SHA256 derived from
// a password, with the salt and iteration count that derived it. One
// PasswordKey may wrap the content keys of many envelopes: each envelope
// has a random content key, and each wrap random padding and an IV of its
// own (RFC 3211 §2.3.1). What they share is the PBKDF2 work, the costly
// part (some 20 ms at 100000 iterations), and the salt that anyone
// guessing the password must work against, in any one envelope or in all.
type PasswordKey struct {
	cipher ContentCipher // the KEK's cipher: AES-CBC of the content key's size
	salt   []byte
	iter   int
	kek    []byte
}

// NewPasswordKey derives, with a random salt, the KEK of password for
// envelopes whose content cipher is contentCipher (zero: AES-256-CBC).
// iterations zero means 100000; fewer than 10000 are refused.
func NewPasswordKey(password []byte, contentCipher ContentCipher, iterations int) (*PasswordKey, error) {
	if len(password) == 0 {
		return nil, errors.New("cms: a password recipient needs a password")
	}
	if iterations == 0 {
		iterations = defaultPasswordIterations
	}
	if iterations < minPasswordIterations || iterations > maxPBKDF2Iter {
		return nil, fmt.Errorf("cms: PBKDF2 iteration count %d outside %d..%d", iterations, minPasswordIterations, maxPBKDF2Iter)
	}
	if contentCipher == 0 {
		contentCipher = AES256CBC
	}
	if _, ok := contentCipher.info(); !ok {
		return nil, fmt.Errorf("%w: content cipher %v", ErrUnsupportedAlgorithm, contentCipher)
	}
	k := &PasswordKey{cipher: kekCipherFor(contentCipher.KeySize()), salt: make([]byte, 16), iter: iterations}
	if _, err := rand.Read(k.salt); err != nil {
		return nil, fmt.Errorf("cms: random: %w", err)
	}
	var err error
	k.kek, err = pbkdf2.Key(func() hash.Hash { return crypto.SHA256.New() }, string(password), k.salt, iterations, k.cipher.KeySize())
	if err != nil {
		return nil, fmt.Errorf("cms: PBKDF2: %w", err)
	}
	return k, nil
}

// kekCipherFor is the KEK cipher for a content key of n bytes: AES of the
// same size, AES-128 for anything shorter (single DES).
func kekCipherFor(n int) ContentCipher {
	switch n {
	case 24:
		return AES192CBC
	case 32:
		return AES256CBC
	}
	return AES128CBC
}

// EncryptPasswordKey is EncryptPassword with a KEK derived beforehand by
// NewPasswordKey, for the same content cipher (opts.Cipher).
func EncryptPasswordKey(content []byte, key *PasswordKey, opts EncryptOptions) ([]byte, error) {
	if key == nil {
		return nil, errors.New("cms: EncryptPasswordKey needs a key")
	}
	s, err := seal(opts.Cipher, content, opts.ContentType)
	if err != nil {
		return nil, err
	}
	kekCipher := kekCipherFor(len(s.cek))
	if kekCipher != key.cipher {
		return nil, fmt.Errorf("cms: the password key is an %v KEK; %v content needs %v", key.cipher, s.cipher, kekCipher)
	}
	kekInfo, _ := kekCipher.info()
	iv := make([]byte, blockSize(kekCipher))
	if _, err := rand.Read(iv); err != nil {
		return nil, fmt.Errorf("cms: random: %w", err)
	}
	wrapped, err := pwriWrap(kekCipher, key.kek, iv, s.cek)
	if err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddASN1(tagExplicit3, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(0)
		b.AddASN1(tagExplicit0, func(b *cryptobyte.Builder) { // [0] IMPLICIT AlgorithmIdentifier
			b.AddASN1ObjectIdentifier(oidPBKDF2)
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1OctetString(key.salt)
				b.AddASN1Int64(int64(key.iter))
				addAlgorithm(b, oidHMACWithSHA256, true)
			})
		})
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidPWRIKEK)
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(kekInfo.oid)
				b.AddASN1OctetString(iv)
			})
		})
		b.AddASN1OctetString(wrapped)
	})
	ri, err := finish(&b)
	if err != nil {
		return nil, err
	}
	return s.envelope(3, [][]byte{ri}) // RFC 5652 §6.1: pwri -> version 3
}

// pwriWrap is the RFC 3211 §2.3.1 key wrap: length byte, check value, key
// and random padding to at least two blocks, CBC-encrypted twice (the
// second pass chained from the last block of the first).
func pwriWrap(c ContentCipher, kek, iv, cek []byte) ([]byte, error) {
	info, _ := c.info()
	block, err := info.newBlock(kek)
	if err != nil {
		return nil, fmt.Errorf("cms: KEK: %w", err)
	}
	bs := block.BlockSize()
	if len(cek) < 3 || len(cek) > 255 || len(iv) != bs {
		return nil, errors.New("cms: cannot wrap a key of this size")
	}
	n := (4 + len(cek) + bs - 1) / bs * bs
	n = max(n, 2*bs)
	buf := make([]byte, n)
	buf[0] = byte(len(cek))
	buf[1], buf[2], buf[3] = ^cek[0], ^cek[1], ^cek[2]
	copy(buf[4:], cek)
	if _, err := rand.Read(buf[4+len(cek):]); err != nil {
		return nil, fmt.Errorf("cms: random: %w", err)
	}
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(buf, buf)
	iv2 := bytes.Clone(buf[n-bs:])
	cipher.NewCBCEncrypter(block, iv2).CryptBlocks(buf, buf)
	return buf, nil
}

// sealed is encrypted content ready to be put in an envelope.
type sealed struct {
	contentType asn1.ObjectIdentifier
	cipher      ContentCipher
	cek, iv     []byte
	ciphertext  []byte
	tag         []byte // GCM only
}

func seal(c ContentCipher, content []byte, contentType asn1.ObjectIdentifier) (*sealed, error) {
	if c == 0 {
		c = AES256CBC
	}
	info, ok := c.info()
	if !ok {
		return nil, fmt.Errorf("%w: content cipher %v", ErrUnsupportedAlgorithm, c)
	}
	if contentType == nil {
		contentType = oidData
	}
	s := &sealed{cipher: c, cek: make([]byte, info.keySize), contentType: contentType}
	if _, err := rand.Read(s.cek); err != nil {
		return nil, fmt.Errorf("cms: random: %w", err)
	}
	block, err := info.newBlock(s.cek)
	if err != nil {
		return nil, fmt.Errorf("cms: %v: %w", c, err)
	}
	if info.gcm {
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("cms: %v: %w", c, err)
		}
		s.iv = make([]byte, aead.NonceSize())
		if _, err := rand.Read(s.iv); err != nil {
			return nil, fmt.Errorf("cms: random: %w", err)
		}
		out := aead.Seal(nil, s.iv, content, nil)
		split := len(out) - aead.Overhead()
		s.ciphertext, s.tag = out[:split], out[split:]
		return s, nil
	}
	bs := block.BlockSize()
	s.iv = make([]byte, bs)
	if _, err := rand.Read(s.iv); err != nil {
		return nil, fmt.Errorf("cms: random: %w", err)
	}
	p := bs - len(content)%bs // PKCS #7 padding, always 1..bs bytes
	s.ciphertext = make([]byte, len(content)+p)
	copy(s.ciphertext, content)
	for i := len(content); i < len(s.ciphertext); i++ {
		s.ciphertext[i] = byte(p)
	}
	cipher.NewCBCEncrypter(block, s.iv).CryptBlocks(s.ciphertext, s.ciphertext)
	return s, nil
}

// envelope wraps recipient infos and the sealed content in a ContentInfo:
// EnvelopedData for CBC, AuthEnvelopedData (always version 0) for GCM.
func (s *sealed) envelope(version int64, recipientInfos [][]byte) ([]byte, error) {
	info, _ := s.cipher.info()
	ct := oidEnvelopedData
	if info.gcm {
		ct, version = oidAuthEnvelopedData, 0
	}
	size := len(s.ciphertext) + len(s.tag)
	for _, ri := range recipientInfos {
		size += len(ri)
	}
	b := sizedBuilder(size)
	addContentInfo(b, ct, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1Int64(version)
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { addAll(b, recipientInfos) })
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(s.contentType)
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(info.oid)
					if info.gcm {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1OctetString(s.iv)
							b.AddASN1Int64(int64(len(s.tag)))
						})
					} else {
						b.AddASN1OctetString(s.iv)
					}
				})
				b.AddASN1(tagImplicit0, func(b *cryptobyte.Builder) { b.AddBytes(s.ciphertext) })
			})
			if info.gcm {
				b.AddASN1OctetString(s.tag)
			}
		})
	})
	return finish(b)
}

// addOAEPAlgorithm writes id-RSAES-OAEP with its parameters; DER leaves
// out each one at its default (SHA-1, MGF1-SHA-1), so all-default
// parameters are an empty SEQUENCE.
func addOAEPAlgorithm(b *cryptobyte.Builder, oaep oaepHashes) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidRSAESOAEP)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			if oaep.hash != crypto.SHA1 {
				hashOID, _ := digestOID(oaep.hash)
				b.AddASN1(tagExplicit0, func(b *cryptobyte.Builder) { addAlgorithm(b, hashOID, true) })
			}
			if oaep.mgf != crypto.SHA1 {
				mgfOID, _ := digestOID(oaep.mgf)
				b.AddASN1(tagExplicit1, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(oidMGF1)
						addAlgorithm(b, mgfOID, true)
					})
				})
			}
		})
	})
}
