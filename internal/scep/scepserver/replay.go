package scepserver

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
)

// A message's (transactionID, senderNonce) is remembered before its
// operation runs, so that two copies of it never both run: the second is a
// replay. An operation that ends unavailable (503: the store, the issuer or
// the RA key could not be used) changed nothing, and the client sends the
// same bytes again later: that retry must not be refused as a replay, so
// the pair is forgotten again. A copy sent while the first still runs is
// refused, as the pair is remembered until the 503; all of this is shared
// by the nodes on one store.
//
// A copy of a request (PKCSReq, RenewalReq) that arrives while its first
// copy still runs is told to retry (503), as that run may still issue (see
// enroll's copyInFlightWindow). A run that ends refused (a FAILURE, as for
// a wrong challenge) marks its pair in the store before its answer goes
// out (markRefused), so a copy of it, on any node, is refused as a replay
// at once: a final answer for a message whose answer is final, not 503s
// for minutes to whoever replays a refused capture. A copy that asks about
// a held request, or whose certificate was issued, is answered as before.
//
// Forgetting can fail too (the store that made the run fail is still
// down). The node then keeps the pair in unforgotten, and a copy that the
// store refuses as a replay but that this node still has to forget is
// forgotten first and runs, or is answered 503 again: never a replay
// refusal, which a device takes as final.

// What the store remembers of a message is its transactionID and
// signedNonce(msg): the senderNonce followed by the SHA-256 of the
// signer's SubjectPublicKeyInfo. A pair alone belongs to nobody: anyone
// who saw a device's message (plain HTTP) could sign one of their own with
// its transactionID and senderNonce and, though refused, use the pair up,
// so that the device's own message, or its retry after a 503, was refused
// as a replay. A replay of a message carries its signer's key, as only
// that key's holder can sign under it, so replays are still refused; a
// message by another key is not one.
//
// The key, not a digest of the message's bytes: those change without the
// signer's key (the certificates and unsigned attributes are outside the
// signature, BER has several encodings, an ECDSA signature has a twin), so
// a replayer could give a captured message a digest of its own. The key,
// not the whole signer certificate, for the same reason: the certificate
// around it is the sender's to change. The suffix has a fixed length, so
// no two (senderNonce, key) give the same value.
//
// Pairs remembered before this form (the senderNonce alone) never match
// it: for the rest of their window (NonceLifetime) after an upgrade, a
// replay of a message first seen before it runs as its signer's resend
// with a new senderNonce would (mostly the certificate issued already for
// that transaction and key, encrypted to that key), and they lapse unused.

// signedNonce is the value remembered for msg's senderNonce: see above.
func signedNonce(msg *scep.PKIMessage) []byte {
	signer := sha256.Sum256(msg.SignerCert.RawSubjectPublicKeyInfo)
	v := make([]byte, 0, len(msg.SenderNonce)+len(signer))
	return append(append(v, msg.SenderNonce...), signer[:]...)
}

// forgetTimeout bounds one attempt to forget a pair, or to mark it refused,
// apart from the request's own deadline, which may be what ended the run.
const forgetTimeout = 5 * time.Second

// maxUnforgotten bounds the pairs a node keeps to forget (a store down for
// long under a burst): past it the oldest is dropped, and its retry is
// refused as a replay, as before this list.
const maxUnforgotten = 4096

// unforgotten are the pairs of messages answered 503 that the store could
// not be made to forget yet.
type unforgotten struct {
	mu    sync.Mutex
	pairs map[string]time.Time // txID + "\x00" + nonce → when it was noted
}

func pairKey(txID string, nonce []byte) string { return txID + "\x00" + string(nonce) }

func (u *unforgotten) add(txID string, nonce []byte, now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.pairs == nil {
		u.pairs = map[string]time.Time{}
	}
	if len(u.pairs) >= maxUnforgotten {
		var oldest string
		var at time.Time
		for k, t := range u.pairs {
			if oldest == "" || t.Before(at) {
				oldest, at = k, t
			}
		}
		delete(u.pairs, oldest)
	}
	u.pairs[pairKey(txID, nonce)] = now
}

func (u *unforgotten) has(txID string, nonce []byte) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	_, ok := u.pairs[pairKey(txID, nonce)]
	return ok
}

func (u *unforgotten) remove(txID string, nonce []byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.pairs, pairKey(txID, nonce))
}

// claimNonce remembers the message's pair for the run about to start: a
// pair remembered already is a replay (EBadRequest), unless this node
// still owes the store forgetting it (see unforgotten).
func (h *Handler) claimNonce(ctx context.Context, txID string, nonce []byte) error {
	err := h.svc.RememberNonce(ctx, txID, nonce, h.opts.NonceLifetime)
	if err == nil || pki.ErrorCode(err) != pki.EBadRequest || !h.unforgotten.has(txID, nonce) {
		return err
	}
	if ferr := h.forget(ctx, txID, nonce); ferr != nil {
		return pki.Wrap(pki.EUnavailable, ferr, "this message's earlier run was answered 503, and the store cannot be reached yet to let it run again; try again later")
	}
	h.unforgotten.remove(txID, nonce)
	// A copy that reached another node meanwhile may take it first: then
	// this one is its replay.
	return h.svc.RememberNonce(ctx, txID, nonce, h.opts.NonceLifetime)
}

// releaseNonce lets the message's next copy run again: its run ended
// unavailable, having changed nothing.
func (h *Handler) releaseNonce(ctx context.Context, txID string, nonce []byte) {
	if err := h.forget(ctx, txID, nonce); err != nil {
		h.unforgotten.add(txID, nonce, h.clock.Now())
		h.log.Warn("scep: cannot forget the nonce of a message answered 503 yet; this node forgets it when the message comes again",
			"transaction_id", txID, "err", err)
	}
}

// markRefused records that the run of the message's pair, claimed by this
// run, ended refused (a FAILURE, not a 503): its copies are then refused
// as replays at once. Failing to record it changes no answer: the copies
// are then told to retry for a while, as before the mark, and refused as
// replays after that.
func (h *Handler) markRefused(ctx context.Context, txID string, nonce []byte) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), forgetTimeout)
	defer cancel()
	if err := h.svc.MarkNonceRefused(ctx, txID, nonce); err != nil {
		h.log.Warn("scep: cannot record that a message was refused; a copy of it is told to retry for a while before it is refused as a replay",
			"transaction_id", txID, "err", err)
	}
}

// forget forgets the pair in the store, within forgetTimeout of now and
// whatever became of the request's context.
func (h *Handler) forget(ctx context.Context, txID string, nonce []byte) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), forgetTimeout)
	defer cancel()
	return h.svc.ForgetNonce(ctx, txID, nonce)
}
