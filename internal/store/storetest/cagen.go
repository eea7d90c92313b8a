package storetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

func caGen(id, root string, switchAt time.Time) store.CAGeneration {
	return store.CAGeneration{IssuerID: id, RootFingerprint: root, IssuerDER: []byte("issuer-" + id), RADER: []byte("ra-" + id),
		SwitchAt: switchAt, PublishedAt: t0, PublishedBy: "node-a"}
}

func caEvent(typ, id string) pki.AuditEvent {
	return pki.AuditEvent{Time: t0, Type: typ, Actor: "system:node-a", IssuerID: id, Outcome: "success"}
}

// testCAGenerations: the shared CA's generations are recorded once, in
// switch order; a generation of another root or a changed one is refused;
// publishing again changes nothing and writes no event.
func testCAGenerations(t *testing.T, s store.Store) {
	ctx := context.Background()
	if gs, err := s.CAGenerations(ctx); err != nil || len(gs) != 0 {
		t.Fatalf("CAGenerations on a new store = %v, %v", gs, err)
	}
	next := caGen("bb", "sha256:r", t0.Add(24*time.Hour))
	first := caGen("aa", "sha256:r", time.Time{})
	for _, g := range []store.CAGeneration{next, first} {
		ins, err := s.PublishCAGeneration(ctx, g, caEvent(pki.EventCAPublished, g.IssuerID))
		if err != nil || !ins {
			t.Fatalf("publish %s = %v, %v", g.IssuerID, ins, err)
		}
	}
	head, _ := s.AuditHead(ctx)
	ins, err := s.PublishCAGeneration(ctx, first, caEvent(pki.EventCAPublished, "aa"))
	if err != nil || ins {
		t.Errorf("publishing again = %v, %v; want false, nil", ins, err)
	}
	if h, _ := s.AuditHead(ctx); h.Count != head.Count {
		t.Errorf("publishing again wrote an event: %d → %d", head.Count, h.Count)
	}
	other := caGen("cc", "sha256:other", t0.Add(48*time.Hour))
	_, err = s.PublishCAGeneration(ctx, other, caEvent(pki.EventCAPublished, "cc"))
	wantErr(t, "another root", err, store.ErrConflict)
	changed := first
	changed.IssuerDER = []byte("something else")
	_, err = s.PublishCAGeneration(ctx, changed, caEvent(pki.EventCAPublished, "aa"))
	wantErr(t, "same ID, another certificate", err, store.ErrConflict)
	moved := next
	moved.SwitchAt = next.SwitchAt.Add(time.Hour)
	_, err = s.PublishCAGeneration(ctx, moved, caEvent(pki.EventCAPublished, "bb"))
	wantErr(t, "same ID, another switch time", err, store.ErrConflict)

	gs, err := s.CAGenerations(ctx)
	if err != nil || len(gs) != 2 {
		t.Fatalf("CAGenerations = %d, %v", len(gs), err)
	}
	if gs[0].IssuerID != "aa" || !gs[0].SwitchAt.IsZero() || gs[1].IssuerID != "bb" || !gs[1].SwitchAt.Equal(next.SwitchAt) {
		t.Errorf("order or switch times wrong: %+v", gs)
	}
	g := gs[1]
	if string(g.IssuerDER) != "issuer-bb" || string(g.RADER) != "ra-bb" || g.RootFingerprint != "sha256:r" ||
		!g.PublishedAt.Equal(t0) || g.PublishedBy != "node-a" || !g.PromotedAt.IsZero() {
		t.Errorf("generation read back as %+v", g)
	}
}

// testCAPromotion: the switch is recorded once, not before its time, never
// for the first generation; of promoters racing, one wins.
func testCAPromotion(t *testing.T, s store.Store) {
	ctx := context.Background()
	switchAt := t0.Add(time.Hour)
	for _, g := range []store.CAGeneration{caGen("aa", "sha256:r", time.Time{}), caGen("bb", "sha256:r", switchAt)} {
		if _, err := s.PublishCAGeneration(ctx, g, caEvent(pki.EventCAPublished, g.IssuerID)); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := s.PromoteCAGeneration(ctx, "bb", switchAt.Add(-time.Second), caEvent(pki.EventCAPromoted, "bb")); err != nil || ok {
		t.Errorf("promotion before the switch time = %v, %v", ok, err)
	}
	if ok, err := s.PromoteCAGeneration(ctx, "aa", switchAt, caEvent(pki.EventCAPromoted, "aa")); err != nil || ok {
		t.Errorf("promotion of the first generation = %v, %v", ok, err)
	}
	_, err := s.PromoteCAGeneration(ctx, "zz", switchAt, caEvent(pki.EventCAPromoted, "zz"))
	wantErr(t, "unknown generation", err, store.ErrNotFound)

	head, _ := s.AuditHead(ctx)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.PromoteCAGeneration(ctx, "bb", switchAt.Add(time.Minute), caEvent(pki.EventCAPromoted, "bb"))
			if err != nil && !errors.Is(err, store.ErrConflict) {
				t.Errorf("promote: %v", err)
			}
			if ok {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Errorf("%d promoters won, want 1", wins.Load())
	}
	if h, _ := s.AuditHead(ctx); h.Count != head.Count+1 {
		t.Errorf("promotion events: %d, want 1", h.Count-head.Count)
	}
	gs, _ := s.CAGenerations(ctx)
	if len(gs) != 2 || !gs[1].PromotedAt.Equal(switchAt.Add(time.Minute)) {
		t.Errorf("promoted_at not recorded: %+v", gs)
	}
}

// testCADiscard: a generation still to come is discarded with its event
// and its discard is kept; the first, a current or promoted one are not
// discarded; one never recorded has its discard recorded; a discarded one
// is never recorded again.
func testCADiscard(t *testing.T, s store.Store) {
	ctx := context.Background()
	switchAt := t0.Add(time.Hour)
	for _, g := range []store.CAGeneration{caGen("aa", "sha256:r", time.Time{}), caGen("bb", "sha256:r", switchAt)} {
		if _, err := s.PublishCAGeneration(ctx, g, caEvent(pki.EventCAPublished, g.IssuerID)); err != nil {
			t.Fatal(err)
		}
	}
	if ds, err := s.DiscardedCAGenerations(ctx); err != nil || len(ds) != 0 {
		t.Fatalf("DiscardedCAGenerations before any discard = %v, %v", ds, err)
	}
	head, _ := s.AuditHead(ctx)
	wantErr(t, "the first generation", s.DiscardCAGeneration(ctx, "aa", t0, caEvent(pki.EventCARollover, "aa")), store.ErrConflict)
	wantErr(t, "at its switch time", s.DiscardCAGeneration(ctx, "bb", switchAt, caEvent(pki.EventCARollover, "bb")), store.ErrConflict)
	if h, _ := s.AuditHead(ctx); h.Count != head.Count {
		t.Errorf("a refused discard wrote an event: %d → %d", head.Count, h.Count)
	}
	if ds, _ := s.DiscardedCAGenerations(ctx); len(ds) != 0 {
		t.Errorf("a refused discard was kept: %+v", ds)
	}
	discardAt := switchAt.Add(-time.Second)
	ev := caEvent(pki.EventCARollover, "bb")
	ev.Actor = "cli:alice"
	if err := s.DiscardCAGeneration(ctx, "bb", discardAt, ev); err != nil {
		t.Fatalf("discard before the switch: %v", err)
	}
	if h, _ := s.AuditHead(ctx); h.Count != head.Count+1 {
		t.Errorf("discard events: %d, want 1", h.Count-head.Count)
	}
	if gs, _ := s.CAGenerations(ctx); len(gs) != 1 || gs[0].IssuerID != "aa" {
		t.Errorf("after the discard: %+v", gs)
	}
	ds, err := s.DiscardedCAGenerations(ctx)
	if err != nil || len(ds) != 1 || ds[0].IssuerID != "bb" || !ds[0].DiscardedAt.Equal(discardAt) || ds[0].DiscardedBy != "cli:alice" {
		t.Errorf("DiscardedCAGenerations = %+v, %v; want bb at %s by cli:alice", ds, err, discardAt)
	}

	// A node that still holds it in DATA/ca/next records it again: refused,
	// with the same certificate and switch time as with any other.
	head, _ = s.AuditHead(ctx)
	ins, err := s.PublishCAGeneration(ctx, caGen("bb", "sha256:r", switchAt), caEvent(pki.EventCAPublished, "bb"))
	wantErr(t, "publishing a discarded generation again", err, store.ErrConflict)
	if ins {
		t.Error("a discarded generation was recorded again")
	}
	if gs, _ := s.CAGenerations(ctx); len(gs) != 1 {
		t.Errorf("after publishing the discarded one again: %+v", gs)
	}
	if h, _ := s.AuditHead(ctx); h.Count != head.Count {
		t.Errorf("a refused publication wrote an event: %d → %d", head.Count, h.Count)
	}
	_, err = s.PromoteCAGeneration(ctx, "bb", switchAt, caEvent(pki.EventCAPromoted, "bb"))
	wantErr(t, "promoting a discarded generation", err, store.ErrNotFound)
	wantErr(t, "discarding it again", s.DiscardCAGeneration(ctx, "bb", discardAt, caEvent(pki.EventCARollover, "bb")), store.ErrNotFound)
	if h, _ := s.AuditHead(ctx); h.Count != head.Count {
		t.Errorf("discarding again wrote an event: %d → %d", head.Count, h.Count)
	}

	// One the store never recorded (a rollover made before any server
	// recorded it) is recorded as discarded, with its event, so that a
	// node holding a copy cannot record it later.
	if err := s.DiscardCAGeneration(ctx, "zz", discardAt, caEvent(pki.EventCARollover, "zz")); err != nil {
		t.Fatalf("discard of a generation never recorded: %v", err)
	}
	if h, _ := s.AuditHead(ctx); h.Count != head.Count+1 {
		t.Errorf("discard of one never recorded: %d events, want 1", h.Count-head.Count)
	}
	if gs, _ := s.CAGenerations(ctx); len(gs) != 1 {
		t.Errorf("after discarding one never recorded: %+v", gs)
	}
	_, err = s.PublishCAGeneration(ctx, caGen("zz", "sha256:r", switchAt), caEvent(pki.EventCAPublished, "zz"))
	wantErr(t, "publishing one discarded before it was recorded", err, store.ErrConflict)
	wantErr(t, "discarding it again", s.DiscardCAGeneration(ctx, "zz", discardAt, caEvent(pki.EventCARollover, "zz")), store.ErrNotFound)

	// Another next one, promoted: no longer discardable, even with a
	// clock behind its switch.
	if _, err := s.PublishCAGeneration(ctx, caGen("cc", "sha256:r", switchAt), caEvent(pki.EventCAPublished, "cc")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PromoteCAGeneration(ctx, "cc", switchAt, caEvent(pki.EventCAPromoted, "cc")); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "a promoted generation", s.DiscardCAGeneration(ctx, "cc", t0, caEvent(pki.EventCARollover, "cc")), store.ErrConflict)
	if ds, _ := s.DiscardedCAGenerations(ctx); len(ds) != 2 {
		t.Errorf("a refused discard was kept: %+v", ds)
	}
}
