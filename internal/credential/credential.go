// Package credential holds how scepter makes, stores and checks secrets:
// one-time challenges (random, stored as a SHA-256), the static shared
// challenge (compared in constant time) and passwords (argon2id). Both the
// enrollment service, which checks them, and the admin service, which makes
// them, use it, so the two can never disagree on a format.
package credential

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"
	"unicode"

	"golang.org/x/crypto/argon2"

	"github.com/scepter/scepter/internal/ttlcache"
)

// HashChallenge is how one-time challenges are stored: they are random and
// long, so an unsalted SHA-256 is enough and lets the store look them up.
func HashChallenge(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// NameTag stands in the audit trail for a name that is no account's (a
// console login's, an EST user's): such a name is often a password, or a
// one-time challenge, typed into the wrong field, which every auditor would
// read. It is a keyed hash under key (the store's LoginNameKey), so it
// cannot be guessed back from a list of passwords without the database,
// yet the same name gives the same tag on every node and across restarts,
// so repeated attempts show. 64 bits, as hex: a shorter tag would make
// some of many different names read alike.
func NameTag(key []byte, name string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("audit tag\x00")) // apart from the key's other uses
	m.Write([]byte(name))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// RandomToken returns n random bytes as unpadded upper-case base32: easy to
// type, no characters that URL or shell quoting would mangle.
func RandomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("credential: random: %w", err)
	}
	return strings.TrimRight(base32.StdEncoding.EncodeToString(b), "="), nil
}

// RandomHex returns n random bytes as upper-case hex: one-time passwords
// look like NDES's (hex), which every MDM's NDES password parser accepts.
func RandomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("credential: random: %w", err)
	}
	return strings.ToUpper(hex.EncodeToString(b)), nil
}

// Static is a shared secret compared in constant time, also in its length:
// both sides are hashed first. The zero Static matches nothing.
type Static struct {
	hash []byte
}

// NewStatic returns the matcher for secret ("" matches nothing).
func NewStatic(secret string) Static {
	if secret == "" {
		return Static{}
	}
	return Static{hash: HashChallenge(secret)}
}

// Matches reports whether presented is the secret.
func (s Static) Matches(presented string) bool {
	if s.hash == nil {
		return false
	}
	return subtle.ConstantTimeCompare(s.hash, HashChallenge(presented)) == 1
}

// Set reports whether there is a secret at all.
func (s Static) Set() bool { return s.hash != nil }

// argon2id parameters (RFC 9106's second recommended option, with the
// memory OWASP suggests for servers): about 20 ms and 19 MiB per check.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// MaxPasswordLen bounds what HashPassword and VerifyPassword accept, so a
// megabyte password cannot be used to make the server hash it.
const MaxPasswordLen = 1024

// InvisiblePassword refuses a console or EST user's password with no
// visible character: twelve spaces, or twelve zero-width spaces (U+200B),
// meet the length rule, and are among the first guesses.
const InvisiblePassword = "the password has no visible character (it is all white space or invisible characters such as U+200B); choose one with letters, digits or symbols"

// HasVisible reports whether password has a character that shows. It is
// decided by what shows rather than by a list of what does not, which
// misses the next invisible one (r128 D1: Hangul fillers and variation
// selectors got through a rule of white space and format characters).
func HasVisible(password string) bool {
	return strings.ContainsFunc(password, shows)
}

// shows reports whether r draws something: a letter, number, punctuation
// or symbol that Unicode does not list as default-ignorable (the Hangul
// fillers U+115F, U+1160, U+3164, U+FFA0 are letters that render as
// nothing) and that is not the blank braille pattern U+2800. White space,
// controls, format characters (U+200B…), marks (a combining accent with
// no base, the variation selectors) and unassigned code points never do.
func shows(r rune) bool {
	if !unicode.In(r, unicode.L, unicode.N, unicode.P, unicode.S) {
		return false
	}
	if unicode.In(r, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector) {
		return false
	}
	return r != brailleBlank
}

// brailleBlank is a symbol (So) with no dots: it renders as a space.
const brailleBlank = '\u2800'

// ErrBadHash: a stored password hash is not one this package wrote.
var ErrBadHash = errors.New("credential: malformed password hash")

// Cost is the work of one argon2id hash: Time passes over MemoryKiB KiB
// of memory. HashPassword's is DefaultCost; VerifyPassword takes the cost
// from the hash, so a hash made at another cost verifies alike.
type Cost struct{ Time, MemoryKiB uint32 }

// DefaultCost is the cost of HashPassword: RFC 9106's parameters.
func DefaultCost() Cost { return Cost{Time: argonTime, MemoryKiB: argonMemory} }

// HashPassword returns the PHC-style argon2id encoding of password with a
// fresh random salt, at DefaultCost.
func HashPassword(password string) (string, error) {
	return HashPasswordWithCost(password, DefaultCost())
}

// HashPasswordWithCost is HashPassword at cost c. Only tests whose subject
// is not argon2id's cost choose another: 19 MiB per hash made hundreds of
// them the most of some packages' test time under the race detector.
func HashPasswordWithCost(password string, c Cost) (string, error) {
	if password == "" || len(password) > MaxPasswordLen {
		return "", fmt.Errorf("credential: a password must have 1 to %d bytes", MaxPasswordLen)
	}
	if c.Time < 1 || c.Time > 16 || c.MemoryKiB < 8*argonThreads || c.MemoryKiB > 1<<20 {
		return "", fmt.Errorf("credential: argon2id cost %+v out of range (time 1 to 16, memory %d to %d KiB)", c, 8*argonThreads, 1<<20)
	}
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("credential: random: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, c.Time, c.MemoryKiB, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, c.MemoryKiB, c.Time, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// VerifyPassword reports whether password matches encoded, in constant
// time. The parameters come from encoded, so hashes made with other costs
// keep working.
func VerifyPassword(encoded, password string) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return false, ErrBadHash
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || t == 0 || p == 0 || m > 1<<20 || t > 16 {
		return false, ErrBadHash
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return false, ErrBadHash
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(want) < 16 || len(want) > 64 {
		return false, ErrBadHash
	}
	if len(password) > MaxPasswordLen {
		password = password[:MaxPasswordLen] // still hashed: no timing difference
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// dummyHash is verified against when a user does not exist, so an unknown
// user name costs the same time as a wrong password.
var dummyHash = func() string {
	h, err := HashPassword("scepter-dummy-password")
	if err != nil {
		panic(err)
	}
	return h
}()

// BurnVerify spends the time of one password check and always fails: call
// it for an unknown user.
func BurnVerify(password string) {
	VerifyPassword(dummyHash, password)
}

// PasswordChecker verifies passwords with at most a few argon2id
// computations at a time, by default as many as there are CPUs. Each holds
// argonMemory (19 MiB) while it runs, and more at once than there are cores
// buys no speed, only memory: unbounded, a burst of logins or of EST
// enrollments with passwords would take the server's memory with it.
// Callers beyond the bound wait their turn (or until their context ends).
// The zero value and nil are unbounded.
type PasswordChecker struct {
	slots chan struct{}

	// Accepted pairs, when remembered (NewRememberingPasswordChecker).
	accepted *ttlcache.Cache[[sha256.Size]byte, struct{}]
	mac      []byte // keys accepted: it holds no password, nor a plain hash of one
	now      func() time.Time
	ttl      time.Duration

	burnHash string // what Burn verifies against; "" is dummyHash (WithBurnHash)
}

// NewPasswordChecker allows n checks at once; n <= 0 means GOMAXPROCS.
func NewPasswordChecker(n int) *PasswordChecker {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	return &PasswordChecker{slots: make(chan struct{}, n)}
}

// maxAccepted bounds the pairs a remembering checker keeps.
const maxAccepted = 1024

// NewRememberingPasswordChecker is NewPasswordChecker that also remembers,
// for ttl by now, each (stored hash, password) pair argon2id accepted, and
// accepts it again without argon2id. For HTTP Basic on every request (EST):
// an EST user enrolling a thousand devices would otherwise pay some 20 ms
// of CPU for each. Nothing else changes: a wrong password, an unknown user
// and the first use of a password still cost one argon2id, and since the
// stored hash is part of the pair, a changed password is checked afresh.
// The caller still looks its user up for every request, so a user deleted
// or rebound to another profile is seen at once. In memory the pairs are
// HMACs under a key of this process, at most 1024 of them.
func NewRememberingPasswordChecker(n int, now func() time.Time, ttl time.Duration) *PasswordChecker {
	c := NewPasswordChecker(n)
	c.accepted = ttlcache.New[[sha256.Size]byte, struct{}](maxAccepted)
	c.mac = make([]byte, 32)
	rand.Read(c.mac) // never fails: crypto/rand crashes the program instead (Go 1.24)
	c.now, c.ttl = now, ttl
	return c
}

// pair is the key of encoded and password among the accepted pairs.
func (c *PasswordChecker) pair(encoded, password string) [sha256.Size]byte {
	m := hmac.New(sha256.New, c.mac)
	m.Write([]byte(encoded)) // a PHC string: no NUL
	m.Write([]byte{0})
	m.Write([]byte(password))
	var k [sha256.Size]byte
	m.Sum(k[:0])
	return k
}

// Acquire holds one of the checker's slots until release is called (or
// gives up when ctx ends): Verify and Burn take one each.
func (c *PasswordChecker) Acquire(ctx context.Context) (release func(), err error) {
	if c == nil || c.slots == nil {
		return func() {}, nil
	}
	select {
	case c.slots <- struct{}{}:
		return func() { <-c.slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Verify is VerifyPassword within the bound, or at once for a pair the
// checker remembers accepting.
func (c *PasswordChecker) Verify(ctx context.Context, encoded, password string) (bool, error) {
	var pair [sha256.Size]byte
	remembering := c != nil && c.accepted != nil
	if remembering {
		pair = c.pair(encoded, password)
		if c.remembers(pair) {
			return true, nil
		}
	}
	release, err := c.Acquire(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	// Asked again once a slot is held: the first requests of one user
	// often come at once (a provisioning station's parallel connections,
	// and again when the pair expires), and while this one waited for its
	// slot another may have had the same pair accepted. Without this, each
	// of them ran argon2id: 64 at once cost 2 s of CPU on one core.
	if remembering && c.remembers(pair) {
		return true, nil
	}
	ok, err := VerifyPassword(encoded, password)
	if ok && err == nil && remembering {
		now := c.now()
		c.accepted.Put(pair, struct{}{}, now.Add(c.ttl), now)
	}
	return ok, err
}

// remembers reports whether pair was accepted within the last ttl.
func (c *PasswordChecker) remembers(pair [sha256.Size]byte) bool {
	_, ok := c.accepted.Get(pair, c.now())
	return ok
}

// WithBurnHash makes Burn verify against encoded instead of a hash at
// DefaultCost, and returns c. For tests whose users' hashes are made at a
// cheaper cost (HashPasswordWithCost): an unknown user then costs what a
// known one does there too.
func (c *PasswordChecker) WithBurnHash(encoded string) *PasswordChecker {
	c.burnHash = encoded
	return c
}

// Burn is BurnVerify within the bound.
func (c *PasswordChecker) Burn(ctx context.Context, password string) {
	release, err := c.Acquire(ctx)
	if err != nil {
		return
	}
	defer release()
	if c != nil && c.burnHash != "" {
		VerifyPassword(c.burnHash, password)
		return
	}
	BurnVerify(password)
}
