package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// discardedNext is a next issuing CA in DATA/ca/next that the store
// records as discarded (on another node): loadCLICA set it aside.
type discardedNext struct {
	issuer   *ca.Issuer
	switchAt time.Time
	discard  store.DiscardedCAGeneration
}

// loadCLICA loads the CA in dataDir read-only (ca.Load; with token,
// ca.LoadWithToken) for a CLI command, and has it treat a next issuing CA
// that st records as discarded as absent, as a server does: else a copy
// left in DATA/ca/next by a discard on another node would be taken for the
// current CA once its switch time passed. A nil st (a command without a
// store) applies nothing. The discards are read once. It returns the copy
// set aside, if any.
func loadCLICA(ctx context.Context, st discardLister, dataDir string, token keys.Token, clock pki.Clock) (*ca.Authority, *discardedNext, error) {
	a, err := ca.LoadWithToken(dataDir, token, clock)
	if err != nil || st == nil {
		return a, nil, err
	}
	list, err := st.DiscardedCAGenerations(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the discarded CA generations in the store: %w", err)
	}
	if len(list) == 0 {
		return a, nil, nil
	}
	// The next CA, also one past its switch time, which Active serves
	// until it is set aside.
	now := clock.Now()
	var next *ca.Issuer
	at, hasNext := a.SwitchAt()
	switch {
	case hasNext && now.Before(at):
		next, _, _ = a.Next(now)
	case hasNext:
		next, _ = a.Active(now)
	}
	ids := make([]string, len(list))
	var d *discardedNext
	for i, g := range list {
		ids[i] = g.IssuerID
		if next != nil && g.IssuerID == next.ID {
			d = &discardedNext{issuer: next, switchAt: at, discard: g}
		}
	}
	a.SetDiscardedNext(ids)
	return a, d, nil
}

// discardedNextOnDisk returns the store's record of the next issuing CA
// in DATA/ca/next when the store lists it among discards; ok is false
// when DATA/ca/next holds none, or one not discarded.
func discardedNextOnDisk(dataDir string, discards []store.DiscardedCAGeneration) (d store.DiscardedCAGeneration, ok bool, err error) {
	if len(discards) == 0 {
		return d, false, nil
	}
	id, _, present, err := ca.NextOnDisk(dataDir)
	if err != nil || !present {
		return d, false, err
	}
	for _, g := range discards {
		if g.IssuerID == id {
			return g, true, nil
		}
	}
	return d, false, nil
}

// discardedNextWarning is what a server logs while DATA/ca/next holds a
// next issuing CA discarded on another node.
func discardedNextWarning(d store.DiscardedCAGeneration) string {
	return fmt.Sprintf("this node's next issuing CA %s (%s) was discarded at %s by %s: this node does not serve it and never switches to it; "+
		"run 'scepter ca rollover --discard' on this node to remove its files", d.IssuerID, filepath.Join("DATA", "ca", ca.NextDir),
		d.DiscardedAt.UTC().Format(time.RFC3339), d.DiscardedBy)
}

// openShowStore opens the store for a command that only shows the CA:
// nil, saying nothing, when there is none (no --store, no database in the
// data directory). One that cannot be opened is said on stderr and left
// out, so that the CA is still shown, without the store's discards.
func (s *storeFlags) openShowStore(ctx context.Context, e env) (store.Store, error) {
	if s.store.url == "" {
		if _, err := os.Stat(s.dbPath()); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
	}
	st, err := s.openExistingStore(ctx)
	var usage usageError
	if errors.As(err, &usage) {
		return nil, err
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "The store could not be read (%v): a next issuing CA discarded on another node is shown as if it were not.\n", err)
		return nil, nil
	}
	return st, nil
}
