package sqlite

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// Group commit. Every write is a caller's function run in a write
// transaction (BEGIN IMMEDIATE … COMMIT, fsync'd: synchronous=FULL). Under
// load most of a small transaction's cost is its commit: the WAL frames of
// the pages it touched, their checksums, the fsync. So the writes waiting
// at the time run together in one transaction, each inside a savepoint of
// its own: a function that fails undoes only its own work, as if it had run
// alone. Every caller learns its outcome only after that one COMMIT has
// returned, so nothing is acknowledged before it is durable, and a commit
// that fails fails all of them (each is then run again alone, and answered
// by that run).
//
// There is no committer goroutine: the caller that finds no batch running
// becomes the leader and runs the batch itself, on its own goroutine; the
// callers that come meanwhile queue behind it. When its batch has
// committed, the leader hands the lead to the oldest queued caller, whose
// batch is everyone queued by then, and returns. A separate committer had
// to be scheduled twice for every write (woken by the caller, then the
// caller woken by it): on one core, measured with the runtime's scheduler
// trace, it waited runnable behind the handlers' RSA work for most of the
// time, and every enrollment waited with it.
//
// Before it takes its batch, the leader yields its P once
// (runtime.Gosched). When fewer cores than requests are at work, the
// others are mostly busy with their RSA operations when a write arrives,
// and reach their own writes a little later. Without the yield almost every
// batch held one write (at concurrency 8 on one P: 1,560 commits for 1,576
// writes), so every write paid for a commit of its own: a log page for each
// B-tree it touched, and for a durable one the fsync. With it, the batch
// takes the writes of the requests that ran meanwhile (348 commits for
// 1,575 writes), for 10–20% less CPU per enrollment on one core. Nothing
// idles for it: the leader waits only while other goroutines run, and when
// none is runnable Gosched returns at once, so a lone write is not delayed.
//
// The functions of a batch run one after another on the one writer
// connection, so each sees the work of those before it, exactly as
// consecutive transactions would. They run on the caller's context without
// its cancellation: an SQLite statement interrupted inside a transaction
// rolls back the whole transaction, which would take the other callers'
// work with it. A caller whose context ended before its turn is skipped.

// A write may also be ordered rather than durable (withOrderedTx): its
// commit alone is not fsync'd. The WAL is written and recovered in order,
// so it becomes durable with the next durable commit, and only a crash
// before that can lose it. That suits a record whose only job is to decide
// something before a durable write that depends on it: the replay nonce and
// the serial reserved before signing. A certificate is acknowledged only
// after its own durable commit, which carries both with it; a crash before
// that loses them together with a certificate nobody received. A batch
// that holds a durable write is fsync'd as a whole.

// txFunc is the work of one write transaction. It may run more than once
// (after a batch that failed as a whole), so it sets whatever it reports
// afresh on each run.
type txFunc func(ctx context.Context, tx *wtx) error

// maxBatch bounds the writes of one transaction, so that one commit's
// latency stays bounded however many callers wait.
const maxBatch = 64

// errClosed answers a write after Close.
var errClosed = errors.New("sqlite: the store is closed")

// errLead, sent on a queued caller's done channel, hands it the lead.
var errLead = errors.New("sqlite: lead the next batch")

type txRequest struct {
	ctx     context.Context
	fn      txFunc
	durable bool       // fsync'd before the caller hears of it
	done    chan error // buffered: the leader never waits for a caller
}

// committer is the queue of writes once Open has finished.
type committer struct {
	mu      sync.Mutex
	idle    sync.Cond    // signalled when leading turns false
	queue   []*txRequest // writes waiting for the next batch, oldest first
	leading bool         // a caller is running a batch
	closed  bool         // Close has begun: no new writes

	// syncOff: the writer connection's synchronous setting is NORMAL (the
	// last batch was ordered only); FULL otherwise. Only the leader touches
	// it, and there is one leader at a time.
	syncOff bool

	waiting atomic.Int64 // callers queued behind a running batch
	commits atomic.Int64 // transactions committed
	writes  atomic.Int64 // writes committed in them
}

// CommitStats is how many transactions the writer committed since Open, and
// how many writes they held: writes/commits is the mean batch.
func (s *Store) CommitStats() (commits, writes int64) {
	if s.gc == nil {
		return 0, 0
	}
	return s.gc.commits.Load(), s.gc.writes.Load()
}

// startCommitter opens the queue; Close closes it.
func (s *Store) startCommitter() {
	s.gc = &committer{}
	s.gc.idle.L = &s.gc.mu
}

// stopCommitter refuses new writes and waits until the queued ones have run.
func (s *Store) stopCommitter() {
	if s.gc == nil {
		return
	}
	s.gc.mu.Lock()
	s.gc.closed = true
	for s.gc.leading {
		s.gc.idle.Wait()
	}
	s.gc.mu.Unlock()
}

// withTx runs fn in a write transaction and returns once that transaction
// has committed durably (nil) or fn's work has been undone (fn's error, or
// the transaction's).
func (s *Store) withTx(ctx context.Context, fn txFunc) error {
	return s.write(ctx, fn, true)
}

// withOrderedTx is withTx for a write that needs to be durable only before
// the next durable write (see the top of this file).
func (s *Store) withOrderedTx(ctx context.Context, fn txFunc) error {
	return s.write(ctx, fn, false)
}

func (s *Store) write(ctx context.Context, fn txFunc, durable bool) error {
	err := markUnavailable(s.queueWrite(ctx, fn, durable))
	s.writes.note(err)
	return err
}

// queueWrite runs fn in the next batch, or leads it.
func (s *Store) queueWrite(ctx context.Context, fn txFunc, durable bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &txRequest{ctx: ctx, fn: fn, durable: durable, done: make(chan error, 1)}
	gc := s.gc
	if gc == nil {
		// While Open migrates and seals the audit trail: nothing else writes.
		return s.runAlone(r)
	}
	gc.mu.Lock()
	if gc.closed {
		gc.mu.Unlock()
		return errClosed
	}
	gc.queue = append(gc.queue, r)
	queued := gc.leading
	if queued {
		gc.waiting.Add(1)
	}
	gc.leading = true
	gc.mu.Unlock()
	if queued {
		// Queued callers wait for their outcome whatever their context
		// says: the lead may come to any of them, and must be taken up.
		err := <-r.done
		gc.waiting.Add(-1)
		if err != errLead {
			return err
		}
	}
	s.lead()
	return <-r.done
}

// lead runs one batch, the writes queued now (the leader's own first, as
// the oldest), then hands the lead to the oldest caller queued meanwhile or
// gives it up.
func (s *Store) lead() {
	gc := s.gc
	runtime.Gosched() // let the writes of the requests at work join (see the top of this file)
	gc.mu.Lock()
	n := min(len(gc.queue), maxBatch)
	batch := make([]*txRequest, n)
	copy(batch, gc.queue)
	rest := copy(gc.queue, gc.queue[n:])
	clear(gc.queue[rest:])
	gc.queue = gc.queue[:rest]
	gc.mu.Unlock()
	defer func() {
		if p := recover(); p != nil {
			// Not a write's function (runFn recovers those) but this file's
			// own code: the writer may be left inside a transaction nobody
			// will end, and the batch's callers unanswered. Crash, as a
			// committer goroutine's panic did, rather than hang every write
			// to come; net/http would recover a panic on this goroutine.
			go panic(fmt.Sprintf("sqlite: group commit: %v", p))
			select {}
		}
		s.handOff()
	}()
	s.runBatch(batch)
}

// handOff passes the lead to the oldest queued caller, or gives it up.
func (s *Store) handOff() {
	gc := s.gc
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if len(gc.queue) > 0 {
		gc.queue[0].done <- errLead
		return
	}
	gc.leading = false
	gc.idle.Broadcast()
}

func (s *Store) runBatch(batch []*txRequest) {
	if len(batch) == 1 {
		batch[0].done <- s.runAlone(batch[0])
		return
	}
	errs, err := s.runTogether(batch)
	if err != nil {
		// Nothing of the batch is durable. Each write runs again alone, so
		// that its caller gets its own outcome rather than another's.
		for _, r := range batch {
			r.done <- s.runAlone(r)
		}
		return
	}
	for i, r := range batch {
		r.done <- errs[i]
	}
}

// runFn runs one write's function. A panic in it fails that write alone,
// as an error: it runs on a caller's goroutine, with the other callers of
// the batch waiting for their answers and the writer connection inside a
// transaction, and neither may be left hanging.
func runFn(ctx context.Context, r *txRequest, tx *wtx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("sqlite: a write panicked: %v", p)
		}
	}()
	return r.fn(ctx, tx)
}

// runAlone runs one write in a transaction of its own.
func (s *Store) runAlone(r *txRequest) error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	ctx := context.WithoutCancel(r.ctx)
	if err := s.checkFile(); err != nil {
		return err
	}
	if err := s.setSync(ctx, r.durable); err != nil {
		return err
	}
	sqlTx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	tx := &wtx{Tx: sqlTx, hot: s.hot}
	if err := runFn(ctx, r, tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	s.committed(1)
	return nil
}

func (s *Store) committed(writes int) {
	s.kickCheckpointer()
	if s.gc != nil {
		s.gc.commits.Add(1)
		s.gc.writes.Add(int64(writes))
	}
}

// runTogether runs the batch in one transaction, a savepoint each. It
// returns each write's own error, or an error of the whole transaction
// (then none of it is committed).
func (s *Store) runTogether(batch []*txRequest) ([]error, error) {
	bg := context.Background()
	if err := s.checkFile(); err != nil {
		return nil, err
	}
	durable := false
	for _, r := range batch {
		durable = durable || r.durable
	}
	if err := s.setSync(bg, durable); err != nil {
		return nil, err
	}
	sqlTx, err := s.w.BeginTx(bg, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	tx := &wtx{Tx: sqlTx, hot: s.hot}
	errs := make([]error, len(batch))
	for i, r := range batch {
		if errs[i] = r.ctx.Err(); errs[i] != nil {
			continue
		}
		if _, err := tx.ExecContext(bg, `SAVEPOINT write`); err != nil {
			_ = tx.Rollback()
			return nil, fmt.Errorf("savepoint: %w", err)
		}
		if errs[i] = runFn(context.WithoutCancel(r.ctx), r, tx); errs[i] != nil {
			// A savepoint that is gone means SQLite rolled the whole
			// transaction back (a full disk, an I/O error).
			if _, err := tx.ExecContext(bg, `ROLLBACK TO write`); err != nil {
				_ = tx.Rollback()
				return nil, fmt.Errorf("roll back to savepoint: %w", err)
			}
		}
		if _, err := tx.ExecContext(bg, `RELEASE write`); err != nil {
			_ = tx.Rollback()
			return nil, fmt.Errorf("release savepoint: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		}
	}
	s.committed(ok)
	return errs, nil
}

// setSync makes the next commit fsync'd (durable) or not. SQLite takes the
// setting only outside a transaction, so it is set before BEGIN.
func (s *Store) setSync(ctx context.Context, durable bool) error {
	if s.gc == nil || s.gc.syncOff == !durable {
		return nil // before the committer runs, every commit is FULL
	}
	q := `PRAGMA synchronous = FULL`
	if !durable {
		q = `PRAGMA synchronous = NORMAL`
	}
	if _, err := s.w.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("set synchronous: %w", err)
	}
	s.gc.syncOff = !durable
	return nil
}
