// Package postgres is the store.Store on PostgreSQL (github.com/jackc/pgx/v5),
// for several scepter nodes sharing one database. It passes the same
// conformance suite (storetest) as the SQLite store, and its migrations
// (migrations/NNNN_*.sql) carry the same versions and meaning as SQLite's:
// times are BIGINT microseconds, blobs BYTEA, the same indexes and
// uniqueness rules, the dashboard's counters kept by PL/pgSQL triggers, and
// the certificate search on a pg_trgm GIN index.
//
// # Transactions
//
// SQLite serialises writers with BEGIN IMMEDIATE. Here every transaction
// runs at READ COMMITTED (PostgreSQL's default), and each guarantee of
// store.Store that must hold under concurrent writers, on one node or on
// several, is kept by the statement that decides it, never by a value read
// earlier and checked in Go:
//
//   - Uniqueness (serials, certificates, nonces, challenges, one pending
//     request per profile and transaction ID, live token names, CRL
//     numbers) by unique indexes, partial ones where SQLite has them: a
//     second writer of the same key waits for the first to commit and then
//     fails with unique_violation (SQLSTATE 23505), which is
//     store.ErrConflict.
//   - One-time use and state changes (consuming a challenge, counting its
//     misuse, completing or rejecting a pending request, finishing a
//     notification, taking over an expired nonce) by conditional UPDATEs
//     (WHERE consumed_at IS NULL …, WHERE status = 'pending', ON CONFLICT …
//     DO UPDATE … WHERE): a writer that waited for another's row lock
//     re-evaluates its WHERE clause on the row as committed, so of racing
//     writers exactly one changes it and the others see no row.
//   - Read-then-decide operations (revoke, unhold) read the certificate
//     with SELECT … FOR UPDATE, so the second waits and decides on what the
//     first wrote.
//   - The audit hash chain: the one audit_head row is read FOR UPDATE in
//     the transaction that appends, so appenders on every node take turns,
//     each chains to the head the one before it committed, and ids are the
//     head's plus one, as in SQLite.
//   - Notification claims pick the due rows with SELECT … FOR UPDATE SKIP
//     LOCKED inside the claiming UPDATE, which repeats the due conditions.
//   - CRLs: PutCRL takes a transaction-level advisory lock per issuer,
//     then reads the newest number and inserts one above it, so
//     concurrent writers of an issuer's CRLs take turns.
//
// Deadlocks (40P01) and serialization failures (40001), rare at READ
// COMMITTED but possible (two transactions moving the dashboard's counters
// of the same days in opposite orders), roll the transaction back; it is
// then run again from the start, a bounded number of times, and never
// reported as store.ErrConflict.
//
// # Migrations
//
// Open applies the embedded migrations through internal/store/migrate on a
// connection of its own that holds a session-level pg_advisory_lock for the
// whole run, so nodes starting together migrate one after the other; the
// connection is closed afterwards, which releases the lock even if the
// unlock failed. Opened WithoutMigrating (the CLI commands), it only reads
// schema_migrations and refuses a schema older than the binary's. A store
// whose schema another node migrates past this binary while it is open
// refuses issuances from then on (schema.go).
//
// # Connections
//
// The URL is a libpq-style postgres:// URL as pgx reads it (host, port,
// user, database, sslmode, PGPASSWORD and ~/.pgpass, …) with pgxpool's
// pool settings: pool_max_conns (default max(4, number of CPUs)),
// pool_min_conns, pool_max_conn_lifetime, pool_max_conn_idle_time and
// pool_health_check_period. application_name defaults to "scepter",
// connect_timeout to DefaultConnectTimeout, and lock_timeout (a server
// setting the URL may give, 0 for none) to DefaultLockTimeout.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLockKey is the pg_advisory_lock key migrators take. Advisory
// locks are per database, so servers of different databases on one
// PostgreSQL never wait for each other.
const migrationLockKey int64 = 0x5ce9_7e12_0000_0001

// maxAttempts bounds how often a transaction that failed with a deadlock or
// a serialization failure is run.
const maxAttempts = 8

// DefaultConnectTimeout bounds one connection attempt when the URL sets no
// connect_timeout.
const DefaultConnectTimeout = 15 * time.Second

// DefaultLockTimeout bounds how long a statement of the pool's sessions
// waits for one lock when the URL sets no lock_timeout. A lock another
// session holds (LOCK TABLE in psql, a long migration or maintenance)
// then fails the write with lock_not_available, which is store.ErrLocked:
// the protocol edges answer 503 naming it, well within the requests'
// budget (server.DefaultHandlerBudget, which an enrollment's two writes
// share), and the server ends the wait itself, rather than the request's
// context ending it and the pool's connection with it.
const DefaultLockTimeout = 10 * time.Second

// Store is the PostgreSQL implementation of store.Store. It is safe for
// concurrent use, also by several processes on one database.
type Store struct {
	pool *pgxpool.Pool
	name string // the redacted URL, for errors

	listMode pgx.QueryExecMode // how ListCertificates runs its query (customPlanMode)

	lockTimeout string // the sessions' lock_timeout, for LockCASetup to restore

	issues issueQueue // plain issuances waiting for a turn (groupissue.go)

	schema schemaState // a schema newer than this binary's, once seen (schema.go)

	connLost *atomic.Int64 // when an operation last met an ended connection, UnixNano (deadconn.go)

	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// Migrations returns the embedded migrations this package applies, for
// building a database at an older schema (migrate.Up with fewer files).
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the directory is embedded: only a build error gets here
	}
	return sub
}

// Open connects to the database at url (postgres://…), applies pending
// migrations under an advisory lock (unless migrate.WithoutMigrating) and returns
// the store. A database written by a newer scepter is refused with an
// error wrapping migrate.ErrDatabaseTooNew; a URL it cannot use as given
// (one a password's raw '@' makes ambiguous, one pgx cannot parse) with
// one wrapping ErrInvalidURL. The password never appears in its errors.
func Open(ctx context.Context, url string, opts ...migrate.Option) (*Store, error) {
	if err := checkUserinfo(url); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s, err := open(ctx, url, opts...)
	return s, scrubSecrets(err, url)
}

// open is Open once the URL's userinfo is known to be read alike by pgx
// and Redact.
func open(ctx context.Context, url string, opts ...migrate.Option) (*Store, error) {
	name := Redact(url)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, pgError("%s: %w", openLabel(name), parseFailure(url, err))
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = defaultMaxConns()
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "scepter"
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		// An address that drops packets would otherwise hold a start or a
		// CLI command for the operating system's TCP timeout (minutes).
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	if err := migrateUp(ctx, cfg.ConnConfig, name, opts); err != nil {
		return nil, err
	}
	// Set after migrating: a migration waits for the writers it must. A
	// lock_timeout in the URL goes to the server in the startup packet as
	// given; ours is SET on each new connection instead, since a pooler
	// such as pgbouncer refuses startup parameters it does not know.
	lockTimeout, ok := cfg.ConnConfig.RuntimeParams["lock_timeout"]
	if !ok {
		lockTimeout = fmt.Sprintf("%dms", DefaultLockTimeout.Milliseconds())
		cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
			_, err := c.Exec(ctx, `SELECT set_config('lock_timeout', $1, false)`, lockTimeout)
			return err
		}
	}
	connLost := new(atomic.Int64)
	cfg.ShouldPing = pingSinceLost(connLost)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, pgError("%s: %w", openLabel(name), err)
	}
	s := &Store{pool: pool, name: name, listMode: customPlanMode(cfg.ConnConfig), lockTimeout: lockTimeout, connLost: connLost}
	if err := s.sealAuditTrail(ctx); err != nil {
		pool.Close()
		return nil, pgError("%s: %w", openLabel(name), err)
	}
	if err := s.backfillCompromisedKeys(ctx); err != nil {
		pool.Close()
		return nil, pgError("%s: %w", openLabel(name), err)
	}
	if err := s.backfillKeyHashes(ctx); err != nil {
		pool.Close()
		return nil, pgError("%s: %w", openLabel(name), err)
	}
	if err := s.fillMissingKeyHashes(ctx); err != nil {
		pool.Close()
		return nil, pgError("%s: %w", openLabel(name), err)
	}
	certs, keys, err := s.sweepCompromisedKeys(ctx, sqlstore.CompromisedSweepBatch, nil)
	if err != nil {
		pool.Close()
		return nil, pgError("%s: %w", openLabel(name), err)
	}
	if report := migrate.CompromisedSweepReport(opts); report != nil && certs > 0 {
		report(certs, keys)
	}
	if err := s.backfillCAGenerationKeys(ctx); err != nil {
		pool.Close()
		return nil, pgError("%s: %w", openLabel(name), err)
	}
	return s, nil
}

// migrateUp brings the schema up to date as opts say (migrate.Apply) on
// a connection of its own (closed at the end, which drops the advisory
// lock with it whatever happened).
func migrateUp(ctx context.Context, cc *pgx.ConnConfig, name string, opts []migrate.Option) error {
	db := stdlib.OpenDB(*cc.Copy())
	defer db.Close()
	db.SetMaxOpenConns(1)
	// A schema that is current needs no lock: a node starts at once even
	// while another session holds it. Otherwise Apply takes the lock and
	// reads the schema again under it.
	if _, err := migrate.Check(ctx, db, Migrations(), dialect()); err == nil {
		return nil
	}
	if err := migrate.Apply(ctx, db, Migrations(), dialectReporting(migrate.LockWaitReport(opts), lockPoll), opts...); err != nil {
		return pgError("%s: %w", openLabel(name), err)
	}
	return nil
}

// lockPoll is how often a migrator tries the migration lock while another
// session holds it; lockWaitReport how often it says it still waits.
const (
	lockPoll       = time.Second
	lockWaitReport = 10 * time.Second
)

// dialect is the migrate.Dialect of this package: a session-level advisory
// lock held by the migrating connection for the whole run.
func dialect() migrate.Dialect { return dialectReporting(nil, lockPoll) }

// dialectReporting is dialect, telling report (when set) that it waits
// for the lock another session holds, and who that is, at first and every
// lockWaitReport; it tries the lock every poll.
func dialectReporting(report func(holder string, waited time.Duration), poll time.Duration) migrate.Dialect {
	return migrate.Dialect{
		Name:     "postgres",
		HasTable: hasTable,
		Lock: func(ctx context.Context, conn *sql.Conn) (func(context.Context) error, error) {
			if err := waitMigrationLock(ctx, conn, report, poll); err != nil {
				return nil, err
			}
			return func(ctx context.Context) error {
				var released bool
				if err := conn.QueryRowContext(ctx, `SELECT pg_advisory_unlock($1)`, migrationLockKey).Scan(&released); err != nil {
					return err
				}
				if !released {
					return errors.New("the migration lock was not held")
				}
				return nil
			}, nil
		},
	}
}

// waitMigrationLock takes the migration lock on conn, trying every poll
// while another session holds it, and saying so to report.
func waitMigrationLock(ctx context.Context, conn *sql.Conn, report func(holder string, waited time.Duration), poll time.Duration) error {
	start := time.Now()
	var reported time.Time
	for {
		var got bool
		if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, migrationLockKey).Scan(&got); err != nil {
			return err
		}
		if got {
			return nil
		}
		if report != nil && (reported.IsZero() || time.Since(reported) >= lockWaitReport) {
			reported = time.Now()
			report(migrationLockHolder(ctx, conn), time.Since(start).Round(time.Second))
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for the migration lock another session holds: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// migrationLockHolder names the session holding the migration lock (its
// pid, application_name and client address, as far as this role may read
// pg_stat_activity), or "" when it cannot be read.
func migrationLockHolder(ctx context.Context, conn *sql.Conn) string {
	var pid int64
	var app, addr string
	err := conn.QueryRowContext(ctx, `SELECT l.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), '')
		FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
		AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND l.classid::bigint = $1 AND l.objid::bigint = $2
		LIMIT 1`, migrationLockKey>>32, migrationLockKey&0xffff_ffff).Scan(&pid, &app, &addr)
	if err != nil {
		return ""
	}
	holder := fmt.Sprintf("pid %d", pid)
	if app != "" {
		holder += fmt.Sprintf(", application_name %q", app)
	}
	if addr != "" {
		holder += ", from " + addr
	}
	return holder
}

// hasTable reports whether the table exists in the schemas of the search
// path, as an unqualified name in a query would find it.
func hasTable(ctx context.Context, db *sql.DB, name string) (bool, error) {
	var ok bool
	err := db.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&ok)
	return ok, err
}

// Close closes the connection pool. It may be called more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(s.pool.Close)
	return nil
}

// Redact returns url with its password, if any, replaced by "xxxxx", for
// logs and error messages: the userinfo's, and the value of every
// password parameter of the query (password, libpq's sslpassword),
// however it is encoded (redactQuery). A string that is not a URL is
// returned as "postgres" alone: it may be a key=value string holding a
// password; so is a URL Open refuses for its '@'s (checkUserinfo), where
// what net/url takes for the password may be a piece of it.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || checkUserinfo(raw) != nil {
		return "postgres"
	}
	u.RawQuery = redactQuery(u.RawQuery)
	return u.Redacted()
}

// parseError is the reason pgx could not parse a connection string,
// without the string itself: pgx quotes it with the password masked on a
// best-effort basis, and url.Parse errors quote it whole.
func parseError(err error) error {
	inner := errors.Unwrap(err)
	var ue *url.Error
	if errors.As(inner, &ue) {
		inner = ue.Err
	}
	if inner == nil {
		return errors.New("cannot parse the connection string")
	}
	return inner
}

// isUnique reports whether err is a unique violation, the only constraint
// error that means store.ErrConflict; NOT NULL or CHECK failures are bugs
// and stay plain errors.
func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// retryable reports whether err rolled the transaction back for a reason
// that running it again may not meet: a serialization failure or a
// deadlock.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// conflict turns a uniqueness violation into store.ErrConflict, keeping the
// server's message (which names the constraint) for the log.
func conflict(err error) error {
	if isUnique(err) {
		var pe *pgconn.PgError
		errors.As(err, &pe)
		return fmt.Errorf("%w (%s: %s)", store.ErrConflict, pe.ConstraintName, pe.Message)
	}
	return err
}

// withTx runs fn in a READ COMMITTED transaction and commits it when fn
// returns nil. A deadlock or serialization failure, in fn or at commit,
// runs the whole transaction again (fn must set its results afresh on each
// run), up to maxAttempts times; so does a connection the server had ended
// that fails it before its COMMIT is sent (deadconn.go).
func (s *Store) withTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return s.retry(ctx, func() error { return s.tryTx(ctx, fn) })
}

// execer runs a statement: the pool (a statement on its own) or a
// transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// withStatement is withTx for a write that is one statement (fn runs
// one): BEGIN, the statement and COMMIT go in one round trip to the server
// instead of three (sendTx), and commit as durably. Sent so rather than as
// a statement on its own, a connection the server had ended fails it at
// BEGIN, which shows nothing ran, and it runs again (deadconn.go).
func (s *Store) withStatement(ctx context.Context, fn func(execer) error) error {
	return s.retry(ctx, func() error { return fn(txExecer{pool: s.pool}) })
}

// withOrderedStatement is withStatement for a write that needs to be
// durable only before the next durable write that depends on it: the replay
// nonce and the serial reserved before signing, as in the SQLite store
// (groupcommit.go). Its commit is not flushed (synchronous_commit off for
// its transaction alone), which spares a WAL flush per enrollment for each.
// It is still visible to every node as soon as it returns, so a replay or a
// reused serial is refused at once. PostgreSQL writes its WAL in order and
// flushes it up to a point, so the durable commit of the certificate that
// follows, which is what acknowledges the enrollment, carries the earlier
// record with it; a crash before that loses both, and a certificate that
// nobody received.
func (s *Store) withOrderedStatement(ctx context.Context, fn func(execer) error) error {
	return s.retry(ctx, func() error { return fn(txExecer{pool: s.pool, ordered: true}) })
}

// txExecer runs each statement in a transaction of its own (sendTx: one
// round trip, as a statement sent on its own), whose commit is not flushed
// when ordered.
type txExecer struct {
	pool    *pgxpool.Pool
	ordered bool
}

func (t txExecer) Exec(ctx context.Context, sql string, args ...any) (tag pgconn.CommandTag, err error) {
	err = sendTx(ctx, t.pool, func(b *pgx.Batch) {
		if t.ordered {
			b.Queue(`SET LOCAL synchronous_commit TO OFF`)
		}
		b.Queue(sql, args...)
	}, func(br pgx.BatchResults) error {
		if t.ordered {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("set synchronous_commit: %w", err)
			}
		}
		tag, err = br.Exec()
		return err
	})
	return tag, err
}

// sendTx runs a READ COMMITTED transaction in one round trip: BEGIN, what
// queue queues, and COMMIT go in one batch, and read reads the results of
// what queue queued. Whatever fails does so inside the database, and the
// server then skips the rest of the batch, COMMIT included: nothing of it
// is recorded, and the connection goes back to the pool outside a
// transaction (endTx).
//
// read reads every result queue queued, so once COMMIT's answer is read
// the outcome is known: what closing the batch meets after it (the
// connection ended by the server, FATAL 57P01, before its ReadyForQuery)
// does not undo the commit, and is not reported as the outcome.
//
// A failure to acquire a connection, or of BEGIN's result that shows the
// server ended the session before it ran the batch, is marked as having
// run nothing (deadconn.go), for retry to run it again.
func sendTx(ctx context.Context, pool *pgxpool.Pool, queue func(*pgx.Batch), read func(pgx.BatchResults) error) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", notRun(ctx, err))
	}
	defer endTx(ctx, conn)
	var b pgx.Batch
	b.Queue(beginQuery)
	queue(&b)
	b.Queue(`COMMIT`)
	br := conn.SendBatch(ctx, &b)
	// Closed before endTx looks at the connection's transaction status.
	defer func() { _ = br.Close() }()
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("begin: %w", notRunFirst(ctx, err))
	}
	if err := read(br); err != nil {
		return err
	}
	return committed(br.Exec())
}

// retry runs try again after a deadlock or serialization failure, up to
// maxAttempts times in all, and at once after a failure that ran nothing
// because its connection had ended (ranNothing), up to deadConnRetries
// more times.
func (s *Store) retry(ctx context.Context, try func() error) error {
	var err error
	deadConns := 0
	for attempt := 1; ; attempt++ {
		err = try()
		s.noteEnded(ctx, err)
		if ranNothing(err) && deadConns < s.deadConnRetries() {
			// The pool has dropped that connection; the next is another,
			// or made afresh.
			deadConns++
			attempt--
			continue
		}
		if err == nil || !retryable(err) || attempt >= maxAttempts {
			return err
		}
		// A short, growing, jittered pause, so that the transactions
		// that collided do not collide again.
		wait := time.Duration(1<<min(attempt, 6)) * time.Millisecond
		wait += rand.N(wait)
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
	}
}

func (s *Store) tryTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("begin: %w", notRun(ctx, err))
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		// COMMIT was not sent: a session ended now rolls back.
		return notRun(ctx, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Times are stored as BIGINT microseconds since the Unix epoch, UTC, as in
// SQLite. The zero time.Time is stored as its own microsecond count in NOT
// NULL columns and as NULL in nullable ones; both read back as the zero
// time.

// defaultMaxConns is the pool size when the URL sets no pool_max_conns:
// pgxpool's own default, on the CPUs this process may use.
func defaultMaxConns() int32 { return int32(max(4, runtime.GOMAXPROCS(0))) }
