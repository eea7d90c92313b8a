package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/health"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/ttlcache"
)

// raInventory is what the RA keeper asks the inventory; *enroll.Service
// is one.
type raInventory interface {
	RARevoked(ctx context.Context, ra *pki.RA) (bool, error)
	RecordRAReplacement(ctx context.Context, revoked, replacement *pki.RA, actor string) error
}

// discardLister says which next issuing CAs were discarded before their
// switch (store.Store does).
type discardLister interface {
	DiscardedCAGenerations(ctx context.Context) ([]store.DiscardedCAGeneration, error)
}

// raStore is what the RA keeper asks of the store, which store.Store
// does: the discarded next CAs, the audit trail that records the RA keys
// it destroys, and the RA certificates recorded in the inventory with
// their renewals (an RA renewed on another node).
type raStore interface {
	discardLister
	raRenewals
	AppendAudit(ctx context.Context, events ...pki.AuditEvent) error
}

// raKeeper keeps a revoked SCEP RA out of service. Its key decrypts every
// SCEP request, challenges inside: once the inventory (shared by every
// node on a store) says its certificate is revoked, the keeper stops
// decrypting with it, and replaces the active and the next RA with a new
// key and certificate, issued as at the first start. An RA that is the
// issuing CA itself (--scep-ra ca) is not replaced: the keeper logs that
// the CA is revoked and the RA check fails.
//
// The RA of a next CA that was discarded ('scepter ca rollover --discard'
// revokes it) is not replaced: it goes with its CA.
//
// The keeper also looks in the store for an RA that `scepter ca renew-ra`
// made on another node and this node lacks (its DATA/ca not copied here
// yet): such a node cannot open requests encrypted to it. The SCEP handler
// answers those 503 (lackedRAs), and the node warns once and is not ready
// until it has the new RA, as for a next CA it lacks at the switch.
//
// check runs at start, before the server answers (a revocation made while
// it was stopped), and every minute after, like the HTTPS certificate's.
type raKeeper struct {
	inventory raInventory
	// discards, when set, is the store: which next CAs it records as
	// discarded (this node may still hold them until its next Sync), and
	// the audit trail of the retired RA keys destroyed.
	discards  raStore
	authority *ca.Authority
	// replaceRA is authority.ReplaceRA (a test's stand-in fails).
	replaceRA func(cert *x509.Certificate, now time.Time) (destroyed bool, key string, err error)
	caDir     string
	clock     pki.Clock
	log       *slog.Logger
	// node names this node in the audit trail.
	node string
	// gate, when set, is the enrollment service's IssuanceGate (serve's
	// issuanceGate): while it refuses, a revoked RA is left as it is, not
	// replaced, since its replacement would be signed by the CA and then
	// refused by the store (a certificate served, recorded nowhere, that
	// cannot be revoked). Asked again at every check.
	gate func() error

	// revoked holds the DER of every loaded RA certificate the last check
	// found revoked (true). Never modified once stored: every SCEP
	// request reads it, without a lock.
	revoked atomic.Pointer[map[string]bool]
	// lacked are the RAs renewed on another node that the last check
	// found this node lacks, newest first; read by every SCEP request
	// that no loaded RA opens, without a lock. Never modified once stored.
	lacked atomic.Pointer[[]lackedRA]
	// recheck: the reads of lacked RAs made between checks, for a request
	// to an RA no loaded one is (recheckLacked): one entry, kept for
	// lackedRecheckEvery, whose load the callers during it share.
	recheck *ttlcache.Cache[struct{}, struct{}]

	mu sync.Mutex
	// refusing is, per revoked RA, a copy whose key no longer decrypts:
	// served while the RA is active and could not be replaced, one per
	// RA so that a GetCACert cache keyed by RA does not grow.
	refusing map[*pki.RA]*pki.RA
	// problem is why an active RA cannot be used, for /readyz.
	problem error
	// logged: the revoked RAs already logged about (by DER).
	logged map[string]bool
	// failedDestroy: the retired RAs (by serial) whose key could not be
	// destroyed, already recorded in the audit trail.
	failedDestroy map[string]bool
}

func newRAKeeper(inventory raInventory, authority *ca.Authority, dataDir string, clock pki.Clock, log *slog.Logger, node string) *raKeeper {
	k := &raKeeper{inventory: inventory, authority: authority, replaceRA: authority.ReplaceRA, caDir: filepath.Join(dataDir, "ca"), clock: clock, log: log, node: node,
		refusing: map[*pki.RA]*pki.RA{}, logged: map[string]bool{}, failedDestroy: map[string]bool{},
		recheck: ttlcache.New[struct{}, struct{}](1)}
	k.revoked.Store(&map[string]bool{})
	return k
}

// isRevoked: the last check found ra's certificate revoked.
func (k *raKeeper) isRevoked(ra *pki.RA) bool {
	return (*k.revoked.Load())[string(ra.Cert.Raw)]
}

// check asks the inventory about every loaded RA, replaces a revoked
// active or next one and destroys the key of a revoked retired one. A store that cannot be read leaves an RA as the
// last check found it; the next check asks again.
func (k *raKeeper) check(ctx context.Context) {
	revoked := maps.Clone(*k.revoked.Load())
	var loaded []string
	for _, ra := range k.keptRAs() {
		der := string(ra.Cert.Raw)
		loaded = append(loaded, der)
		r, err := k.inventory.RARevoked(ctx, ra)
		if err != nil {
			k.log.Warn("checking whether the SCEP RA certificate is revoked", "serial", pki.SerialText(ra.Cert.SerialNumber), "err", err)
			continue
		}
		if r {
			revoked[der] = true
		} else {
			delete(revoked, der)
		}
	}
	// Only what is loaded: a replaced RA is gone for good.
	for der := range revoked {
		if !slices.Contains(loaded, der) {
			delete(revoked, der)
		}
	}
	// Decryption stops before the replacement, which may take a while
	// (a key made in an HSM) or fail.
	k.revoked.Store(&revoked)
	k.dropRevokedRetired(revoked)

	activeRA := func() *pki.RA {
		_, ra := k.authority.Active(k.clock.Now())
		return ra
	}
	nextRA := func() *pki.RA {
		_, ra, _ := k.authority.Next(k.clock.Now())
		return ra
	}
	active := activeRA()
	var problems []error
	for i, role := range []func() *pki.RA{activeRA, nextRA} {
		ra := role()
		if ra == nil || !revoked[string(ra.Cert.Raw)] {
			continue
		}
		serial := pki.SerialText(ra.Cert.SerialNumber)
		// nextID is the next issuing CA whose RA ra is; "" for the active RA.
		nextID := ""
		if i == 1 {
			nextID = k.nextIssuerID()
			if done, err := k.nextDiscarded(ctx, nextID); err != nil {
				// Asked again at the next check; the RA no longer decrypts.
				k.log.Warn("the next CA's SCEP RA certificate is revoked; not replaced before the store says whether that CA was discarded",
					"serial", serial, "issuer_id", nextID, "err", err)
				continue
			} else if done {
				k.logOnce(ra, func() {
					k.log.Info("the next CA's SCEP RA certificate is revoked with its CA, which was discarded: not replaced", "serial", serial, "issuer_id", nextID)
				})
				continue
			}
		}
		if ra.IsCA {
			err := fmt.Errorf("the issuing CA %s, which is also the SCEP RA (--scep-ra ca), is revoked: "+
				"it is not replaced automatically; roll over to a new issuing CA (scepter ca rollover)", serial)
			k.logOnce(ra, func() { k.log.Error(err.Error()) })
			if ra == active {
				problems = append(problems, err)
			}
			continue
		}
		if err := k.gated(); err != nil {
			err = health.RAProblem(health.ErrRARevoked, fmt.Errorf("the SCEP RA certificate %s is revoked; no longer decrypting with its key, "+
				"and not replaced while this node issues nothing (%w): it is replaced at the first check after that ends (this node restarted on a newer scepter)", serial, err))
			k.logOnceFor("gated "+string(ra.Cert.Raw), func() { k.log.Warn(err.Error()) })
			if ra == active {
				problems = append(problems, err)
			}
			continue
		}
		k.logOnce(ra, func() {
			k.log.Warn("the SCEP RA certificate is revoked; no longer decrypting with its key, issuing a new RA key and certificate", "serial", serial)
		})
		replacement, err := k.replace(ctx, ra, role, nextID)
		if errors.Is(err, errNextGone) {
			k.log.Info("the next CA whose SCEP RA certificate was revoked is gone after the reload (discarded): nothing to replace", "serial", serial, "issuer_id", nextID)
			continue
		}
		if err != nil {
			err = health.RAProblem(health.ErrRARevoked, fmt.Errorf("the SCEP RA certificate %s is revoked and could not be replaced: %w", serial, err))
			k.log.Error(err.Error())
			if ra == active {
				problems = append(problems, err)
			}
			continue
		}
		k.log.Warn("the revoked SCEP RA was replaced with a new key and certificate; clients fetch it with GetCACert",
			"revoked_serial", serial, "serial", pki.SerialText(replacement.Cert.SerialNumber),
			"not_after", replacement.Cert.NotAfter.UTC().Format("2006-01-02T15:04:05Z"))
	}
	k.mu.Lock()
	k.problem = errors.Join(problems...)
	k.mu.Unlock()
	k.findLacked(ctx)
}

// keptRAs are the RAs whose keys this node keeps: those that decrypt
// (RAs) and, besides, the previous and retired ones RAs leaves out because
// the root CRL lists their issuing CA. Those decrypt nothing, but their
// keys are on disk all the same, and must be destroyed once their
// certificates are revoked (dropRevokedRetired).
func (k *raKeeper) keptRAs() []*pki.RA {
	out := k.authority.RAs()
	for _, ra := range slices.Concat(k.authority.RetiredRAs(), k.authority.PreviousRAs()) {
		if !slices.ContainsFunc(out, func(r *pki.RA) bool { return r.Cert.Equal(ra.Cert) }) {
			out = append(out, ra)
		}
	}
	return out
}

// lackedRA is an RA certificate that `scepter ca renew-ra` made on another
// node for this node's issuing CA, which this node lacks.
type lackedRA struct {
	cert *x509.Certificate
	// by and at: the renewal's audit event (its actor names the node).
	by string
	at time.Time
	// onDisk: its certificate is in this node's DATA/ca already, which
	// the next CA reload loads (this node renewed it a moment ago).
	onDisk bool
}

// findLacked looks in the store for the RA certificates renewed on
// another node that this node lacks (renewedRAsLacked) and logs the newest
// once. A store that cannot be read leaves what the last check found.
func (k *raKeeper) findLacked(ctx context.Context) {
	if k.discards == nil {
		return
	}
	found, err := renewedRAsLacked(ctx, k.discards, k.authority, k.caDir, k.clock.Now())
	if err != nil {
		k.log.Warn("looking in the store for SCEP RAs renewed on another node", "err", err)
		return
	}
	k.lacked.Store(&found)
	if len(found) > 0 && !found[0].onDisk {
		k.logOnce(&pki.RA{Cert: found[0].cert}, func() { k.log.Warn(k.lackedProblem(found[0]).Error()) })
	}
}

// raRenewals is what renewedRAsLacked reads of the store (store.Store
// does): the RA certificates in the inventory and their renewals.
type raRenewals interface {
	ListCertificates(ctx context.Context, f store.CertFilter) ([]pki.Certificate, string, error)
	ListAudit(ctx context.Context, f store.AuditFilter) ([]pki.AuditEvent, error)
}

// renewedRAsLacked are the RA certificates that st records as renewed
// (`ca renew-ra`, audited as certificate.renewed) for a's active issuing
// CA, valid from a's active RA's start or later, unrevoked and unexpired
// at now, that a does not hold (holdsRA), newest first: RAs renewed on
// another node, whose keys this node lacks. An RA another node made for itself to replace a
// revoked one is not renewed: nodes make their own. caDir is a's
// directory, to say which are there already (onDisk: renewed here a
// moment ago, and not loaded yet). None in RA mode ca.
func renewedRAsLacked(ctx context.Context, st raRenewals, a *ca.Authority, caDir string, now time.Time) ([]lackedRA, error) {
	_, active := a.Active(now)
	if active == nil || active.IsCA {
		return nil, nil
	}
	issuerID := raIssuerID(active)
	recs, _, err := st.ListCertificates(ctx, store.CertFilter{IssuerID: issuerID, Profile: enroll.RAProfileName,
		Status: pki.StatusValid, NotAfterAfter: now, Limit: 100})
	if err != nil {
		return nil, fmt.Errorf("reading the SCEP RA certificates recorded in the store: %w", err)
	}
	var found []lackedRA
	for _, rec := range recs {
		cert, err := x509.ParseCertificate(rec.DER)
		// Not before the active RA: one renewed in the second the active
		// RA was made (a new CA's, say) starts with it, and counts.
		if err != nil || cert.NotBefore.Before(active.Cert.NotBefore) || holdsRA(a, cert) {
			continue
		}
		events, err := st.ListAudit(ctx, store.AuditFilter{Type: pki.EventRenewed, SerialHex: rec.SerialHex, Limit: 10})
		if err != nil {
			return nil, fmt.Errorf("reading the SCEP RA renewals recorded in the store: %w", err)
		}
		i := slices.IndexFunc(events, func(ev pki.AuditEvent) bool {
			return ev.Profile == enroll.RAProfileName && ev.IssuerID == issuerID
		})
		if i < 0 {
			continue
		}
		dir, err := ca.RADirOf(caDir, cert)
		found = append(found, lackedRA{cert: cert, by: events[i].Actor, at: events[i].Time, onDisk: err == nil && dir != ""})
	}
	slices.SortFunc(found, func(a, b lackedRA) int {
		if c := b.cert.NotBefore.Compare(a.cert.NotBefore); c != 0 {
			return c
		}
		return b.at.Compare(a.at)
	})
	return found, nil
}

// holds: cert is one of the RAs this node has loaded (retired ones too).
func (k *raKeeper) holds(cert *x509.Certificate) bool { return holdsRA(k.authority, cert) }

// holdsRA: cert is one of the RAs a has loaded (retired ones too).
func holdsRA(a *ca.Authority, cert *x509.Certificate) bool {
	has := func(ra *pki.RA) bool { return ra != nil && ra.Cert.Equal(cert) }
	return slices.ContainsFunc(a.RAs(), has) || slices.ContainsFunc(a.RetiredRAs(), has)
}

// lackedProblem says that this node lacks l and what to copy.
func (k *raKeeper) lackedProblem(l lackedRA) error {
	return health.RAProblem(health.ErrRALacked, fmt.Errorf("the store records SCEP RA certificate %s, renewed at %s by %s, and this node lacks its key: "+
		"requests encrypted to it are answered 503 here until you bring it from the node that renewed it: %s",
		pki.SerialText(l.cert.SerialNumber), l.at.UTC().Format(time.RFC3339), l.by, howToBringRA(k.authority)))
}

// howToBringRA says how a node whose CA is a brings an RA renewed on
// another node: export-keys and import-keys, or with the keys in a token
// a copy of the reference, the certificate and the retired RAs.
func howToBringRA(a *ca.Authority) string {
	if a.Token() != nil || a.KeysInToken() {
		return "copy DATA/ca/ra.pkcs11, then ra.crt, and DATA/ca/retired-ra/ from there (the key is in the token)"
	}
	return "run 'scepter ca export-keys' there and 'scepter ca import-keys' here"
}

// lackedRAs are the RA certificates renewed on another node whose keys
// this node lacks, as the last check found them (the SCEP handler answers
// a request encrypted to one 503, not a FAILURE).
func (k *raKeeper) lackedRAs() []*x509.Certificate {
	p := k.lacked.Load()
	if p == nil {
		return nil
	}
	out := make([]*x509.Certificate, 0, len(*p))
	for _, l := range *p {
		if !k.holds(l.cert) {
			out = append(out, l.cert)
		}
	}
	return out
}

// lackedRecheckEvery is the least time between two reads of the lacked
// RAs made for requests (recheckLacked): a flood of requests to an unknown
// RA does not become a flood of store reads.
const lackedRecheckEvery = 5 * time.Second

// lackedRecheckTimeout bounds one such read, which requests share.
const lackedRecheckTimeout = 10 * time.Second

// recheckLacked reads the store again for RAs renewed on another node
// that this node lacks, without waiting for the next check (up to a
// minute), and returns them as lackedRAs does. A request encrypted to an
// RA renewed a moment ago then gets 503, not a FAILURE the device takes as
// final. At most one read per lackedRecheckEvery (the recheck cache's one
// entry): callers meanwhile get what the last one found, and callers
// during a read wait for it.
func (k *raKeeper) recheckLacked(ctx context.Context) []*x509.Certificate {
	now := k.clock.Now()
	_, _ = k.recheck.Load(struct{}{}, now, func() (struct{}, time.Time, error) {
		// Shared by the callers waiting: not cut short by the first one
		// leaving.
		readCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lackedRecheckTimeout)
		defer cancel()
		k.findLacked(readCtx)
		return struct{}{}, now.Add(lackedRecheckEvery), nil
	})
	return k.lackedRAs()
}

// lackedNow is why this node is not ready for lack of the newest RA
// renewed on another node; nil when it lacks none, or has loaded it since
// the last check.
func (k *raKeeper) lackedNow() error {
	p := k.lacked.Load()
	if p == nil || len(*p) == 0 || (*p)[0].onDisk || k.holds((*p)[0].cert) {
		return nil
	}
	return k.lackedProblem((*p)[0])
}

// nextIssuerID is the ID of the next issuing CA loaded; "" for none.
func (k *raKeeper) nextIssuerID() string {
	if iss, _, ok := k.authority.Next(k.clock.Now()); ok {
		return iss.ID
	}
	return ""
}

// nextDiscarded says whether the store records the next issuing CA id as
// discarded; false when the keeper has no store to ask.
func (k *raKeeper) nextDiscarded(ctx context.Context, id string) (bool, error) {
	if k.discards == nil || id == "" {
		return false, nil
	}
	ds, err := k.discards.DiscardedCAGenerations(ctx)
	if err != nil {
		return false, fmt.Errorf("reading the discarded CAs recorded in the store: %w", err)
	}
	return slices.ContainsFunc(ds, func(d store.DiscardedCAGeneration) bool { return d.IssuerID == id }), nil
}

// errNextGone: the next CA whose RA was to be replaced is no longer loaded
// after the reload (discarded), so neither is its RA.
var errNextGone = errors.New("the next CA is gone")

// dropRevokedRetired destroys the keys of retired RAs (kept after a
// renewal to decrypt for clients that cached them) and of previous issuing
// CAs' RAs (kept after a rollover) whose certificates are revoked, or
// whose issuing CA the root CRL lists: they no longer decrypt, and a compromised key must not stay on disk, in a token
// or in export-keys until the certificate's end. A failure is logged and
// tried again at the next check.
func (k *raKeeper) dropRevokedRetired(revoked map[string]bool) {
	type kept struct {
		ra        *pki.RA
		what, dir string
		drop      func(*x509.Certificate, time.Time) (bool, string, error)
		// caRevoked: the root CRL lists the RA's issuing CA.
		caRevoked bool
	}
	rootRevoked := k.authority.RevokedIssuers()
	var all []kept
	for _, ra := range k.authority.RetiredRAs() {
		all = append(all, kept{ra, "retired SCEP RA", filepath.Join(k.caDir, ca.RetiredRADir, ra.Cert.SerialNumber.Text(16)), k.authority.DropRetiredRA, false})
	}
	for _, ra := range k.authority.PreviousRAs() {
		// An issuing CA that is its own RA keeps its key: it signs
		// the CRLs of what it issued.
		// Nor is an RA whose CA the root CRL lists kept: it decrypts
		// nothing more, and a root CRL lists a CA for good ('ca root
		// crl' carries every entry on and takes no certificateHold).
		if !ra.IsCA {
			id := raIssuerID(ra)
			all = append(all, kept{ra, "SCEP RA of the previous issuing CA", filepath.Join(k.caDir, ca.PreviousDir, id), k.authority.DropPreviousRA,
				slices.Contains(rootRevoked, id)})
		}
	}
	for _, c := range all {
		ra := c.ra
		why := "certificate is revoked"
		switch {
		case revoked[string(ra.Cert.Raw)]:
		case c.caRevoked:
			why = "is kept no more: the root CRL lists that CA"
		default:
			continue
		}
		serial := pki.SerialText(ra.Cert.SerialNumber)
		dropped, key, err := c.drop(ra.Cert, k.clock.Now())
		if key != "" {
			d := pki.KeyDestruction{Role: pki.KeyRoleSCEPRA, IssuerID: raIssuerID(ra), Where: key, Public: ra.Cert.PublicKey}
			if !dropped {
				d.Err = err
			}
			k.recordDestruction(d, serial)
		}
		switch {
		case err != nil:
			k.log.Error("the "+c.what+" "+why+", but its key could not be destroyed; it no longer decrypts", "serial", serial, "err", err)
		case dropped:
			k.log.Warn("the "+c.what+" "+why+"; its key was destroyed", "serial", serial, "dir", c.dir)
		}
	}
}

// recordDestruction writes d, an RA key destroyed (or not), to the
// audit trail. A failure to destroy one is recorded once per RA (the
// check tries again every minute), and a write that fails undoes nothing:
// it is logged.
func (k *raKeeper) recordDestruction(d pki.KeyDestruction, serial string) {
	if k.discards == nil {
		return
	}
	if d.Err != nil {
		k.mu.Lock()
		seen := k.failedDestroy[serial]
		k.failedDestroy[serial] = true
		k.mu.Unlock()
		if seen {
			return
		}
	}
	// Not the check's context: a key destroyed is recorded even if the
	// server is stopping.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := k.discards.AppendAudit(ctx, d.Event(k.clock.Now(), "system:"+k.node)); err != nil {
		k.log.Error("the retired SCEP RA key's destruction could not be written to the audit trail", "serial", serial, "key", d.Where, "err", err)
	}
}

// raIssuerID is the ID of the issuing CA that issued ra's certificate
// (the chain's second certificate), "" when the chain lacks it.
func raIssuerID(ra *pki.RA) string {
	if len(ra.Chain) < 2 {
		return ""
	}
	return issuerIDOf(ra.Chain[1])
}

// gated is why this node issues nothing now (gate), nil when it may.
func (k *raKeeper) gated() error {
	if k.gate == nil {
		return nil
	}
	return k.gate()
}

func (k *raKeeper) logOnce(ra *pki.RA, log func()) { k.logOnceFor(string(ra.Cert.Raw), log) }

// logOnceFor calls log the first time it is called with key.
func (k *raKeeper) logOnceFor(key string, log func()) {
	k.mu.Lock()
	seen := k.logged[key]
	k.logged[key] = true
	k.mu.Unlock()
	if !seen {
		log()
	}
}

// replace destroys the revoked RA's key (recorded as a key.destroyed
// event) and removes its certificate from the CA directory it was loaded
// from (the current generation's or the next one's), then reloads the CA,
// which issues a new RA key and certificate there as at the first start
// (ca.Authority.ReplaceRA, under the reload lock: the periodic reload
// never finds the certificate without its key), and records the new
// certificate in the inventory. role is the RA in the revoked one's place
// (the active or the next); nextID is the next CA whose RA it is ("" for
// the active), and errNextGone says that the reload no longer holds that
// CA as the next one.
func (k *raKeeper) replace(ctx context.Context, revoked *pki.RA, role func() *pki.RA, nextID string) (*pki.RA, error) {
	destroyed, where, err := k.replaceRA(revoked.Cert, k.clock.Now())
	// Recorded after the reload lock is let go: the audit trail may be slow.
	if where != "" {
		d := pki.KeyDestruction{Role: pki.KeyRoleSCEPRA, IssuerID: raIssuerID(revoked), Where: where, Public: revoked.Cert.PublicKey}
		if !destroyed {
			d.Err = err
		}
		k.recordDestruction(d, pki.SerialText(revoked.Cert.SerialNumber))
	}
	if err != nil {
		return nil, err
	}
	if nextID != "" && k.nextIssuerID() != nextID {
		return nil, errNextGone
	}
	replacement := role()
	if replacement == nil || replacement.Cert.Equal(revoked.Cert) || pki.SamePublicKey(replacement.Cert.PublicKey, revoked.Cert.PublicKey) {
		return nil, errors.New("the reloaded CA still holds the revoked RA")
	}
	if err := k.inventory.RecordRAReplacement(ctx, revoked, replacement, "system:"+k.node); err != nil {
		// The new RA serves already, its serial reserved (serve's
		// raSerialReserve); RecordRACertificates records it at the next
		// reload.
		k.log.Warn("recording the new SCEP RA certificate in the inventory", "err", err)
	}
	return replacement, nil
}

// serialReserver is the store's serial registry; store.Store is one.
type serialReserver interface {
	ReserveSerial(ctx context.Context, issuerID, serialHex string, tbs []byte, at time.Time) error
}

// raSerialReserve is the CA's reservation for the RA certificates it
// issues: a new CA's at the first start (ca.InitOptions.ReserveRA), a
// rollover's next RA, a renewed RA, and a revoked RA's replacement at a
// reload (ca.Authority.SetRAReserve). Each has its serial reserved in st,
// with its TBS, before the CA key signs it, as an enrollment's has, so
// that one whose record then fails (RecordRACertificates,
// RecordRAReplacement) is still known to the store, and a store that
// cannot reserve it leaves it unsigned. A taken serial is drawn again.
func raSerialReserve(st serialReserver, clock pki.Clock) ca.ReserveFunc {
	return func(ctx context.Context, issuerID, serialHex string, tbs []byte) (bool, error) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		err := st.ReserveSerial(ctx, issuerID, serialHex, tbs, clock.Now())
		if errors.Is(err, store.ErrConflict) {
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("reserving the new SCEP RA certificate's serial %s in the store: %w", pki.ShownSerial(serialHex), err)
		}
		return false, nil
	}
}

// raRecorder is serve's RecordRACertificates, at start and at every CA
// reload (and, made with newOwnCertRecorder, the recording of the OCSP
// responder and HTTPS certificates in use: recordServerCertificates).
// While this node's issuance is gated (the store's schema is newer
// than this binary's: migrate.ErrDatabaseTooNew), a certificate it
// has not recorded yet (one from before, on this node's disk) cannot be
// until the node is upgraded, and every reload would say so again: that
// refusal is logged once per certificate, by its message, which names the
// serial (and the schema versions, so a newer schema is said again). Any
// other failure is logged each time, as each reload tries again. Used by
// one goroutine at a time (the start, then the reload loop).
type raRecorder struct {
	record func(context.Context) error // enroll.Service.RecordRACertificates
	// what is recorded, for the log ("the SCEP RA certificates").
	what string
	log  *slog.Logger
	// gatedLogged: the gated refusals logged, by message.
	gatedLogged map[string]bool
}

func newRARecorder(record func(context.Context) error, log *slog.Logger) *raRecorder {
	return &raRecorder{record: record, what: "the SCEP RA certificates", log: log, gatedLogged: map[string]bool{}}
}

// newOwnCertRecorder is a raRecorder of the server's other own
// certificates: the OCSP responders' and the HTTPS certificate in use.
func newOwnCertRecorder(record func(context.Context) error, log *slog.Logger) *raRecorder {
	r := newRARecorder(record, log)
	r.what = "the OCSP responder and HTTPS certificates"
	return r
}

// run records the certificates not recorded yet, and logs a failure.
func (r *raRecorder) run(ctx context.Context) {
	err := r.record(ctx)
	switch {
	case err == nil:
		// All recorded: a refusal after a later gating is said again.
		clear(r.gatedLogged)
	case errors.Is(err, migrate.ErrDatabaseTooNew):
		if r.gatedLogged[err.Error()] {
			return
		}
		r.gatedLogged[err.Error()] = true
		r.log.Warn("recording "+r.what+" in the inventory: refused while the store's schema is newer than this scepter; "+
			"recorded once this node is upgraded (logged once per certificate)", "err", err)
	default:
		r.log.Warn("recording "+r.what+" in the inventory", "err", err)
	}
}

// RAUsable is the RA part of /readyz (health.RAStatus): an RA whose
// certificate is revoked fails it until it is replaced. It asks the
// inventory itself, so /readyz fails from the revocation on, not only
// from the next check.
func (k *raKeeper) RAUsable(ctx context.Context, ra *pki.RA) error {
	k.mu.Lock()
	problem := k.problem
	k.mu.Unlock()
	known := k.isRevoked(ra)
	if problem != nil {
		return problem
	}
	if err := k.lackedNow(); err != nil {
		return err
	}
	revoked, err := k.inventory.RARevoked(ctx, ra)
	if err != nil {
		return err
	}
	if revoked || known {
		return health.RAProblem(health.ErrRARevoked, fmt.Errorf("the RA certificate %s is revoked; a new one is issued within a minute", pki.SerialText(ra.Cert.SerialNumber)))
	}
	return nil
}

// usable returns ra, or, when its certificate is revoked, a copy whose key
// refuses to decrypt.
func (k *raKeeper) usable(ra *pki.RA) *pki.RA {
	if ra == nil {
		return nil
	}
	if !k.isRevoked(ra) {
		return ra
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if r, ok := k.refusing[ra]; ok {
		return r
	}
	r := *ra
	r.Key = revokedRAKey{Signer: ra.Key, serial: pki.SerialText(ra.Cert.SerialNumber)}
	k.refusing[ra] = &r
	return &r
}

// notRevoked are the RAs of ras whose certificates are not revoked.
func (k *raKeeper) notRevoked(ras []*pki.RA) []*pki.RA {
	if len(*k.revoked.Load()) == 0 {
		return ras
	}
	out := make([]*pki.RA, 0, len(ras))
	for _, ra := range ras {
		if !k.isRevoked(ra) {
			out = append(out, ra)
		}
	}
	return out
}

// revokedRAKey is a revoked RA's key: it signs (a FAILURE reply still
// needs a signature) but no longer decrypts.
type revokedRAKey struct {
	crypto.Signer
	serial string
}

func (k revokedRAKey) Decrypt(io.Reader, []byte, crypto.DecrypterOpts) ([]byte, error) {
	return nil, fmt.Errorf("the RA certificate %s is revoked: its key no longer decrypts", k.serial)
}

// scepService is the enrollment service as the SCEP handler sees it: no
// RA whose certificate is revoked decrypts a request. An envelope
// addressed to one is refused (badMessageCheck) like any other that the
// server cannot open.
//
// A next CA that the store schedules but this node lacks (its keys not
// imported yet) is still announced by GetCACaps and served by
// GetNextCACert, from the store (lackedNext), so that nodes behind a load
// balancer do not contradict one another about a rollover.
type scepService struct {
	*enroll.Service
	ras        *raKeeper
	lackedNext func(now time.Time) (*pki.RA, bool)
	clock      pki.Clock
}

func (s scepService) ActiveRA() *pki.RA { return s.ras.usable(s.Service.ActiveRA()) }

func (s scepService) NextRA() (*pki.RA, bool) {
	ra, ok := s.Service.NextRA()
	if !ok && s.lackedNext != nil {
		// Certificates only: GetNextCACert is signed by the active RA.
		return s.lackedNext(s.clock.Now())
	}
	return s.ras.usable(ra), ok
}

func (s scepService) RAs() []*pki.RA { return s.ras.notRevoked(s.Service.RAs()) }

// LackedRAs implements scepserver.RALacker.
func (s scepService) LackedRAs() []*x509.Certificate { return s.ras.lackedRAs() }

// RecheckLackedRAs implements scepserver.RALackRechecker.
func (s scepService) RecheckLackedRAs(ctx context.Context) []*x509.Certificate {
	return s.ras.recheckLacked(ctx)
}

// estService is the enrollment service as the EST handler sees it: while
// the store schedules a next CA that this node lacks (its keys not
// imported yet), /cacerts carries that next issuing CA all the same, from
// the store (lackedNext), as GetNextCACert does (scepService), so that
// behind a load balancer every node hands EST clients one trust set.
type estService struct {
	*enroll.Service
	lackedNext func(now time.Time) (*x509.Certificate, bool)
	clock      pki.Clock
}

func (s estService) CACerts(profile string) ([]*x509.Certificate, error) {
	certs, err := s.Service.CACerts(profile)
	if err != nil || s.lackedNext == nil {
		return certs, err
	}
	// A profile pinned to one issuing CA does not follow a rollover.
	if p, _ := s.Profile(profile); p.Issuer != "" {
		return certs, nil
	}
	next, ok := s.lackedNext(s.clock.Now())
	if !ok || slices.ContainsFunc(certs, next.Equal) {
		return certs, nil
	}
	return append(certs, next), nil
}
