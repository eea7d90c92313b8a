package enroll

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// acceptedPasswordLifetime is how long an EST user's accepted password is
// accepted again without argon2id (credential.NewRememberingPasswordChecker):
// the user is still looked up on every request.
const acceptedPasswordLifetime = 15 * time.Minute

// authenticateUser checks HTTP Basic credentials: an EST user and its
// password, bound to this profile, or to none where the profile takes a
// shared secret (AdmitsUnboundUsers); a password whose user is unknown is
// tried as a challenge (the one-time challenges of `scepter challenge new`
// work as the Basic password, whatever the user name). An unknown user
// costs the same time as a wrong password.
func (s *Service) authenticateUser(ctx context.Context, st *State) error {
	return s.checkUser(ctx, st, s.checkChallenge, s.checkOneTimeOnly)
}

// challengeCheck checks a presented challenge for st: checkChallenge, or
// challengeMayHold before the request is read; and, while st's address is
// locked out for the profile's challenges, checkOneTimeOnly, or
// oneTimeMayHold before the request is read.
type challengeCheck func(ctx context.Context, st *State, presented string) error

// checkUser is authenticateUser with the password tried as a challenge by
// challenge, or by whileLocked during a lockout (challengeAsPassword).
func (s *Service) checkUser(ctx context.Context, st *State, challenge, whileLocked challengeCheck) error {
	ev := st.Req.Evidence
	if ev.HTTPPassword == "" {
		return pki.Errorf(pki.EUnauthorized, "a password is required")
	}
	u, ok, err := s.checkPassword(ctx, st)
	switch {
	case errors.Is(err, store.ErrNotFound):
		err := s.challengeAsPassword(ctx, st, challenge, whileLocked)
		if err != nil && pki.ErrorCode(err) == pki.EUnauthorized {
			// An unknown user costs what a wrong password does.
			s.passwords.Burn(ctx, ev.HTTPPassword)
		}
		var locked *LockedOutError
		if errors.As(err, &locked) && st.Attempt != nil {
			// No user to check the password against, and the challenges
			// locked: nothing was checked, so nothing failed. Counted,
			// a client retrying without heeding Retry-After would lock
			// its address out for every identity.
			st.Attempt.unchecked = true
		}
		return err
	case err != nil:
		return err
	}
	if !ok {
		// A one-time challenge works as the password whatever the user
		// name, an EST user's too.
		err := s.challengeAsPassword(ctx, st, challenge, whileLocked)
		var locked *LockedOutError
		if errors.As(err, &locked) {
			// The user's wrong passwords count against its own lock and
			// the challenges' alike, so both engage together; a request
			// that passed the user's check as the last of them settled
			// finds the challenges' lock here. Its sender needs the
			// user's: said as the challenges', it reads as another
			// lock than the one its passwords set.
			if userLocked, userErr := s.lockedOut(throttleHost(st.Req.RemoteAddr), userIdentity(ev.HTTPUser), lockedUser, nil); userLocked {
				return userErr
			}
		}
		return err
	}
	if u.Profile != "" && u.Profile != st.Profile.Name {
		// The password is right: a policy refusal (EST 403), not a failed
		// check. Counted as one, a device pointed at the wrong label would
		// lock its user out for its whole address (behind NAT: the fleet).
		return pki.Errorf(pki.EForbidden, "user %q may enroll only at profile %q", u.Name, u.Profile)
	}
	if u.Profile == "" && !AdmitsUnboundUsers(st.Profile.ChallengeMode) {
		// A profile that takes one-time challenges only, or asks its
		// webhook, is not opened by a shared password the operator never
		// tied to it. The password is right: a policy refusal, as above.
		return pki.Errorf(pki.EForbidden, "user %q is bound to no profile, and profile %q takes %s only (challenge = %q); "+
			"to let the user enroll here, bind it to this profile: scepter est user remove %s, then scepter est user add %s --password-file F --profile %s",
			u.Name, st.Profile.Name, challengeModeTakes(st.Profile.ChallengeMode), st.Profile.ChallengeMode, u.Name, u.Name, st.Profile.Name)
	}
	st.AuthorizedBy = "est-user " + u.Name
	return nil
}

// AdmitsUnboundUsers reports whether a profile of challenge mode mode lets
// an EST user bound to no profile enroll: one that takes a shared secret
// (static, or any, which is also what an unset mode means) does; one that
// takes one-time challenges only, or whatever its webhook allows, does
// not, since a password for any profile would bypass what it asks of
// each request.
func AdmitsUnboundUsers(mode string) bool {
	return mode == "" || mode == ChallengeStatic || mode == ChallengeAny
}

// challengeModeTakes says in words what a profile of challenge mode mode
// authenticates enrollments by, for a refusal.
func challengeModeTakes(mode string) string {
	if mode == ChallengeWebhook {
		return "the challenges its webhook allows"
	}
	return "one-time challenges"
}

// checkPassword reads the EST user named in st's evidence and checks the
// password against it: store.ErrNotFound when there is no such user. On a
// request CheckCredentials checked (st.checked) it decides on what that
// read instead, without reading again; for CheckCredentials itself
// (st.reading) it notes what it read.
func (s *Service) checkPassword(ctx context.Context, st *State) (*pki.ESTUser, bool, error) {
	if c := st.checked; c != nil && c.userRead {
		if c.estUser == nil {
			return nil, false, store.ErrNotFound
		}
		return c.estUser, c.passwordOK, nil
	}
	ev := st.Req.Evidence
	u, err := s.store.ESTUser(ctx, ev.HTTPUser)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if st.reading != nil {
			st.reading.userRead = true
		}
		return nil, false, err
	case err != nil:
		// The store's error quotes the name, which may be a secret
		// typed into the user field: the refusal's log line carries it.
		return nil, false, fmt.Errorf("enroll: reading the EST user: %w", withoutName(err, ev.HTTPUser))
	}
	ok, err := s.passwords.Verify(ctx, u.PasswordHash, ev.HTTPPassword)
	if ctxErr := ctx.Err(); ctxErr != nil {
		// Gave up waiting for a password check (a burst of them): busy,
		// not wrong; the client may try again.
		return nil, false, fmt.Errorf("%w: waiting for a password check: %w", pki.ErrUnavailable, ctxErr)
	}
	if err != nil {
		return nil, false, pki.Wrap(pki.EInternal, err, "stored password hash")
	}
	if st.reading != nil {
		st.reading.userRead, st.reading.estUser, st.reading.passwordOK = true, u, ok
	}
	return u, ok, nil
}

// nameWithheldError is an error whose text held a name that may be a
// secret, told without it; errors.Is and errors.As still see the error.
type nameWithheldError struct {
	text string
	err  error
}

func (e *nameWithheldError) Error() string { return e.text }
func (e *nameWithheldError) Unwrap() error { return e.err }

// withoutName is err with name, quoted as the stores quote it (%q), left
// out of its text; or with no text of its own where the name may still
// show: it is written there unquoted (or is so short that it is part of
// other words), or quoting escapes some of it, which the PostgreSQL store
// then quotes once more.
func withoutName(err error, name string) error {
	if name == "" {
		return err
	}
	quoted := strconv.Quote(name)
	text := strings.ReplaceAll(err.Error(), quoted, "(name withheld)")
	if quoted != `"`+name+`"` || strings.Contains(text, name) {
		text = "a store error (its text withheld: it may hold the name sent)"
	}
	return &nameWithheldError{text: text, err: err}
}

// challengeAsPassword tries the Basic password as a challenge: a challenge
// attempt like one over SCEP, throttled as the profile's challenges
// (challengeIdentity) are, whatever the user name. While the address is
// locked out for them only a usable one-time challenge is looked up (by
// whileLocked), anything else refused unchecked, the static challenge and
// the webhook not asked; otherwise a refusal counts against the challenges
// as well as the user (settle), so new user names buy no more guesses.
func (s *Service) challengeAsPassword(ctx context.Context, st *State, challenge, whileLocked challengeCheck) error {
	presented := st.Req.Evidence.HTTPPassword
	identity := challengeIdentity(st.Profile)
	locked, err := s.lockedOut(throttleHost(st.Req.RemoteAddr), identity, lockedChallenges(st.Profile), func() error { return whileLocked(ctx, st, presented) })
	if locked {
		// Refused unchecked, it counts against the user alone (whose
		// password was checked, and was not this), and the address, as
		// throttled counts nothing during a lockout; an unknown user's
		// counts nothing (checkUser). Accepted as a one-time challenge, it is that
		// challenge's: it clears no failures of the user, nor of the
		// challenges while their lock holds.
		if err == nil && st.Attempt != nil {
			st.Attempt.asChallenge = identity
		}
		return err
	}
	if st.Attempt != nil {
		st.Attempt.asChallenge = identity
	}
	err = challenge(ctx, st, presented)
	if code := pki.ErrorCode(err); err == nil || code == pki.EBadRequest || code == pki.EForbidden || code == pki.EUnavailable || errors.Is(err, pki.ErrUnavailable) {
		// A one-time challenge presented for a profile or identity it is
		// not bound to is refused with its reason, as over SCEP: whoever
		// sent it holds it, so the reason tells them nothing. A store or
		// challenge webhook that cannot be reached is busy (503), not a
		// wrong password, and no failed check of the address.
		return err
	}
	return pki.Errorf(pki.EUnauthorized, "user name or password is not valid")
}

// authenticateManufacturer accepts a TLS client certificate that chains to
// one of the configured manufacturer CAs (an IDevID) for a first enrollment,
// where the profile allows it. A certificate of ours is not enough here: it
// renews (simplereenroll), it does not buy a second identity.
func (s *Service) authenticateManufacturer(_ context.Context, st *State) error {
	if err := s.checkManufacturerCert(st); err != nil {
		return err
	}
	cert := st.Req.Evidence.TLSClientCert
	if st.Profile.ManufacturerSameSubject {
		if !csr.SameName(cert.RawSubject, st.Req.CSR.RawSubject) {
			return pki.Errorf(pki.EBadRequest, "this profile enrolls a manufacturer certificate's own subject (%s) only", cert.Subject)
		}
		// Bound to the device's own identity, the request buys that
		// identity and no other name, as a one-time challenge bound to one.
		if !namesWithin(st.Req.CSR, formatSANs(cert.DNSNames, cert.EmailAddresses, cert.IPAddresses, cert.URIs)) {
			return pki.Errorf(pki.EBadRequest, "this profile enrolls a manufacturer certificate's own names only: the request carries a subject alternative name the certificate does not")
		}
	}
	return nil
}

// checkManufacturerCert is authenticateManufacturer without the request:
// the TLS client certificate is a device's, issued under a manufacturer CA
// the profile accepts, valid now, for client authentication.
func (s *Service) checkManufacturerCert(st *State) error {
	cert := st.Req.Evidence.TLSClientCert
	now := s.clock.Now()
	if _, err := s.authority.IssuedByUs(cert, now); err == nil || errors.Is(err, ca.ErrExpired) {
		return pki.Errorf(pki.EUnauthorized, "a certificate of this CA authenticates re-enrollment (simplereenroll), not a first enrollment; present a password or a manufacturer certificate")
	}
	if !st.Profile.ManufacturerAuth || s.cfg.ManufacturerRoots == nil {
		return pki.Errorf(pki.EUnauthorized, "this profile accepts no client certificate for a first enrollment; present a password")
	}
	if cert.IsCA {
		// The manufacturer CA itself (or one under it) is no device.
		return pki.Errorf(pki.EUnauthorized, "the client certificate is a CA certificate, not a device's manufacturer certificate (IDevID)")
	}
	inter := x509.NewCertPool()
	for _, c := range st.Req.Evidence.TLSChain {
		inter.AddCert(c)
	}
	_, err := cert.Verify(x509.VerifyOptions{Roots: s.cfg.ManufacturerRoots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return pki.Wrap(pki.EBadTime, err, "the client certificate is expired or not yet valid (valid "+
			cert.NotBefore.UTC().Format(time.RFC3339)+" to "+cert.NotAfter.UTC().Format(time.RFC3339)+")")
	case err != nil:
		return pki.Wrap(pki.EBadCertID, err, "the client certificate was not issued by a known manufacturer CA")
	}
	if !clientAuthAllowed(cert) {
		// RFC 5280 §4.2.1.12: a certificate with an extended key usage
		// serves the purposes it lists, and no others.
		return pki.Errorf(pki.EBadRequest, "the client certificate's extended key usage does not allow client authentication (RFC 5280 §4.2.1.12)")
	}
	return nil
}

// clientAuthAllowed: the certificate has no extended key usage, or one that
// includes client authentication or any purpose.
func clientAuthAllowed(cert *x509.Certificate) bool {
	if len(cert.ExtKeyUsage) == 0 && len(cert.UnknownExtKeyUsage) == 0 {
		return true
	}
	for _, u := range cert.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}
