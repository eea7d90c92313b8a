package enroll

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/credential"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// checkProofOfPossession verifies the CSR's own signature: the requester
// holds the private key of the public key it asks us to certify. A request
// signed with SHA-1 is refused (badAlg) unless the profile allows legacy
// signatures; one signed with MD5 or DSA always is.
func checkProofOfPossession(_ context.Context, st *State) error {
	if err := ca.CheckSignatureAlgorithm(st.Req.CSR, st.Profile.AllowLegacySignatures); err != nil {
		return err
	}
	if err := ca.CheckKeySize(st.Profile.Keys, st.Req.CSR.PublicKey); err != nil {
		return err
	}
	if err := st.Req.CSR.CheckSignature(); err != nil {
		return pki.Wrap(pki.EBadMessageCheck, err, "certificate request signature is invalid")
	}
	return nil
}

// checkKeyNotCompromised refuses to certify a key revoked as compromised
// (CA/B Forum BR §6.1.1.3): a certificate of it was revoked for
// keyCompromise. One indexed read of the store, before anything is
// reserved or signed. A key the server makes is new, and not looked up.
func (s *Service) checkKeyNotCompromised(ctx context.Context, st *State) error {
	if st.Req.ServerKeyGen {
		return nil
	}
	hash, err := st.keyHash()
	if err != nil {
		return pki.Wrap(pki.EBadRequest, err, "the request's public key cannot be encoded")
	}
	k, err := s.store.CompromisedKey(ctx, hash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("enroll: look up compromised keys: %w", err)
	}
	return &certificateRefusal{issuerID: k.IssuerID, serialHex: k.SerialHex,
		err: pki.Errorf(pki.EBadRequest, "%s", compromisedKeyText(k))}
}

// compromisedKeyText is the refusal of key k, revoked as compromised: for
// a new request, a late one and a held one alike.
func compromisedKeyText(k *store.CompromisedKey) string {
	return fmt.Sprintf("this key was revoked as compromised on %s (certificate %s); enroll with a new key",
		k.RevokedAt.UTC().Format(time.DateOnly), pki.ShownSerial(k.SerialHex))
}

// checkNotOwnKey refuses to certify a key of the server's own: a CA's or
// an RA's (ca.Authority.OwnKeyRole), an OCSP responder's or the HTTPS
// certificate's (Config.ServerKeys). A client certificate for one would
// make what the server signs with it a signature relying parties may take
// as that client's. Before anything is reserved or signed, and with no
// store read. The server's own certificates (protocol internal) certify
// its keys by design, and a key the server makes is new.
func (s *Service) checkNotOwnKey(st *State) error {
	if st.Req.ServerKeyGen || st.Req.Protocol == pki.ProtocolInternal {
		return nil
	}
	role, ok := s.authority.OwnKeyRole(st.PublicKey)
	pub, comparable := st.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok && comparable && s.cfg.ServerKeys != nil {
		for _, k := range s.cfg.ServerKeys() {
			if k.Key != nil && pub.Equal(k.Key) {
				role, ok = k.Role, true
				break
			}
		}
	}
	if !ok {
		return nil
	}
	return ownKeyRefusal(role, nil)
}

// ownKeyRefusal is the refusal of a key of the server's own, role naming
// it ("the SCEP RA's key (CN=…)"); cause is the store's, if it found it.
func ownKeyRefusal(role string, cause error) error {
	return pki.Wrap(pki.EBadRequest, cause, "the request's public key is "+role+": this server never certifies its own keys; enroll with a key of the device's own")
}

// ownKeyLate is the refusal of an issuance the store refused because its
// key is that of one of the server's own certificates in the inventory or
// of an issuing CA it records (store.ErrOwnKey): one recorded since this
// node last loaded its CA, such as a new RA of 'ca renew-ra' or 'ca
// rollover', or the next issuing CA of 'ca rollover' (checkNotOwnKey, in
// memory, knows it only after the reload). It reads as checkNotOwnKey's.
func ownKeyLate(err error) error {
	role := "the key of one of this server's own certificates"
	var own *store.OwnKeyError
	switch {
	case !errors.As(err, &own):
	case own.IssuerID != "":
		// As ca.Authority.OwnKeyRole names an issuing CA's key.
		name := own.Subject
		if name == "" {
			name = own.IssuerID
		}
		role = "the key of the issuing CA " + name
	case own.Profile != "":
		switch own.Profile {
		case RAProfileName:
			role = "the SCEP RA's key (" + own.Subject + ")"
		case "ocsp-responder": // responderProfile
			role = "the key of an OCSP responder (" + own.Subject + ")"
		case "tls-server": // serverProfile
			role = "the key of a server's HTTPS certificate (" + own.Subject + ")"
		default:
			role = "the key of the server's own certificate " + own.Subject + " (profile " + own.Profile + ")"
		}
	}
	return ownKeyRefusal(role, err)
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
			return pki.Errorf(pki.EBadRequest, "this profile requires the request to carry the TLS channel binding (tls-unique or tls-exporter) in its challengePassword")
		}
		return nil
	}
	if cb.Session == nil {
		return pki.Errorf(pki.EBadRequest, "this TLS session offers no channel binding (a TLS 1.2 resumption without extended master secret); reconnect without resumption")
	}
	if subtle.ConstantTimeCompare(cb.Claim, cb.Session) != 1 {
		return pki.Errorf(pki.EBadRequest, "the request's challengePassword, read as the TLS channel binding (RFC 7030 §3.5), does not match this TLS session")
	}
	return nil
}

// Challenge modes of a profile.
const (
	ChallengeStatic  = "static"
	ChallengeOneTime = "onetime"
	ChallengeAny     = "any"
	ChallengeWebhook = "webhook"
)

// TakesOneTimeChallenges reports whether a profile of challenge mode mode
// ever accepts a one-time challenge (static and webhook modes never do).
func TakesOneTimeChallenges(mode string) bool {
	return mode != ChallengeStatic && mode != ChallengeWebhook
}

// authenticate decides whether the evidence is enough: a renewal by the
// certificate it renews; anything else by an HTTP user, a challenge, or a
// manufacturer certificate the profile accepts, in that order.
func (s *Service) authenticate(ctx context.Context, st *State) error {
	ev := st.Req.Evidence
	switch {
	case st.Req.Renewal:
		if err := s.authenticateRenewal(ctx, st); err != nil {
			return err
		}
		st.AuthorizedBy = "renewal " + pki.ShownSerial(st.Renews.SerialHex)
		return nil
	case ev.HTTPUser != "" || ev.HTTPPassword != "":
		return s.throttled(st, userIdentity(ev.HTTPUser), lockedUser, func() error { return s.authenticateUser(ctx, st) },
			func() error { return s.checkOneTimeOnly(ctx, st, ev.HTTPPassword) })
	case ev.Challenge != "":
		return s.throttled(st, challengeIdentity(st.Profile), lockedChallenges(st.Profile), func() error { return s.checkChallenge(ctx, st, ev.Challenge) },
			func() error { return s.checkOneTimeOnly(ctx, st, ev.Challenge) })
	case ev.TLSClientCert != nil:
		if err := s.authenticateManufacturer(ctx, st); err != nil {
			return err
		}
		cert := ev.TLSClientCert
		st.AuthorizedBy = "manufacturer-cert " + csr.NameString(cert.RawIssuer) + " " + pki.SerialText(cert.SerialNumber)
		return nil
	}
	return pki.Errorf(pki.EUnauthorized, "a challenge password is required")
}

// throttled runs a secret-based check of identity unless the client's
// address has failed too often lately, and notes its outcome in
// st.Attempt: guessing challenges or passwords from one address gets
// slower and slower. A refusal of a secret found right (EForbidden: an EST
// user or a one-time challenge at a profile it is not bound to) is no
// failed guess. The throttle is told once the request's outcome is
// known (settle): a secret that passed here may still be refused later (a
// used-up challenge asked again for other names), and a request accepted
// only then clears its failures. An EST password that is not its user's
// is tried as a challenge too (challengeAsPassword), throttled as the
// profile's challenges, and noted so (secretAttempt.asChallenge).
//
// While the address is locked out, oneTime alone runs (nil: nothing
// does): a usable one-time challenge, 128 random bits, cannot be guessed,
// so locking it out would protect nothing and would turn away every
// device behind the address (an MDM connector, an office NAT) for a few
// wrong ones. It returns errNotOneTime for anything else, which is then
// refused as locked out, unchecked. What passes or is refused so is noted
// nowhere: it clears no failures of identity (a one-time challenge is not
// the secret they guessed at), and counts none (a misused one-time
// challenge has its own lock in the store).
func (s *Service) throttled(st *State, identity, whose string, check, oneTime func() error) error {
	host := throttleHost(st.Req.RemoteAddr)
	if locked, err := s.lockedOut(host, identity, whose, oneTime); locked {
		return err
	}
	if st.Attempt != nil {
		// check notes them if it tries the secret as a challenge, or
		// refuses it unchecked.
		st.Attempt.asChallenge, st.Attempt.unchecked = "", false
	}
	err := check()
	if a := st.Attempt; a != nil {
		code := pki.ErrorCode(err)
		a.host, a.identity, a.refused, a.usedUp = host, identity, code == pki.EUnauthorized || code == pki.EBadRequest, st.ChallengeUsedUp
	}
	return err
}

// lockedOut reports whether host is locked out for identity, and if so
// the answer: what oneTime, which alone runs then (nil: nothing does),
// returns, or, for errNotOneTime, the lockout's refusal, which says which
// lock holds (whose: identity in a refusal's words, lockoutText).
func (s *Service) lockedOut(host, identity, whose string, oneTime func() error) (bool, error) {
	lock, blocked := s.failures.blocked(host, identity)
	if !blocked {
		return false, nil
	}
	if oneTime != nil {
		if err := oneTime(); !errors.Is(err, errNotOneTime) {
			return true, err
		}
	}
	until := lock.until()
	return true, pki.Wrap(pki.EUnauthorized, &LockedOutError{Until: until, Wait: until.Sub(s.clock.Now())}, lockoutText(lock, whose))
}

// lockoutText is the refusal of a client held back by lock, saying which
// lock holds, until when: its address's, after failures of any users and
// challenges, which refuses every secret but a usable one-time challenge
// from there; or only the identity it claimed, whose (lockedUser,
// lockedChallenges), from this address, other users and profiles still
// served. Said as "from this address" alone, an operator reading the
// audit trail, or a device behind an MDM connector or an office NAT,
// would take one user's lock for the whole address's.
func lockoutText(lock lockState, whose string) string {
	const prefix = "too many failed attempts"
	at := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	switch {
	case lock.address.IsZero():
		return prefix + " " + whose + " from this address; try again after " + at(lock.identity)
	case lock.identity.After(lock.address):
		return prefix + " from this address, for any user or challenge, until " + at(lock.address) + ", and " + whose +
			" until " + at(lock.identity) + "; try again after " + at(lock.identity)
	}
	return prefix + " from this address, for any user or challenge; try again after " + at(lock.address)
}

// userIdentity is what an EST user's failed passwords count against.
func userIdentity(name string) string { return "user " + name }

// lockedUser is an EST user's identity in a lockout's refusal. The name is
// not repeated: a name that is no user's is often a password typed into
// the user field, and the refusal is logged and audited (the audit record
// names the user as attemptedUser does, an unknown name by its tag).
const lockedUser = "for this EST user name"

// lockedChallenges is challengeIdentity(p) in a lockout's refusal.
func lockedChallenges(p pki.Profile) string {
	if p.ChallengeMode == ChallengeWebhook {
		return "at the challenges of the webhook profiles"
	}
	return fmt.Sprintf("at the challenges of profile %q", p.Name)
}

// challengeIdentity is what failed challenges at profile p count against:
// one identity per profile, so that wrong challenges at one profile lock
// out no other profile's devices (each profile's challenges are its own:
// the static challenge is one profile's, a one-time challenge is bound to
// one). Webhook profiles share one: a single webhook judges them all, and
// may accept one secret at each, which per profile would get as many
// rounds of guesses as there are such profiles.
func challengeIdentity(p pki.Profile) string {
	if p.ChallengeMode == ChallengeWebhook {
		return "a webhook's challenge"
	}
	return "a challenge at profile " + p.Name
}

// errNotOneTime: a secret presented while its address is locked out is no
// usable one-time challenge of the profile, and the lockout stands.
var errNotOneTime = errors.New("enroll: not a usable one-time challenge")

// usableOneTime looks presented up as a usable one-time challenge, where
// st's profile takes them, and nothing else: one read of the store by its
// hash, neither the static challenge nor the webhook asked, so while an
// address is locked out this tells nothing about them. errNotOneTime when
// it is none.
func (s *Service) usableOneTime(ctx context.Context, st *State, presented string) ([]byte, *pki.Challenge, error) {
	if presented == "" || !TakesOneTimeChallenges(st.Profile.ChallengeMode) {
		return nil, nil, errNotOneTime
	}
	hash := credential.HashChallenge(presented)
	ch, err := s.lookupChallenge(ctx, st, hash)
	if errors.Is(err, store.ErrChallengeUnusable) {
		return nil, nil, errNotOneTime
	}
	return hash, ch, err
}

// checkOneTimeOnly accepts presented only as a usable one-time challenge
// bound as st's request requires (checkBinding): the check made while the
// client's address is locked out.
func (s *Service) checkOneTimeOnly(ctx context.Context, st *State, presented string) error {
	hash, ch, err := s.usableOneTime(ctx, st, presented)
	if err != nil {
		return err
	}
	return s.acceptOneTime(ctx, st, hash, ch)
}

// secretAttempt is what one enroll call owes the failure throttle: the
// secret check it ran last (none when identity is ""), and whether that
// refused the secret, and whether the secret was a one-time challenge an
// issuance used up (State.ChallengeUsedUp). asChallenge is the challenge
// identity (challengeIdentity) an EST password not the user's was tried
// as (challengeAsPassword): the secret is then a challenge too. unchecked:
// the secret was refused during a lockout without being checked as
// anything (an unknown user's password, the challenges locked), which is
// no failed check and counts nowhere.
type secretAttempt struct {
	host, identity  string
	asChallenge     string
	refused, usedUp bool
	unchecked       bool
}

// settle tells the throttle the outcome of a request whose secret check
// was a: accepted (issued, held or answered), it forgets the failures of
// the identity whose secret it was (a password accepted as a challenge is
// the challenge's, not the user's); refused for its secret, it counts one
// against each identity it was tried as. Any other refusal (a name the
// profile does not allow, a secret refused unchecked during a lockout)
// counts nothing.
func (s *Service) settle(a secretAttempt, err error) {
	switch {
	case a.identity == "", a.unchecked:
	case err == nil && a.asChallenge != "":
		s.failures.succeeded(a.host, a.asChallenge)
	case err == nil:
		s.failures.succeeded(a.host, a.identity)
	case a.refused && a.asChallenge != "":
		s.failures.failed(a.host, a.identity, a.asChallenge)
	case a.refused:
		s.failures.failed(a.host, a.identity)
	}
}

// checkChallenge checks a challenge against the static secret, the one-time
// challenges or the webhook, as the profile allows. The challenge that
// authenticated a held request still authenticates its requester asking
// about it again (a one-time one was used up when it was held).
func (s *Service) checkChallenge(ctx context.Context, st *State, presented string) error {
	hash := credential.HashChallenge(presented)
	if st.Held != nil && st.Held.ChallengeHash != nil && subtle.ConstantTimeCompare(hash, st.Held.ChallengeHash) == 1 {
		st.AuthorizedBy = "challenge of held request " + st.Held.ID
		return nil
	}
	mode := st.Profile.ChallengeMode
	if mode == ChallengeWebhook {
		if err := s.checkWebhook(ctx, st, presented); err != nil {
			return err
		}
		st.ChallengeHash, st.AuthorizedBy = hash, "webhook"
		return nil
	}
	if mode == "" {
		mode = ChallengeAny
	}
	// The static challenge belongs to one profile: elsewhere it is just a
	// wrong password.
	if (mode == ChallengeStatic || mode == ChallengeAny) && st.Profile.Name == s.staticProfile && s.static.Matches(presented) {
		st.ChallengeHash, st.AuthorizedBy = hash, "static-challenge"
		return nil
	}
	if mode == ChallengeOneTime || mode == ChallengeAny {
		ch, lookupErr := s.lookupChallenge(ctx, st, hash)
		switch err := lookupErr; {
		case errors.Is(err, store.ErrChallengeUnusable):
			if st.Req.RenewalFirst {
				ref, err := s.store.ChallengeIssued(ctx, hash)
				if err != nil {
					return err
				}
				st.ChallengeUsedUp = ref != ""
			}
			again, err := s.issuedForChallenge(ctx, st, hash)
			if err != nil {
				return err
			}
			if again != nil {
				st.IssuedAlready, st.AuthorizedBy = again, "the used-up challenge of certificate "+pki.ShownSerial(again.SerialHex)
				return nil
			}
			if spent := spentChallenge(lookupErr); spent != nil {
				return spent
			}
		case err != nil:
			return err
		default:
			return s.acceptOneTime(ctx, st, hash, ch)
		}
	}
	return pki.Errorf(pki.EUnauthorized, "challenge password is not valid")
}

// acceptOneTime authenticates st by the usable one-time challenge ch (of
// this hash) if it is bound as st's request requires, to be consumed by
// the issuance or the held request.
func (s *Service) acceptOneTime(ctx context.Context, st *State, hash []byte, ch *pki.Challenge) error {
	if err := s.checkBinding(ctx, st, ch); err != nil {
		return err
	}
	st.ConsumeChallenge, st.ChallengeHash, st.AuthorizedBy = hash, hash, "challenge "+ch.ID
	st.Events = append(st.Events, pki.AuditEvent{
		Time: s.clock.Now(), Type: pki.EventChallengeUsed, Actor: actor(st.Req), Profile: st.Profile.Name,
		TransactionID: st.Req.TransactionID, Outcome: "success", Detail: "challenge " + ch.ID,
	})
	return nil
}

// issuedForChallenge is the certificate whose issuance used up the one-time
// challenge with this hash, if it certifies the key this request proves it
// holds, at the same profile, and is still valid: the device asks again
// because the answer was lost (RFC 8894 §7.4), and gets the certificate it
// was issued rather than a refusal of its used-up challenge. It gains
// nothing it did not have: that certificate, for its own key.
func (s *Service) issuedForChallenge(ctx context.Context, st *State, hash []byte) (*pki.Certificate, error) {
	if st.Req.ServerKeyGen || st.Req.Renewal {
		// The key was the server's, and went with the lost answer; a
		// renewal is authenticated by its certificate, not a challenge.
		return nil, nil
	}
	if sc := st.Req.Evidence.SignerCert; sc != nil {
		if _, err := s.authority.IssuedByUs(sc, s.clock.Now()); err == nil || errors.Is(err, ca.ErrExpired) {
			// Signed by a certificate of ours: the device has one, so no
			// answer of a first enrollment was lost. (A renewal that could
			// not go through, answered with a certificate it holds, would
			// read as a renewal that succeeded.)
			return nil, nil
		}
	}
	ref, err := s.store.ChallengeIssued(ctx, hash)
	if err != nil || ref == "" {
		return nil, err
	}
	rec, err := s.certByRef(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("enroll: certificate %s a challenge was used for: %w", ref, err)
	}
	if rec.Status != pki.StatusValid || rec.Profile != st.Profile.Name || !s.clock.Now().Before(rec.NotAfter) {
		return nil, nil
	}
	cert, err := x509.ParseCertificate(rec.DER)
	if err != nil || !bytes.Equal(cert.RawSubjectPublicKeyInfo, st.Req.CSR.RawSubjectPublicKeyInfo) {
		return nil, nil
	}
	return rec, nil
}

// asIssued: the subject and names st would issue are those of rec, the
// certificate issued earlier for its key.
// resendWindow is how long after an issuance a SCEP request of the same
// transaction (its transactionID, key and names), or an EST simpleenroll
// of the same key and names by the same credentials (issuedForEnrollment),
// is taken for a resend whose answer was lost, and answered with that
// certificate: long enough
// for a device's retries, short enough that a device deriving its
// transaction ID from its key (as many do) and enrolling that key again
// near the end of its certificate gets a new one.
const resendWindow = 24 * time.Hour

// transactionKey is the key hash st's transaction is found again
// (issuedForTransaction) and claimed (issue) by, with its profile and
// transaction ID (claimedTransaction); nil for a request whose resends are
// not answered by their transaction: an EST first enrollment but one
// authenticated by an EST user, the static challenge or the webhook
// (resentByCredentials), a one-time challenge's (found by what it used up), an
// approval's (decided by the held request), a server-made key's. A SCEP
// renewal claims its transaction like a first enrollment: of its copies
// sent at once only one signs, and the others are answered with its
// certificate (a resend after the answer is found by the certificate it
// renewed, renewedAlready, first). The renewed serial is not part of a
// SCEP claim: the claim only orders requests of one key and transaction
// ID, and which certificate answers a renewal is decided by
// issuedForTransaction, which takes only one that renewed the same
// certificate. An EST renewal, which has no transaction ID, claims the
// renewal itself (renewalTransaction), an EST first enrollment its
// request's with its credentials (enrollmentTransaction).
func transactionKey(st *State) []byte {
	req := st.Req
	if claimedTransaction(st) == "" || req.ServerKeyGen || st.ConsumeChallenge != nil || st.CompleteRequest != nil {
		return nil
	}
	hash, err := st.keyHash()
	if err != nil {
		return nil // no key the inventory records a hash of
	}
	return hash
}

// claimedTransaction is the transaction ID st's claim holds: a SCEP
// request's own, an EST renewal's renewalTransaction, an EST first
// enrollment's enrollmentTransaction, "" for none.
func claimedTransaction(st *State) string {
	switch {
	case st.Req.Protocol == pki.ProtocolSCEP:
		return st.Req.TransactionID
	case st.Renews != nil:
		return renewalTransaction(st.Renews)
	case resentByCredentials(st):
		return enrollmentTransaction(st.Req.TransactionID, st.AuthorizedBy)
	}
	return ""
}

// resentByCredentials: st is an EST first enrollment whose resend is
// answered by what authenticated it (issuedForEnrollment): an EST user's,
// the static challenge's or the webhook's. A one-time challenge's is found
// by what it used up, an approval's by the held request, and a server-made
// key is the server's (transactionKey leaves those out).
func resentByCredentials(st *State) bool {
	if st.Req.Protocol != pki.ProtocolEST || st.Req.Renewal || st.Renews != nil {
		return false
	}
	by := st.AuthorizedBy
	return strings.HasPrefix(by, "est-user ") || by == "static-challenge" || by == "webhook"
}

// enrollmentTransaction is the transaction ID an EST first enrollment of
// transactionID (the one estserver names it by) authorized by
// authorizedBy claims: copies of it are the same key and profile (the
// claim's), request and credentials, so that another user's request for
// the key neither waits for this one nor gets its certificate. Hashed, as
// a user name is as long as its operator made it; the '#' keeps it apart
// from SCEP transactions, as renewalTransaction's does.
func enrollmentTransaction(transactionID, authorizedBy string) string {
	h := sha256.New()
	h.Write([]byte(transactionID))
	h.Write([]byte{0})
	h.Write([]byte(authorizedBy))
	return "enrollment#" + hex.EncodeToString(h.Sum(nil))
}

// renewalTransaction is the transaction ID an EST renewal of old claims.
// What makes two EST requests copies of one renewal is the certificate
// they renew (the TLS client certificate: its issuer and serial), the new
// key (the claim's key hash) and the profile (the claim's): so the claim
// row needs no column of its own, and no schema change. The '#' is no
// PrintableString character, which a SCEP transaction ID must be made of
// (RFC 8894 §3.2.1.1), so no SCEP transaction shares the row.
func renewalTransaction(old *pki.Certificate) string {
	return "renewal#" + renewedFrom(old)
}

// issuedForTransaction finds the certificate issued for st's SCEP
// transaction at its profile, for its key and names, within resendWindow,
// still valid: the answer of a PKCSReq sent again with its transaction ID
// (RFC 8894 §3.2.1.1: one transaction ID per operation), at a profile
// whose challenge is static or a webhook's (see transactionKey). One sent
// after an answer finds it here; copies sent at the same moment find none,
// and issue lets one of them sign (its claim on the transaction) while the
// others wait here for its certificate (awaitTransaction). For an EST
// renewal it is the renewal of the same certificate for the same key
// (issuedForRenewal).
func (s *Service) issuedForTransaction(ctx context.Context, st *State) (*pki.Certificate, error) {
	hash := transactionKey(st)
	if hash == nil {
		return nil, nil
	}
	req := st.Req
	if req.Protocol != pki.ProtocolSCEP {
		if st.Renews == nil {
			return s.issuedForEnrollment(ctx, st, hash)
		}
		return s.issuedForRenewal(ctx, st)
	}
	now := s.clock.Now()
	st.lookedAt = now // before the read: it sees what was recorded by then
	certs, err := s.store.CertificatesOfTransaction(ctx, hash, st.Profile.Name, req.TransactionID, now.Add(-resendWindow))
	if err != nil {
		return nil, fmt.Errorf("enroll: certificates of transaction %q: %w", req.TransactionID, err)
	}
	// A renewal is answered only with a certificate that renewed the same
	// one: its copies' winner's, never one that renewed another.
	renews := renewedFrom(st.Renews)
	for i := range certs {
		c := &certs[i]
		if st.Renews != nil && c.RenewedFrom != renews {
			continue
		}
		if c.Protocol == pki.ProtocolSCEP && now.Before(c.NotAfter) && asIssued(st, c) {
			return c, nil
		}
	}
	return nil, nil
}

// issuedForEnrollment finds the certificate issued for an EST first
// enrollment (resentByCredentials) of st's key at its profile, for its
// names, within resendWindow, still valid, authorized by the same
// credentials: the answer of a simpleenroll asked again after its answer
// was lost (the client keeps its key for that), or of a copy sent at once
// (claimed as a SCEP transaction is). EST has no transaction ID, but
// estserver names each request by one made of its operation, key and
// subject, recorded with its certificate: the read is the one a SCEP
// resend makes, by key hash and that ID. Who authenticated an issuance is
// kept in its certificate.issued event only: read, by serial, for a
// certificate that matches otherwise (the rerun's case), and compared
// whole, so that another EST user (or the static challenge, or the
// webhook) is never handed this one's certificate, nor the reverse. A
// certificate issued before this lookup existed is found too: its event
// says the same.
func (s *Service) issuedForEnrollment(ctx context.Context, st *State, hash []byte) (*pki.Certificate, error) {
	now := s.clock.Now()
	st.lookedAt = now // before the read: it sees what was recorded by then
	certs, err := s.store.CertificatesOfTransaction(ctx, hash, st.Profile.Name, st.Req.TransactionID, now.Add(-resendWindow))
	if err != nil {
		return nil, fmt.Errorf("enroll: certificates of EST request %q: %w", st.Req.TransactionID, err)
	}
	detail := withAuthorizedBy("", st)
	for i := range certs {
		c := &certs[i]
		if c.Protocol != pki.ProtocolEST || c.RenewedFrom != "" || !now.Before(c.NotAfter) || !asIssued(st, c) {
			continue
		}
		evs, err := s.store.ListAudit(ctx, store.AuditFilter{Type: pki.EventIssued, SerialHex: c.SerialHex, Limit: 4})
		if err != nil {
			return nil, fmt.Errorf("enroll: issuance of certificate %s: %w", pki.ShownSerial(c.SerialHex), err)
		}
		for _, ev := range evs {
			if ev.IssuerID == c.IssuerID && ev.Detail == detail {
				return c, nil
			}
		}
	}
	return nil, nil
}

// issuedForRenewal is the valid renewal of st.Renews for st's key, looked
// for as authenticateRenewal does (renewedAlready), for a renewal that
// claims no SCEP transaction: a copy of it, sent at once, recorded it
// meanwhile. It does not set st.lookedAt, so the claim never spares the
// second look (mustLookAgain): a SCEP renewal of the same certificate for
// the same key ends another claim row (its transaction's), so a new row
// here proves nothing; the look is one indexed read, and renewals are few.
// A renewal of the key with other names refuses st as enroll does.
func (s *Service) issuedForRenewal(ctx context.Context, st *State) (*pki.Certificate, error) {
	again, err := s.renewedAlready(ctx, st.Renews, st.Req.CSR.RawSubjectPublicKeyInfo)
	if err != nil || again == nil {
		return nil, err
	}
	if !asIssued(st, again) {
		return nil, renewedWithOtherNames(st, again)
	}
	return again, nil
}

// renewedWithOtherNames refuses a renewal whose key renewed st.Renews
// already, as again, with names other than st's.
func renewedWithOtherNames(st *State, again *pki.Certificate) error {
	return pki.Errorf(pki.EBadRequest, "this key's renewal of %s was issued already, as %s, with other names; ask with its names, or with a new key",
		st.Renews.SerialHex, again.SerialHex)
}

func asIssued(st *State, rec *pki.Certificate) bool {
	cert, err := x509.ParseCertificate(rec.DER)
	return err == nil && csr.SameName(st.RawSubject, cert.RawSubject) && sameSANs(st.SANs, cert)
}

// ChallengeLockAfter is how many uses of a one-time challenge for another
// profile or identity lock it for good: a leaked challenge cannot be tried
// against every name.
const ChallengeLockAfter = 3

// checkBinding refuses a one-time challenge presented for a profile or an
// identity it is not bound to (CERT/CC VU#971035): nothing consumed, the
// misuse counted and, after ChallengeLockAfter of them, the challenge
// locked. At another profile it is forbidden (EForbidden), as an EST
// user's right password is there: the secret is right, so the failure
// throttle does not count it as a guess, or a device pointed at the wrong
// profile would lock its own requester out. For another identity it is a
// bad request (badRequest), counted.
func (s *Service) checkBinding(ctx context.Context, st *State, ch *pki.Challenge) error {
	var reason string
	code := pki.EBadRequest
	switch {
	case boundProfile(ch, s.cfg.DefaultProfile) != st.Profile.Name:
		reason, code = fmt.Sprintf("this challenge password is bound to another profile (%s)", boundProfile(ch, s.cfg.DefaultProfile)), pki.EForbidden
	case len(ch.BoundSubject) > 0 && !csr.SameName(ch.BoundSubject, st.Req.CSR.RawSubject):
		reason = "this challenge password is bound to another subject"
		if sameRDNs(ch.BoundSubject, st.Req.CSR.RawSubject) {
			// The RFC 4514 string the challenge was made with lists the
			// most significant RDN last; a device's tool may list it first.
			reason = fmt.Sprintf("this challenge password is bound to a subject with the attributes of the request's (%s) in another order; send them in the challenge's order",
				csr.NameString(st.Req.CSR.RawSubject))
		}
	case (len(ch.BoundSubject) > 0 || len(ch.BoundSANs) > 0) && !namesWithin(st.Req.CSR, ch.BoundSANs):
		unbound := namesNotWithin(st.Req.CSR, ch.BoundSANs)
		verb := "is"
		if len(unbound) > 1 {
			verb = "are"
		}
		reason = fmt.Sprintf("this challenge password is bound to other names: %s %s not bound to it", strings.Join(unbound, ", "), verb)
	default:
		return nil
	}
	now := s.clock.Now()
	ev := pki.AuditEvent{Time: now, Type: pki.EventChallengeMisused, Actor: actor(st.Req), Profile: st.Profile.Name,
		Subject: csr.NameString(st.Req.CSR.RawSubject), TransactionID: st.Req.TransactionID, Outcome: "failure", Reason: reason,
		Detail: "challenge " + ch.ID}
	locked, err := s.store.RecordChallengeMisuse(ctx, ch.Hash, now, ChallengeLockAfter, ev)
	if err != nil && !errors.Is(err, store.ErrChallengeUnusable) {
		return err
	}
	if locked {
		reason += "; it is now locked"
	}
	return pki.Errorf(code, "%s", reason)
}

// boundProfile is the profile ch is bound to. A challenge made by the
// first builds records none ("" in the store): it was made for the default
// profile, the only one of its time, and is bound to it as a challenge
// minted now without --profile is (README), not to every profile. Done
// here rather than by a migration because the default profile is the
// configuration's, which the store does not know.
func boundProfile(ch *pki.Challenge, defaultProfile string) string {
	if ch.Profile == "" {
		return defaultProfile
	}
	return ch.Profile
}

// namesNotWithin are the names the request carries besides its subject
// that are not among bound ("dns:x.example"), for a refusal.
func namesNotWithin(req *x509.CertificateRequest, bound []string) []string {
	allowed := map[string]bool{}
	for _, b := range bound {
		allowed[sanKey(b)] = true
	}
	var out []string
	for _, n := range formatSANs(req.DNSNames, req.EmailAddresses, req.IPAddresses, req.URIs) {
		if !allowed[sanKey(n)] {
			out = append(out, n)
		}
	}
	return out
}

// sameRDNs: names a and b hold the same RDNs, each of the same attributes
// and text, in any order.
func sameRDNs(a, b []byte) bool {
	ra, okA := rdnTexts(a)
	rb, okB := rdnTexts(b)
	return okA && okB && slices.Equal(ra, rb)
}

// rdnTexts are raw's RDNs as text (each attribute's type and value,
// sorted within the RDN), sorted.
func rdnTexts(raw []byte) ([]string, bool) {
	var rdns, rdn []string
	_, err := csr.WalkName(raw, func(oid asn1.ObjectIdentifier, tag cbasn1.Tag, value []byte) error {
		text, ok := csr.AttributeText(tag, value)
		if !ok {
			text = "#" + hex.EncodeToString(value)
		}
		rdn = append(rdn, oid.String()+"="+text)
		return nil
	}, func() {
		slices.Sort(rdn)
		rdns, rdn = append(rdns, strings.Join(rdn, "+")), nil
	})
	slices.Sort(rdns)
	return rdns, err == nil
}

// namesWithin: every name the request carries besides its subject (DNS,
// email, IP, URI) is one of bound. A challenge bound to an identity buys
// that identity and nothing more: bound to a subject alone it allows no
// subject alternative names at all, bound to DNS names no IP address or URI
// either (they cannot be bound, so they can never be among bound).
func namesWithin(req *x509.CertificateRequest, bound []string) bool {
	allowed := map[string]bool{}
	for _, b := range bound {
		allowed[sanKey(b)] = true
	}
	for _, n := range formatSANs(req.DNSNames, req.EmailAddresses, req.IPAddresses, req.URIs) {
		if !allowed[sanKey(n)] {
			return false
		}
	}
	return true
}
