package enroll

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// CRLSource hands out an issuer's current CRL (the revocation publisher).
type CRLSource interface {
	// CurrentCRL returns the DER of the newest CRL of the issuer, or
	// store.ErrNotFound when there is none yet.
	CurrentCRL(ctx context.Context, issuerID string) ([]byte, error)
}

// Paths under Config.PublicURL where relying parties find what the
// certificates point to.
const (
	CRLPath  = "/crl/" // + issuer ID + ".crl"
	OCSPPath = "/ocsp" // the responder
	CAPath   = "/ca/"  // + issuer ID + ".crt"
)

// CRLURL, OCSPURL and IssuerURL are the URLs under a public base URL that
// go into certificates of an issuer (CDP, AIA OCSP and caIssuers).
func CRLURL(base, issuerID string) string {
	return strings.TrimRight(base, "/") + CRLPath + issuerID + ".crl"
}
func OCSPURL(base string) string { return strings.TrimRight(base, "/") + OCSPPath }
func IssuerURL(base, issuerID string) string {
	return strings.TrimRight(base, "/") + CAPath + issuerID + ".crt"
}

// withRevocationURLs fills in the CDP and AIA a profile leaves unset (nil)
// from the public URL, for the issuer that signs. A profile's own URLs win,
// each kind on its own; an empty list (crl_urls = []) means none.
func (s *Service) withRevocationURLs(p pki.Profile, issuerID string) pki.Profile {
	base := s.cfg.PublicURL
	if base == "" || p.OCSPNoCheck {
		return p
	}
	if p.CRLURLs == nil {
		p.CRLURLs = []string{CRLURL(base, issuerID)}
	}
	if p.OCSPURLs == nil {
		p.OCSPURLs = []string{OCSPURL(base)}
	}
	if p.IssuerURLs == nil {
		p.IssuerURLs = []string{IssuerURL(base, issuerID)}
	}
	return p
}

// The profile and transaction ID of delegated OCSP responder certificates
// in the inventory.
const (
	responderProfileName   = "ocsp-responder"
	responderTransactionID = "ocsp-responder"
)

// responderProfile is the built-in profile of delegated OCSP responder
// certificates: OCSP signing only, id-pkix-ocsp-nocheck, short-lived,
// signed by the one issuer it answers for.
func responderProfile(issuerID string, validity time.Duration) pki.Profile {
	p := pki.DefaultProfile()
	p.Name = responderProfileName
	p.Validity = validity
	p.KeyUsage = x509.KeyUsageDigitalSignature
	p.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}
	p.OCSPNoCheck = true
	p.Issuer = issuerID
	p.MaxSANs = 0
	return p
}

// IssueResponderCertificate issues a delegated OCSP responder certificate
// for key under the issuer named by issuerID (current, next or previous),
// through the same pipeline and inventory as every certificate (protocol
// "internal").
func (s *Service) IssueResponderCertificate(ctx context.Context, issuerID string, key crypto.PublicKey, validity time.Duration) (*x509.Certificate, error) {
	if _, ok := s.authority.IssuerByID(issuerID); !ok {
		return nil, fmt.Errorf("enroll: no issuer %s", issuerID)
	}
	subject, err := csr.ParseDN("CN=scepter OCSP responder " + issuerID[:16])
	if err != nil {
		return nil, err
	}
	st := &State{
		Req:        Request{Protocol: pki.ProtocolInternal, TransactionID: responderTransactionID},
		Profile:    responderProfile(issuerID, validity),
		PublicKey:  key,
		RawSubject: subject,
	}
	res, err := s.issue(ctx, st)
	if err != nil {
		return nil, err
	}
	return res.Certificate, nil
}

// CurrentCRL returns the CRL of the issuer SCEP GetCRL names: by its name,
// and, when several of our issuers share that name (a rollover that kept
// it), by the one that issued serialHex; and that issuer's certificate.
func (s *Service) CurrentCRL(ctx context.Context, rawIssuer []byte, serialHex string) ([]byte, *x509.Certificate, error) {
	if s.cfg.CRLs == nil {
		return nil, nil, pki.Errorf(pki.EBadRequest, "this server publishes no CRL")
	}
	var named []*ca.Issuer
	for _, i := range s.authority.Issuers() {
		if csr.SameName(i.Cert.RawSubject, rawIssuer) {
			named = append(named, i)
		}
	}
	issuer := (*ca.Issuer)(nil)
	switch len(named) {
	case 0:
		return s.rootCRL(ctx, rawIssuer)
	case 1:
		issuer = named[0]
	default:
		for _, i := range named {
			if _, err := s.store.Certificate(ctx, i.ID, serialHex); err == nil {
				issuer = i
				break
			}
		}
		if issuer == nil {
			issuer = named[0]
		}
	}
	der, err := s.cfg.CRLs.CurrentCRL(ctx, issuer.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, pki.Wrap(pki.EBadCertID, err, "the CRL of this CA is not published yet; try again shortly")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("enroll: CRL of %s: %w", issuer.ID, err)
	}
	return der, issuer.Cert, nil
}

// rootCRL answers GetCRL for an issuing CA certificate, whose issuer is
// our root: the newest root CRL `scepter ca root crl` signed and stored,
// as /crl/ROOT-ID.crl serves it.
func (s *Service) rootCRL(ctx context.Context, rawIssuer []byte) ([]byte, *x509.Certificate, error) {
	for _, i := range s.authority.Issuers() {
		for _, c := range i.Chain[1:] {
			if !csr.SameName(c.RawSubject, rawIssuer) {
				continue
			}
			sum := sha256.Sum256(c.Raw)
			der, err := s.storedRootCRL(ctx, hex.EncodeToString(sum[:]))
			if errors.Is(err, store.ErrNotFound) {
				return nil, nil, pki.Wrap(pki.EBadCertID, err, "the root CA has published no CRL yet: the server never signs one, even with the root key in its data directory; sign one with 'scepter ca root crl' where the root key is")
			}
			if err != nil {
				return nil, nil, fmt.Errorf("enroll: the root's CRL: %w", err)
			}
			return der, c, nil
		}
	}
	return nil, nil, pki.Errorf(pki.EBadCertID, "no CA of this server has that name")
}

// RootCRLSource is a CRLSource that also serves the root's CRL as the
// CRL URL does (crl.Publisher): none below the highest number signed with
// this node's data directory (a store restored from an older copy).
type RootCRLSource interface {
	RootCRL(ctx context.Context, rootID string) ([]byte, error)
}

// storedRootCRL is the root's newest CRL: through Config.CRLs when it is a
// RootCRLSource, else as the store holds it.
func (s *Service) storedRootCRL(ctx context.Context, rootID string) ([]byte, error) {
	if src, ok := s.cfg.CRLs.(RootCRLSource); ok {
		return src.RootCRL(ctx, rootID)
	}
	c, err := s.store.LatestCRL(ctx, rootID)
	if err != nil {
		return nil, err
	}
	return c.DER, nil
}

// CheckNotRevoked refuses a certificate of ours that is revoked, not in
// the inventory as presented, or of an issuing CA the root revoked: a
// requester that authenticates with one (a CertPoll's signer, say) gets
// nothing more. A certificate that is not ours (a self-signed transport
// certificate) is not this check's business.
func (s *Service) CheckNotRevoked(ctx context.Context, cert *x509.Certificate) error {
	if cert == nil {
		return nil
	}
	issuer, err := s.authority.IssuedByUs(cert, s.clock.Now())
	if errors.Is(err, ca.ErrNotOurs) {
		return nil
	}
	if errors.Is(err, ca.ErrIssuerRevoked) {
		return pki.Wrap(pki.EBadCertID, err, "the signer certificate was issued by an issuing CA that the root has revoked (listed on the root CRL)")
	}
	if issuer == nil {
		if err != nil {
			return pki.Wrap(pki.EBadCertID, err, "the signer certificate cannot be used")
		}
		return nil
	}
	rec, err := s.store.Certificate(ctx, issuer.ID, cert.SerialNumber.Text(16))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return pki.Errorf(pki.EBadCertID, "the signer certificate is not in this CA's inventory")
	case err != nil:
		return err
	case rec.Status == pki.StatusRevoked:
		return revokedRefusal(rec, "signer certificate", "send the request again")
	}
	return checkAsIssued(rec, cert, "signer certificate")
}
