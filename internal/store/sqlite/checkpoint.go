package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"time"
)

// Checkpoints. In WAL mode the commit that takes the log past
// wal_autocheckpoint pages (1000 by default) copies the log back into the
// database file and fsyncs that, all before its callers hear back: under
// load, every few dozen enrollments one batch waited for it. Instead a
// goroutine of its own, on a connection of its own, checkpoints after
// commits, at most every checkpointEvery. Its checkpoints are PASSIVE: they
// neither wait for nor block the writer or the readers. The writer's own
// automatic checkpoint stays as a backstop, far out (checkpointBackstop
// pages), should this goroutine fall behind.
const (
	checkpointEvery    = 200 * time.Millisecond
	checkpointBackstop = 16384 // pages: 64 MiB of log at 4 KiB pages
	// walSizeLimit is the size the log is cut back to when it starts over
	// (SQLite's journal_size_limit). It grows past that only while
	// checkpoints cannot keep up: a reader holding an old snapshot, a full
	// disk. Without a limit it would then keep that space for good.
	walSizeLimit = checkpointBackstop * 4096
)

type checkpointer struct {
	db      *sql.DB
	kick    chan struct{} // buffered 1: commits since the last checkpoint
	stop    chan struct{}
	stopped chan struct{}
	runs    atomic.Int64 // checkpoints run
}

// openOwnConn opens a pool of one connection to the database at path that
// is kept open, for a task that must not wait behind the store's own pools
// (the checkpointer, the write probe).
func openOwnConn(ctx context.Context, path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// startCheckpointer opens the checkpointer's connection and starts it.
func (s *Store) startCheckpointer(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, fmt.Sprintf(`PRAGMA wal_autocheckpoint = %d`, checkpointBackstop)); err != nil {
		return fmt.Errorf("wal_autocheckpoint: %w", err)
	}
	if _, err := s.w.ExecContext(ctx, fmt.Sprintf(`PRAGMA journal_size_limit = %d`, s.tun.walSizeLimit)); err != nil {
		return fmt.Errorf("journal_size_limit: %w", err)
	}
	db, err := openOwnConn(ctx, s.path)
	if err != nil {
		return err
	}
	s.ck = &checkpointer{db: db, kick: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	go s.checkpointLoop()
	return nil
}

// kickCheckpointer tells the checkpointer there is log to copy back.
func (s *Store) kickCheckpointer() {
	if s.ck != nil {
		kick(s.ck.kick)
	}
}

// kick wakes a background loop that waits on ch (buffered 1), unless it
// has a wake-up pending already.
func kick(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (s *Store) checkpointLoop() {
	defer close(s.ck.stopped)
	for {
		select {
		case <-s.ck.stop:
			return
		case <-s.ck.kick:
		}
		// An error (a disk error, say) is the next commit's to report; the
		// backstop checkpoints meanwhile.
		_, _ = s.ck.db.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
		s.ck.runs.Add(1)
		select {
		case <-s.ck.stop:
			return
		case <-time.After(checkpointEvery):
		}
	}
}

// stopCheckpointer stops the checkpointer and closes its connection.
func (s *Store) stopCheckpointer() error {
	if s.ck == nil {
		return nil
	}
	close(s.ck.stop)
	<-s.ck.stopped
	return s.ck.db.Close()
}
