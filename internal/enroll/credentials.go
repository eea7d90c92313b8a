package enroll

import (
	"context"
	"errors"
	"fmt"

	"github.com/scepter/scepter/internal/credential"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// CheckCredentials is the part of Enroll's authentication that needs no
// certificate request: the HTTP user and its password (or the challenge
// given as the password), the certificate a renewal is authenticated by, a
// manufacturer certificate. req carries no CSR. A handler calls it before
// it parses the request, so that a client whose credentials are wrong is
// told so (401) whatever its body, and makes the server parse nothing.
// Where only the request can decide (a challenge bound to names, one used
// up by a held or lost request, a webhook), the credentials pass here:
// Enroll checks everything again. A wrong secret counts against the
// client's address as in Enroll, and a refusal is recorded in the audit
// trail (Audited).
func (s *Service) CheckCredentials(ctx context.Context, req Request) error {
	var attempt secretAttempt
	err := s.checkCredentials(ctx, req, &attempt)
	if err == nil {
		// Enroll settles the attempt once it knows the outcome.
		return nil
	}
	s.settle(attempt, err)
	s.observe(req.Protocol, req.Profile, nil, err)
	return s.recordFailure(ctx, req, err)
}

func (s *Service) checkCredentials(ctx context.Context, req Request, attempt *secretAttempt) error {
	profile, ok := s.Profile(req.Profile)
	if !ok {
		return pki.Errorf(pki.ENotFound, "unknown profile %q", req.Profile)
	}
	st := &State{Req: req, Profile: profile, Attempt: attempt}
	ev := req.Evidence
	switch {
	case req.Renewal:
		old, _, err := s.renewedCertificate(ctx, st)
		if err != nil || old.Status != pki.StatusRevoked {
			return err
		}
		// A revoked certificate still asks again for a renewal of it that
		// was issued (and revoked it) when the answer was lost; the
		// request's key says which.
		if !req.ServerKeyGen {
			renewals, err := s.store.RenewalsOf(ctx, old.IssuerID, old.SerialHex)
			if err != nil {
				return fmt.Errorf("enroll: renewals of %s: %w", old.SerialHex, err)
			}
			for _, r := range renewals {
				if r.Status == pki.StatusValid {
					return nil
				}
			}
		}
		return pki.Errorf(pki.EBadCertID, "the certificate to renew is revoked")
	case ev.HTTPUser != "" || ev.HTTPPassword != "":
		return s.throttled(st, "user "+ev.HTTPUser, func() error { return s.checkUser(ctx, st, s.challengeMayHold) })
	case ev.Challenge != "":
		return nil // a SCEP challenge travels inside the request
	case ev.TLSClientCert != nil:
		return s.checkManufacturerCert(st)
	}
	return pki.Errorf(pki.EUnauthorized, "a challenge password is required")
}

// challengeMayHold is checkChallenge without the request: it refuses only
// a challenge that checkChallenge refuses for any request at st's profile.
// A one-time challenge no longer usable may still authenticate its
// requester asking again about a request held with it, or about a
// certificate issued with it whose answer was lost: the request says
// which, so such a challenge passes here.
func (s *Service) challengeMayHold(ctx context.Context, st *State, presented string) error {
	mode := st.Profile.ChallengeMode
	if mode == ChallengeWebhook {
		return nil // the webhook decides, given the request
	}
	if mode == "" {
		mode = ChallengeAny
	}
	if (mode == ChallengeStatic || mode == ChallengeAny) && st.Profile.Name == s.staticProfile && s.static.Matches(presented) {
		return nil
	}
	if mode == ChallengeOneTime || mode == ChallengeAny {
		hash := credential.HashChallenge(presented)
		_, err := s.store.LookupChallenge(ctx, hash, s.clock.Now())
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, store.ErrChallengeUnusable):
			return err
		case st.Profile.RequireApproval:
			return nil // it may have been used up by a held request
		}
		ref, err := s.store.ChallengeIssued(ctx, hash)
		if err != nil {
			return err
		}
		if ref != "" {
			return nil
		}
	}
	return pki.Errorf(pki.EUnauthorized, "challenge password is not valid")
}
