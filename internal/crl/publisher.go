// Package crl publishes a signed CRL per issuing CA (current, next and
// previous alike) and serves it, with the CA certificates, to relying
// parties. CRLs live in the store, so every node serves the newest one.
//
// Every node runs a Publisher. Once a second it reads the store's
// revocation counters (one small row per issuer) and each issuer's newest
// CRL, which it serves when that is numbered above the one it holds. An
// issuer whose counter moved past the one its newest CRL reflects, or
// whose CRL is halfway to its nextUpdate, gets a new CRL numbered one
// above the newest in the store, or above the highest this node published
// (Numbers) when that is higher: a store restored from an older copy must
// not make it publish a number again. Two nodes building the same
// generation race for the number; the loser takes the winner's.
package crl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/big"
	"slices"
	"sync"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/health"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// Defaults of Config.
const (
	DefaultValidity = 24 * time.Hour
	DefaultInterval = time.Second
	// MinValidity is the shortest validity `serve --crl-validity` takes:
	// a CRL is replaced every half of it, and each replacement is a new
	// number stored and recorded on every node's disk.
	MinValidity = 10 * time.Minute
	// keepGenerations is how many older CRLs the store keeps per issuer.
	keepGenerations = 10
	// maxClockLead is how far ahead of this node's clock the newest CRL's
	// thisUpdate may be for a new CRL to wait until it is passed; a CRL
	// further ahead means this clock was set back, and waiting for it
	// would leave revocations unpublished.
	maxClockLead = 5 * time.Second
	// backdate is how much earlier than its publication a CRL's
	// thisUpdate is (less when it lists a revocation made since): a relying
	// party whose clock is a little behind ours would otherwise find a
	// fresh CRL not yet valid and reject it.
	backdate = time.Minute
)

// Config tunes a Publisher.
type Config struct {
	// Validity is nextUpdate − publication (thisUpdate is backdated a
	// minute before the publication). A CRL is replaced when half of it
	// has passed, or at once after a revocation.
	Validity time.Duration
	// Interval is how often the store's revocation counters are read.
	Interval time.Duration
	// OnState, when set, receives the counters after every read (the
	// OCSP responder drops cached answers with them).
	OnState func(map[string]int64)
	// Numbers, when set, records the highest CRL number this node has
	// published, per issuer, before it serves the CRL; new CRLs are
	// numbered above it.
	Numbers *Numbers
}

// Store is what the publisher needs of the store.
type Store interface {
	RevocationState(ctx context.Context) (map[string]int64, error)
	RevokedCertificates(ctx context.Context, issuerID string, notAfterAfter time.Time) ([]store.RevokedEntry, error)
	LastUnhold(ctx context.Context, issuerID string) (time.Time, error)
	LatestCRL(ctx context.Context, issuerID string) (*store.CRL, error)
	LatestCRLNumber(ctx context.Context, issuerID string) (int64, error)
	PutCRL(ctx context.Context, crl store.CRL, keep int) error
	// DiscardedCAGenerations is read only when an issuer's key is gone
	// from its token (see discarded).
	DiscardedCAGenerations(ctx context.Context) ([]store.DiscardedCAGeneration, error)
}

// Issuers lists the issuing CAs; *ca.Authority is one.
type Issuers interface {
	Issuers() []*ca.Issuer
}

// Publisher keeps every issuer's CRL current. Safe for concurrent use.
type Publisher struct {
	st      Store
	issuers Issuers
	clock   pki.Clock
	log     *slog.Logger
	cfg     Config
	kick    chan struct{}

	mu      sync.RWMutex
	current map[string]*store.CRL
	// heldBack are, by issuer, CRLs newer than the one held that this
	// node may not serve: their number could not be recorded in
	// cfg.Numbers (a full disk). Written with run held too.
	heldBack map[string]heldBackCRL
	run      sync.Mutex // one Update at a time
	// marks caches cfg.Numbers, by issuer; guarded by run.
	marks map[string]int64
	// discarded are the issuers whose generation the store records as
	// discarded and whose key is gone (see discarded): no CRL is signed
	// for them any more. Guarded by run.
	discarded map[string]bool
}

// New builds a publisher; Run (or Update) does the work.
func New(st Store, issuers Issuers, clock pki.Clock, log *slog.Logger, cfg Config) *Publisher {
	if cfg.Validity <= 0 {
		cfg.Validity = DefaultValidity
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Publisher{st: st, issuers: issuers, clock: clock, log: log, cfg: cfg, kick: make(chan struct{}, 1),
		current: map[string]*store.CRL{}, heldBack: map[string]heldBackCRL{}, marks: map[string]int64{}, discarded: map[string]bool{}}
}

// heldBackCRL is a CRL this node may not serve yet, and why.
type heldBackCRL struct {
	number int64
	err    error
}

// Run updates at once, then every Interval and whenever Kick is called,
// until ctx ends.
func (p *Publisher) Run(ctx context.Context) {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		// A CRL held back was logged at ERROR when that began (see
		// holdBack): not again every second.
		if err := withoutLogged(p.Update(ctx)); err != nil && ctx.Err() == nil {
			p.log.Warn("CRL update", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.kick:
		}
	}
}

// Kick asks Run for an update now (after a revocation made here).
func (p *Publisher) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Update reads the revocation counters and replaces every CRL that is
// stale, missing or halfway to its nextUpdate. Errors of one issuer do not
// stop the others; they are returned joined.
func (p *Publisher) Update(ctx context.Context) error {
	p.run.Lock()
	defer p.run.Unlock()
	state, err := p.st.RevocationState(ctx)
	if err != nil {
		return fmt.Errorf("crl: %w", err)
	}
	if p.cfg.OnState != nil {
		p.cfg.OnState(state)
	}
	now := p.clock.Now()
	issuers := p.issuers.Issuers()
	p.forgetHeldBack(issuers)
	maps.DeleteFunc(p.discarded, func(id string, _ bool) bool {
		return !slices.ContainsFunc(issuers, func(i *ca.Issuer) bool { return i.ID == id })
	})
	var errs []error
	for _, issuer := range issuers {
		if p.discarded[issuer.ID] {
			continue // until the CA reload drops it
		}
		err := p.updateIssuer(ctx, issuer, state[issuer.ID], now)
		if err != nil && p.isDiscarded(ctx, issuer, err) {
			err = nil
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// isDiscarded reports whether issuer, whose CRL could not be signed (err),
// is a generation that the store records as discarded and whose key its
// token no longer holds: `scepter ca rollover --discard` on one node
// destroys the next CA's keys in the token every node shares, and the
// others hold that CA until their next CA reload (up to
// --ca-reload-interval), meanwhile failing to sign its CRL at every
// update. It is then left aside, with one line said. The discards are read
// only after such a failure.
func (p *Publisher) isDiscarded(ctx context.Context, issuer *ca.Issuer, err error) bool {
	if !errors.Is(err, keys.ErrKeyNotFound) {
		return false
	}
	list, lerr := p.st.DiscardedCAGenerations(ctx)
	if lerr != nil || !slices.ContainsFunc(list, func(g store.DiscardedCAGeneration) bool { return g.IssuerID == issuer.ID }) {
		return false
	}
	p.discarded[issuer.ID] = true
	p.log.Info("no CRL is published for a discarded issuing CA, whose key is gone from the token; this node stops serving it at its next CA reload",
		"issuer", issuer.Cert.Subject.String(), "issuer_id", issuer.ID)
	return true
}

func (p *Publisher) updateIssuer(ctx context.Context, issuer *ca.Issuer, seq int64, now time.Time) error {
	// The store's newest CRL is read at every update, not only when none
	// is held: another node may have published one numbered above the one
	// served here without any revocation (its half-validity refresh, or a
	// number above its own mark after a restore), and a node that kept
	// its older one would serve numbers going backwards behind a balancer.
	// The number alone is read first: the whole CRL (megabytes for a
	// large one) only when it is newer than the one held.
	cur := p.get(issuer.ID)
	newer := cur == nil
	if !newer {
		switch n, err := p.st.LatestCRLNumber(ctx, issuer.ID); {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return fmt.Errorf("crl: %s: %w", issuer.ID, err)
		default:
			newer = n > cur.Number
		}
	}
	if newer {
		switch c, err := p.st.LatestCRL(ctx, issuer.ID); {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return fmt.Errorf("crl: %s: %w", issuer.ID, err)
		case cur == nil || c.Number > cur.Number:
			cur = c
			if err := p.publish(c); err != nil {
				return err
			}
		}
	}
	mark, err := p.mark(issuer.ID)
	if err != nil {
		return err
	}
	// A store whose newest CRL is older than one this node published was
	// restored from an older copy: a CRL numbered above the mark replaces
	// it at once, whatever its age.
	behind := cur == nil && mark > 0 || cur != nil && cur.Number < mark
	// An issuer outside its validity signs nothing; its last CRL is still
	// served.
	if now.Before(issuer.Cert.NotBefore) || !now.Before(issuer.Cert.NotAfter) {
		return nil
	}
	if cur != nil && !behind && seq <= cur.RevocationSeq && now.Before(refreshAt(cur, p.cfg.Validity)) &&
		now.Before(cur.NextUpdate) && !now.Before(cur.ThisUpdate) {
		return nil
	}
	// Each CRL's thisUpdate, which is also its Last-Modified, must be
	// later than its predecessor's: a mirror or proxy that revalidates
	// with If-Modified-Since tells its clients 304 for a CRL no newer than
	// its copy (this server never answers 304 to it: writeCRL), and would
	// keep one that lacks the latest revocation. thisUpdate is
	// backdated, so a successor takes the second after its predecessor's
	// when that is not in the future (thisUpdate); a CRL that cannot (a
	// predecessor of this very second, or from another node whose clock
	// runs a little ahead) waits for the next update instead.
	if cur != nil && !now.UTC().Truncate(time.Second).After(cur.ThisUpdate) &&
		cur.ThisUpdate.Sub(now) < maxClockLead {
		return nil
	}
	stored := int64(0)
	if cur != nil {
		stored = cur.Number
	}
	next, err := nextNumber(mark, stored)
	if err != nil {
		return fmt.Errorf("crl: %s: %w", issuer.ID, err)
	}
	if behind {
		p.log.Warn("the store's newest CRL is older than one this node published: the next is numbered above it",
			"issuer", issuer.Cert.Subject.String(), "stored", stored, "published", mark, "number", next)
	}
	c, err := p.build(ctx, issuer, cur, next, seq, now)
	if errors.Is(err, errRevocationAhead) {
		return nil // the next update, a second on, publishes it
	}
	if err != nil {
		return err
	}
	err = p.st.PutCRL(ctx, *c, keepGenerations)
	if errors.Is(err, store.ErrConflict) {
		// Another node published this generation (or a later one) first:
		// serve the newest, and look again at the next update.
		latest, lerr := p.st.LatestCRL(ctx, issuer.ID)
		if lerr != nil {
			return fmt.Errorf("crl: %s: %w", issuer.ID, lerr)
		}
		return p.publish(latest)
	}
	if err != nil {
		return fmt.Errorf("crl: %s: %w", issuer.ID, err)
	}
	if err := p.publish(c); err != nil {
		// Stored, but not served here until its number is recorded: a
		// later update retries (another node may serve it meanwhile).
		return err
	}
	p.log.Info("CRL published", "issuer", issuer.Cert.Subject.String(), "number", c.Number, "entries", c.Entries,
		"next_update", c.NextUpdate.UTC().Format(time.RFC3339))
	return nil
}

// refreshAt is when c is halfway to its nextUpdate and is replaced: half
// the validity after its publication, not after its thisUpdate, which is
// backdated (by a minute, replacing it a minute early: at once, every
// update, with a validity of two minutes).
func refreshAt(c *store.CRL, validity time.Duration) time.Time {
	published := c.CreatedAt
	if published.Before(c.ThisUpdate) { // not recorded
		published = c.ThisUpdate
	}
	return published.Add(validity / 2)
}

// build signs CRL number n of an issuer, the successor of prev (nil for the
// first): its revoked certificates, less those expired long enough ago (see
// listedFrom).
func (p *Publisher) build(ctx context.Context, issuer *ca.Issuer, prev *store.CRL, n, seq int64, now time.Time) (*store.CRL, error) {
	published := now.UTC().Truncate(time.Second)
	// Certificates end on a whole second: one ending at the cut-off itself
	// stays.
	revoked, err := p.st.RevokedCertificates(ctx, issuer.ID, listedFrom(published, prev, p.cfg.Validity).Add(-time.Second))
	if err != nil {
		return nil, fmt.Errorf("crl: %s: %w", issuer.ID, err)
	}
	// A hold lifted drops its entry: a CRL without it must not be dated
	// before the unhold either, when it would say the certificate was not
	// revoked while it was held (and, older than the CRL that listed the
	// hold, be kept over it by a cache keeping the newest).
	unheld, err := p.st.LastUnhold(ctx, issuer.ID)
	if err != nil {
		return nil, fmt.Errorf("crl: %s: %w", issuer.ID, err)
	}
	entries := make([]ca.CRLEntry, 0, len(revoked))
	// newest is the issuer's latest change of revocation status, in whole
	// seconds: a revocationDate as the CRL encodes it, or the second after
	// the last unhold (rounded up: not dated before it).
	newest := pki.CeilSecond(unheld)
	for _, r := range revoked {
		serial, ok := new(big.Int).SetString(r.SerialHex, 16)
		if !ok {
			return nil, fmt.Errorf("crl: %s: stored serial %q is not hex", issuer.ID, r.SerialHex)
		}
		entries = append(entries, ca.CRLEntry{Serial: serial, RevokedAt: r.RevokedAt, Reason: r.Reason})
		if at := r.RevokedAt.UTC().Truncate(time.Second); at.After(newest) {
			newest = at
		}
	}
	// A revocation or unhold recorded a moment ahead of this clock (by a
	// node whose clock runs a little ahead, or an unhold within this
	// second) waits for it, as a predecessor ahead does: the CRL's
	// thisUpdate may be neither before it nor in the future.
	if lead := newest.Sub(published); lead > 0 && lead < maxClockLead {
		return nil, errRevocationAhead
	}
	// No later than the issuer's end, after which it signs no CRL: a
	// nextUpdate past it would promise one that never comes.
	next := published.Add(p.cfg.Validity)
	if end := issuer.Cert.NotAfter.UTC().Truncate(time.Second); end.Before(next) && end.After(published) {
		next = end
	}
	c := ca.CRL{Number: n, ThisUpdate: thisUpdate(published, prev, issuer.Cert.NotBefore, newest),
		NextUpdate: next, Entries: entries}
	der, err := issuer.SignCRL(c)
	if err != nil {
		return nil, err
	}
	return &store.CRL{IssuerID: issuer.ID, Number: n, ThisUpdate: c.ThisUpdate, NextUpdate: c.NextUpdate,
		RevocationSeq: seq, Entries: len(entries), DER: der, CreatedAt: now}, nil
}

// listedFrom is the earliest notAfter of a revoked certificate that the
// CRL published at published (whole seconds), the successor of prev (nil
// for the first), lists. RFC 5280 §3.3: an entry leaves a CRL only after
// it appeared on one issued beyond the certificate's validity period, not
// when the certificate expires (a CRL whose backdated thisUpdate is before
// the notAfter would say the certificate was good then). So an entry stays
// until its predecessor's thisUpdate is past the notAfter (that
// predecessor, or an earlier one, listed it after the expiry, however long
// this node was down), and a full validity past it at least: every CRL
// published within one validity of the expiry still lists it, so relying
// parties find it in a scheduled one too, a refresh coming at half of that
// (thisUpdate is never before published − backdate, so the cut-off is at
// or before thisUpdate − validity).
func listedFrom(published time.Time, prev *store.CRL, validity time.Duration) time.Time {
	from := published.Add(-backdate - validity)
	if prev != nil && prev.ThisUpdate.Before(from) {
		from = prev.ThisUpdate
	}
	return from
}

// errRevocationAhead says a CRL waits for the clock to pass the newest
// revocation it would list, or unhold it would reflect.
var errRevocationAhead = errors.New("crl: the newest revocation or unhold is ahead of this clock")

// thisUpdate is the thisUpdate of a CRL published at published (whole
// seconds): backdated, but later than its predecessor's, since CRL numbers
// and thisUpdate move forward together (a predecessor less than a backdate
// old leaves a second after its own), not before the newest revocation it
// lists or unhold it reflects (newestRevocation, whole seconds: a CRL must
// not say it was issued before a change it reports, RFC 5280 §5.1.2.4),
// and not before the
// issuer's certificate. Never after published: only a clock set back
// behind the predecessor or a revocation gives an earlier one; updateIssuer
// publishes then regardless.
func thisUpdate(published time.Time, prev *store.CRL, issuerNotBefore, newestRevocation time.Time) time.Time {
	this := published.Add(-backdate)
	if prev != nil && !this.After(prev.ThisUpdate) && published.After(prev.ThisUpdate) {
		this = prev.ThisUpdate.UTC().Truncate(time.Second).Add(time.Second)
	}
	if newestRevocation.After(this) {
		this = newestRevocation
		if this.After(published) {
			this = published
		}
	}
	if this.Before(issuerNotBefore) {
		this = issuerNotBefore.UTC()
	}
	return this
}

// mark is the highest CRL number this node published for an issuer (0
// without cfg.Numbers). Called with p.run held.
func (p *Publisher) mark(issuerID string) (int64, error) {
	if p.cfg.Numbers == nil {
		return 0, nil
	}
	if m, ok := p.marks[issuerID]; ok {
		return m, nil
	}
	m, err := p.cfg.Numbers.Get(issuerID)
	if err != nil {
		return 0, err
	}
	p.marks[issuerID] = m
	return m, nil
}

// publish records c's number as the highest this node published, when it
// is, and then serves c: a number is recorded before any relying party
// can have seen it. A CRL whose number cannot be recorded is held back,
// and so is the older one held: see holdBack. Called with p.run held.
func (p *Publisher) publish(c *store.CRL) error {
	if err := p.record(c); err != nil {
		return p.holdBack(c, err)
	}
	p.set(c)
	p.released(c)
	return nil
}

// record records c's number when it is the highest published here.
func (p *Publisher) record(c *store.CRL) error {
	m, err := p.mark(c.IssuerID)
	if err != nil {
		return err
	}
	if p.cfg.Numbers != nil && c.Number > m {
		if err := p.cfg.Numbers.Put(c.IssuerID, c.Number); err != nil {
			return err
		}
		p.marks[c.IssuerID] = c.Number
	}
	return nil
}

// holdBack notes that c, which could not be recorded (err), is newer than
// the CRL held: that one lacks what c lists (a revocation made on another
// node, say), so it is not served either until c can be (the handler
// answers 503, ReadinessCheck fails). Serving c unrecorded is no answer:
// a store restored later would have this node publish its number again.
// Logged at ERROR when it begins or another CRL is held back, not at
// every update; the error returned is marked so that Run does not log it
// again.
func (p *Publisher) holdBack(c *store.CRL, err error) error {
	p.mu.Lock()
	held := p.current[c.IssuerID]
	if held != nil && held.Number >= c.Number {
		p.mu.Unlock()
		return err // nothing newer is kept from relying parties
	}
	was, had := p.heldBack[c.IssuerID]
	p.heldBack[c.IssuerID] = heldBackCRL{number: c.Number, err: err}
	p.mu.Unlock()
	// By number: the error's text may differ at each try (a full disk
	// names the temporary file each write made).
	if !had || was.number != c.Number {
		serving := int64(0)
		if held != nil {
			serving = held.Number
		}
		p.log.Error("this node cannot record the number of the store's newest CRL, so it serves no CRL of this CA (its own is older "+
			"and may lack revocations): the CRL URL and GetCRL answer 503 and /readyz fails until it can; "+numbersRemedy(err),
			"issuer_id", c.IssuerID, "number", c.Number, "held", serving, "dir", p.numbersDir(), "err", err)
	}
	return loggedError{err}
}

// numbersRemedy is what to do about err, a failure to record a CRL
// number in the directory the log names: room for a full disk, the
// directory's owner or mode for a refused write, as the cause says.
func numbersRemedy(err error) string {
	switch health.FileWriteCause(err) {
	case "the disk is full", "the disk quota is used up":
		return "make room in the data directory"
	case "permission denied":
		return "let the user the server runs as write the directory (its owner or mode)"
	case "the file system is read-only":
		return "mount the data directory writable"
	case "a file stands where its directory belongs":
		return "move the file that stands where the directory belongs"
	}
	return "see err for why the directory cannot be written"
}

// released ends what holdBack began once c, at least as new as the CRL
// held back, is served.
func (p *Publisher) released(c *store.CRL) {
	p.mu.Lock()
	was, had := p.heldBack[c.IssuerID]
	if had && c.Number >= was.number {
		delete(p.heldBack, c.IssuerID)
	}
	p.mu.Unlock()
	if had && c.Number >= was.number {
		p.log.Info("CRL numbers are recorded again: this node serves the newest CRL of this CA", "issuer_id", c.IssuerID, "number", c.Number)
	}
}

// forgetHeldBack drops what is held back for issuers no longer listed (a
// previous CA gone): nobody asks for their CRL here any more. Called with
// p.run held.
func (p *Publisher) forgetHeldBack(issuers []*ca.Issuer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id := range p.heldBack {
		if !slices.ContainsFunc(issuers, func(i *ca.Issuer) bool { return i.ID == id }) {
			delete(p.heldBack, id)
		}
	}
}

func (p *Publisher) numbersDir() string {
	if p.cfg.Numbers == nil {
		return ""
	}
	return p.cfg.Numbers.Dir()
}

// heldBackError is what a relying party asking for an issuer's CRL is
// told while one is held back: come back later (or ask another node).
func heldBackError(h heldBackCRL) error {
	return &pki.Error{Code: pki.EUnavailable, Err: h.err,
		Message: "this node cannot serve the newest CRL of this CA now (it cannot record its number); try again later"}
}

// ReadinessCheck is the /readyz check "CRL numbers": it fails while a CRL
// is held back because its number cannot be recorded (see holdBack), and
// says why in words that name no file ("cannot record: the disk is
// full"), as the store check does; the log names the directory.
func (p *Publisher) ReadinessCheck() health.Check {
	return health.Check{Name: "CRL numbers", Run: func(context.Context) error {
		err := p.NumbersRecorded()
		if err == nil {
			return nil
		}
		state := "cannot record (the log says why)"
		if cause := health.FileWriteCause(err); cause != "" {
			state = "cannot record: " + cause + " (the log names the directory)"
		}
		return &health.Shown{Name: "CRL numbers", State: state, Err: err}
	}}
}

// NumbersRecorded says, for each issuer whose newest CRL this node holds
// back, why: nil when there is none.
func (p *Publisher) NumbersRecorded() error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	ids := make([]string, 0, len(p.heldBack))
	for id := range p.heldBack {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var errs []error
	for _, id := range ids {
		h := p.heldBack[id]
		errs = append(errs, fmt.Errorf("CRL numbers cannot be recorded in %s: CRL %d of issuer %s is not served here, nor any older one: %w",
			p.numbersDir(), h.number, id, h.err))
	}
	return errors.Join(errs...)
}

// loggedError is an error logged already when it arose.
type loggedError struct{ err error }

func (e loggedError) Error() string { return e.err.Error() }
func (e loggedError) Unwrap() error { return e.err }

// withoutLogged is err without the loggedErrors joined in it (nil when
// none is left).
func withoutLogged(err error) error {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var rest []error
		for _, e := range joined.Unwrap() {
			if e = withoutLogged(e); e != nil {
				rest = append(rest, e)
			}
		}
		return errors.Join(rest...)
	}
	if errors.As(err, new(loggedError)) {
		return nil
	}
	return err
}

// StoreBehind is an issuer whose newest stored CRL is older than one this
// node published.
type StoreBehind struct {
	Issuer *ca.Issuer
	// Stored is the number of the store's newest CRL (0: none);
	// Published the highest this node published.
	Stored, Published int64
}

// StoreBehind lists the issuers whose newest stored CRL is numbered below
// the highest this node published: the store was restored from an older
// copy, and the revocations made after that copy are missing from it
// (the next CRL is numbered above, see Update, but cannot list them).
func (p *Publisher) StoreBehind(ctx context.Context) ([]StoreBehind, error) {
	p.run.Lock()
	defer p.run.Unlock()
	var out []StoreBehind
	for _, issuer := range p.issuers.Issuers() {
		mark, err := p.mark(issuer.ID)
		if err != nil {
			return nil, err
		}
		if mark == 0 {
			continue
		}
		var stored int64
		switch c, err := p.st.LatestCRL(ctx, issuer.ID); {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("crl: %s: %w", issuer.ID, err)
		default:
			stored = c.Number
		}
		if stored < mark {
			out = append(out, StoreBehind{Issuer: issuer, Stored: stored, Published: mark})
		}
	}
	return out, nil
}

func (p *Publisher) get(issuerID string) *store.CRL {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.current[issuerID]
}

// set keeps c unless a newer one is held already.
func (p *Publisher) set(c *store.CRL) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if old := p.current[c.IssuerID]; old == nil || c.Number > old.Number {
		p.current[c.IssuerID] = c
	}
}

// Current returns an issuer's newest CRL known here; false when it has
// none yet.
func (p *Publisher) Current(issuerID string) (*store.CRL, bool) {
	c := p.get(issuerID)
	return c, c != nil
}

// serving is the CRL relying parties are given for an issuer: the one
// held, else the store's newest; an EUnavailable error while a newer one
// is held back.
func (p *Publisher) serving(ctx context.Context, issuerID string) (*store.CRL, error) {
	p.mu.RLock()
	c := p.current[issuerID]
	h, held := p.heldBack[issuerID]
	p.mu.RUnlock()
	if held {
		return nil, heldBackError(h)
	}
	if c != nil {
		return c, nil
	}
	c, err := p.st.LatestCRL(ctx, issuerID)
	if err != nil {
		return nil, err
	}
	p.set(c)
	return c, nil
}

// CurrentCRL implements enroll.CRLSource.
func (p *Publisher) CurrentCRL(ctx context.Context, issuerID string) ([]byte, error) {
	c, err := p.serving(ctx, issuerID)
	if err != nil {
		return nil, err
	}
	return c.DER, nil
}
