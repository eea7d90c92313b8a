// Package auth says who is asking, for the admin API and the console: API
// bearer tokens, console users with passwords and sessions, their roles,
// and the lockout after failed logins. It keeps everything in the store
// (only hashes of secrets), so any node behind a load balancer answers.
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/scepter/scepter/internal/credential"
	"github.com/scepter/scepter/internal/loglimit"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// Defaults.
const (
	// SessionTTL is how long a console login lasts.
	SessionTTL = 8 * time.Hour
	// LockAfter failed logins in a row lock the user, for LockBase, then
	// twice as long with each further failure, up to LockMax.
	LockAfter = 5
	LockBase  = time.Minute
	LockMax   = time.Hour
	// MinPasswordLen is the shortest console password accepted.
	MinPasswordLen = 12
	// TokenPrefix starts every API token, so a leaked one is recognisable
	// (and secret scanners can be taught it).
	TokenPrefix = "scepter_"
)

// Principal is who a request acts as.
type Principal struct {
	// Name is the token's or the user's name.
	Name string
	Role pki.Role
	// Kind is "token", "user" or "cli".
	Kind string
	// TokenID is set for tokens.
	TokenID string
	// ExpiresAt is when a token principal's token expires (zero: never).
	ExpiresAt time.Time
}

// Actor names the principal in the audit trail: "api:NAME" for a token,
// "console:NAME" for a person, the CLI's own name for the CLI.
func (p Principal) Actor() string {
	switch p.Kind {
	case "token":
		return "api:" + p.Name
	case "user":
		return "console:" + p.Name
	}
	return p.Name
}

// CLI is the principal of the command line: whoever can run scepter on the
// server's data directory can do everything.
func CLI(actor string) Principal { return Principal{Name: actor, Role: pki.RoleAdmin, Kind: "cli"} }

// Service manages principals. It is safe for concurrent use.
type Service struct {
	st        store.Store
	clock     pki.Clock
	log       *slog.Logger
	passwords *credential.PasswordChecker // bounds the argon2id checks at once
	// loginNameKey keys the hash under which the store counts an unknown
	// name's failed logins, and the tag that stands for such a name in the
	// audit trail: the store's one key (LoginNameKey), read once.
	loginNameKey credential.NameKey
	// refused rate-limits the record of logins refused unchecked during a
	// lockout, and of tokens sent in clear.
	refused *refusalLog
	// heldClear: tokens sent in clear that refused's minute held back,
	// recorded once that minute has ended (FlushHeldClear); under clearMu.
	clearMu   sync.Mutex
	heldClear map[string]*heldClear
}

// heldClear is what the record of a token's sends in clear that the
// once-a-minute limit held back will say: the token, the state it was sent
// in, and the address of the last of them.
type heldClear struct {
	token         pki.APIToken
	state, advice string
	remote        string
}

// New builds the service.
func New(st store.Store, clock pki.Clock, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{st: st, clock: clock, log: log, passwords: credential.NewPasswordChecker(0),
		refused: newRefusalLog(), heldClear: map[string]*heldClear{}}
}

// Errors that map to HTTP statuses at the edge.
var (
	// ErrUnauthenticated: no credential, or one that is not valid.
	ErrUnauthenticated = errors.New("auth: not authenticated")
	// ErrLocked: too many failed logins; try again later.
	ErrLocked = errors.New("auth: locked after failed logins")
)

// LockedError is the ErrLocked that Login returns, with the time the lock
// ends (errors.Is(err, ErrLocked) holds; errors.As finds the time).
type LockedError struct{ Until time.Time }

func (e *LockedError) Error() string {
	return ErrLocked.Error() + " until " + e.Until.UTC().Format(time.RFC3339)
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// EndedTokenError is the ErrUnauthenticated that AuthenticateToken returns
// for the secret of a token that was revoked or has expired
// (errors.Is(err, ErrUnauthenticated) holds; errors.As finds which). Its
// sender holds the secret, so naming the token tells them nothing they
// could not learn, and tells a script's operator a revoked token from a
// mistyped one.
type EndedTokenError struct {
	Name, ID string
	// State is "revoked" or "expired" (pki.APIToken.State), since At.
	State string
	At    time.Time
}

func (e *EndedTokenError) Error() string {
	what := "was revoked"
	if e.State == "expired" {
		what = "expired"
	}
	return fmt.Sprintf("the API token %q (%s) %s at %s", e.Name, e.ID, what, e.At.UTC().Format(time.RFC3339))
}

func (e *EndedTokenError) Unwrap() error { return ErrUnauthenticated }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// tokenIDRE matches what a token ID looks like (credential.RandomHex(8)),
// in either case.
var tokenIDRE = regexp.MustCompile(`^[0-9A-Fa-f]{16}$`)

func checkName(what, name string) error {
	if !nameRE.MatchString(name) {
		return pki.Errorf(pki.EBadRequest, "%s name %q: use 1 to 64 ASCII letters (a-z, A-Z), digits and . _ @ -, beginning with a letter or digit", what, name)
	}
	return nil
}

func checkRole(r pki.Role) error {
	if !r.Valid() {
		return pki.Errorf(pki.EBadRequest, "role %q: want admin, operator or auditor", r)
	}
	return nil
}

// Require refuses a principal whose role does not include need, with a
// *RoleError.
func Require(p Principal, need pki.Role) error {
	if !p.Role.Allows(need) {
		return &RoleError{Principal: p, Need: need}
	}
	return nil
}

// RoleError is Require's refusal: an authenticated principal whose role
// lacks the one an operation needs. It is a pki.Error of code EForbidden
// (through Unwrap); the API and the console also find the principal and the
// role in it, to audit a refused change (ops.Ops.RecordRoleRefusal).
type RoleError struct {
	Principal Principal
	Need      pki.Role
}

func (e *RoleError) Error() string { return e.Unwrap().Error() }

// Unwrap is the refusal as clients see it.
func (e *RoleError) Unwrap() error {
	p := e.Principal
	return pki.Errorf(pki.EForbidden, "%s %q has role %s; this needs %s", p.Kind, p.Name, p.Role, e.Need)
}

// RequireLasting refuses a principal whose own credential expires (a
// token with an expiry) creating a credential that does not (a console
// user, an EST user): a stolen short-lived token must not buy a lasting
// way in. what names the credential.
func RequireLasting(p Principal, what string) error {
	if p.ExpiresAt.IsZero() {
		return nil
	}
	return pki.Errorf(pki.EForbidden, "this token expires at %s and cannot create %s, which does not expire: use the CLI, or a token that does not expire",
		p.ExpiresAt.UTC().Format(time.RFC3339), what)
}

// RequireWithin refuses a principal whose credential expires (a token
// with an expiry) creating a thing that expires later, or never (expires
// zero): a stolen short-lived token must not buy a lasting way in, be it a
// token or a one-time challenge. what names the thing ("token",
// "challenge").
func RequireWithin(p Principal, now, expires time.Time, what string) error {
	if p.ExpiresAt.IsZero() || !expires.IsZero() && !expires.After(p.ExpiresAt) {
		return nil
	}
	left := p.ExpiresAt.Sub(now).Truncate(time.Minute)
	if left < time.Minute {
		// "At most 0s" would be advice no lifetime follows (a zero is
		// refused, and a token lives a minute at least).
		return pki.Errorf(pki.EBadRequest,
			"this token expires at %s, in less than a minute, and a %s it creates may not outlive it: create the %s with the CLI, or with a token that lives longer",
			p.ExpiresAt.UTC().Format(time.RFC3339), what, what)
	}
	return pki.Errorf(pki.EBadRequest,
		"this token expires at %s, and a %s it creates may not outlive it: give a lifetime of at most %s, or create the %s with the CLI",
		p.ExpiresAt.UTC().Format(time.RFC3339), what, pki.ShortDuration(left), what)
}

func hashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// ParseTokenTTL reads a token lifetime as the API and the CLI take it: ""
// or "0" for no expiry, else a Go duration ("720h") or whole days ("90d").
// Any other zero ("0s", "0d": a script's "${DAYS}d" with DAYS=0) is
// refused rather than read as no expiry, so that a token that never
// expires is only ever asked for as such. A lifetime out of NewToken's
// range is refused here with NewToken's words, quoting s.
func ParseTokenTTL(s string) (time.Duration, error) {
	if s == "" || s == "0" {
		return 0, nil
	}
	// As every other number the API and the CLI read, with no plus sign
	// or white space, which strconv and time.ParseDuration would take
	// ("+1d"); a minus sign is read, to say the lifetime is out of range.
	if s[0] != '-' && (s[0] < '0' || s[0] > '9') {
		return 0, pki.Errorf(pki.EBadRequest, "token lifetime %q: want a duration such as 90d or 720h, or 0 for no expiry", s)
	}
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		switch {
		case errors.Is(err, strconv.ErrRange) || err == nil && (days < 0 || days > maxTokenDays):
			return 0, tokenTTLRangeError(s)
		case err != nil:
			return 0, pki.Errorf(pki.EBadRequest, "token lifetime %q: want a duration such as 90d or 720h, or 0 for no expiry", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			if durationOverflows(s) {
				return 0, tokenTTLRangeError(s)
			}
			return 0, pki.Errorf(pki.EBadRequest, "token lifetime %q: want a duration such as 90d or 720h, or 0 for no expiry", s)
		}
	}
	if d == 0 {
		return 0, pki.Errorf(pki.EBadRequest, "token lifetime %q is zero: say 0 for a token that never expires, or give a lifetime such as 90d", s)
	}
	if d < minTokenTTL || d > maxTokenTTL {
		// Here, not only in NewToken, so that the error quotes the
		// lifetime as the caller wrote it ("3661d", not "87864h0m0s").
		return 0, tokenTTLRangeError(s)
	}
	return d, nil
}

// maxTokenDays keeps a lifetime in days inside a time.Duration.
const maxTokenDays = 36500

// A token lives from a minute (less is a mistake: a token expired before
// it is used) up to 10 years; longer is asked for as no expiry (0).
const (
	minTokenTTL = time.Minute
	maxTokenTTL = 10 * 366 * 24 * time.Hour
)

// ErrTokenTTLRange is in the error of a token lifetime out of range,
// whether ParseTokenTTL or NewToken finds it, so that a caller answers
// every such lifetime alike (the API: 422, as a well-formed value it
// refuses).
var ErrTokenTTLRange = errors.New("auth: token lifetime out of range")

func tokenTTLRangeError(lifetime string) error {
	return pki.Wrap(pki.EBadRequest, ErrTokenTTLRange, fmt.Sprintf(
		"token lifetime %q is out of range: want from 1m up to 10 years (3660d), or 0 for a token that never expires", lifetime))
}

// durationOverflows tells a Go duration too long for time.Duration (more
// than about 292 years: "3000000h") from one that is no duration at all.
func durationOverflows(s string) bool {
	for _, unit := range []string{"ns", "us", "µs", "ms", "s", "m", "h"} {
		if n, ok := strings.CutSuffix(s, unit); ok {
			f, err := strconv.ParseFloat(n, 64)
			return err == nil && f > 0 && !strings.ContainsAny(n, "eEinfINFxX")
		}
	}
	return false
}

// NewToken creates an API token and returns its secret, shown this once.
// ttl zero means no expiry.
func (s *Service) NewToken(ctx context.Context, name string, role pki.Role, ttl time.Duration, by Principal) (string, pki.APIToken, error) {
	if err := Require(by, pki.RoleAdmin); err != nil {
		return "", pki.APIToken{}, err
	}
	if err := checkName("token", name); err != nil {
		return "", pki.APIToken{}, err
	}
	if tokenIDRE.MatchString(name) {
		// Revoking by "ID or name" takes the ID first: a token named like
		// another's ID would be revoked by a second, retried revocation of
		// that ID, which meant the other one.
		return "", pki.APIToken{}, pki.Errorf(pki.EBadRequest, "token name %q looks like a token ID (16 hex digits): choose a name with a letter beyond F or a punctuation mark", name)
	}
	if err := checkRole(role); err != nil {
		return "", pki.APIToken{}, err
	}
	if ttl != 0 && (ttl < minTokenTTL || ttl > maxTokenTTL) {
		return "", pki.APIToken{}, tokenTTLRangeError(ttl.String())
	}
	random, err := credential.RandomToken(32)
	if err != nil {
		return "", pki.APIToken{}, err
	}
	id, err := credential.RandomHex(8)
	if err != nil {
		return "", pki.APIToken{}, err
	}
	secret := TokenPrefix + random
	now := s.clock.Now()
	t := pki.APIToken{ID: id, Name: name, Role: role, Hash: hashSecret(secret), CreatedAt: now, CreatedBy: by.Actor()}
	if ttl > 0 {
		t.ExpiresAt = now.Add(ttl)
	}
	if err := RequireWithin(by, now, t.ExpiresAt, "token"); err != nil {
		return "", pki.APIToken{}, err
	}
	ev := pki.AuditEvent{Time: now, Type: pki.EventTokenCreated, Actor: by.Actor(), Outcome: "success",
		Detail: fmt.Sprintf("token %s (%s), role %s", id, name, role)}
	err = s.st.CreateToken(ctx, t, ev)
	if errors.Is(err, store.ErrConflict) {
		return "", pki.APIToken{}, s.tokenNameConflict(ctx, name)
	}
	if err != nil {
		return "", pki.APIToken{}, err
	}
	return secret, t, nil
}

// tokenNameConflict is the 409 for a new token whose name a token has,
// or one differing from it only in case: api:NAME in the audit trail must
// name one token for ever, so even a revoked or expired token keeps its
// name. It names the token in the way as stored, and its state, so the
// admin sees which one it is rather than the name just asked for.
func (s *Service) tokenNameConflict(ctx context.Context, name string) error {
	const rule = "a token's name is never given to another, even once revoked or expired"
	tokens, err := s.st.ListTokens(ctx)
	if err != nil {
		// The conflict is known; which token it is, not.
		s.log.Warn("listing the tokens to name the one in the way", "err", err)
	}
	for _, other := range tokens {
		if !strings.EqualFold(other.Name, name) {
			continue
		}
		named := fmt.Sprintf("a token is named %q already", other.Name)
		if other.Name != name {
			named += fmt.Sprintf(", which differs from %q only in case", name)
		}
		state := "live"
		switch other.State(s.clock.Now()) {
		case "revoked":
			state = "revoked at " + other.RevokedAt.UTC().Format(time.RFC3339)
		case "expired":
			state = "expired at " + other.ExpiresAt.UTC().Format(time.RFC3339)
		}
		return pki.Errorf(pki.EConflict, "%s (token %s, %s; %s)", named, other.ID, state, rule)
	}
	return pki.Errorf(pki.EConflict, "a token is named %q already, or a name that differs from it only in case (%s)", name, rule)
}

// Tokens lists the tokens (never a secret).
func (s *Service) Tokens(ctx context.Context, by Principal) ([]pki.APIToken, error) {
	if err := Require(by, pki.RoleAdmin); err != nil {
		return nil, err
	}
	return s.st.ListTokens(ctx)
}

// RevokeToken revokes a live token by ID or name.
func (s *Service) RevokeToken(ctx context.Context, idOrName string, by Principal) (pki.APIToken, error) {
	if err := Require(by, pki.RoleAdmin); err != nil {
		return pki.APIToken{}, err
	}
	now := s.clock.Now()
	ev := pki.AuditEvent{Time: now, Type: pki.EventTokenRevoked, Actor: by.Actor(), Outcome: "success"}
	t, err := s.st.RevokeToken(ctx, idOrName, now, ev)
	if errors.Is(err, store.ErrNotFound) {
		return pki.APIToken{}, pki.Errorf(pki.ENotFound, "no live token %q", pki.Clip(idOrName, 80))
	}
	if err != nil {
		return pki.APIToken{}, err
	}
	return *t, nil
}

// touchEvery bounds how often a token's last use is written.
const touchEvery = time.Minute

// AuthenticateToken returns the principal of a bearer token.
func (s *Service) AuthenticateToken(ctx context.Context, secret string) (Principal, error) {
	if !strings.HasPrefix(secret, TokenPrefix) || len(secret) > 256 {
		return Principal{}, ErrUnauthenticated
	}
	t, err := s.st.TokenByHash(ctx, hashSecret(secret))
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrUnauthenticated
	}
	if err != nil {
		return Principal{}, err
	}
	now := s.clock.Now()
	switch state := t.State(now); state {
	case "revoked":
		return Principal{}, &EndedTokenError{Name: t.Name, ID: t.ID, State: state, At: t.RevokedAt}
	case "expired":
		return Principal{}, &EndedTokenError{Name: t.Name, ID: t.ID, State: state, At: t.ExpiresAt}
	}
	if now.Sub(t.LastUsedAt) >= touchEvery {
		if err := s.st.TouchToken(ctx, t.ID, now); err != nil {
			s.log.Warn("recording a token's use", "token", t.ID, "err", err)
		}
	}
	return Principal{Name: t.Name, Role: t.Role, Kind: "token", TokenID: t.ID, ExpiresAt: t.ExpiresAt}, nil
}

// AddUser creates a console user.
func (s *Service) AddUser(ctx context.Context, name string, role pki.Role, password string, by Principal) (pki.User, error) {
	if err := Require(by, pki.RoleAdmin); err != nil {
		return pki.User{}, err
	}
	if err := RequireLasting(by, "a console user"); err != nil {
		return pki.User{}, err
	}
	if err := checkName("user", name); err != nil {
		return pki.User{}, err
	}
	if err := checkRole(role); err != nil {
		return pki.User{}, err
	}
	if n := utf8.RuneCountInString(password); n < MinPasswordLen || len(password) > credential.MaxPasswordLen {
		return pki.User{}, pki.Errorf(pki.EBadRequest, "the password must have at least %d characters and at most %d bytes (in UTF-8)",
			MinPasswordLen, credential.MaxPasswordLen)
	}
	if !utf8.ValidString(password) || strings.ContainsFunc(password, unicode.IsControl) {
		// A login form cannot type these, and a NUL or a broken byte
		// sequence is more likely a mistake than a password.
		return pki.User{}, pki.Errorf(pki.EBadRequest, "the password holds a control character or is not UTF-8")
	}
	if !credential.HasVisible(password) {
		return pki.User{}, pki.Errorf(pki.EBadRequest, "%s", credential.InvisiblePassword)
	}
	// Names that differ only in case would read as one person in the
	// audit trail (console:alice and console:ALICE).
	users, err := s.st.ListUsers(ctx)
	if err != nil {
		return pki.User{}, err
	}
	for _, other := range users {
		if other.Name != name && strings.EqualFold(other.Name, name) {
			return pki.User{}, pki.Errorf(pki.EConflict, "a user is named %q already, which differs only in case", other.Name)
		}
	}
	hash, err := credential.HashPassword(password)
	if err != nil {
		return pki.User{}, err
	}
	now := s.clock.Now()
	u := pki.User{Name: name, Role: role, PasswordHash: hash, CreatedAt: now, CreatedBy: by.Actor()}
	ev := pki.AuditEvent{Time: now, Type: pki.EventUserAdded, Actor: by.Actor(), Outcome: "success",
		Detail: fmt.Sprintf("user %s, role %s", name, role)}
	err = s.st.CreateUser(ctx, u, ev)
	if errors.Is(err, store.ErrConflict) {
		return pki.User{}, pki.Errorf(pki.EConflict, "a user is named %q already, or a name that differs from it only in case", name)
	}
	if err != nil {
		return pki.User{}, err
	}
	return u, nil
}

// Users lists the console users.
func (s *Service) Users(ctx context.Context, by Principal) ([]pki.User, error) {
	if err := Require(by, pki.RoleAdmin); err != nil {
		return nil, err
	}
	return s.st.ListUsers(ctx)
}

// RemoveUser deletes a user and ends their sessions.
func (s *Service) RemoveUser(ctx context.Context, name string, by Principal) error {
	if err := Require(by, pki.RoleAdmin); err != nil {
		return err
	}
	if by.Kind == "user" && by.Name == name {
		return pki.Errorf(pki.EConflict, "you cannot remove yourself")
	}
	ev := pki.AuditEvent{Time: s.clock.Now(), Type: pki.EventUserRemoved, Actor: by.Actor(), Outcome: "success", Detail: "user " + name}
	err := s.st.DeleteUser(ctx, name, ev)
	if errors.Is(err, store.ErrNotFound) {
		return pki.Errorf(pki.ENotFound, "no user %q", pki.Clip(name, 80))
	}
	return err
}

// lockFor is how long the n-th failure in a row locks a user.
func lockFor(n int) time.Duration {
	if n < LockAfter {
		return 0
	}
	d := LockBase
	for i := LockAfter; i < n && d < LockMax; i++ {
		d *= 2
	}
	return min(d, LockMax)
}

// userInAnyCase finds the user a login name means. Names are unique
// regardless of case (CreateUser) and a user is removed by its name in any
// case, so a login takes any case too; the name spelled exactly wins over
// a case twin from before that rule, and a name two such twins match in
// another case is no user's (store.ErrNotFound): which one is meant cannot
// be told.
func (s *Service) userInAnyCase(ctx context.Context, name string) (*pki.User, error) {
	u, err := s.st.User(ctx, name)
	if !errors.Is(err, store.ErrNotFound) {
		return u, err
	}
	users, err := s.st.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	var found string
	for _, o := range users {
		if strings.EqualFold(o.Name, name) {
			if found != "" {
				return nil, fmt.Errorf("auth: user %q: two users match it in another case: %w", name, store.ErrNotFound)
			}
			found = o.Name
		}
	}
	if found == "" {
		return nil, fmt.Errorf("auth: user %q: %w", name, store.ErrNotFound)
	}
	return s.st.User(ctx, found)
}

// Login checks a user's password and opens a session, returning the
// session's secret (the cookie). A locked user is refused with ErrLocked
// (and the time) without the password being looked at; a wrong password
// or an unknown user is ErrUnauthenticated, after the same work.
func (s *Service) Login(ctx context.Context, name, password, remote string) (string, pki.Session, error) {
	now := s.clock.Now()
	u, err := s.userInAnyCase(ctx, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "", pki.Session{}, s.unknownLogin(ctx, name, password, remote, now)
	case err != nil:
		return "", pki.Session{}, err
	}
	// From here on the user is named as stored: "OP1" logs in as op1.
	name = u.Name
	if now.Before(u.LockedUntil) { // known locked: no transaction for it
		return "", pki.Session{}, s.refuseLocked(ctx, "user "+u.Name, remote, u.LockedUntil, now)
	}
	// The attempt counts as a failure before the password is looked at:
	// attempts sent at once each take their own turn at the count, so no
	// more than LockAfter of them reach the password check before the lock.
	att, err := s.st.ClaimLoginAttempt(ctx, name, now, now.Add(failureMemory), lockFor)
	switch {
	case errors.Is(err, store.ErrNotFound): // removed since it was read
		return "", pki.Session{}, s.unknownLogin(ctx, name, password, remote, now)
	case err != nil:
		return "", pki.Session{}, err
	case att.Refused:
		return "", pki.Session{}, s.refuseLocked(ctx, "user "+u.Name, remote, att.LockedUntil, now)
	}
	ok := false
	if len(password) > credential.MaxPasswordLen {
		s.passwords.Burn(ctx, password)
	} else {
		ok, err = s.passwords.Verify(ctx, u.PasswordHash, password)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		// Gave up waiting for a password check: busy, not a wrong password
		// (though counted as one, as every attempt is until it succeeds).
		return "", pki.Session{}, fmt.Errorf("%w: waiting for a password check: %w", pki.ErrUnavailable, ctxErr)
	}
	if err != nil {
		return "", pki.Session{}, err
	}
	if !ok {
		ev := pki.AuditEvent{Time: now, Type: pki.EventLoginFailed, Actor: failedLoginActor(remote), Outcome: "failure",
			Reason: "bad password", Detail: "user " + name}
		if !att.LockedUntil.IsZero() {
			ev.Type, ev.Reason = pki.EventLoginLocked, "bad password; locked until "+att.LockedUntil.UTC().Format(time.RFC3339)
		}
		if err := s.st.AppendAudit(ctx, ev); err != nil {
			return "", pki.Session{}, err
		}
		return "", pki.Session{}, ErrUnauthenticated
	}
	ev := pki.AuditEvent{Time: now, Type: pki.EventLoginSucceeded, Actor: "console:" + name, Outcome: "success",
		Detail: "from " + remote}
	if _, err := s.st.RecordLogin(ctx, name, true, now, time.Time{}, ev); err != nil {
		return "", pki.Session{}, err
	}
	secret, err := credential.RandomToken(32)
	if err != nil {
		return "", pki.Session{}, err
	}
	ses := pki.Session{Hash: hashSecret(secret), User: name, CreatedAt: now, ExpiresAt: now.Add(SessionTTL), RemoteAddr: remote}
	if err := s.st.CreateSession(ctx, ses); err != nil {
		return "", pki.Session{}, err
	}
	return secret, ses, nil
}

// NoteTokenInClear records that secret, sent from remote to the plain HTTP
// listener (which refused the request), crossed the network in clear: when
// it is a token of this store's, revoked or expired ones too (one in use
// says a client was never given its replacement), the log says so at WARN
// and the audit trail records token.sent_in_clear, naming the token, so
// that an operator knows which one to revoke, or which client to mend. At
// most once a minute per token, whatever the addresses (a token is one
// secret, and a flood from many addresses must not fill the trail), each
// record counting the requests since the last; a secret that is no token
// is not recorded (anyone can send one). The token is not revoked here:
// the client is told to, and only it knows whether it was a test.
func (s *Service) NoteTokenInClear(ctx context.Context, secret, remote string) {
	if !strings.HasPrefix(secret, TokenPrefix) || len(secret) > 256 {
		return
	}
	t, err := s.st.TokenByHash(ctx, hashSecret(secret))
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("looking up an API token sent over plain HTTP", "remote", remote, "err", err)
		}
		return
	}
	now := s.clock.Now()
	state, advice := "live", "revoke it unless this was a test"
	switch {
	case !t.RevokedAt.IsZero():
		state, advice = "revoked", "it is revoked already: a client still sends it, over plain HTTP"
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		state, advice = "expired", "it has expired: a client still sends it, over plain HTTP"
	}
	// Counted per state, so that a record says truly in which state its
	// sends came (a burst while live, then one after the revocation, are
	// two records, not one calling all of them revoked).
	key := "clear\x00" + t.ID + "\x00" + state
	n, ok := s.refused.note(key, now)
	if !ok {
		s.holdClear(key, heldClear{token: *t, state: state, advice: advice, remote: remote})
		return
	}
	s.recordClear(ctx, heldClear{token: *t, state: state, advice: advice, remote: remote}, n, false, now)
}

// recordClear logs and audits n sends of h's token in clear; held: they
// are the ones the minute held back, recorded as it ended.
func (s *Service) recordClear(ctx context.Context, h heldClear, n int, held bool, now time.Time) {
	t := h.token
	// The count lives in this process: after a restart it starts again.
	count := fmt.Sprintf("%s since this server's last such record of it, or its start", pki.Plural(n, "request"))
	if held {
		count = fmt.Sprintf("%s in the minute after this server's last such record of it, held back until that minute ended (the last from %s)",
			pki.Plural(n, "more request"), h.remote)
	}
	s.log.Warn("an API token was sent over plain HTTP and crossed the network in clear: "+h.advice,
		"token", t.ID, "name", t.Name, "state", h.state, "remote", h.remote, "requests", n)
	ev := pki.AuditEvent{Time: now, Type: pki.EventTokenSentInClear, Actor: "http:" + h.remote, Outcome: "failure",
		Reason: "sent over plain HTTP, refused: " + count + "; " + h.advice,
		Detail: fmt.Sprintf("token %s (%s), %s", t.ID, t.Name, h.state)}
	if err := s.st.AppendAudit(ctx, ev); err != nil {
		s.log.Error("auditing an API token sent over plain HTTP", "token", t.ID, "remote", h.remote, "err", err)
	}
}

// holdClear notes a send in clear that the once-a-minute limit held back
// under key, for FlushHeldClear to record once its minute has ended.
func (s *Service) holdClear(key string, h heldClear) {
	s.clearMu.Lock()
	defer s.clearMu.Unlock()
	s.heldClear[key] = &h
}

// FlushHeldClear records the sends of tokens in clear that the
// once-a-minute limit held back and whose minute has ended, rather than
// leave them to the next send's record, which may never come: a client
// that stops after a burst would leave all but its first request
// unrecorded. Those a later send's record counted already are not
// recorded again. serve runs it every few seconds.
func (s *Service) FlushHeldClear(ctx context.Context) {
	type due struct {
		h heldClear
		n int
	}
	var records []due
	now := s.clock.Now()
	s.clearMu.Lock()
	for key, h := range s.heldClear {
		n, left := s.refused.takeLeftOut(key, now)
		if left > 0 {
			continue
		}
		delete(s.heldClear, key)
		if n > 0 {
			records = append(records, due{*h, n})
		}
	}
	s.clearMu.Unlock()
	for _, r := range records {
		s.recordClear(ctx, r.h, r.n, true, now)
	}
}

// failedLoginActor is the actor of a failed login: the address it came
// from, as enrollments name theirs ("scep:ADDR"). Not "console:ADDR", the
// form of a person: a user may be named 192.0.2.1.
func failedLoginActor(remote string) string { return "login:" + remote }

// unknownLogin answers a login as a name that is no user's as a user's
// wrong password is answered: after the same work, and locked out after as
// many failures in a row, for as long. Otherwise the lockout alone would
// tell anyone which names are users (five wrong passwords, then 429 for a
// user, 401 for ever for anything else). Such a name's failures are
// counted in the store, as a user's are, so that a restart or another node
// behind the load balancer answers it as it would a user; under a keyed
// hash of the name, never the name, and forgotten a day after the last.
// Each attempt writes at most one row, none while locked, and the rate
// limiter bounds the attempts per address.
func (s *Service) unknownLogin(ctx context.Context, name, password, remote string, now time.Time) error {
	storeKey, err := s.storeLoginNameKey(ctx)
	if err != nil {
		return err
	}
	key := keyedHash(storeKey, "", name)
	// Counted before the work, as a user's attempt is (ClaimLoginAttempt):
	// attempts at once must not all read one count.
	att, err := s.st.ClaimUnknownLoginAttempt(ctx, key, now, now.Add(failureMemory), lockFor)
	if err != nil {
		return err
	}
	if att.Refused {
		return s.refuseLocked(ctx, unknownNameTag(storeKey, name), remote, att.LockedUntil, now)
	}
	s.passwords.Burn(ctx, password)
	ev := pki.AuditEvent{Time: now, Type: pki.EventLoginFailed, Actor: failedLoginActor(remote),
		Outcome: "failure", Reason: "unknown user", Detail: unknownNameTag(storeKey, name)}
	if !att.LockedUntil.IsZero() {
		// The failure that locks is login.locked, as a user's is: an
		// auditor searching for lockouts finds both.
		ev.Type, ev.Reason = pki.EventLoginLocked, "unknown user; locked until "+att.LockedUntil.UTC().Format(time.RFC3339)
	}
	_ = s.st.AppendAudit(ctx, ev)
	return ErrUnauthenticated
}

// refuseLocked answers a login refused during a lockout, its password not
// looked at, and records it: in the log and the audit trail (login.failed,
// by the address, as a wrong password is), at most once a minute for one
// user (who, as an audit detail names them) and address, each record
// counting the attempts refused since the last one. A flood of attempts at
// a locked user so writes a row a minute, not one each; those refused
// after a pair's last record are counted by its next, if any.
func (s *Service) refuseLocked(ctx context.Context, who, remote string, until, now time.Time) error {
	if n, ok := s.refused.note(who+"\x00"+remote, now); ok {
		end := until.UTC().Format(time.RFC3339)
		s.log.Warn("console login refused unchecked: locked out", "who", who, "remote", remote, "until", end, "attempts", n)
		ev := pki.AuditEvent{Time: now, Type: pki.EventLoginFailed, Actor: failedLoginActor(remote), Outcome: "failure",
			Reason: fmt.Sprintf("locked out until %s, not checked: %s from this address since the last such record", end, pki.Plural(n, "attempt")),
			Detail: who}
		if err := s.st.AppendAudit(ctx, ev); err != nil {
			// The lock holds either way; the answer must not wait on it.
			s.log.Error("auditing a login refused during a lockout", "who", who, "remote", remote, "err", err)
		}
	}
	return &LockedError{Until: until}
}

// refusalLog counts logins refused during a lockout by user and address,
// so that they are recorded at most once per refusalEvery each: a
// loglimit.Window per pair, admitting one line a period.
type refusalLog struct {
	mu   sync.Mutex
	seen map[string]*loglimit.Window
}

const (
	// refusalEvery is how often a user and address's refused logins are
	// recorded at most.
	refusalEvery = time.Minute
	// maxRefusalKeys bounds the pairs remembered; beyond it, pairs share
	// one record a minute (the rate limiter bounds the addresses anyway).
	maxRefusalKeys = 4096
)

func newRefusalLog() *refusalLog { return &refusalLog{seen: map[string]*loglimit.Window{}} }

// note counts a refused attempt under key and says whether to record it
// now, with how many attempts the record covers (this one included).
func (l *refusalLog) note(key string, now time.Time) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.seen[key]
	if !ok && len(l.seen) >= maxRefusalKeys {
		for k, old := range l.seen {
			if old.Over(now, refusalEvery) {
				delete(l.seen, k)
			}
		}
		if len(l.seen) >= maxRefusalKeys {
			key = "" // the overflow's shared pair
			w, ok = l.seen[key]
		}
	}
	if !ok {
		w = &loglimit.Window{}
		l.seen[key] = w
	}
	pass, dropped, _ := w.Admit(now, 1, refusalEvery)
	if !pass {
		return 0, false
	}
	return dropped + 1, true
}

// takeLeftOut takes the attempts under key that no record has counted,
// once key's minute has ended (loglimit.Window.TakeLeftOut).
func (l *refusalLog) takeLeftOut(key string, now time.Time) (int, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.seen[key]
	if !ok {
		return 0, 0
	}
	return w.TakeLeftOut(now, refusalEvery)
}

// storeLoginNameKey is the store's key of unknown login names
// (LoginNameKey), made by the first node that needs it and then the same
// for every node and every run, read once.
func (s *Service) storeLoginNameKey(ctx context.Context) ([]byte, error) {
	key, err := s.loginNameKey.Get(ctx, s.st)
	if err != nil {
		return nil, fmt.Errorf("the key of unknown login names: %w", err)
	}
	return key, nil
}

// keyedHash is HMAC-SHA-256 under key of purpose and name, kept apart by
// a NUL. The store counts an unknown name's failures under the hash of
// purpose "" (as since migration 0019), so that its table holds no name
// (often a password typed into the wrong field) and every node counts a
// name under the same hash.
func keyedHash(key []byte, purpose, name string) []byte {
	m := hmac.New(sha256.New, key)
	if purpose != "" {
		m.Write([]byte(purpose))
		m.Write([]byte{0})
	}
	m.Write([]byte(name))
	return m.Sum(nil)
}

// unknownNameTag stands for a name that is no user's in the audit trail
// (credential.NameTag, under the store's key apart from the failure
// count's): such a name is often a password typed into the wrong field.
func unknownNameTag(key []byte, name string) string {
	return "name (tag " + credential.NameTag(key, name) + ")"
}

// failureMemory is how long after its last counted failure the store keeps
// a count, a user's as an unknown name's (the same, so that the lockout
// tells them apart after no pause either): longer than any lock (LockMax).
const failureMemory = 24 * time.Hour

// SessionPrincipal returns the principal of a session cookie's secret.
func (s *Service) SessionPrincipal(ctx context.Context, secret string) (Principal, error) {
	if secret == "" || len(secret) > 256 {
		return Principal{}, ErrUnauthenticated
	}
	ses, err := s.st.Session(ctx, hashSecret(secret), s.clock.Now())
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrUnauthenticated
	}
	if err != nil {
		return Principal{}, err
	}
	u, err := s.st.User(ctx, ses.User)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrUnauthenticated
	}
	if err != nil {
		return Principal{}, err
	}
	return Principal{Name: u.Name, Role: u.Role, Kind: "user"}, nil
}

// Logout ends a session.
func (s *Service) Logout(ctx context.Context, secret string) error {
	if secret == "" {
		return nil
	}
	now, hash := s.clock.Now(), hashSecret(secret)
	ses, err := s.st.Session(ctx, hash, now)
	if errors.Is(err, store.ErrNotFound) {
		// Ended or expired: nothing to audit, the row (if any) to drop.
		if err := s.st.DeleteSession(ctx, hash); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.st.DeleteSession(ctx, hash); err != nil {
		return err
	}
	return s.st.AppendAudit(ctx, pki.AuditEvent{Time: now, Type: pki.EventLogout, Actor: "console:" + ses.User, Outcome: "success"})
}

// CSRFToken is the anti-forgery token of a session: derived from its
// secret, so it needs no storage, and useless without the cookie.
func CSRFToken(sessionSecret string) string {
	m := hmac.New(sha256.New, []byte(sessionSecret))
	m.Write([]byte("scepter csrf v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CheckCSRF compares a form's token with the session's in constant time.
func CheckCSRF(sessionSecret, presented string) bool {
	want := CSRFToken(sessionSecret)
	return sessionSecret != "" && subtle.ConstantTimeCompare([]byte(want), []byte(presented)) == 1
}
