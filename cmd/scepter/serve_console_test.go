package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/store"
)

// usersUnseen is a store whose ListUsers finds none: a node that looked
// before another node, started with it on a new store, made its admin.
type usersUnseen struct{ store.Store }

func (usersUnseen) ListUsers(context.Context) ([]pki.User, error) { return nil, nil }

// Nodes started together on a new store: the one whose insert of the
// admin user loses starts as one that found a user (r44: it exited with
// "create the admin user: conflict"), and leaves no password file of a
// user that does not exist.
func TestAdminUserMadeByAnotherNodeMeanwhile(t *testing.T) {
	ctx := context.Background()
	p := fixture.New(t, fixture.Options{})
	if _, err := auth.New(p.Store, p.Clock, p.Log).AddUser(ctx, "admin", pki.RoleAdmin, "the other node's password", auth.CLI("system")); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	f := &serveFlags{storeFlags: storeFlags{dataDir: p.Dir}}
	adm := admin.New(p.Store, p.Clock, log, nil, "default")
	w, err := f.newWebAdmin(ctx, usersUnseen{p.Store}, adm, p.Service, p.Authority, nil, p.Clock, log)
	if err != nil {
		t.Fatalf("newWebAdmin: %v", err)
	}
	if w.password != "" || w.noUser {
		t.Errorf("password %q, noUser %v; want neither (another node made the user)", w.password, w.noUser)
	}
	if _, err := os.Stat(filepath.Join(p.Dir, adminPasswordFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the password file of a user that was not made is there (%v)", err)
	}
	if !strings.Contains(logs.String(), "another node made the console's admin user") {
		t.Errorf("nothing logged:\n%s", logs.String())
	}
}
