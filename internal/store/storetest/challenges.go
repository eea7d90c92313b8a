package storetest

import (
	"context"
	"encoding/base64"
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
// neither looked up, misused again nor consumed; looking up a used,
// locked or expired one says which (SpentChallengeError), an unknown one
// only that it is unusable; ListChallenges lists newest first, consumed
// and locked ones too.
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
	var spent *store.SpentChallengeError
	if _, err := s.LookupChallenge(ctx, bound.Hash, t0.Add(10*time.Minute)); !errors.Is(err, store.ErrChallengeUnusable) ||
		!errors.As(err, &spent) || !spent.Locked || spent.ID != bound.ID {
		t.Errorf("a locked challenge looked up: %v, want a SpentChallengeError saying it is locked", err)
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
	// The holder of a used challenge may be told so (it was found by its
	// hash); an unknown or expired one is just unusable.
	if err := s.RecordIssuance(ctx, store.Issuance{Certificate: newCert(issuerA, "c0ffef", t0.Add(365*day)), ConsumeChallengeHash: free.Hash, Now: t0.Add(12 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	spent = nil
	if _, err := s.LookupChallenge(ctx, free.Hash, t0.Add(13*time.Minute)); !errors.Is(err, store.ErrChallengeUnusable) ||
		!errors.As(err, &spent) || spent.Locked || spent.ID != free.ID {
		t.Errorf("a used challenge looked up: %v, want a SpentChallengeError saying it was used", err)
	}
	if n := len(listAudit(t, s, store.AuditFilter{Type: pki.EventChallengeMisused})); n != 3 {
		t.Errorf("%d challenge.misused events, want 3 (failed calls append none)", n)
	}
	list, _, err := s.ListChallenges(ctx, store.ChallengeFilter{Limit: 10})
	if err != nil || len(list) != 2 || list[0].ID != "b-2" || list[1].ID != "b-1" || list[1].FailedUses != 3 || !list[1].LockedAt.Equal(t0.Add(3*time.Minute)) {
		t.Fatalf("ListChallenges = %+v, %v", list, err)
	}
	if one, _, _ := s.ListChallenges(ctx, store.ChallengeFilter{Limit: 1}); len(one) != 1 {
		t.Errorf("ListChallenges(1) returned %d", len(one))
	}
	expiring := pki.Challenge{ID: "b-3", Hash: []byte("hash-b3"), Profile: "iot", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateChallenge(ctx, expiring, pki.AuditEvent{Type: pki.EventChallengeCreated}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LookupChallenge(ctx, []byte("unknown"), t0.Add(time.Hour)); !errors.Is(err, store.ErrChallengeUnusable) || errors.As(err, &spent) {
		t.Errorf("an unknown challenge looked up: %v, want ErrChallengeUnusable alone", err)
	}
	if _, err := s.LookupChallenge(ctx, expiring.Hash, t0.Add(time.Hour)); !errors.Is(err, store.ErrChallengeUnusable) || !errors.As(err, &spent) || !spent.Expired || spent.Locked {
		t.Errorf("an expired challenge looked up: %v, want a SpentChallengeError saying it expired", err)
	}
}

// ListChallenges pages by the position of the last challenge seen (its
// nextCursor): every challenge once, newest first, ties in creation time in
// insertion order reversed; a cursor no page of challenges gave is
// ErrBadCursor.
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
		pages := 0
		for f := (store.ChallengeFilter{Limit: size}); ; pages++ {
			page, next, err := s.ListChallenges(ctx, f)
			if err != nil {
				t.Fatalf("ListChallenges(%+v): %v", f, err)
			}
			for _, ch := range page {
				got = append(got, ch.ID)
			}
			if next == "" || len(got) > len(ids) {
				break
			}
			if len(page) != size {
				t.Errorf("ListChallenges(%+v): %d challenges and a next page, want %d", f, len(page), size)
			}
			f.Cursor = next
		}
		if !reflect.DeepEqual(got, ids) {
			t.Errorf("ListChallenges by pages of %d: %v, want %v", size, got, ids)
		}
		// The last page ends the list: no empty page after a full one.
		if want := (len(ids) + size - 1) / size; pages+1 != want {
			t.Errorf("ListChallenges by pages of %d: %d pages, want %d", size, pages+1, want)
		}
	}
	_, reqCursor, err := s.ListRequests(ctx, store.RequestFilter{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range badListCursors(reqCursor) {
		if _, _, err := s.ListChallenges(ctx, store.ChallengeFilter{Cursor: c}); !errors.Is(err, store.ErrBadCursor) {
			t.Errorf("ListChallenges after cursor %q: %v, want ErrBadCursor", c, err)
		}
	}
}

// badListCursors are cursors no page of a list gave: malformed ones, one
// of an ID (the form of cursor before pages continued from a position),
// a certificate listing's, and other (another list's, when not "").
func badListCursors(other string) []string {
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	bad := []string{"no-such-item", "%%%", b64("p-03"), b64("Q3ZKJ5XAMPLE7AB"), b64("n:5"), b64("e:1:2"),
		b64("r:"), b64("r:x"), b64("c:1"), b64("c:1:x"), b64("r:1:2"), b64("c:1:2:3")}
	if other != "" {
		bad = append(bad, other)
	}
	return bad
}

// A page's cursor is where the page ended, not its last item: the next
// page continues after it when that item was deleted or purged since, and
// so does one whose every item is gone.
func testPageAfterDeletedItem(t *testing.T, s store.Store) {
	ctx := context.Background()
	t.Run("challenges", func(t *testing.T) {
		var ids []string // newest first
		for i := range 7 {
			// Pairs created in the same microsecond: the page ends within a tie.
			ch := pki.Challenge{ID: fmt.Sprintf("d-%02d", i), Hash: []byte(fmt.Sprintf("hash-d%02d", i)), CreatedAt: t0.Add(time.Duration(i/2) * time.Second),
				ExpiresAt: t0.Add(time.Hour)}
			if err := s.CreateChallenge(ctx, ch, pki.AuditEvent{Type: pki.EventChallengeCreated}); err != nil {
				t.Fatal(err)
			}
			ids = append([]string{ch.ID}, ids...)
		}
		// Delete page by page, as an operator clearing leaked challenges.
		var seen []string
		for f := (store.ChallengeFilter{Limit: 2}); ; {
			page, next, err := s.ListChallenges(ctx, f)
			if err != nil {
				t.Fatalf("ListChallenges after deleting the previous page: %v", err)
			}
			for _, ch := range page {
				seen = append(seen, ch.ID)
				if err := s.DeleteChallenge(ctx, ch.ID, pki.AuditEvent{Time: t0.Add(time.Minute), Type: pki.EventChallengeDeleted}); err != nil {
					t.Fatalf("DeleteChallenge(%s): %v", ch.ID, err)
				}
			}
			if next == "" || len(seen) > len(ids) {
				break
			}
			f.Cursor = next
		}
		if !reflect.DeepEqual(seen, ids) {
			t.Errorf("challenges deleted page by page: %v, want %v", seen, ids)
		}
	})
	t.Run("requests", func(t *testing.T) {
		// The page's last request (r-03) expires and is purged between the
		// pages; so does one further on (r-01).
		for i := range 6 {
			r := newRequest(fmt.Sprintf("r-%02d", i), "default", fmt.Sprintf("tx-d%d", i))
			r.ExpiresAt = t0.Add(48 * time.Hour)
			if i == 3 || i == 1 {
				r.ExpiresAt = t0.Add(time.Hour)
			}
			mustCreateRequest(t, s, r)
		}
		page, next, err := s.ListRequests(ctx, store.RequestFilter{Limit: 3})
		if err != nil || len(page) != 3 || page[2].ID != "r-03" || next == "" {
			t.Fatalf("first page: %d requests, next %q, %v; want r-05 to r-03 and a next page", len(page), next, err)
		}
		if err := s.PurgeExpired(ctx, t0.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		want := []string{"r-02", "r-00"}
		page, next, err = s.ListRequests(ctx, store.RequestFilter{Limit: 3, Cursor: next})
		if err != nil {
			t.Fatalf("ListRequests after the previous page's last request was purged: %v", err)
		}
		var got []string
		for _, r := range page {
			got = append(got, r.ID)
		}
		if !reflect.DeepEqual(got, want) || next != "" {
			t.Errorf("the page after a purged r-03: %v, next %q; want %v and no next page", got, next, want)
		}
	})
}
