package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/scepter/scepter/internal/health"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/store/postgres"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// TestSchemaWatch: a server on PostgreSQL whose store another node
// migrated past this binary (a newer version recorded by hand) finds it at
// its next periodic check: /readyz fails naming both versions and saying to
// upgrade the node, and the log says so once, at ERROR. While the schema
// matches it is ready and logs nothing.
func TestSchemaWatch(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Database(t)
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The newer node's connection.
	other, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	known, err := migrate.Latest(postgres.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	w := &schemaWatch{store: st, log: slog.New(slog.NewTextHandler(&logged, nil))}
	readyz := func() (int, string) {
		// A checker of its own each time: nothing cached between looks.
		c := health.New(health.Options{Clock: pki.SystemClock{}}, health.StoreSchema(st))
		rec := httptest.NewRecorder()
		c.Routes()["GET "+health.ReadyPath].ServeHTTP(rec, httptest.NewRequest(http.MethodGet, health.ReadyPath, nil))
		return rec.Code, rec.Body.String()
	}

	gate := issuanceGate(st)
	w.check(ctx)
	if code, body := readyz(); code != http.StatusOK || logged.Len() != 0 {
		t.Fatalf("at the store's own schema: /readyz %d %q, log %q; want 200 and nothing logged", code, body, logged.String())
	}
	if gate == nil || gate() != nil {
		t.Fatalf("at the store's own schema the enrollment service's gate is nil or closed")
	}
	if _, err := other.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'from_the_future', '2031-01-01T00:00:00Z')`, known+2); err != nil {
		t.Fatal(err)
	}
	w.check(ctx)
	w.check(ctx)
	code, body := readyz()
	want := "seen at version " + strconv.Itoa(known+2) + ", newer than this node's " + strconv.Itoa(known) +
		": upgrade this node, or restart it if the store was restored to its version"
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "store schema: "+want) {
		t.Errorf("after the migration: /readyz %d %q, want 503 with %q", code, body, want)
	}
	if n := strings.Count(logged.String(), "level=ERROR"); n != 1 || !strings.Contains(logged.String(), "store_schema="+strconv.Itoa(known+2)) ||
		!strings.Contains(logged.String(), "node_schema="+strconv.Itoa(known)) {
		t.Errorf("log %q: want one ERROR naming both versions", logged.String())
	}
	// The enrollment service refuses before it claims, reserves or signs.
	if err := gate(); !errors.Is(err, migrate.ErrDatabaseTooNew) || pki.ErrorCode(err) != pki.EUnavailable {
		t.Errorf("the enrollment service's gate after the migration: %v, want unavailable for a newer schema", err)
	}
}

// A SQLite store needs no watch: one server per data directory, and other
// commands never migrate it.
func TestSchemaWatchNotOnSQLite(t *testing.T) {
	st, err := sqlite.Open(context.Background(), t.TempDir()+"/scepter.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if checks := startSchemaWatch(t.Context(), new(sync.WaitGroup), st, slog.New(slog.DiscardHandler)); checks != nil {
		t.Errorf("SQLite store: %d schema checks, want none", len(checks))
	}
	if issuanceGate(st) != nil {
		t.Error("SQLite store: an issuance gate, want none")
	}
}

// A job that issues waits while the node is gated, saying so once (r55:
// the responder and HTTPS renewals made a key, had it refused, destroyed
// it and logged an ERROR every minute), and runs once the gate opens.
func TestGateWatch(t *testing.T) {
	var logb bytes.Buffer
	var shut error
	g := &gateWatch{gate: func() error { return shut }, log: slog.New(slog.NewTextHandler(&logb, nil)), what: "renewing the HTTPS certificate"}
	if g.closed() {
		t.Fatal("closed with the gate open")
	}
	shut = errors.New("the store's schema is newer")
	for range 3 {
		if !g.closed() {
			t.Fatal("open with the gate closed")
		}
	}
	if n := strings.Count(logb.String(), "level=WARN"); n != 1 || strings.Contains(logb.String(), "level=ERROR") {
		t.Errorf("%d WARN lines while gated, want 1 and no ERROR:\n%s", n, logb.String())
	}
	shut = nil
	if g.closed() {
		t.Error("closed once the gate opened")
	}
	if (&gateWatch{}).closed() {
		t.Error("a job without a gate (SQLite) waited")
	}
}
