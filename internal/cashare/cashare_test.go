package cashare

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/postgres"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
	"github.com/scepter/scepter/internal/store/sqlite"
	"github.com/scepter/scepter/internal/store/sqlite/sqlitetest"
)

var t0 = time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)

// stores runs fn on SQLite and, when the test PostgreSQL is there, on
// PostgreSQL: each node opens the store on its own, as separate processes
// would.
func stores(t *testing.T, fn func(t *testing.T, open func(t *testing.T) store.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "scepter.db")
		sqlitetest.Create(t, path) // migrated once per test binary, not per test
		fn(t, func(t *testing.T) store.Store {
			s, err := sqlite.Open(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		})
	})
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv(pgtest.EnvURL) == "" && os.Getenv("SCEPTER_E2E_REQUIRE") != "1" {
			t.Skipf("$%s is not set", pgtest.EnvURL)
		}
		url := pgtest.Database(t)
		fn(t, func(t *testing.T) store.Store {
			s, err := postgres.Open(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		})
	})
}

type node struct {
	dir  string
	auth *ca.Authority
	sync *Syncer
	logs *bytes.Buffer
}

func startNode(t *testing.T, st store.Store, clock pki.Clock, dir, name string) (*node, error) {
	t.Helper()
	if _, err := Before(context.Background(), st, dir); err != nil {
		return nil, err
	}
	a, _, err := ca.LoadOrCreate(dir, ca.InitOptions{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	n := &node{dir: dir, auth: a, logs: logs,
		sync: &Syncer{Store: st, Authority: a, Clock: clock, Node: name, Log: slog.New(slog.NewTextHandler(logs, nil))}}
	return n, n.sync.Sync(context.Background())
}

func (n *node) tick(t *testing.T, clock pki.Clock) error {
	t.Helper()
	if err := n.auth.Reload(clock.Now()); err != nil {
		t.Fatal(err)
	}
	return n.sync.Sync(context.Background())
}

// copyCA copies a node's CA directory to another data directory: what
// export-keys and import-keys do between machines.
func copyCA(t *testing.T, from, to string) {
	t.Helper()
	src := filepath.Join(from, "ca")
	dst := filepath.Join(to, "ca")
	if err := os.RemoveAll(dst); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(target, info.Mode().Perm())
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

func events(t *testing.T, st store.Store, typ string) []pki.AuditEvent {
	t.Helper()
	evs, err := st.ListAudit(context.Background(), store.AuditFilter{Type: typ, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestNodesShareOneCA walks the life of a CA shared by nodes: the first
// records it, a node without a CA and a node with another CA are refused,
// a copy of the keys joins, a rollover made on one node is recorded, the
// node that lacks its keys is warned and then not ready at the switch,
// and the switch is recorded once.
func TestNodesShareOneCA(t *testing.T) {
	stores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		ctx := context.Background()
		clock := pkitest.NewClock(t0)
		a, err := startNode(t, open(t), clock, t.TempDir(), "node-a")
		if err != nil {
			t.Fatalf("first node: %v", err)
		}
		st := open(t)
		gens, err := st.CAGenerations(ctx)
		if err != nil || len(gens) != 1 || gens[0].IssuerID != a.auth.Issuer.ID || !gens[0].SwitchAt.IsZero() || gens[0].PublishedBy != "node-a" {
			t.Fatalf("after the first node: %+v, %v", gens, err)
		}
		if n := len(events(t, st, pki.EventCAPublished)); n != 1 {
			t.Errorf("%d ca.published events, want 1", n)
		}

		// A node with an empty data directory never creates a CA.
		empty := t.TempDir()
		if _, err := startNode(t, open(t), clock, empty, "node-x"); !errors.Is(err, ErrNotThisCA) || !strings.Contains(err.Error(), "import-keys") {
			t.Errorf("empty data directory: %v", err)
		}
		if _, err := os.Stat(filepath.Join(empty, "ca")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a CA was created in the refused data directory: %v", err)
		}

		// A node with a CA of its own is not this CA.
		otherDir := t.TempDir()
		if _, _, err := ca.LoadOrCreate(otherDir, ca.InitOptions{}, clock); err != nil {
			t.Fatal(err)
		}
		other, err := startNode(t, open(t), clock, otherDir, "node-y")
		if !errors.Is(err, ErrNotThisCA) || other.sync.Ready(ctx) == nil {
			t.Errorf("another CA: %v, ready %v", err, other.sync.Ready(ctx))
		}

		// A copy of the keys joins without recording anything new.
		bDir, cDir := t.TempDir(), t.TempDir()
		copyCA(t, a.dir, bDir)
		copyCA(t, a.dir, cDir)
		b, err := startNode(t, open(t), clock, bDir, "node-b")
		if err != nil || b.sync.Ready(ctx) != nil {
			t.Fatalf("node b: %v", err)
		}
		c, err := startNode(t, open(t), clock, cDir, "node-c")
		if err != nil {
			t.Fatalf("node c: %v", err)
		}

		// A rollover made on node a is recorded with its switch time.
		switchAt := t0.Add(2 * time.Hour)
		next, _, err := ca.Rollover(a.dir, ca.RolloverOptions{SwitchAt: switchAt}, clock)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.tick(t, clock); err != nil {
			t.Fatalf("node a after the rollover: %v", err)
		}
		gens, _ = st.CAGenerations(ctx)
		if len(gens) != 2 || gens[1].IssuerID != next.ID || !gens[1].SwitchAt.Equal(switchAt) {
			t.Fatalf("the next generation is not recorded: %+v", gens)
		}
		// Node b lacks its keys: warned, still ready before the switch.
		if err := b.tick(t, clock); err != nil {
			t.Fatalf("node b before the switch: %v", err)
		}
		if !strings.Contains(b.logs.String(), "lacks its keys") {
			t.Errorf("node b was not warned:\n%s", b.logs)
		}
		// ... and tells SCEP clients of the rollover all the same, with
		// the certificates the store records (node a has the next CA
		// itself: nothing lacked).
		_, nextRA, _ := a.auth.Next(clock.Now())
		if ra, ok := b.sync.LackedNextRA(clock.Now()); !ok || !ra.Cert.Equal(nextRA.Cert) || ra.Key != nil ||
			len(ra.Chain) != 3 || !ra.Chain[1].Equal(next.Cert) || !ra.Chain[2].Equal(a.auth.Root) {
			t.Errorf("node b's lacked next RA: %+v, %v; want the store's next RA and chain", ra, ok)
		}
		if _, ok := a.sync.LackedNextRA(clock.Now()); ok {
			t.Error("node a, which has the next CA, reports it lacked")
		}
		// Node b gets the keys; node c does not.
		copyCA(t, a.dir, bDir)
		clock.Advance(time.Hour)
		for name, n := range map[string]*node{"a": a, "b": b, "c": c} {
			if err := n.tick(t, clock); err != nil {
				t.Errorf("node %s an hour before the switch: %v", name, err)
			}
		}
		if _, ok := b.sync.LackedNextRA(clock.Now()); ok {
			t.Error("node b still reports the next CA lacked after getting its keys")
		}
		if _, ok := c.sync.LackedNextRA(clock.Now()); !ok {
			t.Error("node c, without the next keys, does not report the next CA")
		}
		if _, ok := c.sync.LackedNextRA(switchAt); ok {
			t.Error("node c reports the next CA lacked at its switch time")
		}

		clock.Set(switchAt.Add(time.Second))
		for name, n := range map[string]*node{"a": a, "b": b} {
			if err := n.tick(t, clock); err != nil || n.sync.Ready(ctx) != nil {
				t.Errorf("node %s after the switch: %v", name, err)
			}
			if iss, _ := n.auth.Active(clock.Now()); iss.ID != next.ID {
				t.Errorf("node %s issues with %s, want the next CA %s", name, iss.ID, next.ID)
			}
		}
		if err := c.tick(t, clock); err == nil || c.sync.Ready(ctx) == nil || !strings.Contains(err.Error(), "lacks its keys") {
			t.Errorf("node c without the next keys after the switch: %v", err)
		}
		// A command issuing outside a server (requests approve) is told so
		// on node c, and goes ahead on node a.
		if err := IssuesCurrent(ctx, st, c.auth, clock.Now()); err == nil || !strings.Contains(err.Error(), next.ID) {
			t.Errorf("IssuesCurrent on node c after the switch: %v, want a refusal naming %s", err, next.ID)
		}
		if err := IssuesCurrent(ctx, st, a.auth, clock.Now()); err != nil {
			t.Errorf("IssuesCurrent on node a after the switch: %v", err)
		}
		if n := len(events(t, st, pki.EventCAPromoted)); n != 1 {
			t.Errorf("%d ca.promoted events, want 1", n)
		}
		// Node c gets the keys late, and is ready again.
		copyCA(t, a.dir, cDir)
		if err := c.tick(t, clock); err != nil || c.sync.Ready(ctx) != nil {
			t.Errorf("node c with the keys: %v", err)
		}
	})
}

// TestAnotherScheduleIsRefused: a rollover made on a second node while the
// store already schedules a next generation is not recorded, and that
// node is not ready.
func TestAnotherScheduleIsRefused(t *testing.T) {
	stores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		clock := pkitest.NewClock(t0)
		a, err := startNode(t, open(t), clock, t.TempDir(), "node-a")
		if err != nil {
			t.Fatal(err)
		}
		bDir := t.TempDir()
		copyCA(t, a.dir, bDir)
		b, err := startNode(t, open(t), clock, bDir, "node-b")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := ca.Rollover(a.dir, ca.RolloverOptions{SwitchAt: t0.Add(time.Hour)}, clock); err != nil {
			t.Fatal(err)
		}
		if err := a.tick(t, clock); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ca.Rollover(bDir, ca.RolloverOptions{SwitchAt: t0.Add(3 * time.Hour)}, clock); err != nil {
			t.Fatal(err)
		}
		if err := b.tick(t, clock); err == nil || !strings.Contains(err.Error(), "schedules") || b.sync.Ready(context.Background()) == nil {
			t.Errorf("a second schedule: %v", err)
		}
		gens, _ := open(t).CAGenerations(context.Background())
		if len(gens) != 2 {
			t.Errorf("%d generations recorded, want 2", len(gens))
		}
	})
}

// TestNextCheckWakesAtTheSwitch: the node looks again just after the
// store's switch time, not an interval later.
func TestNextCheckWakesAtTheSwitch(t *testing.T) {
	clock := pkitest.NewClock(t0)
	path := filepath.Join(t.TempDir(), "scepter.db")
	sqlitetest.Create(t, path)
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := startNode(t, st, clock, t.TempDir(), "node-a")
	if err != nil {
		t.Fatal(err)
	}
	if d := a.sync.NextCheck(clock.Now(), 30*time.Second); d != 30*time.Second {
		t.Errorf("no switch scheduled: wait %v, want the interval", d)
	}
	if _, _, err := ca.Rollover(a.dir, ca.RolloverOptions{SwitchAt: t0.Add(10 * time.Second)}, clock); err != nil {
		t.Fatal(err)
	}
	if err := a.tick(t, clock); err != nil {
		t.Fatal(err)
	}
	if d := a.sync.NextCheck(clock.Now(), 30*time.Second); d <= 10*time.Second || d > 11*time.Second {
		t.Errorf("a switch in 10 s: wait %v", d)
	}
	if d := a.sync.NextCheck(clock.Now(), 5*time.Second); d != 5*time.Second {
		t.Errorf("a switch after the interval: wait %v", d)
	}
}

// TestSwitchNobodyWatched: a rollover whose switch time passes before any
// server recorded it (the server stopped, or before its next reload) is
// recorded late with its switch time, and the node serves; a restart
// then serves too.
func TestSwitchNobodyWatched(t *testing.T) {
	tests := []struct {
		name string
		// after brings node a past the switch of a rollover made on its
		// data directory at t0 and switching at t0+1s.
		after func(t *testing.T, a *node, st store.Store, clock *pkitest.Clock) (*node, error)
	}{
		{"server stopped, then started", func(t *testing.T, a *node, st store.Store, clock *pkitest.Clock) (*node, error) {
			clock.Advance(5 * time.Second)
			return startNode(t, st, clock, a.dir, "node-a")
		}},
		{"running, reloads after the switch", func(t *testing.T, a *node, _ store.Store, clock *pkitest.Clock) (*node, error) {
			clock.Advance(5 * time.Second)
			return a, a.tick(t, clock)
		}},
		{"running, loaded the next CA but did not sync before the switch", func(t *testing.T, a *node, _ store.Store, clock *pkitest.Clock) (*node, error) {
			if err := a.auth.Reload(clock.Now()); err != nil {
				t.Fatal(err)
			}
			clock.Advance(5 * time.Second)
			return a, a.sync.Sync(context.Background())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
				ctx := context.Background()
				clock := pkitest.NewClock(t0)
				st := open(t)
				a, err := startNode(t, st, clock, t.TempDir(), "node-a")
				if err != nil {
					t.Fatal(err)
				}
				switchAt := t0.Add(time.Second)
				next, _, err := ca.Rollover(a.dir, ca.RolloverOptions{SwitchAt: switchAt}, clock)
				if err != nil {
					t.Fatal(err)
				}
				a, err = tt.after(t, a, st, clock)
				if err != nil || a.sync.Ready(ctx) != nil {
					t.Fatalf("after the switch: %v", err)
				}
				if iss, _ := a.auth.Active(clock.Now()); iss.ID != next.ID {
					t.Errorf("node issues with %s, want the next CA %s", iss.ID, next.ID)
				}
				gens, _ := st.CAGenerations(ctx)
				if len(gens) != 2 || gens[1].IssuerID != next.ID || !gens[1].SwitchAt.Equal(switchAt) || gens[1].PromotedAt.IsZero() {
					t.Fatalf("the switch is not recorded: %+v", gens)
				}
				if n := len(events(t, st, pki.EventCAPromoted)); n != 1 {
					t.Errorf("%d ca.promoted events, want 1", n)
				}
				clock.Advance(time.Minute)
				if _, err := startNode(t, open(t), clock, a.dir, "node-a"); err != nil {
					t.Errorf("restart: %v", err)
				}
			})
		})
	}
}

// TestSwitchNobodyWatchedOnSeveralNodes: nodes that hold the same next CA
// and come back after its switch record it once; one that rolled over on
// its own, unrecorded too, is refused.
func TestSwitchNobodyWatchedOnSeveralNodes(t *testing.T) {
	stores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		ctx := context.Background()
		clock := pkitest.NewClock(t0)
		a, err := startNode(t, open(t), clock, t.TempDir(), "node-a")
		if err != nil {
			t.Fatal(err)
		}
		bDir, cDir := t.TempDir(), t.TempDir()
		copyCA(t, a.dir, cDir)
		switchAt := t0.Add(time.Second)
		if _, _, err := ca.Rollover(a.dir, ca.RolloverOptions{SwitchAt: switchAt}, clock); err != nil {
			t.Fatal(err)
		}
		copyCA(t, a.dir, bDir)
		// Node c rolled over on its own, unrecorded too, with another
		// schedule.
		if _, _, err := ca.Rollover(cDir, ca.RolloverOptions{SwitchAt: t0.Add(2 * time.Second)}, clock); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Minute)
		for _, n := range []struct{ name, dir string }{{"node-a", a.dir}, {"node-b", bDir}} {
			if _, err := startNode(t, open(t), clock, n.dir, n.name); err != nil {
				t.Errorf("%s: %v", n.name, err)
			}
		}
		if n := len(events(t, open(t), pki.EventCAPublished)); n != 2 {
			t.Errorf("%d ca.published events, want 2 (the first CA, the next one once)", n)
		}
		c, err := startNode(t, open(t), clock, cDir, "node-c")
		if err == nil || c.sync.Ready(ctx) == nil || !strings.Contains(err.Error(), "schedule") {
			t.Errorf("node c with another schedule: %v", err)
		}
		if gens, _ := open(t).CAGenerations(ctx); len(gens) != 2 {
			t.Errorf("%d generations recorded, want 2", len(gens))
		}
	})
}

// TestSwitchNobodyWatchedAfterAnotherRollover: a node that comes back with
// a switch that passed unrecorded does not override a rollover the other
// nodes recorded meanwhile, whether that one is still to come or passed.
func TestSwitchNobodyWatchedAfterAnotherRollover(t *testing.T) {
	tests := []struct {
		name            string
		stale, recorded time.Duration // switch times, from t0
		wantInErr       string
	}{
		{"the other still to come", time.Second, time.Hour, "schedules"},
		{"the other switched before", time.Hour, 30 * time.Minute, "never had"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
				ctx := context.Background()
				clock := pkitest.NewClock(t0)
				a, err := startNode(t, open(t), clock, t.TempDir(), "node-a")
				if err != nil {
					t.Fatal(err)
				}
				bDir := t.TempDir()
				copyCA(t, a.dir, bDir)
				b, err := startNode(t, open(t), clock, bDir, "node-b")
				if err != nil {
					t.Fatal(err)
				}
				// Node a is stopped; its rollover is not recorded.
				if _, _, err := ca.Rollover(a.dir, ca.RolloverOptions{SwitchAt: t0.Add(tt.stale)}, clock); err != nil {
					t.Fatal(err)
				}
				if _, _, err := ca.Rollover(bDir, ca.RolloverOptions{SwitchAt: t0.Add(tt.recorded)}, clock); err != nil {
					t.Fatal(err)
				}
				if err := b.tick(t, clock); err != nil {
					t.Fatal(err)
				}
				clock.Set(t0.Add(tt.stale + time.Second))
				back, err := startNode(t, open(t), clock, a.dir, "node-a")
				if err == nil || back.sync.Ready(ctx) == nil || !strings.Contains(err.Error(), tt.wantInErr) {
					t.Errorf("node a back: %v", err)
				}
				if gens, _ := open(t).CAGenerations(ctx); len(gens) != 2 {
					t.Errorf("%d generations recorded, want 2", len(gens))
				}
			})
		})
	}
}

// TestDiscard: a rollover the store recorded is undone before its switch,
// from this node's data directory or, once DATA/ca/next is gone, from the
// store alone; then a rollover is possible again. After the switch it is
// refused.
func TestDiscard(t *testing.T) {
	stores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		ctx := context.Background()
		clock := pkitest.NewClock(t0)
		st := open(t)
		a, err := startNode(t, st, clock, t.TempDir(), "node-a")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Discard(ctx, st, a.dir, clock.Now(), "cli:test"); !errors.Is(err, ErrNothingToDiscard) {
			t.Errorf("nothing to discard: %v", err)
		}
		rollover := func(at time.Time) *ca.Issuer {
			t.Helper()
			if err := CheckRollover(ctx, st, clock.Now(), ""); err != nil {
				t.Fatalf("check before the rollover: %v", err)
			}
			next, _, err := ca.Rollover(a.dir, ca.RolloverOptions{SwitchAt: at}, clock)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.tick(t, clock); err != nil {
				t.Fatal(err)
			}
			return next
		}
		generations := func() int {
			gens, err := st.CAGenerations(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return len(gens)
		}

		// Recorded and on disk: both go.
		next := rollover(t0.Add(time.Hour))
		d, err := Discard(ctx, st, a.dir, clock.Now(), "cli:test")
		if err != nil || d.IssuerID != next.ID || !d.FromStore || !d.FromDisk {
			t.Fatalf("discard = %+v, %v", d, err)
		}
		if n := generations(); n != 1 {
			t.Errorf("%d generations after the discard, want 1", n)
		}
		if err := a.tick(t, clock); err != nil || a.sync.Ready(ctx) != nil {
			t.Errorf("node after the discard: %v", err)
		}
		if _, _, ok := a.auth.Next(clock.Now()); ok {
			t.Error("the node still serves the discarded next CA")
		}

		// DATA/ca/next removed by hand after the store recorded it: the
		// store's schedule alone is discarded, and a rollover works again.
		rollover(t0.Add(time.Hour))
		if err := os.RemoveAll(filepath.Join(a.dir, "ca", ca.NextDir)); err != nil {
			t.Fatal(err)
		}
		if err := a.tick(t, clock); err != nil {
			t.Fatal(err)
		}
		if err := CheckRollover(ctx, st, clock.Now(), ""); !errors.Is(err, ErrRolloverUnderWay) || !strings.Contains(err.Error(), "--discard") {
			t.Errorf("rollover while the store schedules one: %v", err)
		}
		if d, err := Discard(ctx, st, a.dir, clock.Now(), "cli:test"); err != nil || !d.FromStore || d.FromDisk {
			t.Fatalf("discard from the store alone = %+v, %v", d, err)
		}
		last := rollover(t0.Add(time.Hour))
		if n := len(events(t, st, pki.EventCARollover)); n != 2 {
			t.Errorf("%d discard events, want 2", n)
		}

		// Past the switch: too late, on disk and in the store.
		clock.Set(t0.Add(time.Hour))
		if _, err := Discard(ctx, st, a.dir, clock.Now(), "cli:test"); !errors.Is(err, ca.ErrSwitched) {
			t.Errorf("discard at the switch, before the node switched: %v", err)
		}
		if err := a.tick(t, clock); err != nil {
			t.Fatal(err)
		}
		if _, err := Discard(ctx, st, a.dir, clock.Now(), "cli:test"); !errors.Is(err, ErrNothingToDiscard) {
			t.Errorf("discard after the switch: %v", err)
		}
		if iss, _ := a.auth.Active(clock.Now()); iss.ID != last.ID {
			t.Errorf("the node issues with %s, want %s", iss.ID, last.ID)
		}
	})
}

// TestDiscardLocalOnly: a next CA the store never recorded (the store
// schedules another) is removed from the node, the store's stays, and the
// node that was refused serves again.
func TestDiscardLocalOnly(t *testing.T) {
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
		if _, _, err := ca.Rollover(a.dir, ca.RolloverOptions{SwitchAt: t0.Add(time.Hour)}, clock); err != nil {
			t.Fatal(err)
		}
		if err := a.tick(t, clock); err != nil {
			t.Fatal(err)
		}
		mine, _, err := ca.Rollover(bDir, ca.RolloverOptions{SwitchAt: t0.Add(2 * time.Hour)}, clock)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.tick(t, clock); err == nil || !strings.Contains(err.Error(), "--discard") {
			t.Fatalf("node b with another schedule: %v", err)
		}
		d, err := Discard(ctx, st, bDir, clock.Now(), "cli:test")
		if err != nil || d.IssuerID != mine.ID || d.FromStore || !d.FromDisk {
			t.Fatalf("discard = %+v, %v", d, err)
		}
		if gens, _ := st.CAGenerations(ctx); len(gens) != 2 {
			t.Errorf("%d generations, want the store's 2", len(gens))
		}
		if err := b.tick(t, clock); err != nil || b.sync.Ready(ctx) != nil {
			t.Errorf("node b after the discard: %v", err)
		}
	})
}

// Two nodes rolling over one after the other, before any server reloads:
// the first rollover is recorded in the store at once, so the second is
// refused instead of scheduling a CA of its own.
func TestRolloverIsRecordedAtOnce(t *testing.T) {
	stores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		clock := pkitest.NewClock(t0)
		st := open(t)
		a, err := startNode(t, st, clock, t.TempDir(), "node-a")
		if err != nil {
			t.Fatal(err)
		}
		bDir := t.TempDir()
		copyCA(t, a.dir, bDir)
		if _, err := startNode(t, open(t), clock, bDir, "node-b"); err != nil {
			t.Fatal(err)
		}
		iss, _, err := Rollover(context.Background(), st, a.dir, ca.RolloverOptions{SwitchAt: t0.Add(time.Hour)}, clock, "node-a cli:test")
		if err != nil {
			t.Fatal(err)
		}
		gens, _ := st.CAGenerations(context.Background())
		if !recorded(gens, iss.ID) {
			t.Fatalf("the next CA %s is not recorded: %+v", iss.ID, gens)
		}
		_, _, err = Rollover(context.Background(), open(t), bDir, ca.RolloverOptions{SwitchAt: t0.Add(3 * time.Hour)}, clock, "node-b cli:test")
		if !errors.Is(err, ErrRolloverUnderWay) {
			t.Errorf("a second rollover on another node: %v, want ErrRolloverUnderWay", err)
		}
		if _, err := os.Stat(filepath.Join(bDir, "ca", "next")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the refused rollover left %s: %v", filepath.Join(bDir, "ca", "next"), err)
		}
	})
}

// At a switch every node logs once that it issues with another CA, naming
// it and whether it recorded the switch or found it recorded: not only the
// node that recorded it. A node that lacks the keys logs it once it has
// them and issues with the new CA.
func TestEveryNodeLogsTheSwitch(t *testing.T) {
	stores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		clock := pkitest.NewClock(t0)
		a, err := startNode(t, open(t), clock, t.TempDir(), "node-a")
		if err != nil {
			t.Fatal(err)
		}
		bDir, cDir := t.TempDir(), t.TempDir()
		copyCA(t, a.dir, bDir)
		copyCA(t, a.dir, cDir)
		b, err := startNode(t, open(t), clock, bDir, "node-b")
		if err != nil {
			t.Fatal(err)
		}
		c, err := startNode(t, open(t), clock, cDir, "node-c")
		if err != nil {
			t.Fatal(err)
		}
		switchAt := t0.Add(time.Hour)
		next, _, err := ca.Rollover(a.dir, ca.RolloverOptions{SwitchAt: switchAt}, clock)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.tick(t, clock); err != nil {
			t.Fatal(err)
		}
		copyCA(t, a.dir, bDir) // node c gets the keys only after the switch
		for _, n := range []*node{a, b, c} {
			if err := n.tick(t, clock); err != nil {
				t.Fatal(err)
			}
			n.logs.Reset()
		}

		clock.Set(switchAt.Add(time.Second))
		for round := range 2 { // the second round finds nothing new
			for _, n := range []*node{a, b, c} {
				err := n.tick(t, clock)
				if n == c && err == nil {
					t.Errorf("round %d: node c, without the next keys, synced", round)
				} else if n != c && err != nil {
					t.Errorf("round %d: node %s: %v", round, n.sync.Node, err)
				}
			}
		}
		copyCA(t, a.dir, cDir)
		for range 2 {
			if err := c.tick(t, clock); err != nil {
				t.Fatalf("node c with the keys: %v", err)
			}
		}

		attrs := fmt.Sprintf(`subject="%s" issuer=%s switch_at=%s`, next.Cert.Subject, next.ID, switchAt.Format(time.RFC3339))
		for _, tc := range []struct {
			node *node
			want string
		}{
			{a, `msg="issuing CA switched: this node issues with it now and recorded the switch for every node" ` + attrs},
			{b, `msg="issuing CA switched: this node issues with it now; another node had recorded the switch" ` + attrs},
			{c, `msg="issuing CA switched: this node issues with it now; another node had recorded the switch" ` + attrs},
		} {
			logs := tc.node.logs.String()
			if n := strings.Count(logs, "issuing CA switched"); n != 1 || !strings.Contains(logs, tc.want) {
				t.Errorf("%s logged %d switches:\n%s\nwant one:\n%s", tc.node.sync.Node, n, logs, tc.want)
			}
		}
	})
}
