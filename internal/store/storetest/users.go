package storetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

func testESTUsers(t *testing.T, s store.Store) {
	ctx := context.Background()
	alice := pki.ESTUser{Name: "alice", PasswordHash: "$argon2id$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA", Profile: "iot", CreatedAt: t0, CreatedBy: "cli:root"}
	bob := pki.ESTUser{Name: "bob", PasswordHash: "h2", CreatedAt: t0.Add(time.Second)}
	for _, u := range []pki.ESTUser{bob, alice} {
		if err := s.CreateESTUser(ctx, u, pki.AuditEvent{Type: pki.EventESTUserAdded, Actor: "cli:root", Detail: u.Name}); err != nil {
			t.Fatalf("CreateESTUser(%s): %v", u.Name, err)
		}
	}
	dup := alice
	dup.PasswordHash = "other"
	if err := s.CreateESTUser(ctx, dup, pki.AuditEvent{Type: pki.EventESTUserAdded}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second CreateESTUser(alice) = %v, want ErrConflict", err)
	}
	got, err := s.ESTUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, alice) {
		t.Errorf("ESTUser(alice) = %+v, want %+v", *got, alice)
	}
	if _, err := s.ESTUser(ctx, "carol"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ESTUser(carol) = %v, want ErrNotFound", err)
	}
	list, err := s.ListESTUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "alice" || list[1].Name != "bob" {
		t.Errorf("ListESTUsers = %+v, want alice then bob", list)
	}
	if err := s.DeleteESTUser(ctx, "alice", t0.Add(time.Hour), pki.AuditEvent{Type: pki.EventESTUserRemoved, Detail: "alice"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteESTUser(ctx, "alice", t0.Add(time.Hour), pki.AuditEvent{Type: pki.EventESTUserRemoved}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteESTUser = %v, want ErrNotFound", err)
	}
	if _, err := s.ESTUser(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted user still found: %v", err)
	}
	evs, err := s.ListAudit(ctx, store.AuditFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	want := []string{pki.EventESTUserRemoved, pki.EventESTUserAdded, pki.EventESTUserAdded}
	if !reflect.DeepEqual(types, want) {
		t.Errorf("audit events %v, want %v (the failed calls must add none)", types, want)
	}
	if !evs[0].Time.Equal(t0.Add(time.Hour)) || !evs[2].Time.Equal(bob.CreatedAt) {
		t.Errorf("audit times %v, %v: want the operation's time", evs[0].Time, evs[2].Time)
	}
	// EST users whose names differ only in case would read as one in the
	// audit trail; created at once, one of them is stored, and a name that
	// differs from an existing one only in case is refused.
	createAtOnce(t, []string{"Estu", "ESTU", "estu", "eStU", "estU", "EsTu"}, func(name string) error {
		return s.CreateESTUser(ctx, pki.ESTUser{Name: name, PasswordHash: "h", CreatedAt: t0}, pki.AuditEvent{Type: pki.EventESTUserAdded})
	})
	if err := s.CreateESTUser(ctx, pki.ESTUser{Name: "BOB", PasswordHash: "h", CreatedAt: t0}, pki.AuditEvent{Type: pki.EventESTUserAdded}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateESTUser(BOB) beside bob = %v, want ErrConflict", err)
	}
}
