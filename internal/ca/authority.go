// Package ca owns scepter's keys and signing: the root and issuing CA, the
// SCEP registration authority (RA), and the issuance pipeline (check key and
// names, build from the profile, lint with a throwaway key, reserve the
// serial, sign). It knows nothing about HTTP or the store's implementation.
package ca

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// Authority is the loaded CA: the root, the issuing CAs and their RAs.
//
// Besides the current issuing CA there may be a next one, made ahead of
// time by Rollover, which takes over at its switch time (Active(now) returns
// it from then on, without a restart), and previous ones, kept so that the
// certificates they issued still verify, renew and can be revoked. Every
// issuer is reachable through IssuerByID (by the IssuerID stored with each
// certificate) and Issuers. The root never changes.
//
// An Authority holds no root key: loading never reads it, only Rollover
// does, so the key can be kept off the server.
//
// An Authority is safe for concurrent use; Reload and SetNext replace the
// issuer set atomically.
type Authority struct {
	Root *x509.Certificate
	// Issuer and RA are the current issuing CA and RA at load time; they
	// never change afterwards. New code calls Active(now), which follows a
	// rollover's switch.
	Issuer *Issuer
	RA     *pki.RA

	state atomic.Pointer[issuerSet]
	// Where the CA was loaded from and how, for Reload; empty for an
	// Authority built by NewAuthority.
	caDir    string
	opts     InitOptions
	mode     loadMode
	reloadMu sync.Mutex
	disk     string // diskState at the last (re)load

	// revoked holds the IDs of the issuing CAs the root's CRL lists, each
	// with the CRLReason of its entry (SetRevokedIssuerReasons). Kept
	// apart from state, which Reload replaces: a revocation outlives a
	// reload. Never modified once stored.
	revoked atomic.Pointer[map[string]int]
	// discarded holds the IDs of next issuing CAs discarded before their
	// switch (SetDiscardedNext); like revoked, it outlives a reload.
	discarded atomic.Pointer[map[string]bool]
	// raReserve reserves the serial of an RA certificate a reload issues
	// (SetRAReserve); nil: none is reserved.
	raReserve atomic.Pointer[ReserveFunc]
}

// issuerSet is everything that changes with a rollover. It is never
// modified once published through Authority.state.
type issuerSet struct {
	current   *Issuer
	currentRA *pki.RA
	next      *Issuer // nil without a pending rollover
	nextRA    *pki.RA
	switchAt  time.Time
	// currentSince is when current became current (the switch time of
	// the rollover that made it); zero for the first generation.
	currentSince time.Time
	previous     []*Issuer // newest first
	// previousRAs are the RAs of previous issuers whose keys are kept,
	// for envelopes encrypted to an old RA certificate (newest first).
	previousRAs []*pki.RA
	// retiredRAs are RAs that RenewRA replaced, whose certificates have
	// not expired: for envelopes encrypted to them, never served.
	retiredRAs []*pki.RA

	all   []*Issuer // current, next, previous
	roots *x509.CertPool
	inter *x509.CertPool
}

func newIssuerSet(root *x509.Certificate, current *Issuer, currentRA *pki.RA, next *Issuer, nextRA *pki.RA, switchAt time.Time, previous []*Issuer, previousRAs []*pki.RA) *issuerSet {
	s := &issuerSet{current: current, currentRA: currentRA, next: next, nextRA: nextRA, switchAt: switchAt,
		roots: x509.NewCertPool(), inter: x509.NewCertPool()}
	seen := map[string]bool{}
	add := func(i *Issuer) bool {
		if i == nil || seen[i.ID] {
			return false
		}
		seen[i.ID] = true
		s.all = append(s.all, i)
		s.inter.AddCert(i.Cert)
		return true
	}
	add(current)
	if next != nil && !add(next) {
		s.next, s.nextRA = nil, nil
	}
	for _, p := range previous {
		if add(p) {
			s.previous = append(s.previous, p)
		}
	}
	s.previousRAs = slices.Clone(previousRAs)
	s.roots.AddCert(root)
	return s
}

// NewAuthority assembles an Authority from parts that are already loaded
// (LoadOrCreate is the usual way; tests build CAs in memory). issuer's chain
// must end at root; extra are previous issuers, still accepted by IssuerByID
// and IssuedByUs. SetNext adds a next issuer.
func NewAuthority(root *x509.Certificate, issuer *Issuer, ra *pki.RA, extra ...*Issuer) (*Authority, error) {
	if root == nil || issuer == nil || ra == nil {
		return nil, errors.New("ca: an authority needs a root, an issuer and an RA")
	}
	if err := checkIssuerRA(root, issuer, ra); err != nil {
		return nil, err
	}
	a := &Authority{Root: root, Issuer: issuer, RA: ra}
	a.state.Store(newIssuerSet(root, issuer, ra, nil, nil, time.Time{}, extra, nil))
	return a, nil
}

func checkIssuerRA(root *x509.Certificate, issuer *Issuer, ra *pki.RA) error {
	if last := issuer.Chain[len(issuer.Chain)-1]; !last.Equal(root) {
		return fmt.Errorf("ca: the chain of issuer %q does not end at the root", issuer.Cert.Subject)
	}
	if ra.Cert == nil || ra.Key == nil {
		return errors.New("ca: the RA needs a certificate and a key")
	}
	if _, ok := ra.Key.(crypto.Decrypter); !ok {
		return errors.New("ca: the RA key cannot decrypt (it must be an RSA key implementing crypto.Decrypter)")
	}
	return nil
}

// SetNext makes issuer (with its RA) the next issuing CA, current from
// switchAt on, replacing any next issuer set before. It changes nothing on
// disk (Rollover does that); it is for Authorities built in memory.
func (a *Authority) SetNext(issuer *Issuer, ra *pki.RA, switchAt time.Time) error {
	if issuer == nil || ra == nil || switchAt.IsZero() {
		return errors.New("ca: a next issuer needs an issuer, an RA and a switch time")
	}
	if err := checkIssuerRA(a.Root, issuer, ra); err != nil {
		return err
	}
	for {
		old := a.state.Load()
		if issuer.ID == old.current.ID {
			return errors.New("ca: the next issuer is the current one")
		}
		s := newIssuerSet(a.Root, old.current, old.currentRA, issuer, ra, switchAt, old.previous, old.previousRAs)
		s.currentSince, s.retiredRAs = old.currentSince, old.retiredRAs
		if a.state.CompareAndSwap(old, s) {
			return nil
		}
	}
}

// Active returns the issuing CA and RA in charge at now: the current ones,
// or the next ones once now has reached their switch time (so a running
// server switches without a restart).
func (a *Authority) Active(now time.Time) (*Issuer, *pki.RA) {
	s := a.state.Load()
	if s.next != nil && !now.Before(s.switchAt) {
		return s.next, s.nextRA
	}
	return s.current, s.currentRA
}

// ActiveSince returns when the issuing CA in charge at now (Active) became
// current: the switch time of the rollover that made it, whether the switch
// is recorded on disk already (a promotion) or not yet. ok is false for the
// CA's first issuing CA, and for one promoted before switch times were
// kept.
func (a *Authority) ActiveSince(now time.Time) (t time.Time, ok bool) {
	s := a.state.Load()
	if s.next != nil && !now.Before(s.switchAt) {
		return s.switchAt, true
	}
	return s.currentSince, !s.currentSince.IsZero()
}

// Next returns the next issuing CA and its RA while one exists and now is
// before its switch time (what GetNextCACert serves); ok is false otherwise.
func (a *Authority) Next(now time.Time) (issuer *Issuer, ra *pki.RA, ok bool) {
	s := a.state.Load()
	if s.next != nil && now.Before(s.switchAt) {
		return s.next, s.nextRA, true
	}
	return nil, nil, false
}

// SwitchAt returns the switch time of the next issuing CA, whether or not
// it has passed; ok is false when there is no next issuing CA.
func (a *Authority) SwitchAt() (t time.Time, ok bool) {
	s := a.state.Load()
	return s.switchAt, s.next != nil
}

// IssuerByID returns the issuer (previous, current or next) whose IssuerID
// (hex SHA-256 of its certificate) is id.
func (a *Authority) IssuerByID(id string) (*Issuer, bool) {
	for _, i := range a.state.Load().all {
		if i.ID == id {
			return i, true
		}
	}
	return nil, false
}

// Issuers returns every issuer: the current one (as loaded) first, then the
// next one if any, then the previous ones, newest first.
func (a *Authority) Issuers() []*Issuer { return slices.Clone(a.state.Load().all) }

// Previous returns the previous issuers, newest first. Issuers that a
// rollover replaced without a reload are not among them (see Active).
func (a *Authority) Previous() []*Issuer { return slices.Clone(a.state.Load().previous) }

// RAs returns every RA whose key is loaded: the current RA (as loaded), the
// next one, the current generation's RAs that RenewRA replaced (until
// their certificates expire), then those of previous issuers, newest
// first, leaving out those of issuing CAs the root revoked
// (SetRevokedIssuers). A SCEP server decrypts an envelope with the RA whose certificate
// it is addressed to, which after a rollover or an RA renewal may be an
// older one (a client that cached GetCACert, or polls for a request made
// before the switch).
func (a *Authority) RAs() []*pki.RA {
	s := a.state.Load()
	out := []*pki.RA{s.currentRA}
	if s.nextRA != nil {
		out = append(out, s.nextRA)
	}
	out = append(out, s.retiredRAs...)
	out = append(out, s.previousRAs...)
	// Those of an issuing CA the root revoked no longer decrypt. Most
	// servers have none: then no RA's issuer ID is computed (a hash per RA,
	// per request).
	if p := a.revoked.Load(); p == nil || len(*p) == 0 {
		return out
	}
	return slices.DeleteFunc(out, func(ra *pki.RA) bool { return a.isRevoked(s, raIssuerID(ra)) })
}

// SetRevokedIssuers records the issuing CAs the root's CRL lists, by
// issuer ID, replacing the set recorded before. From then on a
// certificate they issued is refused by IssuedByUs (ErrIssuerRevoked) and
// their RAs are left out of RAs: a revoked CA's key may be in other hands,
// so nothing it signed authenticates anything, and its RA keys (kept with
// it) decrypt no more requests. The current and the next issuing CA are
// never taken as revoked: the root CRL command refuses to list them, and
// the server must go on issuing. Each is recorded without a reason
// (ReasonUnspecified), read as a compromise; SetRevokedIssuerReasons
// records the root CRL's reasons.
func (a *Authority) SetRevokedIssuers(ids []string) {
	m := make(map[string]int, len(ids))
	for _, id := range ids {
		m[id] = pki.ReasonUnspecified
	}
	a.revoked.Store(&m)
}

// SetRevokedIssuerReasons is SetRevokedIssuers with the RFC 5280
// CRLReason the root's CRL gives each issuing CA (ReasonUnspecified for
// an entry without one), by issuer ID: the OCSP responder answers their
// certificates with a reason that follows it (RevokedIssuerReason). A
// reason changed on the root CRL (a retired CA later found compromised)
// replaces the one recorded before.
func (a *Authority) SetRevokedIssuerReasons(reasons map[string]int) {
	m := maps.Clone(reasons)
	if m == nil {
		m = map[string]int{}
	}
	a.revoked.Store(&m)
}

// RevokedIssuers returns the issuer IDs SetRevokedIssuers or
// SetRevokedIssuerReasons recorded, sorted.
func (a *Authority) RevokedIssuers() []string {
	p := a.revoked.Load()
	if p == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(*p))
}

// RevokedIssuerReason returns the CRLReason the root's CRL lists the
// issuing CA id with, as last recorded (SetRevokedIssuerReasons), and
// whether it lists it.
func (a *Authority) RevokedIssuerReason(id string) (reason int, listed bool) {
	p := a.revoked.Load()
	if p == nil {
		return 0, false
	}
	reason, listed = (*p)[id]
	return reason, listed
}

// SetDiscardedNext records the issuing CAs that were discarded before
// their switch (on another node: the store of a CA several nodes share
// says so), by issuer ID, replacing the set recorded before. A next
// issuing CA among them is treated as absent, although its files stay in
// DATA/ca/next until the operator discards it here: Next does not serve
// it, Active never switches to it, and Reload neither loads nor promotes
// it (its keys may be destroyed already). It returns whether the next
// issuing CA loaded until now was one of them, and so dropped.
func (a *Authority) SetDiscardedNext(ids []string) (dropped bool) {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	a.discarded.Store(&m)
	for {
		old := a.state.Load()
		if old.next == nil || !m[old.next.ID] {
			return false
		}
		s := newIssuerSet(a.Root, old.current, old.currentRA, nil, nil, time.Time{}, old.previous, old.previousRAs)
		s.currentSince, s.retiredRAs = old.currentSince, old.retiredRAs
		if a.state.CompareAndSwap(old, s) {
			return true
		}
	}
}

// SetRAReserve has every SCEP RA certificate that Reload or ReplaceRA
// issues from now on (a revoked RA's replacement, an ra.crt removed by
// hand) reserve its serial with reserve (store.ReserveSerial) before the
// CA key signs, as every other issuance does: a reserve error leaves it
// unsigned (the reload fails and the next one tries again), and one
// signed whose record then fails is still known to the store. Without it
// (the CLI, a CA with no store) no serial is reserved.
func (a *Authority) SetRAReserve(reserve ReserveFunc) {
	a.raReserve.Store(&reserve)
}

// isDiscarded: SetDiscardedNext listed id.
func (a *Authority) isDiscarded(id string) bool {
	p := a.discarded.Load()
	return p != nil && (*p)[id]
}

// isRevoked: id is an issuing CA the root revoked, and neither the current
// nor the next one of s.
func (a *Authority) isRevoked(s *issuerSet, id string) bool {
	p := a.revoked.Load()
	if p == nil || id == s.current.ID {
		return false
	}
	if _, listed := (*p)[id]; !listed {
		return false
	}
	return s.next == nil || id != s.next.ID
}

// raIssuerID is the ID of the issuing CA whose RA ra is: the issuing CA
// itself in RA mode ca, otherwise the certificate after the RA's in its
// chain. Empty when the chain does not say.
func raIssuerID(ra *pki.RA) string {
	switch {
	case ra.IsCA && ra.Cert != nil:
		return issuerID(ra.Cert)
	case len(ra.Chain) >= 2:
		return issuerID(ra.Chain[1])
	}
	return ""
}

// PreviousRAs returns the RAs of previous issuing CAs whose keys are
// loaded, newest first: separate RAs, and issuing CAs that are their own
// RA (IsCA), whose keys are never dropped.
func (a *Authority) PreviousRAs() []*pki.RA { return slices.Clone(a.state.Load().previousRAs) }

// RetiredRAs returns the RAs that RenewRA replaced and whose certificates
// had not expired at the last (re)load: they decrypt, they are not served.
func (a *Authority) RetiredRAs() []*pki.RA { return slices.Clone(a.state.Load().retiredRAs) }

// Errors of IssuedByUs.
var (
	// ErrNotOurs: the certificate does not chain by signature through one
	// of our issuing CAs to our root.
	ErrNotOurs = errors.New("ca: the certificate was not issued by this CA")
	// ErrExpired: the certificate was issued by one of our issuing CAs but
	// has expired; IssuedByUs returns the issuer with it, so callers can
	// apply a grace period.
	ErrExpired = errors.New("ca: the certificate has expired")
	// ErrIssuerRevoked: the certificate was issued by one of our issuing
	// CAs that the root's CRL lists as revoked (SetRevokedIssuers); it
	// authenticates nothing.
	ErrIssuerRevoked = errors.New("ca: the issuing CA of the certificate is revoked on the root's CRL")
)

// CACertError is IssuedByUs's error for one of the CA's own CA
// certificates: the root, an issuing CA (previous, current or next), or
// another certificate the root signed itself. It chains to our root but
// was issued to no client, so it wraps ErrNotOurs.
type CACertError struct {
	Subject string
	// Role says which: "root certificate", "issuing CA certificate", or
	// "certificate signed by the root itself, not by an issuing CA".
	Role string
}

func (e *CACertError) Error() string {
	return fmt.Sprintf("%v: %q is this CA's own %s", ErrNotOurs, e.Subject, e.Role)
}

func (e *CACertError) Unwrap() error { return ErrNotOurs }

// IssuedByUs checks that cert was issued by one of our issuing CAs
// (previous, current or next) and returns that issuer. The check is by
// signature: x509 path validation with our issuing CAs as the only
// intermediates, our root as the only root, any extended key usage, at now;
// names are only hints for path building, so a certificate from another CA
// that copies our issuer's name (or key identifier) is refused. A
// certificate that verified except that it has expired is returned with its
// issuer and an error wrapping ErrExpired. Anything else, including our own
// CA certificates and a certificate that is not valid yet, is an error
// wrapping ErrNotOurs (and a nil issuer). A certificate of an issuing CA
// the root revoked (SetRevokedIssuers) is an error wrapping
// ErrIssuerRevoked, with a nil issuer, expired or not. The certificate's
// own revocation is not checked here.
func (a *Authority) IssuedByUs(cert *x509.Certificate, now time.Time) (*Issuer, error) {
	s := a.state.Load()
	iss, err := s.issuedByUs(cert, now)
	if iss != nil && a.isRevoked(s, iss.ID) {
		return nil, fmt.Errorf("%w: issuing CA %s (%s)", ErrIssuerRevoked, iss.ID, iss.Cert.Subject)
	}
	return iss, err
}

func (s *issuerSet) issuedByUs(cert *x509.Certificate, now time.Time) (*Issuer, error) {
	if cert == nil {
		return nil, fmt.Errorf("%w: no certificate", ErrNotOurs)
	}
	opts := x509.VerifyOptions{Roots: s.roots, Intermediates: s.inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	chains, err := cert.Verify(opts)
	if err == nil {
		if iss := s.issuerOf(chains); iss != nil {
			return iss, nil
		}
		return nil, s.caCertError(cert, chains)
	}
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) && invalid.Reason == x509.Expired && invalid.Cert == cert && now.After(cert.NotAfter) {
		// Verify again at the last moment of its validity: a certificate
		// that was ours then is ours, just expired.
		opts.CurrentTime = cert.NotAfter
		if chains, err := cert.Verify(opts); err == nil {
			if iss := s.issuerOf(chains); iss != nil {
				return iss, fmt.Errorf("%w on %s", ErrExpired, cert.NotAfter.UTC().Format(time.RFC3339))
			}
			return nil, s.caCertError(cert, chains)
		}
	}
	return nil, fmt.Errorf("%w: %v", ErrNotOurs, err)
}

// caCertError names cert, which chains (chains) to our root but through
// none of our issuing CAs: the root itself, one of our issuing CAs, or
// something else the root signed.
func (s *issuerSet) caCertError(cert *x509.Certificate, chains [][]*x509.Certificate) error {
	e := &CACertError{Subject: cert.Subject.String(), Role: "certificate signed by the root itself, not by an issuing CA"}
	for _, c := range chains {
		if len(c) == 1 {
			e.Role = "root certificate"
			return e
		}
	}
	for _, i := range s.all {
		if bytes.Equal(i.Cert.Raw, cert.Raw) {
			e.Role = "issuing CA certificate"
		}
	}
	return e
}

// issuerOf returns our issuer of the first chain of the form leaf, one of
// our issuing CAs, root.
func (s *issuerSet) issuerOf(chains [][]*x509.Certificate) *Issuer {
	for _, c := range chains {
		if len(c) != 3 {
			continue
		}
		for _, i := range s.all {
			if bytes.Equal(i.Cert.Raw, c[1].Raw) {
				return i
			}
		}
	}
	return nil
}

// Token is the PKCS#11 token the CA was loaded with (InitOptions.Token),
// nil for a CA of key files.
func (a *Authority) Token() keys.Token { return a.opts.Token }

// WrapKey gives another key the server signs with (an OCSP responder's) to
// InitOptions.WrapKey, as the issuing CA and RA keys were: with serve's
// --rsa-backend auto, an RSA key file then signs through OpenSSL. It
// returns key itself when there is no WrapKey, or when the wrapped key
// would not have key's public key.
func (a *Authority) WrapKey(key crypto.Signer) crypto.Signer { return a.opts.wrapKey(key) }

// ResponderKeys is where the OCSP responder keys of this CA's issuers are
// kept: key files in dir, or, when the CA has a token, keys made in the
// token (labelled PREFIX-ocsp-NAME-<random>, so that nodes sharing the
// token never touch each other's) that reference files in dir name.
func (a *Authority) ResponderKeys(dir string) *keys.Dir {
	d := &keys.Dir{Path: dir}
	if t := a.opts.Token; t != nil {
		id, _ := randomID() // crypto/rand does not fail
		d.Token, d.LabelPrefix, d.Suffix = t, "ocsp-", "-"+id
	}
	return d
}

// KeysInToken reports whether a key of the current generation (issuing
// CA or RA) is in a PKCS#11 token, as the CA directory says (a reference
// file in place of the key file); false for an Authority not loaded from
// a directory.
func (a *Authority) KeysInToken() bool {
	if a.caDir == "" {
		return false
	}
	d := &keys.Dir{Path: a.caDir}
	for _, n := range []string{issuingKeyName, raKeyName} {
		if in, _ := d.InToken(n); in {
			return true
		}
	}
	return false
}

// RootFingerprint is "sha256:" and the lower-case hex SHA-256 of the root
// certificate's DER, the value clients pin.
func (a *Authority) RootFingerprint() string {
	return Fingerprint(a.Root)
}

// Fingerprint is "sha256:" and the lower-case hex SHA-256 of c's DER.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}
