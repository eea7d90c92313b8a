package enroll

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/scepter/scepter/internal/ca"
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
//
// For HTTP Basic credentials it returns what it read (the EST user, the
// password's verdict, the one-time challenge the password is), for the
// handler to pass on as Request.Checked: Enroll then decides on those
// instead of reading them again. Otherwise it returns nil.
func (s *Service) CheckCredentials(ctx context.Context, req Request) (*CheckedCredentials, error) {
	var attempt secretAttempt
	checked := &CheckedCredentials{svc: s, at: s.clock.Now(), user: req.Evidence.HTTPUser, password: req.Evidence.HTTPPassword,
		profile: req.Profile, remote: req.RemoteAddr, renewal: req.Renewal, serverKeyGen: req.ServerKeyGen}
	err := s.checkCredentials(ctx, req, &attempt, checked)
	if err == nil {
		// Enroll settles the attempt once it knows the outcome.
		if !checked.userRead && checked.challenge == nil {
			return nil, nil
		}
		return checked, nil
	}
	s.settle(attempt, err)
	s.observe(req.Protocol, req.Profile, nil, err)
	return nil, s.recordFailure(ctx, req, err)
}

// CheckedCredentialsLifetime is how long Enroll decides on what
// CheckCredentials read rather than reading it again: the time a handler
// takes to read and parse a request's body. A user removed or a password
// changed within it still authenticates that one request, as if the change
// came just after it; a one-time challenge is consumed at issuance all the
// same, in the transaction that records the certificate, and only while it
// is unused, unlocked and unexpired.
const CheckedCredentialsLifetime = time.Minute

// CheckedCredentials is what CheckCredentials read for one request's HTTP
// Basic credentials, to be passed on in Request.Checked. It is opaque: only
// the service makes one, and Enroll uses it only for the request it was
// made for (the same service, user, password, profile, client address and
// operation) within CheckedCredentialsLifetime; for any other request it
// reads and checks everything itself, so passing one can skip no check.
type CheckedCredentials struct {
	svc                   *Service
	at                    time.Time
	user, password        string
	profile, remote       string
	renewal, serverKeyGen bool

	// userRead: the EST user was looked up; estUser is it (nil: there is
	// none by that name) and passwordOK says whether the password is its.
	userRead   bool
	estUser    *pki.ESTUser
	passwordOK bool
	// challenge is the usable one-time challenge the password is, and
	// challengeHash its hash; nil when it is none (or was not looked up).
	challenge     *pki.Challenge
	challengeHash []byte
}

// reusable is req.Checked if it was made by s for req's credentials
// within CheckedCredentialsLifetime, else nil.
func (s *Service) reusable(req Request) *CheckedCredentials {
	c := req.Checked
	if c == nil || c.svc != s || c.user != req.Evidence.HTTPUser || c.profile != req.Profile || c.remote != req.RemoteAddr ||
		c.renewal != req.Renewal || c.serverKeyGen != req.ServerKeyGen ||
		subtle.ConstantTimeCompare([]byte(c.password), []byte(req.Evidence.HTTPPassword)) != 1 {
		return nil
	}
	if age := s.clock.Now().Sub(c.at); age < 0 || age > CheckedCredentialsLifetime {
		return nil
	}
	return c
}

func (s *Service) checkCredentials(ctx context.Context, req Request, attempt *secretAttempt, checked *CheckedCredentials) error {
	profile, ok := s.Profile(req.Profile)
	if !ok {
		return pki.Errorf(pki.ENotFound, "unknown profile %q", req.Profile)
	}
	st := &State{Req: req, Profile: profile, Attempt: attempt, reading: checked}
	ev := req.Evidence
	switch {
	case req.Renewal:
		old, _, err := s.renewedCertificate(ctx, st)
		if errors.Is(err, ca.ErrExpired) && profile.RequireApproval && !req.ServerKeyGen {
			// Expired past its grace, it may still ask again about the
			// renewal it had held for approval while it was valid, which
			// only the request's key finds: Enroll decides, and refuses
			// it as expired when no such request is held.
			return nil
		}
		if err != nil || old.Status != pki.StatusRevoked {
			return err
		}
		// A revoked certificate still asks again for a renewal of it that
		// was issued and revoked it (revoke_superseded) when the answer
		// was lost; the request's key says which. Revoked otherwise, it
		// asks for nothing.
		if !req.ServerKeyGen {
			renewals, err := s.store.RenewalsOf(ctx, old.IssuerID, old.SerialHex)
			if err != nil {
				return fmt.Errorf("enroll: renewals of %s: %w", pki.ShownSerial(old.SerialHex), err)
			}
			for i := range renewals {
				if renewals[i].Status == pki.StatusValid && supersededByRenewal(old, &renewals[i]) {
					return nil
				}
			}
		}
		return revokedRenewalRefusal(old)
	case ev.HTTPUser != "" || ev.HTTPPassword != "":
		return s.throttled(st, userIdentity(ev.HTTPUser), lockedUser, func() error { return s.checkUser(ctx, st, s.challengeMayHold, s.oneTimeMayHold) },
			func() error { return s.oneTimeMayHold(ctx, st, ev.HTTPPassword) })
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
		_, lookupErr := s.lookupChallenge(ctx, st, hash)
		switch {
		case lookupErr == nil:
			return nil
		case !errors.Is(lookupErr, store.ErrChallengeUnusable):
			return lookupErr
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
		if spent := spentChallenge(lookupErr); spent != nil {
			return spent
		}
	}
	return pki.Errorf(pki.EUnauthorized, "challenge password is not valid")
}

// oneTimeMayHold is checkOneTimeOnly without the request: presented is a
// usable one-time challenge of st's profile (errNotOneTime if not); its
// binding is for Enroll to check, given the request.
func (s *Service) oneTimeMayHold(ctx context.Context, st *State, presented string) error {
	_, _, err := s.usableOneTime(ctx, st, presented)
	return err
}

// lookupChallenge looks up the usable one-time challenge with this hash:
// the one CheckCredentials found for this request (st.checked), or the
// store's, noted for Enroll when st is CheckCredentials' (st.reading).
func (s *Service) lookupChallenge(ctx context.Context, st *State, hash []byte) (*pki.Challenge, error) {
	if c := st.checked; c != nil && c.challenge != nil && bytes.Equal(c.challengeHash, hash) {
		return c.challenge, nil
	}
	ch, err := s.store.LookupChallenge(ctx, hash, s.clock.Now())
	if err == nil && st.reading != nil {
		st.reading.challenge, st.reading.challengeHash = ch, hash
	}
	return ch, err
}

// spentChallenge is the refusal of a one-time challenge that the store
// found by its hash but that can enroll no more (lookupErr, a
// *store.SpentChallengeError): used already, locked after misuses, or
// expired; nil for any other lookup error. Whoever sends it holds the secret, 128 random
// bits that no guesser finds, so it is told what is true, as a policy
// refusal (EST 403, SCEP badRequest) that counts as no failed check:
// refused as a wrong password and counted, a device asking again with its
// used challenge after a lost answer would lock its address out.
func spentChallenge(lookupErr error) error {
	var spent *store.SpentChallengeError
	if !errors.As(lookupErr, &spent) {
		return nil
	}
	switch {
	case spent.Locked:
		return pki.Wrap(pki.EForbidden, lookupErr, fmt.Sprintf(
			"this one-time challenge password is locked after %d uses for another identity or profile; ask for a new one", ChallengeLockAfter))
	case spent.Expired:
		return pki.Wrap(pki.EForbidden, lookupErr, "this one-time challenge password has expired; ask for a new one")
	}
	return pki.Wrap(pki.EForbidden, lookupErr, "this one-time challenge password was used already; ask for a new one")
}

// isSpentChallenge: err refuses a one-time challenge used already or
// locked (spentChallenge), a refusal of the challenge as a wrong one is.
func isSpentChallenge(err error) bool {
	return pki.ErrorCode(err) == pki.EForbidden && errors.Is(err, store.ErrChallengeUnusable)
}

// challengeRefused: err refuses the challenge presented, wrong or spent.
func challengeRefused(err error) bool {
	return pki.ErrorCode(err) == pki.EUnauthorized || isSpentChallenge(err)
}

// challengeGoneMeanwhile is the refusal of a request whose one-time
// challenge (of this hash), usable when it was checked, could not be
// consumed by its issuance or held request (cause): another request, a
// copy of this one with another key perhaps, used it meanwhile, or misuses
// locked it. It says which, as a request that came later is told
// (spentChallenge); one that expired meanwhile is not valid.
func (s *Service) challengeGoneMeanwhile(ctx context.Context, hash []byte, cause error) error {
	_, err := s.store.LookupChallenge(ctx, hash, s.clock.Now())
	if spent := spentChallenge(err); spent != nil {
		return spent
	}
	return pki.Wrap(pki.EUnauthorized, cause, "challenge password is not valid")
}
