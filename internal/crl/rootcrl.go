package crl

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/store"
)

// The root's CRL. The root key is kept offline, so no server signs it:
// `scepter ca root crl`, run where the root key is, signs the next one and
// stores it like an issuing CA's, under the root's ID, and every node
// serves the newest at /crl/ROOT-ID.crl. It lists the issuing CA
// certificates the root revoked, and is what a relying party that demands
// a CRL for every certificate of the chain (strongSwan's
// strictcrlpolicy=yes) needs for the issuing CA.

// DefaultRootValidity is a root CRL's nextUpdate after its signing: a year,
// the longest CA/B Forum's BR allow for a CRL about CA certificates (§4.9.7).
const DefaultRootValidity = 365 * 24 * time.Hour

// RootRevocation is an issuing CA certificate the root revokes.
type RootRevocation struct {
	Cert      *x509.Certificate
	RevokedAt time.Time
	Reason    int // RFC 5280 CRLReason
}

// SignRootCRL signs the root's CRL that follows prev (its newest stored
// CRL; nil for the first): prev's entries, which it checks root signed,
// with add appended (a certificate prev lists already keeps its entry),
// the next number, a thisUpdate backdated as an issuing CA's is (not before
// the newest entry), and a nextUpdate validity later, cut at the root's
// end. It returns the CRL to store and its entries.
func SignRootCRL(root *ca.Issuer, prev *store.CRL, add []RootRevocation, now time.Time, validity time.Duration) (*store.CRL, []ca.CRLEntry, error) {
	if validity <= 0 {
		return nil, nil, fmt.Errorf("crl: root CRL validity %s: must be positive", validity)
	}
	published := now.UTC().Truncate(time.Second)
	end := root.Cert.NotAfter.UTC().Truncate(time.Second)
	if !end.After(published) {
		return nil, nil, fmt.Errorf("crl: the root CA certificate expired on %s: it signs no more CRLs", end.Format(time.RFC3339))
	}
	var entries []ca.CRLEntry
	number := int64(1)
	if prev != nil {
		rl, err := x509.ParseRevocationList(prev.DER)
		if err != nil {
			return nil, nil, fmt.Errorf("crl: the stored root CRL %d: %w", prev.Number, err)
		}
		if err := rl.CheckSignatureFrom(root.Cert); err != nil {
			return nil, nil, fmt.Errorf("crl: the stored root CRL %d is not signed by this root (%s): %w", prev.Number, root.Cert.Subject, err)
		}
		for _, e := range rl.RevokedCertificateEntries {
			entries = append(entries, ca.CRLEntry{Serial: e.SerialNumber, RevokedAt: e.RevocationTime, Reason: e.ReasonCode})
		}
		number = prev.Number + 1
	}
	for _, r := range add {
		if slices.ContainsFunc(entries, func(e ca.CRLEntry) bool { return e.Serial.Cmp(r.Cert.SerialNumber) == 0 }) {
			continue
		}
		entries = append(entries, ca.CRLEntry{Serial: r.Cert.SerialNumber, RevokedAt: r.RevokedAt, Reason: r.Reason})
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
		return nil, nil, err
	}
	return &store.CRL{IssuerID: root.ID, Number: number, ThisUpdate: c.ThisUpdate, NextUpdate: c.NextUpdate,
		Entries: len(entries), DER: der, CreatedAt: now}, entries, nil
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
	readAt time.Time
}

// rootCRL returns the root's newest stored CRL (nil when there is none),
// read again once rootCRLRefresh has passed.
func (h *Handler) rootCRL(ctx context.Context, id string, now time.Time) (*store.CRL, error) {
	h.roots.mu.Lock()
	defer h.roots.mu.Unlock()
	if r, ok := h.roots.byID[id]; ok && now.Sub(r.readAt) < rootCRLRefresh && !now.Before(r.readAt) {
		return r.crl, nil
	}
	c, err := h.p.st.LatestCRL(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		c, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	if h.roots.byID == nil {
		h.roots.byID = map[string]rootCRLRead{}
	}
	h.roots.byID[id] = rootCRLRead{crl: c, readAt: now}
	return c, nil
}

// rootPublishesNoCRL is why the root's CRL URL answers 404 while no root
// CRL was signed: a 503 asking to try again would be retried forever.
const rootPublishesNoCRL = "the root CA has published no CRL: its key is kept offline, so no server signs one. " +
	"Sign it where the root key is with 'scepter ca root crl'; every node then serves it here. " +
	"The issuing CA certificates carry no CRL distribution point, so a relying party that demands a CRL for every " +
	"certificate of the chain (strongSwan: strictcrlpolicy=yes) must be given this URL, or check only where a " +
	"certificate names one (strictcrlpolicy=ifuri)"

func (h *Handler) serveRootCRL(w http.ResponseWriter, r *http.Request, id string) {
	now := h.p.clock.Now()
	c, err := h.rootCRL(r.Context(), id, now)
	switch {
	case err != nil:
		w.Header().Set("Retry-After", "5")
		httpError(w, http.StatusServiceUnavailable, "the store cannot be read; try again in a few seconds")
	case c == nil:
		notFound(w, rootPublishesNoCRL)
	default:
		writeCRL(w, r, id, c, now)
	}
}
