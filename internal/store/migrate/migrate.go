// Package migrate applies embedded, numbered SQL migrations to a database.
// It is shared by the SQLite and PostgreSQL drivers: each driver embeds its
// own dialect's files and passes a Dialect that says how to keep two
// migrators (two processes, two nodes) from applying the same file twice.
//
// Files are named NNNN_name.sql (the number is the version, at least one
// digit; the name is informational). Each file runs in its own transaction
// together with the row that records it in schema_migrations, so a file is
// either applied and recorded or not applied at all.
package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrDatabaseTooNew is returned (wrapped) when the database records a schema
// version this binary does not know: an older binary must not write to a
// schema it does not understand.
var ErrDatabaseTooNew = errors.New("database schema is newer than this binary")

// ErrDatabaseTooOld is returned (wrapped, in a *TooOldError) by Check when
// the database lacks migrations this binary has: code of this binary must
// not run on a schema it was not written for, and only the caller that
// owns the upgrade (the server) may migrate it.
var ErrDatabaseTooOld = errors.New("database schema is older than this binary")

// TooOldError says how far behind the database is: Have is the newest
// version it records (0 for none), Want the newest this binary has.
type TooOldError struct{ Have, Want int }

func (e *TooOldError) Error() string {
	return fmt.Sprintf("%v: database is at version %d, this binary expects %d", ErrDatabaseTooOld, e.Have, e.Want)
}

func (e *TooOldError) Is(target error) bool { return target == ErrDatabaseTooOld }

// TooNewError says that a database a running node uses was migrated past
// this binary while the node ran (a rolling upgrade's first new node):
// Have is the newest version the database records, Known the newest this
// binary has. It is ErrDatabaseTooNew.
type TooNewError struct{ Have, Known int }

func (e *TooNewError) Error() string {
	return fmt.Sprintf("%v: database is at version %d, this binary knows up to %d", ErrDatabaseTooNew, e.Have, e.Known)
}

func (e *TooNewError) Is(target error) bool { return target == ErrDatabaseTooNew }

// Migration is one numbered SQL file.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Dialect adapts the runner to one database.
type Dialect struct {
	// Name appears in error messages ("sqlite", "postgres").
	Name string
	// Lock, when set, is called once on the connection the whole run uses,
	// before anything is read, and the returned release func is called when
	// the run ends. PostgreSQL takes a session pg_advisory_lock here so that
	// nodes starting together migrate one after the other.
	Lock func(ctx context.Context, conn *sql.Conn) (release func(context.Context) error, err error)
	// Begin opens the transaction one file runs in; nil means
	// conn.BeginTx(ctx, nil). It must hold the database's write lock from
	// its first statement when Lock is nil, so that reading the applied
	// versions and applying the next file is one atomic step: SQLite begins
	// IMMEDIATE (the sqlite driver's DSN sets _txlock=immediate).
	Begin func(ctx context.Context, conn *sql.Conn) (*sql.Tx, error)
	// Now stamps applied_at; nil means time.Now.
	Now func() time.Time
	// HasTable reports whether the table exists, for Check and Version,
	// which read a database without creating schema_migrations in it.
	HasTable func(ctx context.Context, db *sql.DB, name string) (bool, error)
}

var fileName = regexp.MustCompile(`^([0-9]+)_([A-Za-z0-9_\-]+)\.sql$`)

// Load reads the migrations at the root of fsys, sorted by version. Files
// not ending in .sql are ignored; a .sql file with another name pattern, a
// version 0 or a repeated version is an error, because a silently skipped
// migration would leave the schema short.
func Load(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("migrate: read migrations: %w", err)
	}
	var ms []Migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migrate: %s: file name must be NNNN_name.sql", e.Name())
		}
		v, err := strconv.Atoi(m[1])
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migrate: %s: version must be a positive integer", e.Name())
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrate: %s and %s have the same version %d", prev, e.Name(), v)
		}
		seen[v] = e.Name()
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("migrate: read %s: %w", e.Name(), err)
		}
		ms = append(ms, Migration{Version: v, Name: m[2], SQL: string(body)})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	return ms, nil
}

// The bookkeeping SQL is written once for both dialects: $n placeholders
// and these types are understood by SQLite and PostgreSQL alike.
const (
	createTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at TEXT NOT NULL
)`
	selectApplied = `SELECT version, name FROM schema_migrations ORDER BY version`
	insertApplied = `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`
)

// Up applies the pending migrations of fsys to db in version order and
// returns the ones it applied (none when the schema is current). It refuses,
// with ErrDatabaseTooNew, a database that records a version fsys lacks.
func Up(ctx context.Context, db *sql.DB, fsys fs.FS, d Dialect) ([]Migration, error) {
	ms, err := Load(fsys)
	if err != nil {
		return nil, err
	}
	return up(ctx, db, ms, d)
}

// Latest returns the newest version of the migrations in fsys (0 for
// none).
func Latest(fsys fs.FS) (int, error) {
	ms, err := Load(fsys)
	if err != nil || len(ms) == 0 {
		return 0, err
	}
	return ms[len(ms)-1].Version, nil
}

// UpTo is Up with only the migrations of fsys up to version: the database
// as the binary that had no later ones left it, for tests of upgrades.
func UpTo(ctx context.Context, db *sql.DB, fsys fs.FS, d Dialect, version int) ([]Migration, error) {
	ms, err := Load(fsys)
	if err != nil {
		return nil, err
	}
	ms = slices.DeleteFunc(ms, func(m Migration) bool { return m.Version > version })
	return up(ctx, db, ms, d)
}

func up(ctx context.Context, db *sql.DB, ms []Migration, d Dialect) (applied []Migration, err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate %s: connect: %w", d.Name, err)
	}
	defer conn.Close()

	if d.Lock != nil {
		release, lerr := d.Lock(ctx, conn)
		if lerr != nil {
			return nil, fmt.Errorf("migrate %s: lock: %w", d.Name, lerr)
		}
		defer func() {
			// Release even when ctx is done: a session lock left held
			// would block every other migrator.
			if rerr := release(context.WithoutCancel(ctx)); rerr != nil && err == nil {
				err = fmt.Errorf("migrate %s: unlock: %w", d.Name, rerr)
			}
		}()
	}

	if err := inTx(ctx, conn, d, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, createTable)
		return err
	}); err != nil {
		return nil, fmt.Errorf("migrate %s: create schema_migrations: %w", d.Name, err)
	}

	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	for {
		var next *Migration
		// Reading what is applied and applying the next file happen in one
		// locked transaction, so a concurrent migrator sees either none or
		// all of it.
		err := inTx(ctx, conn, d, func(tx *sql.Tx) error {
			done, err := readApplied(ctx, tx)
			if err != nil {
				return err
			}
			next, err = pending(ms, done)
			if err != nil || next == nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, next.SQL); err != nil {
				return fmt.Errorf("apply %04d_%s: %w", next.Version, next.Name, err)
			}
			if _, err := tx.ExecContext(ctx, insertApplied, next.Version, next.Name,
				now().UTC().Format(time.RFC3339Nano)); err != nil {
				return fmt.Errorf("record %04d_%s: %w", next.Version, next.Name, err)
			}
			return nil
		})
		if err != nil {
			return applied, fmt.Errorf("migrate %s: %w", d.Name, err)
		}
		if next == nil {
			return applied, nil
		}
		applied = append(applied, *next)
	}
}

// Version returns the newest version db records: 0 for a database no
// migration has run on.
func Version(ctx context.Context, db *sql.DB, d Dialect) (int, error) {
	done, err := readAppliedIfAny(ctx, db, d)
	if err != nil {
		return 0, err
	}
	v := 0
	for _, a := range done {
		v = max(v, a.version)
	}
	return v, nil
}

// Check verifies, writing nothing, that db records every migration of fsys
// and no other: it refuses a database that lacks some with a *TooOldError
// (ErrDatabaseTooOld), one that records a version fsys lacks with
// ErrDatabaseTooNew, and one whose records do not match the files as Up
// does. It returns the database's version.
func Check(ctx context.Context, db *sql.DB, fsys fs.FS, d Dialect) (int, error) {
	ms, err := Load(fsys)
	if err != nil {
		return 0, err
	}
	done, err := readAppliedIfAny(ctx, db, d)
	if err != nil {
		return 0, err
	}
	next, err := pending(ms, done)
	if err != nil {
		return 0, fmt.Errorf("migrate %s: %w", d.Name, err)
	}
	have := 0
	for _, a := range done {
		have = max(have, a.version)
	}
	if next != nil {
		return have, &TooOldError{Have: have, Want: ms[len(ms)-1].Version}
	}
	return have, nil
}

// readAppliedIfAny reads schema_migrations, or nothing when it does not
// exist.
func readAppliedIfAny(ctx context.Context, db *sql.DB, d Dialect) ([]appliedRow, error) {
	if d.HasTable == nil {
		return nil, fmt.Errorf("migrate %s: the dialect cannot tell whether schema_migrations exists", d.Name)
	}
	ok, err := d.HasTable(ctx, db, "schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("migrate %s: look for schema_migrations: %w", d.Name, err)
	}
	if !ok {
		return nil, nil
	}
	done, err := readApplied(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("migrate %s: %w", d.Name, err)
	}
	return done, nil
}

type appliedRow struct {
	version int
	name    string
}

// querier is a database or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func readApplied(ctx context.Context, q querier) ([]appliedRow, error) {
	rows, err := q.QueryContext(ctx, selectApplied)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	var out []appliedRow
	for rows.Next() {
		var r appliedRow
		if err := rows.Scan(&r.version, &r.name); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return out, nil
}

// pending checks the recorded versions against the known files and returns
// the next file to apply, or nil when the schema is current.
func pending(ms []Migration, applied []appliedRow) (*Migration, error) {
	known := make(map[int]Migration, len(ms))
	latest := 0
	for _, m := range ms {
		known[m.Version] = m
		latest = max(latest, m.Version)
	}
	// The newest version recorded is the one to name when this binary is
	// too old for the database, not the first unknown one met.
	newest := appliedRow{}
	for _, a := range applied {
		if a.version > newest.version {
			newest = a
		}
	}
	if newest.version > latest {
		return nil, fmt.Errorf("%w: database is at version %d (%s), this binary knows up to %d; run a newer scepter or restore a backup taken before the upgrade",
			ErrDatabaseTooNew, newest.version, newest.name, latest)
	}
	done := make(map[int]bool, len(applied))
	highest := 0
	for _, a := range applied {
		m, ok := known[a.version]
		if !ok {
			return nil, fmt.Errorf("database records version %d (%s), which this binary does not have", a.version, a.name)
		}
		if m.Name != a.name {
			return nil, fmt.Errorf("database records version %d as %q but this binary calls it %q; the migration files were changed after release",
				a.version, a.name, m.Name)
		}
		done[a.version] = true
		highest = max(highest, a.version)
	}
	for i := range ms {
		if done[ms[i].Version] {
			continue
		}
		if ms[i].Version < highest {
			return nil, fmt.Errorf("migration %04d_%s is missing below applied version %d; the database was migrated out of order",
				ms[i].Version, ms[i].Name, highest)
		}
		return &ms[i], nil
	}
	return nil, nil
}

func inTx(ctx context.Context, conn *sql.Conn, d Dialect, fn func(*sql.Tx) error) error {
	var tx *sql.Tx
	var err error
	if d.Begin != nil {
		tx, err = d.Begin(ctx, conn)
	} else {
		tx, err = conn.BeginTx(ctx, nil)
	}
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Option changes how a store's Open treats its schema (Apply).
type Option func(*options)

type options struct {
	check    bool                                      // refuse pending migrations rather than apply them
	report   func(from, to int)                        // told what a migration did
	lockWait func(holder string, waited time.Duration) // told it waits for another migrator's lock
	swept    func(certs, keys int)                     // told what the upgrade's compromised-key sweep revoked
}

// WithoutMigrating has a store's Open take the schema as it finds it: a
// database that lacks migrations of this binary is refused with an error
// wrapping ErrDatabaseTooOld (a *TooOldError naming both versions) and
// left as it is. The CLI commands open so: a newer binary's command run
// beside an older server must not move the schema under it (the server's
// code would go on writing rows the new schema's invariants do not
// expect); the new server migrates when it starts.
func WithoutMigrating() Option {
	return func(o *options) { o.check = true }
}

// OnMigrate has a store's Open call report once it has applied
// migrations, with the schema version it found (0 for a new database) and
// the one it left. It is not called when the schema was current.
func OnMigrate(report func(from, to int)) Option {
	return func(o *options) { o.report = report }
}

// OnLockWait has a store's Open that waits for another session's
// migration lock (PostgreSQL) call report when it starts to wait and about
// every ten seconds after, with who holds the lock ("" when it cannot be
// read) and how long it has waited, so that the wait is never silent.
func OnLockWait(report func(holder string, waited time.Duration)) Option {
	return func(o *options) { o.lockWait = report }
}

// OnCompromisedSweep has a store's Open call report when the one-time
// sweep of schema version 32 revoked certificates: those an older
// scepter left valid though it revoked their key as compromised (it took
// no other certificate of the key along), certs of them, of keys keys.
// Counted in this Open: an Open cut short and run again reports the rest.
func OnCompromisedSweep(report func(certs, keys int)) Option {
	return func(o *options) { o.swept = report }
}

// CompromisedSweepReport is the OnCompromisedSweep report among opts, or
// nil.
func CompromisedSweepReport(opts []Option) func(certs, keys int) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o.swept
}

// LockWaitReport is the OnLockWait report among opts, or nil: for the
// store whose Dialect.Lock waits.
func LockWaitReport(opts []Option) func(holder string, waited time.Duration) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o.lockWait
}

// Apply brings db's schema to fsys's as opts say: it applies the pending
// migrations (Up) and reports them (OnMigrate), or, WithoutMigrating,
// checks that there are none (Check).
func Apply(ctx context.Context, db *sql.DB, fsys fs.FS, d Dialect, opts ...Option) error {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.check {
		_, err := Check(ctx, db, fsys, d)
		return err
	}
	// Read before Up takes its lock: another process migrating meanwhile
	// makes the range reported start lower than what this one applied,
	// no worse.
	from, err := Version(ctx, db, d)
	if err != nil {
		return err
	}
	applied, err := Up(ctx, db, fsys, d)
	if err != nil {
		return err
	}
	if len(applied) > 0 && o.report != nil {
		o.report(from, applied[len(applied)-1].Version)
	}
	return nil
}
