package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/scepter/scepter/internal/store/sqlstore"
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
	// so a batch of enrollments never waits long behind the indexer. Under
	// load, 1000 makes one transaction of a second's enrollments (10–20 ms
	// for 500). Smaller ones stall the writer for less
	// (BenchmarkSearchIndex: 4.7 ms at 128) but cost the server more: at
	// 128, scepter bench at concurrency 8 on one core measured 7% more CPU
	// per enrollment and a higher p99 in every one of seven interleaved
	// rounds (FTS5 writes a segment per transaction, and merges them).
	searchIndexBatch = 1000
)

// searchText is the text the index holds for a certificate (subject,
// SANs and serial, lower case, RFC 4514 escapes removed), as the triggers
// of migrations/0016_search_unescaped.sql write it.
var searchText = sqlstore.SearchText("")

// subjectText is a certificate's subject as a search matches it.
var subjectText = sqlstore.SubjectText()

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

// catchUpSearch indexes every certificate committed before it was called,
// in transactions of at most searchIndexBatch certificates. Certificates
// committed meanwhile are the next call's, so a search under load does not
// chase them. The index and the mark move in the same transaction, so after
// a crash they still agree. The writes are ordered, not durable: the index
// can be rebuilt from the certificates, and a crash that loses it loses the
// mark with it.
func (s *Store) catchUpSearch(ctx context.Context) error {
	// From a reader, so that an idle indexer and a search on a quiet server
	// write nothing.
	var target, upto int64
	err := s.r.QueryRowContext(ctx, `SELECT COALESCE((SELECT MAX(id) FROM certificates), 0),
		(SELECT indexed_upto FROM certificates_search_progress)`).Scan(&target, &upto)
	if err != nil {
		return fmt.Errorf("index certificates for search: %w", err)
	}
	for upto < target {
		err := s.withOrderedTx(ctx, func(ctx context.Context, tx *wtx) error {
			var err error
			upto, err = indexCertificatesThrough(ctx, tx, target, searchIndexBatch)
			return err
		})
		if err != nil {
			return fmt.Errorf("index certificates for search: %w", err)
		}
	}
	return nil
}

// indexCertificatesThrough indexes up to batch certificates above the
// mark and at most target, moves the mark past them, and returns
// it (target when none is left: ids above the mark may be gone).
func indexCertificatesThrough(ctx context.Context, tx *wtx, target int64, batch int) (upto int64, err error) {
	if err := tx.QueryRowContext(ctx, `SELECT indexed_upto FROM certificates_search_progress`).Scan(&upto); err != nil {
		return 0, fmt.Errorf("read mark: %w", err)
	}
	var last sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT MAX(id) FROM (SELECT id FROM certificates WHERE id > ? AND id <= ? ORDER BY id LIMIT ?)`,
		upto, target, batch).Scan(&last)
	if err != nil {
		return 0, fmt.Errorf("find certificates: %w", err)
	}
	if !last.Valid {
		// Nothing above the mark up to target (deleted since, or indexed
		// by another process on the same file): leave the mark alone.
		return max(upto, target), nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO certificates_search (rowid, text)
		SELECT id, `+searchText+` FROM certificates
		WHERE id > ? AND id <= ? ORDER BY id`, upto, last.Int64); err != nil {
		return 0, fmt.Errorf("index: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE certificates_search_progress SET indexed_upto = ?`, last.Int64); err != nil {
		return 0, fmt.Errorf("move mark: %w", err)
	}
	return last.Int64, nil
}
