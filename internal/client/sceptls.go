package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/scepter/scepter/internal/pki"
)

// pinnedTLS bootstraps the trust in an https SCEP server from the pinned
// CA fingerprint: GetCACert is fetched on a connection that is checked
// only afterwards, kept for nothing else and carrying no secret, and the
// server's TLS certificate must chain to the pinned CA among what it sent,
// and to nothing else. It returns the TLS configuration that holds every
// later connection to the same.
func (c *SCEP) pinnedTLS(ctx context.Context, u *url.URL) (*tls.Config, error) {
	boot := http.DefaultTransport.(*http.Transport).Clone()
	// Verified below, before anything from this connection is believed.
	boot.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}
	boot.DisableKeepAlives = true
	defer boot.CloseIdleConnections()
	bu, err := c.operationURL("GetCACert", "")
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, bu.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, body, err := c.doWith(&http.Client{Transport: boot, Timeout: scepHTTPTimeout, CheckRedirect: refuseRedirect}, req)
	if err != nil {
		return nil, fmt.Errorf("fetching the CA certificates to check the server's TLS certificate against: %w", err)
	}
	if resp.TLS == nil {
		return nil, errors.New("GetCACert: the reply did not come over TLS")
	}
	certs, err := parseGetCACert(resp, body)
	if err != nil {
		return nil, err
	}
	// Only the pinned CA is an anchor, and only what chains to it helps
	// the server's certificate chain (TrustedCACerts).
	if certs, err = TrustedCACerts(certs, c.Fingerprint, c.now()); err != nil {
		return nil, WithTrustNaming(err, c.trustNaming())
	}
	anchors, inter, _, err := caPools(certs, c.Fingerprint)
	if err != nil {
		return nil, err
	}
	verify := func(cs tls.ConnectionState) error {
		return WithTrustNaming(verifyPinnedPeer(cs, anchors, inter, certs, u.Hostname(), c.Fingerprint, c.now()), c.trustNaming())
	}
	if err := verify(*resp.TLS); err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Time: c.now,
		// Go's own check knows only the intermediates the server sends:
		// VerifyConnection adds GetCACert's, with the pinned CA as the
		// only anchor.
		InsecureSkipVerify: true, VerifyConnection: verify}, nil
}

// verifyPinnedPeer checks a server's TLS certificate, for host at now,
// against the pinned CA (anchors, with inter to help; cas are the CA
// certificates the server sent, trusted, they came from) and nothing else:
// a pin means only that CA, as for EST, so a proxy or impostor with a
// certificate from a public CA is refused. A server that sent its own
// certificate alone, whose issuer none of cas is, is told so: it left its
// intermediate CA out of the handshake.
func verifyPinnedPeer(cs tls.ConnectionState, anchors, inter *x509.CertPool, cas []*x509.Certificate, host, fingerprint string, now time.Time) error {
	peers := cs.PeerCertificates
	if len(peers) == 0 {
		return errors.New("the server sent no TLS certificate")
	}
	pool := inter.Clone()
	for _, p := range peers[1:] {
		pool.AddCert(p)
	}
	err := verifyPeer(peers[0], x509.VerifyOptions{Roots: anchors, Intermediates: pool, DNSName: host, CurrentTime: now}, fingerprint)
	var unknown x509.UnknownAuthorityError
	leaf := peers[0]
	if err == nil || len(peers) > 1 || !errors.As(err, &unknown) || IssuerAmong(leaf, cas) != nil || bytes.Equal(leaf.RawIssuer, leaf.RawSubject) {
		return err
	}
	return &NoIntermediateError{Err: err, Issuer: Printable(pki.Clip(leaf.Issuer.String(), 200))}
}

// verifyPeer verifies a server's TLS certificate with opts, telling a
// certificate of the pinned CA for other names (Verify checks the name
// first) from one that does not chain to that CA.
func verifyPeer(leaf *x509.Certificate, opts x509.VerifyOptions, fingerprint string) error {
	_, err := leaf.Verify(opts)
	if err == nil {
		return nil
	}
	var hostErr x509.HostnameError
	if errors.As(err, &hostErr) {
		anyName := opts
		anyName.DNSName = ""
		if _, cerr := leaf.Verify(anyName); cerr == nil {
			return fmt.Errorf("the server's TLS certificate is from the CA with fingerprint %s, but not for %s (connect by a name it has, or give the server that name: scepter serve --est-server-name): %w", fingerprint, opts.DNSName, err)
		}
	}
	return fmt.Errorf("the server's TLS certificate does not chain to the CA with fingerprint %s: %w", fingerprint, err)
}
