package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/store"
)

// holdWriter takes the lead with a write that waits until the
// returned release is called, so that the writes started meanwhile queue up
// and form the next batch. release returns the held write's error.
func holdWriter(t *testing.T, s *Store) (release func() error) {
	t.Helper()
	started, proceed, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- s.withTx(context.Background(), func(ctx context.Context, tx *wtx) error {
			close(started)
			<-proceed
			return nil
		})
	}()
	<-started
	return func() error {
		close(proceed)
		return <-done
	}
}

// awaitWaiting waits until n callers are queued behind the running batch.
func awaitWaiting(t *testing.T, s *Store, n int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for s.gc.waiting.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d writers waiting, want %d", s.gc.waiting.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// startEach runs fn(0) … fn(n-1) on goroutines of their own; wait returns
// their errors once all have returned.
func startEach(n int, fn func(i int) error) (wait func() []error) {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i)
		}()
	}
	return func() []error {
		wg.Wait()
		return errs
	}
}

// reserveBehindHeldWrite reserves n serials (serial(i) for the i-th) from
// n goroutines queued behind a held write, then releases it. It returns
// each reservation's error and how many transactions committed meanwhile,
// the held write's included.
func reserveBehindHeldWrite(t *testing.T, s *Store, n int, serial func(int) string) (errs []error, commits int64) {
	t.Helper()
	ctx := context.Background()
	release := holdWriter(t, s)
	commits0, _ := s.CommitStats()
	wait := startEach(n, func(i int) error { return s.ReserveSerial(ctx, "gc", serial(i), nil, t0) })
	awaitWaiting(t, s, int64(n))
	if err := release(); err != nil {
		t.Fatal(err)
	}
	errs = wait()
	commits1, _ := s.CommitStats()
	return errs, commits1 - commits0
}

// committedSerial reports whether a reader (another connection, which sees
// committed data only) finds the serial.
func committedSerial(t *testing.T, s *Store, serial string) bool {
	t.Helper()
	var n int
	if err := s.r.QueryRow(`SELECT COUNT(*) FROM serials WHERE issuer_id = 'gc' AND serial_hex = ?`, serial).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func insertSerial(ctx context.Context, tx *wtx, serial string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO serials (issuer_id, serial_hex, reserved_at) VALUES ('gc', ?, 1)`, serial)
	return conflict(err)
}

// Writes that wait together commit together, and a conflict in one of them
// fails that one only.
func TestGroupCommitBatchesWaitingWrites(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	_, writes0 := s.CommitStats()
	// serials 0..9, each reserved twice
	errs, commits := reserveBehindHeldWrite(t, s, 20, func(i int) string { return fmt.Sprintf("%02x", i%10) })

	ok, conflicts := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, store.ErrConflict):
			conflicts++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 10 || conflicts != 10 {
		t.Errorf("%d reserved, %d conflicts; want 10 and 10", ok, conflicts)
	}
	for i := range 10 {
		if !committedSerial(t, s, fmt.Sprintf("%02x", i)) {
			t.Errorf("serial %02x was acknowledged but is not committed", i)
		}
	}
	_, writes := s.CommitStats()
	// The held write, then one transaction for the twenty that waited.
	if commits != 2 || writes-writes0 != 11 {
		t.Errorf("%d commits of %d writes, want 2 of 11", commits, writes-writes0)
	}
}

// On one P, writes whose goroutines are runnable when a leader starts its
// batch join that batch: the leader lets them run to their writes first.
// Without that, each write committed alone (the other goroutines could not
// run until the leader blocked), and paid for a commit of its own.
func TestGroupCommitLeaderLetsRunnableWritesJoin(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const n = 16
	commits0, writes0 := s.CommitStats()
	// On one P the n goroutines are all runnable before any of them runs:
	// this one keeps the P until it waits.
	errs := startEach(n, func(i int) error {
		return s.ReserveSerial(context.Background(), "gc", fmt.Sprintf("%02x", i), nil, t0)
	})()
	for i, err := range errs {
		if err != nil {
			t.Errorf("write %d: %v", i, err)
		}
	}
	commits1, writes1 := s.CommitStats()
	// One batch when nothing else intervenes; a stray preemption may split
	// it, but not into anything near one commit per write.
	if c, w := commits1-commits0, writes1-writes0; w != n || c > 3 {
		t.Errorf("%d writes in %d commits, want %d in at most 3", w, c, n)
	}
}

// A caller hears of its write only after the commit of its whole batch,
// and then a reader sees it.
func TestGroupCommitAnswersOnlyAfterCommit(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := context.Background()
	release := holdWriter(t, s)

	aDone := make(chan error, 1)
	go func() {
		aDone <- s.withTx(ctx, func(ctx context.Context, tx *wtx) error { return insertSerial(ctx, tx, "aa") })
	}()
	bRunning, bProceed, bDone := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		bDone <- s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
			close(bRunning)
			<-bProceed
			return insertSerial(ctx, tx, "bb")
		})
	}()
	awaitWaiting(t, s, 2)
	if err := release(); err != nil {
		t.Fatal(err)
	}
	<-bRunning
	select {
	case err := <-aDone:
		t.Fatalf("a write was answered (%v) before its batch committed", err)
	default:
	}
	if committedSerial(t, s, "aa") {
		t.Fatal("a reader sees a write whose batch has not committed")
	}
	close(bProceed)
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	if err := <-bDone; err != nil {
		t.Fatal(err)
	}
	if !committedSerial(t, s, "aa") || !committedSerial(t, s, "bb") {
		t.Fatal("acknowledged writes are not committed")
	}
}

// A write that fails undoes its own work only; one whose caller gave up
// before its turn does nothing; the others of the batch commit.
func TestGroupCommitFailureUndoesOnlyItsOwnWork(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := context.Background()
	release := holdWriter(t, s)

	boom := errors.New("boom")
	failDone, okDone, cancelDone := make(chan error, 1), make(chan error, 1), make(chan error, 1)
	go func() {
		failDone <- s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
			if err := insertSerial(ctx, tx, "f1"); err != nil {
				return err
			}
			return boom
		})
	}()
	go func() {
		okDone <- s.withTx(ctx, func(ctx context.Context, tx *wtx) error { return insertSerial(ctx, tx, "o1") })
	}()
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		cancelDone <- s.withTx(cctx, func(ctx context.Context, tx *wtx) error { return insertSerial(ctx, tx, "c1") })
	}()
	awaitWaiting(t, s, 3)
	cancel()
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if err := <-failDone; !errors.Is(err, boom) {
		t.Errorf("failing write: %v, want boom", err)
	}
	if err := <-okDone; err != nil {
		t.Errorf("good write: %v", err)
	}
	if err := <-cancelDone; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled write: %v, want context.Canceled", err)
	}
	if committedSerial(t, s, "f1") || committedSerial(t, s, "c1") {
		t.Error("the work of a failed or cancelled write was committed")
	}
	if !committedSerial(t, s, "o1") {
		t.Error("the good write is not committed")
	}
}

// When the batch's transaction is lost as a whole (here a write ends it
// behind the leader's back; in life a full disk or an I/O error), every
// write runs again alone and gets its own outcome.
func TestGroupCommitLostTransactionRunsEachAlone(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := context.Background()
	release := holdWriter(t, s)

	const n = 6
	wait := startEach(n, func(i int) error {
		return s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
			if i == 0 {
				_, err := tx.ExecContext(ctx, `ROLLBACK`)
				return err
			}
			return insertSerial(ctx, tx, fmt.Sprintf("l%d", i))
		})
	})
	awaitWaiting(t, s, n)
	if err := release(); err != nil {
		t.Fatal(err)
	}
	errs := wait()
	if errs[0] == nil {
		t.Error("the write that ended the transaction was acknowledged")
	}
	for i := 1; i < n; i++ {
		if errs[i] != nil {
			t.Errorf("write %d: %v", i, errs[i])
		}
		if !committedSerial(t, s, fmt.Sprintf("l%d", i)) {
			t.Errorf("write %d acknowledged but not committed", i)
		}
	}
	// The store goes on.
	if err := s.ReserveSerial(ctx, "gc", "after", nil, t0); err != nil {
		t.Fatal(err)
	}
}

// A write whose function panics fails alone, as an error, in a batch and
// alone; the others commit and the store goes on writing.
func TestGroupCommitPanicFailsOnlyItsWrite(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := context.Background()
	panicking := func(ctx context.Context, tx *wtx) error {
		if err := insertSerial(ctx, tx, "ff"); err != nil {
			return err
		}
		panic("boom")
	}

	release := holdWriter(t, s)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 1 {
				errs[i] = s.withTx(ctx, panicking)
				return
			}
			errs[i] = s.ReserveSerial(ctx, "gc", fmt.Sprintf("%02x", i), nil, t0)
		}()
	}
	awaitWaiting(t, s, 3)
	if err := release(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("the other writes of the batch failed: %v, %v", errs[0], errs[2])
	}
	if errs[1] == nil || !strings.Contains(errs[1].Error(), "panicked: boom") {
		t.Fatalf("the panicking write returned %v", errs[1])
	}
	if !committedSerial(t, s, "00") || !committedSerial(t, s, "02") || committedSerial(t, s, "ff") {
		t.Fatal("the batch's outcome is not its writes' own")
	}

	// Alone, then a write after it.
	if err := s.withTx(ctx, panicking); err == nil {
		t.Fatal("a lone panicking write succeeded")
	}
	if err := s.ReserveSerial(ctx, "gc", "03", nil, t0); err != nil || committedSerial(t, s, "ff") {
		t.Fatalf("after a panic: %v", err)
	}
}

// More writes than one transaction takes run in consecutive batches, the
// lead passing from one caller to the next; every one commits.
func TestGroupCommitLongQueueRunsInBatches(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	serial := func(i int) string { return fmt.Sprintf("%03x", i) }
	errs, commits := reserveBehindHeldWrite(t, s, maxBatch+36, serial)
	for i, err := range errs {
		if err != nil || !committedSerial(t, s, serial(i)) {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	// The held write, then the queue in two batches.
	if commits != 3 {
		t.Errorf("%d commits, want 3", commits)
	}
	s.gc.mu.Lock()
	defer s.gc.mu.Unlock()
	if s.gc.leading || len(s.gc.queue) != 0 {
		t.Error("the lead was not given up after the queue ran dry")
	}
}

// Close waits for the batch that is running and the writes queued behind
// it, then refuses new ones.
func TestGroupCommitCloseWaitsForQueuedWrites(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	release := holdWriter(t, s)
	queued := make(chan error, 1)
	go func() { queued <- s.ReserveSerial(ctx, "gc", "01", nil, t0) }()
	awaitWaiting(t, s, 1)
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while a write was running")
	case <-time.After(50 * time.Millisecond):
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if err := <-queued; err != nil {
		t.Fatalf("the write queued before Close: %v", err)
	}
	<-closed
	if err := s.ReserveSerial(ctx, "gc", "02", nil, t0); !errors.Is(err, errClosed) {
		t.Fatalf("a write after Close: %v", err)
	}
}

// A write after Close is refused, not lost in a queue.
func TestGroupCommitAfterClose(t *testing.T) {
	s := openTemp(t)
	s.Close()
	if err := s.ReserveSerial(context.Background(), "gc", "01", nil, t0); err == nil {
		t.Fatal("a write after Close succeeded")
	}
}

// A reservation alone is committed without fsync; a batch holding a
// durable write, or a durable write alone, with it.
func TestOrderedWritesSkipOnlyTheirOwnFsync(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	// The search indexer's own ordered writes, which RecordIssuance sets
	// off, would change the setting between a write and its check.
	s.stopSearchIndexer()
	ctx := context.Background()
	synchronous := func() int {
		var v int
		if err := s.w.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if err := s.ReserveSerial(ctx, "gc", "01", nil, t0); err != nil {
		t.Fatal(err)
	}
	if v := synchronous(); v != 1 {
		t.Errorf("after an ordered write: synchronous %d, want 1 (NORMAL)", v)
	}
	if err := s.RecordIssuance(ctx, store.Issuance{Certificate: testCert("01"), Now: t0}); err != nil {
		t.Fatal(err)
	}
	if v := synchronous(); v != 2 {
		t.Errorf("after a durable write: synchronous %d, want 2 (FULL)", v)
	}

	// Mixed in one batch: the batch is durable.
	if err := s.RememberNonce(ctx, "tx", []byte("n"), t0, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	release := holdWriter(t, s)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		errs[0] = s.ReserveSerial(ctx, "gc", "02", nil, t0)
	}()
	go func() {
		defer wg.Done()
		errs[1] = s.RecordIssuance(ctx, store.Issuance{Certificate: testCert("03"), Now: t0})
	}()
	awaitWaiting(t, s, 2)
	if err := release(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if v := synchronous(); v != 2 {
		t.Errorf("after a mixed batch: synchronous %d, want 2 (FULL)", v)
	}
}

// Commits are checkpointed in the background; the writer's own automatic
// checkpoint is only a far backstop.
func TestBackgroundCheckpoint(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := context.Background()
	var pages int
	if err := s.w.QueryRowContext(ctx, `PRAGMA wal_autocheckpoint`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if pages != checkpointBackstop {
		t.Errorf("writer's wal_autocheckpoint %d, want %d", pages, checkpointBackstop)
	}
	runs := s.ck.runs.Load()
	if err := s.ReserveSerial(ctx, "gc", "01", nil, t0); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); s.ck.runs.Load() == runs; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint after a commit")
		}
	}
}

// A log that grew while checkpoints could not keep up (here a reader holds
// an old snapshot) is cut back to the store's limit when it starts over,
// rather than keep the space for good. The store here has a limit of 4 MiB
// rather than production's 64 MiB (walSizeLimit, checked below against
// what docs/deployment.md says): the same pragma and checkpoints on 12 MiB
// of log instead of 72, some 1.5 s less CPU under the race detector.
func TestLogCutBackAfterGrowth(t *testing.T) {
	if got := defaultTuning().walSizeLimit; got != 64<<20 {
		t.Errorf("Open cuts the log back to %d bytes, want 64 MiB (docs/deployment.md)", got)
	}
	tun := defaultTuning()
	tun.walSizeLimit = 4 << 20
	limit := tun.walSizeLimit
	path := filepath.Join(t.TempDir(), "scepter.db")
	b, err := migratedDB()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := open(ctx, path, tun)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE filler (b BLOB)`); err != nil {
		t.Fatal(err)
	}
	reader, err := s.r.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if _, err := reader.ExecContext(ctx, `BEGIN`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := reader.QueryRowContext(ctx, `SELECT count(*) FROM audit_head`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	blob := make([]byte, 1<<20)
	for range limit>>20 + 8 {
		if _, err := s.w.ExecContext(ctx, `INSERT INTO filler (b) VALUES (?)`, blob); err != nil {
			t.Fatal(err)
		}
	}
	walSize := func() int64 {
		fi, err := os.Stat(s.path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	grown := walSize()
	if grown <= limit {
		t.Fatalf("the log did not grow past %d bytes behind the reader (%d)", limit, grown)
	}
	if _, err := reader.ExecContext(ctx, `COMMIT`); err != nil {
		t.Fatal(err)
	}
	// Once a checkpoint has copied the whole log back, the next write
	// starts it over.
	if _, err := s.w.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `DELETE FROM filler`); err != nil {
		t.Fatal(err)
	}
	if size := walSize(); size > limit {
		t.Errorf("log of %d bytes after it started over (it had grown to %d), want at most %d", size, grown, limit)
	}
}
