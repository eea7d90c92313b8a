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
// listed CA revoked: a retired CA vouches for nothing any more, one whose
// key may be in other hands even less, and a "good" answer, signed by a
// responder that CA certified, would tell relying parties otherwise.
type RootRevocations interface {
	RevokedIssuers() []string
	RootFingerprint() string
}

// RootRevocationReasons, implemented by Issuers beside RootRevocations (as
// *ca.Authority does), gives the CRLReason the root CRL lists an issuing
// CA with, as the CA reload last read it. Without it every listed CA is
// taken as compromised.
type RootRevocationReasons interface {
	RevokedIssuerReason(id string) (reason int, listed bool)
}

var _ RootRevocationReasons = (*ca.Authority)(nil)

// rootListing is what the root CRL says of an issuing CA, as the
// responder answers it: listed, and the reason each of its certificates
// is given (endEntityReason). Comparable: a cached answer records the one
// it was made under, and is not served under another.
type rootListing struct {
	listed bool
	reason int
}

// endEntityReason is the reason a certificate of an issuing CA that the
// root CRL lists with caReason is answered revoked with: cACompromise
// when the CA's key may be in other hands (keyCompromise, cACompromise,
// aACompromise, or no reason given: the cautious reading), and
// cessationOfOperation when the CA was retired without a compromise
// (cessationOfOperation, superseded, affiliationChanged,
// privilegeWithdrawn: RFC 5280 §5.3.1, the issuer no longer operates).
// Telling relying parties of a CA compromise after an ordinary rollover
// would set off their incident procedures for nothing.
func endEntityReason(caReason int) int {
	if pki.CAListingIsCompromise(caReason) {
		return pki.ReasonCACompromise
	}
	return pki.ReasonCessationOfOperation
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

// rootRevoked reports whether the root CRL lists the issuing CA id, and
// the reason its certificates are then answered with.
func (r *Responder) rootRevoked(id string) rootListing {
	rr, ok := r.issuers.(RootRevocations)
	if !ok || !slices.Contains(rr.RevokedIssuers(), id) {
		return rootListing{}
	}
	l := rootListing{listed: true, reason: pki.ReasonCACompromise}
	if rs, ok := r.issuers.(RootRevocationReasons); ok {
		if caReason, listed := rs.RevokedIssuerReason(id); listed {
			l.reason = endEntityReason(caReason)
		}
	}
	return l
}

// caRevocation is the revocation of an issuing CA by the root, as its
// certificates are answered: since at, with reason. Zero: not revoked.
type caRevocation struct {
	at     time.Time
	reason int
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
// the root revoked (caRev): revoked, since the CA's revocation, with the
// reason that follows the CA's on the root CRL (endEntityReason:
// cACompromise, or cessationOfOperation for a CA retired without a
// compromise), unless c was revoked for good earlier, which stays (a
// relying party must not learn that it was good until the CA went).
func underRevokedCA(resp SingleResponse, c *pki.Certificate, caRev caRevocation) SingleResponse {
	resp.Status = Revoked
	if c.Status == pki.StatusRevoked && c.RevokeReason != pki.ReasonCertificateHold && c.RevokedAt.Before(caRev.at) {
		resp.RevokedAt, resp.Reason = c.RevokedAt, c.RevokeReason
		return resp
	}
	resp.RevokedAt, resp.Reason = caRev.at, caRev.reason
	return resp
}

// latest is the later of a and b.
func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
