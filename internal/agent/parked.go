package agent

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/keys"
)

// A renewed certificate may start after the agent's clock. Either this
// machine's clock is behind (the certificate is good, and the one in place
// may have been revoked as superseded), or the server's is ahead (the
// certificate is refused by every relying party until its start, and the
// one in place is good). The certificate alone cannot tell which, so:
//
//   - up to maxStartAhead ahead, it is installed as usual (the drift of
//     servers that stamp NotBefore with their own now);
//   - further ahead, it is installed at once only when the certificate in
//     place is no use any more: expired by this clock, or revoked (its
//     OCSP responder says so);
//   - otherwise it is parked beside the outputs (parked.pem) and installed
//     when this clock reaches its start, or earlier when the one in place
//     expires or is found revoked.

// maxStartAhead is how far a renewed certificate's NotBefore may be ahead
// of the agent's clock and still be installed at once, as before a clock
// is suspected: client.VerifyIssued's allowance for a clock behind.
const maxStartAhead = 5 * time.Minute

// ocspTimeout bounds one question to an OCSP responder: not knowing is an
// answer ("not known revoked"), and the renewals of the other
// certificates wait behind it.
const ocspTimeout = 10 * time.Second

// maxOCSPResponse bounds what is read of an OCSP responder's answer.
const maxOCSPResponse = 64 << 10

// parkedPEM is the parked certificate, its chain and its key, in one file
// written by one rename, so that it is never half a pair.
const parkedPEM = "parked.pem"

// parked is a renewed certificate waiting for its start.
type parked struct {
	cert  *x509.Certificate
	chain []*x509.Certificate
	key   crypto.Signer
}

// savePark writes the parked pair (0600: it holds the key).
func (l *layout) savePark(key crypto.Signer, cert *x509.Certificate, chain []*x509.Certificate) error {
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	data := append(encodeCerts(append([]*x509.Certificate{cert}, chain...)...), keyPEM...)
	defer clear(data)
	clear(keyPEM)
	if err := l.stateDir(); err != nil {
		return err
	}
	return l.writeFile(filepath.Join(l.state, parkedPEM), data, 0o600, "")
}

func (l *layout) clearPark() {
	if err := os.Remove(filepath.Join(l.state, parkedPEM)); err == nil {
		syncDir(l.state)
	}
}

// loadPark reads the parked pair, if there is one that is still the
// renewal of the certificate in place: a matching key and certificate,
// chaining to the pinned CA, for the same subject, and starting after the
// certificate in place (one that does not was installed already, or the
// certificate was renewed again since). Anything else is removed, with a
// warning when it could not be read.
func (l *layout) loadPark(c *Certificate, current *x509.Certificate) *parked {
	path := filepath.Join(l.state, parkedPEM)
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	pk, err := readPark(path, fi, c.CAFingerprint)
	switch {
	case err != nil:
		l.warnf("the parked renewal (a certificate waiting for its start) cannot be used; removing it", "file", path, "err", err)
	case !csr.SameName(pk.cert.RawSubject, current.RawSubject):
		l.warnf("the parked renewal is for another subject than the certificate in place; removing it", "file", path,
			"parked", pk.cert.Subject, "in_place", current.Subject)
	case pk.cert.Equal(current) || !pk.cert.NotBefore.After(current.NotBefore):
		// Installed (a run stopped before removing it), or superseded.
	default:
		return pk
	}
	l.clearPark()
	return nil
}

func readPark(path string, fi fs.FileInfo, fingerprint string) (*parked, error) {
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%v): the agent does not follow links to keys", fi.Mode().Type())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(data)
	certs, err := keys.ParseCertsPEM(data)
	if err != nil {
		return nil, err
	}
	key, err := parseKey(data)
	if err != nil {
		return nil, err
	}
	pk := &parked{cert: certs[0], chain: certs[1:], key: key}
	// Checked again, as of its start: the pinned CA may have changed
	// since it was parked.
	if _, err := client.VerifyIssued(pk.cert, key.Public(), pk.chain, fingerprint, pk.cert.NotBefore, nil); err != nil {
		return nil, err
	}
	return pk, nil
}

// replaceNow says why the certificate in place should give way at once to
// a renewal that starts after this clock ("" to keep it): it has expired
// by this clock, or its OCSP responder says it is revoked. cas are the
// CA certificates verified to chain to the pinned CA; extra are further
// certificates (the chain in the certificate file) that may hold its
// issuer.
func (a *Agent) replaceNow(ctx context.Context, c *Certificate, old *x509.Certificate, cas, extra []*x509.Certificate, log *slog.Logger) string {
	now := a.now()
	if !now.Before(old.NotAfter) {
		return "the certificate in place has expired by this machine's clock"
	}
	if revoked, err := a.revoked(ctx, c, old, cas, extra); err != nil {
		log.Warn("could not learn from OCSP whether the certificate in place is revoked; taking it as not revoked", "err", err)
	} else if revoked {
		return "the certificate in place is revoked (OCSP)"
	}
	return ""
}

// revoked asks the OCSP responder of cert's AIA whether it is revoked,
// believing only an answer signed by its issuer, or by a responder that
// issuer delegated, where the issuer chains to the pinned CA. A
// certificate without an OCSP URL is not known revoked.
func (a *Agent) revoked(ctx context.Context, c *Certificate, cert *x509.Certificate, cas, extra []*x509.Certificate) (bool, error) {
	if len(cert.OCSPServer) == 0 {
		return false, nil
	}
	issuer := issuerOf(cert, cas)
	if issuer == nil && len(extra) > 0 {
		if trusted, err := client.TrustedCACerts(append(slices.Clone(cas), extra...), c.CAFingerprint, a.now()); err == nil {
			issuer = issuerOf(cert, trusted)
		}
	}
	if issuer == nil {
		return false, fmt.Errorf("the issuer of the certificate in place (%s) is not among the CA certificates that chain to the pinned CA", cert.Issuer)
	}
	req, err := ocsp.CreateRequest(cert, issuer, &ocsp.RequestOptions{Hash: crypto.SHA256})
	if err != nil {
		return false, fmt.Errorf("OCSP request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, ocspTimeout)
	defer cancel()
	url := cert.OCSPServer[0]
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(req))
	if err != nil {
		return false, fmt.Errorf("OCSP %s: %w", url, err)
	}
	hreq.Header.Set("Content-Type", "application/ocsp-request")
	resp, err := (&http.Client{Timeout: ocspTimeout}).Do(hreq)
	if err != nil {
		return false, fmt.Errorf("OCSP %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("OCSP %s: HTTP %d", url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxOCSPResponse))
	if err != nil {
		return false, fmt.Errorf("OCSP %s: %w", url, err)
	}
	// Its times are not held against this clock, which may be the wrong
	// one: a revocation is final, and an old "good" answer only keeps
	// the certificate in place until the renewal's start.
	r, err := ocsp.ParseResponseForCert(body, cert, issuer)
	if err != nil {
		return false, fmt.Errorf("OCSP %s: %w", url, err)
	}
	if r.Certificate != nil && !r.Certificate.Equal(issuer) && !slices.Contains(r.Certificate.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
		return false, fmt.Errorf("OCSP %s: the responder's certificate %s is not for OCSP signing", url, r.Certificate.Subject)
	}
	return r.Status == ocsp.Revoked, nil
}

// issuerOf is the certificate among cas that signed cert.
func issuerOf(cert *x509.Certificate, cas []*x509.Certificate) *x509.Certificate {
	for _, ca := range cas {
		if ca.IsCA && bytes.Equal(ca.RawSubject, cert.RawIssuer) && cert.CheckSignatureFrom(ca) == nil {
			return ca
		}
	}
	return nil
}

// parkedWake is when a parked renewal is to be looked at again: its start,
// or the expiry of the certificate in place if that comes first.
func parkedWake(old *x509.Certificate, pk *parked) time.Time {
	return minTime(pk.cert.NotBefore, old.NotAfter)
}
