package storetest

import (
	"context"
	"errors"
	"fmt"
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
	list, err := s.ListChallenges(ctx, store.ChallengeFilter{Limit: 10})
	if err != nil || len(list) != 2 || list[0].ID != "b-2" || list[1].ID != "b-1" || list[1].FailedUses != 3 || !list[1].LockedAt.Equal(t0.Add(3*time.Minute)) {
		t.Fatalf("ListChallenges = %+v, %v", list, err)
	}
	if one, _ := s.ListChallenges(ctx, store.ChallengeFilter{Limit: 1}); len(one) != 1 {
		t.Errorf("ListChallenges(1) returned %d", len(one))
	}
}

// ListChallenges pages by the last ID seen (After): every challenge once,
// newest first, ties in creation time in insertion order reversed; an
// unknown After is ErrBadCursor.
func testListChallengesPages(t *testing.T, s store.Store) {
	ctx := context.Background()
	var ids []string // newest first
	for i := range 11 {
		// Pairs created in the same microsecond, to page across ties.
		ch := pki.Challenge{ID: fmt.Sprintf("p-%02d", i), Hash: []byte(fmt.Sprintf("hash-p%02d", i)), CreatedAt: t0.Add(time.Duration(i/2) * time.Second),
			ExpiresAt: t0.Add(time.Hour)}
		if err := s.CreateChallenge(ctx, ch, pki.AuditEvent{Type: pki.EventChallengeCreated}); err != nil {
			t.Fatal(err)
		}
		ids = append([]string{ch.ID}, ids...)
	}
	for _, size := range []int{1, 2, 3, 11, 20} {
		var got []string
		for f := (store.ChallengeFilter{Limit: size}); ; {
			page, err := s.ListChallenges(ctx, f)
			if err != nil {
				t.Fatalf("ListChallenges(%+v): %v", f, err)
			}
			for _, ch := range page {
				got = append(got, ch.ID)
			}
			if len(page) < size || len(got) > len(ids) {
				break
			}
			f.After = page[len(page)-1].ID
		}
		if !reflect.DeepEqual(got, ids) {
			t.Errorf("ListChallenges by pages of %d: %v, want %v", size, got, ids)
		}
	}
	if _, err := s.ListChallenges(ctx, store.ChallengeFilter{After: "no-such-challenge"}); !errors.Is(err, store.ErrBadCursor) {
		t.Errorf("ListChallenges after an unknown ID: %v, want ErrBadCursor", err)
	}
}
