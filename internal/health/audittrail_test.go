package health_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scepter/scepter/internal/health"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/server"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/postgres"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// trailStore is a store kind for the audit trail check's tests.
type trailStore struct {
	name string
	// open returns a way to open handles on one new, empty store (as
	// nodes and CLI commands each have theirs) and to run SQL on its
	// database behind the store's back.
	open func(t *testing.T) (handle func(t *testing.T) store.Store, exec func(t *testing.T, query string))
}

var trailStores = []trailStore{
	{"SQLite", func(t *testing.T) (func(*testing.T) store.Store, func(*testing.T, string)) {
		path := filepath.Join(t.TempDir(), "scepter.db")
		handle := func(t *testing.T) store.Store {
			t.Helper()
			st, err := sqlite.Open(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		}
		exec := func(t *testing.T, query string) {
			t.Helper()
			db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(query); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
		}
		return handle, exec
	}},
	{"PostgreSQL", func(t *testing.T) (func(*testing.T) store.Store, func(*testing.T, string)) {
		url := pgtest.Database(t)
		handle := func(t *testing.T) store.Store {
			t.Helper()
			st, err := postgres.Open(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		}
		exec := func(t *testing.T, query string) {
			t.Helper()
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			if _, err := conn.Exec(ctx, query); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
		}
		return handle, exec
	}},
}

// appendEvent writes one event through st, as any change does.
func appendEvent(st store.Store, at time.Time, actor string, i int) error {
	return st.AppendAudit(context.Background(), pki.AuditEvent{Time: at, Type: pki.EventChallengeCreated, Actor: actor,
		Outcome: "success", Detail: fmt.Sprint(i)})
}

// A trail changed outside scepter so that nothing can be chained on (a
// record inserted after the head, the head deleted) fails /readyz, naming
// the audit trail and the command that says where it breaks: every write
// is refused then. Once it is mended the node is ready again.
func TestReadyzFollowsTheAuditTrail(t *testing.T) {
	for _, kind := range trailStores {
		for _, c := range []struct {
			name          string
			tamper, mend  []string
			refusedAppend bool
		}{
			{"record after the head",
				[]string{`INSERT INTO audit_events (id, time, type, actor, outcome, reason)
					SELECT MAX(id) + 1, 0, 'certificate.revoked', 'mallory', 'success', 'x' FROM audit_events`},
				[]string{`DELETE FROM audit_events WHERE actor = 'mallory'`}, true},
			{"head deleted",
				[]string{`CREATE TABLE head_kept AS SELECT * FROM audit_head`, `DELETE FROM audit_head`},
				[]string{`INSERT INTO audit_head SELECT * FROM head_kept`, `DROP TABLE head_kept`}, true},
		} {
			t.Run(kind.name+"/"+c.name, func(t *testing.T) {
				handle, exec := kind.open(t)
				st := handle(t)
				clock := pkitest.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
				for i := range 3 {
					if err := appendEvent(st, clock.Now(), "cli:test", i); err != nil {
						t.Fatal(err)
					}
				}
				mux, err := server.PlainMux(server.Handlers{Health: health.New(health.Options{Clock: clock}, health.Store(st), health.AuditTrail(st))})
				if err != nil {
					t.Fatal(err)
				}
				if code, body := get(t, mux, "/readyz"); code != http.StatusOK || !strings.Contains(body, "audit trail: ok\n") {
					t.Fatalf("/readyz on an intact trail: %d\n%s", code, body)
				}

				for _, q := range c.tamper {
					exec(t, q)
				}
				// What the check stands for: no change can be written.
				if err := appendEvent(st, clock.Now(), "cli:test", 9); !errors.Is(err, store.ErrAuditTampered) {
					t.Fatalf("append to the tampered trail: %v, want ErrAuditTampered", err)
				}
				clock.Advance(health.DefaultCacheFor)
				code, body := get(t, mux, "/readyz")
				want := "audit trail: changed outside scepter, no write accepted (run scepter audit verify)\n"
				if code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "not ready: audit trail\n") ||
					!strings.Contains(body, want) || !strings.Contains(body, "store: ok\n") {
					t.Errorf("/readyz on the tampered trail: %d\n%s\nwant 503 naming the audit trail: %q", code, body, want)
				}

				for _, q := range c.mend {
					exec(t, q)
				}
				clock.Advance(health.DefaultCacheFor)
				if code, body := get(t, mux, "/readyz"); code != http.StatusOK {
					t.Errorf("/readyz on the mended trail: %d\n%s", code, body)
				}
				if err := appendEvent(st, clock.Now(), "cli:test", 10); err != nil {
					t.Errorf("append to the mended trail: %v", err)
				}
			})
		}
	}
}

// Other nodes and CLI commands append to the trail while the check runs,
// from its very first record on: the check never takes them for
// tampering.
func TestAuditTrailCheckWithConcurrentWriters(t *testing.T) {
	for _, kind := range trailStores {
		t.Run(kind.name, func(t *testing.T) {
			handle, _ := kind.open(t)
			checker := handle(t)
			check := health.AuditTrail(checker)
			const writers, each = 3, 40
			var wg sync.WaitGroup
			for w := range writers {
				st := handle(t)
				wg.Go(func() {
					for i := range each {
						if err := appendEvent(st, time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), fmt.Sprintf("cli:writer-%d", w), i); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			runs := 0
			for checking := true; checking; runs++ {
				select {
				case <-done:
					checking = false
				default:
				}
				if err := check.Run(context.Background()); err != nil {
					t.Fatalf("run %d, with appends under way: %v", runs, err)
				}
			}
			head, err := checker.AuditHead(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if head.Count != writers*each {
				t.Errorf("%d records written, want %d", head.Count, writers*each)
			}
			t.Logf("%d runs of the check during the appends", runs)
		})
	}
}
