package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/scepter/scepter/internal/health"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/migrate"
)

// schemaCheckInterval is how often a server on a shared store reads the
// store's schema version. In a rolling upgrade the first node of the new
// version migrates the schema while older nodes run; an older node then
// records no issuance (the store refuses it, inside the issuance's
// transaction too), and this check makes /readyz say so within this
// interval even when no issuance came, so that a load balancer sends
// clients to the upgraded nodes. One indexed read every 10 s.
const schemaCheckInterval = 10 * time.Second

// schemaChecker is a store that can tell its schema went past this
// binary's while the server runs: the PostgreSQL store. A SQLite store is
// used by one server only, and other commands never migrate it.
type schemaChecker interface {
	CheckSchema(ctx context.Context) error
	health.SchemaState
}

// schemaWatch reads the store's schema version for a running server and
// logs, once, when it is newer than this binary's.
type schemaWatch struct {
	store  schemaChecker
	log    *slog.Logger
	logged bool // the newer schema was logged; only ever by check's goroutine
}

// startSchemaWatch starts watching db's schema, every schemaCheckInterval
// until ctx ends, in a goroutine of background, and returns the readiness checks that report it: none
// for a store that cannot tell (SQLite).
func startSchemaWatch(ctx context.Context, background *sync.WaitGroup, db store.Store, log *slog.Logger) []health.Check {
	sc, ok := db.(schemaChecker)
	if !ok {
		return nil
	}
	w := &schemaWatch{store: sc, log: log}
	background.Go(func() { every(ctx, schemaCheckInterval, func() { w.check(ctx) }) })
	return []health.Check{health.StoreSchema(sc)}
}

// issuanceGate is the enrollment service's IssuanceGate for db: what the
// store last learnt of its schema, so that a node that knows the schema is
// newer refuses enrollments (503) before it claims, reserves, signs or
// holds anything, rather than signing a certificate its store then
// refuses to record. nil for a store that cannot tell (SQLite).
func issuanceGate(db store.Store) func() error {
	if sc, ok := db.(schemaChecker); ok {
		return sc.SchemaAhead
	}
	return nil
}

// check reads the schema version once. A store that cannot be read is the
// store check's business (and every request's): it is not logged here.
func (w *schemaWatch) check(ctx context.Context) {
	err := w.store.CheckSchema(ctx)
	var tooNew *migrate.TooNewError
	if w.logged || !errors.As(err, &tooNew) {
		return
	}
	w.logged = true
	w.log.Error("the store's schema is newer than this scepter: another node was upgraded and migrated it; "+
		"this node records no issuance and is not ready until it is upgraded (or restarted, if the store is restored to its version)",
		"store_schema", tooNew.Have, "node_schema", tooNew.Known)
}

// gateWatch keeps a background job that issues certificates (the OCSP
// responders', the HTTPS certificate) from running while the node is gated
// (issuanceGate): it would make a key, have its issuance refused, destroy
// the key and log an ERROR, every time it runs, for as long as the node
// is. It says so once at WARN; the job runs again once the gate opens.
// Used by one goroutine.
type gateWatch struct {
	gate func() error // nil: never gated (SQLite)
	log  *slog.Logger
	what string
	said bool
}

// closed reports whether the job must wait.
func (g *gateWatch) closed() bool {
	if g.gate == nil {
		return false
	}
	err := g.gate()
	if err == nil {
		g.said = false
		return false
	}
	if !g.said {
		g.log.Warn(g.what+" waits: this node issues nothing now", "err", err)
		g.said = true
	}
	return true
}
