package ocsp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// Defaults of Config.
const (
	DefaultValidity = time.Hour
	DefaultMaxCache = 100_000
)

// backdate is how much earlier than its signature an answer's thisUpdate
// and producedAt are: a relying party whose clock is a little behind ours
// would otherwise find a fresh answer not yet valid and reject it.
const backdate = time.Minute

// Config tunes a Responder.
type Config struct {
	// Validity is nextUpdate − signing time of every answer (thisUpdate is
	// backdated a minute before it, or less down to a revocation the
	// answer reports or a hold lifted), cut short where the signing
	// certificate expires sooner. A cached answer is served until half of
	// its thisUpdate-to-nextUpdate span has passed (or a revocation), so
	// clients always get at least half of it.
	Validity time.Duration
	// MaxCache bounds the cached answers; the cache is emptied when full.
	MaxCache int
	// DelegateRevoked, when set, is told the issuer whose delegated
	// responder certificate was found revoked, or whose key its token no
	// longer holds (Delegates.Kick: replace it). Meanwhile the CA itself
	// signs that issuer's answers.
	DelegateRevoked func(issuerID string)
}

// Inventory is what the responder reads of the store.
type Inventory interface {
	Certificate(ctx context.Context, issuerID, serialHex string) (*pki.Certificate, error)
}

// Issuers lists the issuing CAs the responder answers for.
type Issuers interface {
	Issuers() []*ca.Issuer
}

// SignerFor returns the delegated responder of an issuer; false when it
// has none (the answer is then signed by the CA itself).
type SignerFor func(issuerID string) (Signer, bool)

// Responder answers OCSP requests. Safe for concurrent use.
type Responder struct {
	inv     Inventory
	issuers Issuers
	signer  SignerFor
	clock   pki.Clock
	log     *slog.Logger
	cfg     Config

	// state is the revocation counter per issuer as last seen in the
	// store (SetRevocationState); a cached answer made under another
	// counter is stale.
	state atomic.Pointer[map[string]int64]

	hashesMu sync.Mutex
	hashes   map[string]*issuerHashes // by issuer ID

	// rootRevs: the issuing CAs found on the root CRL, with their
	// revocation dates.
	rootRevs rootRevokedSet

	cacheMu  sync.Mutex
	cache    map[cacheKey]*cached
	inflight map[cacheKey]*call

	signed, served atomic.Int64
}

// New builds a responder.
func New(inv Inventory, issuers Issuers, signer SignerFor, clock pki.Clock, log *slog.Logger, cfg Config) *Responder {
	if cfg.Validity <= 0 {
		cfg.Validity = DefaultValidity
	}
	if cfg.MaxCache <= 0 {
		cfg.MaxCache = DefaultMaxCache
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Responder{inv: inv, issuers: issuers, signer: signer, clock: clock, log: log, cfg: cfg,
		hashes: map[string]*issuerHashes{}, cache: map[cacheKey]*cached{}, inflight: map[cacheKey]*call{}}
	r.state.Store(&map[string]int64{})
	return r
}

// SetRevocationState records the store's revocation counters: answers
// cached under an older counter of their issuer are not served again.
func (r *Responder) SetRevocationState(st map[string]int64) {
	cp := make(map[string]int64, len(st))
	for k, v := range st {
		cp[k] = v
	}
	r.state.Store(&cp)
}

// Stats reports how many answers were signed and how many served in all.
func (r *Responder) Stats() (signed, served int64) { return r.signed.Load(), r.served.Load() }

// Answer is a response and what HTTP caching needs to know of it.
type Answer struct {
	DER []byte
	// Cacheable is false for answers to a nonce and for error answers.
	Cacheable  bool
	ThisUpdate time.Time
	NextUpdate time.Time
	// Status is the status of the first certificate asked about (for
	// logs and metrics); Err, for an error answer, says why.
	Status Status
	Err    error

	certID []byte // the CertID a cacheable answer is about, as encoded
}

type cacheKey struct {
	issuerID string
	hash     crypto.Hash
	serial   string
}

type cached struct {
	answer    Answer
	seq       int64
	refreshAt time.Time
	// root: what the root CRL said of the issuer when the answer was
	// made (listed, and with which reason); one made under another is
	// not served, so neither a listing nor a changed reason waits for
	// the cached answer to expire.
	root rootListing
}

type call struct {
	done   chan struct{}
	answer Answer
}

// Respond answers one DER OCSPRequest. It never fails: a request it cannot
// read (a CertID hashed with an algorithm it does not take included) is
// answered malformedRequest, one about an issuer it does not serve
// unauthorized, and a store it cannot read, or a signing key whose token
// is unavailable, tryLater.
func (r *Responder) Respond(ctx context.Context, der []byte) Answer {
	r.served.Add(1)
	req, err := ParseRequest(der)
	if err != nil {
		return Answer{DER: MalformedRequestResponse, Err: err}
	}
	issuer := r.issuerOf(req.CertIDs[0])
	for _, id := range req.CertIDs[1:] {
		if r.issuerOf(id) != issuer {
			issuer = nil // one signature covers one issuer's certificates
		}
	}
	if issuer == nil {
		return Answer{DER: UnauthorizedResponse, Err: errors.New("ocsp: not a certificate of an issuer this responder serves")}
	}
	if len(req.CertIDs) > 1 || req.Nonce != nil {
		return r.sign(ctx, issuer, req)
	}
	id := req.CertIDs[0]
	key := cacheKey{issuerID: issuer.ID, hash: id.Hash, serial: id.Serial.Text(16)}
	now := r.clock.Now()
	seq := r.seqOf(issuer.ID)
	root := r.rootRevoked(issuer.ID)
	r.cacheMu.Lock()
	// An answer made before the clock was set back (its thisUpdate is
	// still ahead) is not served again: relying parties with a right
	// clock reject it as not yet valid, and its refreshAt lies as far
	// ahead as the clock went back.
	if c, ok := r.cache[key]; ok && c.seq == seq && c.root == root && now.Before(c.refreshAt) && !now.Before(c.answer.ThisUpdate) &&
		bytes.Equal(c.answer.certIDRaw(), id.Raw) {
		r.cacheMu.Unlock()
		return c.answer
	}
	// One signature per key at a time: concurrent askers wait for it.
	if cl, ok := r.inflight[key]; ok {
		r.cacheMu.Unlock()
		select {
		case <-cl.done:
			if bytes.Equal(cl.answer.certIDRaw(), id.Raw) {
				return cl.answer
			}
			return r.sign(ctx, issuer, req)
		case <-ctx.Done():
			return Answer{DER: TryLaterResponse, Err: ctx.Err()}
		}
	}
	cl := &call{done: make(chan struct{})}
	r.inflight[key] = cl
	r.cacheMu.Unlock()

	a := r.sign(ctx, issuer, req)
	r.cacheMu.Lock()
	delete(r.inflight, key)
	if a.Cacheable {
		if len(r.cache) >= r.cfg.MaxCache {
			r.cache = map[cacheKey]*cached{}
		}
		r.cache[key] = &cached{answer: a, seq: seq, refreshAt: a.refreshAt(), root: root}
	}
	r.cacheMu.Unlock()
	cl.answer = a
	close(cl.done)
	return a
}

// refreshAt is when a cached answer is replaced: halfway to its nextUpdate.
func (a Answer) refreshAt() time.Time { return a.ThisUpdate.Add(a.NextUpdate.Sub(a.ThisUpdate) / 2) }

// certIDRaw is the CertID the answer is about, so a cached answer is only
// served to a request that encoded its CertID the same way.
func (a Answer) certIDRaw() []byte {
	if !a.Cacheable {
		return nil
	}
	return a.certID
}

func (r *Responder) seqOf(issuerID string) int64 { return (*r.state.Load())[issuerID] }

// sign looks up every certificate of req and signs the answer. Respond
// reads the revocation counter before it calls sign, so an answer cached
// under that counter is dropped by any revocation committed after.
func (r *Responder) sign(ctx context.Context, issuer *ca.Issuer, req *Request) Answer {
	now := r.clock.Now().UTC().Truncate(time.Second)
	// An issuing CA outside its validity signs nothing, as for its CRL:
	// an answer signed after it expired (or, the clock set back, before
	// it began) could not be verified by any relying party, and would
	// claim a nextUpdate no valid signer stands behind.
	switch ca := issuer.Cert; {
	case !now.Before(ca.NotAfter):
		return Answer{DER: UnauthorizedResponse, Err: fmt.Errorf("ocsp: the issuing CA %q expired at %s and signs no more answers",
			ca.Subject, ca.NotAfter.UTC().Format(time.RFC3339))}
	case now.Before(ca.NotBefore):
		return Answer{DER: TryLaterResponse, Err: fmt.Errorf("ocsp: the issuing CA %q is not valid before %s (is the clock right?)",
			ca.Subject, ca.NotBefore.UTC().Format(time.RFC3339))}
	}
	// An issuing CA the root revoked vouches for none of its
	// certificates (underRevokedCA).
	var caRev caRevocation
	if root := r.rootRevoked(issuer.ID); root.listed {
		caRev = caRevocation{at: r.rootRevokedAt(ctx, issuer, now), reason: root.reason}
	}
	s, ok := r.signer(issuer.ID)
	if ok && r.delegateRevoked(ctx, issuer, s.Cert) {
		ok = false
	}
	if !ok {
		return r.signWith(ctx, issuer, req, r.caSigner(issuer), now, caRev)
	}
	a := r.signWith(ctx, issuer, req, s, now, caRev)
	if errors.Is(a.Err, keys.ErrKeyNotFound) {
		// The token is open and answers, but no longer holds the
		// delegate's key (deleted from it): unlike a token that is away,
		// that does not pass, and the key cannot be put back (it never
		// left the token). The CA signs, as for a revoked delegate, until
		// the delegate is replaced (Delegates does so at its next
		// Refresh, which it asks for).
		r.log.Warn("ocsp: the delegated responder's key is gone from its token; the CA signs meanwhile", "issuer", issuer.ID,
			"serial", pki.SerialText(s.Cert.SerialNumber), "err", a.Err)
		if r.cfg.DelegateRevoked != nil {
			r.cfg.DelegateRevoked(issuer.ID)
		}
		return r.signWith(ctx, issuer, req, r.caSigner(issuer), now, caRev)
	}
	return a
}

// caSigner is the issuing CA itself as the signer of its answers.
func (r *Responder) caSigner(issuer *ca.Issuer) Signer {
	return Signer{Cert: issuer.Cert, Key: issuer.Signer}
}

// signWith signs the answer to req with s, at now. caRev is the root's
// revocation of issuer (zero: it did not revoke it).
func (r *Responder) signWith(ctx context.Context, issuer *ca.Issuer, req *Request, s Signer, now time.Time, caRev caRevocation) Answer {
	// An answer must not outlive the certificate that signs it: a relying
	// party (or an RFC 5019 cache) keeping it until its nextUpdate could
	// not verify it any more, and a delegate's short life is what bounds
	// the use of its key, which nobody can check for revocation (nocheck).
	next := now.Add(r.cfg.Validity)
	if end := s.Cert.NotAfter.UTC().Truncate(time.Second); end.Before(next) && end.After(now) {
		next = end
	}
	// thisUpdate and producedAt, backdated, but not before the signer's
	// certificate (a delegate made a moment ago), nor before the status
	// the answer reports began: a revocation, or a hold lifted
	// (notBeforeChange).
	this := now.Add(-backdate)
	if start := s.Cert.NotBefore.UTC(); this.Before(start) && !start.After(now) {
		this = start
	}
	responses := make([]SingleResponse, len(req.CertIDs))
	for n, id := range req.CertIDs {
		resp := SingleResponse{CertID: id, Status: Unknown, ThisUpdate: this, NextUpdate: next}
		if id.Serial.Sign() > 0 {
			c, err := r.inv.Certificate(ctx, issuer.ID, id.Serial.Text(16))
			switch {
			case errors.Is(err, store.ErrNotFound):
			case err != nil:
				r.log.Warn("ocsp: store unavailable; answering tryLater", "err", err)
				return Answer{DER: TryLaterResponse, Err: err}
			case c.Status == pki.StatusRevoked:
				resp.Status, resp.RevokedAt, resp.Reason = Revoked, c.RevokedAt, c.RevokeReason
				resp.ThisUpdate = notBeforeChange(this, statusSince(c), now)
			default:
				resp.Status = Good
				resp.ThisUpdate = notBeforeChange(this, statusSince(c), now)
			}
			if c != nil && err == nil && !caRev.at.IsZero() {
				resp = underRevokedCA(resp, c, caRev)
				resp.ThisUpdate = notBeforeChange(this, latest(statusSince(c), resp.RevokedAt.UTC().Truncate(time.Second)), now)
			}
		}
		responses[n] = resp
	}
	// producedAt is no earlier than any thisUpdate it vouches for.
	produced := this
	for _, resp := range responses {
		if resp.ThisUpdate.After(produced) {
			produced = resp.ThisUpdate
		}
	}
	der, err := BuildResponse(responses, produced, req.Nonce, s)
	if errors.Is(err, pki.ErrUnavailable) {
		// The key's token is away (an HSM restarting, its token lost):
		// like a store outage, it passes, so the client is to try later.
		// (A delegate's key gone from a token that answers is not
		// answered so: see sign.)
		if !errors.Is(err, keys.ErrKeyNotFound) || s.Cert == issuer.Cert {
			r.log.Warn("ocsp: signing key unavailable; answering tryLater", "issuer", issuer.ID, "err", err)
		}
		return Answer{DER: TryLaterResponse, Err: err}
	}
	if err != nil {
		r.log.Error("ocsp: signing a response", "issuer", issuer.ID, "err", err)
		return Answer{DER: InternalErrorResponse, Err: err}
	}
	r.signed.Add(1)
	a := Answer{DER: der, ThisUpdate: responses[0].ThisUpdate, NextUpdate: next, Status: responses[0].Status,
		Cacheable: req.Nonce == nil && len(req.CertIDs) == 1}
	a.certID = req.CertIDs[0].Raw
	return a
}

// statusSince is when a certificate's current status began, in whole
// seconds (zero: at issuance): its revocation time as the answer encodes
// it, or the second after a hold on it was lifted (rounded up: the answer
// must not be dated before the unhold), whichever is later.
func statusSince(c *pki.Certificate) time.Time {
	var since time.Time
	if c.Status == pki.StatusRevoked {
		since = c.RevokedAt.UTC().Truncate(time.Second)
	}
	if unheld := pki.CeilSecond(c.UnheldAt); unheld.After(since) {
		since = unheld
	}
	return since
}

// notBeforeChange is the thisUpdate of an answer whose status began at
// changed (statusSince): the backdated thisUpdate, or changed when that is
// later. An answer must not say it was true before the status it reports
// began (RFC 6960 §4.2.2.1): a revocation, or an unhold, after which a
// "good" answer dated before it would claim the certificate good while it
// was held, and be older than the "revoked" answer it replaces (a cache
// that keeps the newest thisUpdate would keep that). The backdate gives
// way to it. A time ahead of now (recorded by a node whose clock runs
// ahead, or an unhold within this second) gives now: an answer dated in
// the future is rejected as not yet valid.
func notBeforeChange(backdated, changed, now time.Time) time.Time {
	switch {
	case !changed.After(backdated):
		return backdated
	case changed.After(now):
		return now
	}
	return changed
}

// delegateRevoked reports whether a delegated responder certificate has
// been revoked in the inventory. It carries id-pkix-ocsp-nocheck, so no
// relying party can find out: an operator who revokes it (its key
// compromised) must see it stop signing at once, not when it is due for
// replacement. A store error counts as not revoked; the answer's own
// lookups have just succeeded.
func (r *Responder) delegateRevoked(ctx context.Context, issuer *ca.Issuer, cert *x509.Certificate) bool {
	c, err := r.inv.Certificate(ctx, issuer.ID, cert.SerialNumber.Text(16))
	if err != nil || c.Status != pki.StatusRevoked {
		return false
	}
	r.log.Warn("ocsp: the delegated responder certificate is revoked; the CA signs meanwhile", "issuer", issuer.ID,
		"serial", pki.SerialText(cert.SerialNumber))
	if r.cfg.DelegateRevoked != nil {
		r.cfg.DelegateRevoked(issuer.ID)
	}
	return true
}

// issuerHashes are an issuer's name and key hashes under each algorithm a
// CertID may use.
type issuerHashes struct {
	issuer *ca.Issuer
	name   map[crypto.Hash][]byte
	key    map[crypto.Hash][]byte
}

var certIDHashes = []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512}

// issuerOf finds the issuer a CertID names by its name and key hashes;
// nil when it is none of ours.
func (r *Responder) issuerOf(id CertID) *ca.Issuer {
	for _, i := range r.issuers.Issuers() {
		h := r.hashesOf(i)
		if h != nil && bytes.Equal(h.name[id.Hash], id.NameHash) && bytes.Equal(h.key[id.Hash], id.KeyHash) {
			return i
		}
	}
	return nil
}

func (r *Responder) hashesOf(i *ca.Issuer) *issuerHashes {
	r.hashesMu.Lock()
	defer r.hashesMu.Unlock()
	if h, ok := r.hashes[i.ID]; ok {
		return h
	}
	key, err := publicKeyBits(i.Cert)
	if err != nil {
		r.log.Error("ocsp: issuer certificate", "issuer", i.ID, "err", err)
		return nil
	}
	h := &issuerHashes{issuer: i, name: map[crypto.Hash][]byte{}, key: map[crypto.Hash][]byte{}}
	for _, alg := range certIDHashes {
		hn := alg.New()
		hn.Write(i.Cert.RawSubject)
		h.name[alg] = hn.Sum(nil)
		hk := alg.New()
		hk.Write(key)
		h.key[alg] = hk.Sum(nil)
	}
	r.hashes[i.ID] = h
	return h
}

// publicKeyBits is the subjectPublicKey BIT STRING value of a certificate,
// what a CertID's issuerKeyHash hashes.
func publicKeyBits(c *x509.Certificate) ([]byte, error) {
	spki := cryptobyte.String(c.RawSubjectPublicKeyInfo)
	var body, alg cryptobyte.String
	var key asn1.BitString
	if !spki.ReadASN1(&body, cbasn1.SEQUENCE) || !body.ReadASN1(&alg, cbasn1.SEQUENCE) || !body.ReadASN1BitString(&key) {
		return nil, errors.New("malformed subjectPublicKeyInfo")
	}
	return key.Bytes, nil
}
