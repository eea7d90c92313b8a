package cashare

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/store"
)

// TestDiscardStaysDiscardedOnEveryNode: a next CA copied to node b and then
// discarded on node a is neither recorded again by b, nor served, nor
// switched to; at its switch time both nodes still issue with the current
// CA, and b stays ready until its operator discards its copy.
func TestDiscardStaysDiscardedOnEveryNode(t *testing.T) {
	stores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		ctx := context.Background()
		clock := pkitest.NewClock(t0)
		st := open(t)
		a, err := startNode(t, st, clock, t.TempDir(), "node-a")
		if err != nil {
			t.Fatal(err)
		}
		bDir := t.TempDir()
		copyCA(t, a.dir, bDir)
		bStore := open(t)
		b, err := startNode(t, bStore, clock, bDir, "node-b")
		if err != nil {
			t.Fatal(err)
		}
		current, _ := a.auth.Active(clock.Now())

		switchAt := t0.Add(100 * time.Second)
		next, _, err := Rollover(ctx, st, a.dir, ca.RolloverOptions{SwitchAt: switchAt}, clock, "node-a cli:test")
		if err != nil {
			t.Fatal(err)
		}
		copyCA(t, a.dir, bDir) // DATA/ca/next to node b, as documented
		for _, n := range []*node{a, b} {
			if err := n.tick(t, clock); err != nil {
				t.Fatal(err)
			}
		}
		if got, _, ok := b.auth.Next(clock.Now()); !ok || got.ID != next.ID {
			t.Fatalf("node b does not hold the next CA %s", next.ID)
		}

		d, err := Discard(ctx, st, a.dir, clock.Now(), "cli:alice")
		if err != nil || !d.FromStore || !d.FromDisk {
			t.Fatalf("discard on node a = %+v, %v", d, err)
		}
		for i := range 2 { // a second Sync neither records it nor warns again
			if err := b.tick(t, clock); err != nil {
				t.Fatalf("node b after the discard on a (sync %d): %v", i+1, err)
			}
		}
		if gens, _ := st.CAGenerations(ctx); recorded(gens, next.ID) {
			t.Fatalf("node b recorded the discarded next CA %s again", next.ID)
		}
		if ds, err := st.DiscardedCAGenerations(ctx); err != nil || len(ds) != 1 || ds[0].IssuerID != next.ID || ds[0].DiscardedBy != "cli:alice" {
			t.Errorf("discarded generations = %+v, %v", ds, err)
		}
		if _, _, ok := b.auth.Next(clock.Now()); ok {
			t.Error("node b still serves the discarded next CA (GetNextCACert)")
		}
		if _, ok := b.sync.LackedNextRA(clock.Now()); ok {
			t.Error("node b serves the discarded next CA as one it lacks")
		}
		if err := b.sync.Ready(ctx); err != nil {
			t.Errorf("node b is not ready: %v", err)
		}
		if logs := b.logs.String(); strings.Count(logs, "level=WARN") != 1 || !strings.Contains(logs, "was discarded") ||
			!strings.Contains(logs, "scepter ca rollover --discard' on this node") {
			t.Errorf("node b warned:\n%s", logs)
		}
		if _, err := os.Stat(filepath.Join(bDir, "ca", ca.NextDir)); err != nil {
			t.Errorf("node b's copy is left to its operator: %v", err)
		}

		clock.Set(switchAt.Add(time.Second))
		for name, n := range map[string]*node{"a": a, "b": b} {
			if err := n.tick(t, clock); err != nil {
				t.Errorf("node %s after the switch time: %v", name, err)
			}
			if iss, _ := n.auth.Active(clock.Now()); iss.ID != current.ID {
				t.Errorf("node %s issues with %s after the switch time, want the current CA %s", name, iss.ID, current.ID)
			}
			if err := n.sync.Ready(ctx); err != nil {
				t.Errorf("node %s is not ready after the switch time: %v", name, err)
			}
		}
		gens, _ := st.CAGenerations(ctx)
		if cur := Current(gens, clock.Now()); cur == nil || cur.IssuerID != current.ID || len(gens) != 1 {
			t.Errorf("the store has %d generations after the switch time, current %v; want only %s", len(gens), cur, current.ID)
		}

		// Node b's operator discards its copy after its switch time, which
		// never made it current; nothing to discard is left.
		d, err = Discard(ctx, bStore, bDir, clock.Now(), "cli:bob")
		if err != nil || d.IssuerID != next.ID || d.FromStore || !d.FromDisk || !d.Before {
			t.Errorf("discard on node b = %+v, %v", d, err)
		}
		if _, err := os.Stat(filepath.Join(bDir, "ca", ca.NextDir)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("node b's copy stays after its discard: %v", err)
		}
		if _, err := Discard(ctx, bStore, bDir, clock.Now(), "cli:bob"); !errors.Is(err, ErrNothingToDiscard) {
			t.Errorf("discard on node b again: %v", err)
		}
	})
}

// TestDiscardNeverRecordedStaysDiscarded: a next CA discarded before any
// server recorded it (the rollover made, its copy sent to node b, then
// undone) has its discard kept all the same, so node b's copy is never
// recorded, announced or switched to.
func TestDiscardNeverRecordedStaysDiscarded(t *testing.T) {
	stores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		ctx := context.Background()
		clock := pkitest.NewClock(t0)
		st := open(t)
		a, err := startNode(t, st, clock, t.TempDir(), "node-a")
		if err != nil {
			t.Fatal(err)
		}
		bDir := t.TempDir()
		copyCA(t, a.dir, bDir)
		b, err := startNode(t, open(t), clock, bDir, "node-b")
		if err != nil {
			t.Fatal(err)
		}
		current, _ := a.auth.Active(clock.Now())
		switchAt := t0.Add(100 * time.Second)
		next, _, err := ca.Rollover(a.dir, ca.RolloverOptions{SwitchAt: switchAt}, clock)
		if err != nil {
			t.Fatal(err)
		}
		copyCA(t, a.dir, bDir) // before any node recorded it
		head, _ := st.AuditHead(ctx)
		d, err := Discard(ctx, st, a.dir, clock.Now(), "cli:alice")
		if err != nil || d.IssuerID != next.ID || d.FromStore || !d.FromDisk || !d.Kept || d.Before {
			t.Fatalf("discard on node a = %+v, %v", d, err)
		}
		if h, _ := st.AuditHead(ctx); h.Count != head.Count+1 {
			t.Errorf("the discard wrote %d events, want 1", h.Count-head.Count)
		}
		if ds, err := st.DiscardedCAGenerations(ctx); err != nil || len(ds) != 1 || ds[0].IssuerID != next.ID {
			t.Fatalf("discarded generations = %+v, %v; want %s", ds, err, next.ID)
		}
		for _, at := range []time.Time{clock.Now(), switchAt.Add(time.Second)} {
			clock.Set(at)
			if err := b.tick(t, clock); err != nil {
				t.Fatalf("node b at %s: %v", at, err)
			}
			if gens, _ := st.CAGenerations(ctx); recorded(gens, next.ID) {
				t.Fatalf("node b recorded the discarded next CA %s", next.ID)
			}
			if _, _, ok := b.auth.Next(clock.Now()); ok {
				t.Error("node b serves the discarded next CA (GetNextCACert)")
			}
			if iss, _ := b.auth.Active(clock.Now()); iss.ID != current.ID {
				t.Errorf("node b issues with %s, want the current CA %s", iss.ID, current.ID)
			}
		}
	})
}

// TestNextCAWithoutItsKeyIsNotRecorded: a next CA whose key does not sign
// here (a token's key destroyed, a key that is not the certificate's) is
// not recorded, so that no node switches to it.
func TestNextCAWithoutItsKeyIsNotRecorded(t *testing.T) {
	stores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		ctx := context.Background()
		clock := pkitest.NewClock(t0)
		st := open(t)
		a, err := startNode(t, st, clock, t.TempDir(), "node-a")
		if err != nil {
			t.Fatal(err)
		}
		next, _, err := ca.Rollover(a.dir, ca.RolloverOptions{SwitchAt: t0.Add(time.Hour)}, clock)
		if err != nil {
			t.Fatal(err)
		}
		other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		broken := &ca.Issuer{Cert: next.Cert, Signer: other, ID: next.ID, Chain: next.Chain}
		err = a.sync.publish(ctx, broken, nil, t0.Add(time.Hour))
		if !errors.Is(err, errKeyUnusable) {
			t.Errorf("publishing a next CA with another key: %v, want errKeyUnusable", err)
		}
		if gens, _ := st.CAGenerations(ctx); recorded(gens, next.ID) {
			t.Errorf("the next CA %s was recorded", next.ID)
		}
		if err := a.sync.publish(ctx, next, nil, t0.Add(time.Hour)); err != nil {
			t.Errorf("publishing it with its key: %v", err)
		}
	})
}
