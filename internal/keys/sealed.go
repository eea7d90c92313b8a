package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Sealed files hold data encrypted with a passphrase: a PEM block whose
// headers say how (AES-256-GCM under a key derived with argon2id from the
// passphrase and a random salt) and whose body is the ciphertext. Every
// header, and the block type, is authenticated as GCM's additional data, so
// neither the parameters nor the caller's headers can be altered unseen.
//
//	-----BEGIN SCEPTER CA KEYS-----
//	Cipher: AES-256-GCM
//	KDF: argon2id
//	KDF-Params: t=3,m=65536,p=4
//	Nonce: …
//	Salt: …
//	…
//	-----END SCEPTER CA KEYS-----

// Argon2id parameters of new sealed files (RFC 9106's second recommended
// option, with 64 MiB), and the largest a file may ask for when opened, so
// that a crafted file cannot make us spend gigabytes or hours.
const (
	sealTime    = 3
	sealMemory  = 64 * 1024 // KiB
	sealThreads = 4

	maxSealTime   = 16
	maxSealMemory = 1024 * 1024 // KiB: 1 GiB
)

// Header names of sealed files that Seal sets itself.
const (
	hdrCipher = "Cipher"
	hdrKDF    = "KDF"
	hdrParams = "KDF-Params"
	hdrSalt   = "Salt"
	hdrNonce  = "Nonce"
)

// SealPEM encrypts plaintext with passphrase into a PEM block of blockType
// carrying headers (names other than Seal's own, values without line
// breaks; authenticated, not encrypted). The salt and nonce come from
// random. An empty passphrase is refused.
func SealPEM(random io.Reader, blockType string, plaintext, passphrase []byte, headers map[string]string) ([]byte, error) {
	return sealPEM(random, blockType, plaintext, passphrase, headers, sealTime, sealMemory, sealThreads)
}

// sealPEM is SealPEM with the Argon2id parameters given: this package's
// tests give small ones where the cost is not what they check.
func sealPEM(random io.Reader, blockType string, plaintext, passphrase []byte, headers map[string]string, passes, memory uint32, threads uint8) ([]byte, error) {
	if len(passphrase) == 0 {
		return nil, errors.New("keys: an empty passphrase protects nothing")
	}
	h := map[string]string{}
	for k, v := range headers {
		switch k {
		case hdrCipher, hdrKDF, hdrParams, hdrSalt, hdrNonce:
			return nil, fmt.Errorf("keys: header %q is set by SealPEM", k)
		}
		if strings.ContainsAny(k, ":\r\n") || strings.ContainsAny(v, "\r\n") {
			return nil, fmt.Errorf("keys: header %q cannot go into a PEM block", k)
		}
		h[k] = v
	}
	salt := make([]byte, 16)
	nonce := make([]byte, 12)
	if _, err := io.ReadFull(random, salt); err != nil {
		return nil, fmt.Errorf("keys: random: %w", err)
	}
	if _, err := io.ReadFull(random, nonce); err != nil {
		return nil, fmt.Errorf("keys: random: %w", err)
	}
	h[hdrCipher] = "AES-256-GCM"
	h[hdrKDF] = "argon2id"
	h[hdrParams] = fmt.Sprintf("t=%d,m=%d,p=%d", passes, memory, threads)
	h[hdrSalt] = hex.EncodeToString(salt)
	h[hdrNonce] = hex.EncodeToString(nonce)
	aead, err := sealAEAD(passphrase, salt, passes, memory, threads)
	if err != nil {
		return nil, err
	}
	ct := aead.Seal(nil, nonce, plaintext, sealAD(blockType, h))
	return pem.EncodeToMemory(&pem.Block{Type: blockType, Headers: h, Bytes: ct}), nil
}

// OpenPEM decrypts the first PEM block of data, which must be of blockType
// and made by SealPEM, and returns the plaintext and the caller's headers.
// A wrong passphrase, or a file altered in any way, is an error wrapping
// ErrWrongPassphrase.
func OpenPEM(data []byte, blockType string, passphrase []byte) (plaintext []byte, headers map[string]string, err error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, nil, fmt.Errorf("keys: no PEM block found, want %q", blockType)
	}
	if b.Type != blockType {
		return nil, nil, fmt.Errorf("keys: a PEM block %q, want %q", b.Type, blockType)
	}
	if b.Headers[hdrCipher] != "AES-256-GCM" || b.Headers[hdrKDF] != "argon2id" {
		return nil, nil, fmt.Errorf("keys: %s: unsupported cipher %q or KDF %q", blockType, b.Headers[hdrCipher], b.Headers[hdrKDF])
	}
	t, m, p, err := parseSealParams(b.Headers[hdrParams])
	if err != nil {
		return nil, nil, fmt.Errorf("keys: %s: %w", blockType, err)
	}
	salt, err1 := hex.DecodeString(b.Headers[hdrSalt])
	nonce, err2 := hex.DecodeString(b.Headers[hdrNonce])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(nonce) != 12 {
		return nil, nil, fmt.Errorf("keys: %s: bad salt or nonce", blockType)
	}
	aead, err := sealAEAD(passphrase, salt, t, m, p)
	if err != nil {
		return nil, nil, err
	}
	pt, err := aead.Open(nil, nonce, b.Bytes, sealAD(b.Type, b.Headers))
	if err != nil {
		return nil, nil, fmt.Errorf("keys: %s: %w", blockType, ErrWrongPassphrase)
	}
	headers = map[string]string{}
	for k, v := range b.Headers {
		switch k {
		case hdrCipher, hdrKDF, hdrParams, hdrSalt, hdrNonce:
		default:
			headers[k] = v
		}
	}
	return pt, headers, nil
}

func parseSealParams(s string) (t, m uint32, p uint8, err error) {
	seen := map[string]bool{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		n, perr := strconv.ParseUint(v, 10, 32)
		if !ok || perr != nil || seen[k] {
			return 0, 0, 0, fmt.Errorf("bad KDF parameters %q", s)
		}
		seen[k] = true
		switch k {
		case "t":
			t = uint32(n)
		case "m":
			m = uint32(n)
		case "p":
			if n > 255 {
				return 0, 0, 0, fmt.Errorf("bad KDF parameters %q", s)
			}
			p = uint8(n)
		default:
			return 0, 0, 0, fmt.Errorf("bad KDF parameters %q", s)
		}
	}
	if t < 1 || t > maxSealTime || m < 8*uint32(p) || m > maxSealMemory || p < 1 {
		return 0, 0, 0, fmt.Errorf("KDF parameters %q out of range (t 1..%d, m up to %d KiB)", s, maxSealTime, maxSealMemory)
	}
	return t, m, p, nil
}

func sealAEAD(passphrase, salt []byte, t, m uint32, p uint8) (cipher.AEAD, error) {
	key := argon2.IDKey(passphrase, salt, t, m, p, 32)
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealAD is the additional data: the block type and the headers, sorted,
// one "name: value" per line.
func sealAD(blockType string, h map[string]string) []byte {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteString(blockType + "\n")
	for _, k := range names {
		b.WriteString(k + ": " + h[k] + "\n")
	}
	return []byte(b.String())
}
