package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
)

// maxClientChain bounds the certificates presented after the client's own:
// no PKI has more tiers, and a loop of cross-signed CAs must end.
const maxClientChain = 8

// chainOf orders the client certificate leaf with those of candidates
// that chain it: its issuer, that one's, and so on, each checked by its
// signature. A candidate that is no link of that chain is left out, so
// nothing unrelated is presented; a self-signed certificate ends it.
func chainOf(leaf *x509.Certificate, candidates []*x509.Certificate) []*x509.Certificate {
	chain := []*x509.Certificate{leaf}
	for cur := leaf; len(chain) <= maxClientChain && !selfSigned(cur); {
		var next *x509.Certificate
		for _, c := range candidates {
			if bytes.Equal(c.RawSubject, cur.RawIssuer) && c.IsCA && !containsCert(chain, c) && cur.CheckSignatureFrom(c) == nil {
				next = c
				break
			}
		}
		if next == nil {
			break
		}
		chain = append(chain, next)
		cur = next
	}
	return chain
}

func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(c) == nil
}

func containsCert(list []*x509.Certificate, c *x509.Certificate) bool {
	for _, l := range list {
		if l.Equal(c) {
			return true
		}
	}
	return false
}

// clientLeaf is the client certificate's own certificate, nil when there
// is none or it cannot be read.
func (c *EST) clientLeaf() *x509.Certificate {
	if c.Certificate == nil || len(c.Certificate.Certificate) == 0 {
		return nil
	}
	if c.Certificate.Leaf != nil {
		return c.Certificate.Leaf
	}
	leaf, err := x509.ParseCertificate(c.Certificate.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}

// localChainCandidates are the certificates given beside the client's own:
// those after it in its file and ClientChain (a chain file).
func (c *EST) localChainCandidates() []*x509.Certificate {
	var out []*x509.Certificate
	for _, der := range c.Certificate.Certificate[1:] {
		if cert, err := x509.ParseCertificate(der); err == nil {
			out = append(out, cert)
		}
	}
	return append(out, c.ClientChain...)
}

// presentedPair is the client certificate as the handshake presents it:
// the leaf, then the CA certificates that chain it, from its file, from
// ClientChain and from the server's /cacerts once fetched (RFC 8446
// §4.4.2: a server that trusts only the root needs the issuing CA sent
// along, and a leaf alone is refused as of an unknown CA).
func (c *EST) presentedPair() *tls.Certificate {
	c.chainMu.Lock()
	defer c.chainMu.Unlock()
	if c.presented != nil {
		return c.presented
	}
	leaf := c.clientLeaf()
	if leaf == nil {
		return c.Certificate
	}
	chain := chainOf(leaf, append(c.localChainCandidates(), c.serverCAs...))
	pair := *c.Certificate
	pair.Leaf = leaf
	pair.Certificate = [][]byte{leaf.Raw}
	for _, ca := range chain[1:] {
		pair.Certificate = append(pair.Certificate, ca.Raw)
	}
	if c.serverCAs != nil || chainComplete(chain) {
		c.presented = &pair // nothing more will be learnt
	}
	return &pair
}

// chainComplete: the chain ends in a self-signed root, or the file gave
// the leaf's issuer (a server that trusts that CA needs nothing more).
func chainComplete(chain []*x509.Certificate) bool {
	return len(chain) > 1 || selfSigned(chain[0])
}

// needsServerCAs: the client certificate's chain, from what was given,
// is the leaf alone, so /cacerts is asked for its issuer before the
// certificate is presented.
func (c *EST) needsServerCAs() bool {
	leaf := c.clientLeaf()
	if leaf == nil {
		return false
	}
	c.chainMu.Lock()
	defer c.chainMu.Unlock()
	return c.serverCAs == nil && !chainComplete(chainOf(leaf, c.localChainCandidates()))
}

// learnServerCAs keeps the CA certificates a server sent as candidates for
// the client certificate's chain; only those that chain it are presented.
func (c *EST) learnServerCAs(certs []*x509.Certificate) {
	c.chainMu.Lock()
	defer c.chainMu.Unlock()
	c.serverCAs = append([]*x509.Certificate{}, certs...)
	c.presented = nil
}

// fetchChainCAs fetches /cacerts on a connection without a client
// certificate, verified as every other, for the client certificate's
// chain; a failure leaves the chain as given (the handshake that follows
// says what the server thinks of it).
func (c *EST) fetchChainCAs(ctx context.Context) {
	if !c.needsServerCAs() {
		return
	}
	cn, err := c.dialAs(ctx, false, &connState{})
	if err != nil {
		c.learnServerCAs([]*x509.Certificate{})
		return
	}
	defer cn.tls.Close()
	certs, err := c.fetchCACerts(ctx, cn)
	if err != nil {
		certs = []*x509.Certificate{}
	}
	c.learnServerCAs(certs)
}

// clientCertAlerts are the TLS alerts (RFC 8446 §6.2) a server sends about
// the client's certificate, by Go's text for them.
var clientCertAlerts = map[string]string{
	"tls: unknown certificate authority": "it does not trust the CA that issued it",
	"tls: bad certificate":               "it found it bad (or wanted one and got none)",
	"tls: unsupported certificate":       "it does not take that kind of certificate",
	"tls: revoked certificate":           "it holds it revoked",
	"tls: expired certificate":           "it holds it expired (or not yet valid) by its clock",
	"tls: certificate unknown":           "it could not accept it",
	"tls: certificate required":          "it requires one",
	"tls: access denied":                 "it does not let that certificate in",
}

// ClientCertRefusedError is a TLS alert a server sent about the client
// certificate: one sent and refused, or none when the server requires one.
type ClientCertRefusedError struct {
	// Sent is the certificate presented, nil when none was.
	Sent *x509.Certificate
	// Chained is how many CA certificates went after it.
	Chained int
	Why     string
	// URLFromConfig: the agent's, whose settings the advice names.
	URLFromConfig bool
	Err           error
}

func (e *ClientCertRefusedError) Error() string {
	if e.Sent == nil {
		if e.URLFromConfig {
			return fmt.Sprintf("the server requires a TLS client certificate and none was sent (%v)", e.Err)
		}
		return fmt.Sprintf("the server requires a TLS client certificate and none was sent (%v): give --cert FILE and --key FILE (a certificate the server's CA issued)", e.Err)
	}
	chain := "alone, with no CA certificate after it"
	if e.Chained > 0 {
		chain = fmt.Sprintf("followed by %d CA certificate(s) of its chain", e.Chained)
	}
	msg := fmt.Sprintf("the server refused the TLS client certificate we sent (subject %s, issued by %s; %s): %s (%v)",
		Printable(e.Sent.Subject.String()), Printable(e.Sent.Issuer.String()), chain, e.Why, e.Err)
	if e.Chained == 0 && !selfSigned(e.Sent) {
		where := "put them after the certificate in its file"
		if e.URLFromConfig {
			where = "put them in chain_path (or after the certificate in cert_path)"
		}
		msg += "; it may want the CA certificates of its chain, found neither with the certificate nor in the server's /cacerts: " + where
	}
	return msg
}

func (e *ClientCertRefusedError) Unwrap() error { return e.Err }

// explainAlert is err, a failed handshake or the read after it (TLS 1.3
// sends a refusal of the client's certificate after the client's side of
// the handshake is done), said to be about the client certificate when it
// is an alert about one and the server asked for one.
func (c *EST) explainAlert(cn *connState, err error) error {
	var op *net.OpError
	if cn == nil || !cn.requested || !errors.As(err, &op) || op.Op != "remote error" || op.Err == nil {
		return err
	}
	why, ok := clientCertAlerts[op.Err.Error()]
	if !ok {
		return err
	}
	e := &ClientCertRefusedError{Why: why, URLFromConfig: c.URLFromConfig, Err: err}
	if cn.sent != nil && len(cn.sent.Certificate) > 0 {
		e.Sent = cn.sent.Leaf
		if e.Sent == nil {
			e.Sent, _ = x509.ParseCertificate(cn.sent.Certificate[0])
		}
		e.Chained = len(cn.sent.Certificate) - 1
	}
	if e.Sent == nil && why != clientCertAlerts["tls: certificate required"] && why != clientCertAlerts["tls: bad certificate"] {
		return err
	}
	return e
}

// connState is what one connection's handshake did with the client
// certificate.
type connState struct {
	requested bool             // the server asked for one
	sent      *tls.Certificate // what was presented, nil when nothing
}
