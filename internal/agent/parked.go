package agent

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
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
	"strings"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
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
//     OCSP responder or, without one, its CRL says so);
//   - otherwise it is parked beside the outputs (parked.pem) and installed
//     when this clock reaches its start, or earlier when the one in place
//     expires or is found revoked.

// maxStartAhead is how far a renewed certificate's NotBefore may be ahead
// of the agent's clock and still be installed at once, as before a clock
// is suspected: client.VerifyIssued's allowance for a clock behind.
const maxStartAhead = 5 * time.Minute

// ocspTimeout bounds one question to an OCSP responder, or one CRL
// fetch: not knowing is an answer ("not known revoked"), and the
// renewals of the other certificates wait behind it.
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
	case !pk.renews(current):
		// Installed (a run stopped before removing it), or superseded.
	default:
		return pk
	}
	l.clearPark()
	return nil
}

// peekPark is loadPark for a reader (`scepter agent status`): it removes
// nothing and warns of nothing.
func (l *layout) peekPark(c *Certificate, current *x509.Certificate) *parked {
	path := filepath.Join(l.state, parkedPEM)
	fi, err := os.Lstat(path)
	if err != nil {
		return nil
	}
	pk, err := readPark(path, fi, c.CAFingerprint)
	if err != nil || !csr.SameName(pk.cert.RawSubject, current.RawSubject) || !pk.renews(current) {
		return nil
	}
	return pk
}

// renews: the parked certificate is still to replace current, not it (a
// run stopped before removing the file) nor one it superseded since.
func (pk *parked) renews(current *x509.Certificate) bool {
	return !pk.cert.Equal(current) && pk.cert.NotBefore.After(current.NotBefore)
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
// by this clock, or its OCSP responder or CRL says it is revoked. cas are
// the CA certificates verified to chain to the pinned CA; extra are
// further certificates (the chain in the certificate file) that may hold
// its issuer. knowable is false when the certificate names no way to
// learn that it is revoked (no OCSP URL, no CRL distribution point).
// nextUpdate is when the answer (OCSP or CRL) said a newer one is to be
// published, zero when it said nothing or there was none.
func (a *Agent) replaceNow(ctx context.Context, c *Certificate, old *x509.Certificate, cas, extra []*x509.Certificate, log *slog.Logger) (why string, knowable bool, nextUpdate time.Time) {
	if !a.now().Before(old.NotAfter) {
		return whyExpired, true, time.Time{}
	}
	revoked, how, nextUpdate, err := a.revoked(ctx, c, old, cas, extra)
	switch {
	case errors.Is(err, errNoRevocationSource):
		log.Warn("whether the certificate in place is revoked cannot be learned: it names no OCSP responder and no http(s) CRL distribution point (an ldap one is not fetched); taking it as not revoked",
			"serial", pki.SerialText(old.SerialNumber))
		return "", false, time.Time{}
	case err != nil:
		log.Warn("could not learn from OCSP or the CRL whether the certificate in place is revoked; taking it as not revoked", "err", err)
	case revoked:
		return "the certificate in place is revoked (" + how + ")", true, nextUpdate
	}
	return "", true, nextUpdate
}

const whyExpired = "the certificate in place has expired by this machine's clock"

// errNoRevocationSource: the certificate names neither an OCSP URL nor a
// CRL distribution point the agent can fetch.
var errNoRevocationSource = errors.New("the certificate names no OCSP responder and no http CRL distribution point")

// revoked asks the OCSP responder of cert's AIA whether it is revoked,
// or, without one (a profile may leave it out) or when it does not
// answer, looks it up in the CRL of its distribution point. Only an
// answer signed by its issuer (or, for OCSP, by a responder that issuer
// delegated) is believed, where the issuer chains to the pinned CA. how
// says which answered.
func (a *Agent) revoked(ctx context.Context, c *Certificate, cert *x509.Certificate, cas, extra []*x509.Certificate) (revoked bool, how string, nextUpdate time.Time, err error) {
	crlURLs := fetchableURLs(cert.CRLDistributionPoints)
	if len(cert.OCSPServer) == 0 && len(crlURLs) == 0 {
		return false, "", time.Time{}, errNoRevocationSource
	}
	issuer, err := a.trustedIssuer(ctx, c, cert, cas, extra)
	if err != nil {
		return false, "", time.Time{}, err
	}
	hc := revocationClient(append(slices.Clone(cas), issuer))
	var problems []string
	if len(cert.OCSPServer) > 0 {
		revoked, next, err := askOCSP(ctx, hc, cert, issuer)
		if err == nil {
			return revoked, "OCSP", next, nil
		}
		problems = append(problems, err.Error())
	}
	for _, u := range crlURLs {
		revoked, next, err := inCRL(ctx, hc, u, cert, issuer)
		if err == nil {
			return revoked, "CRL", next, nil
		}
		problems = append(problems, err.Error())
	}
	return false, "", time.Time{}, errors.New(strings.Join(problems, "; "))
}

// trustedIssuer finds the certificate of the CA that issued cert among,
// in turn, cas (already verified), the certificates of the certificate
// file and of chain_path, and those at cert's caIssuers URLs. After a CA
// rollover the new chain no longer holds the previous issuing CA, which
// the installed chain or its caIssuers URL still do. Whatever is not
// among cas is believed only if it chains, at this clock, to the pinned
// CA: else a file or a server could name a CA of its own making, and
// sign a revocation with it.
func (a *Agent) trustedIssuer(ctx context.Context, c *Certificate, cert *x509.Certificate, cas, extra []*x509.Certificate) (*x509.Certificate, error) {
	if issuer := client.IssuerAmong(cert, cas); issuer != nil {
		return issuer, nil
	}
	pool := append(slices.Clone(cas), extra...)
	var problems []string
	if c.ChainPath != "" && c.ChainPath != c.CertPath && c.ChainPath != c.KeyPath {
		chain, err := readChainFile(c.ChainPath)
		if err != nil {
			problems = append(problems, err.Error())
		}
		pool = append(pool, chain...)
	}
	if issuer := trustedIssuerAmong(cert, pool, c.CAFingerprint, a.now()); issuer != nil {
		return issuer, nil
	}
	if len(cert.IssuingCertificateURL) > 0 {
		// Bounded in time and size by the client (caIssuers); only CA
		// certificates that are not self-signed are kept.
		fetched := client.WithIssuer(ctx, cert, cas, c.CAFingerprint)[len(cas):]
		if issuer := trustedIssuerAmong(cert, append(pool, fetched...), c.CAFingerprint, a.now()); issuer != nil {
			return issuer, nil
		}
		problems = append(problems, fmt.Sprintf("its caIssuers URL %s gave none that chains to the pinned CA", cert.IssuingCertificateURL[0]))
	}
	msg := fmt.Sprintf("the issuer of the certificate in place (%s) is not among the CA certificates that chain to the pinned CA (the new chain, the certificate file, chain_path, caIssuers)", cert.Issuer)
	if len(problems) > 0 {
		msg += ": " + strings.Join(problems, "; ")
	}
	return nil, errors.New(msg)
}

// trustedIssuerAmong is the certificate among certs that issued cert and
// chains, at now, to the CA with the fingerprint.
func trustedIssuerAmong(cert *x509.Certificate, certs []*x509.Certificate, fingerprint string, now time.Time) *x509.Certificate {
	trusted, err := client.TrustedCACerts(certs, fingerprint, now)
	if err != nil {
		return nil
	}
	return client.IssuerAmong(cert, trusted)
}

// maxChainFile bounds what is read of chain_path: a few CA certificates.
const maxChainFile = 1 << 20

func readChainFile(path string) ([]*x509.Certificate, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("chain_path: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxChainFile))
	if err != nil {
		return nil, fmt.Errorf("chain_path %s: %w", path, err)
	}
	certs, err := keys.ParseCertsPEM(data)
	if err != nil {
		return nil, fmt.Errorf("chain_path %s: %w", path, err)
	}
	return certs, nil
}

// askOCSP asks cert's first OCSP responder whether it is revoked, and
// returns the answer's nextUpdate (zero when it gives none).
func askOCSP(ctx context.Context, hc *http.Client, cert, issuer *x509.Certificate) (bool, time.Time, error) {
	req, err := ocsp.CreateRequest(cert, issuer, &ocsp.RequestOptions{Hash: crypto.SHA256})
	if err != nil {
		return false, time.Time{}, fmt.Errorf("OCSP request: %w", err)
	}
	url := cert.OCSPServer[0]
	body, err := fetchBounded(ctx, hc, http.MethodPost, url, req, "application/ocsp-request", maxOCSPResponse)
	if err != nil {
		return false, time.Time{}, fmt.Errorf("OCSP %s: %w", url, err)
	}
	// Its times are not held against this clock, which may be the wrong
	// one: a revocation is final, and an old "good" answer only keeps
	// the certificate in place until the renewal's start.
	r, err := ocsp.ParseResponseForCert(body, cert, issuer)
	if err != nil {
		return false, time.Time{}, fmt.Errorf("OCSP %s: %w", url, err)
	}
	if r.Certificate != nil && !r.Certificate.Equal(issuer) && !slices.Contains(r.Certificate.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
		return false, time.Time{}, fmt.Errorf("OCSP %s: the responder's certificate %s is not for OCSP signing", url, r.Certificate.Subject)
	}
	return r.Status == ocsp.Revoked, r.NextUpdate, nil
}

// maxCRL bounds what is read of a CRL: the revoked certificates of one
// CA that are not expired yet.
const maxCRL = 16 << 20

// inCRL fetches the CRL at url and says whether cert is on it, and when
// the next CRL is due (its nextUpdate, zero when it gives none). As for
// OCSP, its times are not held against this clock: a stale CRL that
// lists the certificate still shows a final revocation.
func inCRL(ctx context.Context, hc *http.Client, url string, cert, issuer *x509.Certificate) (bool, time.Time, error) {
	der, err := fetchBounded(ctx, hc, http.MethodGet, url, nil, "", maxCRL)
	if err != nil {
		return false, time.Time{}, fmt.Errorf("CRL %s: %w", url, err)
	}
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		return false, time.Time{}, fmt.Errorf("CRL %s: %w", url, err)
	}
	if err := client.CheckCRLIssuer(list, issuer); err != nil {
		return false, time.Time{}, fmt.Errorf("CRL %s: %w", url, err)
	}
	for _, e := range list.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
			return true, list.NextUpdate, nil
		}
	}
	return false, list.NextUpdate, nil
}

// revocationClient fetches OCSP answers and CRLs. Over https it trusts the
// system roots and the CA certificates that chain to the pinned CA: a
// scepter server serves its CRLs and OCSP under a TLS certificate of its
// own CA. (The answers are checked against the issuer's signature either
// way; TLS adds nothing to that, but must not refuse the CA's own server.)
func revocationClient(cas []*x509.Certificate) *http.Client {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	for _, c := range cas {
		roots.AddCert(c)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return &http.Client{Timeout: ocspTimeout, Transport: tr}
}

// fetchBounded does one HTTP request within ocspTimeout and reads at
// most limit bytes of its answer (more is an error, not a truncation).
func fetchBounded(ctx context.Context, hc *http.Client, method, url string, body []byte, contentType string, limit int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, ocspTimeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		hreq.Header.Set("Content-Type", contentType)
	}
	resp, err := hc.Do(hreq)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}

// fetchableURLs are the http and https URLs among urls (not LDAP).
func fetchableURLs(urls []string) []string {
	var out []string
	for _, u := range urls {
		if strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") {
			out = append(out, u)
		}
	}
	return out
}

// While a renewal is parked, the agent asks again whether the certificate
// in place is revoked. The server revokes a superseded certificate as it
// issues the renewal but may publish the CRL (or OCSP answer) that says
// so a moment later, so the answer at the renewal is often "not yet
// revoked": the first rechecks come within minutes, whatever that
// answer's nextUpdate says. After them the certificate in place is
// revoked only as any certificate is, and a renewal may stay parked for
// hours (a server whose clock is ahead, for every device of a fleet): the
// rechecks back off, jittered so that devices parked together do not ask
// together, and none comes before the nextUpdate of the last answer (read
// on this clock, as the parked start is: both are the server's times) nor
// after the parked certificate's start, when it is installed anyway.
const (
	// parkedRecheckFirst is the wait before the first recheck, doubled
	// for each one after, up to parkedRecheckMax.
	parkedRecheckFirst = 2 * time.Minute
	parkedRecheckMax   = 30 * time.Minute
	// parkedEarlyRechecks is how many rechecks (after waits of 2, 4 and
	// 8 minutes, jittered) come whatever the nextUpdate of the answer
	// before.
	parkedEarlyRechecks = 3
)

// recheck is when the agent asks again whether the certificate in place
// of a parked renewal is revoked.
type recheck struct {
	parked string    // fingerprint of the parked certificate
	done   int       // rechecks made since the renewal was parked
	asked  time.Time // when the last question was asked
	next   time.Time // no question before this
	// knowable: the last question had a source to ask (an OCSP URL, a
	// CRL distribution point).
	knowable bool
}

// recheckDelay is the wait before recheck n (1 for the first):
// parkedRecheckFirst doubled for each one after, at most
// parkedRecheckMax, then lengthened by up to half by jitter, a number in
// [0, 1).
func recheckDelay(n int, jitter float64) time.Duration {
	d := parkedRecheckFirst
	for i := 1; i < n && d < parkedRecheckMax; i++ {
		d *= 2
	}
	d = min(d, parkedRecheckMax)
	if jitter < 0 || jitter >= 1 {
		jitter = 0
	}
	return d + time.Duration(jitter*float64(d/2))
}

// recheckDue: the revocation of the certificate in place of the parked
// renewal is to be asked about now. It is when the agent has not asked
// about this parked certificate yet (one parked by an earlier run), at
// the recheck time, and when the clock went back past the last question.
func (a *Agent) recheckDue(name string, parked *x509.Certificate, now time.Time) bool {
	r := a.rechecks[name]
	return r == nil || r.parked != client.Fingerprint(parked) || !now.Before(r.next) || now.Before(r.asked)
}

// noteAsked records a question about the certificate in place of a parked
// renewal, asked at now and answered with nextUpdate (knowable: there was
// somewhere to ask), and returns when to ask again. atPark: asked as the
// renewal was parked. A renewal parked by an earlier run (a restarted
// agent, a --once run) is taken as past its first rechecks: when it was
// parked is not known.
func (a *Agent) noteAsked(name string, parked *x509.Certificate, now, nextUpdate time.Time, knowable, atPark bool) time.Time {
	fp := client.Fingerprint(parked)
	r := a.rechecks[name]
	switch {
	case atPark:
		r = &recheck{parked: fp, done: -1}
	case r == nil || r.parked != fp:
		r = &recheck{parked: fp, done: parkedEarlyRechecks - 1}
	}
	r.done++
	r.asked, r.knowable = now, knowable
	r.next = now.Add(recheckDelay(r.done+1, a.jitter()))
	if r.done >= parkedEarlyRechecks && nextUpdate.After(r.next) {
		r.next = nextUpdate
	}
	if a.rechecks == nil {
		a.rechecks = map[string]*recheck{}
	}
	a.rechecks[name] = r
	return r.next
}

// forgetRecheck drops what noteAsked recorded for a certificate whose
// parked renewal is installed.
func (a *Agent) forgetRecheck(name string) { delete(a.rechecks, name) }

// parkedWake is when a parked renewal is to be looked at again: its start,
// the expiry of the certificate in place if that comes first, or, when the
// revocation of the one in place can be learned, the recheck if earlier.
func parkedWake(old, parked *x509.Certificate, knowable bool, recheck time.Time) time.Time {
	wake := minTime(parked.NotBefore, old.NotAfter)
	if knowable {
		wake = minTime(wake, recheck)
	}
	return wake
}
