package scepserver

import (
	"context"
	"encoding/binary"

	"github.com/scepter/scepter/internal/pki"
)

// A message's (transactionID, senderNonce) is remembered before its
// operation runs, so that two copies of it never both run. An operation
// that ends unavailable (503: the store, the issuer or the RA key could not
// be used) changed nothing, and the client sends the same bytes again
// later: that retry must not be refused as a replay. The store can only
// remember a pair, not forget one, so the first run is attempt 0 under the
// message's own pair, and each run that ended unavailable is marked
// released under a pair of its own, which lets exactly one more attempt
// claim the next attempt's pair. A replay of a message whose last attempt
// was answered (or is still running) finds it unreleased and is refused,
// as before; all of this is shared by the nodes on one store.
//
// The derived pairs keep the message's transaction ID and put the attempt
// in the nonce, made longer than any senderNonce a message may carry, so no
// message's own pair is ever one of them.

const (
	// maxSenderNonceLen is the longest senderNonce scep.Parse accepts.
	maxSenderNonceLen = 64
	// maxRetriesAfterUnavailable bounds the retries of one message after
	// answers of 503 (at Retry-After's 5 s, over an hour and a half of
	// retrying the same bytes): past it the message is a replay.
	maxRetriesAfterUnavailable = 1 << 10
)

const (
	attemptPair  byte = 'a'
	releasedPair byte = 'r'
)

// derivedNonce is the nonce of the pair that records attempt's claim
// (attemptPair) or its release (releasedPair) for a message with nonce.
func derivedNonce(nonce []byte, kind byte, attempt int) []byte {
	b := make([]byte, maxSenderNonceLen, maxSenderNonceLen+6)
	copy(b, nonce)
	b = append(b, byte(len(nonce)), kind)
	return binary.BigEndian.AppendUint32(b, uint32(attempt))
}

// claimNonce remembers the message's pair for the run about to start and
// returns its attempt number. A pair remembered before is a replay
// (EBadRequest, as RememberNonce refuses it) unless the last attempt of
// this message was released: then the next attempt is claimed.
func (h *Handler) claimNonce(ctx context.Context, txID string, nonce []byte) (attempt int, err error) {
	replay := h.svc.RememberNonce(ctx, txID, nonce, h.opts.NonceLifetime)
	if replay == nil || pki.ErrorCode(replay) != pki.EBadRequest || len(nonce) > maxSenderNonceLen {
		return 0, replay
	}
	// Most replays stop here: their first run was answered. (A later
	// attempt exists only if the first was released.)
	released, err := h.remembered(ctx, txID, derivedNonce(nonce, releasedPair, 0))
	if err != nil || !released {
		return 0, firstErr(err, replay)
	}
	last, err := h.lastAttempt(ctx, txID, nonce)
	if err != nil {
		return 0, err
	}
	if last > 0 {
		released, err = h.remembered(ctx, txID, derivedNonce(nonce, releasedPair, last))
	}
	if err != nil || !released || last >= maxRetriesAfterUnavailable {
		return 0, firstErr(err, replay)
	}
	next := last + 1
	if err := h.svc.RememberNonce(ctx, txID, derivedNonce(nonce, attemptPair, next), h.opts.NonceLifetime); err != nil {
		// A copy of the retry claimed it first: this one is its replay.
		return 0, err
	}
	return next, nil
}

// releaseNonce lets the message's next copy run again: its attempt ended
// unavailable, having changed nothing.
func (h *Handler) releaseNonce(ctx context.Context, txID string, nonce []byte, attempt int) {
	if len(nonce) > maxSenderNonceLen {
		return
	}
	if err := h.svc.RememberNonce(ctx, txID, derivedNonce(nonce, releasedPair, attempt), h.opts.NonceLifetime); err != nil {
		h.log.Warn("scep: cannot note that a message answered 503 may be sent again; its retry will be refused as a replay",
			"transaction_id", txID, "err", err)
	}
}

// lastAttempt is the highest attempt claimed for the message, whose own
// pair (attempt 0) is remembered. Attempts are claimed in order, so the
// claimed ones are 0 to the last: found by doubling, then halving.
func (h *Handler) lastAttempt(ctx context.Context, txID string, nonce []byte) (int, error) {
	claimed := func(attempt int) (bool, error) {
		return h.remembered(ctx, txID, derivedNonce(nonce, attemptPair, attempt))
	}
	lo, hi := 0, 1 // lo is claimed; hi is not known to be
	for hi <= maxRetriesAfterUnavailable {
		ok, err := claimed(hi)
		if err != nil {
			return 0, err
		}
		if !ok {
			break
		}
		lo, hi = hi, 2*hi
	}
	hi = min(hi, maxRetriesAfterUnavailable+1)
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		ok, err := claimed(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// remembered tells whether a pair is remembered now. It asks by
// remembering the pair for no time at all: a pair remembered that way is
// forgotten at once (RememberNonce replaces an expired pair), so asking
// leaves nothing that lasts.
func (h *Handler) remembered(ctx context.Context, txID string, nonce []byte) (bool, error) {
	err := h.svc.RememberNonce(ctx, txID, nonce, 0)
	if err == nil {
		return false, nil
	}
	if pki.ErrorCode(err) == pki.EBadRequest {
		return true, nil
	}
	return false, err
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
