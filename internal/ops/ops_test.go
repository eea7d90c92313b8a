package ops_test

import (
	"context"
	"testing"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/ops"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/store"
)

// TestRemoveUserInAnyCase: a user is removed by their name in any case, as
// names are unique regardless of case; removing yourself stays refused
// however you spell it, and the audit trail names the user as stored.
func TestRemoveUserInAnyCase(t *testing.T) {
	ctx := context.Background()
	p := fixture.New(t, fixture.Options{})
	profiles, def := p.Service.Profiles()
	au := auth.New(p.Store, p.Clock, p.Log)
	o := ops.New(ops.Config{Store: p.Store, Admin: admin.New(p.Store, p.Clock, p.Log, profiles, def), Enroll: p.Service, Auth: au,
		Authority: p.Authority, Clock: p.Clock, Log: p.Log})
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
