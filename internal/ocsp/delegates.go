package ocsp

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// DefaultDelegateValidity is the lifetime of a delegated responder
// certificate. It carries id-pkix-ocsp-nocheck, so nobody can check whether
// it was revoked: it must be short-lived. It is replaced after two thirds.
const DefaultDelegateValidity = 4 * 24 * time.Hour

// CertIssuer issues delegated responder certificates; *enroll.Service is one.
type CertIssuer interface {
	IssueResponderCertificate(ctx context.Context, issuerID string, pub crypto.PublicKey, validity time.Duration) (*x509.Certificate, error)
}

// Delegates keeps one delegated responder certificate per issuing CA (the
// current, next and previous ones whose certificates are valid): a key made
// here and a certificate with id-kp-OCSPSigning and id-pkix-ocsp-nocheck
// that the CA issues, kept in a directory of the node's so a restart reuses
// it, and replaced before it expires. Safe for concurrent use.
type Delegates struct {
	dir      string
	issuers  Issuers
	certs    CertIssuer
	clock    pki.Clock
	log      *slog.Logger
	validity time.Duration

	mu      sync.RWMutex
	signers map[string]Signer
	// gone are, by issuer, delegates whose key their token no longer
	// holds (see keyGone): not used, and replaced at the next Refresh.
	gone    map[string]lostKey
	refresh sync.Mutex // one Refresh at a time

	// keys holds the responder keys (see WithKeys); key files in dir by
	// default.
	keys keys.Source
	// wrap is given each responder key as it is loaded or made, and the
	// responder signs with the key it returns (see WithWrapKey).
	wrap func(crypto.Signer) crypto.Signer
	// inv, when set, says which delegates have been revoked, and
	// revokes one whose key is gone (see WithInventory).
	inv Inventory
	// kick asks the loop of whoever runs Refresh for an early one (Kick).
	kick chan struct{}
	// audit, when set, records the responder keys destroyed, as actor
	// (see WithAudit).
	audit      Auditor
	auditActor string
	// skipped are the issuers whose delegate was not issued because
	// their CA was discarded, already logged about. Used under refresh.
	skipped map[string]bool
}

// Discards says which next issuing CAs were discarded before their
// switch ('scepter ca rollover --discard'); store.Store is one.
type Discards interface {
	DiscardedCAGenerations(ctx context.Context) ([]store.DiscardedCAGeneration, error)
}

// errDiscarded: the issuer's CA was discarded, and nothing is issued
// under it (see discarded).
var errDiscarded = errors.New("its issuing CA was discarded")

// Auditor is the audit trail; store.Store is one.
type Auditor interface {
	AppendAudit(ctx context.Context, events ...pki.AuditEvent) error
}

// WithAudit has every responder key the delegates destroy (a revoked
// one replaced, a name used again) recorded in a, by actor
// ("system:<node>"). Call it before the first Refresh.
func (d *Delegates) WithAudit(a Auditor, actor string) *Delegates {
	d.audit, d.auditActor = a, actor
	return d
}

// WithInventory has Refresh replace a delegate revoked in inv, as one
// that is due. When inv is also a Revoker (store.Store is), a delegate
// whose key is gone from its token is revoked in it (superseded) once
// replaced (see retireLost). When inv also lists the discarded CAs
// (Discards; store.Store does), no delegate is issued under a next CA
// it records as discarded, which this node may still hold until its
// next CA reload: a revoked delegate of it is not replaced, but goes
// with its CA (see discarded). Call it before the first Refresh.
func (d *Delegates) WithInventory(inv Inventory) *Delegates {
	d.inv = inv
	return d
}

// Kick asks for a Refresh now (a delegate was found revoked); whoever runs
// Refresh periodically waits on Kicked too. It never blocks.
func (d *Delegates) Kick() {
	select {
	case d.kick <- struct{}{}:
	default: // one is pending already
	}
}

// Kicked is readable after a Kick.
func (d *Delegates) Kicked() <-chan struct{} { return d.kick }

// Revoker revokes a certificate in the inventory; store.Store is one.
type Revoker interface {
	RevokeCertificate(ctx context.Context, issuerID, serialHex string, reason int, at time.Time, ev pki.AuditEvent) (*pki.Certificate, bool, error)
}

// revoked: the inventory holds c as revoked. A store error counts as not
// revoked (the next Refresh looks again).
func (d *Delegates) revoked(ctx context.Context, issuer *ca.Issuer, c *x509.Certificate) bool {
	if d.inv == nil {
		return false
	}
	rec, err := d.inv.Certificate(ctx, issuer.ID, c.SerialNumber.Text(16))
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			d.log.Warn("ocsp: cannot read the responder certificate's status", "issuer", issuer.ID, "err", err)
		}
		return false
	}
	return rec.Status == pki.StatusRevoked
}

// WithKeys keeps the responder keys in src (ca.Authority.ResponderKeys:
// key files, or keys in the CA's PKCS#11 token) instead of key files in
// the directory. Call it before the first Refresh.
func (d *Delegates) WithKeys(src keys.Source) *Delegates {
	d.keys = src
	return d
}

// WithWrapKey has the responders sign with wrap(key) instead of the key
// itself (ca.Authority.WrapKey: RSA key files through OpenSSL, as the CA's
// own keys). wrap must return a key with the same public key. Call it
// before the first Refresh.
func (d *Delegates) WithWrapKey(wrap func(crypto.Signer) crypto.Signer) *Delegates {
	d.wrap = wrap
	return d
}

// wrapped is issuer's delegate s, whose key is under name, with its key
// given to wrap, once s is to be used, and watched: a signature that
// fails because the key is gone from its token marks s gone (keyGone).
func (d *Delegates) wrapped(issuer *ca.Issuer, s Signer, name string) Signer {
	// Named now: once the key is gone, its reference file may go too.
	lost := lostKey{cert: s.Cert, where: d.keys.Where(name)}
	s.Key = &watchedKey{Signer: keys.Wrapped(s.Key, d.wrap), gone: func() { d.keyGone(issuer.ID, lost) }}
	return s
}

// lostKey is a delegate whose key its token no longer holds: its
// certificate, and where the key was (its reference and token URI, or
// its file).
type lostKey struct {
	cert  *x509.Certificate
	where string
}

// watchedKey is a responder key that calls gone when its token answers
// that it does not hold it (keys.ErrKeyNotFound). A token that is away
// fails otherwise, and its keys work again when it is back.
type watchedKey struct {
	crypto.Signer
	gone func()
}

func (k *watchedKey) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	sig, err := k.Signer.Sign(r, digest, opts)
	if errors.Is(err, keys.ErrKeyNotFound) {
		k.gone()
	}
	return sig, err
}

// keyGone marks issuer's delegate cert gone, when it is still the one in
// use, and asks for a Refresh to replace it. A key deleted from its token
// cannot be put back (it never left the token), so waiting would leave
// the issuer without a delegate until the certificate is due, days on;
// meanwhile the CA signs (Signer answers none).
func (d *Delegates) keyGone(issuerID string, lost lostKey) {
	d.mu.Lock()
	cur, ok := d.signers[issuerID]
	_, already := d.gone[issuerID]
	marked := ok && cur.Cert.Equal(lost.cert) && !already
	if marked {
		d.gone[issuerID] = lost
	}
	d.mu.Unlock()
	if marked {
		d.log.Info("ocsp: the delegated responder's key is gone from its token: a new responder key "+
			"and certificate are made", "issuer", issuerID, "serial", pki.SerialText(lost.cert.SerialNumber), "key", lost.where)
		d.Kick()
	}
}

// isGone: keyGone marked c, issuer's delegate. Called with mu held.
func (d *Delegates) isGone(issuerID string, c *x509.Certificate) bool {
	g, ok := d.gone[issuerID]
	return ok && g.cert.Equal(c)
}

// NewDelegates loads nothing yet: call Refresh at start and periodically.
func NewDelegates(dir string, issuers Issuers, certs CertIssuer, clock pki.Clock, log *slog.Logger, validity time.Duration) *Delegates {
	if validity <= 0 {
		validity = DefaultDelegateValidity
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Delegates{dir: dir, issuers: issuers, certs: certs, clock: clock, log: log, validity: validity, signers: map[string]Signer{},
		gone: map[string]lostKey{}, keys: keys.Files(dir), kick: make(chan struct{}, 1), skipped: map[string]bool{}}
}

// Signer returns an issuer's delegated responder (SignerFor).
func (d *Delegates) Signer(issuerID string) (Signer, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	s, ok := d.signers[issuerID]
	if !ok || d.isGone(issuerID, s.Cert) {
		return Signer{}, false
	}
	now := d.clock.Now()
	if now.Before(s.Cert.NotBefore) {
		// Made before the clock was set back: its answers would not be
		// valid yet for anyone. The CA signs until Refresh replaces it.
		d.Kick()
		return Signer{}, false
	}
	if !now.Before(s.Cert.NotAfter) {
		return Signer{}, false
	}
	return s, true
}

// Refresh makes sure every issuer valid now has a usable delegate: the one
// in memory, the one on disk, or a new one. It goes on past an issuer that
// fails and returns the errors joined; that issuer's answers are signed by
// the CA itself meanwhile.
func (d *Delegates) Refresh(ctx context.Context) error {
	d.refresh.Lock()
	defer d.refresh.Unlock()
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return fmt.Errorf("ocsp: responder directory: %w", err)
	}
	now := d.clock.Now()
	var errs []error
	for _, issuer := range d.issuers.Issuers() {
		if now.Before(issuer.Cert.NotBefore) || !now.Before(issuer.Cert.NotAfter) {
			continue
		}
		d.mu.RLock()
		cur, ok := d.signers[issuer.ID]
		gone := ok && d.isGone(issuer.ID, cur.Cert)
		lost := d.gone[issuer.ID]
		d.mu.RUnlock()
		if ok && !gone && d.usable(cur, issuer, now) && !d.revoked(ctx, issuer, cur.Cert) {
			continue
		}
		s, issued, err := d.loadOrIssue(ctx, issuer, now)
		if errors.Is(err, errDiscarded) {
			// Its CA goes at this node's next reload; a revoked
			// delegate of it signs nothing meanwhile (the CA does).
			d.mu.Lock()
			delete(d.signers, issuer.ID)
			delete(d.gone, issuer.ID)
			d.mu.Unlock()
			if !d.skipped[issuer.ID] {
				d.skipped[issuer.ID] = true
				d.log.Info("ocsp: the next issuing CA was discarded: no OCSP responder certificate is issued under it, "+
					"and a revoked one is not replaced", "issuer", issuer.Cert.Subject.String(), "issuer_id", issuer.ID, "err", err)
			}
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		d.mu.Lock()
		d.signers[issuer.ID] = s
		delete(d.gone, issuer.ID)
		d.mu.Unlock()
		if issued {
			d.log.Info("OCSP responder certificate issued", "issuer", issuer.Cert.Subject.String(),
				"serial", pki.SerialText(s.Cert.SerialNumber), "not_after", s.Cert.NotAfter.UTC().Format(time.RFC3339))
		}
		if gone && !s.Cert.Equal(lost.cert) {
			d.retireLost(ctx, issuer, lost, s.Cert)
		}
	}
	return errors.Join(errs...)
}

// retireLost records that issuer's delegate lost, whose key is gone from
// its token, was replaced by next: its certificate is revoked in the
// inventory (superseded), with a certificate.revoked event that names the
// missing key and its replacement, so that neither the inventory nor the
// CRL lists as valid a responder that can no longer sign. One the
// inventory holds revoked already, or does not hold, or that cannot be
// revoked, gets a certificate.recorded note on next saying the same. The
// replacement stands whatever fails here: that is logged.
func (d *Delegates) retireLost(ctx context.Context, issuer *ca.Issuer, lost lostKey, next *x509.Certificate) {
	// Recorded even when the server is stopping: the key is gone.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	// The store's keys, and the serials as people read them (pki.ShownSerial).
	serial, nextSerial := lost.cert.SerialNumber.Text(16), next.SerialNumber.Text(16)
	shown, nextShown := pki.SerialText(lost.cert.SerialNumber), pki.SerialText(next.SerialNumber)
	missing := fmt.Sprintf("OCSP responder key %s found missing from its token", lost.where)
	now := d.clock.Now()
	profile := "" // the inventory's, when it has the certificate
	if rv, ok := d.inv.(Revoker); ok {
		rec, err := d.inv.Certificate(ctx, issuer.ID, serial)
		if err == nil {
			profile = rec.Profile
		}
		switch {
		case err == nil && rec.Status == pki.StatusValid:
			superseded, _ := pki.ReasonName(pki.ReasonSuperseded)
			ev := pki.AuditEvent{Time: now, Type: pki.EventRevoked, Actor: d.actor(), Profile: rec.Profile, SerialHex: serial,
				IssuerID: issuer.ID, Subject: rec.Subject, Outcome: "success", Reason: superseded,
				Detail: fmt.Sprintf("%s; replaced by the OCSP responder certificate %s, with a new key", missing, nextShown)}
			_, changed, err := rv.RevokeCertificate(ctx, issuer.ID, serial, pki.ReasonSuperseded, now, ev)
			if err == nil && changed {
				d.log.Warn("ocsp: the responder certificate whose key is gone from its token is revoked (superseded)",
					"issuer", issuer.ID, "serial", shown, "replaced_by", nextShown, "key", lost.where)
				return
			}
			if err != nil {
				d.log.Error("ocsp: the responder certificate whose key is gone from its token could not be revoked: revoke it with "+
					"'scepter certs revoke "+shown+" --reason superseded'", "issuer", issuer.ID, "serial", shown, "err", err)
			}
		case err != nil && !errors.Is(err, store.ErrNotFound):
			d.log.Error("ocsp: the responder certificate whose key is gone from its token could not be read, nor revoked: revoke it with "+
				"'scepter certs revoke "+shown+" --reason superseded'", "issuer", issuer.ID, "serial", shown, "err", err)
		}
	}
	if d.audit == nil {
		return
	}
	note := pki.AuditEvent{Time: now, Type: pki.EventCertRecorded, Actor: d.actor(), Profile: profile, SerialHex: nextSerial, IssuerID: issuer.ID,
		Subject: next.Subject.String(), Outcome: "success",
		Detail: fmt.Sprintf("OCSP responder certificate with a new key, replacing the responder certificate %s: %s", shown, missing)}
	if err := d.audit.AppendAudit(ctx, note); err != nil {
		d.log.Error("ocsp: the replacement of a responder whose key is gone from its token could not be written to the audit trail",
			"issuer", issuer.ID, "serial", shown, "replaced_by", nextShown, "err", err)
	}
}

// actor is who the audit events of the delegates name (WithAudit).
func (d *Delegates) actor() string {
	if d.auditActor == "" {
		return "system"
	}
	return d.auditActor
}

// renewAt is when a delegate is replaced: after two thirds of its life.
func renewAt(c *x509.Certificate) time.Time {
	return c.NotAfter.Add(-c.NotAfter.Sub(c.NotBefore) / 3)
}

// usable: issued by this issuer, for OCSP signing, and not yet due.
func (d *Delegates) usable(s Signer, issuer *ca.Issuer, now time.Time) bool {
	c := s.Cert
	return c != nil && c.CheckSignatureFrom(issuer.Cert) == nil && slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) &&
		!now.Before(c.NotBefore) && now.Before(renewAt(c)) && pki.SamePublicKey(s.Key.Public(), c.PublicKey)
}

// names are the two key names of an issuer's delegate, used in turn: a new
// key never replaces the one in use (which may be signing at that moment,
// and in a token could not be used once destroyed), only the one before
// it. The first is ID[:32], whose key file is ID[:32].key as before.
func (d *Delegates) names(issuer *ca.Issuer) [2]string { return delegateKeyNames(issuer.ID) }

func delegateKeyNames(issuerID string) [2]string {
	base := issuerID[:32]
	return [2]string{base, base + "-b"}
}

func (d *Delegates) certPath(issuer *ca.Issuer) string { return delegateCertPath(d.dir, issuer.ID) }

func delegateCertPath(dir, issuerID string) string {
	return filepath.Join(dir, issuerID[:32]+".crt")
}

// RemoveDelegate destroys the delegated responder of issuerID kept in dir
// (see NewDelegates): its certificate and both of its key names, as files
// or, through a reference file, in token. It is for an issuing CA that is
// gone (a discarded next CA): no server must answer for it. It returns the
// paths it removed, and is a no-op where there is none. A key in a token
// that was not given (token nil) stays in the token, as a discarded CA's
// own keys do: its reference file goes, and left names the key for the
// operator to remove with the token's tools. destroyed lists each key it
// destroyed or failed to, for the audit trail.
func RemoveDelegate(dir string, token keys.Token, issuerID string) (removed, left []string, destroyed []pki.KeyDestruction, err error) {
	if len(issuerID) < 32 {
		return nil, nil, nil, fmt.Errorf("ocsp: issuer ID %q is too short", issuerID)
	}
	src := &keys.Dir{Path: dir, Token: token}
	var errs []error
	for _, name := range delegateKeyNames(issuerID) {
		has, err := src.Has(name)
		if err != nil || !has {
			errs = append(errs, err)
			continue
		}
		where := src.Where(name)
		// Opened first for its public key, and to tell a key gone from
		// the token already (no destruction to record) from one there.
		var pub crypto.PublicKey
		key, openErr := src.Open(name)
		if openErr == nil {
			pub = key.Public()
		}
		gone := errors.Is(openErr, keys.ErrKeyNotFound) || errors.Is(openErr, fs.ErrNotExist)
		err = src.Destroy(name)
		if errors.Is(err, keys.ErrNoToken) {
			ref, _, rerr := keys.ReadRefFile(src.RefPath(name))
			if rerr == nil {
				rerr = os.Remove(src.RefPath(name))
			}
			if rerr != nil {
				errs = append(errs, fmt.Errorf("ocsp: responder key %s: %w", where, rerr))
				continue
			}
			left = append(left, ref)
			removed = append(removed, src.RefPath(name))
			continue
		}
		if err != nil {
			err = fmt.Errorf("ocsp: responder key %s: %w", where, err)
			errs = append(errs, err)
			destroyed = append(destroyed, pki.KeyDestruction{Role: pki.KeyRoleResponder, IssuerID: issuerID, Where: where, Public: pub, Err: err})
			continue
		}
		removed = append(removed, where)
		if !gone {
			destroyed = append(destroyed, pki.KeyDestruction{Role: pki.KeyRoleResponder, IssuerID: issuerID, Where: where, Public: pub})
		}
	}
	certFile := delegateCertPath(dir, issuerID)
	if err := os.Remove(certFile); err == nil {
		removed = append(removed, certFile)
	} else if !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("ocsp: %w", err))
	}
	return removed, left, destroyed, errors.Join(errs...)
}

// destroy removes the key under name: in a token, only the key pair its
// reference file records; otherwise the key file. The destruction, or
// the failure to destroy a key that is there, goes to the audit trail
// (WithAudit) as issuer's responder key; a key gone already is
// fs.ErrNotExist and not recorded.
func (d *Delegates) destroy(ctx context.Context, issuer *ca.Issuer, name string) error {
	where := d.keys.Where(name)
	var pub crypto.PublicKey
	key, err := d.keys.Open(name)
	switch {
	case errors.Is(err, keys.ErrKeyNotFound) || errors.Is(err, fs.ErrNotExist):
		// Its reference may still be there: Destroy removes it.
		if x, ok := d.keys.(interface{ Destroy(string) error }); ok {
			if err := x.Destroy(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		return fs.ErrNotExist
	case err == nil:
		pub = key.Public()
	}
	if x, ok := d.keys.(interface{ Destroy(string) error }); ok {
		err = x.Destroy(name)
	} else {
		err = d.keys.Remove(name)
	}
	d.record(ctx, pki.KeyDestruction{Role: pki.KeyRoleResponder, IssuerID: issuer.ID, Where: where, Public: pub, Err: err})
	return err
}

// record writes k to the audit trail, if there is one. A write that fails
// undoes nothing: it is logged.
func (d *Delegates) record(ctx context.Context, k pki.KeyDestruction) {
	if d.audit == nil {
		return
	}
	// Recorded even when the server is stopping: the key is gone.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := d.audit.AppendAudit(ctx, k.Event(d.clock.Now(), d.auditActor)); err != nil {
		d.log.Error("ocsp: a responder key destruction could not be written to the audit trail", "key", k.Where, "issuer", k.IssuerID, "err", err)
	}
}

func (d *Delegates) loadOrIssue(ctx context.Context, issuer *ca.Issuer, now time.Time) (Signer, bool, error) {
	certFile := d.certPath(issuer)
	names := d.names(issuer)
	inUse := -1
	// revoked is the name whose key is a revoked responder's: destroyed
	// once its replacement is issued, as a revoked RA's key is, rather
	// than kept (and exported) until the name comes round again.
	revoked := ""
	if certs, err := keys.LoadCertFile(certFile); err == nil && len(certs) > 0 {
		for i, n := range names {
			key, err := d.keys.Open(n)
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					d.log.Warn("an OCSP responder key cannot be used; making a new one", "key", d.keys.Where(n), "err", err)
				}
				continue
			}
			if pki.SamePublicKey(key.Public(), certs[0].PublicKey) {
				s := Signer{Cert: certs[0], Key: key, IncludeCert: true}
				isRevoked := d.revoked(ctx, issuer, s.Cert)
				if d.usable(s, issuer, now) && !isRevoked {
					return d.wrapped(issuer, s, n), false, nil
				}
				if isRevoked {
					revoked = n
				}
				inUse = i
				break
			}
		}
	}
	// The key the server signs with now, if any, is kept too.
	d.mu.RLock()
	cur, ok := d.signers[issuer.ID]
	d.mu.RUnlock()
	if ok && cur.Key != nil {
		for i, n := range names {
			if k, err := d.keys.Open(n); err == nil && pki.SamePublicKey(k.Public(), cur.Key.Public()) {
				inUse = i
				if d.revoked(ctx, issuer, cur.Cert) {
					revoked = n
				}
			}
		}
	}
	name := names[0]
	if inUse == 0 {
		name = names[1]
	}
	// Nothing is issued under a CA discarded since this node loaded it
	// (the discard revoked its delegate): it goes at the next reload.
	if gone, err := d.discarded(ctx, issuer.ID); err != nil {
		return Signer{}, false, fmt.Errorf("ocsp: responder certificate for %q not issued before the store says whether its CA was discarded: %w",
			issuer.Cert.Subject, err)
	} else if gone {
		return Signer{}, false, errDiscarded
	}
	if has, err := d.keys.Has(name); err != nil {
		return Signer{}, false, fmt.Errorf("ocsp: responder key: %w", err)
	} else if has {
		if err := d.destroy(ctx, issuer, name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return Signer{}, false, fmt.Errorf("ocsp: replacing the responder key: %w", err)
		}
	}
	keyType := keys.P256
	if _, isRSA := issuer.Cert.PublicKey.(*rsa.PublicKey); isRSA {
		keyType = keys.RSA2048 // for relying parties that know only RSA, like their CA
	}
	// The key is made first: a certificate on disk always has its key.
	key, err := d.keys.Create(name, keyType)
	if err != nil {
		return Signer{}, false, fmt.Errorf("ocsp: responder key: %w", err)
	}
	cert, err := d.certs.IssueResponderCertificate(ctx, issuer.ID, key.Public(), d.validity)
	if err != nil {
		return Signer{}, false, fmt.Errorf("ocsp: responder certificate for %q: %w", issuer.Cert.Subject, err)
	}
	// The revoked key goes before the certificate that replaces its own
	// is written: a stop in between leaves a certificate without its key,
	// which the next start replaces, and no revoked key. The responder
	// no longer signs with a revoked delegate (see delegateRevoked). One
	// that cannot be destroyed now goes when its name is used again.
	if revoked != "" && revoked != name {
		// Named before it goes: a token key's reference file goes with
		// it, and Where would then name a key file that never was.
		where := d.keys.Where(revoked)
		if err := d.destroy(ctx, issuer, revoked); err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.log.Warn("ocsp: the revoked responder key cannot be destroyed", "key", where, "err", err)
		} else if err == nil {
			d.log.Info("OCSP responder key destroyed: its certificate is revoked", "key", where, "issuer", issuer.ID)
		}
	}
	if err := keys.WriteCertFile(certFile, cert); err != nil {
		return Signer{}, false, err
	}
	// Asked again once the certificate is recorded and on disk: a discard
	// that came after the check above is seen here, or, coming later, its
	// own revocation of what the CA issued and its removal of this node's
	// responder find this one.
	if gone, err := d.discarded(ctx, issuer.ID); err != nil {
		d.log.Warn("ocsp: cannot tell whether the CA of the responder certificate just issued was discarded meanwhile", "issuer", issuer.ID,
			"serial", pki.SerialText(cert.SerialNumber), "err", err)
	} else if gone {
		d.retireDiscarded(ctx, issuer, cert, name, certFile)
		return Signer{}, false, fmt.Errorf("the responder certificate %s, issued while it was discarded, is revoked and its key destroyed: %w",
			pki.SerialText(cert.SerialNumber), errDiscarded)
	}
	return d.wrapped(issuer, Signer{Cert: cert, Key: key, IncludeCert: true}, name), true, nil
}

// discarded: the store records issuerID as a next CA discarded before
// its switch. False without a store that says (WithInventory).
func (d *Delegates) discarded(ctx context.Context, issuerID string) (bool, error) {
	ds, ok := d.inv.(Discards)
	if !ok {
		return false, nil
	}
	gens, err := ds.DiscardedCAGenerations(ctx)
	if err != nil {
		return false, fmt.Errorf("reading the discarded CAs recorded in the store: %w", err)
	}
	return slices.ContainsFunc(gens, func(g store.DiscardedCAGeneration) bool { return g.IssuerID == issuerID }), nil
}

// retireDiscarded undoes cert, issuer's delegate issued under the key
// name just as issuer was discarded: it is revoked in the inventory for
// cessationOfOperation, as the discard revokes what the CA issued (unless
// the discard did so already), and its certificate file and key go, as
// the discard removes this node's responder.
func (d *Delegates) retireDiscarded(ctx context.Context, issuer *ca.Issuer, cert *x509.Certificate, name, certFile string) {
	// Done even when the server is stopping: nothing may outlive the CA.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	serial, shown := cert.SerialNumber.Text(16), pki.SerialText(cert.SerialNumber)
	revoked := false
	if rv, ok := d.inv.(Revoker); ok {
		rec, err := d.inv.Certificate(ctx, issuer.ID, serial)
		switch {
		case err == nil && rec.Status != pki.StatusValid:
			revoked = true // by the discard
		case err == nil:
			reason, _ := pki.ReasonName(pki.ReasonCessationOfOperation)
			now := d.clock.Now()
			ev := pki.AuditEvent{Time: now, Type: pki.EventRevoked, Actor: d.actor(), Profile: rec.Profile, SerialHex: serial,
				IssuerID: issuer.ID, Subject: rec.Subject, Outcome: "success", Reason: reason,
				Detail: fmt.Sprintf("OCSP responder certificate issued by next issuing CA %s as it was discarded before its switch", issuer.ID)}
			_, _, err = rv.RevokeCertificate(ctx, issuer.ID, serial, pki.ReasonCessationOfOperation, now, ev)
			revoked = err == nil
			if err != nil {
				d.log.Error("ocsp: a responder certificate issued as its CA was discarded could not be revoked: revoke it with "+
					"'scepter certs revoke "+shown+" --reason cessationOfOperation'", "issuer", issuer.ID, "serial", shown, "err", err)
			}
		default:
			d.log.Error("ocsp: a responder certificate issued as its CA was discarded could not be read, nor revoked: revoke it with "+
				"'scepter certs revoke "+shown+" --reason cessationOfOperation'", "issuer", issuer.ID, "serial", shown, "err", err)
		}
	}
	if err := os.Remove(certFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.log.Error("ocsp: removing the responder certificate issued as its CA was discarded", "file", certFile, "err", err)
	}
	where := d.keys.Where(name)
	if err := d.destroy(ctx, issuer, name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.log.Error("ocsp: the key of a responder certificate issued as its CA was discarded cannot be destroyed", "key", where, "err", err)
	}
	d.log.Warn("ocsp: a responder certificate was issued as its CA was being discarded: undone", "issuer", issuer.ID,
		"serial", shown, "revoked", revoked, "key", where)
}
