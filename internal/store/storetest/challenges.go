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

// A challenge bound to an identity round-trips; misuses are counted and
// lock it after lockAfter, with their events; a locked challenge can be
// neither looked up, misused again nor consumed; ListChallenges lists
// newest first, consumed and locked ones too.
func testChallengeBindingAndLock(t *testing.T, s store.Store) {
	ctx := context.Background()
	bound := pki.Challenge{ID: "b-1", Hash: []byte("hash-b1"), Profile: "iot", BoundSubject: []byte{0x30, 0x00},
		BoundSANs: []string{"dns:dev.example", "email:ops@example.com"}, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour), CreatedBy: "cli:root"}
	free := pki.Challenge{ID: "b-2", Hash: []byte("hash-b2"), Profile: "iot", CreatedAt: t0.Add(time.Second), ExpiresAt: t0.Add(time.Hour)}
	for _, ch := range []pki.Challenge{bound, free} {
		if err := s.CreateChallenge(ctx, ch, pki.AuditEvent{Type: pki.EventChallengeCreated}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.LookupChallenge(ctx, bound.Hash, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.BoundSubject, bound.BoundSubject) || !reflect.DeepEqual(got.BoundSANs, bound.BoundSANs) || got.FailedUses != 0 || !got.LockedAt.IsZero() {
		t.Errorf("LookupChallenge = %+v", got)
	}
	if got, _ := s.LookupChallenge(ctx, free.Hash, t0); got.BoundSubject != nil || got.BoundSANs != nil {
		t.Errorf("an unbound challenge reads back bound: %+v", got)
	}
	for i := 1; i <= 3; i++ {
		locked, err := s.RecordChallengeMisuse(ctx, bound.Hash, t0.Add(time.Duration(i)*time.Minute), 3, pki.AuditEvent{Type: pki.EventChallengeMisused})
		if err != nil || locked != (i == 3) {
			t.Fatalf("misuse %d: locked=%v, %v", i, locked, err)
		}
	}
	if _, err := s.LookupChallenge(ctx, bound.Hash, t0.Add(10*time.Minute)); !errors.Is(err, store.ErrChallengeUnusable) {
		t.Errorf("a locked challenge was found: %v", err)
	}
	if _, err := s.RecordChallengeMisuse(ctx, bound.Hash, t0.Add(10*time.Minute), 3, pki.AuditEvent{Type: pki.EventChallengeMisused}); !errors.Is(err, store.ErrChallengeUnusable) {
		t.Errorf("a locked challenge was misused again: %v", err)
	}
	if _, err := s.RecordChallengeMisuse(ctx, []byte("unknown"), t0, 3, pki.AuditEvent{Type: pki.EventChallengeMisused}); !errors.Is(err, store.ErrChallengeUnusable) {
		t.Errorf("an unknown challenge was misused: %v", err)
	}
	c := newCert(issuerA, "c0ffee", t0.Add(365*day))
	if err := s.RecordIssuance(ctx, store.Issuance{Certificate: c, ConsumeChallengeHash: bound.Hash, Now: t0.Add(11 * time.Minute)}); !errors.Is(err, store.ErrChallengeUnusable) {
		t.Errorf("a locked challenge was consumed: %v", err)
	}
	if n := len(listAudit(t, s, store.AuditFilter{Type: pki.EventChallengeMisused})); n != 3 {
		t.Errorf("%d challenge.misused events, want 3 (failed calls append none)", n)
	}
	list, err := s.ListChallenges(ctx, 10)
	if err != nil || len(list) != 2 || list[0].ID != "b-2" || list[1].ID != "b-1" || list[1].FailedUses != 3 || !list[1].LockedAt.Equal(t0.Add(3*time.Minute)) {
		t.Fatalf("ListChallenges = %+v, %v", list, err)
	}
	if one, _ := s.ListChallenges(ctx, 1); len(one) != 1 {
		t.Errorf("ListChallenges(1) returned %d", len(one))
	}
}
