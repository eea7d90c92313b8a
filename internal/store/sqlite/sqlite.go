// Package sqlite is the embedded store.Store: one database file, pure Go
// (modernc.org/sqlite, no cgo), WAL mode.
//
// Writes go through a pool of one connection whose transactions begin
// IMMEDIATE: writers in this process queue for that connection, and writers
// in other processes (a CLI run against the server's database) queue on the
// database lock under busy_timeout instead of failing with SQLITE_BUSY when
// a deferred transaction tries to upgrade its read lock. Reads go through a
// separate pool of read-only connections, which WAL lets run alongside the
// writer.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// busyTimeoutMS bounds how long a statement waits for another process's
// lock. Long enough to ride out a checkpoint or a slow disk; a request that
// waits longer has lost its client anyway.
const busyTimeoutMS = 10000

// Store is the SQLite implementation of store.Store. It is safe for
// concurrent use.
type Store struct {
	path   string
	file   os.FileInfo          // the database file Open opened (see checkFile)
	w      *sql.DB              // one connection, transactions BEGIN IMMEDIATE
	r      *sql.DB              // read-only connections
	gc     *committer           // queues the writes once Open has finished (see withTx)
	hot    map[string]*sql.Stmt // on w, prepared at Open (see hot.go)
	reads  sync.Map             // query → *sql.Stmt on r, prepared on first use (see readRow)
	ck     *checkpointer        // copies the WAL back in the background (see checkpoint.go)
	search *searchIndexer       // fills the search index in the background (see search.go)
	tun    tuning               // sizes Open was given (defaultTuning but in tests)

	probe     *sql.DB       // one connection for CanWrite's write probe (see ping.go)
	probeWait time.Duration // how long the probe waits for the write lock
	writes    writeOutcome  // the outcome of the writes since CanWrite's last call
	// diskWasFull: a write failed for a full disk and nothing has committed
	// since, so CanWrite's probe must find room for more than a page.
	diskWasFull atomic.Bool

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database at path, restricts the file
// to mode 0600 and applies pending migrations (unless
// migrate.WithoutMigrating). A
// database written by a newer scepter is refused with an error wrapping
// migrate.ErrDatabaseTooNew.
func Open(ctx context.Context, path string, opts ...migrate.Option) (*Store, error) {
	return open(ctx, path, defaultTuning(), opts...)
}

// tuning is what Open sizes by a constant, or measures of the machine.
// Tests set smaller values to exercise the same code on fewer rows or
// bytes, or a disk with no room; Open uses defaultTuning.
type tuning struct {
	keyHashBatch int // certificates per transaction of the key_hash backfill
	sweepBatch   int // keys per transaction of the upgrade's compromised-key sweep
	// sweptBatch, when set, is called after each committed batch of that
	// sweep: a test cuts the sweep short there.
	sweptBatch   func()
	walSizeLimit int64 // journal_size_limit, bytes
	// freeSpace measures the room left on a directory's file system, for
	// telling a full disk from a failing one when Open fails.
	freeSpace func(dir string) (uint64, error)
}

func defaultTuning() tuning {
	return tuning{keyHashBatch: sqlstore.KeyHashBatch, sweepBatch: sqlstore.CompromisedSweepBatch, walSizeLimit: walSizeLimit, freeSpace: freeSpace}
}

// open is Open with tun in place of defaultTuning.
func open(ctx context.Context, path string, tun tuning, opts ...migrate.Option) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := createPrivate(abs); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	file, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	// failed words an error of SQLite's as the reason Open failed, saying
	// so when it is a full disk.
	failed := func(err error) error {
		return fmt.Errorf("sqlite: open %s: %w", path, explainFullDisk(err, filepath.Dir(abs), tun.freeSpace))
	}
	if _, err := registeredWALVFS(); err != nil {
		return nil, failed(err)
	}
	s := &Store{path: abs, file: file, tun: tun}
	s.w, err = sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		return nil, failed(err)
	}
	// One writer connection: SQLite admits one writer at a time anyway, and
	// queueing in database/sql is cheaper and fairer than spinning in the
	// busy handler. It is never closed for idleness, so no reconnect cost.
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)
	if err := checkPragmas(ctx, s.w); err != nil {
		s.w.Close()
		return nil, failed(explainReadOnly(err, abs))
	}
	if err := migrate.Apply(ctx, s.w, Migrations(), dialect(), opts...); err != nil {
		s.w.Close()
		return nil, failed(err)
	}
	if err := s.sealAuditTrail(ctx); err != nil {
		s.w.Close()
		return nil, failed(err)
	}
	if err := s.backfillCompromisedKeys(ctx); err != nil {
		s.w.Close()
		return nil, failed(err)
	}
	if err := s.backfillKeyHashes(ctx); err != nil {
		s.w.Close()
		return nil, failed(err)
	}
	if err := s.fillMissingKeyHashes(ctx); err != nil {
		s.w.Close()
		return nil, failed(err)
	}
	certs, keys, err := s.sweepCompromisedKeys(ctx)
	if err != nil {
		s.w.Close()
		return nil, failed(err)
	}
	if report := migrate.CompromisedSweepReport(opts); report != nil && certs > 0 {
		report(certs, keys)
	}
	if err := s.backfillCAGenerationKeys(ctx); err != nil {
		s.w.Close()
		return nil, failed(err)
	}
	if err := s.takeSearchMerging(ctx); err != nil {
		s.w.Close()
		return nil, failed(err)
	}

	s.r, err = sql.Open("sqlite", dsn(abs, true))
	if err != nil {
		s.w.Close()
		return nil, failed(err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	s.r.SetMaxOpenConns(n)
	s.r.SetMaxIdleConns(n)
	if err := checkPragmas(ctx, s.r); err != nil {
		s.Close()
		return nil, failed(err)
	}
	if err := s.prepareHot(ctx); err != nil {
		s.Close()
		return nil, failed(err)
	}
	if err := s.startCheckpointer(ctx); err != nil {
		s.Close()
		return nil, failed(fmt.Errorf("checkpointer: %w", err))
	}
	if err := s.openProbe(ctx); err != nil {
		s.Close()
		return nil, failed(fmt.Errorf("write probe: %w", err))
	}
	s.startCommitter()
	s.startSearchIndexer()
	return s, nil
}

// Migrations returns the embedded migrations this package applies, for
// building a database at an older schema (migrate.Up with fewer files).
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the directory is embedded: only a build error gets here
	}
	return sub
}

// dialect is the migrate.Dialect for databases opened by this package. It
// needs no separate lock: every transaction on the writer pool begins
// IMMEDIATE (see dsn), which takes the database's write lock before the
// applied versions are read, so two processes migrating one file take turns.
func dialect() migrate.Dialect {
	return migrate.Dialect{Name: "sqlite", HasTable: hasTable}
}

// Close closes both connection pools. It may be called more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stopSearchIndexer()
		s.stopCommitter()
		var errs []error
		errs = append(errs, s.stopCheckpointer())
		s.reads.Range(func(_, st any) bool {
			errs = append(errs, st.(*sql.Stmt).Close())
			return true
		})
		if s.r != nil {
			errs = append(errs, s.r.Close())
		}
		if s.probe != nil {
			errs = append(errs, s.probe.Close())
		}
		errs = append(errs, s.w.Close())
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("sqlite: close %s: %w", s.path, err)
		}
	})
	return s.closeErr
}

// dsn builds a file: URI for path with the connection settings every
// connection of a pool gets. A URI (rather than a bare path) lets any file
// name through, '?' and '#' included, percent-encoded.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	q.Add("_pragma", "journal_mode(WAL)")
	// FULL syncs the WAL at every commit: an issued certificate is on disk
	// before its reply leaves (NORMAL could lose the last commits on power
	// loss).
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	// Registered here too, so that every connection of the package, tests
	// included, finds it; Open reports a failure to register.
	_, _ = registeredWALVFS()
	q.Set("vfs", walVFSName)
	if readOnly {
		// Guards against a write slipping onto the reader pool, where it
		// would not be serialised with the writer connection.
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Set("_txlock", "immediate")
		// Group commit gives every write a savepoint of its own, and SQLite
		// saves each page a savepoint modifies to a sub-journal first. On
		// disk that is two write(2) calls per page (a third of the store's
		// CPU per enrollment); in memory it costs at most a copy of the pages
		// one transaction modifies, which the page cache holds anyway.
		q.Add("_pragma", "temp_store(MEMORY)")
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	if !strings.HasPrefix(u.Path, "/") { // Windows drive paths: file:///C:/...
		u.Path = "/" + u.Path
	}
	return u.String()
}

// createPrivate creates the database file with mode 0600 before SQLite does
// (SQLite would use 0644 minus umask) and tightens an existing one: it holds
// every certificate, challenge hash and the audit trail. SQLite gives the
// -wal and -shm files it creates the mode of the database file; existing
// ones are tightened too.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// checkFile fails, marked store.ErrUnavailable and store.ErrFileGone, when
// the file at s.path is not the one Open opened: removed, or replaced by
// another file (a backup copied over it with mv). The open connections
// would go on writing to the file they hold, which nothing will read again
// (the next start, and every CLI command, opens the path), so a
// certificate recorded there would be lost along with its revocation
// state. It is one stat(2), run before every write transaction and by
// Ping, so that nothing more is issued into a file that is gone and
// /readyz says why.
func (s *Store) checkFile() error {
	now, err := os.Stat(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: sqlite: %s was removed while the server ran: %w; restore it and restart", store.ErrUnavailable, s.path, store.ErrFileGone)
	case err != nil:
		return fmt.Errorf("%w: sqlite: %w", store.ErrUnavailable, err)
	case !os.SameFile(s.file, now):
		return fmt.Errorf("%w: sqlite: %s was replaced by another file while the server ran: %w; restart to use it", store.ErrUnavailable, s.path, store.ErrFileGone)
	}
	return nil
}

// explainReadOnly says what SQLite's "attempt to write a readonly database
// (1544)" means: the database file may be writable, but its directory is
// not, and WAL mode needs to create the -wal and -shm files beside it (a
// data directory owned by another user, or mounted read-only).
func explainReadOnly(err error, path string) error {
	if resultCode(err) != sqlite3.SQLITE_READONLY_DIRECTORY {
		return err
	}
	return fmt.Errorf("%w: the directory %s is not writable by this process (user %d), and SQLite must create %s-wal and %s-shm there; run as the directory's owner or make it writable",
		err, filepath.Dir(path), os.Geteuid(), filepath.Base(path), filepath.Base(path))
}

// openRoom is the free space below which Open takes an I/O error of
// SQLite's for a full disk: opening needs 32 KiB for the -shm file and
// a few pages of log for each write, and a disk with less than this left
// is full for any purpose of the store's.
const openRoom = 1 << 20

// explainFullDisk says that the disk is full, wrapping store.ErrDiskFull,
// when err is SQLite failing for want of room in dir: SQLITE_FULL (as the
// running store takes it), or an I/O error while less than openRoom is
// free there. A full disk fails an existing database as one of these
// rather than SQLITE_FULL: growing its -shm file fails as
// SQLITE_IOERR_SHMSIZE, which reads as a failing disk. An I/O error on a
// disk with room is left as it is.
func explainFullDisk(err error, dir string, freeSpace func(string) (uint64, error)) error {
	code := resultCode(err) & 0xff
	if code != sqlite3.SQLITE_FULL && code != sqlite3.SQLITE_IOERR {
		return err
	}
	free, ferr := freeSpace(dir)
	switch {
	case ferr == nil && free < openRoom:
		return fmt.Errorf("%w (%d KiB free on the file system of %s): make room in the data directory, then try again: %w", store.ErrDiskFull, free>>10, dir, err)
	case code == sqlite3.SQLITE_FULL:
		return fmt.Errorf("%w: make room in the data directory, then try again: %w", store.ErrDiskFull, err)
	}
	return err
}

// checkPragmas verifies that a pool's connections got the settings the DSN
// asked for: a filesystem that cannot do WAL, for instance, makes SQLite
// keep the old journal mode without an error.
func checkPragmas(ctx context.Context, db *sql.DB) error {
	if err := connect(ctx, db); err != nil {
		return err
	}
	var mode string
	var sync, fk, busy int
	row := db.QueryRowContext(ctx, `SELECT
		(SELECT journal_mode FROM pragma_journal_mode),
		(SELECT synchronous FROM pragma_synchronous),
		(SELECT foreign_keys FROM pragma_foreign_keys),
		(SELECT timeout FROM pragma_busy_timeout)`)
	if err := row.Scan(&mode, &sync, &fk, &busy); err != nil {
		return fmt.Errorf("read connection settings: %w", err)
	}
	switch {
	case !strings.EqualFold(mode, "wal"):
		return fmt.Errorf("journal_mode is %q, want wal (is the file on a filesystem without shared memory?)", mode)
	case sync != 2:
		return fmt.Errorf("synchronous is %d, want 2 (FULL)", sync)
	case fk != 1:
		return fmt.Errorf("foreign_keys is off")
	case busy < busyTimeoutMS:
		return fmt.Errorf("busy_timeout is %d ms, want %d", busy, busyTimeoutMS)
	}
	return nil
}

// connect makes the pool's first connection. Switching a new database file
// to WAL (a DSN pragma) takes an exclusive lock, and SQLite answers a
// concurrent switch by another process with SQLITE_BUSY without waiting
// for busy_timeout; so a few short retries, bounded by the busy timeout.
func connect(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(busyTimeoutMS * time.Millisecond)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		err := db.PingContext(ctx)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// resultCode is SQLite's extended result code of err, or 0 (SQLITE_OK)
// when err does not come from SQLite.
func resultCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

func isBusy(err error) bool {
	return resultCode(err)&0xff == sqlite3.SQLITE_BUSY
}

// unavailable reports whether err is SQLite saying the database cannot be
// written now for a reason outside the request: the disk is full, the file
// system failed or went read-only, another process held the lock beyond
// busy_timeout, or memory ran out. The operator can fix each, and nothing of
// the failed transaction was kept, so a client should come back later
// rather than be told its request is wrong (or get a 500). A corrupt
// database, a constraint or a bug in a statement are not.
func unavailable(err error) bool {
	switch resultCode(err) & 0xff {
	case sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN,
		sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_PROTOCOL:
		return true
	}
	return false
}

// markUnavailable wraps err in store.ErrUnavailable when unavailable says
// so, for the protocol edges to answer 503 with Retry-After.
func markUnavailable(err error) error {
	if err != nil && unavailable(err) && !errors.Is(err, store.ErrUnavailable) {
		if cause := cannotWriteCause(err); cause != nil {
			return fmt.Errorf("%w: %w: %w", store.ErrUnavailable, cause, err)
		}
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
}

// cannotWriteCause is the store's name for why SQLite could not write, when
// its result code says: a full disk (SQLite reports ENOSPC as SQLITE_FULL
// too), a lock held past the busy timeout, a read-only file or file system.
func cannotWriteCause(err error) error {
	switch resultCode(err) & 0xff {
	case sqlite3.SQLITE_FULL:
		return store.ErrDiskFull
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return store.ErrLocked
	case sqlite3.SQLITE_READONLY:
		return store.ErrReadOnly
	}
	return nil
}

// isUnique reports whether err is a UNIQUE or PRIMARY KEY violation, the
// only constraint errors that mean store.ErrConflict; NOT NULL or CHECK
// failures are bugs and stay plain errors.
func isUnique(err error) bool {
	c := resultCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// conflict turns a uniqueness violation into store.ErrConflict, keeping the
// driver's message (which names the constraint) for the log.
func conflict(err error) error {
	if isUnique(err) {
		return fmt.Errorf("%w (%v)", store.ErrConflict, err)
	}
	return err
}
