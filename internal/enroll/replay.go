package enroll

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// errReplayed is the refusal of a message received before (RememberNonce)
// that nothing answers again: no certificate of its transaction and key,
// and no issuance of it in flight.
func errReplayed() error {
	return pki.Errorf(pki.EBadRequest, replayedMessage)
}

const replayedMessage = "replayed message: transactionID and senderNonce were seen before"

// errReplayedSince is errReplayed for a pair the store says it first
// remembered at firstSeen (see ReplayFirstSeen), and whether the run it
// was remembered for ended refused (see ReplayOfRefused).
func errReplayedSince(firstSeen time.Time, refused bool) error {
	return pki.Wrap(pki.EBadRequest, &pairSeen{firstSeen: firstSeen, refused: refused}, replayedMessage)
}

// pairSeen carries when a replayed message's pair was first remembered,
// and whether its run ended refused.
type pairSeen struct {
	firstSeen time.Time
	refused   bool
}

func (p *pairSeen) Error() string {
	msg := "enroll: the message's pair was first remembered at " + p.firstSeen.UTC().Format(time.RFC3339Nano)
	if p.refused {
		msg += ", and its run was refused"
	}
	return msg
}

// ReplayOfRefused says whether the message that RememberNonce refused as a
// replay (err) is a copy of one whose run ended refused
// (MarkNonceRefused): nothing of it is in flight or will be issued, so the
// copy is refused as a replay at once, never told to retry
// (copyInFlightWindow).
func ReplayOfRefused(err error) bool {
	var p *pairSeen
	return errors.As(err, &p) && p.refused
}

// ReplayFirstSeen is when the message that RememberNonce refused as a
// replay (err) was first received, for Request.FirstSeen; zero when the
// store could not tell.
func ReplayFirstSeen(err error) time.Time {
	var p *pairSeen
	if errors.As(err, &p) {
		return p.firstSeen
	}
	return time.Time{}
}

// copyInFlightWindow is how long after a message was first received a
// byte-identical copy of it that finds nothing of it (no certificate, no
// claim on its transaction since then, nothing held) is told to retry
// (503) rather than refused as a replay. Copies sent at the same moment (a
// device's retry, a load balancer retrying the POST) meet while the first
// is still checking its challenge (a webhook may take seconds), and it
// claims its transaction only after that. A first copy claims, or is
// refused, within seconds but on a node that stalls; the window is as long
// as a claim holds (claimLifetime), so a copy is told to retry no longer
// than the first copy's claim would make it. A copy that still finds
// nothing after that is refused as every replay was: its first copy died
// before claiming, or was refused without its refusal being recorded. A
// copy of a message whose run ended refused is not told to retry at all:
// that run marks its pair (MarkNonceRefused) before its answer goes out,
// and the SCEP handler refuses the copy as a replay at once
// (ReplayOfRefused), on every node of the store.
const copyInFlightWindow = claimLifetime

// errCopyInFlight is the 503 of a replayed request whose first copy, seen
// at firstSeen, may still be on its way to a claim (copyInFlightWindow).
func errCopyInFlight(firstSeen time.Time) error {
	return pki.Wrap(pki.EUnavailable,
		fmt.Errorf("enroll: replayed message first seen at %s; nothing issued, claimed or held for it yet", firstSeen.UTC().Format(time.RFC3339)),
		"a copy of this message was received moments ago and nothing is issued for it yet (it may still be in progress, or it was refused); send it again later")
}

// A replayed message (Request.Replayed) is a copy of one received before,
// signed by the same key: a device's request in flight on a node that
// died, sent again byte for byte (a load balancer retrying the POST does
// exactly that). It is answered as that request's resend with a new
// senderNonce would be, but never starts an issuance of its own while the
// first copy may: with the certificate issued for its transaction and key
// (SUCCESS, encrypted to the requester's key, so a replayer learns
// nothing), 503 while an issuance of its transaction holds the claim or
// the first copy may still be on its way to one (copyInFlightWindow), and
// refused as a replay when none of these holds. An issuance that died
// holding the claim (lapsed: store.TransactionClaim.Expires passed)
// signed nothing that was sent: the replay then runs as its resend would,
// and the claim lets one copy sign.

// checkReplay decides, before anything else is done for a replayed
// request (no challenge checked, nothing counted), whether it may be
// answered at all: a certificate of its transaction and key, or a claim on
// its transaction that is live or lapsed. Otherwise it is told to retry
// while its first copy may still be on its way to a claim
// (copyInFlightWindow), and refused as a replay, as every replay was
// before, after that.
func (s *Service) checkReplay(ctx context.Context, req Request) error {
	profile, ok := s.Profile(req.Profile)
	if !ok || req.CSR == nil || req.Protocol != pki.ProtocolSCEP || req.TransactionID == "" {
		return errReplayed()
	}
	hash, err := store.PublicKeyHash(req.CSR.PublicKey)
	if err != nil {
		return errReplayed()
	}
	claim, err := s.store.TransactionClaimOf(ctx, hash, profile.Name, req.TransactionID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		claim = nil
	case err != nil:
		return fmt.Errorf("enroll: claim on replayed transaction %q: %w", req.TransactionID, err)
	case !claim.Expires.IsZero():
		return nil // live (503 or its certificate, see answerReplay) or lapsed (it runs)
	}
	// Looked for after the claim: an issuance ends its claim in the
	// transaction that records its certificate, so one seen ended by its
	// record is found here.
	now := s.clock.Now()
	certs, err := s.store.CertificatesOfTransaction(ctx, hash, profile.Name, req.TransactionID, now.Add(-resendWindow))
	if err != nil {
		return fmt.Errorf("enroll: certificates of replayed transaction %q: %w", req.TransactionID, err)
	}
	if len(certs) > 0 {
		return nil // decided as its resend is, names and all
	}
	if claim != nil && !claim.At.Before(req.FirstSeen) {
		// Ended since the first copy arrived, with no valid certificate:
		// released (the first copy failed) or its certificate revoked.
		return errReplayed()
	}
	// No claim since the first copy arrived (none, or one an earlier run
	// released, as a run answered 503 does): it may still be checking its
	// challenge.
	if !req.FirstSeen.IsZero() && now.Sub(req.FirstSeen) < copyInFlightWindow {
		return errCopyInFlight(req.FirstSeen)
	}
	return errReplayed()
}

// answerReplay answers a replayed request whose resend would now be
// issued (nothing was found for it, see issuedForTransaction): with the
// certificate its first copy's issuance records meanwhile, 503 while that
// issuance holds the claim, nil (issue) when the claim lapsed, refused as
// a replay otherwise. A claim older than an issuance takes (claimWait) is
// not waited for: its claimant died or stalls.
func (s *Service) answerReplay(ctx context.Context, st *State) (*pki.Certificate, error) {
	hash := transactionKey(st)
	if hash == nil || st.Req.Protocol != pki.ProtocolSCEP {
		return nil, errReplayed() // its resend is not found by its transaction
	}
	claim, err := s.store.TransactionClaimOf(ctx, hash, st.Profile.Name, st.Req.TransactionID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, errReplayed()
	case err != nil:
		return nil, fmt.Errorf("enroll: claim on replayed transaction %q: %w", st.Req.TransactionID, err)
	case claim.Expires.IsZero():
		// Ended: released, or by its issuance's record since this
		// request's look (issuedForTransaction), in the transaction that
		// ended it: a look now finds that.
		again, err := s.issuedForTransaction(ctx, st)
		if err != nil || again != nil {
			return again, err
		}
		return nil, errReplayed()
	}
	now := s.clock.Now()
	if !now.Before(claim.Expires) {
		s.log.Info("replayed request runs: the issuance that claimed its transaction stopped before recording a certificate",
			"transaction_id", st.Req.TransactionID, "claimed_at", claim.At, "lapsed_at", claim.Expires, "remote", st.Req.RemoteAddr)
		return nil, nil
	}
	inFlight := func(err error) error {
		return pki.Wrap(pki.EUnavailable, err, fmt.Sprintf(
			"this message was received before and its certificate is being issued (or the node issuing it stopped: its claim lapses at %s); send it again later",
			claim.Expires.UTC().Format(time.RFC3339)))
	}
	if now.Sub(claim.At) >= s.claimWait {
		return nil, inFlight(errors.New("enroll: the replayed transaction is claimed by an issuance that has not recorded a certificate"))
	}
	waitUntil := time.Now().Add(s.claimWait)
	for {
		again, err := s.awaitTransaction(ctx, st, waitUntil)
		switch {
		case err != nil && pki.ErrorCode(err) == pki.EUnavailable:
			return nil, inFlight(err)
		case err != nil:
			return nil, err
		case again != nil:
			return again, nil
		}
	}
}
