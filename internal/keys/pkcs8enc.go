package keys

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"io"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/scepter/scepter/internal/filetrust"
)

// Encrypted PKCS#8 (RFC 5958 EncryptedPrivateKeyInfo) with PBES2 (RFC 8018):
// the standard library reads and writes neither, and the old PEM encryption
// (Proc-Type headers, MD5 as KDF) is not an option for a CA key. We write
// PBES2 with PBKDF2-HMAC-SHA256 (random 16-byte salt, PBKDF2Iterations) and
// AES-256-CBC, exactly what
//
//	openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -iter 600000
//
// writes, and read the same family: PBKDF2 with HMAC-SHA-256/384/512 and
// AES-128/192/256-CBC. Anything weaker or unknown is refused by name.

// EncryptedKeyPEMType is the PEM type of an encrypted PKCS#8 key.
const EncryptedKeyPEMType = "ENCRYPTED PRIVATE KEY"

const (
	// PBKDF2Iterations is the iteration count of keys this package
	// encrypts: OWASP's 2023 figure for PBKDF2-HMAC-SHA256.
	PBKDF2Iterations = 600000
	// MinPBKDF2Iterations is the lowest count accepted when reading:
	// fewer make guessing the passphrase cheap. (openssl's default, 2048,
	// is below it.)
	MinPBKDF2Iterations = 10000
	// maxPBKDF2Iterations bounds the work a damaged or hostile file can
	// ask for (about a minute of CPU).
	maxPBKDF2Iterations = 100_000_000
	// minSaltLen is RFC 8018's recommended minimum (64 bits).
	minSaltLen = 8
	saltLen    = 16
)

// Errors of encrypted keys.
var (
	// ErrEncryptedKey: the key is encrypted and no passphrase was given.
	ErrEncryptedKey = errors.New("the key is encrypted and needs a passphrase")
	// ErrWrongPassphrase: decryption failed. PBES2 has no integrity check
	// of its own, so a damaged file looks the same.
	ErrWrongPassphrase = errors.New("wrong passphrase (or a damaged key file)")
)

var (
	oidPBES2  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidScrypt = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}

	oidHMACWithSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACWithSHA224 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 8}
	oidHMACWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}

	oidAES128CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidDESCBC     = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 7}
	oidDESEDE3CBC = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}
	oidRC2CBC     = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 2}
)

// reencrypt is what every refusal suggests.
const reencrypt = "re-encrypt it with: openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -iter 600000 -in KEY -out NEW"

// prfs are the PBKDF2 pseudo-random functions we accept.
var prfs = []struct {
	oid  asn1.ObjectIdentifier
	name string
	h    func() hash.Hash
}{
	{oidHMACWithSHA256, "hmacWithSHA256", sha256.New},
	{oidHMACWithSHA384, "hmacWithSHA384", sha512.New384},
	{oidHMACWithSHA512, "hmacWithSHA512", sha512.New},
}

// ciphers are the PBES2 encryption schemes we accept.
var ciphers = []struct {
	oid    asn1.ObjectIdentifier
	name   string
	keyLen int
}{
	{oidAES128CBC, "aes-128-cbc", 16},
	{oidAES192CBC, "aes-192-cbc", 24},
	{oidAES256CBC, "aes-256-cbc", 32},
}

// refusedNames names algorithms met in the wild that we refuse, so the
// error says what the file uses.
var refusedNames = map[string]string{
	oidScrypt.String():         "scrypt",
	oidHMACWithSHA1.String():   "hmacWithSHA1",
	oidHMACWithSHA224.String(): "hmacWithSHA224",
	oidDESCBC.String():         "des-cbc",
	oidDESEDE3CBC.String():     "des-ede3-cbc",
	oidRC2CBC.String():         "rc2-cbc",
	// PBES1 and PKCS#12 password-based encryption.
	"1.2.840.113549.1.5.3":    "pbeWithMD5AndDES-CBC (PBES1)",
	"1.2.840.113549.1.5.10":   "pbeWithSHA1AndDES-CBC (PBES1)",
	"1.2.840.113549.1.12.1.3": "pbeWithSHAAnd3-KeyTripleDES-CBC (PKCS#12)",
	"1.2.840.113549.1.12.1.6": "pbeWithSHAAnd40BitRC2-CBC (PKCS#12)",
}

func oidName(oid asn1.ObjectIdentifier) string {
	if n, ok := refusedNames[oid.String()]; ok {
		return n + " (" + oid.String() + ")"
	}
	return oid.String()
}

// pbes2Params are the parsed parameters of an EncryptedPrivateKeyInfo.
type pbes2Params struct {
	salt       []byte
	iterations int
	prf        func() hash.Hash
	prfName    string
	keyLen     int
	cipherName string
	iv         []byte
}

// MarshalEncryptedKeyPEM encrypts key as an "ENCRYPTED PRIVATE KEY" PEM
// block (PKCS#8 PBES2: PBKDF2-HMAC-SHA256 with PBKDF2Iterations and a random
// salt, AES-256-CBC), readable by openssl pkey -passin. The salt and IV come
// from random. Keys that cannot be exported are refused, as is an empty
// passphrase.
func MarshalEncryptedKeyPEM(random io.Reader, key crypto.Signer, passphrase []byte) ([]byte, error) {
	return marshalEncryptedKeyPEM(random, key, passphrase, PBKDF2Iterations)
}

// MarshalEncryptedKeyPEMIterations is MarshalEncryptedKeyPEM with the
// PBKDF2 count given (0: PBKDF2Iterations, as FileSource.Iterations), from
// MinPBKDF2Iterations (the lowest that reads back) to a bound on hostile
// files. Other packages' tests give MinPBKDF2Iterations where the cost is
// not what they check; production writes PBKDF2Iterations.
func MarshalEncryptedKeyPEMIterations(random io.Reader, key crypto.Signer, passphrase []byte, iterations int) ([]byte, error) {
	iterations = iterationsOrDefault(iterations)
	if err := checkIterations(iterations); err != nil {
		return nil, err
	}
	return marshalEncryptedKeyPEM(random, key, passphrase, iterations)
}

// iterationsOrDefault is n, or PBKDF2Iterations for 0 (a count nobody set).
func iterationsOrDefault(n int) int {
	if n == 0 {
		return PBKDF2Iterations
	}
	return n
}

// checkIterations refuses a PBKDF2 count that reading would refuse: a key
// written with it would be lost.
func checkIterations(n int) error {
	if n < MinPBKDF2Iterations || n > maxPBKDF2Iterations {
		return fmt.Errorf("keys: a PBKDF2 count of %d would not read back (%d to %d)", n, MinPBKDF2Iterations, maxPBKDF2Iterations)
	}
	return nil
}

// marshalEncryptedKeyPEM is MarshalEncryptedKeyPEM with the iteration
// count given: this package's tests give MinPBKDF2Iterations where the
// count is not what they check (600,000 iterations took seconds each
// under the race detector).
func marshalEncryptedKeyPEM(random io.Reader, key crypto.Signer, passphrase []byte, iterations int) ([]byte, error) {
	der, err := marshalPKCS8(key)
	if err != nil {
		return nil, err
	}
	defer clear(der)
	enc, err := encryptPKCS8(random, der, passphrase, iterations)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: EncryptedKeyPEMType, Bytes: enc}), nil
}

// WriteEncryptedKeyFile writes key encrypted with passphrase (see
// MarshalEncryptedKeyPEM) to path, mode 0600, atomically (see WriteKeyFile).
func WriteEncryptedKeyFile(path string, key crypto.Signer, passphrase []byte) error {
	return writeEncryptedKeyFile(path, key, passphrase, PBKDF2Iterations)
}

// writeEncryptedKeyFile is WriteEncryptedKeyFile with the iteration count
// given (see marshalEncryptedKeyPEM).
func writeEncryptedKeyFile(path string, key crypto.Signer, passphrase []byte, iterations int) error {
	data, err := marshalEncryptedKeyPEM(rand.Reader, key, passphrase, iterations)
	if err != nil {
		return fmt.Errorf("keys: encrypting %s: %w", path, err)
	}
	return writeAtomic(path, data, 0o600)
}

// encryptPKCS8 wraps a PrivateKeyInfo in an EncryptedPrivateKeyInfo.
func encryptPKCS8(random io.Reader, der, passphrase []byte, iterations int) ([]byte, error) {
	if len(passphrase) == 0 {
		return nil, errors.New("an empty passphrase protects nothing")
	}
	salt := make([]byte, saltLen)
	iv := make([]byte, aes.BlockSize)
	if _, err := io.ReadFull(random, salt); err != nil {
		return nil, fmt.Errorf("salt: %w", err)
	}
	if _, err := io.ReadFull(random, iv); err != nil {
		return nil, fmt.Errorf("iv: %w", err)
	}
	k, err := pbkdf2.Key(sha256.New, string(passphrase), salt, iterations, 32)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	// PKCS#7 padding: 1 to 16 bytes, each holding the pad length.
	n := aes.BlockSize - len(der)%aes.BlockSize
	ct := append(bytes.Clone(der), bytes.Repeat([]byte{byte(n)}, n)...)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, ct)

	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // EncryptedPrivateKeyInfo
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // encryptionAlgorithm
			b.AddASN1ObjectIdentifier(oidPBES2)
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // PBES2-params
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // keyDerivationFunc
					b.AddASN1ObjectIdentifier(oidPBKDF2)
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // PBKDF2-params
						b.AddASN1OctetString(salt)
						b.AddASN1Int64(int64(iterations))
						// keyLength is omitted, as openssl does for AES.
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // prf
							b.AddASN1ObjectIdentifier(oidHMACWithSHA256)
							b.AddASN1NULL()
						})
					})
				})
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // encryptionScheme
					b.AddASN1ObjectIdentifier(oidAES256CBC)
					b.AddASN1OctetString(iv)
				})
			})
		})
		b.AddASN1OctetString(ct)
	})
	return b.Bytes()
}

// DecryptPKCS8 decrypts a DER EncryptedPrivateKeyInfo and returns the
// PrivateKeyInfo inside (the caller should clear it). Weak or unknown
// parameters are refused before any work is done: another scheme than
// PBES2/PBKDF2, a PRF other than HMAC-SHA-256/384/512, a cipher other than
// AES-CBC, fewer than MinPBKDF2Iterations iterations or a salt shorter than
// 8 bytes. A wrong passphrase is ErrWrongPassphrase.
func DecryptPKCS8(der, passphrase []byte) ([]byte, error) {
	p, ct, err := parseEncryptedPKCS8(der)
	if err != nil {
		return nil, err
	}
	k, err := pbkdf2.Key(p.prf, string(passphrase), p.salt, p.iterations, p.keyLen)
	if err != nil {
		return nil, fmt.Errorf("PBKDF2: %w", err)
	}
	defer clear(k)
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, p.iv).CryptBlocks(pt, ct)
	n := int(pt[len(pt)-1])
	if n == 0 || n > aes.BlockSize {
		clear(pt)
		return nil, ErrWrongPassphrase
	}
	for _, c := range pt[len(pt)-n:] {
		if int(c) != n {
			clear(pt)
			return nil, ErrWrongPassphrase
		}
	}
	return pt[:len(pt)-n], nil
}

// parseEncryptedPKCS8 parses and checks the parameters of a DER
// EncryptedPrivateKeyInfo without deriving any key.
func parseEncryptedPKCS8(der []byte) (p pbes2Params, ciphertext []byte, err error) {
	malformed := func(what string) (pbes2Params, []byte, error) {
		return pbes2Params{}, nil, fmt.Errorf("malformed encrypted PKCS#8 key: %s", what)
	}
	in := cryptobyte.String(der)
	var epki, alg, params, kdf, kdfParams, enc cryptobyte.String
	var ct []byte
	if !in.ReadASN1(&epki, cbasn1.SEQUENCE) || !in.Empty() ||
		!epki.ReadASN1(&alg, cbasn1.SEQUENCE) || !epki.ReadASN1Bytes(&ct, cbasn1.OCTET_STRING) || !epki.Empty() {
		return malformed("EncryptedPrivateKeyInfo")
	}
	var oid asn1.ObjectIdentifier
	if !alg.ReadASN1ObjectIdentifier(&oid) {
		return malformed("encryptionAlgorithm")
	}
	if !oid.Equal(oidPBES2) {
		return pbes2Params{}, nil, fmt.Errorf("encryption scheme %s is not supported, only PBES2; %s", oidName(oid), reencrypt)
	}
	if !alg.ReadASN1(&params, cbasn1.SEQUENCE) || !alg.Empty() ||
		!params.ReadASN1(&kdf, cbasn1.SEQUENCE) || !params.ReadASN1(&enc, cbasn1.SEQUENCE) || !params.Empty() {
		return malformed("PBES2-params")
	}

	// keyDerivationFunc: PBKDF2 only.
	if !kdf.ReadASN1ObjectIdentifier(&oid) {
		return malformed("keyDerivationFunc")
	}
	if !oid.Equal(oidPBKDF2) {
		return pbes2Params{}, nil, fmt.Errorf("key derivation function %s is not supported, only PBKDF2; %s", oidName(oid), reencrypt)
	}
	if !kdf.ReadASN1(&kdfParams, cbasn1.SEQUENCE) || !kdf.Empty() {
		return malformed("PBKDF2-params")
	}
	if !kdfParams.PeekASN1Tag(cbasn1.OCTET_STRING) {
		return pbes2Params{}, nil, errors.New("PBKDF2 salt from another source is not supported")
	}
	var iter int64
	if !kdfParams.ReadASN1Bytes(&p.salt, cbasn1.OCTET_STRING) || !kdfParams.ReadASN1Integer(&iter) {
		return malformed("PBKDF2 salt or iteration count")
	}
	var keyLen int64
	if kdfParams.PeekASN1Tag(cbasn1.INTEGER) && !kdfParams.ReadASN1Integer(&keyLen) {
		return malformed("PBKDF2 key length")
	}
	prfOID := oidHMACWithSHA1 // the DEFAULT of RFC 8018
	if kdfParams.PeekASN1Tag(cbasn1.SEQUENCE) {
		var prf cryptobyte.String
		if !kdfParams.ReadASN1(&prf, cbasn1.SEQUENCE) || !prf.ReadASN1ObjectIdentifier(&prfOID) {
			return malformed("PBKDF2 prf")
		}
		// Parameters: NULL or absent.
		if prf.PeekASN1Tag(cbasn1.NULL) {
			var null cryptobyte.String
			prf.ReadASN1(&null, cbasn1.NULL)
		}
		if !prf.Empty() {
			return malformed("PBKDF2 prf parameters")
		}
	}
	if !kdfParams.Empty() {
		return malformed("PBKDF2-params")
	}
	for _, f := range prfs {
		if f.oid.Equal(prfOID) {
			p.prf, p.prfName = f.h, f.name
		}
	}
	if p.prf == nil {
		return pbes2Params{}, nil, fmt.Errorf("PBKDF2 with %s is not supported, only hmacWithSHA256, hmacWithSHA384 and hmacWithSHA512; %s", oidName(prfOID), reencrypt)
	}
	switch {
	case iter < MinPBKDF2Iterations:
		return pbes2Params{}, nil, fmt.Errorf("PBKDF2 iteration count %d is too low (at least %d; scepter writes %d): the passphrase would be cheap to guess; %s", iter, MinPBKDF2Iterations, PBKDF2Iterations, reencrypt)
	case iter > maxPBKDF2Iterations:
		return pbes2Params{}, nil, fmt.Errorf("PBKDF2 iteration count %d is implausibly high (at most %d)", iter, maxPBKDF2Iterations)
	}
	p.iterations = int(iter)
	if len(p.salt) < minSaltLen {
		return pbes2Params{}, nil, fmt.Errorf("PBKDF2 salt of %d bytes is too short (at least %d); %s", len(p.salt), minSaltLen, reencrypt)
	}

	// encryptionScheme: AES-CBC only.
	if !enc.ReadASN1ObjectIdentifier(&oid) {
		return malformed("encryptionScheme")
	}
	for _, c := range ciphers {
		if c.oid.Equal(oid) {
			p.keyLen, p.cipherName = c.keyLen, c.name
		}
	}
	if p.keyLen == 0 {
		return pbes2Params{}, nil, fmt.Errorf("cipher %s is not supported, only AES-CBC; %s", oidName(oid), reencrypt)
	}
	if !enc.ReadASN1Bytes(&p.iv, cbasn1.OCTET_STRING) || !enc.Empty() || len(p.iv) != aes.BlockSize {
		return malformed("AES-CBC IV")
	}
	if keyLen != 0 && keyLen != int64(p.keyLen) {
		return pbes2Params{}, nil, fmt.Errorf("PBKDF2 key length %d does not fit %s", keyLen, p.cipherName)
	}
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return malformed("encrypted data is not a whole number of AES blocks")
	}
	return p, ct, nil
}

// marshalPKCS8 encodes an exportable key as PKCS#8 DER.
func marshalPKCS8(key crypto.Signer) ([]byte, error) {
	switch key.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
	default:
		return nil, fmt.Errorf("%T cannot be written to a file", key)
	}
	return x509.MarshalPKCS8PrivateKey(key)
}

// ParseKeyPEMWithPassphrase is ParseKeyPEM that also reads an encrypted
// PKCS#8 key ("ENCRYPTED PRIVATE KEY") with passphrase. A nil passphrase
// reads unencrypted keys only (ErrEncryptedKey otherwise); an unencrypted
// key is read whatever the passphrase.
func ParseKeyPEMWithPassphrase(data, passphrase []byte) (crypto.Signer, error) {
	return parseKeyPEM(data, passphrase)
}

// LoadKeyFileWithPassphrase is LoadKeyFile that also reads an encrypted
// PKCS#8 key with passphrase (see ParseKeyPEMWithPassphrase).
func LoadKeyFileWithPassphrase(path string, passphrase []byte) (crypto.Signer, error) {
	data, err := filetrust.ReadRegular(path)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	defer clear(data)
	key, err := parseKeyPEM(data, passphrase)
	if err != nil {
		return nil, fmt.Errorf("keys: %s: %w", path, err)
	}
	return key, nil
}

// IsEncryptedKeyPEM reports whether the first private key in PEM data is
// encrypted. It reads only the PEM framing (the BEGIN line and the header
// after it), never decoding the key itself.
func IsEncryptedKeyPEM(data []byte) (bool, error) {
	lines := bytes.Split(data, []byte("\n"))
	for i, line := range lines {
		typ, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("-----BEGIN "))
		if !ok {
			continue
		}
		if typ, ok = bytes.CutSuffix(typ, []byte("-----")); !ok {
			continue
		}
		switch string(typ) {
		case "EC PARAMETERS":
			continue
		case EncryptedKeyPEMType:
			return true, nil
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			legacy := i+1 < len(lines) && bytes.HasPrefix(bytes.TrimSpace(lines[i+1]), []byte("Proc-Type:"))
			return legacy, nil
		}
		return false, fmt.Errorf("unexpected PEM block %q, want a private key", typ)
	}
	return false, errors.New("no PEM private key found")
}

// KeyFileEncrypted reports whether the key file at path is encrypted (see
// IsEncryptedKeyPEM), reading no more of it than the framing needs.
func KeyFileEncrypted(path string) (bool, error) {
	f, err := filetrust.OpenRegular(path)
	if err != nil {
		return false, fmt.Errorf("keys: %w", err)
	}
	defer f.Close()
	// The BEGIN line and a header fit in the first kilobyte, after an
	// "EC PARAMETERS" block too.
	head := make([]byte, 1024)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("keys: %w", err)
	}
	defer clear(head)
	enc, err := IsEncryptedKeyPEM(head[:n])
	if err != nil {
		return false, fmt.Errorf("keys: %s: %w", path, err)
	}
	return enc, nil
}

// ReadPassphraseFile reads a passphrase the way openssl's -passin file:
// does: the first line of the file, without its "\n". An empty one is
// refused.
func ReadPassphraseFile(path string) ([]byte, error) {
	data, err := filetrust.ReadRegular(path)
	if err != nil {
		return nil, fmt.Errorf("keys: passphrase: %w", err)
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	pass := bytes.Clone(line)
	clear(data)
	if len(pass) == 0 {
		return nil, fmt.Errorf("keys: passphrase file %s: the first line is empty", path)
	}
	return pass, nil
}
