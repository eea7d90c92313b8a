package sqlite

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/store"
)

func searchSerials(t *testing.T, s *Store, term string) string {
	t.Helper()
	certs, _, err := s.ListCertificates(context.Background(), store.CertFilter{Search: term, Limit: 100})
	if err != nil {
		t.Fatalf("search %q: %v", term, err)
	}
	var serials []string
	for _, c := range certs {
		serials = append(serials, c.SerialHex)
	}
	return fmt.Sprint(serials) // one comparable value
}

func indexedUpto(t *testing.T, s *Store) int64 {
	t.Helper()
	var upto int64
	if err := s.r.QueryRow(`SELECT indexed_upto FROM certificates_search_progress`).Scan(&upto); err != nil {
		t.Fatal(err)
	}
	return upto
}

func record(t *testing.T, s *Store, serial string) {
	t.Helper()
	if err := s.RecordIssuance(context.Background(), store.Issuance{Certificate: testCert(serial), Now: t0}); err != nil {
		t.Fatal(err)
	}
}

// The index is filled in the background, and a search first brings it up
// to date: it finds a certificate recorded just before it, whatever the
// indexer has done.
func TestSearchSeesWhatWasCommitted(t *testing.T) {
	s := openTemp(t)
	s.stopSearchIndexer() // only searches index, so each step is known
	for _, serial := range []string{"aa01", "aa02", "bb03"} {
		record(t, s, serial)
	}
	if got := indexedUpto(t, s); got != 0 {
		t.Fatalf("indexed_upto = %d before any search, want 0", got)
	}
	if got, want := searchSerials(t, s, "cn=aa0"), "[aa02 aa01]"; got != want {
		t.Fatalf("search = %s, want %s", got, want)
	}
	if got := indexedUpto(t, s); got != 3 {
		t.Fatalf("indexed_upto = %d after a search, want 3", got)
	}
	record(t, s, "aa04")
	if got, want := searchSerials(t, s, "aa0"), "[aa04 aa02 aa01]"; got != want {
		t.Fatalf("search = %s, want %s", got, want)
	}
	// More than one indexing transaction's worth, from several goroutines
	// (the committer groups them: one by one they cost some 4 s of CPU
	// under the race detector; the indexer indexes by id, in any order).
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < searchIndexBatch+5; i += 8 {
				if err := s.RecordIssuance(context.Background(), store.Issuance{Certificate: testCert(fmt.Sprintf("cc%05d", i)), Now: t0}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if err := s.catchUpSearch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := indexedUpto(t, s), int64(4+searchIndexBatch+5); got != want {
		t.Fatalf("indexed_upto = %d, want %d", got, want)
	}
	if got, want := searchSerials(t, s, fmt.Sprintf("cc%05d", searchIndexBatch+4)), fmt.Sprintf("[cc%05d]", searchIndexBatch+4); got != want {
		t.Fatalf("search = %s, want %s", got, want)
	}
}

// Without any search, the indexer catches up by itself after a recording.
func TestSearchIndexerRunsInBackground(t *testing.T) {
	s := openTemp(t)
	record(t, s, "dd01")
	record(t, s, "dd02")
	deadline := time.Now().Add(10 * time.Second)
	for indexedUpto(t, s) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("indexed_upto = %d after 10 s, want 2", indexedUpto(t, s))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A deleted certificate leaves the index only if it was in it, and a
// certificate that reuses the id of an indexed one (SQLite's ids are
// MAX(id) + 1) is indexed at once. No code deletes certificates; an
// operator's hand edit may.
func TestSearchIndexAcrossDeletes(t *testing.T) {
	s := openTemp(t)
	s.stopSearchIndexer()
	record(t, s, "ee01")
	record(t, s, "ee02")
	if got := searchSerials(t, s, "ee0"); got != "[ee02 ee01]" {
		t.Fatalf("search = %s", got)
	}
	record(t, s, "ee03") // id 3, not indexed yet
	for _, id := range []int{3, 2} {
		if _, err := s.w.Exec(`DELETE FROM certificates WHERE id = ?`, id); err != nil {
			t.Fatal(err)
		}
	}
	record(t, s, "ff02") // reuses id 2, at the mark
	if got := indexedUpto(t, s); got != 2 {
		t.Fatalf("indexed_upto = %d, want 2", got)
	}
	for term, want := range map[string]string{"ee0": "[ee01]", "ff02": "[ff02]", "ee03": "[]"} {
		if got := searchSerials(t, s, term); got != want {
			t.Errorf("search %q = %s, want %s", term, got, want)
		}
	}
	var check string
	if err := s.w.QueryRow(`INSERT INTO certificates_search (certificates_search, rank) VALUES ('integrity-check', 0) RETURNING 'ok'`).Scan(&check); err != nil {
		t.Fatalf("integrity-check of the search index: %v", err)
	}
}

// The store merges the search index itself, in small steps (see
// takeSearchMerging): FTS5's own merging is off in every database it opens,
// a new one and one an older version left with it on, and after the
// indexer's merges every certificate is still found, and no level is left
// with segments to merge.
func TestSearchIndexMergedInSmallSteps(t *testing.T) {
	s := openTemp(t)
	s.stopSearchIndexer()
	ctx := context.Background()
	automerge := func() int {
		t.Helper()
		var v int
		if err := s.r.QueryRowContext(ctx, `SELECT v FROM certificates_search_config WHERE k = 'automerge'`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := automerge(); got != 0 {
		t.Fatalf("automerge = %d in a new database, want 0", got)
	}
	// As an older version left it: FTS5's default.
	if _, err := s.w.ExecContext(ctx, `INSERT INTO certificates_search (certificates_search, rank) VALUES ('automerge', 4)`); err != nil {
		t.Fatal(err)
	}
	if err := s.takeSearchMerging(ctx); err != nil {
		t.Fatal(err)
	}
	if got := automerge(); got != 0 {
		t.Fatalf("automerge = %d after opening a database that had it on, want 0", got)
	}

	const n = 7*searchIndexBatch + 5 // within a page of ListCertificates (1000)
	for i := range n {
		record(t, s, fmt.Sprintf("dd%05d", i))
	}
	if err := s.catchUpSearch(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.mergeSearchIndex(ctx); err != nil {
		t.Fatal(err)
	}
	err := s.withOrderedTx(ctx, func(ctx context.Context, tx *wtx) error {
		merged, err := mergeSearchStep(ctx, tx, searchMergePages)
		if merged {
			t.Error("a merge step found work left after mergeSearchIndex")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1, searchIndexBatch, n / 2, n - 1} {
		serial := fmt.Sprintf("dd%05d", i)
		if got, want := searchSerials(t, s, serial), "["+serial+"]"; got != want {
			t.Errorf("search %s = %s, want %s", serial, got, want)
		}
	}
	certs, _, err := s.ListCertificates(ctx, store.CertFilter{Search: "cn=dd", Limit: n + 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != n {
		t.Errorf("search cn=dd found %d certificates, want %d", len(certs), n)
	}
}
