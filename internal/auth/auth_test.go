package auth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/store"
)

func newAuth(t *testing.T) (*auth.Service, *fixture.PKI) {
	t.Helper()
	p := fixture.New(t, fixture.Options{})
	return auth.New(p.Store, p.Clock, p.Log), p
}

var root = auth.CLI("cli:root")

func TestRoles(t *testing.T) {
	for _, c := range []struct {
		have, need pki.Role
		ok         bool
	}{
		{pki.RoleAdmin, pki.RoleAdmin, true}, {pki.RoleAdmin, pki.RoleAuditor, true}, {pki.RoleOperator, pki.RoleAuditor, true},
		{pki.RoleOperator, pki.RoleAdmin, false}, {pki.RoleAuditor, pki.RoleOperator, false}, {"", pki.RoleAuditor, false},
		{"root", pki.RoleAuditor, false}, {pki.RoleAdmin, "", false},
	} {
		err := auth.Require(auth.Principal{Name: "x", Role: c.have, Kind: "token"}, c.need)
		if (err == nil) != c.ok || (err != nil && pki.ErrorCode(err) != pki.EForbidden) {
			t.Errorf("%q needs %q: %v", c.have, c.need, err)
		}
	}
}

func TestTokens(t *testing.T) {
	a, p := newAuth(t)
	ctx := context.Background()
	secret, tok, err := a.NewToken(ctx, "ci", pki.RoleOperator, time.Hour, root)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, auth.TokenPrefix) || len(secret) < 40 {
		t.Errorf("secret %q", secret)
	}
	got, err := a.AuthenticateToken(ctx, secret)
	if err != nil || got.Name != "ci" || got.Role != pki.RoleOperator || got.Kind != "token" || got.Actor() != "api:ci" {
		t.Errorf("AuthenticateToken = %+v, %v", got, err)
	}
	for _, bad := range []string{"", "scepter_", secret + "x", strings.TrimPrefix(secret, auth.TokenPrefix), strings.Repeat("a", 300)} {
		if _, err := a.AuthenticateToken(ctx, bad); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("token %q: %v", bad, err)
		}
	}
	// The secret is not stored.
	list, _ := p.Store.ListTokens(ctx)
	for _, l := range list {
		if strings.Contains(string(l.Hash), secret) {
			t.Error("the secret is stored")
		}
	}
	// Expired, then revoked.
	p.Clock.Advance(time.Hour)
	if _, err := a.AuthenticateToken(ctx, secret); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Errorf("an expired token: %v", err)
	}
	secret2, _, err := a.NewToken(ctx, "ci2", pki.RoleAuditor, 0, root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.RevokeToken(ctx, "ci2", root); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AuthenticateToken(ctx, secret2); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Errorf("a revoked token: %v", err)
	}
	// Only an admin manages tokens.
	op := auth.Principal{Name: "op", Role: pki.RoleOperator, Kind: "token"}
	if _, _, err := a.NewToken(ctx, "x", pki.RoleAdmin, 0, op); pki.ErrorCode(err) != pki.EForbidden {
		t.Errorf("an operator made a token: %v", err)
	}
	if _, err := a.RevokeToken(ctx, tok.ID, op); pki.ErrorCode(err) != pki.EForbidden {
		t.Errorf("an operator revoked a token: %v", err)
	}
	for _, bad := range []struct {
		name string
		role pki.Role
		ttl  time.Duration
	}{{"", pki.RoleAdmin, 0}, {"a b", pki.RoleAdmin, 0}, {"x", "superuser", 0}, {"x", pki.RoleAdmin, -time.Hour}} {
		if _, _, err := a.NewToken(ctx, bad.name, bad.role, bad.ttl, root); pki.ErrorCode(err) != pki.EBadRequest {
			t.Errorf("NewToken(%q, %q, %v): %v", bad.name, bad.role, bad.ttl, err)
		}
	}
	// A lifetime out of range says what the range is.
	for _, ttl := range []time.Duration{-time.Hour, time.Nanosecond, 59 * time.Second, 3661 * 24 * time.Hour} {
		_, _, err := a.NewToken(ctx, "x", pki.RoleAdmin, ttl, root)
		if pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(err.Error(), "out of range: want from 1m up to 10 years (3660d)") {
			t.Errorf("NewToken with lifetime %s: %v; want the range named", ttl, err)
		}
	}
}

// Failed logins lock a user with a doubling backoff; a success clears it;
// an unknown user looks like a wrong password.
func TestLoginLockout(t *testing.T) {
	a, p := newAuth(t)
	ctx := context.Background()
	if _, err := a.AddUser(ctx, "alice", pki.RoleOperator, "correct horse battery staple", root); err != nil {
		t.Fatal(err)
	}
	secret, ses, err := a.Login(ctx, "alice", "correct horse battery staple", "192.0.2.1")
	if err != nil || ses.User != "alice" || !ses.ExpiresAt.Equal(p.Clock.Now().Add(auth.SessionTTL)) {
		t.Fatalf("login: %+v, %v", ses, err)
	}
	pr, err := a.SessionPrincipal(ctx, secret)
	if err != nil || pr.Name != "alice" || pr.Role != pki.RoleOperator || pr.Actor() != "console:alice" {
		t.Errorf("session principal %+v, %v", pr, err)
	}
	if !auth.CheckCSRF(secret, auth.CSRFToken(secret)) || auth.CheckCSRF(secret, auth.CSRFToken("other")) || auth.CheckCSRF("", auth.CSRFToken("")) {
		t.Error("CSRF tokens do not bind to the session")
	}
	if _, _, err := a.Login(ctx, "nobody", "whatever", "192.0.2.1"); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Errorf("unknown user: %v", err)
	}
	for i := 1; i < auth.LockAfter; i++ {
		if _, _, err := a.Login(ctx, "alice", "wrong", "192.0.2.1"); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	// The 5th failure locks for LockBase; meanwhile even the right
	// password is refused.
	if _, _, err := a.Login(ctx, "alice", "wrong", "192.0.2.1"); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatal(err)
	}
	if _, _, err := a.Login(ctx, "alice", "correct horse battery staple", "192.0.2.1"); !errors.Is(err, auth.ErrLocked) {
		t.Fatalf("locked user logged in: %v", err)
	}
	u, _ := p.Store.User(ctx, "alice")
	if !u.LockedUntil.Equal(p.Clock.Now().Add(auth.LockBase)) {
		t.Errorf("locked until %v, want %v", u.LockedUntil, p.Clock.Now().Add(auth.LockBase))
	}
	// After the lock, one more failure locks twice as long.
	p.Clock.Advance(auth.LockBase)
	a.Login(ctx, "alice", "wrong", "192.0.2.1")
	u, _ = p.Store.User(ctx, "alice")
	if !u.LockedUntil.Equal(p.Clock.Now().Add(2 * auth.LockBase)) {
		t.Errorf("second lock until %v, want %v", u.LockedUntil, p.Clock.Now().Add(2*auth.LockBase))
	}
	p.Clock.Advance(2 * auth.LockBase)
	if _, _, err := a.Login(ctx, "alice", "correct horse battery staple", "192.0.2.1"); err != nil {
		t.Fatalf("after the lock: %v", err)
	}
	if u, _ := p.Store.User(ctx, "alice"); u.FailedLogins != 0 || !u.LockedUntil.IsZero() {
		t.Errorf("a success left %d failures, lock %v", u.FailedLogins, u.LockedUntil)
	}
	evs, _ := p.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventLoginLocked})
	if len(evs) != 2 {
		t.Errorf("%d login.locked events, want 2", len(evs))
	}
	// A failure names the address it came from, in a form no person's
	// actor takes (console:NAME, and a user may be named 192.0.2.1).
	for _, ev := range evs {
		if ev.Actor != "login:192.0.2.1" {
			t.Errorf("a failed login's actor is %q, want login:192.0.2.1", ev.Actor)
		}
	}
	// Sessions expire, and end at logout.
	if err := a.Logout(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SessionPrincipal(ctx, secret); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Errorf("after logout: %v", err)
	}
	// Logins and logouts are audited, with who and from where.
	if evs, _ := p.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventLoginSucceeded}); len(evs) != 2 ||
		evs[0].Actor != "console:alice" || evs[0].Detail != "from 192.0.2.1" {
		t.Errorf("login.succeeded events: %+v, want 2 by console:alice", evs)
	}
	if evs, _ := p.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventLogout}); len(evs) != 1 || evs[0].Actor != "console:alice" {
		t.Errorf("logout events: %+v, want 1 by console:alice", evs)
	}
	if err := a.Logout(ctx, secret); err != nil {
		t.Errorf("logging out again: %v", err)
	}
	if evs, _ := p.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventLogout}); len(evs) != 1 {
		t.Errorf("%d logout events after logging out twice, want 1", len(evs))
	}
	s2, _, _ := a.Login(ctx, "alice", "correct horse battery staple", "192.0.2.1")
	p.Clock.Advance(auth.SessionTTL)
	if _, err := a.SessionPrincipal(ctx, s2); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Errorf("an expired session: %v", err)
	}
}

// Wrong passwords sent all at once reach the password check no more often
// than one at a time would: each attempt counts before its check, so the
// lock holds however the attempts are timed. The same for a name that is
// no user's.
func TestLoginLockoutConcurrent(t *testing.T) {
	a, p := newAuth(t)
	ctx := context.Background()
	if _, err := a.AddUser(ctx, "alice", pki.RoleOperator, "correct horse battery staple", root); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"alice", "ghost"} {
		const attempts = 40
		errs := make(chan error, attempts)
		var wg sync.WaitGroup
		for range attempts {
			wg.Go(func() {
				_, _, err := a.Login(ctx, name, "wrong", "192.0.2.1")
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		checked, locked := 0, 0
		for err := range errs {
			switch {
			case errors.Is(err, auth.ErrUnauthenticated):
				checked++
			case errors.Is(err, auth.ErrLocked):
				locked++
			default:
				t.Errorf("%s: %v", name, err)
			}
		}
		if checked != auth.LockAfter || locked != attempts-auth.LockAfter {
			t.Errorf("%s: %d wrong passwords answered, %d refused as locked; want %d and %d", name, checked, locked, auth.LockAfter, attempts-auth.LockAfter)
		}
	}
	if u, _ := p.Store.User(ctx, "alice"); u.FailedLogins != auth.LockAfter || !u.LockedUntil.Equal(p.Clock.Now().Add(auth.LockBase)) {
		t.Errorf("alice: %d failures, locked until %v; want %d, %v", u.FailedLogins, u.LockedUntil, auth.LockAfter, p.Clock.Now().Add(auth.LockBase))
	}
	// The right password on the attempt that locks still logs in, and
	// clears the lock it set.
	if _, err := a.AddUser(ctx, "bob", pki.RoleOperator, "correct horse battery staple", root); err != nil {
		t.Fatal(err)
	}
	for range auth.LockAfter - 1 {
		a.Login(ctx, "bob", "wrong", "192.0.2.1")
	}
	if _, _, err := a.Login(ctx, "bob", "correct horse battery staple", "192.0.2.1"); err != nil {
		t.Fatalf("the right password on the fifth attempt: %v", err)
	}
	if u, _ := p.Store.User(ctx, "bob"); u.FailedLogins != 0 || !u.LockedUntil.IsZero() {
		t.Errorf("bob after a success: %d failures, locked until %v", u.FailedLogins, u.LockedUntil)
	}
}

// A name that is no user's is answered as a user with a wrong password:
// the same errors in the same order, locked out as long, so the lockout
// does not tell which names are users.
func TestUnknownNameLocksLikeAUser(t *testing.T) {
	a, p := newAuth(t)
	ctx := context.Background()
	if _, err := a.AddUser(ctx, "carol", pki.RoleOperator, "correct horse battery staple", root); err != nil {
		t.Fatal(err)
	}
	answers := func(name string) []string {
		var out []string
		for range auth.LockAfter + 2 {
			_, _, err := a.Login(ctx, name, "wrong password", "192.0.2.7")
			var locked *auth.LockedError
			if errors.As(err, &locked) {
				out = append(out, "locked for "+locked.Until.Sub(p.Clock.Now()).String())
			} else {
				out = append(out, fmt.Sprint(err))
			}
		}
		return out
	}
	user, ghost := answers("carol"), answers("ghost")
	if !slices.Equal(user, ghost) {
		t.Errorf("a user's wrong passwords: %q\na name that is no user's: %q", user, ghost)
	}
	// And audited alike: the failure that locks is login.locked for both,
	// so a search for lockouts finds a name that is no user's too.
	evs, err := p.Store.ListAudit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var userTypes, ghostTypes []string
	for _, ev := range slices.Backward(evs) {
		switch {
		case ev.Type != pki.EventLoginFailed && ev.Type != pki.EventLoginLocked:
		case ev.Detail == "user carol":
			userTypes = append(userTypes, ev.Type)
		default:
			ghostTypes = append(ghostTypes, ev.Type)
		}
	}
	if !slices.Equal(userTypes, ghostTypes) || !slices.Contains(ghostTypes, pki.EventLoginLocked) {
		t.Errorf("a user's failures audited as %q\na name that is no user's as %q; want the same, with %s", userTypes, ghostTypes, pki.EventLoginLocked)
	}
	if want := "locked for " + auth.LockBase.String(); user[len(user)-1] != want {
		t.Errorf("the last answer %q, want %q", user[len(user)-1], want)
	}
	// The lock ends, and the next failure locks twice as long, as a user's.
	p.Clock.Advance(auth.LockBase)
	if _, _, err := a.Login(ctx, "ghost", "wrong password", "192.0.2.7"); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Errorf("after the lock: %v", err)
	}
	var locked *auth.LockedError
	if _, _, err := a.Login(ctx, "ghost", "wrong password", "192.0.2.7"); !errors.As(err, &locked) ||
		!locked.Until.Equal(p.Clock.Now().Add(2*auth.LockBase)) {
		t.Errorf("the next failure: %v, want locked for %v", err, 2*auth.LockBase)
	}
}

func TestUsers(t *testing.T) {
	a, _ := newAuth(t)
	ctx := context.Background()
	for _, bad := range []struct {
		name, password string
		role           pki.Role
	}{{"", "long enough password", pki.RoleAdmin}, {"bob", "short", pki.RoleAdmin}, {"bob", "long enough password", "god"},
		{"bob", "ééééééé", pki.RoleAdmin},                 // 14 bytes, 7 characters
		{"bob", "long enough\x00password", pki.RoleAdmin}, // a NUL
		{"bob", "long enough\xffpassword", pki.RoleAdmin}, // not UTF-8
	} {
		if _, err := a.AddUser(ctx, bad.name, bad.role, bad.password, root); pki.ErrorCode(err) != pki.EBadRequest {
			t.Errorf("AddUser(%q, %q): %v", bad.name, bad.role, err)
		}
	}
	if _, err := a.AddUser(ctx, "bob", pki.RoleAdmin, "long enough password", root); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddUser(ctx, "bob", pki.RoleAdmin, "long enough password", root); pki.ErrorCode(err) != pki.EConflict {
		t.Errorf("a second bob: %v", err)
	}
	if _, err := a.AddUser(ctx, "BOB", pki.RoleAdmin, "long enough password", root); pki.ErrorCode(err) != pki.EConflict {
		t.Errorf("BOB beside bob: %v", err)
	}
	bob := auth.Principal{Name: "bob", Role: pki.RoleAdmin, Kind: "user"}
	if err := a.RemoveUser(ctx, "bob", bob); pki.ErrorCode(err) != pki.EConflict {
		t.Errorf("bob removed himself: %v", err)
	}
	if err := a.RemoveUser(ctx, "nobody", root); pki.ErrorCode(err) != pki.ENotFound {
		t.Errorf("removing nobody: %v", err)
	}
	if err := a.RemoveUser(ctx, "bob", root); err != nil {
		t.Error(err)
	}
}

// Only "" and "0" ask for a token that never expires; any other zero is a
// mistake (a script's "${DAYS}d" with DAYS=0), not an immortal token.
func TestParseTokenTTL(t *testing.T) {
	const (
		badForm  = "want a duration such as 90d or 720h"
		badRange = "out of range: want from 1m up to 10 years (3660d)"
		zero     = "say 0 for a token that never expires"
	)
	for _, tc := range []struct {
		in      string
		want    time.Duration
		wantErr string // a part of the error; "" for none
	}{
		{"", 0, ""},
		{"0", 0, ""},
		{"90d", 90 * 24 * time.Hour, ""},
		{"720h", 720 * time.Hour, ""},
		{"1m", time.Minute, ""},
		{"3660d", 3660 * 24 * time.Hour, ""},
		{"87840h", 87840 * time.Hour, ""},
		{"0s", 0, zero},
		{"0d", 0, zero},
		{"0h0m", 0, zero},
		{"-0s", 0, zero},
		{"00d", 0, zero},
		// Well formed but out of range: the error names the range, not
		// the form, and quotes the lifetime as written, not as Go prints
		// a duration ("87864h0m0s").
		{"-5h", 0, `"-5h" is out of range`},
		{"-1h", 0, `"-1h" is out of range`},
		{"59s", 0, `"59s" is out of range`},
		{"3661d", 0, `"3661d" is out of range`},
		{"87841h", 0, `"87841h" is out of range`},
		{"-1d", 0, badRange},
		{"99999d", 0, badRange},
		{"100000d", 0, badRange},
		{"99999999999999999999d", 0, badRange},
		{"3000000h", 0, badRange},
		{"forever", 0, badForm},
		{"d", 0, badForm},
		{"1e9h", 0, badForm},
		{"5 d", 0, badForm},
		{"+1d", 0, badForm},
		{"+1h", 0, badForm},
		{" 1h", 0, badForm},
	} {
		got, err := auth.ParseTokenTTL(tc.in)
		ok := tc.wantErr == ""
		if ok != (err == nil) || got != tc.want || (err != nil && (pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(err.Error(), tc.wantErr))) {
			t.Errorf("ParseTokenTTL(%q) = %s, %v; want %s and an error saying %q", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

// A name that is no user's is often a password typed into the user-name
// field: the audit trail, which every auditor reads, must not hold it, yet
// repeated attempts of one name must still read as one.
func TestUnknownLoginHidesTheName(t *testing.T) {
	a, p := newAuth(t)
	ctx := context.Background()
	if _, err := a.AddUser(ctx, "alice", pki.RoleOperator, "correct horse battery staple", root); err != nil {
		t.Fatal(err)
	}
	// The second "operator password 1" comes after a restart (or to
	// another node): a new service on the same store.
	restarted := auth.New(p.Store, p.Clock, p.Log)
	for i, name := range []string{"operator password 1", "operator password 1", "Tr0ub4dor&3"} {
		svc := a
		if i == 1 {
			svc = restarted
		}
		if _, _, err := svc.Login(ctx, name, "whatever", "192.0.2.1"); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Fatalf("login as %q: %v", name, err)
		}
	}
	a.Login(ctx, "alice", "wrong", "192.0.2.1")
	evs, err := p.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventLoginFailed})
	if err != nil {
		t.Fatal(err)
	}
	var unknown []string
	for _, ev := range evs {
		for _, secret := range []string{"password 1", "Tr0ub4dor"} {
			if strings.Contains(ev.Detail+ev.Reason+ev.Actor, secret) {
				t.Errorf("audit event %+v shows the name typed", ev)
			}
		}
		if ev.Reason == "unknown user" {
			unknown = append(unknown, ev.Detail)
		} else if ev.Detail != "user alice" {
			t.Errorf("a known user's failure reads %q, want %q", ev.Detail, "user alice")
		}
	}
	// Two names typed, one of them twice (across a restart): two tags.
	slices.Sort(unknown)
	if len(unknown) != 3 || len(slices.Compact(slices.Clone(unknown))) != 2 {
		t.Errorf("unknown-user details %q: want 3, with a tag for each name, the same after a restart", unknown)
	}
	for _, d := range unknown {
		if !unknownTagRE.MatchString(d) {
			t.Errorf("unknown-user detail %q, want \"name (tag …)\" with 16 hex digits (the reason already says \"unknown user\")", d)
		}
	}
}

// unknownTagRE is an unknown name's audit detail: a 64-bit tag, so that
// among many names typed few read alike.
var unknownTagRE = regexp.MustCompile(`^name \(tag [0-9a-f]{16}\)$`)

// TestTokenNameIsNeverAnID: revocation takes an ID or a name, the ID
// first, so a token named like another's ID would make a retried
// revocation of that ID revoke a second token.
func TestTokenNameIsNeverAnID(t *testing.T) {
	a, _ := newAuth(t)
	ctx := context.Background()
	_, first, err := a.NewToken(ctx, "ci", pki.RoleAuditor, time.Hour, root)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{first.ID, strings.ToLower(first.ID), "0123456789ABCDEF"} {
		if _, _, err := a.NewToken(ctx, name, pki.RoleAuditor, time.Hour, root); pki.ErrorCode(err) != pki.EBadRequest {
			t.Errorf("token named %q: %v, want a bad-request refusal", name, err)
		}
	}
	for _, name := range []string{"0123456789ABCDEFG", "0123456789ABCDE", "deploy-0123456789abcdef"} {
		if _, _, err := a.NewToken(ctx, name, pki.RoleAuditor, time.Hour, root); err != nil {
			t.Errorf("token named %q: %v", name, err)
		}
	}
}

// The lockout of a name that is no user's holds, as a user's does, after a
// restart and on another node behind the load balancer: both count in the
// one store, so neither tells a user from a made-up name.
func TestUnknownNameLockHoldsOnEveryNode(t *testing.T) {
	nodeA, p := newAuth(t)
	ctx := context.Background()
	if _, err := nodeA.AddUser(ctx, "carol", pki.RoleOperator, "correct horse battery staple", root); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"carol", "ghost"} {
		for range auth.LockAfter + 1 {
			nodeA.Login(ctx, name, "wrong password", "192.0.2.7")
		}
	}
	nodeB := auth.New(p.Store, p.Clock, p.Log) // a restart, or another node
	p.Clock.Advance(time.Second)
	for _, node := range []struct {
		name string
		svc  *auth.Service
	}{{"the same node", nodeA}, {"another node", nodeB}} {
		var answers []string
		for _, name := range []string{"carol", "ghost"} {
			_, _, err := node.svc.Login(ctx, name, "wrong password", "192.0.2.7")
			var locked *auth.LockedError
			if !errors.As(err, &locked) {
				t.Errorf("%s, %s: %v, want locked", node.name, name, err)
				continue
			}
			answers = append(answers, locked.Until.String())
		}
		if len(answers) == 2 && answers[0] != answers[1] {
			t.Errorf("%s: the user locked until %s, the made-up name until %s", node.name, answers[0], answers[1])
		}
	}
}

// Failures a day old are forgotten for a user as for a made-up name: were
// only the made-up name's forgotten, a failure after a quiet day would
// lock the user alone.
func TestFailuresForgottenAlikeAfterADay(t *testing.T) {
	a, p := newAuth(t)
	ctx := context.Background()
	if _, err := a.AddUser(ctx, "carol", pki.RoleOperator, "correct horse battery staple", root); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"carol", "ghost"} {
		for range auth.LockAfter - 1 {
			a.Login(ctx, name, "wrong password", "192.0.2.7")
		}
	}
	p.Clock.Advance(24 * time.Hour)
	for _, name := range []string{"carol", "ghost"} {
		for i := range 2 {
			if _, _, err := a.Login(ctx, name, "wrong password", "192.0.2.7"); !errors.Is(err, auth.ErrUnauthenticated) || errors.Is(err, auth.ErrLocked) {
				t.Errorf("%s, failure %d after a day: %v, want a wrong password, not a lock", name, i+1, err)
			}
		}
	}
}

// A token that expires creates no token that outlives it (one without an
// expiry, or a later one), and no console user: a stolen short-lived admin
// token buys no lasting way in. Within its life it may, and a token without an expiry, a
// person and the CLI are not bounded.
func TestTokenCreatesNoneThatOutlivesIt(t *testing.T) {
	a, _ := newAuth(t)
	ctx := context.Background()
	secret, _, err := a.NewToken(ctx, "short", pki.RoleAdmin, time.Hour, root)
	if err != nil {
		t.Fatal(err)
	}
	short, err := a.AuthenticateToken(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, ttl := range []time.Duration{0, 2 * time.Hour, time.Hour + time.Minute} {
		if _, _, err := a.NewToken(ctx, fmt.Sprintf("child-%d", ttl/time.Minute), pki.RoleAdmin, ttl, short); pki.ErrorCode(err) != pki.EBadRequest ||
			!strings.Contains(err.Error(), "may not outlive it") {
			t.Errorf("a 1h token made one with ttl %v: %v", ttl, err)
		}
	}
	if _, _, err := a.NewToken(ctx, "within", pki.RoleOperator, 30*time.Minute, short); err != nil {
		t.Errorf("a token within its creator's life: %v", err)
	}
	// Nor a console user, who does not expire.
	if _, err := a.AddUser(ctx, "mallory", pki.RoleAdmin, "a long mallory password 123", short); pki.ErrorCode(err) != pki.EForbidden ||
		!strings.Contains(err.Error(), "cannot create a console user") {
		t.Errorf("a 1h token added a console user: %v", err)
	}
	if err := auth.RequireLasting(short, "an EST user"); pki.ErrorCode(err) != pki.EForbidden {
		t.Errorf("RequireLasting of a 1h token: %v", err)
	}
	lasting, _, err := a.NewToken(ctx, "lasting", pki.RoleAdmin, 0, root)
	if err != nil {
		t.Fatal(err)
	}
	forever, err := a.AuthenticateToken(ctx, lasting)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.NewToken(ctx, "child-of-lasting", pki.RoleAdmin, 0, forever); err != nil {
		t.Errorf("a token without an expiry: %v", err)
	}
	if _, err := a.AddUser(ctx, "alice2", pki.RoleAuditor, "a long alice password 123", forever); err != nil {
		t.Errorf("a token without an expiry adding a user: %v", err)
	}
}

// TestRefusedWhileLockedIsRecorded: a login refused unchecked during a
// lockout, the right password included, is logged and audited
// (login.failed, "not checked"), at most once a minute for one user and
// address, each record counting the attempts since the last; a name that
// is no user's alike, by its tag.
func TestRefusedWhileLockedIsRecorded(t *testing.T) {
	p := fixture.New(t, fixture.Options{})
	var logged bytes.Buffer
	a := auth.New(p.Store, p.Clock, slog.New(slog.NewTextHandler(&logged, nil)))
	ctx := context.Background()
	if _, err := a.AddUser(ctx, "alice", pki.RoleOperator, "correct horse battery staple", root); err != nil {
		t.Fatal(err)
	}
	refusedRecords := func() []pki.AuditEvent {
		t.Helper()
		evs, err := p.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventLoginFailed})
		if err != nil {
			t.Fatal(err)
		}
		var out []pki.AuditEvent
		for _, ev := range evs {
			if strings.Contains(ev.Reason, "not checked") {
				out = append(out, ev)
			}
		}
		return out
	}
	for _, name := range []string{"alice", "ghost"} {
		for range auth.LockAfter {
			a.Login(ctx, name, "wrong", "192.0.2.1")
		}
	}
	if got := refusedRecords(); len(got) != 0 {
		t.Fatalf("records of refusals before any: %+v", got)
	}
	// The lock lasts LockBase (a minute): ten refusals in its first half
	// minute, the right password among them, then one more after it from
	// the same address, and one from another.
	step := auth.LockBase / 2 / 10
	for i := range 10 {
		pw := "wrong"
		if i == 3 {
			pw = "correct horse battery staple"
		}
		for _, name := range []string{"alice", "ghost"} {
			if _, _, err := a.Login(ctx, name, pw, "192.0.2.1"); !errors.Is(err, auth.ErrLocked) {
				t.Fatalf("%s during the lock: %v", name, err)
			}
		}
		p.Clock.Advance(step)
	}
	want := []struct{ detail, reason string }{
		{"user alice", "1 attempt from"},
		{"name (tag ", "1 attempt from"},
	}
	got := refusedRecords()
	if len(got) != len(want) {
		t.Fatalf("%d records of 10 refusals each for two names in half a minute, want 2: %+v", len(got), got)
	}
	slices.Reverse(got) // oldest first
	for i, w := range want {
		if !strings.HasPrefix(got[i].Detail, w.detail) || !strings.Contains(got[i].Reason, w.reason) || got[i].Actor != "login:192.0.2.1" {
			t.Errorf("record %d: %+v, want detail %q…, reason with %q, actor login:192.0.2.1", i, got[i], w.detail, w.reason)
		}
	}
	// A minute after the first record, the next refusal is recorded with
	// the nine held back; another address has a record of its own at once.
	p.Clock.Advance(auth.LockBase / 2)
	// The lock has ended: lock again (one more failure, two minutes).
	a.Login(ctx, "alice", "wrong", "192.0.2.1")
	a.Login(ctx, "alice", "wrong", "192.0.2.1")
	a.Login(ctx, "alice", "wrong", "192.0.2.9")
	got = refusedRecords()
	if len(got) != 4 || !strings.Contains(got[1].Reason, "10 attempts from") || got[0].Actor != "login:192.0.2.9" ||
		!strings.Contains(got[0].Reason, "1 attempt from") {
		t.Errorf("records after a minute: %+v; want one counting 10, then one from 192.0.2.9", got)
	}
	if n := strings.Count(logged.String(), "login refused unchecked"); n != 4 {
		t.Errorf("%d log lines of refusals, want 4 (as many as records):\n%s", n, logged.String())
	}
	if strings.Contains(logged.String(), "ghost") {
		t.Errorf("the log names a name that is no user's:\n%s", logged.String())
	}
}

// A token sent in clear is recorded once a minute per token whatever the
// addresses it comes from (a flood from many must not fill the trail),
// and a revoked one is recorded as still in use, not as one to revoke.
func TestTokenInClearRecordedOncePerToken(t *testing.T) {
	a, p := newAuth(t)
	ctx := context.Background()
	live, _, err := a.NewToken(ctx, "ci", pki.RoleOperator, 0, root)
	if err != nil {
		t.Fatal(err)
	}
	old, tok, err := a.NewToken(ctx, "old", pki.RoleOperator, 0, root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.RevokeToken(ctx, tok.ID, auth.CLI("cli:test")); err != nil {
		t.Fatal(err)
	}
	for i := range 120 {
		remote := fmt.Sprintf("127.0.1.%d", i+2)
		a.NoteTokenInClear(ctx, live, remote)
		a.NoteTokenInClear(ctx, old, remote)
		a.NoteTokenInClear(ctx, "scepter_not-a-token", remote)
	}
	evs, err := p.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventTokenSentInClear, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Fatalf("%d token.sent_in_clear records for 120 addresses, want one per token: %+v", len(evs), evs)
	}
	for _, ev := range evs {
		switch {
		case strings.Contains(ev.Detail, "(ci), live"):
			if !strings.Contains(ev.Reason, "revoke it unless this was a test") {
				t.Errorf("live token: %q", ev.Reason)
			}
		case strings.Contains(ev.Detail, "(old), revoked"):
			if !strings.Contains(ev.Reason, "it is revoked already: a client still sends it") || strings.Contains(ev.Reason, "revoke it") {
				t.Errorf("revoked token: %q", ev.Reason)
			}
		default:
			t.Errorf("unexpected record %+v", ev)
		}
	}
	p.Clock.Advance(time.Minute)
	a.NoteTokenInClear(ctx, live, "127.0.2.1")
	evs, err = p.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventTokenSentInClear, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 || !strings.Contains(evs[0].Reason, "120 requests since this server's last such record of it") {
		t.Fatalf("a minute later: %+v, want a record counting the 119 held back and this one", evs[0])
	}
}

// The sends of a token in clear that the once-a-minute record held back
// are recorded once their minute has ended (FlushHeldClear, which serve
// runs), with the state they were sent in, not left to a next send that
// may never come or may find the token revoked (r95 D1).
func TestTokenInClearHeldBackIsRecordedAfterItsMinute(t *testing.T) {
	a, p := newAuth(t)
	ctx := context.Background()
	live, tok, err := a.NewToken(ctx, "ci", pki.RoleOperator, 0, root)
	if err != nil {
		t.Fatal(err)
	}
	records := func() []pki.AuditEvent {
		t.Helper()
		evs, err := p.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventTokenSentInClear, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	for i := range 5 {
		a.NoteTokenInClear(ctx, live, fmt.Sprintf("127.0.3.%d", i+1))
	}
	a.FlushHeldClear(ctx) // the minute has not ended: nothing yet
	if evs := records(); len(evs) != 1 || !strings.Contains(evs[0].Reason, "1 request since") {
		t.Fatalf("after a burst of 5: %+v, want the first one recorded", evs)
	}
	p.Clock.Advance(time.Minute)
	a.FlushHeldClear(ctx)
	evs := records()
	if len(evs) != 2 || !strings.Contains(evs[0].Reason, "4 more requests in the minute after") || !strings.Contains(evs[0].Reason, "the last from 127.0.3.5") ||
		!strings.Contains(evs[0].Detail, "(ci), live") || evs[0].Actor != "http:127.0.3.5" {
		t.Fatalf("after the minute: %+v, want the 4 held back recorded as live", evs)
	}
	a.FlushHeldClear(ctx) // recorded once
	if n := len(records()); n != 2 {
		t.Errorf("%d records after a second flush, want 2", n)
	}

	// Revoked, then sent again within the minute: a record of its own,
	// at once, saying revoked; the live sends are not called revoked.
	if _, err := a.RevokeToken(ctx, tok.ID, auth.CLI("cli:test")); err != nil {
		t.Fatal(err)
	}
	a.NoteTokenInClear(ctx, live, "127.0.3.9")
	evs = records()
	if len(evs) != 3 || !strings.Contains(evs[0].Detail, "(ci), revoked") || !strings.Contains(evs[0].Reason, "1 request since") {
		t.Fatalf("a revoked send: %+v, want a record of its own, of 1 request", evs[0])
	}
}

// r137 D1: the lifetime a token that expires may still give is said as a
// lifetime is typed, and one with under a minute left is not told "at
// most 0s", which nothing takes.
func TestRequireWithinSaysALifetimeThatIsTaken(t *testing.T) {
	now := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, tc := range []struct {
		left time.Duration
		want string
	}{
		{30 * time.Second, "in less than a minute, and a challenge it creates may not outlive it: create the challenge with the CLI, or with a token that lives longer"},
		{89*time.Minute + 59*time.Second, "give a lifetime of at most 1h29m, or"},
		{2*time.Hour + 30*time.Second, "give a lifetime of at most 2h, or"},
		{59*time.Minute + 5*time.Second, "give a lifetime of at most 59m, or"},
	} {
		p := auth.Principal{Name: "t", Kind: "token", ExpiresAt: now.Add(tc.left)}
		err := auth.RequireWithin(p, now, now.Add(3*time.Hour), "challenge")
		if pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v left: %v, want %q", tc.left, err, tc.want)
		}
		if strings.Contains(err.Error(), "0s") {
			t.Errorf("%v left: %v says a lifetime in Go's form", tc.left, err)
		}
	}
}
