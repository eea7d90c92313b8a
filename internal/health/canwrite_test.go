package health_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/scepter/scepter/internal/health"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/server"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/postgres"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
)

// unwritable is a store that reads, and writes or not as the test says;
// with pingFails it neither reads nor writes.
type unwritable struct {
	mu        sync.Mutex
	err       error // CanWrite's answer
	pingFails bool  // Ping answers err too
}

func (u *unwritable) Ping(context.Context) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.pingFails {
		return u.err
	}
	return nil
}

func (u *unwritable) CanWrite(context.Context) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

func (u *unwritable) set(err error) {
	u.mu.Lock()
	u.err = err
	u.mu.Unlock()
}

// /readyz fails, naming the cause, while the store reads but cannot
// write (or, its SQLite file removed or replaced, neither reads nor
// writes), and is ready again once it can; the failure is logged once at
// ERROR however many probes see it.
func TestReadyzFailsWhileTheStoreCannotWrite(t *testing.T) {
	gone := fmt.Errorf("%w: sqlite: /data/scepter.db was removed while the server ran: %w; restore it and restart", store.ErrUnavailable, store.ErrFileGone)
	tests := []struct {
		name      string
		err       error
		pingFails bool
		state     string
	}{
		{"disk full", fmt.Errorf("%w: %w: commit: database or disk is full (13)", store.ErrUnavailable, store.ErrDiskFull), false, "store: cannot write: the disk is full\n"},
		{"locked", fmt.Errorf("%w: %w: begin: database is locked (5)", store.ErrUnavailable, store.ErrLocked), false, "store: cannot write: the database is locked by another process\n"},
		{"read-only", fmt.Errorf("%w: %w: attempt to write a readonly database (8)", store.ErrUnavailable, store.ErrReadOnly), false, "store: cannot write: the database is read-only\n"},
		{"other", fmt.Errorf("%w: disk I/O error (10)", store.ErrUnavailable), false, "store: cannot write (the log says why)\n"},
		{"file removed, seen by Ping", gone, true, "store: database file removed or replaced since start (the log says which, and what to do)\n"},
		{"file removed, seen by CanWrite", gone, false, "store: database file removed or replaced since start (the log says which, and what to do)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := fixture.New(t, fixture.Options{})
			var logs bytes.Buffer
			st := &unwritable{}
			c := health.New(health.Options{Clock: p.Clock, Log: slog.New(slog.NewTextHandler(&logs, nil))}, health.Store(st))
			mux, err := server.PlainMux(server.Handlers{Health: c})
			if err != nil {
				t.Fatal(err)
			}
			if code, body := get(t, mux, "/readyz"); code != http.StatusOK || body != "ready\nstore: ok\n" {
				t.Fatalf("/readyz with the store writing: %d %q", code, body)
			}

			st.mu.Lock()
			st.pingFails = tt.pingFails
			st.mu.Unlock()
			st.set(tt.err)
			for i := range 3 {
				p.Clock.Advance(health.DefaultCacheFor)
				code, body := get(t, mux, "/readyz")
				if want := "not ready: store\n" + tt.state; code != http.StatusServiceUnavailable || body != want {
					t.Fatalf("/readyz %d while the store cannot write: %d %q, want 503 %q", i+1, code, body, want)
				}
			}
			if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
				t.Errorf("%d ERROR lines for one failure, want 1:\n%s", n, logs.String())
			}

			st.set(nil)
			p.Clock.Advance(health.DefaultCacheFor)
			if code, body := get(t, mux, "/readyz"); code != http.StatusOK {
				t.Errorf("/readyz once the store writes again: %d %q, want 200", code, body)
			}
		})
	}
}

// On PostgreSQL, a lock another session holds that the writes of an
// issuance wait for (LOCK TABLE in psql, a long migration) fails /readyz
// within the checks' time, naming it, and the node is ready again once it
// is released.
func TestReadyzNamesALockOnPostgreSQL(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Database(t)
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p := fixture.New(t, fixture.Options{})
	c := health.New(health.Options{Clock: p.Clock, Log: slog.New(slog.DiscardHandler)}, health.Store(st))
	mux, err := server.PlainMux(server.Handlers{Health: c})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, mux, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz with the store writing: %d %q", code, body)
	}

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	if _, err := conn.Exec(ctx, `BEGIN; LOCK TABLE certificates IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	p.Clock.Advance(health.DefaultCacheFor)
	want := "not ready: store\nstore: cannot write: the database is locked by another process\n"
	if code, body := get(t, mux, "/readyz"); code != http.StatusServiceUnavailable || body != want {
		t.Fatalf("/readyz while another session locks certificates: %d %q, want 503 %q", code, body, want)
	}

	if _, err := conn.Exec(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	p.Clock.Advance(health.DefaultCacheFor)
	if code, body := get(t, mux, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz once the lock is released: %d %q, want 200", code, body)
	}
}
