package cashare

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/keys/softhsmtest"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/store/sqlite"
	"github.com/scepter/scepter/internal/store/sqlite/sqlitetest"
)

var (
	hsmOnce sync.Once
	hsmPool *softhsmtest.Pool
)

// openToken opens a fresh SoftHSM2 token, closed at the end of the test.
func openToken(t *testing.T) keys.Token {
	t.Helper()
	if !keys.PKCS11Supported {
		t.Skip("built without PKCS#11 (cgo)")
	}
	hsmOnce.Do(func() {
		dir, err := os.MkdirTemp("", "scepter-cashare-softhsm-")
		if err != nil {
			panic(err)
		}
		hsmPool = softhsmtest.NewPool(dir, 2)
	})
	st := hsmPool.Take(t)
	tok, err := keys.OpenPKCS11(keys.PKCS11Config{Module: st.Env.Module, TokenLabel: st.Label, PINFile: st.PINFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tok.Close() })
	return tok
}

// A node whose keys are in a token, lacking the next CA, is told to copy
// DATA/ca (certificates and references), not to run export-keys, which
// refuses token keys.
func TestNodeWithTokenKeysIsToldToCopyTheCADirectory(t *testing.T) {
	tok := openToken(t)
	ctx := context.Background()
	clock := pkitest.NewClock(t0)
	path := filepath.Join(t.TempDir(), "scepter.db")
	sqlitetest.Create(t, path) // migrated once per test binary
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	start := func(dir, name string) *node {
		t.Helper()
		if _, err := Before(ctx, st, dir); err != nil {
			t.Fatal(err)
		}
		a, _, err := ca.LoadOrCreate(dir, ca.InitOptions{Token: tok}, clock)
		if err != nil {
			t.Fatal(err)
		}
		logs := &bytes.Buffer{}
		n := &node{dir: dir, auth: a, logs: logs,
			sync: &Syncer{Store: st, Authority: a, Clock: clock, Node: name, Log: slog.New(slog.NewTextHandler(logs, nil))}}
		if err := n.sync.Sync(ctx); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return n
	}
	a := start(t.TempDir(), "node-a")
	bDir := t.TempDir()
	copyCA(t, a.dir, bDir)
	b := start(bDir, "node-b")

	switchAt := t0.Add(time.Hour)
	if _, _, err := ca.Rollover(a.dir, ca.RolloverOptions{SwitchAt: switchAt, Token: tok}, clock); err != nil {
		t.Fatal(err)
	}
	if err := a.tick(t, clock); err != nil {
		t.Fatal(err)
	}
	if err := b.tick(t, clock); err != nil {
		t.Fatal(err)
	}
	if logs := b.logs.String(); !strings.Contains(logs, "copy DATA/ca") || strings.Contains(logs, "export-keys") {
		t.Errorf("node b before the switch was told:\n%s", logs)
	}
	clock.Set(switchAt.Add(time.Second))
	err = b.tick(t, clock)
	if err == nil || !strings.Contains(err.Error(), "copy DATA/ca") || strings.Contains(err.Error(), "export-keys") {
		t.Errorf("node b after the switch: %v", err)
	}
}

// The reviewer's case: two nodes share a token; the next CA, copied to
// node b, is discarded on node a, which destroys its keys in the token.
// Node b neither records it again nor switches to it, and both nodes go
// on issuing with the current CA past its switch time.
func TestDiscardedNextWithTokenKeysStaysDiscarded(t *testing.T) {
	tok := openToken(t)
	ctx := context.Background()
	clock := pkitest.NewClock(t0)
	path := filepath.Join(t.TempDir(), "scepter.db")
	sqlitetest.Create(t, path) // migrated once per test binary
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	start := func(dir, name string) *node {
		t.Helper()
		a, _, err := ca.LoadOrCreate(dir, ca.InitOptions{Token: tok}, clock)
		if err != nil {
			t.Fatal(err)
		}
		n := &node{dir: dir, auth: a, logs: &bytes.Buffer{}}
		n.sync = &Syncer{Store: st, Authority: a, Clock: clock, Node: name, Log: slog.New(slog.NewTextHandler(n.logs, nil))}
		if err := n.sync.Sync(ctx); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return n
	}
	a := start(t.TempDir(), "node-a")
	bDir := t.TempDir()
	copyCA(t, a.dir, bDir)
	b := start(bDir, "node-b")
	current, _ := a.auth.Active(clock.Now())

	switchAt := t0.Add(100 * time.Second)
	next, _, err := Rollover(ctx, st, a.dir, ca.RolloverOptions{SwitchAt: switchAt, Token: tok}, clock, "node-a cli:test")
	if err != nil {
		t.Fatal(err)
	}
	copyCA(t, a.dir, bDir)
	for _, n := range []*node{a, b} {
		if err := n.tick(t, clock); err != nil {
			t.Fatal(err)
		}
	}
	// What `scepter ca rollover --discard` does on node a.
	tokenKeys, err := ca.NextTokenKeys(a.dir)
	if err != nil || len(tokenKeys) == 0 {
		t.Fatalf("the next CA's keys in the token: %v, %v", tokenKeys, err)
	}
	if _, err := Discard(ctx, st, a.dir, clock.Now(), "cli:alice"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.DestroyDiscardedKeys(tok, tokenKeys); err != nil {
		t.Fatal(err)
	}

	for _, at := range []time.Time{t0.Add(time.Second), switchAt.Add(time.Second)} {
		clock.Set(at)
		for name, n := range map[string]*node{"a": a, "b": b} {
			if err := n.tick(t, clock); err != nil {
				t.Errorf("node %s at %s: %v", name, at, err)
			}
			if iss, _ := n.auth.Active(clock.Now()); iss.ID != current.ID {
				t.Errorf("node %s at %s issues with %s, want the current CA %s", name, at, iss.ID, current.ID)
			}
			if _, _, ok := n.auth.Next(clock.Now()); ok {
				t.Errorf("node %s at %s serves the discarded next CA", name, at)
			}
		}
		if gens, _ := st.CAGenerations(ctx); recorded(gens, next.ID) || len(gens) != 1 {
			t.Fatalf("at %s the store holds %d generations (the discarded one recorded again: %v)", at, len(gens), recorded(gens, next.ID))
		}
	}
	if _, err := current.Signer.Sign(rand.Reader, make([]byte, 32), crypto.SHA256); err != nil {
		t.Errorf("the current CA's key does not sign: %v", err)
	}
}
