package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
)

// TestEndedPoolConnections: after PostgreSQL ended every session of the
// pool while they sat idle (pg_terminate_backend on all of them, as a
// failover, a restart or an administrator does), each kind of operation
// succeeds: its first round trip meets a dead connection, which ran
// nothing, and it runs again on another (the pool hands out the dead ones
// first, as it checks only those idle for a second).
func TestEndedPoolConnections(t *testing.T) {
	ctx := context.Background()
	dbURL := pgtest.Database(t)
	s, err := Open(ctx, pgtest.WithParam(t, dbURL, "pool_max_conns", testPoolSize))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	admin, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

	recorded, _ := plainIssuance(now, "de0d00", "default", 365)
	if err := s.RecordIssuance(ctx, *recorded); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSession(ctx, pki.Session{Hash: []byte("session-touched"), User: "admin", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}

	// endSessions opens every connection of the pool afresh, puts them
	// back idle, and has the server end them all (waiting until each
	// backend is gone, so that its FATAL is in the client's socket).
	endSessions := func(t *testing.T) {
		t.Helper()
		s.pool.Reset() // the dead ones a subtest may have left
		opened := fillPool(t, ctx, s)
		var ended int
		if err := admin.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
			FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&ended); err != nil {
			t.Fatal(err)
		}
		if ended != opened {
			t.Fatalf("%d sessions ended, want the pool's %d", ended, opened)
		}
		// Until each backend is gone, and its FATAL in the client's
		// socket: soon, and well within the second after which the pool
		// would ping them before handing them out.
		wait, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		for left := 1; left > 0; {
			if err := admin.QueryRow(wait, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&left); err != nil {
				t.Fatalf("waiting for the ended sessions to go: %v", err)
			}
		}
	}

	serial := 0
	for _, tc := range []struct {
		name string
		run  func() error
	}{
		{"Ping (a read)", func() error { return s.Ping(ctx) }},
		{"Certificate (a read of one row)", func() error {
			_, err := s.Certificate(ctx, recorded.Certificate.IssuerID, recorded.Certificate.SerialHex)
			return err
		}},
		{"ListCertificates (a read of rows)", func() error {
			certs, _, err := s.ListCertificates(ctx, store.CertFilter{})
			if err == nil && len(certs) == 0 {
				return errors.New("no certificate listed")
			}
			return err
		}},
		{"AppendAudit (a write transaction)", func() error {
			return s.AppendAudit(ctx, pki.AuditEvent{Time: now, Type: pki.EventEnrollFailed, Actor: "test", Outcome: "failure"})
		}},
		{"ReserveSerial (a transaction in one round trip)", func() error {
			serial++
			return s.ReserveSerial(ctx, "issuer-a", fmt.Sprintf("de0e%02x", serial), []byte{0x30, 0}, now)
		}},
		{"RememberNonce (an ordered statement)", func() error {
			serial++
			return s.RememberNonce(ctx, "tx-ended", []byte{byte(serial)}, now, now.Add(time.Hour))
		}},
		{"TouchToken (a statement)", func() error { return s.TouchToken(ctx, "no-such-token", now) }},
		{"CreateSession (a statement that inserts)", func() error {
			serial++
			return s.CreateSession(ctx, pki.Session{Hash: []byte{byte(serial)}, User: "admin", CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
		}},
		{"RecordIssuance (an enrollment's)", func() error {
			serial++
			in, _ := plainIssuance(now, fmt.Sprintf("de0f%02x", serial), "default", 365)
			return s.RecordIssuance(ctx, *in)
		}},
		{"RecordIssuance (a renewal's transaction)", func() error {
			serial++
			in, _ := plainIssuance(now, fmt.Sprintf("de10%02x", serial), "default", 365)
			in.Supersede = &store.CertRef{IssuerID: recorded.Certificate.IssuerID, SerialHex: recorded.Certificate.SerialHex}
			in.Certificate.RenewedFrom = recorded.Certificate.SerialHex
			return s.RecordIssuance(ctx, *in)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			endSessions(t)
			if err := tc.run(); err != nil {
				t.Errorf("after the server ended the pool's sessions: %v", err)
			}
		})
	}
}

// TestEndedConnectionNotRunAgain: of a transaction sent in one round trip
// (sendTx), only a failure that shows the server ran none of it counts as
// having run nothing: a closed socket at BEGIN's result may have come
// after a proxy passed the whole batch on and the server committed it.
func TestEndedConnectionNotRunAgain(t *testing.T) {
	ctx := context.Background()
	adminShutdown := &pgconn.PgError{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "57P01", Message: "terminating connection due to administrator command"}
	for _, tc := range []struct {
		name                string
		err                 error
		first, beforeCommit bool
	}{
		{"57P01 from the server", adminShutdown, true, true},
		{"57P02 from the server", &pgconn.PgError{Severity: "FATAL", Code: "57P02"}, true, true},
		{"57P03 from the server", &pgconn.PgError{Severity: "FATAL", Code: "57P03"}, true, true},
		{"08P01 (a pooler's own error)", &pgconn.PgError{Severity: "FATAL", Code: "08P01", Message: "server conn crashed?"}, false, true},
		{"a closed socket", fmt.Errorf("receive message: %w", io.ErrUnexpectedEOF), false, true},
		{"a refusal", &pgconn.PgError{Severity: "ERROR", Code: "23505"}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ranNothing(notRunFirst(ctx, tc.err)); got != tc.first {
				t.Errorf("at a batch's first result: ran nothing %v, want %v", got, tc.first)
			}
			if got := ranNothing(notRun(ctx, tc.err)); got != tc.beforeCommit {
				t.Errorf("before a COMMIT was sent: ran nothing %v, want %v", got, tc.beforeCommit)
			}
		})
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if ranNothing(notRunFirst(done, adminShutdown)) || ranNothing(notRun(done, adminShutdown)) {
		t.Error("a failure after the caller gave up is run again")
	}
}

// TestClosedPoolConnectionsPinged: after a pooler or proxy in front of
// PostgreSQL restarted (every connection of the pool closed, no word from
// the server), once an operation met one of them the pool pings the
// connections idle since before that, so a write sent with its COMMIT in
// one round trip, which a closed socket would fail in a way that cannot be
// run again (the proxy might have passed it on), gets a live one.
func TestClosedPoolConnectionsPinged(t *testing.T) {
	ctx := context.Background()
	dbURL := pgtest.WithParam(t, pgtest.Database(t), "pool_max_conns", testPoolSize)
	cut, through := newCutter(t, dbURL)
	s, err := Open(ctx, through)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var conns []*pgxpool.Conn
	for range s.pool.Config().MaxConns {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// All idle but the one an operation meets closed.
	inUse := conns[len(conns)-1]
	for _, c := range conns[:len(conns)-1] {
		c.Release()
	}
	cut.closeAll(nil)
	_, err = inUse.Exec(ctx, `SELECT 1`)
	if !connEnded(ctx, err) {
		t.Fatalf("a statement on a closed connection: %v, want it ended", err)
	}
	s.noteEnded(ctx, err) // as every operation does with its failures
	inUse.Release()

	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for i := range len(conns) {
		if err := s.ReserveSerial(ctx, "issuer-a", fmt.Sprintf("c105ed%02x", i), []byte{0x30, 0}, now); err != nil {
			t.Fatalf("ReserveSerial %d after the connections were closed: %v", i, err)
		}
	}
}
