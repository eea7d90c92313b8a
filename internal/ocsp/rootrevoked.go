package ocsp

import (
	"context"
	"crypto/x509"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// RootRevocations says which issuing CAs the root's CRL lists (the CA
// reload records them: ca.Authority.SetRevokedIssuers), and the root
// whose CRL that is. Issuers that are also RootRevocations, as
// *ca.Authority is, have the responder answer every certificate of a
// listed CA revoked: that CA's key may be in other hands, so its
// certificates vouch for nothing, and a "good" answer, signed by a
// responder that CA certified, would tell relying parties otherwise.
type RootRevocations interface {
	RevokedIssuers() []string
	RootFingerprint() string
}

// rootCRLReader reads the root's newest CRL (store.Store does), for the
// date on which it revoked an issuing CA.
type rootCRLReader interface {
	LatestCRL(ctx context.Context, issuerID string) (*store.CRL, error)
}

// rootRevokedSet records, per issuing CA the responder found on the root
// CRL, the time it revoked it: from the root CRL, or else the first time
// this responder saw it listed.
type rootRevokedSet struct {
	mu sync.Mutex
	at map[string]time.Time
}

// rootRevoked reports whether the root CRL lists the issuing CA id.
func (r *Responder) rootRevoked(id string) bool {
	rr, ok := r.issuers.(RootRevocations)
	return ok && slices.Contains(rr.RevokedIssuers(), id)
}

// rootRevokedAt is when the root revoked issuer: the date its CRL gives,
// or, when that cannot be read, the first time this responder found the
// CA listed (kept, so that every answer gives the same one).
func (r *Responder) rootRevokedAt(ctx context.Context, issuer *ca.Issuer, now time.Time) time.Time {
	r.rootRevs.mu.Lock()
	defer r.rootRevs.mu.Unlock()
	if at, ok := r.rootRevs.at[issuer.ID]; ok {
		return at
	}
	at, err := r.rootCRLDate(ctx, issuer.Cert)
	if err != nil {
		r.log.Warn("ocsp: reading the root CRL for the revocation date of an issuing CA; dating it now", "issuer", issuer.ID, "err", err)
		at = now
	}
	if r.rootRevs.at == nil {
		r.rootRevs.at = map[string]time.Time{}
	}
	r.rootRevs.at[issuer.ID] = at
	return at
}

// rootCRLDate is the revocation date of cert on the root's newest CRL.
func (r *Responder) rootCRLDate(ctx context.Context, cert *x509.Certificate) (time.Time, error) {
	st, ok := r.inv.(rootCRLReader)
	rr, ok2 := r.issuers.(RootRevocations)
	if !ok || !ok2 {
		return time.Time{}, errors.New("no root CRL to read")
	}
	c, err := st.LatestCRL(ctx, strings.TrimPrefix(rr.RootFingerprint(), "sha256:"))
	if err != nil {
		return time.Time{}, err
	}
	rl, err := x509.ParseRevocationList(c.DER)
	if err != nil {
		return time.Time{}, err
	}
	for _, e := range rl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
			return e.RevocationTime.UTC(), nil
		}
	}
	return time.Time{}, errors.New("the root CRL does not list it")
}

// underRevokedCA is the answer about c, a certificate of an issuing CA
// the root revoked at caRevokedAt: revoked,
// reason cACompromise (RFC 5280's for a certificate whose CA is
// compromised, whatever the root CRL says of the CA), since the CA's
// revocation, unless c was revoked for good earlier, which stays (a
// relying party must not learn that it was good until the CA went).
func underRevokedCA(resp SingleResponse, c *pki.Certificate, caRevokedAt time.Time) SingleResponse {
	resp.Status = Revoked
	if c.Status == pki.StatusRevoked && c.RevokeReason != pki.ReasonCertificateHold && c.RevokedAt.Before(caRevokedAt) {
		resp.RevokedAt, resp.Reason = c.RevokedAt, c.RevokeReason
		return resp
	}
	resp.RevokedAt, resp.Reason = caRevokedAt, pki.ReasonCACompromise
	return resp
}

// latest is the later of a and b.
func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
