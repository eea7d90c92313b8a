package ops_test

import (
	"context"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/ops"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/store"
)

func newOps(t *testing.T) (*fixture.PKI, *ops.Ops) {
	t.Helper()
	p := fixture.New(t, fixture.Options{})
	profiles, def := p.Service.Profiles()
	au := auth.New(p.Store, p.Clock, p.Log)
	return p, ops.New(ops.Config{Store: p.Store, Admin: admin.New(p.Store, p.Clock, p.Log, profiles, def), Enroll: p.Service, Auth: au,
		Authority: p.Authority, Clock: p.Clock, Log: p.Log})
}

// TestChallengeWithinTheCallersLifetime: a caller whose credential expires
// (a token with an expiry, through the API or anything else over ops)
// mints no challenge that outlives it; a lasting one (a console user, a
// token without an expiry, the CLI) mints any the range allows.
func TestChallengeWithinTheCallersLifetime(t *testing.T) {
	ctx := context.Background()
	p, o := newOps(t)
	short := auth.Principal{Name: "short", Role: pki.RoleOperator, Kind: "token", TokenID: "0123456789abcdef", ExpiresAt: p.Clock.Now().Add(time.Hour)}
	person := auth.Principal{Name: "op", Role: pki.RoleOperator, Kind: "user"}
	for _, tc := range []struct {
		who  auth.Principal
		ttl  time.Duration
		want pki.Code
	}{
		{short, 700 * time.Hour, pki.EBadRequest},
		{short, time.Hour + time.Minute, pki.EBadRequest},
		{short, time.Hour, ""},
		{short, 30 * time.Minute, ""},
		{person, 700 * time.Hour, ""},
		{auth.CLI("cli:test"), 700 * time.Hour, ""},
	} {
		_, ch, err := o.NewChallenge(ctx, tc.who, admin.ChallengeSpec{TTL: tc.ttl})
		if (err == nil) != (tc.want == "") || (err != nil && pki.ErrorCode(err) != tc.want) {
			t.Errorf("%s mints a challenge for %s: %v, want code %q", tc.who.Actor(), tc.ttl, err, tc.want)
		}
		if err == nil && !tc.who.ExpiresAt.IsZero() && ch.ExpiresAt.After(tc.who.ExpiresAt) {
			t.Errorf("%s minted a challenge expiring at %s, after itself", tc.who.Actor(), ch.ExpiresAt)
		}
	}
}

// TestRemoveUserInAnyCase: a user is removed by their name in any case, as
// names are unique regardless of case; removing yourself stays refused
// however you spell it, and the audit trail names the user as stored.
func TestRemoveUserInAnyCase(t *testing.T) {
	ctx := context.Background()
	p, o := newOps(t)
	au := o.Auth()
	root := auth.CLI("cli:test")
	for _, name := range []string{"alice", "bob"} {
		if _, err := au.AddUser(ctx, name, pki.RoleAdmin, "correct horse battery staple", root); err != nil {
			t.Fatal(err)
		}
	}
	alice := auth.Principal{Name: "alice", Role: pki.RoleAdmin, Kind: "user"}
	for _, tc := range []struct {
		name string
		want pki.Code
	}{
		{"ALICE", pki.EConflict}, // herself
		{"alice", pki.EConflict},
		{"BOB", ""},
		{"bob", pki.ENotFound}, // gone
		{"nobody", pki.ENotFound},
	} {
		err := o.RemoveUser(ctx, alice, tc.name)
		if (err == nil) != (tc.want == "") || (err != nil && pki.ErrorCode(err) != tc.want) {
			t.Errorf("alice removes %q: %v, want code %q", tc.name, err, tc.want)
		}
	}
	users, err := p.Store.ListUsers(ctx)
	if err != nil || len(users) != 1 || users[0].Name != "alice" {
		t.Errorf("users left: %+v, %v; want alice", users, err)
	}
	evs, err := p.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventUserRemoved})
	if err != nil || len(evs) != 1 || evs[0].Detail != "user bob" {
		t.Errorf("user.removed events %+v, %v; want one for user bob", evs, err)
	}
}
