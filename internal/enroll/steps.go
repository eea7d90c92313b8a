package enroll

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"

	"github.com/scepter/scepter/internal/ca"
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

// checkSigner: a self-signed SCEP signer certificate must carry the same key
// as the request (RFC 8894 §2.3), so nobody relays someone else's CSR under
// their own signature.
func checkSigner(_ context.Context, st *State) error {
	signer := st.Req.Evidence.SignerCert
	// A renewal signed by a self-signed certificate is refused by the
	// renewal check, as an unknown signer (badCertId).
	if signer == nil || !isSelfSigned(signer) || st.Req.Renewal {
		return nil
	}
	if !bytes.Equal(signer.RawSubjectPublicKeyInfo, st.Req.CSR.RawSubjectPublicKeyInfo) {
		return pki.Errorf(pki.EBadRequest, "the self-signed signer certificate's key differs from the request's key")
	}
	return nil
}

// isSelfSigned goes by the names alone: a signature check would call a
// SHA-1-signed self-signed certificate (micromdm's scepclient makes them)
// "not self-signed" and so skip the key check.
func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject)
}

// checkPolicy applies the profile's key policy; names and extensions are
// applied by the issuer, which builds the certificate from the profile only.
func checkPolicy(_ context.Context, st *State) error {
	return ca.CheckKey(st.Profile.Keys, st.Req.CSR.PublicKey)
}

// Challenge modes of a profile.
const (
	ChallengeStatic  = "static"
	ChallengeOneTime = "onetime"
	ChallengeAny     = "any"
	ChallengeWebhook = "webhook"
)

// authenticate decides how the request is authenticated: a renewal by the
// certificate we issued that signed it, anything else by its challenge.
// RenewalReq is always a renewal; a PKCSReq signed by a certificate that is
// not self-signed and carrying no challenge is one too (Apple, Cisco and
// certmonger renew that way); with a challenge it is a fresh enrollment.
func (s *Service) authenticate(ctx context.Context, st *State) error {
	signer := st.Req.Evidence.SignerCert
	if st.Req.Renewal || (st.Req.Evidence.Challenge == "" && signer != nil && !isSelfSigned(signer)) {
		return s.authenticateRenewal(ctx, st)
	}
	return s.checkChallenge(ctx, st)
}

// checkChallenge checks the challenge password against the static secret,
// the one-time challenges or the webhook, as the profile allows.
func (s *Service) checkChallenge(ctx context.Context, st *State) error {
	presented := st.Req.Evidence.Challenge
	if presented == "" {
		return pki.Errorf(pki.EBadRequest, "a challenge password is required")
	}
	mode := st.Profile.ChallengeMode
	if mode == ChallengeWebhook {
		return s.checkWebhook(ctx, st)
	}
	if mode == "" {
		mode = ChallengeAny
	}
	if (mode == ChallengeStatic || mode == ChallengeAny) && s.static.matches(presented) {
		return nil
	}
	if mode == ChallengeOneTime || mode == ChallengeAny {
		hash := HashChallenge(presented)
		ch, err := s.store.LookupChallenge(ctx, hash, s.clock.Now())
		switch {
		case errors.Is(err, store.ErrChallengeUnusable):
		case err != nil:
			return err
		case ch.Profile != "" && ch.Profile != st.Profile.Name:
			return pki.Errorf(pki.EBadRequest, "challenge password is not valid for this profile")
		default:
			st.ConsumeChallenge = hash
			st.Events = append(st.Events, pki.AuditEvent{
				Time: s.clock.Now(), Type: pki.EventChallengeUsed, Actor: actor(st.Req), Profile: st.Profile.Name,
				TransactionID: st.Req.TransactionID, Outcome: "success", Detail: "challenge " + ch.ID,
			})
			return nil
		}
	}
	return pki.Errorf(pki.EBadRequest, "challenge password is not valid")
}

// HashChallenge is how one-time challenges are stored: they are random and
// long, so an unsalted SHA-256 is enough and lets us look them up.
func HashChallenge(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// staticSecret compares in constant time, also in the length: both sides
// are hashed first.
type staticSecret struct {
	hash []byte
}

func newStaticSecret(s string) staticSecret {
	if s == "" {
		return staticSecret{}
	}
	return staticSecret{hash: HashChallenge(s)}
}

func (s staticSecret) matches(presented string) bool {
	if s.hash == nil {
		return false
	}
	return subtle.ConstantTimeCompare(s.hash, HashChallenge(presented)) == 1
}
