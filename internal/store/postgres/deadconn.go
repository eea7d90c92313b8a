package postgres

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Connections the server ended while they sat in the pool. When
// PostgreSQL ends the pool's sessions (a failover or restart, a pooler
// restarting, pg_terminate_backend), every idle connection is dead, and
// the pool checks only those idle for a second before it hands them out.
// The first round trip on each then fails: a FATAL 57P01 the server sent
// as it ended the session, or a closed socket. Nothing of the operation
// ran on the server, so it is run again (retry, read, query) on another
// connection: the pool has dropped the dead one, and after at most its
// size the next is made afresh. Only failures that prove nothing was
// committed count (notRun marks them where that is known):
//
//   - a read: it changes nothing, whatever the failure;
//   - a transaction (withTx) before its COMMIT was sent, BEGIN included:
//     a session that ends uncommitted rolls back;
//   - a one-round-trip transaction (sendTx) whose first result, BEGIN's,
//     is the failure, when the failure shows that nothing was sent
//     (pgconn.SafeToRetry) or comes from the server ending the session
//     (57P01–57P03): the server answers in order, so it ended the session
//     before it ran BEGIN, and nothing after it. A closed socket at that
//     point may have come after the server committed (a proxy between
//     them restarting), so it is not run again; nor is any failure at or
//     after COMMIT (settle decides those for the issuance).
//
// So that such a failure is met once rather than on every connection the
// pool holds, the pool pings before it hands it out a connection that has
// sat idle since an operation last met an ended one (pingSinceLost): a
// round trip that costs nothing while no connection is lost.

// notRunError is a failure that ran nothing of the operation on the server
// because its connection had ended: the operation may run again on
// another connection.
type notRunError struct{ err error }

func (e *notRunError) Error() string { return e.err.Error() }
func (e *notRunError) Unwrap() error { return e.err }

// ranNothing reports whether err carries a notRunError.
func ranNothing(err error) bool {
	var nr *notRunError
	return errors.As(err, &nr)
}

// notRun marks err as having run nothing when the connection it failed on
// was ended or closed (connEnded): for a failure where nothing the server
// ran could have committed (a transaction before its COMMIT was sent).
func notRun(ctx context.Context, err error) error {
	if connEnded(ctx, err) && !ranNothing(err) {
		return &notRunError{err}
	}
	return err
}

// notRunFirst is notRun for the first result of a transaction sent in one
// round trip (sendTx): only a failure that shows nothing was sent, or the
// server's own end of the session, shows that its COMMIT did not run.
func notRunFirst(ctx context.Context, err error) error {
	if ctx.Err() != nil || ranNothing(err) {
		return err
	}
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe):
		if pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03" {
			return &notRunError{err}
		}
	case pgconn.SafeToRetry(err):
		return &notRunError{err}
	}
	return err
}

// pingSinceLost is the pool's ShouldPing: pgxpool's own rule (a
// connection idle for more than a second), and a connection idle since
// *lost (UnixNano, 0 for never), when an operation met one that had been
// ended: the server may have ended it too.
func pingSinceLost(lost *atomic.Int64) func(context.Context, pgxpool.ShouldPingParams) bool {
	return func(_ context.Context, p pgxpool.ShouldPingParams) bool {
		if p.IdleDuration > time.Second {
			return true
		}
		at := lost.Load()
		return at != 0 && time.Now().Add(-p.IdleDuration).UnixNano() <= at
	}
}

// noteEnded records, for pingSinceLost, that an operation met a connection
// that had been ended, when err says so.
func (s *Store) noteEnded(ctx context.Context, err error) {
	if connEnded(ctx, err) {
		s.connLost.Store(time.Now().UnixNano())
	}
}

// queryRow is s.pool.QueryRow for a statement that changes nothing: run
// again on another connection when the one it got had been ended.
func (s *Store) queryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return retriedRow{s: s, ctx: ctx, sql: sql, args: args}
}

type retriedRow struct {
	s    *Store
	ctx  context.Context
	sql  string
	args []any
}

func (r retriedRow) Scan(dest ...any) error {
	err := r.s.pool.QueryRow(r.ctx, r.sql, r.args...).Scan(dest...)
	for range r.s.deadConnRetries() {
		if !connEnded(r.ctx, err) {
			break
		}
		r.s.noteEnded(r.ctx, err)
		err = r.s.pool.QueryRow(r.ctx, r.sql, r.args...).Scan(dest...)
	}
	return err
}

// query is s.pool.Query for a statement that changes nothing: run again
// on another connection when the one it got had been ended before the
// first row came (a failure after rows were read is the caller's).
func (s *Store) query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	for retries := s.deadConnRetries(); ; retries-- {
		rows, err := s.pool.Query(ctx, sql, args...)
		s.noteEnded(ctx, err)
		if err != nil {
			if retries > 0 && connEnded(ctx, err) {
				continue
			}
			return nil, err
		}
		// The first round trip's answer: the first row, or the end.
		has := rows.Next()
		if !has {
			s.noteEnded(ctx, rows.Err())
		}
		if !has && retries > 0 && connEnded(ctx, rows.Err()) {
			continue
		}
		return &primedRows{Rows: rows, primed: true, has: has}, nil
	}
}

// primedRows is rows whose first Next was called already (by query).
type primedRows struct {
	pgx.Rows
	primed, has bool
}

func (r *primedRows) Next() bool {
	if r.primed {
		r.primed = false
		return r.has
	}
	return r.Rows.Next()
}
