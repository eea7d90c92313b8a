package scepserver

import "context"

// A message's (transactionID, senderNonce) is remembered before its
// operation runs, so that two copies of it never both run: the second is a
// replay. An operation that ends unavailable (503: the store, the issuer or
// the RA key could not be used) changed nothing, and the client sends the
// same bytes again later: that retry must not be refused as a replay, so
// the pair is forgotten again. A copy sent while the first still runs is
// refused, as the pair is remembered until the 503; all of this is shared
// by the nodes on one store.

// claimNonce remembers the message's pair for the run about to start: a
// pair remembered already is a replay (EBadRequest).
func (h *Handler) claimNonce(ctx context.Context, txID string, nonce []byte) error {
	return h.svc.RememberNonce(ctx, txID, nonce, h.opts.NonceLifetime)
}

// releaseNonce lets the message's next copy run again: its run ended
// unavailable, having changed nothing.
func (h *Handler) releaseNonce(ctx context.Context, txID string, nonce []byte) {
	if err := h.svc.ForgetNonce(ctx, txID, nonce); err != nil {
		h.log.Warn("scep: cannot forget the nonce of a message answered 503; its retry will be refused as a replay",
			"transaction_id", txID, "err", err)
	}
}
