//go:build cgo

package keys

import (
	"crypto"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"

	"github.com/scepter/scepter/internal/pki"
)

// PKCS11Supported reports whether this build can use PKCS#11 tokens.
const PKCS11Supported = true

// pkcs11Token is a Token on crypto11: one logged-in context with a session
// pool, shared by every key. When the token answers that it, the session
// or a key handle is gone (lostToken: a token pulled out, an HSM
// restarted), the error is marked pki.ErrUnavailable, so that the edges
// answer 503 with Retry-After as for a store outage, and the token is
// opened again (module, sessions, login) and the key found again by its
// label, so that the node recovers by itself once the token is back.
type pkcs11Token struct {
	cfg    PKCS11Config
	prefix string
	// now tells when a reopen is tried, to try at most once every
	// reopenEvery (time.Now; tests set another clock).
	now func() time.Time
	// login opens the module and logs in with pin (configureWithPIN;
	// tests count its calls).
	login func(cfg PKCS11Config, pin string) (*crypto11.Context, error)

	// mu guards what follows. Every use of the context holds it for
	// reading and a reopen for writing, so no operation runs on a context
	// being closed.
	mu sync.RWMutex
	// ctx is nil after Close or while the token cannot be opened again.
	ctx *crypto11.Context
	// gen counts the contexts: a key found in an older one is found
	// again by its label.
	gen     uint64
	closed  bool
	lastTry time.Time // of the last reopen
	lastErr error     // why it failed; nil when it did not
	// refusedPIN is the SHA-256 of the PIN the token last refused
	// (ErrWrongPIN) on a reopen, and hasRefusedPIN says there is one: that
	// PIN is not tried again until the PIN file says another, since an HSM
	// locks its user PIN after a few wrong ones, for every node.
	refusedPIN    [sha256.Size]byte
	hasRefusedPIN bool
}

// reopenEvery is the least time between two attempts to open a lost token
// again: while it is gone, requests fail at once instead of each loading
// the module again.
const reopenEvery = time.Second

// errTokenGone stands for the context of a token that could not be opened
// again.
var errTokenGone = errors.New("the token is not open")

// errKeyHidden: a key that was in the token is not found, as when the token
// lost its login (private objects are then invisible).
var errKeyHidden = errors.New("the key is not visible: the token may have lost its login")

// errObjectNotFound is ErrKeyNotFound for a key in a token: the same to
// errors.Is (fs.ErrNotExist too), but its text says what the token lacks,
// an object (the message before it names its label), where
// ErrKeyNotFound's ends "file does not exist".
var errObjectNotFound error = objectNotFound{}

type objectNotFound struct{}

func (objectNotFound) Error() string {
	return "key not found: no such object in the token"
}
func (objectNotFound) Is(target error) bool { return target == ErrKeyNotFound }
func (objectNotFound) Unwrap() error        { return fs.ErrNotExist }

// keyHiddenError is errKeyHidden for one key: the token is opened again
// (use), and a key that the token, opened again, does not hold either is
// gone (gone).
type keyHiddenError struct {
	label string
	token string // its Describe
}

func (e *keyHiddenError) Error() string {
	return fmt.Sprintf("keys: no key labelled %q with the public key it had in the %s: %v", e.label, e.token, errKeyHidden)
}

func (e *keyHiddenError) Unwrap() error { return errKeyHidden }

// gone is the error of a key that the token, open and logged in, does not
// hold: unavailable (the edges answer 503 with Retry-After, and the key is
// found again if it comes back: a token restored, a key put back from a
// backup) and ErrKeyNotFound, which tells it from a token that is away.
func (e *keyHiddenError) gone() error {
	return fmt.Errorf("keys: the %s, opened again, holds no key labelled %q with the public key it had: %w: %w", e.token, e.label, pki.ErrUnavailable, errObjectNotFound)
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
	ctx, err := configure(cfg)
	if err != nil {
		return nil, err
	}
	return &pkcs11Token{ctx: ctx, cfg: cfg, prefix: cfg.prefix(), now: time.Now, login: configureWithPIN}, nil
}

// configure loads the module, finds the token and logs in (reading the PIN
// file each time, so a reopen uses the PIN of now).
func configure(cfg PKCS11Config) (*crypto11.Context, error) {
	pin, err := cfg.readPIN()
	if err != nil {
		return nil, err
	}
	return configureWithPIN(cfg, pin)
}

// configureWithPIN is configure with the PIN already read.
func configureWithPIN(cfg PKCS11Config, pin string) (*crypto11.Context, error) {
	if _, err := os.Stat(cfg.Module); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("keys: %w: %s does not exist: give the path of the HSM's PKCS#11 library (SoftHSM2's is /usr/lib/softhsm/libsofthsm2.so)", ErrPKCS11Module, cfg.Module)
		}
		return nil, fmt.Errorf("keys: %w: %w", ErrPKCS11Module, err)
	}
	ctx, err := crypto11.Configure(&crypto11.Config{Path: cfg.Module, TokenLabel: cfg.TokenLabel, TokenSerial: cfg.TokenSerial,
		SlotNumber: cfg.Slot, Pin: pin})
	if err != nil {
		var p11 pkcs11.Error
		switch {
		case strings.HasSuffix(err.Error(), "failed to open module"):
			// crypto11's words when dlopen or C_GetFunctionList fails.
			return nil, fmt.Errorf("keys: %w: %s is not a PKCS#11 library this process can load (the HSM vendor's module for this architecture; SoftHSM2's is /usr/lib/softhsm/libsofthsm2.so)", ErrPKCS11Module, cfg.Module)
		case strings.Contains(err.Error(), "could not find PKCS#11 token"):
			return nil, fmt.Errorf("keys: %w: no %s (softhsm2-util --show-slots or pkcs11-tool --list-slots shows the tokens)", ErrTokenNotFound, cfg.describe())
		case errors.As(err, &p11) && (p11 == pkcs11.CKR_PIN_INCORRECT || p11 == pkcs11.CKR_PIN_INVALID || p11 == pkcs11.CKR_PIN_LEN_RANGE):
			return nil, fmt.Errorf("keys: %w for the %s (the PIN of %s): %v", ErrWrongPIN, cfg.describe(), cfg.PINFile, err)
		case errors.As(err, &p11) && p11 == pkcs11.CKR_PIN_LOCKED:
			return nil, fmt.Errorf("keys: the PIN of the %s is locked (too many wrong PINs): %v", cfg.describe(), err)
		}
		return nil, fmt.Errorf("keys: PKCS#11 %s: %w", cfg.describe(), err)
	}
	return ctx, nil
}

// lostToken reports whether err says that the token, the session or the
// login is gone, or the module was reset: a state that opening the token
// again may end, not a refusal of this request.
func lostToken(err error) bool {
	if errors.Is(err, errTokenGone) || errors.Is(err, errKeyHidden) {
		return true
	}
	var p11 pkcs11.Error
	if !errors.As(err, &p11) {
		return false
	}
	switch p11 {
	case pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_DEVICE_ERROR, pkcs11.CKR_DEVICE_MEMORY,
		pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_TOKEN_NOT_RECOGNIZED, pkcs11.CKR_SLOT_ID_INVALID,
		pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED, pkcs11.CKR_SESSION_COUNT,
		pkcs11.CKR_OBJECT_HANDLE_INVALID, pkcs11.CKR_KEY_HANDLE_INVALID,
		pkcs11.CKR_USER_NOT_LOGGED_IN, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED:
		return true
	}
	return false
}

// use runs f with the token's context (gen numbers it). When f fails
// because the token is lost (lostToken), the token is opened again and f
// runs once more; if it is still lost, the error wraps pki.ErrUnavailable.
func (t *pkcs11Token) use(f func(ctx *crypto11.Context, gen uint64) error) error {
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		t.mu.RLock()
		ctx, gen, closed := t.ctx, t.gen, t.closed
		switch {
		case closed:
			err = fmt.Errorf("keys: the %s is closed", t.Describe())
		case ctx == nil:
			err = fmt.Errorf("keys: %s: %w", t.Describe(), errTokenGone)
		default:
			err = f(ctx, gen)
		}
		t.mu.RUnlock()
		if err == nil || closed || !lostToken(err) {
			return err
		}
		var hidden *keyHiddenError
		if attempt > 0 && errors.As(err, &hidden) {
			// Not found in a token just opened again and logged in: the
			// key is gone, not hidden, and opening the token once more
			// would only log in again for nothing.
			return hidden.gone()
		}
		if rerr := t.reopen(gen); rerr != nil {
			return fmt.Errorf("%w: %w; %w", pki.ErrUnavailable, err, rerr)
		}
	}
	return fmt.Errorf("%w: %w", pki.ErrUnavailable, err)
}

// reopen closes the context numbered failed, if it is still the token's,
// and opens the token again: new sessions, a new login. Closing first lets
// crypto11 finalize the module when this was its last context; a module
// that lost its token finds it again only after that (SoftHSM does).
func (t *pkcs11Token) reopen(failed uint64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.ctx != nil && t.gen != failed {
		return nil // closed, or opened again by another use meanwhile
	}
	now := t.now()
	if t.ctx == nil && t.lastErr != nil && now.Sub(t.lastTry) < reopenEvery {
		return t.lastErr
	}
	if t.ctx != nil {
		t.ctx.Close()
		t.ctx = nil
		t.gen++
	}
	t.lastTry = now
	pin, err := t.cfg.readPIN()
	if err != nil {
		t.lastErr = fmt.Errorf("opening it again: %w", err)
		return t.lastErr
	}
	sum := sha256.Sum256([]byte(pin))
	if t.hasRefusedPIN && subtle.ConstantTimeCompare(sum[:], t.refusedPIN[:]) == 1 {
		// Logging in again with a PIN the token refused would only count
		// towards locking it.
		t.lastErr = fmt.Errorf("opening it again: keys: %w for the %s: the token refused the PIN of %s before, and it is not tried again until that file holds another (an HSM locks its PIN after a few wrong ones)", ErrWrongPIN, t.cfg.describe(), t.cfg.PINFile)
		return t.lastErr
	}
	ctx, err := t.login(t.cfg, pin)
	if err != nil {
		if errors.Is(err, ErrWrongPIN) {
			t.refusedPIN, t.hasRefusedPIN = sum, true
		}
		t.lastErr = fmt.Errorf("opening it again: %w", err)
		return t.lastErr
	}
	t.ctx, t.lastErr, t.hasRefusedPIN = ctx, nil, false
	t.gen++
	return nil
}

func (t *pkcs11Token) label(name string) string { return t.prefix + name }

func (t *pkcs11Token) Describe() string { return "PKCS#11 " + t.cfg.describe() }

func (t *pkcs11Token) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	if t.ctx == nil {
		return nil
	}
	err := t.ctx.Close()
	t.ctx = nil
	return err
}

func (t *pkcs11Token) Exportable() bool { return false }

func (t *pkcs11Token) Where(name string) string {
	return fmt.Sprintf("%s, key %q", t.Describe(), t.label(name))
}

func (t *pkcs11Token) Ref(name string) string {
	return "pkcs11:" + t.cfg.tokenSelector() + ";object=" + pctEncode(t.label(name))
}

func (t *pkcs11Token) Has(name string) (bool, error) {
	var n int
	err := t.use(func(ctx *crypto11.Context, _ uint64) error {
		pairs, err := t.find(ctx, t.label(name))
		n = len(pairs)
		return err
	})
	return n > 0, err
}

func (t *pkcs11Token) Open(name string) (crypto.Signer, error) {
	return t.openLabel(t.label(name), nil)
}

func (t *pkcs11Token) OpenRef(ref string) (crypto.Signer, error) { return t.OpenRefKey(ref, nil) }

func (t *pkcs11Token) OpenRefKey(ref string, pub crypto.PublicKey) (crypto.Signer, error) {
	label, err := t.cfg.refLabel(ref)
	if err != nil {
		return nil, err
	}
	return t.openLabel(label, pub)
}

// find returns the key pairs whose private key has label.
func (t *pkcs11Token) find(ctx *crypto11.Context, label string) ([]crypto11.Signer, error) {
	pairs, err := ctx.FindKeyPairs(nil, []byte(label))
	if err != nil {
		return nil, fmt.Errorf("keys: looking for %q in the %s: %w", label, t.Describe(), err)
	}
	return pairs, nil
}

// openLabel opens the key pair labelled label whose public key is pub or,
// with pub nil, the only pair of that label. Several pairs under one label
// are refused rather than one picked, unless pub tells exactly one apart:
// otherwise which key the CA signs with would be the token's choice, and
// could change.
func (t *pkcs11Token) openLabel(label string, pub crypto.PublicKey) (crypto.Signer, error) {
	var key crypto.Signer
	err := t.use(func(ctx *crypto11.Context, gen uint64) error {
		pairs, err := t.find(ctx, label)
		if err != nil {
			return err
		}
		if len(pairs) == 0 {
			return fmt.Errorf("keys: no key labelled %q in the %s: %w", label, t.Describe(), errObjectNotFound)
		}
		if pub == nil {
			if len(pairs) > 1 {
				return fmt.Errorf("keys: %d keys are labelled %q in the %s (CKA_ID %s), so which one to use is ambiguous and none is used: "+
					"delete the extra key pairs (pkcs11-tool --login --delete-object --type privkey --id ID, then --type pubkey) or give them "+
					"another label; a PKCS#11 URI cannot choose one with id=, as scepter finds its keys by label",
					len(pairs), label, t.Describe(), keyIDs(ctx, pairs))
			}
			key, err = t.wrap(ctx, gen, pairs[0], label)
			return err
		}
		var matching []crypto11.Signer
		for _, p := range pairs {
			if p.Public() != nil && pki.SamePublicKey(p.Public(), pub) {
				matching = append(matching, p)
			}
		}
		switch len(matching) {
		case 0:
			// Not ErrKeyNotFound: a key of the label is there, only not
			// the recorded one, which an operator has to look into.
			return fmt.Errorf("keys: the key labelled %q in the %s is not the one recorded: none of the %d key pair(s) of that label "+
				"(CKA_ID %s) has its public key; was it replaced in the token?", label, t.Describe(), len(pairs), keyIDs(ctx, pairs))
		case 1:
		default:
			return fmt.Errorf("keys: %d key pairs labelled %q in the %s (CKA_ID %s) have the public key recorded for it, so which one "+
				"to use is ambiguous and none is used: delete the copies (pkcs11-tool --login --delete-object --type privkey --id ID, "+
				"then --type pubkey)", len(matching), label, t.Describe(), keyIDs(ctx, matching))
		}
		key, err = t.wrap(ctx, gen, matching[0], label)
		return err
	})
	return key, err
}

// keyIDs lists the CKA_IDs of pairs in hex, for an operator to tell them
// apart ("?" where the token does not say).
func keyIDs(ctx *crypto11.Context, pairs []crypto11.Signer) string {
	ids := make([]string, len(pairs))
	for i, p := range pairs {
		ids[i] = "?"
		if a, err := ctx.GetAttribute(p, crypto11.CkaId); err == nil && a != nil && len(a.Value) > 0 {
			ids[i] = hex.EncodeToString(a.Value)
		}
	}
	return strings.Join(ids, ", ")
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
	var generate func(ctx *crypto11.Context) (crypto11.Signer, error)
	switch keyType {
	case RSA2048, RSA3072, RSA4096:
		bits := map[string]int{RSA2048: 2048, RSA3072: 3072, RSA4096: 4096}[keyType]
		generate = func(ctx *crypto11.Context) (crypto11.Signer, error) {
			return ctx.GenerateRSAKeyPairWithAttributes(public, private, bits)
		}
	case P256, P384:
		curve := map[string]elliptic.Curve{P256: elliptic.P256(), P384: elliptic.P384()}[keyType]
		generate = func(ctx *crypto11.Context) (crypto11.Signer, error) {
			return ctx.GenerateECDSAKeyPairWithAttributes(public, private, curve)
		}
	default:
		_, err = Generate(keyType) // names the valid types
		if err == nil {
			err = fmt.Errorf("keys: key type %q cannot be made in a token", keyType)
		}
		return nil, err
	}
	var key crypto.Signer
	err = t.use(func(ctx *crypto11.Context, gen uint64) error {
		k, err := generate(ctx)
		if err != nil {
			return fmt.Errorf("keys: generating %s key %q in the %s: %w", keyType, label, t.Describe(), err)
		}
		key, err = t.wrap(ctx, gen, k, label)
		return err
	})
	return key, err
}

func (t *pkcs11Token) RemoveRef(ref string) error {
	label, err := t.cfg.refLabel(ref)
	if err != nil {
		return err
	}
	return t.removeLabel(label, nil)
}

func (t *pkcs11Token) RemoveRefKey(ref string, pub crypto.PublicKey) error {
	if pub == nil {
		return fmt.Errorf("keys: removing %s: no public key to tell the key by", ref)
	}
	label, err := t.cfg.refLabel(ref)
	if err != nil {
		return err
	}
	return t.removeLabel(label, pub)
}

func (t *pkcs11Token) Remove(name string) error { return t.removeLabel(t.label(name), nil) }

// removeLabel destroys the key pair labelled label whose public key is pub
// or, with pub nil, the only pair of that label. A label tells keys apart
// only by convention: another CA sharing the token, or the operator, may
// have a key under it too, and destroying that one would leave its CA
// unable to sign or decrypt. So the other pairs of the label are left,
// and with pub nil and several pairs none is destroyed.
func (t *pkcs11Token) removeLabel(label string, pub crypto.PublicKey) error {
	return t.use(func(ctx *crypto11.Context, _ uint64) error {
		pairs, err := t.find(ctx, label)
		if err != nil {
			return err
		}
		if len(pairs) == 0 {
			return fmt.Errorf("keys: no key labelled %q in the %s: %w", label, t.Describe(), errObjectNotFound)
		}
		doomed := pairs
		switch {
		case pub != nil:
			doomed = nil
			for _, p := range pairs {
				if p.Public() != nil && pki.SamePublicKey(p.Public(), pub) {
					doomed = append(doomed, p)
				}
			}
			if len(doomed) == 0 {
				return fmt.Errorf("keys: no key labelled %q in the %s has the public key recorded for it, so none was removed; "+
					"the %d key pair(s) of that label (CKA_ID %s) are other keys, perhaps another CA's, and were left: %w",
					label, t.Describe(), len(pairs), keyIDs(ctx, pairs), errObjectNotFound)
			}
		case len(pairs) > 1:
			return fmt.Errorf("keys: %d keys are labelled %q in the %s (CKA_ID %s), and nothing tells which one to remove, so none was: "+
				"remove the one no CA uses with the token's tools (pkcs11-tool --login --delete-object --type privkey --id ID, then --type pubkey)",
				len(pairs), label, t.Describe(), keyIDs(ctx, pairs))
		}
		for _, p := range doomed {
			if err := p.Delete(); err != nil {
				return fmt.Errorf("keys: removing %q from the %s: %w", label, t.Describe(), err)
			}
		}
		return nil
	})
}

// wrap checks that the private key k, found in the context numbered gen,
// never leaves the token and returns it as a crypto.Signer (and
// crypto.Decrypter for RSA).
func (t *pkcs11Token) wrap(ctx *crypto11.Context, gen uint64, k crypto11.Signer, label string) (crypto.Signer, error) {
	if k.Public() == nil {
		return nil, fmt.Errorf("keys: the key %q in the %s has no public half", label, t.Describe())
	}
	if err := t.checkProtection(ctx, k, label); err != nil {
		return nil, err
	}
	s := &tokenSigner{k: k, gen: gen, pub: k.Public(), label: label, token: t}
	if _, ok := k.(crypto11.SignerDecrypter); ok {
		if _, rsaKey := k.Public().(*rsa.PublicKey); rsaKey {
			return &tokenDecrypter{tokenSigner: s}, nil
		}
	}
	return s, nil
}

// checkProtection refuses a private key that can leave the token.
func (t *pkcs11Token) checkProtection(ctx *crypto11.Context, k crypto11.Signer, label string) error {
	sensitive, extractable, err := protection(ctx, k)
	if err != nil {
		return fmt.Errorf("keys: the key %q in the %s: %w", label, t.Describe(), err)
	}
	if !sensitive || extractable {
		return fmt.Errorf("keys: the key %q in the %s can be read out of the token (CKA_SENSITIVE=%v, CKA_EXTRACTABLE=%v); a CA key must never leave it: make it again inside the token, not extractable", label, t.Describe(), sensitive, extractable)
	}
	return nil
}

// protection reads CKA_SENSITIVE and CKA_EXTRACTABLE of the private key.
func protection(ctx *crypto11.Context, k crypto11.Signer) (sensitive, extractable bool, err error) {
	attrs, err := ctx.GetAttributes(k, []crypto11.AttributeType{crypto11.CkaSensitive, crypto11.CkaExtractable})
	if err != nil {
		return false, false, err
	}
	b := func(a crypto11.AttributeType) bool {
		v := attrs[a]
		return v != nil && len(v.Value) > 0 && v.Value[0] != 0
	}
	return b(crypto11.CkaSensitive), b(crypto11.CkaExtractable), nil
}

// tokenSigner is a key in the token. Its handle k belongs to the token's
// context numbered gen; after a reopen the key is found again by its label
// and public key.
type tokenSigner struct {
	label string
	pub   crypto.PublicKey
	token *pkcs11Token

	mu  sync.Mutex
	k   crypto11.Signer
	gen uint64
	// vanished: the key was not found in the token, which was then opened
	// again (see handle).
	vanished bool
}

func (s *tokenSigner) Public() crypto.PublicKey { return s.pub }

// with runs f with the key's handle in the token's current context,
// through pkcs11Token.use (which opens a lost token again).
func (s *tokenSigner) with(f func(k crypto11.Signer) error) error {
	return s.token.use(func(ctx *crypto11.Context, gen uint64) error {
		k, err := s.handle(ctx, gen)
		if err != nil {
			return err
		}
		return f(k)
	})
}

// handle is the key in the context numbered gen: the one known, or the
// key of the same label and public key found in it.
func (s *tokenSigner) handle(ctx *crypto11.Context, gen uint64) (crypto11.Signer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen == gen && s.k != nil {
		return s.k, nil
	}
	pairs, err := s.token.find(ctx, s.label)
	if err != nil {
		return nil, err
	}
	for _, k := range pairs {
		if k.Public() == nil || !pki.SamePublicKey(k.Public(), s.pub) {
			continue
		}
		if err := s.token.checkProtection(ctx, k, s.label); err != nil {
			return nil, err
		}
		s.k, s.gen, s.vanished = k, gen, false
		return k, nil
	}
	if !s.vanished {
		// A token that lost its login hides its private keys: open it
		// again, once, before taking the key as gone.
		s.vanished = true
		return nil, &keyHiddenError{label: s.label, token: s.token.Describe()}
	}
	// Not opened again at every use: a token that holds no such key after
	// a reopen is open and answering.
	return nil, (&keyHiddenError{label: s.label, token: s.token.Describe()}).gone()
}

func (s *tokenSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	var sig []byte
	err := s.with(func(k crypto11.Signer) error {
		var err error
		sig, err = k.Sign(r, digest, opts)
		if err != nil {
			return fmt.Errorf("keys: signing with %q in the %s: %w", s.label, s.token.Describe(), err)
		}
		return nil
	})
	return sig, err
}

// String names the key, never its material (there is none to show).
func (s *tokenSigner) String() string {
	return s.token.Where(strings.TrimPrefix(s.label, s.token.prefix))
}

// tokenDecrypter is an RSA key in the token: it also decrypts.
type tokenDecrypter struct{ *tokenSigner }

// decrypt decrypts with the token's key (opened again when it was lost).
func (s *tokenDecrypter) decrypt(r io.Reader, ciphertext []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	var pt []byte
	err := s.with(func(k crypto11.Signer) error {
		d, ok := k.(crypto11.SignerDecrypter)
		if !ok {
			return fmt.Errorf("keys: the key %q in the %s cannot decrypt", s.label, s.token.Describe())
		}
		var err error
		pt, err = d.Decrypt(r, ciphertext, opts)
		if err != nil {
			return fmt.Errorf("keys: decrypting with %q in the %s: %w", s.label, s.token.Describe(), err)
		}
		return nil
	})
	return pt, err
}

// Decrypt decrypts with the token, keeping crypto/rsa's contract:
//
//   - PKCS #1 v1.5 with SessionKeyLen (which crypto11 refuses): the token
//     decrypts without it, and whatever it answers (an error for a bad
//     padding, or a plaintext of another length) becomes a random key of
//     SessionKeyLen, with no error (RFC 3218 §2.3.2); only a lost token
//     (pki.ErrUnavailable) is an error, which says nothing of the
//     ciphertext. The random key is
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
		return s.decrypt(r, ciphertext, nil)
	case *rsa.PKCS1v15DecryptOptions:
		if o.SessionKeyLen <= 0 {
			return s.decrypt(r, ciphertext, &rsa.PKCS1v15DecryptOptions{})
		}
		key := make([]byte, o.SessionKeyLen)
		if _, err := io.ReadFull(r, key); err != nil {
			return nil, fmt.Errorf("keys: random: %w", err)
		}
		pt, err := s.decrypt(r, ciphertext, &rsa.PKCS1v15DecryptOptions{})
		if errors.Is(err, pki.ErrUnavailable) {
			return nil, err
		}
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
		return s.decrypt(r, ciphertext, &rsa.OAEPOptions{Hash: o.Hash, Label: o.Label})
	}
	return nil, fmt.Errorf("keys: unsupported decrypter options %T", opts)
}
