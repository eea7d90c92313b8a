package scepserver_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/store/postgres"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
)

// syncBuffer is a log sink the server's goroutines write while the test
// reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// The first PKCSReq at a node after another node migrated its PostgreSQL
// store past this binary's schema, before the node's periodic check (and
// so its gate) knows, is refused at the serial reservation: 503 with
// Retry-After and the upgrade message, no serial reserved (nothing
// signed), no claim left on its transaction, and no ERROR logged for it
// (the service's WARN is enough), as for the requests the gate refuses
// after it.
func TestFirstEnrollmentAfterMigrationIsNotSigned(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	pg, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	var logged syncBuffer
	ts := newTestServer(t, serverOptions{db: pg, log: slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelError})),
		enroll: enroll.Config{IssuanceGate: pg.SchemaAhead}})
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	reserved := func() (serials, claims int) {
		t.Helper()
		if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM serials), (SELECT count(*) FROM transaction_claims)`).Scan(&serials, &claims); err != nil {
			t.Fatal(err)
		}
		return serials, claims
	}
	// One issued before the migration.
	der, _ := ts.build(t, reqParams{key: testKey(t, 0)})
	if resp, body := ts.postTo(t, "/scep", der); resp.StatusCode != http.StatusOK {
		t.Fatalf("before the migration: HTTP %d %q", resp.StatusCode, body)
	}
	serials, claims := reserved()
	known, err := migrate.Latest(postgres.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'from_the_future', '2031-01-01T00:00:00Z')`, known+1); err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the first meets the reservation's read, the next the gate
		der, _ := ts.build(t, reqParams{key: testKey(t, 1)})
		resp, body := ts.postTo(t, "/scep", der)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), postgres.SchemaAheadMessage) {
			t.Fatalf("request %d after the migration: HTTP %d %q (Retry-After %q), want 503 %q", i, resp.StatusCode, body, resp.Header.Get("Retry-After"), postgres.SchemaAheadMessage)
		}
	}
	if s, c := reserved(); s != serials || c != claims {
		t.Errorf("after the refusals: %d serials and %d claims, want %d and %d as before", s, c, serials, claims)
	}
	if logged.String() != "" {
		t.Errorf("the refusals were logged at ERROR:\n%s", logged.String())
	}
}
