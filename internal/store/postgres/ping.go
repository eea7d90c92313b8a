package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scepter/scepter/internal/store"
)

// Ping implements store.Store: one read of a real table, so it fails when
// the database cannot be read (the server down, the pool closed, the
// schema gone).
func (s *Store) Ping(ctx context.Context) error {
	var n int64
	if err := s.queryRow(ctx, `SELECT count(*) FROM audit_head`).Scan(&n); err != nil {
		return pgError("postgres: ping: %w", err)
	}
	return nil
}

// CanWrite implements store.Store: whether a transaction begun as every
// write begins it may write now. Reads go on while every write fails or
// waits when:
//
//   - the server's transactions are read-only (a standby after a failover
//     that left this node on the old primary's address, or
//     default_transaction_read_only): store.ErrReadOnly;
//   - another session holds a lock the writes of an issuance wait for (a
//     LOCK TABLE in psql, a long migration or maintenance, a session idle
//     in a transaction that holds the audit trail's head): store.ErrLocked.
//
// So it runs a probe, one round trip on a connection of the pool: a
// transaction that reads transaction_read_only, then takes, waiting at
// most probeLockWait for each, the locks an issuance takes (ROW EXCLUSIVE
// on the tables it writes, which no write of scepter's waits for, and the
// audit trail's head row FOR UPDATE, which each append holds until its
// commit), and rolls back: nothing written, no audit event. Callers
// (health.Checker) call it at most every few seconds. A full disk is not
// seen here: the server reports it only on the write that does not fit,
// whose error names it (store.ErrDiskFull).
func (s *Store) CanWrite(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return pgError("postgres: write check: acquire connection: %w", err)
	}
	defer endTx(ctx, conn)
	// The simple protocol: statements are parsed as they run, so the
	// parse of the FOR UPDATE, which takes a lock too, waits no longer
	// than the lock_timeout set before it.
	results, err := conn.Conn().PgConn().Exec(ctx, writeProbe).ReadAll()
	if len(results) > probeReadOnlyResult && len(results[probeReadOnlyResult].Rows) == 1 &&
		string(results[probeReadOnlyResult].Rows[0][0]) == "on" {
		return fmt.Errorf("%w: %w: postgres: the server's transactions are read-only (a standby, or default_transaction_read_only)", store.ErrUnavailable, store.ErrReadOnly)
	}
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "55P03" {
		// On this connection, once out of the failed transaction: the
		// pool may have no other.
		holders := "pg_locks and pg_stat_activity name it"
		if _, rerr := conn.Exec(ctx, `ROLLBACK`); rerr == nil {
			holders = lockHolders(ctx, conn)
		}
		return pgError("postgres: write check: a lock held by another session keeps writes waiting (%s): %w", holders, err)
	}
	return pgError("postgres: write check: %w", err)
}

// probeLockWait is how long the write probe waits for each lock: far
// longer than any write of scepter's holds the audit trail's head (until
// its commit is flushed), well within the readiness checks' time.
const probeLockWait = time.Second

// probeTables are the tables an issuance writes (the held request it
// completes, the SCEP nonce, the claim on its transaction and the
// dashboard's counters included), locked by the probe as a write locks
// them.
var probeTables = []string{
	"challenges", "nonces", "enrollment_requests", "transaction_claims", "serials",
	"certificates", "certificate_counts", "audit_events", "daily_counts", "audit_head",
}

// writeProbe is the write probe's transaction (see CanWrite); its result
// number probeReadOnlyResult is transaction_read_only.
var writeProbe = fmt.Sprintf(`BEGIN ISOLATION LEVEL READ COMMITTED;
SET LOCAL lock_timeout = %d;
SELECT current_setting('transaction_read_only');
LOCK TABLE %s IN ROW EXCLUSIVE MODE;
SELECT 1 FROM audit_head WHERE one = 1 FOR UPDATE;
ROLLBACK`, probeLockWait.Milliseconds(), strings.Join(probeTables, ", "))

const probeReadOnlyResult = 2

// lockHolders names the sessions that hold a lock on one of probeTables
// that writes wait for (their pid, application_name, client address and
// state, as far as this role may read pg_stat_activity), with how to end
// one; or, when none does, where else to look (a row lock shows only in
// the waiters).
func lockHolders(ctx context.Context, conn *pgxpool.Conn) string {
	const hint = "pg_locks and pg_stat_activity name it; SELECT pg_terminate_backend(pid) ends it"
	rows, err := conn.Query(ctx, `SELECT l.pid, l.mode, l.relation::regclass::text,
			coalesce(a.application_name, ''), coalesce(host(a.client_addr), ''), coalesce(a.state, '')
		FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'relation' AND l.granted AND l.pid <> pg_backend_pid()
		AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND l.mode IN ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')
		AND l.relation::regclass::text = ANY($1)
		ORDER BY l.pid, 3 LIMIT 5`, probeTables)
	if err != nil {
		return hint
	}
	defer rows.Close()
	var held []string
	for rows.Next() {
		var pid int64
		var mode, table, app, addr, state string
		if err := rows.Scan(&pid, &mode, &table, &app, &addr, &state); err != nil {
			return hint
		}
		h := fmt.Sprintf("pid %d holds %s on %s", pid, mode, table)
		if app != "" {
			h += fmt.Sprintf(", application_name %q", app)
		}
		if addr != "" {
			h += ", from " + addr
		}
		if state != "" {
			h += ", " + state
		}
		held = append(held, h)
	}
	if rows.Err() != nil || len(held) == 0 {
		return "a table or a row of " + strings.Join(probeTables, ", ") + ": " + hint
	}
	return strings.Join(held, "; ") + "; SELECT pg_terminate_backend(pid) ends it"
}
