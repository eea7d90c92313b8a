package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// Names are unique regardless of case, so "admin user remove ALICE"
// removes alice: the audit trail names her as stored, not as typed.
func TestAdminUserRemoveAuditsTheStoredName(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	passwordFile := filepath.Join(t.TempDir(), "password")
	writeTestFile(t, passwordFile, "correct horse battery\n")
	if out, err := runCLI("admin", "user", "add", "alice", "--role", "operator", "--password-file", passwordFile, "--data-dir", dir); err != nil {
		t.Fatalf("admin user add: %v\n%s", err, out)
	}
	if out, err := runCLI("admin", "user", "remove", "ALICE", "--data-dir", dir); err != nil {
		t.Fatalf("admin user remove ALICE: %v\n%s", err, out)
	}
	st, err = sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if users, err := st.ListUsers(ctx); err != nil || len(users) != 0 {
		t.Fatalf("users left: %v (%v)", users, err)
	}
	evs, err := st.ListAudit(ctx, store.AuditFilter{Type: pki.EventUserRemoved, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Detail != "user alice" {
		t.Errorf("audit events %+v, want one whose detail is %q", evs, "user alice")
	}
}
