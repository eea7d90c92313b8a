package enroll

import (
	"context"
	"crypto/rand"
	"errors"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// claimLifetime is how long an issuance's claim on its SCEP transaction
// holds if it is neither ended (its certificate recorded) nor released (a
// failure): an issuance signs and records within seconds, so a claim this
// old belongs to one that died (a crash between the reservation and the
// record, or a store that failed while recording), and the transaction
// may be asked again. Copies arriving meanwhile are told to retry (503).
const claimLifetime = 5 * time.Minute

// defaultClaimWait bounds how long a copy of a request that lost the claim
// on its transaction waits for the winner's certificate before it is told
// to retry: longer than an issuance takes, shorter than a client's timeout.
const defaultClaimWait = 5 * time.Second

// claimPoll is how often a waiting copy looks for the winner's certificate.
const claimPoll = 50 * time.Millisecond

// freshLook is how recent a request's look for a certificate of its SCEP
// transaction (issuedForTransaction) must be for a claim that made a new
// row to spare it the second look (mustLookAgain): well within
// store.EndedClaimRetention, so that nodes' clocks may differ by minutes.
// A look and its claim are milliseconds apart but on a stalled node.
const freshLook = store.EndedClaimRetention / 10

// transactionHold is an issuance's claim on its SCEP transaction.
type transactionHold struct {
	claim *store.TransactionClaim // nil: the request makes none
	held  bool                    // the claim holds (until recorded or released)
	// issued is the certificate a copy of the request got, recorded since
	// the request looked for one: the answer (errIssuedMeanwhile).
	issued *pki.Certificate
}

// errIssuedMeanwhile: a copy of the request got its certificate, and ended
// its claim, between this request's look for one and its claim.
var errIssuedMeanwhile = errors.New("enroll: a copy of the request was issued meanwhile")

// transactionClaim is the claim st's issuance makes on its SCEP
// transaction, or an EST renewal on the renewal (renewalTransaction),
// before the CA key signs (nil when its resends are not answered by their
// transaction, see transactionKey): of copies of one request sent at
// once, to one node or several, only the one whose claim holds signs.
func transactionClaim(st *State, now time.Time) *store.TransactionClaim {
	hash := transactionKey(st)
	if hash == nil {
		return nil
	}
	return &store.TransactionClaim{KeyHash: hash, Profile: st.Profile.Name, TransactionID: claimedTransaction(st),
		Claimant: []byte(rand.Text()), At: now, Expires: now.Add(claimLifetime)}
}

// transactionTrace is the claim, held by no one, that rec leaves ended
// when it is recorded, for an issuance of a SCEP transaction that made no
// claim (a one-time challenge's, an approval's; see
// transactionKey): issuedForTransaction finds rec as it finds a claimed
// issuance's certificate, so the next claim of its transaction must take
// over a row, and look for it (mustLookAgain). nil for a record no look
// at a transaction finds.
func transactionTrace(st *State, rec *pki.Certificate) *store.TransactionClaim {
	if rec.Protocol != pki.ProtocolSCEP || rec.TransactionID == "" {
		return nil
	}
	hash, err := st.keyHash()
	if err != nil {
		return nil
	}
	return &store.TransactionClaim{KeyHash: hash, Profile: rec.Profile, TransactionID: rec.TransactionID,
		Claimant: []byte(rand.Text()), At: rec.CreatedAt, Expires: rec.CreatedAt}
}

// mustLookAgain says whether an issuance whose claim on st's transaction
// just held must look for a certificate of it once more before signing: a
// copy of the request may have recorded one since st's look. A claim that
// made a new row (not tookOver) proves that no certificate of the
// transaction was recorded within store.EndedClaimRetention, as every
// issuance that records one leaves its claim ended, or an unheld one
// (transactionTrace), kept that long; when st looked within freshLook
// before, nothing was recorded since, and the second read is spared.
// That is the common path: every SCEP enrollment of a new transaction.
//
// It assumes every node runs this version. A node of the previous one
// records no row for an issuance that claimed nothing, deletes a
// released claim, and purges ended claims within the hour: while such a
// node runs beside this one (a rolling upgrade), a copy it records in the
// milliseconds between this node's look and claim may go unseen, and get
// a second certificate, as before claims existed.
func (s *Service) mustLookAgain(st *State, tookOver bool) bool {
	return tookOver || st.lookedAt.IsZero() || s.clock.Now().Sub(st.lookedAt) >= freshLook
}

// releaseClaim gives up claim after an issuance that recorded nothing, so
// that the client's next try need not wait for the claim to lapse. It is
// a courtesy: a claim not released lapses all the same.
func (s *Service) releaseClaim(ctx context.Context, claim *store.TransactionClaim) {
	released := *claim
	released.At = s.clock.Now()
	if err := s.store.ReleaseTransactionClaim(context.WithoutCancel(ctx), released); err != nil {
		s.log.Warn("could not release the claim on a transaction; it lapses by itself",
			"transaction_id", claim.TransactionID, "err", err)
	}
}

// awaitTransaction waits a moment for the issuance that holds the claim on
// st's transaction, and returns its certificate once recorded when it is
// the answer to st (a copy of the same request: sentAgain), or nil when
// the claim should be tried again (it may be ended or released by now).
// Past waitUntil (the winner failed, or is slow) the request is told to
// retry (503): it is never issued a second certificate.
func (s *Service) awaitTransaction(ctx context.Context, st *State, waitUntil time.Time) (*pki.Certificate, error) {
	wait := time.Until(waitUntil)
	if wait <= 0 {
		return nil, pki.Wrap(pki.EUnavailable, errors.New("enroll: the transaction's claimant recorded no certificate in time"),
			"a copy of this request (the same key and transaction ID, or credentials, or renewal of the same certificate) is being answered, or failed; ask again")
	}
	t := time.NewTimer(min(wait, claimPoll))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil, pki.Wrap(pki.EUnavailable, ctx.Err(), "a copy of this request is being answered; ask again")
	case <-t.C:
	}
	return s.issuedForTransaction(ctx, st)
}
