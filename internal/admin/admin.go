// Package admin holds the operations people perform on the platform, as
// opposed to the decisions on devices' requests (package enroll): minting
// and listing one-time challenges, listing and rejecting held requests,
// managing EST users. The CLI, the NDES page and (later) the web API call
// it; it needs the store and the profiles, never the CA. Approving a held
// request issues a certificate, so that one lives in enroll.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/credential"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/printable"
	"github.com/scepter/scepter/internal/store"
)

// Service is the admin service.
type Service struct {
	store          store.Store
	clock          pki.Clock
	log            *slog.Logger
	profiles       map[string]pki.Profile
	defaultProfile string
}

// New builds the service; profiles are the configured profiles, against
// which challenges and users are bound, and defaultProfile the one a
// challenge minted without a profile is bound to.
func New(st store.Store, clock pki.Clock, log *slog.Logger, profiles map[string]pki.Profile, defaultProfile string) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if defaultProfile == "" {
		defaultProfile = pki.DefaultProfile().Name
	}
	return &Service{store: st, clock: clock, log: log, profiles: profiles, defaultProfile: defaultProfile}
}

// MaxChallengeTTL bounds one-time challenges: they are bearer secrets.
const MaxChallengeTTL = 30 * 24 * time.Hour

// MinChallengeTTL is the shortest lifetime a challenge can have: anything
// shorter ("1ns", "500ms") is expired before anyone could use it.
const MinChallengeTTL = time.Second

// ChallengeTTLRange is the lifetime a challenge may have, as help and
// refusals say it ("from 1s to 30d"), so that a value out of it is told
// its bound wherever it is typed.
func ChallengeTTLRange() string {
	return fmt.Sprintf("from %s to %dd", MinChallengeTTL, MaxChallengeTTL/(24*time.Hour))
}

// CheckChallengeTTL refuses a challenge lifetime out of
// [MinChallengeTTL, MaxChallengeTTL], naming the bounds: checked before
// any other rule that bounds it (a token's own expiry), whose advice would
// otherwise name a lifetime this refuses.
func CheckChallengeTTL(ttl time.Duration) error {
	if ttl < MinChallengeTTL || ttl > MaxChallengeTTL {
		return pki.Errorf(pki.EBadRequest, "challenge lifetime must be between %s and %s (30 days)", MinChallengeTTL, strings.TrimSuffix(MaxChallengeTTL.String(), "0m0s"))
	}
	return nil
}

func (s *Service) checkProfile(profile string) error {
	if profile == "" {
		return nil
	}
	if _, ok := s.profiles[profile]; !ok {
		// Said the same to an API caller and to the CLI: the list shows
		// either what the server has, or (a CLI run without the server's
		// config file) that only the built-in default is known.
		names := slices.Sorted(maps.Keys(s.profiles))
		return pki.Errorf(pki.EBadRequest, "unknown profile %q; the profiles configured are %s (any other comes from the config file)",
			profile, strings.Join(names, ", "))
	}
	return nil
}

// TakesOneTimeChallenges refuses a profile whose challenge mode never
// accepts a one-time challenge (static, or a webhook's): one minted for it
// could never be used.
func TakesOneTimeChallenges(p pki.Profile) error {
	if !enroll.TakesOneTimeChallenges(p.ChallengeMode) {
		return pki.Errorf(pki.EBadRequest, "profile %q takes no one-time challenges (challenge = %q): one minted for it could never be used", p.Name, p.ChallengeMode)
	}
	return nil
}

// ChallengeSpec describes a one-time challenge to mint.
type ChallengeSpec struct {
	TTL time.Duration
	// Profile is the one profile it is valid for ("": the default profile).
	Profile string
	// Subject (RFC 4514, e.g. "CN=device-1,O=Acme"), DNSNames and Emails,
	// when set, bind it to the identity it may be used for.
	Subject  string
	DNSNames []string
	Emails   []string
	Actor    string
}

// NewChallenge creates a one-time challenge valid for ttl at profile (""
// for the default one) and returns the secret (NDES's password page mints
// them this way).
func (s *Service) NewChallenge(ctx context.Context, ttl time.Duration, profile, actor string) (string, pki.Challenge, error) {
	return s.NewChallengeFor(ctx, ChallengeSpec{TTL: ttl, Profile: profile, Actor: actor})
}

// MaxBoundNames bounds the DNS names and emails a challenge is bound to,
// for the CLI, the API and the console alike.
const MaxBoundNames = 64

// NewChallengeFor creates a one-time challenge bound to a profile and,
// optionally, to an identity, and returns the secret. Only its hash is
// stored. Presented for another profile or identity it is refused and, after
// a few such uses, locked.
func (s *Service) NewChallengeFor(ctx context.Context, spec ChallengeSpec) (string, pki.Challenge, error) {
	ttl, profile, actor := spec.TTL, spec.Profile, spec.Actor
	if err := CheckChallengeTTL(ttl); err != nil {
		return "", pki.Challenge{}, err
	}
	if profile == "" {
		profile = s.defaultProfile
	}
	if err := s.checkProfile(profile); err != nil {
		return "", pki.Challenge{}, err
	}
	if err := TakesOneTimeChallenges(s.profiles[profile]); err != nil {
		return "", pki.Challenge{}, err
	}
	var subject []byte
	var subjectEmails []string
	if spec.Subject != "" {
		var err error
		if subject, err = csr.ParseDN(spec.Subject); err != nil {
			return "", pki.Challenge{}, pki.Wrap(pki.EBadRequest, err, fmt.Sprintf("subject %s: %v", quoteDN(spec.Subject), err))
		}
		// One the issuer would refuse would make a challenge no
		// enrollment can ever use.
		if subjectEmails, err = ca.CheckSubject(subject); err != nil {
			return "", pki.Challenge{}, pki.Wrap(pki.EBadRequest, err, fmt.Sprintf("subject %s: %s: no enrollment could use this challenge", quoteDN(spec.Subject), pki.ErrorMessage(err)))
		}
	}
	if n := len(spec.DNSNames) + len(spec.Emails); n > MaxBoundNames {
		return "", pki.Challenge{}, pki.Errorf(pki.EBadRequest, "%d names to bind: at most %d", n, MaxBoundNames)
	}
	var sans []string
	for _, d := range spec.DNSNames {
		// A name the issuer would refuse would make a challenge nobody
		// can ever use.
		if err := ca.CheckDNSName(d); err != nil {
			return "", pki.Challenge{}, err
		}
		sans = append(sans, "dns:"+strings.ToLower(d))
	}
	for _, e := range spec.Emails {
		if err := ca.CheckEmail(e); err != nil {
			return "", pki.Challenge{}, pki.Wrap(pki.EBadRequest, err, fmt.Sprintf("email %q: %s: no enrollment could use this challenge", e, pki.ErrorMessage(err)))
		}
		sans = append(sans, "email:"+e)
	}
	// A subject's emailAddress must also be a SAN, and the names a
	// challenge binds are all an enrollment with it may carry.
	for _, e := range subjectEmails {
		if !slices.ContainsFunc(spec.Emails, func(b string) bool { return csr.EmailKey(b) == csr.EmailKey(e) }) {
			return "", pki.Challenge{}, pki.Errorf(pki.EBadRequest,
				"the subject's emailAddress %q must also be bound as an email (the CA puts it in the subject alternative names too): no enrollment could use this challenge", e)
		}
	}
	// The profile's subject and name rules, as the enrollment applies
	// them: a binding they refuse would refuse every enrollment with it.
	if subject != nil || len(sans) > 0 {
		if err := enroll.CheckBoundNames(s.profiles[profile], subject, sans); err != nil {
			if pki.ErrorCode(err) != pki.EBadRequest {
				return "", pki.Challenge{}, fmt.Errorf("admin: check the binding against profile %q: %w", profile, err)
			}
			return "", pki.Challenge{}, pki.Wrap(pki.EBadRequest, err, fmt.Sprintf("profile %q refuses this binding: %s: no enrollment could use this challenge", profile, pki.ErrorMessage(err)))
		}
	}
	secret, err := credential.RandomHex(16)
	if err != nil {
		return "", pki.Challenge{}, err
	}
	id, err := credential.RandomToken(10)
	if err != nil {
		return "", pki.Challenge{}, err
	}
	now := s.clock.Now()
	ch := pki.Challenge{ID: id, Hash: credential.HashChallenge(secret), Profile: profile, BoundSubject: subject, BoundSANs: sans,
		CreatedAt: now, ExpiresAt: now.Add(ttl), CreatedBy: actor}
	detail := fmt.Sprintf("challenge %s expires %s", id, ch.ExpiresAt.Format(time.RFC3339))
	if spec.Subject != "" || len(sans) > 0 {
		// Quoted as written (quoteDN): %q doubled each RFC 4514 backslash,
		// and the audit trail's JSON escapes it once more.
		detail += fmt.Sprintf(", bound to subject %s and names %v", quoteDN(spec.Subject), sans)
	}
	ev := pki.AuditEvent{Time: now, Type: pki.EventChallengeCreated, Actor: actor, Profile: profile, Outcome: "success", Detail: detail}
	if err := s.store.CreateChallenge(ctx, ch, ev); err != nil {
		return "", pki.Challenge{}, fmt.Errorf("admin: store challenge: %w", err)
	}
	return secret, ch, nil
}

// Challenges lists one-time challenges, newest first, a page at a time
// (never a secret: only hashes are stored), and the next page's cursor.
func (s *Service) Challenges(ctx context.Context, f store.ChallengeFilter) ([]pki.Challenge, string, error) {
	return s.store.ListChallenges(ctx, f)
}

// Requests lists held requests, newest first, a page at a time, and the
// next page's cursor. Each has its status now (f.Now unless set): one
// still pending when its retention ran out is expired, and listed with
// the expired ones, not the pending.
func (s *Service) Requests(ctx context.Context, f store.RequestFilter) ([]pki.EnrollmentRequest, string, error) {
	if f.Now.IsZero() {
		f.Now = s.clock.Now()
	}
	return s.store.ListRequests(ctx, f)
}

// wholePage is the page size of the listings of everything.
const wholePage = 1000

// AllChallenges lists every one-time challenge, newest first, reading the
// store a page at a time.
func (s *Service) AllChallenges(ctx context.Context) ([]pki.Challenge, error) {
	f := store.ChallengeFilter{Limit: wholePage}
	return readAll(func() ([]pki.Challenge, string, error) { return s.store.ListChallenges(ctx, f) },
		func(next string) { f.Cursor = next })
}

// AllRequests lists every held request f selects (its Limit and Cursor
// aside), newest first, reading the store a page at a time, each with its
// status now, as Requests.
func (s *Service) AllRequests(ctx context.Context, f store.RequestFilter) ([]pki.EnrollmentRequest, error) {
	f.Limit, f.Cursor = wholePage, ""
	if f.Now.IsZero() {
		// One time for every page: a request does not move between them.
		f.Now = s.clock.Now()
	}
	return readAll(func() ([]pki.EnrollmentRequest, string, error) { return s.store.ListRequests(ctx, f) },
		func(next string) { f.Cursor = next })
}

// readAll calls page until it gives no next cursor, after telling next
// the cursor of each page before.
func readAll[T any](page func() ([]T, string, error), next func(cursor string)) ([]T, error) {
	var all []T
	for {
		p, cursor, err := page()
		if err != nil {
			return nil, err
		}
		all = append(all, p...)
		if cursor == "" {
			return all, nil
		}
		next(cursor)
	}
}

// Reject refuses a held request with a reason the client will see. Of two
// decisions on one request (a reject and an approve, on any node), one wins.
func (s *Service) Reject(ctx context.Context, id, reason, by string) error {
	if reason == "" {
		reason = "rejected by an operator"
	}
	// The device is sent the reason as it is: every path (API, console,
	// CLI) is checked here.
	if err := enroll.CheckRejectReason(reason); err != nil {
		return err
	}
	now := s.clock.Now()
	r, err := s.store.Request(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return pki.Errorf(pki.ENotFound, "no request %q", pki.Clip(id, 80))
	}
	if err != nil {
		return err
	}
	if r.Status != pki.RequestPending {
		// Named as an approval names it: the caller learns what became of it.
		return pki.Errorf(pki.EConflict, "request %s is %s, not pending", id, r.Status)
	}
	if r.StatusAt(now) == pki.RequestExpired {
		// As an approval refuses it: the device asking after it is told
		// it expired without a decision, and to enroll again.
		return pki.Errorf(pki.EConflict, "request %s expired at %s", id, r.ExpiresAt.UTC().Format(time.RFC3339))
	}
	ev := pki.AuditEvent{Time: now, Type: pki.EventRequestRejected, Actor: by, Profile: r.Profile, Subject: r.Subject,
		TransactionID: r.TransactionID, Outcome: "success", Reason: reason, Detail: "request " + id}
	err = s.store.RejectRequest(ctx, id, reason, by, now, ev)
	if errors.Is(err, store.ErrConflict) {
		// Decided since it was read, by another approver or node.
		if cur, rerr := s.store.Request(ctx, id); rerr == nil && cur.Status != pki.RequestPending {
			return pki.Errorf(pki.EConflict, "request %s is %s, not pending", id, cur.Status)
		}
		return pki.Errorf(pki.EConflict, "request %s is not pending", id)
	}
	return err
}

// userName is what an EST user may be called: it travels in HTTP Basic, so
// no ':' and nothing a log or a terminal would misread.
var userName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$`)

// MinPasswordLen is the shortest EST user password accepted, in
// characters, as a console user's (auth.MinPasswordLen): it is a
// long-lived secret that devices keep.
const MinPasswordLen = 12

// AddESTUser creates an EST user with a password, optionally bound to one
// profile. The password is stored as an argon2id hash only.
func (s *Service) AddESTUser(ctx context.Context, name, password, profile, actor string) (pki.ESTUser, error) {
	if !userName.MatchString(name) {
		return pki.ESTUser{}, pki.Errorf(pki.EBadRequest, "user name %q: use 1 to 128 ASCII letters (a-z, A-Z), digits and . _ @ -, beginning with a letter or digit", name)
	}
	if utf8.RuneCountInString(password) < MinPasswordLen || len(password) > credential.MaxPasswordLen {
		// The console's rule and words: characters are what a person
		// counts, bytes what the server bounds.
		return pki.ESTUser{}, pki.Errorf(pki.EBadRequest, "the password must have at least %d characters and at most %d bytes (in UTF-8)", MinPasswordLen, credential.MaxPasswordLen)
	}
	if !utf8.ValidString(password) || strings.ContainsFunc(password, unicode.IsControl) {
		// The rule of console passwords. The server asks for UTF-8 Basic
		// credentials (charset="UTF-8", RFC 7617 section 2.1): a password
		// stored as other bytes (a Latin-1 file) never matches what a
		// conforming client sends, and a NUL or a control character is more
		// likely a mistake than a password.
		return pki.ESTUser{}, pki.Errorf(pki.EBadRequest, "the password holds a control character or is not UTF-8")
	}
	if !credential.HasVisible(password) {
		return pki.ESTUser{}, pki.Errorf(pki.EBadRequest, "%s", credential.InvisiblePassword)
	}
	if err := s.checkProfile(profile); err != nil {
		return pki.ESTUser{}, err
	}
	hash, err := credential.HashPassword(password)
	if err != nil {
		return pki.ESTUser{}, err
	}
	now := s.clock.Now()
	u := pki.ESTUser{Name: name, PasswordHash: hash, Profile: profile, CreatedAt: now, CreatedBy: actor}
	ev := pki.AuditEvent{Time: now, Type: pki.EventESTUserAdded, Actor: actor, Profile: profile, Outcome: "success", Detail: "user " + name}
	err = s.store.CreateESTUser(ctx, u, ev)
	if errors.Is(err, store.ErrConflict) {
		// Named as stored, so that removing it by the name given here
		// removes the one in the way.
		stored, lerr := s.storedESTUserName(ctx, name)
		if lerr != nil {
			return pki.ESTUser{}, lerr
		}
		if stored != name {
			return pki.ESTUser{}, pki.Errorf(pki.EConflict,
				"EST user %q exists, whose name differs from %q only in case; remove it first to add this one", stored, name)
		}
		return pki.ESTUser{}, pki.Errorf(pki.EConflict, "EST user %q exists; remove it first to change its password", name)
	}
	if err != nil {
		return pki.ESTUser{}, err
	}
	return u, nil
}

// ESTUsers lists the EST users (never their password hashes' secrets:
// callers show names, profiles and dates).
func (s *Service) ESTUsers(ctx context.Context) ([]pki.ESTUser, error) {
	return s.store.ListESTUsers(ctx)
}

// RemoveESTUser deletes an EST user, named in any case: names that differ
// only in case cannot both exist, so it is the one the store's conflict
// named. The audit trail names it as stored, and so does removed.
func (s *Service) RemoveESTUser(ctx context.Context, name, actor string) (removed string, _ error) {
	name, err := s.storedESTUserName(ctx, name)
	if err != nil {
		return "", err
	}
	now := s.clock.Now()
	ev := pki.AuditEvent{Time: now, Type: pki.EventESTUserRemoved, Actor: actor, Outcome: "success", Detail: "user " + name}
	err = s.store.DeleteESTUser(ctx, name, now, ev)
	if errors.Is(err, store.ErrNotFound) {
		return "", pki.Errorf(pki.ENotFound, "no EST user %q", pki.Clip(name, 80))
	}
	if err != nil {
		return "", err
	}
	return name, nil
}

// storedESTUserName is the name of the EST user called name in any case,
// as stored: name itself when that user exists, or none does.
func (s *Service) storedESTUserName(ctx context.Context, name string) (string, error) {
	users, err := s.store.ListESTUsers(ctx)
	if err != nil {
		return "", fmt.Errorf("admin: looking up EST user %q: %w", name, err)
	}
	stored := name
	for _, u := range users {
		if u.Name == name {
			return name, nil
		}
		if strings.EqualFold(u.Name, name) {
			stored = u.Name
		}
	}
	return stored, nil
}

// DeleteChallenge removes a one-time challenge (used or not) by ID.
func (s *Service) DeleteChallenge(ctx context.Context, id, actor string) error {
	ev := pki.AuditEvent{Time: s.clock.Now(), Type: pki.EventChallengeDeleted, Actor: actor, Outcome: "success", Detail: "challenge " + id}
	err := s.store.DeleteChallenge(ctx, id, ev)
	if errors.Is(err, store.ErrNotFound) {
		return pki.Errorf(pki.ENotFound, "no challenge %q", pki.Clip(id, 80))
	}
	return err
}

// quoteDN quotes a subject as it was written: Go's %q would double each
// backslash of its RFC 4514 escapes, in a refusal that may be about one.
// Characters that are not printable still come out escaped.
func quoteDN(s string) string {
	return `"` + printable.String(s) + `"`
}
