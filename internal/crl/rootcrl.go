package crl

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// The root's CRL. No server signs it, whether the root key is kept offline
// or left in the data directory: `scepter ca root crl`, run where the root
// key is, signs the next one and stores it like an issuing CA's, under the
// root's ID, and every node serves the newest at /crl/ROOT-ID.crl. It lists
// the issuing CA certificates the root revoked, and is what a relying party
// that demands a CRL for every certificate of the chain (strongSwan's
// strictcrlpolicy=yes) needs for the issuing CA.

// DefaultRootValidity is a root CRL's nextUpdate after its signing: a year,
// the longest CA/B Forum's BR allow for a CRL about CA certificates (§4.9.7).
const DefaultRootValidity = 365 * 24 * time.Hour

// MinRootValidity is the shortest root CRL validity: a root CRL is signed
// by hand and copied to relying parties, and one shorter than that would
// reach them expired, so that they refuse every certificate of the chain.
const MinRootValidity = time.Hour

// RootRevocation is an issuing CA certificate the root revokes.
type RootRevocation struct {
	Cert      *x509.Certificate
	RevokedAt time.Time
	Reason    int // RFC 5280 CRLReason
}

// RootListing is how the root CRL SignRootCRL signed lists one of its
// add: the command that asked says what it did, which is not always what
// was asked (a certificate listed already keeps its revocation date).
type RootListing struct {
	Cert  *x509.Certificate
	Entry ca.CRLEntry // as the new CRL lists it
	// Listed is true when the previous CRL listed it already, with
	// PrevReason; its entry keeps that revocation date.
	Listed     bool
	PrevReason int
}

// ReasonChanged says the new CRL lists a certificate with another reason
// than the previous one did.
func (l RootListing) ReasonChanged() bool { return l.Listed && l.PrevReason != l.Entry.Reason }

// RFC 5280 CRLReason codes that say a key is compromised.
const (
	reasonKeyCompromise = pki.ReasonKeyCompromise
	reasonCACompromise  = pki.ReasonCACompromise
)

// ErrReasonDowngrade is SignRootCRL refusing to change a listing's
// keyCompromise or cACompromise to a milder reason: relying parties that
// honour a reason (trusting what was signed before the revocation date
// when the reason is not a compromise) would trust what the compromised
// key signed, on one mistyped --reason.
var ErrReasonDowngrade = errors.New("crl: a compromised CA's listing keeps a compromise reason")

// compromised says reason is keyCompromise or cACompromise.
func compromised(reason int) bool {
	return reason == reasonKeyCompromise || reason == reasonCACompromise
}

// downgrade says a listing with reason prev may not change to next: a
// compromise (keyCompromise, cACompromise) only to a compromise, and any
// listing OCSP answers as a CA compromise (unspecified, aACompromise too:
// pki.CAListingIsCompromise) not to one it answers as a retirement, which
// would take back what relying parties were told (r79). It returns the
// reasons prev may change to, for the refusal.
func downgrade(prev, next int) (refused bool, allowed string) {
	switch {
	case compromised(prev) && !compromised(next):
		return true, reasonName(reasonKeyCompromise) + " or " + reasonName(reasonCACompromise)
	case pki.CAListingIsCompromise(prev) && !pki.CAListingIsCompromise(next):
		return true, "a reason OCSP also answers as a CA compromise (" + reasonName(reasonKeyCompromise) + ", " + reasonName(reasonCACompromise) +
			", aACompromise or unspecified), as OCSP has told relying parties"
	}
	return false, ""
}

// reasonName is a CRLReason's RFC 5280 name, for an error.
func reasonName(reason int) string {
	if name, ok := pki.ReasonName(reason); ok {
		return name
	}
	return fmt.Sprintf("reason code %d", reason)
}

// SignRootCRL signs the root's CRL that follows prev (its newest stored
// CRL; nil for the first): prev's entries, which it checks root signed,
// with add appended, the next number, a thisUpdate backdated as an issuing
// CA's is (not before the newest entry), and a nextUpdate validity later,
// cut at the root's end. A certificate prev lists already keeps its
// revocation date but takes add's reason: RFC 5280 §5.3.1 lets a reason
// change, and a CA retired with cessationOfOperation and later found
// compromised must be listed as cACompromise; a compromise reason is
// never changed to a milder one (ErrReasonDowngrade). It returns the CRL to
// store, its entries and how it lists each of add.
func SignRootCRL(root *ca.Issuer, prev *store.CRL, add []RootRevocation, now time.Time, validity time.Duration) (*store.CRL, []ca.CRLEntry, []RootListing, error) {
	return SignRootCRLAbove(root, prev, 0, add, now, validity)
}

// SignRootCRLAbove is SignRootCRL numbering the CRL above both prev and
// mark, the highest root CRL number recorded outside the store
// (DATA/crl-numbers/ROOT-ID): a store restored from an older copy holds an
// older prev, and its number must not be given again (RFC 5280 §5.2.3).
func SignRootCRLAbove(root *ca.Issuer, prev *store.CRL, mark int64, add []RootRevocation, now time.Time, validity time.Duration) (*store.CRL, []ca.CRLEntry, []RootListing, error) {
	if validity < MinRootValidity {
		return nil, nil, nil, fmt.Errorf("crl: root CRL validity %s: at least %s", validity, MinRootValidity)
	}
	published := now.UTC().Truncate(time.Second)
	end := root.Cert.NotAfter.UTC().Truncate(time.Second)
	if !end.After(published) {
		return nil, nil, nil, fmt.Errorf("crl: the root CA certificate expired on %s: it signs no more CRLs", end.Format(time.RFC3339))
	}
	var entries []ca.CRLEntry
	stored := int64(0)
	if prev != nil {
		stored = prev.Number
	}
	number, err := nextNumber(stored, mark)
	if err != nil {
		return nil, nil, nil, err
	}
	if prev != nil {
		rl, err := x509.ParseRevocationList(prev.DER)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("crl: the stored root CRL %d: %w", prev.Number, err)
		}
		if err := rl.CheckSignatureFrom(root.Cert); err != nil {
			return nil, nil, nil, fmt.Errorf("crl: the stored root CRL %d is not signed by this root (%s): %w", prev.Number, root.Cert.Subject, err)
		}
		for _, e := range rl.RevokedCertificateEntries {
			entries = append(entries, ca.CRLEntry{Serial: e.SerialNumber, RevokedAt: e.RevocationTime, Reason: e.ReasonCode})
		}
	}
	listings := make([]RootListing, 0, len(add))
	for _, r := range add {
		l := RootListing{Cert: r.Cert}
		if i := slices.IndexFunc(entries, func(e ca.CRLEntry) bool { return e.Serial.Cmp(r.Cert.SerialNumber) == 0 }); i >= 0 {
			if refused, allowed := downgrade(entries[i].Reason, r.Reason); refused {
				return nil, nil, nil, fmt.Errorf("%w: %s (serial %s) is listed with reason %s; it may change only to %s",
					ErrReasonDowngrade, r.Cert.Subject, pki.SerialText(r.Cert.SerialNumber), reasonName(entries[i].Reason), allowed)
			}
			l.Listed, l.PrevReason = true, entries[i].Reason
			entries[i].Reason = r.Reason
			l.Entry = entries[i]
		} else {
			l.Entry = ca.CRLEntry{Serial: r.Cert.SerialNumber, RevokedAt: r.RevokedAt, Reason: r.Reason}
			entries = append(entries, l.Entry)
		}
		listings = append(listings, l)
	}
	var newest time.Time
	for _, e := range entries {
		if at := e.RevokedAt.UTC().Truncate(time.Second); at.After(newest) {
			newest = at
		}
	}
	next := published.Add(validity)
	if end.Before(next) {
		next = end
	}
	c := ca.CRL{Number: number, ThisUpdate: thisUpdate(published, prev, root.Cert.NotBefore, newest), NextUpdate: next, Entries: entries}
	der, err := root.SignCRL(c)
	if err != nil {
		return nil, nil, nil, err
	}
	return &store.CRL{IssuerID: root.ID, Number: number, ThisUpdate: c.ThisUpdate, NextUpdate: c.NextUpdate,
		Entries: len(entries), DER: der, CreatedAt: now}, entries, listings, nil
}

// rootCRLRefresh is how long a node serves the root CRL it read before it
// reads the store again: a new one is signed by hand, rarely.
const rootCRLRefresh = 10 * time.Second

// rootCRLs caches the roots' CRLs read from the store.
type rootCRLs struct {
	mu   sync.Mutex
	byID map[string]rootCRLRead
}

type rootCRLRead struct {
	crl    *store.CRL // nil: none stored
	mark   int64      // the highest root CRL number signed with this data directory
	readAt time.Time
}

// rootCRL returns the root's newest stored CRL (nil when there is none)
// and its mark (rootMark), read again once rootCRLRefresh has passed.
func (h *Handler) rootCRL(ctx context.Context, id string, now time.Time) (*store.CRL, int64, error) {
	h.roots.mu.Lock()
	defer h.roots.mu.Unlock()
	if r, ok := h.roots.byID[id]; ok && now.Sub(r.readAt) < rootCRLRefresh && !now.Before(r.readAt) {
		return r.crl, r.mark, nil
	}
	c, err := h.p.st.LatestCRL(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		c, err = nil, nil
	}
	if err != nil {
		return nil, 0, err
	}
	// Read after the CRL: 'scepter ca root crl' stores the CRL before it
	// raises the mark, so a CRL signed meanwhile is at worst held back
	// until the next read.
	mark, err := h.p.rootMark(id)
	if err != nil {
		return nil, 0, err
	}
	if h.roots.byID == nil {
		h.roots.byID = map[string]rootCRLRead{}
	}
	h.roots.byID[id] = rootCRLRead{crl: c, mark: mark, readAt: now}
	return c, mark, nil
}

// rootMark is the highest root CRL number 'scepter ca root crl' signed
// with this data directory (Config.Numbers); 0 when none. Read from the
// file each time, not cached with the issuers' marks: the CLI raises it
// while the server runs.
func (p *Publisher) rootMark(rootID string) (int64, error) {
	if p.cfg.Numbers == nil {
		return 0, nil
	}
	return p.cfg.Numbers.Get(rootID)
}

// RootBehind is a root whose newest stored CRL is numbered below the
// highest root CRL signed with this data directory: the store was
// restored from an older copy, and its root CRL leaves out the issuing
// CAs the root revoked after it. Relying parties holding the newer one
// must not be given it (RFC 5280 §5.2.3); no server signs a root CRL, so
// only 'scepter ca root crl --store-restored' puts a newer one in the
// store.
type RootBehind struct {
	Root           *x509.Certificate
	ID             string
	Stored, Signed int64 // Stored 0: the store has no CRL of the root
}

// RootsBehind lists the roots of the issuers whose stored CRL is behind
// their mark. Until a newer one is stored, the Handler serves none of
// theirs.
func (p *Publisher) RootsBehind(ctx context.Context) ([]RootBehind, error) {
	var out []RootBehind
	seen := map[string]bool{}
	for _, issuer := range p.issuers.Issuers() {
		if len(issuer.Chain) < 2 {
			continue
		}
		root := issuer.Chain[len(issuer.Chain)-1]
		id := hexSHA256(root.Raw)
		if seen[id] {
			continue
		}
		seen[id] = true
		mark, err := p.rootMark(id)
		if err != nil {
			return nil, err
		}
		if mark == 0 {
			continue
		}
		var stored int64
		switch c, err := p.st.LatestCRL(ctx, id); {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("crl: the root CRL: %w", err)
		default:
			stored = c.Number
		}
		if stored < mark {
			out = append(out, RootBehind{Root: root, ID: id, Stored: stored, Signed: mark})
		}
	}
	return out, nil
}

// rootPublishesNoCRL is why the root's CRL URL answers 404 while no root
// CRL was signed: a 503 asking to try again would be retried forever.
const rootPublishesNoCRL = "the root CA has published no CRL yet: the server never signs one, even with the root key in its data directory. " +
	"Sign it where the root key is with 'scepter ca root crl'; every node then serves it here. " +
	"The issuing CA certificates carry no CRL distribution point, so a relying party that demands a CRL for every " +
	"certificate of the chain (strongSwan: strictcrlpolicy=yes) must be given this URL, or check only where a " +
	"certificate names one (strictcrlpolicy=ifuri)"

// rootCRLBehind is why the root's CRL URL answers 503 while the store's
// root CRL is older than one signed with this data directory.
const rootCRLBehind = "the store's root CRL is older than one signed before (the store was restored from an older copy): " +
	"it is not served, for it would leave out the issuing CAs the root revoked since. " +
	"Sign the root's next CRL where the root key is with 'scepter ca root crl --store-restored'; every node then serves it here"

func (h *Handler) serveRootCRL(w http.ResponseWriter, r *http.Request, id string) {
	now := h.p.clock.Now()
	c, mark, err := h.rootCRL(r.Context(), id, now)
	switch {
	case err != nil:
		w.Header().Set("Retry-After", "5")
		httpError(w, http.StatusServiceUnavailable, "the store cannot be read; try again in a few seconds")
	case belowMark(c, mark):
		w.Header().Set("Retry-After", "60")
		httpError(w, http.StatusServiceUnavailable, rootCRLBehind)
	case c == nil:
		notFound(w, rootPublishesNoCRL)
	default:
		writeCRL(w, r, id, c, now)
	}
}

// belowMark: the root's stored CRL c (nil: none) is older than the
// newest signed with this data directory (mark), so it is not served.
func belowMark(c *store.CRL, mark int64) bool {
	return (c == nil && mark > 0) || (c != nil && c.Number < mark)
}

// RootCRL returns the root's newest stored CRL for SCEP GetCRL
// (enroll.RootCRLSource), as /crl/ROOT-ID.crl serves it: none below the
// highest root CRL number signed with this data directory (a store
// restored from an older copy: unavailable, naming what to run), and
// store.ErrNotFound while none was signed.
func (p *Publisher) RootCRL(ctx context.Context, rootID string) ([]byte, error) {
	c, err := p.st.LatestCRL(ctx, rootID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	mark, merr := p.rootMark(rootID) // after the CRL, as Handler.rootCRL reads them
	if merr != nil {
		return nil, merr
	}
	if belowMark(c, mark) {
		return nil, &pki.Error{Code: pki.EUnavailable, Message: rootCRLBehind, RetryAfter: time.Minute}
	}
	if c == nil {
		return nil, err
	}
	return c.DER, nil
}

// RootRevokedIssuers returns the IDs of those of issuers that the root's
// CRL der lists, once it has checked that root signed it.
func RootRevokedIssuers(der []byte, root *x509.Certificate, issuers []*ca.Issuer) ([]string, error) {
	reasons, err := RootRevokedIssuerReasons(der, root, issuers)
	if err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(reasons)), nil
}

// RootRevokedIssuerReasons returns, by ID, those of issuers that the
// root's CRL der lists, each with the CRLReason of its entry
// (pki.ReasonUnspecified for an entry without one), once it has checked
// that root signed it. An issuing CA is matched by its serial among the
// certificates root issued: the root gives each its own.
func RootRevokedIssuerReasons(der []byte, root *x509.Certificate, issuers []*ca.Issuer) (map[string]int, error) {
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("crl: the root CRL: %w", err)
	}
	if err := rl.CheckSignatureFrom(root); err != nil {
		return nil, fmt.Errorf("crl: the root CRL %v is not signed by this root (%s): %w", rl.Number, root.Subject, err)
	}
	reasons := map[string]int{}
	for _, i := range issuers {
		if !bytes.Equal(i.Cert.RawIssuer, root.RawSubject) || i.Cert.CheckSignatureFrom(root) != nil {
			continue
		}
		if n := slices.IndexFunc(rl.RevokedCertificateEntries, func(e x509.RevocationListEntry) bool {
			return e.SerialNumber.Cmp(i.Cert.SerialNumber) == 0
		}); n >= 0 {
			reasons[i.ID] = rl.RevokedCertificateEntries[n].ReasonCode
		}
	}
	return reasons, nil
}

// ApplyRootCRL reads the root's newest CRL from st and records on a the
// issuing CAs it lists, with the reason of each entry
// (Authority.SetRevokedIssuerReasons), so that what they issued
// authenticates nothing, their RAs decrypt no more, and OCSP answers
// their certificates with a reason that follows the CA's (a reason
// changed on the root CRL reaches it here); with none stored, none is
// revoked. Each node runs it with its CA reload, which is
// how a `scepter ca root crl --revoke` reaches every node. On an error
// (the store cannot be read, the CRL is not the root's) a keeps what it
// had. It returns the IDs revoked that were not before, for the log.
func ApplyRootCRL(ctx context.Context, st interface {
	LatestCRL(ctx context.Context, issuerID string) (*store.CRL, error)
}, a *ca.Authority) (added []string, err error) {
	rootID := strings.TrimPrefix(ca.Fingerprint(a.Root), "sha256:")
	var reasons map[string]int
	c, err := st.LatestCRL(ctx, rootID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("crl: reading the root CRL: %w", err)
	default:
		if reasons, err = RootRevokedIssuerReasons(c.DER, a.Root, a.Issuers()); err != nil {
			return nil, err
		}
	}
	before := a.RevokedIssuers()
	a.SetRevokedIssuerReasons(reasons)
	for _, id := range slices.Sorted(maps.Keys(reasons)) {
		if !slices.Contains(before, id) {
			added = append(added, id)
		}
	}
	return added, nil
}
