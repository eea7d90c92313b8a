package admin

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// An EST user's password follows the console's rule: UTF-8, as the server
// asks Basic credentials to be (RFC 7617 section 2.1), and no control
// characters. A Latin-1 "café" would be stored as bytes no conforming
// client ever sends.
func TestESTUserPasswordText(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p := pki.DefaultProfile()
	svc := New(st, pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)), nil, map[string]pki.Profile{p.Name: p}, p.Name)
	for i, tc := range []struct {
		password string
		ok       bool
	}{
		{"a long device password", true},
		{"un café très long, merci", true},
		{"un caf\xe9 tr\xe8s long, merci", false}, // Latin-1
		{"a long device\x00password", false},
		{"a long device\tpassword", false},
		{"a long device password\r", false},
		{"a long device\x7fpassword", false},
		{"a long device\u0085password", false}, // C1 control
	} {
		_, err := svc.AddESTUser(ctx, "device-"+string(rune('a'+i)), tc.password, "", "cli:test")
		if tc.ok && err != nil {
			t.Errorf("password %q: %v", tc.password, err)
		}
		if !tc.ok && pki.ErrorCode(err) != pki.EBadRequest {
			t.Errorf("password %q: %v, want a bad request", tc.password, err)
		}
	}
}

// TestESTUserNamedInAnyCase: names that differ only in case cannot both
// exist; adding one says which is in the way, as stored, and removing
// takes the name in any case, the audit trail naming the user as stored.
func TestESTUserNamedInAnyCase(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p := pki.DefaultProfile()
	svc := New(st, pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)), nil, map[string]pki.Profile{p.Name: p}, p.Name)
	for _, name := range []string{"fleet", "other"} {
		if _, err := svc.AddESTUser(ctx, name, "a long device password", "", "cli:test"); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ name, want string }{
		{"FLEET", `EST user "fleet" exists, whose name differs from "FLEET" only in case`},
		{"fleet", `EST user "fleet" exists; remove it first`},
	} {
		_, err := svc.AddESTUser(ctx, tc.name, "another long password", "", "cli:test")
		if pki.ErrorCode(err) != pki.EConflict || !strings.Contains(pki.ErrorMessage(err), tc.want) {
			t.Errorf("adding %q: %v, want a conflict saying %q", tc.name, err, tc.want)
		}
	}
	if removed, err := svc.RemoveESTUser(ctx, "FLEET", "cli:test"); err != nil || removed != "fleet" {
		t.Fatalf("removing FLEET: %q, %v; want fleet removed", removed, err)
	}
	if _, err := svc.RemoveESTUser(ctx, "Fleet", "cli:test"); pki.ErrorCode(err) != pki.ENotFound {
		t.Errorf("removing it again: %v, want not found", err)
	}
	users, err := st.ListESTUsers(ctx)
	if err != nil || len(users) != 1 || users[0].Name != "other" {
		t.Errorf("EST users left: %+v, %v; want other", users, err)
	}
	evs, err := st.ListAudit(ctx, store.AuditFilter{Type: pki.EventESTUserRemoved})
	if err != nil || len(evs) != 1 || evs[0].Detail != "user fleet" {
		t.Errorf("est_user.removed events %+v, %v; want one for user fleet", evs, err)
	}
}
