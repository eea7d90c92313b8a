package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/client"
)

// caCertsFetcher is a Renewer that can fetch the CA certificates its server
// presents, without asking for anything: what the certificate in place is
// checked against when no file on this machine holds its issuer.
type caCertsFetcher interface {
	CACerts(ctx context.Context, c *Certificate, r RenewRequest) ([]*x509.Certificate, error)
}

// CACerts implements caCertsFetcher with GetCACert.
func (SCEPRenewer) CACerts(ctx context.Context, c *Certificate, r RenewRequest) ([]*x509.Certificate, error) {
	return (&client.SCEP{URL: c.URL, Fingerprint: c.CAFingerprint, Now: r.Now, Warnf: r.Warnf, URLFromConfig: true}).GetCACert(ctx)
}

// CACerts implements caCertsFetcher with /cacerts, presenting the
// certificate in place (r.Old) when the server asks for a client
// certificate, as the renewal does: a server that requires one (RFC 7030
// allows it for /cacerts too) would otherwise refuse the handshake, and
// the check would never happen.
func (ESTRenewer) CACerts(ctx context.Context, c *Certificate, r RenewRequest) ([]*x509.Certificate, error) {
	return (&client.EST{URL: c.URL, Fingerprint: c.CAFingerprint, Certificate: clientPair(r), ClientChain: chainFileCerts(c), Now: r.Now, Warnf: r.Warnf, URLFromConfig: true}).CACerts(ctx)
}

// errNotOurs: the certificate in place was not issued under the pinned CA.
var errNotOurs = errors.New("does not chain to the pinned CA")

// checkInPlace makes sure that the certificate in place was issued under
// the pinned CA before anything is decided about it: key_path and
// cert_path are files that someone else may have replaced with a key and
// certificate of their own (readPair has checked that they match), which
// the agent must neither report as "not due" nor renew with. Its issuer is
// looked for among the CA certificates on this machine (the certificate
// file, chain_path, the chain the agent installed last) and then, when
// none of them is it, among those the server presents and at the
// certificate's caIssuers URL. A server that cannot be reached, or that
// presents no pinned CA, leaves the question open: a warning, and the
// check goes on. Links through the agent's own generations, and a
// certificate found good before, are not looked at again.
func (a *Agent) checkInPlace(ctx context.Context, c *Certificate, l *layout, p *pair, log *slog.Logger) error {
	if l.ownLinks() {
		return nil
	}
	sum := sha256.Sum256(p.cert.Raw)
	if a.verifiedInPlace[c.Name] == sum {
		return nil
	}
	local := localCACerts(l, p)
	found := trustedIssuerAmong(p.cert, local, c.CAFingerprint, a.now()) != nil
	if !found {
		f, ok := a.renewer(c.Protocol).(caCertsFetcher)
		if !ok {
			return nil
		}
		// ctx carries the attempt's deadline (renew_timeout), which this
		// fetch shares with the renewal after it.
		fctx := ctx
		warnf := func(format string, args ...any) { log.Warn(fmt.Sprintf(format, args...)) }
		cas, err := f.CACerts(fctx, c, RenewRequest{Config: c, Old: p.cert, OldChain: p.extra, OldKey: p.key, Now: a.now, Warnf: warnf})
		if err != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				// The attempt has no time left for a renewal: say so,
				// not that it goes on.
				log.Warn("could not fetch the CA certificates to check that the certificate in place chains to the pinned CA: the fetch took the whole renew_timeout, so this attempt asks the server nothing", "err", err)
				return &caFetchStalled{err}
			}
			log.Warn("could not fetch the CA certificates to check that the certificate in place chains to the pinned CA; going on without that check", "err", err)
			return nil
		}
		all := append(local, client.WithIssuer(fctx, p.cert, cas, c.CAFingerprint)...)
		if err := client.WithTrustNaming(client.CheckFingerprint(all, c.CAFingerprint), client.NamingAgent); err != nil {
			// The server's trouble (or the pin's), which its renewal
			// reports; it says nothing of the certificate in place.
			log.Warn("cannot check that the certificate in place chains to the pinned CA", "err", err)
			return nil
		}
		found = trustedIssuerAmong(p.cert, all, c.CAFingerprint, a.now()) != nil
	}
	if !found {
		return notOurs(l, p, c)
	}
	if a.verifiedInPlace == nil {
		a.verifiedInPlace = map[string][sha256.Size]byte{}
	}
	a.verifiedInPlace[c.Name] = sum
	return nil
}

// caFetchStalled: the CA certificates fetch of checkInPlace ran until the
// attempt's deadline (renew_timeout). The check goes on without it, as
// for any failed fetch; a renewal after it would fail at once, blaming
// its own first connection, so it is not tried, and the attempt's error
// names the fetch.
type caFetchStalled struct{ err error }

func (e *caFetchStalled) Error() string {
	msg := e.err.Error()
	if step, ok := strings.CutSuffix(msg, ": "+context.DeadlineExceeded.Error()); ok {
		msg = step + " did not finish"
	}
	return "the CA certificates fetch (to check the certificate in place) took it all (" + msg + "); nothing was asked for"
}

func (e *caFetchStalled) Unwrap() error { return e.err }

// notOurs is the failure of a certificate in place that does not chain to
// the pinned CA.
func notOurs(l *layout, p *pair, c *Certificate) error {
	return fmt.Errorf("the certificate in place, %s (subject %s, issuer %s), %w (ca_fingerprint %s): it is not the one the agent manages (replaced by someone who may write its directory?), and nothing is renewed with it; "+
		"put back a certificate of that CA and its key (or enroll again), and if its issuing CA is no longer served, set chain_path to a file holding its chain",
		l.cert, p.cert.Subject, p.cert.Issuer, errNotOurs, c.CAFingerprint)
}

// ownLinks: key_path and cert_path are the agent's links into its
// generations. It checked the certificate there when it installed it (or
// moved it in), and its state directory is its own.
func (l *layout) ownLinks() bool {
	return !l.combined() && l.isOurLink(l.key, "key.pem") && l.isOurLink(l.cert, "cert.pem")
}

// localCACerts are the CA certificates on this machine that may hold the
// issuer of the certificate in place: those of the certificate file, of
// chain_path, and of the chain the agent installed last.
func localCACerts(l *layout, p *pair) []*x509.Certificate {
	local := slices.Clone(p.extra)
	if l.separateChain() {
		chain, _ := readChainFile(l.chain)
		local = append(local, chain...)
	}
	if chain, err := readChainFile(filepath.Join(l.state, currentName, "chain.pem")); err == nil {
		local = append(local, chain...)
	}
	return local
}

// statusInPlace is checkInPlace for `agent status`, which asks no server:
// a certificate in place whose issuer is not among the CA certificates on
// this machine is a problem only when it is self-signed, which no
// certificate of the pinned CA's is; any other may have an issuer only
// the server knows.
func statusInPlace(l *layout, p *pair, c *Certificate, now time.Time) error {
	if l.ownLinks() || trustedIssuerAmong(p.cert, localCACerts(l, p), c.CAFingerprint, now) != nil {
		return nil
	}
	if bytes.Equal(p.cert.RawIssuer, p.cert.RawSubject) && p.cert.CheckSignature(p.cert.SignatureAlgorithm, p.cert.RawTBSCertificate, p.cert.Signature) == nil {
		return notOurs(l, p, c)
	}
	return nil
}
