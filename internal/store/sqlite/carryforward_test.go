package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store/migrate"
)

// A restored copy gets the replaced database's newer passwords, roles,
// profile bindings and lockouts; an EST user's binding goes with its
// password (today's password with the backup's wider binding would be a
// credential that never existed); accounts unchanged since the backup are left alone, and the
// carry forward is the trail's newest event.
func TestCarryForwardTakesNewerPasswordsAndLockouts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	kept, restored := filepath.Join(dir, "kept.db"), filepath.Join(dir, "restored.db")
	ev := pki.AuditEvent{Time: t0, Type: "test", Actor: "test", Outcome: "success"}
	s := openAt(t, kept)
	for _, name := range []string{"alice", "bob"} {
		if err := s.CreateUser(ctx, pki.User{Name: name, Role: pki.Role("admin"), PasswordHash: "old", CreatedAt: t0}, ev); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"device", "sensor", "printer"} {
		if err := s.CreateESTUser(ctx, pki.ESTUser{Name: name, PasswordHash: "old", CreatedAt: t0}, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := Backup(ctx, kept, restored); err != nil {
		t.Fatal(err)
	}
	lockedUntil := t0.Add(time.Hour)
	if _, err := s.w.ExecContext(ctx, `UPDATE users SET password_hash = 'new', role = 'auditor', failed_logins = 5, locked_until = ? WHERE name = 'alice'`, lockedUntil.UnixMicro()); err != nil {
		t.Fatal(err)
	}
	// device: removed and added again, bound to vpn, with a new password;
	// sensor: only its binding narrowed.
	for _, q := range []string{
		`UPDATE est_users SET password_hash = 'new', profile = 'vpn', created_at = 7, created_by = 'cli:root' WHERE name = 'device'`,
		`UPDATE est_users SET profile = 'lab' WHERE name = 'sensor'`,
	} {
		if _, err := s.w.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if err := FoldWAL(ctx, kept); err != nil {
		t.Fatal(err)
	}

	c, err := CarryForward(ctx, restored, kept, t0, "cli:test")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Carried{UsersUpdated: 1, ESTPasswords: 1, ESTProfiles: 2}); !reflect.DeepEqual(c, want) {
		t.Errorf("carried %+v, want %+v", c, want)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(restored + suffix); err == nil {
			t.Errorf("%s is left beside the restored copy", restored+suffix)
		}
	}
	r := openAt(t, restored)
	defer r.Close()
	if u, err := r.User(ctx, "alice"); err != nil || u.PasswordHash != "new" || u.Role != "auditor" || u.FailedLogins != 5 || !u.LockedUntil.Equal(lockedUntil) {
		t.Errorf("alice in the restored copy: %+v, %v", u, err)
	}
	if u, err := r.User(ctx, "bob"); err != nil || u.PasswordHash != "old" {
		t.Errorf("bob in the restored copy: %+v, %v", u, err)
	}
	for _, want := range []pki.ESTUser{
		{Name: "device", PasswordHash: "new", Profile: "vpn", CreatedAt: time.UnixMicro(7).UTC(), CreatedBy: "cli:root"},
		{Name: "sensor", PasswordHash: "old", Profile: "lab", CreatedAt: t0},
		{Name: "printer", PasswordHash: "old", CreatedAt: t0},
	} {
		u, err := r.ESTUser(ctx, want.Name)
		if err != nil || u.PasswordHash != want.PasswordHash || u.Profile != want.Profile || !u.CreatedAt.Equal(want.CreatedAt) || u.CreatedBy != want.CreatedBy {
			t.Errorf("EST user %s in the restored copy: %+v, %v; want %+v", want.Name, u, err, want)
		}
	}
	head, err := r.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	events, err := r.AuditChain(ctx, head.LastID-1, 1)
	if err != nil || len(events) != 1 || events[0].Type != EventRestoreCarriedForward || events[0].Actor != "cli:test" {
		t.Errorf("the restored trail's newest event: %+v, %v", events, err)
	}
}

// A kept database whose log could not be folded into it is not read (the
// file alone lacks the log's commits), and the restored copy is left as
// it was.
func TestCarryForwardRefusesAKeptCopyWithALog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	kept, restored := filepath.Join(dir, "kept.db"), filepath.Join(dir, "restored.db")
	openAt(t, kept).Close()
	if err := Backup(ctx, kept, restored); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kept+"-wal", []byte("frames"), 0o600); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(restored)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CarryForward(ctx, restored, kept, t0, "cli:test"); !errors.Is(err, ErrKeptUnreadable) {
		t.Errorf("carry forward from a kept copy with a log: %v, want ErrKeptUnreadable", err)
	}
	if after, _ := os.ReadFile(restored); !bytes.Equal(before, after) {
		t.Error("the restored copy was changed")
	}
}

// A restored copy at an older schema than this binary's (a backup taken
// before an upgrade, restored to undo it) is not migrated: the older
// binary would refuse it. CarryForward refuses it, naming both versions,
// and leaves the file as it was, with no log or index beside it.
func TestCarryForwardLeavesAnOlderSchemaAlone(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	kept, restored := filepath.Join(dir, "kept.db"), filepath.Join(dir, "restored.db")
	openAt(t, kept).Close()
	ms, err := migrate.Load(Migrations())
	if err != nil {
		t.Fatal(err)
	}
	have, want := ms[len(ms)-2].Version, ms[len(ms)-1].Version
	db, err := sql.Open("sqlite", "file:"+restored+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.UpTo(ctx, db, Migrations(), dialect(), have); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before, err := os.ReadFile(restored)
	if err != nil {
		t.Fatal(err)
	}

	_, err = CarryForward(ctx, restored, kept, t0, "cli:test")
	var old *migrate.TooOldError
	if !errors.As(err, &old) || old.Have != have || old.Want != want {
		t.Fatalf("carry forward into a copy at schema %d: %v, want a TooOldError %d < %d", have, err, have, want)
	}
	if after, _ := os.ReadFile(restored); !bytes.Equal(before, after) {
		t.Error("the restored copy was changed")
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(restored + suffix); err == nil {
			t.Errorf("%s is left beside the restored copy", restored+suffix)
		}
	}
	facts, err := Inspect(ctx, restored)
	if err != nil || facts.SchemaVersion != have {
		t.Errorf("the restored copy after the carry forward: schema %d, %v; want %d", facts.SchemaVersion, err, have)
	}
}

// What was made after the backup (an API token, an EST user, a console
// user) is not carried into the restored database, which is no way to
// grant access, but named, so that it can be made again; a token revoked
// or expired since is not named.
func TestCarryForwardNamesWhatWasMadeAfterTheBackup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	kept, restored := filepath.Join(dir, "kept.db"), filepath.Join(dir, "restored.db")
	ev := pki.AuditEvent{Time: t0, Type: "test", Actor: "test", Outcome: "success"}
	s := openAt(t, kept)
	if err := s.CreateUser(ctx, pki.User{Name: "alice", Role: pki.Role("admin"), PasswordHash: "h", CreatedAt: t0}, ev); err != nil {
		t.Fatal(err)
	}
	if err := Backup(ctx, kept, restored); err != nil {
		t.Fatal(err)
	}
	tokens := []pki.APIToken{
		{ID: "tok-live", Name: "ci-deploy", Role: pki.Role("operator"), Hash: []byte("1"), CreatedAt: t0},
		{ID: "tok-revoked", Name: "old-one", Role: pki.Role("operator"), Hash: []byte("2"), CreatedAt: t0, RevokedAt: t0.Add(time.Minute)},
		{ID: "tok-expired", Name: "short", Role: pki.Role("operator"), Hash: []byte("3"), CreatedAt: t0, ExpiresAt: t0.Add(-time.Minute)},
	}
	for _, tok := range tokens {
		if err := s.CreateToken(ctx, tok, ev); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = ? WHERE id = 'tok-revoked'`, t0.Add(time.Minute).UnixMicro()); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, pki.User{Name: "bob", Role: pki.Role("auditor"), PasswordHash: "h", CreatedAt: t0}, ev); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateESTUser(ctx, pki.ESTUser{Name: "fleet", PasswordHash: "h", CreatedAt: t0}, ev); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := FoldWAL(ctx, kept); err != nil {
		t.Fatal(err)
	}
	c, err := CarryForward(ctx, restored, kept, t0, "cli:test")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.TokensLost, []string{"ci-deploy"}) || !reflect.DeepEqual(c.UsersLost, []string{"bob"}) || !reflect.DeepEqual(c.ESTUsersLost, []string{"fleet"}) || !c.Any() {
		t.Errorf("carried %+v, want ci-deploy, bob and fleet named as lost", c)
	}
}
