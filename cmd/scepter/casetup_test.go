package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/postgres"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
)

// Two nodes starting together on an empty PostgreSQL database make one CA:
// the second waits for the first to record its CA, then is refused, naming
// what to copy, without writing a CA of its own or a ca.initialized event.
func TestNodesStartingTogetherMakeOneCA(t *testing.T) {
	url := pgtest.Database(t)
	dirs := []string{t.TempDir(), t.TempDir()}
	type result struct {
		dir    string
		err    error
		stderr string
	}
	results := make(chan result, len(dirs))
	for _, dir := range dirs {
		go func() {
			_, errOut, err := serveOnceWith(t, nil, "--data-dir", dir, "--store", url, "--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test")
			results <- result{dir, err, errOut}
		}()
	}
	var winner, loser *result
	for range dirs {
		r := <-results
		if r.err == nil {
			if winner != nil {
				t.Fatalf("both nodes started: two CAs on one store")
			}
			winner = &r
			continue
		}
		if loser != nil {
			t.Fatalf("neither node started:\n%v\n%s\n%v\n%s", loser.err, loser.stderr, r.err, r.stderr)
		}
		loser = &r
	}
	if winner == nil || loser == nil {
		t.Fatal("want one node started and one refused")
	}
	if !strings.Contains(loser.err.Error(), "this node's CA is not the CA recorded in the store") || !strings.Contains(loser.err.Error(), "import-keys") {
		t.Errorf("the second node: %v", loser.err)
	}
	if _, err := os.Stat(filepath.Join(loser.dir, "ca")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the second node wrote a CA of its own: %v", err)
	}
	st, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	evs, err := st.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventCAInitialized, Limit: 10})
	if err != nil || len(evs) != 1 {
		t.Errorf("%d ca.initialized events (%v), want 1", len(evs), err)
	}
	gens, err := st.CAGenerations(context.Background())
	if err != nil || len(gens) != 1 {
		t.Errorf("%d CA generations recorded (%v), want 1", len(gens), err)
	}
	// The first node starts again: it is the store's CA.
	if _, errOut, err := serveOnceWith(t, nil, "--data-dir", winner.dir, "--store", url, "--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test"); err != nil {
		t.Fatalf("the first node again: %v\n%s", err, errOut)
	}
}
