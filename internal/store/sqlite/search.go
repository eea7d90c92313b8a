package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// The trigram search index (certificates_search) is filled here rather than
// by a trigger on every insert (migrations/0010_search_in_background.sql):
// a goroutine indexes the certificates above certificates_search_progress's
// mark, many per transaction, at most every searchIndexEvery after a
// certificate was recorded; and a search brings the index up to date
// before it runs, so it never misses a certificate committed before it.
const (
	searchIndexEvery = time.Second
	// searchIndexBatch bounds the certificates indexed in one transaction,
	// so a batch of enrollments never waits long behind the indexer.
	searchIndexBatch = 1000
)

type searchIndexer struct {
	kick    chan struct{} // buffered 1: certificates recorded since the last run
	stop    context.CancelFunc
	stopped chan struct{}
}

func (s *Store) startSearchIndexer() {
	ctx, stop := context.WithCancel(context.Background())
	s.search = &searchIndexer{kick: make(chan struct{}, 1), stop: stop, stopped: make(chan struct{})}
	go s.searchIndexLoop(ctx)
}

// kickSearchIndexer tells the indexer there are certificates to index.
func (s *Store) kickSearchIndexer() {
	if s.search != nil {
		kick(s.search.kick)
	}
}

func (s *Store) searchIndexLoop(ctx context.Context) {
	defer close(s.search.stopped)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.search.kick:
		}
		// An error (a disk error, say) is the next write's to report; the
		// next kick or search tries again.
		_ = s.catchUpSearch(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(searchIndexEvery):
		}
	}
}

// stopSearchIndexer stops the indexer; it waits for a transaction it has
// started to finish, before the writer closes.
func (s *Store) stopSearchIndexer() {
	if s.search == nil {
		return
	}
	s.search.stop()
	<-s.search.stopped
}

// catchUpSearch indexes every certificate above the mark, in transactions
// of at most searchIndexBatch certificates. The index and the mark move in
// the same transaction, so after a crash they still agree. The writes are
// ordered, not durable: the index can be rebuilt from the certificates, and
// a crash that loses it loses the mark with it.
func (s *Store) catchUpSearch(ctx context.Context) error {
	for {
		behind, err := s.searchBehind(ctx)
		if err != nil || !behind {
			return err
		}
		var done bool
		err = s.withOrderedTx(ctx, func(ctx context.Context, tx *wtx) error {
			var err error
			done, err = indexNextCertificates(ctx, tx)
			return err
		})
		if err != nil {
			return fmt.Errorf("index certificates for search: %w", err)
		}
		if done {
			return nil
		}
	}
}

// searchBehind reports, from a reader, whether any certificate is above the
// mark, so an idle indexer and a search on a quiet server write nothing.
func (s *Store) searchBehind(ctx context.Context) (bool, error) {
	var behind bool
	err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM certificates
		WHERE id > (SELECT indexed_upto FROM certificates_search_progress))`).Scan(&behind)
	if err != nil {
		return false, fmt.Errorf("index certificates for search: %w", err)
	}
	return behind, nil
}

// indexNextCertificates indexes up to searchIndexBatch certificates above
// the mark and moves the mark past them; done is true when none is left.
func indexNextCertificates(ctx context.Context, tx *wtx) (done bool, err error) {
	var upto int64
	if err := tx.QueryRowContext(ctx, `SELECT indexed_upto FROM certificates_search_progress`).Scan(&upto); err != nil {
		return false, fmt.Errorf("read mark: %w", err)
	}
	var last sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT MAX(id) FROM (SELECT id FROM certificates WHERE id > ? ORDER BY id LIMIT ?)`,
		upto, searchIndexBatch).Scan(&last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("find certificates: %w", err)
	}
	if !last.Valid {
		return true, nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO certificates_search (rowid, text)
		SELECT id, lower(subject_dn || ' ' || sans || ' ' || serial_hex) FROM certificates
		WHERE id > ? AND id <= ? ORDER BY id`, upto, last.Int64); err != nil {
		return false, fmt.Errorf("index: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE certificates_search_progress SET indexed_upto = ?`, last.Int64); err != nil {
		return false, fmt.Errorf("move mark: %w", err)
	}
	var more bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM certificates WHERE id > ?)`, last.Int64).Scan(&more); err != nil {
		return false, fmt.Errorf("find certificates: %w", err)
	}
	return !more, nil
}
