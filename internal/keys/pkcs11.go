//go:build cgo

package keys

import (
	"crypto"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"
)

// PKCS11Supported reports whether this build can use PKCS#11 tokens.
const PKCS11Supported = true

// pkcs11Token is a Token on crypto11: one logged-in context with a session
// pool, shared by every key.
type pkcs11Token struct {
	ctx    *crypto11.Context
	cfg    PKCS11Config
	prefix string
}

// OpenPKCS11 loads the module, finds the token and logs in with the PIN of
// cfg.PINFile. Keys it makes are generated inside the token, sensitive and
// not extractable (CKA_SENSITIVE, CKA_EXTRACTABLE false, CKA_PRIVATE); keys
// it opens must be so too. Errors wrap ErrTokenNotFound for a token that is
// not there and ErrWrongPIN for a PIN the token refuses.
func OpenPKCS11(cfg PKCS11Config) (Token, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(cfg.Module); err != nil {
		return nil, fmt.Errorf("keys: PKCS#11 module: %w", err)
	}
	pin, err := cfg.readPIN()
	if err != nil {
		return nil, err
	}
	ctx, err := crypto11.Configure(&crypto11.Config{Path: cfg.Module, TokenLabel: cfg.TokenLabel, TokenSerial: cfg.TokenSerial,
		SlotNumber: cfg.Slot, Pin: pin})
	if err != nil {
		var p11 pkcs11.Error
		switch {
		case strings.Contains(err.Error(), "could not find PKCS#11 token"):
			return nil, fmt.Errorf("keys: %w: no %s (softhsm2-util --show-slots or pkcs11-tool --list-slots shows the tokens)", ErrTokenNotFound, cfg.describe())
		case errors.As(err, &p11) && (p11 == pkcs11.CKR_PIN_INCORRECT || p11 == pkcs11.CKR_PIN_INVALID || p11 == pkcs11.CKR_PIN_LEN_RANGE):
			return nil, fmt.Errorf("keys: %w for the %s (the PIN of %s): %v", ErrWrongPIN, cfg.describe(), cfg.PINFile, err)
		case errors.As(err, &p11) && p11 == pkcs11.CKR_PIN_LOCKED:
			return nil, fmt.Errorf("keys: the PIN of the %s is locked (too many wrong PINs): %v", cfg.describe(), err)
		}
		return nil, fmt.Errorf("keys: PKCS#11 %s: %w", cfg.describe(), err)
	}
	return &pkcs11Token{ctx: ctx, cfg: cfg, prefix: cfg.prefix()}, nil
}

func (t *pkcs11Token) label(name string) string { return t.prefix + name }

func (t *pkcs11Token) Describe() string { return "PKCS#11 " + t.cfg.describe() }

func (t *pkcs11Token) Close() error { return t.ctx.Close() }

func (t *pkcs11Token) Exportable() bool { return false }

func (t *pkcs11Token) Where(name string) string {
	return fmt.Sprintf("%s, key %q", t.Describe(), t.label(name))
}

func (t *pkcs11Token) Ref(name string) string {
	return "pkcs11:" + t.cfg.tokenSelector() + ";object=" + pctEncode(t.label(name))
}

func (t *pkcs11Token) Has(name string) (bool, error) {
	pairs, err := t.find(t.label(name))
	return len(pairs) > 0, err
}

func (t *pkcs11Token) Open(name string) (crypto.Signer, error) { return t.openLabel(t.label(name)) }

func (t *pkcs11Token) OpenRef(ref string) (crypto.Signer, error) {
	label, err := t.cfg.refLabel(ref)
	if err != nil {
		return nil, err
	}
	return t.openLabel(label)
}

// find returns the key pairs whose private key has label.
func (t *pkcs11Token) find(label string) ([]crypto11.Signer, error) {
	pairs, err := t.ctx.FindKeyPairs(nil, []byte(label))
	if err != nil {
		return nil, fmt.Errorf("keys: looking for %q in the %s: %w", label, t.Describe(), err)
	}
	return pairs, nil
}

func (t *pkcs11Token) openLabel(label string) (crypto.Signer, error) {
	pairs, err := t.find(label)
	if err != nil {
		return nil, err
	}
	switch len(pairs) {
	case 0:
		return nil, fmt.Errorf("keys: no key labelled %q in the %s: %w", label, t.Describe(), ErrKeyNotFound)
	case 1:
	default:
		return nil, fmt.Errorf("keys: %d keys are labelled %q in the %s; remove or relabel the extra ones", len(pairs), label, t.Describe())
	}
	return t.wrap(pairs[0], label)
}

func (t *pkcs11Token) Create(name, keyType string) (crypto.Signer, error) {
	label := t.label(name)
	if ok, err := t.Has(name); err != nil {
		return nil, err
	} else if ok {
		return nil, fmt.Errorf("keys: %q in the %s: %w", label, t.Describe(), ErrKeyExists)
	}
	id, err := randomID()
	if err != nil {
		return nil, err
	}
	public, err := crypto11.NewAttributeSetWithIDAndLabel(id, []byte(label))
	if err != nil {
		return nil, err
	}
	private := public.Copy()
	for _, a := range []struct {
		t crypto11.AttributeType
		v bool
	}{{crypto11.CkaPrivate, true}, {crypto11.CkaSensitive, true}, {crypto11.CkaExtractable, false}} {
		if err := private.Set(a.t, a.v); err != nil {
			return nil, err
		}
	}
	var k crypto11.Signer
	switch keyType {
	case RSA2048, RSA3072, RSA4096:
		bits := map[string]int{RSA2048: 2048, RSA3072: 3072, RSA4096: 4096}[keyType]
		k, err = t.ctx.GenerateRSAKeyPairWithAttributes(public, private, bits)
	case P256:
		k, err = t.ctx.GenerateECDSAKeyPairWithAttributes(public, private, elliptic.P256())
	case P384:
		k, err = t.ctx.GenerateECDSAKeyPairWithAttributes(public, private, elliptic.P384())
	default:
		_, err = Generate(keyType) // names the valid types
		if err == nil {
			err = fmt.Errorf("keys: key type %q cannot be made in a token", keyType)
		}
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("keys: generating %s key %q in the %s: %w", keyType, label, t.Describe(), err)
	}
	return t.wrap(k, label)
}

func (t *pkcs11Token) RemoveRef(ref string) error {
	label, err := t.cfg.refLabel(ref)
	if err != nil {
		return err
	}
	return t.removeLabel(label)
}

func (t *pkcs11Token) Remove(name string) error { return t.removeLabel(t.label(name)) }

func (t *pkcs11Token) removeLabel(label string) error {
	pairs, err := t.find(label)
	if err != nil {
		return err
	}
	if len(pairs) == 0 {
		return fmt.Errorf("keys: no key labelled %q in the %s: %w", label, t.Describe(), ErrKeyNotFound)
	}
	for _, p := range pairs {
		if err := p.Delete(); err != nil {
			return fmt.Errorf("keys: removing %q from the %s: %w", label, t.Describe(), err)
		}
	}
	return nil
}

// wrap checks that the private key never leaves the token and returns it
// as a crypto.Signer (and crypto.Decrypter for RSA).
func (t *pkcs11Token) wrap(k crypto11.Signer, label string) (crypto.Signer, error) {
	if k.Public() == nil {
		return nil, fmt.Errorf("keys: the key %q in the %s has no public half", label, t.Describe())
	}
	sensitive, extractable, err := t.protection(k)
	if err != nil {
		return nil, fmt.Errorf("keys: the key %q in the %s: %w", label, t.Describe(), err)
	}
	if !sensitive || extractable {
		return nil, fmt.Errorf("keys: the key %q in the %s can be read out of the token (CKA_SENSITIVE=%v, CKA_EXTRACTABLE=%v); a CA key must never leave it: make it again inside the token, not extractable", label, t.Describe(), sensitive, extractable)
	}
	s := &tokenSigner{k: k, label: label, token: t}
	if d, ok := k.(crypto11.SignerDecrypter); ok {
		if _, rsaKey := k.Public().(*rsa.PublicKey); rsaKey {
			return &tokenDecrypter{tokenSigner: s, d: d}, nil
		}
	}
	return s, nil
}

// protection reads CKA_SENSITIVE and CKA_EXTRACTABLE of the private key.
func (t *pkcs11Token) protection(k crypto11.Signer) (sensitive, extractable bool, err error) {
	attrs, err := t.ctx.GetAttributes(k, []crypto11.AttributeType{crypto11.CkaSensitive, crypto11.CkaExtractable})
	if err != nil {
		return false, false, err
	}
	b := func(a crypto11.AttributeType) bool {
		v := attrs[a]
		return v != nil && len(v.Value) > 0 && v.Value[0] != 0
	}
	return b(crypto11.CkaSensitive), b(crypto11.CkaExtractable), nil
}

// tokenSigner is a key in the token.
type tokenSigner struct {
	k     crypto11.Signer
	label string
	token *pkcs11Token
}

func (s *tokenSigner) Public() crypto.PublicKey { return s.k.Public() }

func (s *tokenSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	sig, err := s.k.Sign(r, digest, opts)
	if err != nil {
		return nil, fmt.Errorf("keys: signing with %q in the %s: %w", s.label, s.token.Describe(), err)
	}
	return sig, nil
}

// String names the key, never its material (there is none to show).
func (s *tokenSigner) String() string {
	return s.token.Where(strings.TrimPrefix(s.label, s.token.prefix))
}

// tokenDecrypter is an RSA key in the token: it also decrypts.
type tokenDecrypter struct {
	*tokenSigner
	d crypto11.SignerDecrypter
}

// Decrypt decrypts with the token, keeping crypto/rsa's contract:
//
//   - PKCS #1 v1.5 with SessionKeyLen (which crypto11 refuses): the token
//     decrypts without it, and whatever it answers (an error for a bad
//     padding, or a plaintext of another length) becomes a random key of
//     SessionKeyLen, with no error (RFC 3218 §2.3.2). The random key is
//     drawn before the token is asked, and the choice is a constant-time
//     copy, so callers see no difference. internal/cms substitutes on its
//     own too; this makes the key safe for any caller.
//   - OAEP: the token's mechanism uses MGF1 with the OAEP hash; another MGF
//     hash is refused (the envelope's own parameters, public data).
//     SoftHSM 2.6 supports OAEP with SHA-1 only.
func (s *tokenDecrypter) Decrypt(r io.Reader, ciphertext []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	if r == nil {
		r = rand.Reader
	}
	switch o := opts.(type) {
	case nil:
		return s.d.Decrypt(r, ciphertext, nil)
	case *rsa.PKCS1v15DecryptOptions:
		if o.SessionKeyLen <= 0 {
			return s.d.Decrypt(r, ciphertext, &rsa.PKCS1v15DecryptOptions{})
		}
		key := make([]byte, o.SessionKeyLen)
		if _, err := io.ReadFull(r, key); err != nil {
			return nil, fmt.Errorf("keys: random: %w", err)
		}
		pt, err := s.d.Decrypt(r, ciphertext, &rsa.PKCS1v15DecryptOptions{})
		good := 0
		if err == nil && len(pt) == o.SessionKeyLen {
			good = 1
		} else {
			pt = make([]byte, o.SessionKeyLen)
		}
		subtle.ConstantTimeCopy(good, key, pt)
		clear(pt)
		return key, nil
	case *rsa.OAEPOptions:
		if o.MGFHash != 0 && o.MGFHash != o.Hash {
			return nil, fmt.Errorf("keys: the token decrypts OAEP with MGF1 over the OAEP hash; %v with MGF1-%v is not supported", o.Hash, o.MGFHash)
		}
		pt, err := s.d.Decrypt(r, ciphertext, &rsa.OAEPOptions{Hash: o.Hash, Label: o.Label})
		if err != nil {
			return nil, fmt.Errorf("keys: decrypting with %q in the %s: %w", s.label, s.token.Describe(), err)
		}
		return pt, nil
	}
	return nil, fmt.Errorf("keys: unsupported decrypter options %T", opts)
}
