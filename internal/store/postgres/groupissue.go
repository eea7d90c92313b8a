package postgres

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/scepter/scepter/internal/store"
)

// Issuances together. Every plain issuance appends to the one audit chain
// and bumps the per-day counts, so it holds the chain's head and a count's
// row from its first statement until its commit is flushed, and the
// issuances of every node take turns there: at most one issuance per WAL
// flush, however many nodes and connections. So the plain issuances of
// this node that arrive while one is under way wait, and the next turn
// records all of them in one transaction (tryIssuances): one round trip,
// one commit and one flush for the lot, as the SQLite store's group commit
// does for its single writer.
//
// There is no committer goroutine: the caller that finds no batch running
// leads, on its own goroutine; callers that come meanwhile queue. When its
// batch is done, the leader hands the lead to the oldest queued caller and
// returns. Before it takes its batch, the leader yields its P once, so the
// issuances of requests already at work on this node's CPUs can join; with
// nothing else runnable that returns at once.
//
// A batch that fails records nothing (its COMMIT goes with the rest, and
// the server skips everything after an error), so every issuance in it then
// runs again alone, with retries, and is answered by that run: a refused
// challenge or a duplicate serial fails its own issuance only (and after a
// batch whose commit's outcome is unknown, settle tells an issuance the
// batch did record from one that failed). A batch runs
// on a context that ends only when every caller in it has given up, so one
// client that goes away does not undo the others'; a caller whose context
// ended before its turn is skipped, and one that gives up while queued
// leaves the queue.

// maxIssueBatch bounds one transaction's issuances, so that a turn at the
// head stays short however many callers wait.
const maxIssueBatch = 16

// errIssueLead, sent on a queued caller's done channel, hands it the lead.
var errIssueLead = errors.New("postgres: lead the next batch of issuances")

// issueRequest is one plain issuance waiting for its turn.
type issueRequest struct {
	ctx    context.Context
	in     *store.Issuance
	issued issuanceRows
	now    int64
	done   chan error
}

// issueQueue holds the plain issuances waiting for a turn. While leading is
// false the queue is empty.
type issueQueue struct {
	mu      sync.Mutex
	leading bool
	queue   []*issueRequest
}

// issuePlain records a plain issuance in the next batch of this node.
func (s *Store) issuePlain(ctx context.Context, in *store.Issuance, issued issuanceRows, now int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &issueRequest{ctx: ctx, in: in, issued: issued, now: now, done: make(chan error, 1)}
	q := &s.issues
	q.mu.Lock()
	q.queue = append(q.queue, r)
	if q.leading {
		q.mu.Unlock()
		if err := q.wait(r); !errors.Is(err, errIssueLead) {
			return err
		}
	} else {
		q.leading = true
		q.mu.Unlock()
	}
	s.leadIssues()
	return <-r.done
}

// wait waits for a queued request's outcome, or for the lead. A caller
// that gives up while its request is still queued takes it out (handing on
// the lead, should it have been handed to it) and returns; one whose request
// is in a batch already waits for that batch's outcome.
func (q *issueQueue) wait(r *issueRequest) error {
	select {
	case err := <-r.done:
		return err
	case <-r.ctx.Done():
	}
	if q.leave(r) {
		return r.ctx.Err()
	}
	return <-r.done
}

// leave takes r out of the queue, and hands on the lead if it had been
// handed to r. It reports false when r is no longer queued: it is in a
// batch, whose outcome it will be sent.
func (q *issueQueue) leave(r *issueRequest) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := slices.Index(q.queue, r)
	if i < 0 {
		return false
	}
	q.queue = slices.Delete(q.queue, i, i+1)
	select {
	case <-r.done: // the lead, handed to r under q.mu
		q.handOff()
	default:
	}
	return true
}

// handOff gives the lead to the oldest queued request, or ends it when none
// is queued. q.mu is held: a queued request's done channel is empty until
// then (it is sent nothing else while queued), so the send does not block.
func (q *issueQueue) handOff() {
	if len(q.queue) == 0 {
		q.leading = false
		return
	}
	q.queue[0].done <- errIssueLead
}

// leadIssues runs the next batch, answers its callers and hands the lead on.
// The caller's own request is in that batch: it is the oldest queued.
func (s *Store) leadIssues() {
	q := &s.issues
	runtime.Gosched()
	q.mu.Lock()
	n := min(len(q.queue), maxIssueBatch)
	batch := make([]*issueRequest, n)
	copy(batch, q.queue)
	q.queue = append(q.queue[:0], q.queue[n:]...)
	q.mu.Unlock()
	defer func() {
		// Should the batch panic, its callers still get an answer and the
		// lead still passes on: a lead lost would hold every later
		// issuance of this node in the queue.
		if p := recover(); p != nil {
			for _, r := range batch {
				select {
				case r.done <- fmt.Errorf("postgres: recording issuances panicked: %v", p):
				default: // answered already
				}
			}
			q.mu.Lock()
			q.handOff()
			q.mu.Unlock()
			panic(p)
		}
	}()

	s.runIssues(batch)

	q.mu.Lock()
	q.handOff()
	q.mu.Unlock()
}

// runIssues records batch and sends every caller its outcome.
func (s *Store) runIssues(batch []*issueRequest) {
	live := make([]*issueRequest, 0, len(batch))
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- err
			continue
		}
		live = append(live, r)
	}
	unknown := false
	if len(live) > 1 {
		ctx, stop := batchContext(live)
		err := s.tryIssuances(ctx, live)
		unknown = outcomeUnknown(ctx, err) // before stop ends ctx
		stop()
		if err == nil {
			for _, r := range live {
				r.done <- nil
			}
			return
		}
	}
	for _, r := range live {
		r.done <- s.settle(r.ctx, &r.in.Certificate, unknown, func() error {
			return s.retry(r.ctx, func() error { return s.tryIssuances(r.ctx, []*issueRequest{r}) })
		})
	}
}

// batchContext is a context for a batch of several callers' work: it ends
// when all of their contexts have, keeping none of their values but the
// first's.
func batchContext(reqs []*issueRequest) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(reqs[0].ctx))
	var left atomic.Int64
	left.Store(int64(len(reqs)))
	stops := make([]func() bool, len(reqs))
	for i, r := range reqs {
		stops[i] = context.AfterFunc(r.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}
