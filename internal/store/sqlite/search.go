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
	// and searchMergePages the index pages one merge step writes: every
	// enrollment whose write is queued behind one of them waits for it, so
	// each is kept to a few milliseconds (BenchmarkSearchIndex, 20,000
	// certificates: at most about 5 ms of CPU, against 20–40 ms for
	// batches of 1000 with FTS5's own merging, which stalled the
	// enrollments in flight about once a second, longer as the inventory
	// grew). Smaller steps cost more in all (FTS5 writes a segment per
	// transaction, and merges them): about 35–45 µs of CPU per certificate
	// here against 22 µs, some 1% of an enrollment.
	searchIndexBatch = 128
	searchMergePages = 16
	// searchMergeSteps bounds the merge steps of one run of the indexer;
	// the next run goes on where it stopped.
	searchMergeSteps = 10000
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
		if s.catchUpSearch(ctx) == nil {
			_ = s.mergeSearchIndex(ctx)
		}
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

// Merging. FTS5 merges the segments its writes leave behind by itself
// (its automerge option), but in steps of 64 pages per level of the
// index, each inside the write that crossed a step's threshold: 20–35 ms
// on an inventory of tens of thousands, during which every enrollment
// queued behind that write waited. So the store turns automerge off
// (takeSearchMerging) and merges here, in transactions of
// searchMergePages pages each, queued like any write, until FTS5 finds no
// level with 'usermerge' (4) segments left to merge. Its crisismerge (16
// segments on one level merged at once) stays as the backstop it is.

// takeSearchMerging turns FTS5's automerge off for the search index, once
// per database: the setting is kept in the index's own config table.
func (s *Store) takeSearchMerging(ctx context.Context) error {
	var off int
	err := s.w.QueryRowContext(ctx, `SELECT count(*) FROM certificates_search_config WHERE k = 'automerge' AND v = 0`).Scan(&off)
	if err != nil {
		return fmt.Errorf("read the search index's automerge: %w", err)
	}
	if off > 0 {
		return nil
	}
	if _, err := s.w.ExecContext(ctx, `INSERT INTO certificates_search (certificates_search, rank) VALUES ('automerge', 0)`); err != nil {
		return fmt.Errorf("turn the search index's automerge off: %w", err)
	}
	return nil
}

// mergeSearchIndex merges the search index's segments, a step of
// searchMergePages pages per transaction, until a step finds nothing to
// merge (or after searchMergeSteps steps).
func (s *Store) mergeSearchIndex(ctx context.Context) error {
	for range searchMergeSteps {
		var merged bool
		err := s.withOrderedTx(ctx, func(ctx context.Context, tx *wtx) error {
			var err error
			merged, err = mergeSearchStep(ctx, tx, searchMergePages)
			return err
		})
		if err != nil {
			return fmt.Errorf("merge the search index: %w", err)
		}
		if !merged {
			return nil
		}
	}
	return nil
}

// mergeSearchStep asks FTS5 to merge about pages pages of the search
// index, and reports whether it did: the command counts as one change by
// itself, and every page it writes or deletes as one more.
func mergeSearchStep(ctx context.Context, tx *wtx, pages int) (merged bool, err error) {
	var before, after int64
	if err := tx.QueryRowContext(ctx, `SELECT total_changes()`).Scan(&before); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO certificates_search (certificates_search, rank) VALUES ('merge', ?)`, pages); err != nil {
		return false, err
	}
	if err := tx.QueryRowContext(ctx, `SELECT total_changes()`).Scan(&after); err != nil {
		return false, err
	}
	return after-before > 1, nil
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
