// Package audit checks the audit trail's hash chain (`scepter audit
// verify`). Every record carries the hash of the record before it and its
// own (pki.AuditChainHash), and the store keeps the chain's head; walking
// the records in order finds a record that was edited, removed, inserted or
// moved, and names the first.
//
// The chain is not keyed: someone who can write the database and recompute
// every hash after a change, the head included, is not caught by it alone.
// It catches every edit that does not rewrite the whole rest of the trail,
// and a signed, published checkpoint of the head (a later feature) closes
// that gap. In particular, records removed from the end with the head set
// back to the last one kept take no hash and are not detected by the chain
// alone; a trail wiped whole, or cut at its start and chained again, is
// (CheckStart).
package audit

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// Chain is what Verify reads of the store.
type Chain interface {
	AuditChain(ctx context.Context, afterID int64, limit int) ([]pki.AuditEvent, error)
	AuditHead(ctx context.Context) (store.AuditHead, error)
}

// Report is the outcome of a verification that could read the trail.
type Report struct {
	// Checked is how many records were walked.
	Checked int64
	// LastID is the newest record walked.
	LastID int64
	// Problem describes the first bad record; nil when the trail is intact.
	Problem *Problem
	// TimeSteps are the places, among the records walked, where a record
	// is older than the one before it by more than TimeStepTolerance. The
	// chain still verifies (a clock stepped back is not tampering), but an
	// auditor reading times across such a step must know of it.
	TimeSteps []TimeStep

	lastHash []byte
	lastType string
	lastTime time.Time
	// The first record walked, for CheckStart.
	first pki.AuditEvent
}

// OK reports whether the trail is intact.
func (r Report) OK() bool { return r.Problem == nil }

// Problem is the first record at which the chain breaks.
type Problem struct {
	// ID is the record named (0 when the problem is at the end of the
	// trail: records missing after the last one).
	ID   int64
	Time time.Time
	Type string
	// What says what is wrong and what that means.
	What string
}

func (p *Problem) Error() string {
	if p.ID == 0 {
		return "audit trail: " + p.What
	}
	return fmt.Sprintf("audit trail: record %d (%s at %s): %s", p.ID, p.Type, p.Time.UTC().Format(time.RFC3339), p.What)
}

// TimeStepTolerance is how much older than the record before it a record
// may be without being a TimeStep: writers take their time before they
// wait their turn to append, so concurrent writes land out of time order
// by up to a write's wait (milliseconds; seconds on a slow disk), which is
// no step of a clock.
const TimeStepTolerance = time.Minute

// TimeStep is a record written at an earlier time than the record before
// it in the chain, by more than TimeStepTolerance: the writer's clock was
// stepped back between them.
type TimeStep struct {
	PrevID   int64
	PrevTime time.Time
	ID       int64
	Time     time.Time
}

func (s TimeStep) String() string {
	return fmt.Sprintf("record %d (%s) is older than record %d before it (%s), by %s: the clock was stepped back between them",
		s.ID, s.Time.UTC().Format(time.RFC3339Nano), s.PrevID, s.PrevTime.UTC().Format(time.RFC3339Nano), s.PrevTime.Sub(s.Time))
}

// pageSize is how many records one read returns.
const pageSize = 5000

// Verify walks the whole trail in id order. It returns an error only when
// the store cannot be read; a broken chain is a Report with a Problem.
func Verify(ctx context.Context, c Chain) (Report, error) {
	// The head is read first: records appended while the walk runs come
	// after it and are not judged against it.
	head, err := c.AuditHead(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("audit verify: %w", err)
	}
	var rep Report
	prevHash := pki.AuditGenesis
	var prevID int64
	// The walk starts below any id, not after 0: scepter numbers records
	// from 1, and one given 0 or a negative id behind its back would
	// otherwise never be looked at, though listings show it.
	after := int64(math.MinInt64)
	for {
		page, err := c.AuditChain(ctx, after, pageSize)
		if err != nil {
			return rep, fmt.Errorf("audit verify: %w", err)
		}
		for _, e := range page {
			after = e.ID
			// Before the checks of the id alone: a record whose id is not
			// positive or beyond the head may be one scepter wrote, only
			// renumbered, and the trail is then not cut short.
			if p := renumbered(e, prevID, prevHash); p != nil {
				rep.Problem = p
				return rep, nil
			}
			if e.ID <= 0 {
				rep.Problem = &Problem{ID: e.ID, Time: e.Time, Type: e.Type,
					What: "its id is not positive, though scepter numbers records from 1: it was inserted outside scepter"}
				return rep, nil
			}
			if e.ID > head.LastID {
				// Appended since the head was read, or added behind the
				// store's back: the head read now tells.
				if head, err = c.AuditHead(ctx); err != nil {
					return rep, fmt.Errorf("audit verify: %w", err)
				}
				if e.ID > head.LastID && head.LastID == 0 && len(e.Hash) > 0 {
					rep.Problem = &Problem{ID: e.ID, Time: e.Time, Type: e.Type,
						What: "the trail's head is missing, though its records are chained: it was deleted outside scepter (as one would to have an edited trail resealed)"}
					return rep, nil
				}
				if e.ID > head.LastID {
					if rep.Problem = finishProblem(rep, head); rep.Problem == nil {
						rep.Problem = &Problem{ID: e.ID, Time: e.Time, Type: e.Type,
							What: fmt.Sprintf("it comes after the newest record scepter wrote (%d): it was inserted outside scepter", head.LastID)}
					}
					return rep, nil
				}
			}
			if p := check(e, prevID, prevHash); p != nil {
				if e.ID > prevID+1 && !bytes.Equal(e.PrevHash, prevHash) {
					// A gap: the record expected may be there under
					// another id, renumbered, rather than removed.
					moved, err := movedAway(ctx, c, e.ID, prevID, prevHash)
					if err != nil {
						return rep, fmt.Errorf("audit verify: %w", err)
					}
					if moved != nil {
						p = moved
					}
				}
				rep.Problem = p
				return rep, nil
			}
			if rep.Checked > 0 && rep.lastTime.Sub(e.Time) > TimeStepTolerance {
				rep.TimeSteps = append(rep.TimeSteps, TimeStep{PrevID: rep.LastID, PrevTime: rep.lastTime, ID: e.ID, Time: e.Time})
			}
			if rep.Checked == 0 {
				rep.first = e
			}
			rep.Checked++
			rep.LastID, rep.lastHash, rep.lastType, rep.lastTime = e.ID, e.Hash, e.Type, e.Time
			prevID, prevHash = e.ID, e.Hash
		}
		if len(page) < pageSize {
			return finish(rep, head)
		}
	}
}

// FirstEvents are the events a store's trail starts with: the creation of
// its CA (ca.initialized), or, for a store first set up by a server whose
// CA already existed, the recording of that CA in it (ca.published).
var FirstEvents = []string{pki.EventCAInitialized, pki.EventCAPublished}

// Inventory is what CheckStart reads of the store's certificates.
type Inventory interface {
	ListCertificates(ctx context.Context, f store.CertFilter) ([]pki.Certificate, string, error)
}

// Trail is a store's audit chain with its inventory, which VerifyTrail
// reads.
type Trail interface {
	Chain
	Inventory
}

// VerifyTrail is Verify, then, on a chain that holds, CheckStart: what
// `scepter audit verify`, the console and the API report.
func VerifyTrail(ctx context.Context, t Trail) (Report, error) {
	rep, err := Verify(ctx, t)
	if err != nil || !rep.OK() {
		return rep, err
	}
	if rep.Problem, err = CheckStart(ctx, t, rep); err != nil {
		return Report{}, err
	}
	return rep, nil
}

// CheckStart judges what the chain alone cannot about a trail that
// verified (rep): that it starts where a store's trail starts. Removing
// every record, or cutting the trail at a point and chaining on from the
// start again, takes no hash (Verify already wants the first record to be
// record 1, chained to the genesis hash). So the trail must not be empty
// while the store holds certificates (each is recorded with its event),
// and its first record is one of FirstEvents or, where a server set the
// store up but stopped before it recorded its CA and CLI commands wrote
// first, later than no certificate of the store (by TimeStepTolerance).
// Records removed from the end with the head set back are not caught (see
// the package comment).
func CheckStart(ctx context.Context, inv Inventory, rep Report) (*Problem, error) {
	holds := func(f store.CertFilter) (bool, error) {
		f.Limit = 1
		certs, _, err := inv.ListCertificates(ctx, f)
		if err != nil {
			return false, fmt.Errorf("audit verify: %w", err)
		}
		return len(certs) > 0, nil
	}
	if rep.Checked == 0 {
		held, err := holds(store.CertFilter{})
		if err != nil || !held {
			return nil, err
		}
		return &Problem{What: "the trail is empty, but the store holds certificates, each recorded with its event: the records were removed"}, nil
	}
	e := rep.first
	if slices.Contains(FirstEvents, e.Type) {
		return nil, nil
	}
	older, err := holds(store.CertFilter{IssuedBefore: e.Time.Add(-TimeStepTolerance)})
	if err != nil || !older {
		return nil, err
	}
	return &Problem{ID: e.ID, Time: e.Time, Type: e.Type,
		What: fmt.Sprintf("it is the first record, but the store holds certificates recorded before it, each with its event, "+
			"and a store's trail starts with %s: the records before it were removed and the trail started again", strings.Join(FirstEvents, " or "))}, nil
}

// check judges one record against the one before it.
func check(e pki.AuditEvent, prevID int64, prevHash []byte) *Problem {
	p := &Problem{ID: e.ID, Time: e.Time, Type: e.Type}
	switch {
	case len(e.Hash) == 0 || len(e.PrevHash) == 0:
		p.What = "it has no hash: it was written outside scepter (inserted into the database directly)"
	case !bytes.Equal(pki.AuditChainHash(e.PrevHash, e), e.Hash):
		p.What = "its content does not match its hash: it was edited, or moved here from another place in the trail"
	case !bytes.Equal(e.PrevHash, prevHash) && e.ID != prevID+1:
		p.What = fmt.Sprintf("%s missing before it: removed", records(prevID+1, e.ID-1))
	case !bytes.Equal(e.PrevHash, prevHash) && prevID == 0:
		p.What = "it is the first record, but it was chained to another: the records before it were removed"
	case !bytes.Equal(e.PrevHash, prevHash):
		p.What = fmt.Sprintf("it does not follow record %d: a record between them was removed, inserted or reordered", prevID)
	case e.ID != prevID+1:
		// Its hash was recomputed for its new id: renumbered and resealed.
		p.What = fmt.Sprintf("the chain expected record %d after record %d, but found id %d, chained to record %d and hashed for its id: "+
			"the trail was renumbered and its hashes recomputed", prevID+1, prevID, e.ID, prevID)
	default:
		return nil
	}
	return p
}

// renumbered reports a record scepter wrote as the one after prevID whose
// id was changed since: it is chained to the record before it, and its hash
// is right for the id it should have (the id is hashed), not for the one it
// has. Nothing is missing there; the ids are not the ones written, so an id
// quoted elsewhere (a log, a ticket) no longer names the same record.
func renumbered(e pki.AuditEvent, prevID int64, prevHash []byte) *Problem {
	want := prevID + 1
	if e.ID == want || len(e.Hash) == 0 || !bytes.Equal(e.PrevHash, prevHash) {
		return nil
	}
	written := e
	written.ID = want
	if !bytes.Equal(pki.AuditChainHash(e.PrevHash, written), e.Hash) {
		return nil
	}
	where, link := fmt.Sprintf("after record %d", prevID), fmt.Sprintf("record %d", prevID)
	if prevID == 0 {
		where, link = "first", "the start of the trail"
	}
	return &Problem{ID: e.ID, Time: e.Time, Type: e.Type,
		What: fmt.Sprintf("the chain expected record %d %s, but found id %d: this is record %d renumbered "+
			"(it is chained to %s and hashed as record %d); the trail was renumbered, not cut short", want, where, e.ID, want, link, want)}
}

// movedAway looks, after id (where the walk found records missing after
// prevID), for the record the chain expected after prevID: one chained to
// it (prevHash) and hashed as its successor, or hashed for the id it has
// (renumbered and resealed). It returns the renumbering found, nil when no
// such record is there (removed). Only a broken trail is searched, so the
// rest of it is read once more.
func movedAway(ctx context.Context, c Chain, id, prevID int64, prevHash []byte) (*Problem, error) {
	after := id
	for {
		page, err := c.AuditChain(ctx, after, pageSize)
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			after = e.ID
			if !bytes.Equal(e.PrevHash, prevHash) || len(e.Hash) == 0 {
				continue
			}
			if p := renumbered(e, prevID, prevHash); p != nil {
				return p, nil
			}
			if bytes.Equal(pki.AuditChainHash(e.PrevHash, e), e.Hash) {
				return check(e, prevID, prevHash), nil
			}
		}
		if len(page) < pageSize {
			return nil, nil
		}
	}
}

// records names a range of record ids.
func records(from, to int64) string {
	if from == to {
		return fmt.Sprintf("record %d is", from)
	}
	return fmt.Sprintf("records %d to %d are", from, to)
}

// finish checks that the walk ended where the head says the trail ends.
func finish(rep Report, head store.AuditHead) (Report, error) {
	rep.Problem = finishProblem(rep, head)
	return rep, nil
}

func finishProblem(rep Report, head store.AuditHead) *Problem {
	switch {
	case rep.LastID < head.LastID:
		return &Problem{What: fmt.Sprintf("the trail ends at record %d, but record %d was written: the newest records were removed", rep.LastID, head.LastID)}
	case rep.Checked != head.Count:
		return &Problem{What: fmt.Sprintf("%d records walked, but %d were written: records were removed or inserted", rep.Checked, head.Count)}
	case rep.LastID > 0 && !bytes.Equal(rep.lastHash, head.LastHash):
		return &Problem{ID: rep.LastID, Time: rep.lastTime, Type: rep.lastType,
			What: "the newest record is not the one scepter wrote last: it was replaced"}
	}
	return nil
}

// HeadIntact refuses a trail that no record can be chained to: one whose
// records carry hashes but which has no head (scepter writes both in one
// transaction, so the head was deleted, as one would to have an edited
// trail resealed), one with a record after its head (inserted outside
// scepter: the next append would take its id), or one wiped whole, its
// records and head deleted, while the store holds certificates (each was
// recorded with its event; chaining on from record 1 would make the wipe
// look like a fresh store). Every append would be refused with
// store.ErrAuditTampered, so a server must not start on it; the error
// wraps that one and says the same (`audit verify` tells where the trail
// breaks).
//
// The records are read before the head, and before the certificates.
// Another writer (a CLI command, a node starting beside this one) may
// append at any moment; read in the other order, an empty head followed by
// the trail's fresh first record would look like a head removed, and a
// store's first certificate like one whose record was removed. A record
// seen first was committed with its head, so the head read after it shows
// it; a record seen after the head was read is judged by the head read
// again; a certificate is committed with its record, so the trail read
// again after it shows that.
func HeadIntact(ctx context.Context, t Trail) error {
	first, err := t.AuditChain(ctx, 0, 1)
	if err != nil {
		return fmt.Errorf("audit trail: %w", err)
	}
	if len(first) == 0 {
		if first, err = wipedTrail(ctx, t); err != nil || len(first) == 0 {
			return err
		}
	}
	head, err := t.AuditHead(ctx)
	if err != nil {
		return fmt.Errorf("audit trail: %w", err)
	}
	if head.LastID == 0 && len(first[0].Hash) > 0 {
		return tamperedError{found: "its head is missing, though its records are chained"}
	}
	after, err := t.AuditChain(ctx, head.LastID, 1)
	if err != nil {
		return fmt.Errorf("audit trail: %w", err)
	}
	if len(after) == 0 {
		return nil
	}
	if head, err = t.AuditHead(ctx); err != nil {
		return fmt.Errorf("audit trail: %w", err)
	}
	if after[0].ID > head.LastID {
		return tamperedError{found: fmt.Sprintf("record %d comes after its head, record %d", after[0].ID, head.LastID)}
	}
	return nil
}

// WipedTrailFound is what HeadIntact says of an empty trail in a store
// that holds certificates, before store.AuditTamperedMessage: its records
// and head were deleted, and only the trail kept in a backup brings them
// back.
const WipedTrailFound = "it has no records, though the store holds certificates, each recorded with its event: " +
	"its records and head were deleted outside scepter (restore the store from a backup taken before, whose trail verifies)"

// wipedTrail is HeadIntact on a trail found empty: nil when the store
// holds no certificate either (a fresh store), or when the head names a
// record (the records were removed under it); the trail's first record
// when one was written meanwhile (with the certificate seen); and
// tamperedError when the trail is still empty, without a head, beside the
// certificates.
func wipedTrail(ctx context.Context, t Trail) ([]pki.AuditEvent, error) {
	certs, _, err := t.ListCertificates(ctx, store.CertFilter{Limit: 1})
	if err != nil {
		return nil, fmt.Errorf("audit trail: %w", err)
	}
	if len(certs) == 0 {
		return nil, nil
	}
	first, err := t.AuditChain(ctx, 0, 1)
	if err != nil {
		return nil, fmt.Errorf("audit trail: %w", err)
	}
	if len(first) > 0 {
		return first, nil
	}
	// With its head kept, the trail can be chained on, and CheckTail says
	// that the records were removed.
	head, err := t.AuditHead(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit trail: %w", err)
	}
	if head.LastID > 0 {
		return nil, nil
	}
	return nil, tamperedError{found: WipedTrailFound}
}

// tamperedError is HeadIntact's refusal: what it found, then the message
// the protocol edges give for store.ErrAuditTampered, which it wraps.
type tamperedError struct{ found string }

func (e tamperedError) Error() string {
	return "audit trail: " + e.found + ": " + store.AuditTamperedMessage
}

func (e tamperedError) Unwrap() error { return store.ErrAuditTampered }

// TailChecked is how many of the newest records a server checks at start
// (CheckTail): enough to catch an edit of recent records at once, few
// enough to cost a start nothing on a trail of millions.
const TailChecked = 1000

// CheckTail checks the newest n records of the trail the way Verify does,
// and that the newest of them is the head (its id and hash), without
// walking the rest: a server runs it at every start. The first of them is
// checked against its own hash, not the record before it, and the head's
// count is not checked (that takes the whole walk). It returns the first
// problem found, nil when there is none or the trail is empty; a missing
// head or a record after it is HeadIntact's to refuse.
func CheckTail(ctx context.Context, c Chain, n int) (*Problem, error) {
	head, err := c.AuditHead(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit tail: %w", err)
	}
	if head.LastID <= 0 {
		return nil, nil
	}
	from := max(head.LastID-int64(n), 0)
	page, err := c.AuditChain(ctx, from, n)
	if err != nil {
		return nil, fmt.Errorf("audit tail: %w", err)
	}
	var last *pki.AuditEvent
	for i := range page {
		e := &page[i]
		if e.ID > head.LastID {
			break // appended since the head was read
		}
		// The first record read is taken as linked to whatever it names.
		prevID, prevHash := e.ID-1, e.PrevHash
		if last != nil {
			prevID, prevHash = last.ID, last.Hash
			if p := renumbered(*e, prevID, prevHash); p != nil {
				return p, nil
			}
		}
		if p := check(*e, prevID, prevHash); p != nil {
			return p, nil
		}
		last = e
	}
	switch {
	case last == nil:
		return &Problem{What: fmt.Sprintf("no record after %d is there, but record %d was written: the newest records were removed", from, head.LastID)}, nil
	case last.ID < head.LastID:
		return &Problem{What: fmt.Sprintf("the trail ends at record %d, but record %d was written: the newest records were removed", last.ID, head.LastID)}, nil
	case !bytes.Equal(last.Hash, head.LastHash):
		return &Problem{ID: last.ID, Time: last.Time, Type: last.Type,
			What: "the newest record is not the one scepter wrote last: it was replaced"}, nil
	}
	return nil, nil
}
