package enroll

import (
	"context"
	"crypto/subtle"
	"errors"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/credential"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// checkProofOfPossession verifies the CSR's own signature: the requester
// holds the private key of the public key it asks us to certify.
func checkProofOfPossession(_ context.Context, st *State) error {
	if err := st.Req.CSR.CheckSignature(); err != nil {
		return pki.Wrap(pki.EBadMessageCheck, err, "certificate request signature is invalid")
	}
	return nil
}

// checkChannelBinding links a request that came over TLS to its session
// (RFC 7030 §3.5): a binding the request carries must be this session's, so
// a CSR taken from another session is refused; a profile may demand one.
func checkChannelBinding(_ context.Context, st *State) error {
	cb := st.Req.Evidence.Channel
	if cb == nil {
		return nil
	}
	if cb.Claim == nil {
		if st.Profile.RequireChannelBinding {
			return pki.Errorf(pki.EUnauthorized, "this profile requires the request to carry the TLS channel binding (tls-unique or tls-exporter) in its challengePassword")
		}
		return nil
	}
	if cb.Session == nil {
		return pki.Errorf(pki.EUnauthorized, "this TLS session offers no channel binding (a TLS 1.2 resumption without extended master secret); reconnect without resumption")
	}
	if subtle.ConstantTimeCompare(cb.Claim, cb.Session) != 1 {
		return pki.Errorf(pki.EUnauthorized, "the request's channel binding does not match this TLS session")
	}
	return nil
}

// checkPolicy applies the profile's key policy; names and extensions are
// applied by the issuer, which builds the certificate from the profile only.
// A key the server makes itself (ServerKeyGen) is made to the policy after
// every check has passed, so unauthenticated requests cost no key generation.
func checkPolicy(_ context.Context, st *State) error {
	if st.Req.ServerKeyGen {
		return nil
	}
	return ca.CheckKey(st.Profile.Keys, st.PublicKey)
}

// Challenge modes of a profile.
const (
	ChallengeStatic  = "static"
	ChallengeOneTime = "onetime"
	ChallengeAny     = "any"
	ChallengeWebhook = "webhook"
)

// authenticate decides whether the evidence is enough: a renewal by the
// certificate it renews; anything else by an HTTP user, a challenge, or a
// manufacturer certificate the profile accepts, in that order.
func (s *Service) authenticate(ctx context.Context, st *State) error {
	ev := st.Req.Evidence
	switch {
	case st.Req.Renewal:
		return s.authenticateRenewal(ctx, st)
	case ev.HTTPUser != "" || ev.HTTPPassword != "":
		return s.authenticateUser(ctx, st)
	case ev.Challenge != "":
		return s.checkChallenge(ctx, st, ev.Challenge)
	case ev.TLSClientCert != nil:
		return s.authenticateManufacturer(ctx, st)
	}
	return pki.Errorf(pki.EUnauthorized, "a challenge password is required")
}

// checkChallenge checks a challenge against the static secret, the one-time
// challenges or the webhook, as the profile allows. The challenge that
// authenticated a held request still authenticates its requester asking
// about it again (a one-time one was used up when it was held).
func (s *Service) checkChallenge(ctx context.Context, st *State, presented string) error {
	hash := credential.HashChallenge(presented)
	if st.Held != nil && st.Held.ChallengeHash != nil && subtle.ConstantTimeCompare(hash, st.Held.ChallengeHash) == 1 {
		return nil
	}
	mode := st.Profile.ChallengeMode
	if mode == ChallengeWebhook {
		if err := s.checkWebhook(ctx, st, presented); err != nil {
			return err
		}
		st.ChallengeHash = hash
		return nil
	}
	if mode == "" {
		mode = ChallengeAny
	}
	if (mode == ChallengeStatic || mode == ChallengeAny) && s.static.Matches(presented) {
		st.ChallengeHash = hash
		return nil
	}
	if mode == ChallengeOneTime || mode == ChallengeAny {
		ch, err := s.store.LookupChallenge(ctx, hash, s.clock.Now())
		switch {
		case errors.Is(err, store.ErrChallengeUnusable):
		case err != nil:
			return err
		case ch.Profile != "" && ch.Profile != st.Profile.Name:
			return pki.Errorf(pki.EUnauthorized, "challenge password is not valid for this profile")
		default:
			st.ConsumeChallenge, st.ChallengeHash = hash, hash
			st.Events = append(st.Events, pki.AuditEvent{
				Time: s.clock.Now(), Type: pki.EventChallengeUsed, Actor: actor(st.Req), Profile: st.Profile.Name,
				TransactionID: st.Req.TransactionID, Outcome: "success", Detail: "challenge " + ch.ID,
			})
			return nil
		}
	}
	return pki.Errorf(pki.EUnauthorized, "challenge password is not valid")
}
