package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/pki"
)

// EST is a client for one EST server and label (RFC 7030, RFC 8951). Every
// operation uses a TLS connection of its own, so a CSR can carry that
// connection's channel binding.
type EST struct {
	// URL is https://HOST[:PORT], optionally followed by a label
	// (https://HOST/LABEL) or the full path (…/.well-known/est/LABEL).
	URL string
	// Roots are the trust anchors for the server's TLS certificate. With
	// none, Fingerprint bootstraps them (RFC 7030 §4.1.1): /cacerts is
	// fetched, one of its certificates must have that SHA-256, and the
	// server's TLS certificate must chain to the returned CAs. With
	// neither, the system roots are used.
	Roots       *x509.CertPool
	Fingerprint string
	// RootsFile names the file Roots were read from (scepter's --cacert),
	// for the error when the server's certificate does not chain to
	// them; empty, that error is Go's.
	RootsFile string
	// Certificate authenticates the client in the TLS handshake
	// (re-enrollment, or a manufacturer certificate). The CA certificates
	// after its own, those of ClientChain and those /cacerts sends that
	// chain it are presented with it; others are left out.
	Certificate *tls.Certificate
	// ClientChain are more candidates for Certificate's chain (the
	// agent's chain_path).
	ClientChain []*x509.Certificate
	// User and Password are sent as HTTP Basic when User or Password is set.
	User, Password string
	// MinVersion and MaxVersion bound TLS (zero: 1.2 to 1.3).
	MinVersion, MaxVersion uint16
	// Timeout bounds each exchange; zero means 60 s.
	Timeout time.Duration
	// Now is the client's clock (TLS validity checks, polling); nil means
	// pki.SystemClock.
	Now func() time.Time
	// Warnf, when set, receives what the caller should show.
	Warnf func(format string, args ...any)
	// URLFromConfig says URL is the `url` setting of a configuration file
	// (the agent's), not scepter's --url: advice to give another URL
	// names that setting.
	URLFromConfig bool

	once     sync.Once
	base     *url.URL
	host     string
	baseErr  error
	bootOnce sync.Mutex
	// booted holds, once the bootstrap verified /cacerts against the
	// fingerprint, what it trusts: every later connection's TLS
	// certificate is verified as the bootstrap's was, with those CA
	// certificates' intermediates to help (a server that leaves its
	// intermediate out of the handshake passes the bootstrap by them).
	booted *bootTrust

	chainMu   sync.Mutex
	serverCAs []*x509.Certificate // /cacerts, once fetched, for the client chain
	presented *tls.Certificate    // the client certificate as presented, once settled
}

// bootTrust is what a bootstrap from a fingerprint established.
type bootTrust struct {
	anchors, inter *x509.CertPool
	cas            []*x509.Certificate // the trusted /cacerts
}

// HTTPError is a refusal: the server's status and its reason.
type HTTPError struct {
	Status int
	Reason string
	// Redirect is where a 3xx points, without user info: never followed,
	// so that a password and a CSR go only where the URL says.
	Redirect string
	// Op is the operation asked for, which a redirect's target may end
	// with.
	Op string
	// RetryAfter is the wait a 503 or 429 asked for with Retry-After
	// (RFC 9110 §10.2.3), zero when none.
	RetryAfter time.Duration
	// URLFromConfig: the URL asked is a configuration file's `url`
	// setting (the agent's), which advice names instead of --url.
	URLFromConfig bool
	// AuthSchemes are the authentication schemes a 401's WWW-Authenticate
	// offers ("Basic", "Digest"…), as the server spells them.
	AuthSchemes []string
}

// OtherAuthScheme is, for a 401 whose WWW-Authenticate offers schemes but
// not Basic (RFC 7030 §3.2.3 allows Digest), those schemes ("Digest"): the
// server judged no password, for it asked for one in another form than
// the client sends. "" for any other answer.
func (e *HTTPError) OtherAuthScheme() string {
	if e.Status != http.StatusUnauthorized || len(e.AuthSchemes) == 0 {
		return ""
	}
	for _, s := range e.AuthSchemes {
		if strings.EqualFold(s, "Basic") {
			return ""
		}
	}
	return Printable(pki.Clip(strings.Join(e.AuthSchemes, ", "), 100))
}

// authSchemes reads the schemes of WWW-Authenticate headers (RFC 9110
// §11.6.1): each challenge starts with its scheme, a token that, unlike
// the auth-params after it, holds no "="; challenges and parameters are
// separated by commas outside quoted strings.
func authSchemes(values []string) []string {
	var schemes []string
	for _, v := range values {
		var parts []string
		quoted, escaped, start := false, false, 0
		for i, r := range v {
			switch {
			case escaped:
				escaped = false
			case quoted && r == '\\':
				escaped = true
			case r == '"':
				quoted = !quoted
			case r == ',' && !quoted:
				parts = append(parts, v[start:i])
				start = i + 1
			}
		}
		parts = append(parts, v[start:])
		for _, p := range parts {
			word, _, _ := strings.Cut(strings.TrimSpace(p), " ")
			if word != "" && !strings.Contains(word, "=") && !slices.ContainsFunc(schemes, func(s string) bool { return strings.EqualFold(s, word) }) {
				schemes = append(schemes, word)
			}
		}
	}
	return schemes
}

func (e *HTTPError) Error() string {
	if e.Redirect != "" {
		advice := "give that URL with --url if you trust it"
		if e.URLFromConfig {
			advice = "set this certificate's url to that URL in the configuration file if you trust it"
		}
		if base, ok := strings.CutSuffix(e.Redirect, "/"+e.Op); ok && e.Op != "" {
			advice = "give --url " + base + " if you trust it"
			if e.URLFromConfig {
				advice = fmt.Sprintf("set url = %q for this certificate in the configuration file if you trust it", base)
			}
		}
		if u, err := url.Parse(e.Redirect); err != nil || u.Scheme != "https" {
			// Not a URL EST can be given: offering it would be advice
			// to send the password in the clear, or nowhere.
			advice = "it is no https URL, which EST needs"
		}
		// A server's header, cut as other quoted texts are: it may be
		// megabytes long.
		return fmt.Sprintf("HTTP %d: the server redirects to %s; scepter does not follow redirects (the password and the CSR must not go elsewhere): %s",
			e.Status, Printable(pki.Clip(e.Redirect, maxLocationShown)), Printable(pki.Clip(advice, maxLocationShown+64)))
	}
	msg := fmt.Sprintf("HTTP %d", e.Status)
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	if other := e.OtherAuthScheme(); other != "" {
		msg += fmt.Sprintf("; the server asks for HTTP %s authentication (WWW-Authenticate), which scepter's EST client does not send: "+
			"it authenticates with HTTP Basic (a user and password) or a TLS client certificate, so no password was judged", other)
	}
	return msg
}

func (c *EST) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return pki.SystemClock{}.Now()
}

func (c *EST) warnf(format string, args ...any) {
	if c.Warnf != nil {
		c.Warnf(format, args...)
	}
}

// CheckURL reports whether URL is one the client can use, before anything
// is sent.
func (c *EST) CheckURL() error {
	_, err := c.parseURL()
	return err
}

// parseURL splits URL into the operations' base and the TLS server name.
func (c *EST) parseURL() (*url.URL, error) {
	c.once.Do(func() {
		// The rules are est.ParseClientURL's, which the load tool follows
		// too; the refusals name this client's flags.
		host, label, err := est.ParseClientURL(c.URL)
		switch {
		case errors.Is(err, est.ErrURLCredentials):
			c.baseErr = fmt.Errorf("EST URL %q carries credentials: give them as the HTTP Basic user and password (--user, --password-file), not in the URL", RedactURL(c.URL))
			return
		case errors.Is(err, est.ErrURLQuery):
			c.baseErr = fmt.Errorf("EST URL %q has a query or fragment, which EST's paths do not take (RFC 7030 §3.2.2): give a label as the last path segment, https://HOST/.well-known/est/LABEL", RedactURL(c.URL))
			return
		case errors.Is(err, est.ErrURLLabel):
			c.baseErr = fmt.Errorf("EST URL %q: a label is one path segment", RedactURL(c.URL))
			return
		case err != nil:
			c.baseErr = fmt.Errorf("EST URL %q: want https://HOST[:PORT][/LABEL]", RedactURL(c.URL))
			return
		}
		path := est.PathPrefix
		if label != "" {
			path += label + "/"
		}
		c.base = &url.URL{Scheme: "https", Host: host, Path: path}
		c.host = (&url.URL{Host: host}).Hostname()
	})
	return c.base, c.baseErr
}

// tlsConfig is the connection's TLS configuration; with no roots and a
// fingerprint it verifies nothing, and the caller checks the chain itself.
func (c *EST) tlsConfig(st *connState, present bool) *tls.Config {
	cfg := &tls.Config{
		ServerName: c.host,
		RootCAs:    c.Roots,
		MinVersion: c.MinVersion,
		MaxVersion: c.MaxVersion,
		Time:       c.now,
		NextProtos: []string{"http/1.1"},
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		st.requested = true
		if c.Certificate == nil || !present {
			return &tls.Certificate{}, nil // none
		}
		st.sent = c.presentedPair()
		return st.sent, nil
	}
	if c.Roots == nil && c.Fingerprint != "" {
		cfg.InsecureSkipVerify = true // checked against the fingerprinted CA by bootstrap
	}
	if b := c.booted; b != nil {
		// Go's own check would know only the intermediates the server
		// sends: VerifyConnection adds those of /cacerts, the pinned CA
		// the only anchor, as for the bootstrap's connection.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			return WithTrustNaming(verifyPinnedPeer(cs, b.anchors, b.inter, b.cas, c.host, c.Fingerprint, c.now()), c.trustNaming())
		}
	}
	return cfg
}

// conn is one TLS connection carrying one request.
type conn struct {
	tls      *tls.Conn
	state    *connState
	binding  []byte
	deadline time.Time
}

func (c *EST) timeout() time.Duration {
	if c.Timeout <= 0 {
		return 60 * time.Second
	}
	return c.Timeout
}

// timeoutError is a step of an exchange that the server let run past the
// client's timeout: it names the step instead of Go's "i/o timeout".
type timeoutError struct {
	Step  string // "TLS handshake with HOST", "GET csrattrs"…
	After time.Duration
	Err   error
}

func (e *timeoutError) Error() string {
	return fmt.Sprintf("%s timed out after %s", e.Step, e.After)
}

func (e *timeoutError) Unwrap() error { return e.Err }

// stepError wraps err of one step, saying so when it is the exchange's own
// deadline that ended it (not the caller's context).
func (c *EST) stepError(ctx context.Context, step string, err error) error {
	if ctx.Err() == nil && (errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)) {
		return &timeoutError{Step: step, After: c.timeout(), Err: err}
	}
	return fmt.Errorf("%s: %w", step, err)
}

// dial connects and completes the TLS handshake; one deadline, Timeout
// from now, bounds both and the request that follows. The two steps fail
// with errors of their own: a server that accepts the connection and then
// stalls is not one that cannot be reached.
func (c *EST) dial(ctx context.Context) (*conn, error) {
	return c.dialAs(ctx, true, &connState{})
}

// dialAs is dial, presenting the client certificate (when there is one)
// only when present is set; st records what the handshake did with it,
// also when it fails.
func (c *EST) dialAs(ctx context.Context, present bool, st *connState) (*conn, error) {
	base, err := c.parseURL()
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(c.timeout())
	stepCtx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	nc, err := (&net.Dialer{}).DialContext(stepCtx, "tcp", hostPort(base))
	if err != nil {
		return nil, c.stepError(ctx, "connecting to "+base.Host, err)
	}
	tc := tls.Client(nc, c.tlsConfig(st, present))
	if err := tc.HandshakeContext(stepCtx); err != nil {
		nc.Close()
		return nil, c.stepError(ctx, "TLS handshake with "+base.Host, c.explainAlert(st, c.untrusted(err)))
	}
	tc.SetDeadline(deadline)
	binding, err := est.ChannelBinding(tc.ConnectionState())
	if err != nil {
		tc.Close()
		return nil, err
	}
	return &conn{tls: tc, state: st, binding: binding, deadline: deadline}, nil
}

// untrusted adds the ways out to a handshake's err when the server's
// certificate does not chain to the anchors: the system's roots, the only
// ones without Roots or Fingerprint (a private CA's server, as scepter's
// own, is trusted only when given its CA), or those of RootsFile.
func (c *EST) untrusted(err error) error {
	return untrustedServer(err, trust{roots: c.Roots, rootsFile: c.RootsFile, fingerprint: c.Fingerprint})
}

// trust is what a client was given to trust a TLS server by, for the
// advice when the server's certificate does not chain to it.
type trust struct {
	roots       *x509.CertPool
	rootsFile   string // where roots came from: the --cacert file
	fingerprint string
	// noCACertFlag: the command takes no --cacert (getcrl), so the advice
	// names what it does take.
	noCACertFlag bool
}

// untrustedServer is err, with the ways out added when it is a TLS
// server's certificate that does not chain to what the caller trusts: the
// system's roots (or there are none), given neither roots nor a
// fingerprint, or the CA(s) of the --cacert file given. scepter's est and
// enroll commands take --cacert and --ca-fingerprint, getcrl the latter.
func untrustedServer(err error, t trust) error {
	var unknown x509.UnknownAuthorityError
	var noRoots x509.SystemRootsError
	if t.fingerprint != "" || !errors.As(err, &unknown) && !errors.As(err, &noRoots) {
		return err
	}
	switch {
	case t.roots != nil && t.rootsFile != "":
		leads := ""
		if unknown.Cert != nil {
			leads = ": its chain leads to " + Printable(pki.Clip(unknown.Cert.Issuer.String(), 200))
		}
		return fmt.Errorf("the server's certificate does not chain to the CA(s) in --cacert %s%s (%w); check that the file holds that CA "+
			"(of a scepter server, its DATA_DIR/ca/root.crt, unless it serves a --tls-cert of another CA) and that --url names the server meant, "+
			"or give --ca-fingerprint sha256:HEX (of that CA, as scepter serve prints it) instead of --cacert", Printable(t.rootsFile), leads, err)
	case t.roots != nil:
		return err
	case t.noCACertFlag:
		return fmt.Errorf("the system's roots, the only ones this command trusts without --ca-fingerprint, do not trust this server (%w); "+
			"give --ca-fingerprint sha256:HEX (of its CA, as scepter serve prints it), or use the server's plain http:// SCEP URL", err)
	}
	return fmt.Errorf("the system's roots do not trust this server (%w); give --cacert FILE (the CA's root, e.g. DATA_DIR/ca/root.crt) or --ca-fingerprint sha256:HEX (of that CA, as scepter serve prints it)", err)
}

// ExplainUntrusted is err with the ways out added, as scepter enroll and
// est give them, when it is a TLS server's certificate that does not chain
// to roots (read from rootsFile, scepter's --cacert), or, without roots, to
// the system's; any other error as it is. For a caller whose own HTTP
// client makes the connections (SCEP.HTTP), whose errors the client leaves
// as they are.
func ExplainUntrusted(err error, roots *x509.CertPool, rootsFile string) error {
	return untrustedServer(err, trust{roots: roots, rootsFile: rootsFile})
}

func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), "443")
}

// response is a read reply.
type response struct {
	status int
	header http.Header
	body   []byte
	op     string
	// location is a redirect's Location, made absolute and without user
	// info.
	location string
	// at is when it came, by the client's clock: a Retry-After date is
	// counted from it.
	at time.Time
	// urlFromConfig is the client's URLFromConfig, for refusal's advice.
	urlFromConfig bool
}

// do sends one request on cn and reads the whole reply (a Content-Length or
// chunked body, at most est.MaxBodyBytes... times four for serverkeygen).
func (c *EST) do(ctx context.Context, cn *conn, method, op string, body []byte) (*response, error) {
	base, _ := c.parseURL()
	u := *base
	u.Path += op
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "scepter-est-client")
	if body != nil {
		req.Header.Set("Content-Type", est.ContentTypePKCS10)
		req.Header.Set("Content-Transfer-Encoding", "base64")
	}
	// Credentials never go to /cacerts, which needs none and is what a
	// bootstrap fetches before the server is authenticated.
	if (c.User != "" || c.Password != "") && op != est.OpCACerts {
		req.SetBasicAuth(c.User, c.Password)
	}
	req.Close = true
	stop := context.AfterFunc(ctx, func() { cn.tls.SetDeadline(time.Now()) })
	defer stop()
	if err := req.Write(cn.tls); err != nil {
		return nil, c.stepError(ctx, method+" "+op, c.explainAlert(cn.state, err))
	}
	// http.ReadResponse bounds no header: a server could send them
	// without end. All of a reply may take maxReplyBytes.
	limited := &io.LimitedReader{R: cn.tls, N: maxReplyBytes}
	br := bufio.NewReader(limited)
	var resp *http.Response
	for {
		resp, err = http.ReadResponse(br, req)
		if err != nil {
			if limited.N <= 0 {
				return nil, fmt.Errorf("%s %s: the reply's headers are larger than %d bytes", method, op, maxReplyBytes)
			}
			return nil, c.stepError(ctx, method+" "+op, c.explainAlert(cn.state, err))
		}
		// An interim answer (100 Continue, 103 Early Hints) precedes the
		// real one, asked for or not (RFC 9110 section 15.2); all of them
		// together stay within maxReplyBytes.
		if resp.StatusCode < 100 || resp.StatusCode > 199 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBodyBytes+1))
	if err != nil {
		return nil, c.stepError(ctx, method+" "+op+": reading the reply", err)
	}
	if len(b) > maxReplyBodyBytes {
		// Cut short, it would be read as if it were all of it.
		return nil, fmt.Errorf("%s %s: the reply's body is larger than %d bytes", method, op, maxReplyBodyBytes)
	}
	r := &response{status: resp.StatusCode, header: resp.Header, body: b, op: op, at: c.now(), urlFromConfig: c.URLFromConfig}
	if loc, err := resp.Location(); err == nil && resp.StatusCode >= 300 && resp.StatusCode < 400 {
		loc.User = nil
		r.location = loc.String()
	}
	return r, nil
}

// exchange dials, sends one request and closes.
func (c *EST) exchange(ctx context.Context, method, op string, body []byte) (*response, error) {
	if err := c.bootstrap(ctx); err != nil {
		return nil, err
	}
	c.fetchChainCAs(ctx)
	cn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer cn.tls.Close()
	return c.do(ctx, cn, method, op, body)
}

func refusal(r *response) error {
	if r.location != "" {
		return &HTTPError{Status: r.status, Redirect: r.location, Op: r.op, URLFromConfig: r.urlFromConfig}
	}
	e := &HTTPError{Status: r.status, Reason: replyReason(r.header.Get("Content-Type"), r.body)}
	if r.status == http.StatusUnauthorized {
		e.AuthSchemes = authSchemes(r.header.Values("WWW-Authenticate"))
	}
	if r.status == http.StatusServiceUnavailable || r.status == http.StatusTooManyRequests {
		e.RetryAfter, _ = parseRetryAfter(r.header.Get("Retry-After"), r.at)
	}
	return e
}

// bootstrap establishes the trust anchors from the fingerprint, once.
func (c *EST) bootstrap(ctx context.Context) error {
	c.bootOnce.Lock()
	defer c.bootOnce.Unlock()
	if c.Roots != nil || c.Fingerprint == "" {
		return nil
	}
	// /cacerts needs no client certificate (RFC 7030 §4.1.1): one whose
	// chain is not known yet is not presented, lest a server that trusts
	// only the root refuse it; a server that requires one gets it.
	withCert := !c.needsServerCAs()
	st := &connState{}
	cn, certs, err := c.bootstrapFetch(ctx, withCert, st)
	if !withCert && err != nil && st.requested {
		// Refused, by an alert or an HTTP answer (nginx's 400), by a
		// server that asked for a certificate: it gets the one there is.
		cn, certs, err = c.bootstrapFetch(ctx, true, &connState{})
	}
	if err != nil {
		return err
	}
	defer cn.tls.Close()
	// The pinned certificate is the only trust anchor; of the rest only
	// what chains to it may help the server's certificate chain (another
	// self-signed CA sent along would otherwise become an anchor too).
	if certs, err = TrustedCACerts(certs, c.Fingerprint, c.now()); err != nil {
		return WithTrustNaming(err, c.trustNaming())
	}
	roots, inter, _, err := caPools(certs, c.Fingerprint)
	if err != nil {
		return err
	}
	if err := verifyPinnedPeer(cn.tls.ConnectionState(), roots, inter, certs, c.host, c.Fingerprint, c.now()); err != nil {
		return WithTrustNaming(err, c.trustNaming())
	}
	c.Roots = roots
	c.booted = &bootTrust{anchors: roots, inter: inter, cas: certs}
	c.learnServerCAs(certs)
	return nil
}

// bootstrapFetch is the bootstrap's connection and the /cacerts fetched
// on it.
func (c *EST) bootstrapFetch(ctx context.Context, withCert bool, st *connState) (*conn, []*x509.Certificate, error) {
	cn, err := c.dialAs(ctx, withCert, st)
	if err != nil {
		return nil, nil, err
	}
	certs, err := c.fetchCACerts(ctx, cn)
	if err != nil {
		cn.tls.Close()
		return nil, nil, err
	}
	return cn, certs, nil
}

func (c *EST) fetchCACerts(ctx context.Context, cn *conn) ([]*x509.Certificate, error) {
	r, err := c.do(ctx, cn, http.MethodGet, est.OpCACerts, nil)
	if err != nil {
		return nil, err
	}
	return parseCACerts(r)
}

func parseCACerts(r *response) ([]*x509.Certificate, error) {
	if r.status != http.StatusOK {
		return nil, fmt.Errorf("cacerts: %w", refusal(r))
	}
	der, err := est.DecodeReply(r.body)
	if err != nil {
		return nil, fmt.Errorf("cacerts: %w", err)
	}
	sd, err := parseCertsOnly(der)
	if err != nil {
		return nil, fmt.Errorf("cacerts: %w", err)
	}
	if len(sd.Certificates) == 0 {
		return nil, errors.New("cacerts: the server's reply holds no certificates")
	}
	return sd.Certificates, nil
}

// parseCertsOnly reads a certs-only reply's DER (base64 decoded, or a
// multipart's part), saying when it is none that it is the server's reply
// that is wrong: cms's own words ("malformed message: length 111 exceeds
// input") name no one.
func parseCertsOnly(der []byte) (*cms.SignedData, error) {
	sd, err := cms.ParseSignedData(der)
	if err != nil {
		return nil, fmt.Errorf("the server's reply is not a PKCS#7 certs-only (RFC 7030 section 4.1.3): %w", err)
	}
	return sd, nil
}

// CACerts fetches the CA certificates (RFC 7030 §4.1).
func (c *EST) CACerts(ctx context.Context) ([]*x509.Certificate, error) {
	r, err := c.exchange(ctx, http.MethodGet, est.OpCACerts, nil)
	if err != nil {
		return nil, err
	}
	certs, err := parseCACerts(r)
	if err != nil || c.Fingerprint == "" {
		return certs, err
	}
	// Pinned: only what chains to the pinned CA is handed on (to be
	// written to a trust store, say).
	certs, err = TrustedCACerts(certs, c.Fingerprint, c.now())
	return certs, WithTrustNaming(err, c.trustNaming())
}

// trustNaming is how this client's caller names its trust settings.
func (c *EST) trustNaming() TrustNaming {
	if c.URLFromConfig {
		return NamingAgent
	}
	return NamingFlags
}

// CheckCACerts checks, before anything is asked with credentials or a
// CSR, that the CA certificates /cacerts sends chain, at the client's
// clock, to the trust anchors given (Roots without a fingerprint: scepter's
// --cacert). CheckIssued holds the issued certificate to those anchors:
// from a CA they do not trust it would be issued and then refused, a
// one-time challenge spent for nothing, again at every run (r101 D1). A
// server whose TLS certificate is of one CA (a web or corporate PKI) and
// whose certificates are of another passes only with both among them.
// With a fingerprint, or no Roots (the system's), there is nothing to
// check here: the bootstrap, or /cacerts itself over a trusted connection,
// decides.
func (c *EST) CheckCACerts(ctx context.Context) error {
	if c.Roots == nil || c.Fingerprint != "" {
		return nil
	}
	certs, err := c.CACerts(ctx)
	if err != nil {
		return fmt.Errorf("fetching the CA certificates to check them against the given ones before asking: %w", err)
	}
	var untrusted *UntrustedCAError
	if err := UntrustedCACerts(certs, c.Roots, c.RootsFile, c.now()); !errors.As(err, &untrusted) {
		return err
	}
	return fmt.Errorf("the server's /cacerts names a CA that %s do not trust: its certificates lead to %s (%v); a certificate it issued would be refused as not chaining to them, "+
		"so nothing more was sent (no credentials, no request); if you trust that CA for the certificates this server issues, add it to the --cacert file (beside the one the server's TLS certificate chains to: "+
		"scepter est cacerts with the same --url and --cacert writes what /cacerts sent)", untrusted.Given, untrusted.LeadsTo, untrusted.Err)
}

// UntrustedCAError: none of the CA certificates a server sent (GetCACert,
// /cacerts) chains to the trust anchors given (scepter's --cacert).
type UntrustedCAError struct {
	// Given names the anchors: "the CA(s) in --cacert FILE", or "the
	// given CA certificates" when the file is not known.
	Given string
	// LeadsTo is where the server's certificates lead: the subject and
	// fingerprint of each top of their chains, and its issuer when it is
	// not self-signed, separated by "; ".
	LeadsTo string
	Err     error // the first certificate's verification error
}

func (e *UntrustedCAError) Error() string {
	return fmt.Sprintf("none of the CA certificates the server sent chains to %s: they lead to %s (%v); check that the file holds that CA "+
		"(of a scepter server, its DATA_DIR/ca/root.crt) and that --url names the server meant, "+
		"or give --ca-fingerprint sha256:HEX (of that CA, as scepter serve prints it) instead of --cacert", e.Given, e.LeadsTo, e.Err)
}

func (e *UntrustedCAError) Unwrap() error { return e.Err }

// UntrustedCACerts is nil when one of certs, the CA certificates a server
// sent, chains at now to roots (read from rootsFile, scepter's --cacert,
// when known), and otherwise an *UntrustedCAError naming the file and
// where the server's certificates lead, for a caller holding them to the
// anchors it was given (scepter est, scepter bench).
func UntrustedCACerts(certs []*x509.Certificate, roots *x509.CertPool, rootsFile string, now time.Time) error {
	if len(certs) == 0 {
		return errors.New("the server sent no CA certificates")
	}
	inter := x509.NewCertPool()
	for _, ca := range certs {
		inter.AddCert(ca)
	}
	var firstErr error
	for _, ca := range certs {
		_, err := ca.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err == nil {
			return nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	given := "the given CA certificates"
	if rootsFile != "" {
		given = "the CA(s) in --cacert " + Printable(rootsFile)
	}
	var tops []string
	for _, ca := range certs {
		selfSigned := bytes.Equal(ca.RawIssuer, ca.RawSubject) && ca.CheckSignatureFrom(ca) == nil
		if !selfSigned && IssuerAmong(ca, certs) != nil {
			continue // not where the chain leads
		}
		top := fmt.Sprintf("%s (%s)", Printable(pki.Clip(ca.Subject.String(), 200)), Fingerprint(ca))
		if !selfSigned {
			top += ", issued by " + Printable(pki.Clip(ca.Issuer.String(), 200))
		}
		if len(tops) < maxCertsNamed {
			tops = append(tops, top)
		}
	}
	if len(tops) == 0 { // a loop of cross-certificates: name the first
		tops = append(tops, fmt.Sprintf("%s (%s)", Printable(pki.Clip(certs[0].Subject.String(), 200)), Fingerprint(certs[0])))
	}
	return &UntrustedCAError{Given: given, LeadsTo: strings.Join(tops, "; "), Err: firstErr}
}

// CheckIssued checks a certificate the server returned for pub before it
// is written or installed (VerifyIssued): it chains to the trust anchors
// given (Roots), else to the pinned CA, else to a self-signed CA from
// /cacerts, which an authenticated TLS connection fetched. It returns the
// certificate's chain, for a chain file: its issuing CA, then up to the
// anchor, of the certificates the server sent that the check used; not
// all of /cacerts, which during a CA rollover also holds the next issuing
// CA, which did not sign it.
func (c *EST) CheckIssued(ctx context.Context, cert *x509.Certificate, pub crypto.PublicKey) ([]*x509.Certificate, error) {
	caCerts, err := c.CACerts(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetching the CA certificates to check the certificate against: %w", err)
	}
	chain, err := VerifyIssued(cert, pub, caCerts, c.Fingerprint, c.now(), c.Warnf)
	if err != nil {
		return nil, err
	}
	if c.Roots != nil && c.Fingerprint == "" {
		inter := x509.NewCertPool()
		for _, ca := range caCerts {
			inter.AddCert(ca)
		}
		chains, err := cert.Verify(x509.VerifyOptions{Roots: c.Roots, Intermediates: inter, CurrentTime: c.now(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err != nil {
			return nil, fmt.Errorf("the returned certificate does not chain to the given CA certificates: %w", err)
		}
		// The given anchors decide the path; the file holds what of it
		// the server sent.
		if sent := sentAmong(chains[0][1:], caCerts); len(sent) > 0 {
			chain = sent
		}
	}
	return chain, nil
}

// sentAmong is path without the certificates that are not in sent.
func sentAmong(path, sent []*x509.Certificate) []*x509.Certificate {
	var out []*x509.Certificate
	for _, p := range path {
		if slices.ContainsFunc(sent, p.Equal) {
			out = append(out, p)
		}
	}
	return out
}

// NameChange says how cert's names differ from the names asked for (a
// renewal's: the certificate being renewed; an enrollment's: its CSR), or
// "" when they are the same. The subject is compared as the server does
// for issuance and renewals (csr.SameName); each kind of SAN as a set, in
// any order, DNS names and an email address's domain and a URI's scheme and
// host without regard to case (RFC 5280 §7), IP addresses by value.
func NameChange(cert *x509.Certificate, want csr.Template) string {
	return nameChange(cert, want, csr.SameName)
}

// HeldNameChange is NameChange for a certificate collected for a request
// held for approval: the server issues the held request's names, and takes
// a retry for it whose subject csr.SameHeldName calls the same (CN=AP-1
// for a held CN=ap-1), so the subject is compared by that rule, and only a
// subject the retry could not have asked for is another name.
func HeldNameChange(cert *x509.Certificate, want csr.Template) string {
	return nameChange(cert, want, csr.SameHeldName)
}

// nameChange is NameChange with the subject compared by sameSubject.
func nameChange(cert *x509.Certificate, want csr.Template, sameSubject func(a, b []byte) bool) string {
	var diffs []string
	wantSubject := want.RawSubject
	if wantSubject == nil {
		if raw, err := asn1.Marshal(want.Subject.ToRDNSequence()); err == nil {
			wantSubject = raw
		}
	}
	if !sameSubject(cert.RawSubject, wantSubject) {
		diffs = append(diffs, fmt.Sprintf("subject %q, not %q", csr.NameString(cert.RawSubject), csr.NameString(wantSubject)))
	}
	for _, kind := range []struct {
		name      string
		got, want []string
	}{
		{"DNS names", csr.NameKeys(cert.DNSNames, csr.DNSNameKey), csr.NameKeys(want.DNSNames, csr.DNSNameKey)},
		{"email addresses", csr.NameKeys(cert.EmailAddresses, csr.EmailKey), csr.NameKeys(want.EmailAddresses, csr.EmailKey)},
		{"IP addresses", csr.NameKeys(cert.IPAddresses, net.IP.String), csr.NameKeys(want.IPAddresses, net.IP.String)},
		{"URIs", csr.NameKeys(cert.URIs, csr.URIKey), csr.NameKeys(want.URIs, csr.URIKey)},
	} {
		if !slices.Equal(kind.got, kind.want) {
			diffs = append(diffs, fmt.Sprintf("%s [%s], not [%s]", kind.name, strings.Join(kind.got, " "), strings.Join(kind.want, " ")))
		}
	}
	return Printable(strings.Join(diffs, "; "))
}

// CSRAttrs fetches what the server wants of a CSR (RFC 7030 §4.5); nil when
// it wants nothing in particular (204, 404, or 200 with an empty body).
func (c *EST) CSRAttrs(ctx context.Context) ([]est.CSRAttr, error) {
	// exchange's errors name what failed (the URL, the connection, the
	// bootstrap's /cacerts, or GET csrattrs itself): no "csrattrs:" in
	// front of a failure that was not about /csrattrs.
	r, err := c.exchange(ctx, http.MethodGet, est.OpCSRAttrs, nil)
	if err != nil {
		return nil, err
	}
	return csrAttrsOf(r)
}

// csrAttrsOf reads a /csrattrs reply.
func csrAttrsOf(r *response) ([]est.CSRAttr, error) {
	switch r.status {
	case http.StatusOK:
	case http.StatusNoContent, http.StatusNotFound:
		return nil, nil
	default:
		return nil, fmt.Errorf("csrattrs: %w", refusal(r))
	}
	if len(bytes.TrimSpace(r.body)) == 0 {
		return nil, nil
	}
	der, err := est.DecodeReply(r.body)
	if err != nil {
		return nil, fmt.Errorf("csrattrs: %w", err)
	}
	attrs, err := est.ParseCSRAttrs(der)
	if err != nil {
		return nil, fmt.Errorf("csrattrs: %w", err)
	}
	return attrs, nil
}

// AdvisoryCSRAttrs is CSRAttrs for a client about to enroll. CSR
// attributes are advice (RFC 7030 §4.5), so a server that answers and
// refuses them (401, 500, 501…) or answers what does not parse is reported
// through Warnf and taken to want nothing in particular. A server that
// cannot be asked at all (no connection, a failed or stalled TLS
// handshake, no reply in time) is an error: the enrollment would only wait
// for the same server again.
func (c *EST) AdvisoryCSRAttrs(ctx context.Context) ([]est.CSRAttr, error) {
	// Not prefixed "csrattrs:", which would make the failure of the
	// bootstrap or the connection read as advice refused (see CSRAttrs).
	r, err := c.exchange(ctx, http.MethodGet, est.OpCSRAttrs, nil)
	if err != nil {
		return nil, err
	}
	attrs, err := csrAttrsOf(r)
	if err != nil {
		c.warnf("%v; enrolling without the server's CSR attributes", err)
		return nil, nil
	}
	return attrs, nil
}

// KeyAdvice is what a csrattrs answer asks of the CSR's key (RFC 7030
// §4.5.2, RFC 8951 §4): key types, as keys.Generate names them.
type KeyAdvice struct {
	// Types are the key types asked for that this client can make, in the
	// server's order: "p256", "p384", "rsa2048"…, or "rsa" for RSA of any
	// size and "ec" for either curve.
	Types []string
	// Other names what was asked for that this client cannot make (a
	// curve such as secp521r1).
	Other []string
}

// OIDs of key types, curves and signature algorithms a csrattrs answer
// may list.
var (
	oidRSAEncryption = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidECPublicKey   = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidSHA256WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidECDSASHA256   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSASHA384   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSASHA512   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidP256          = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidP384          = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
	oidP521          = asn1.ObjectIdentifier{1, 3, 132, 0, 35}
)

// curveName names a curve OID as keys.Generate does ("" when it cannot
// make it) and as people do.
func curveName(oid asn1.ObjectIdentifier) (keyType, name string) {
	switch {
	case oid.Equal(oidP256):
		return "p256", "prime256v1"
	case oid.Equal(oidP384):
		return "p384", "secp384r1"
	case oid.Equal(oidP521):
		return "", "secp521r1"
	}
	return "", "curve " + oid.String()
}

// KeyAdviceOf reads the key types a csrattrs answer asks for: the curves
// of an ecPublicKey attribute or bare curve OIDs; else, for EC, the
// curves the ECDSA signature algorithms listed go with (our CSRs sign
// with SHA-256 on P-256 and SHA-384 on P-384); RSA from rsaEncryption (an
// attribute may give the size) or an RSA signature algorithm.
func KeyAdviceOf(attrs []est.CSRAttr) KeyAdvice {
	var adv KeyAdvice
	add := func(list *[]string, s string) {
		for _, have := range *list {
			if have == s {
				return
			}
		}
		*list = append(*list, s)
	}
	curve := func(oid asn1.ObjectIdentifier) bool {
		kt, name := curveName(oid)
		switch {
		case kt != "":
			add(&adv.Types, kt)
		case strings.HasPrefix(name, "curve "):
			return false
		default:
			add(&adv.Other, name)
		}
		return true
	}
	var ec, ecHashes, curves bool
	var hashTypes []string
	for _, a := range attrs {
		switch {
		case a.OID.Equal(oidECPublicKey):
			ec = true
			for _, v := range a.Values {
				var oid asn1.ObjectIdentifier
				if rest, err := asn1.Unmarshal(v, &oid); err == nil && len(rest) == 0 {
					curves = true
					if !curve(oid) {
						add(&adv.Other, "curve "+oid.String())
					}
				}
			}
		case !a.Attribute && curve(a.OID):
			ec, curves = true, true
		case a.OID.Equal(oidECDSASHA256):
			ec, ecHashes = true, true
			hashTypes = append(hashTypes, "p256")
		case a.OID.Equal(oidECDSASHA384):
			ec, ecHashes = true, true
			hashTypes = append(hashTypes, "p384")
		case a.OID.Equal(oidECDSASHA512):
			ec, ecHashes = true, true
			hashTypes = append(hashTypes, "")
		case a.OID.Equal(oidRSAEncryption):
			sized := false
			for _, v := range a.Values {
				var bits int
				if rest, err := asn1.Unmarshal(v, &bits); err == nil && len(rest) == 0 {
					switch bits {
					case 2048, 3072, 4096:
						add(&adv.Types, "rsa"+strconv.Itoa(bits))
					default:
						add(&adv.Other, "RSA-"+strconv.Itoa(bits))
					}
					sized = true
				}
			}
			if !sized {
				add(&adv.Types, "rsa")
			}
		case a.OID.Equal(oidSHA256WithRSA), a.OID.Equal(oidSHA384WithRSA), a.OID.Equal(oidSHA512WithRSA):
			if !slicesHasPrefix(adv.Types, "rsa") {
				add(&adv.Types, "rsa")
			}
		}
	}
	if ec && !curves {
		switch {
		case !ecHashes:
			add(&adv.Types, "ec")
		default:
			for _, kt := range hashTypes {
				if kt == "" {
					add(&adv.Other, "ECDSA with SHA-512 (secp521r1)")
				} else {
					add(&adv.Types, kt)
				}
			}
		}
	}
	return adv
}

// slicesHasPrefix reports whether an element of list starts with prefix.
func slicesHasPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// Accepts reports whether a key of keyType ("p256", "rsa3072"…) is what
// the server asks for, or the server asks for no key type at all.
func (a KeyAdvice) Accepts(keyType string) bool {
	if len(a.Types) == 0 && len(a.Other) == 0 {
		return true
	}
	for _, t := range a.Types {
		switch {
		case t == keyType,
			t == "rsa" && strings.HasPrefix(keyType, "rsa"),
			t == "ec" && (keyType == "p256" || keyType == "p384"):
			return true
		}
	}
	return false
}

// Choose is the key type to make for the server: its first that this
// client can make, "" when none.
func (a KeyAdvice) Choose() string {
	if len(a.Types) == 0 {
		return ""
	}
	switch t := a.Types[0]; t {
	case "rsa":
		return "rsa2048"
	case "ec":
		return "p256"
	default:
		return t
	}
}

// String says what was asked for.
func (a KeyAdvice) String() string {
	var names []string
	for _, t := range a.Types {
		switch t {
		case "rsa":
			names = append(names, "RSA")
		case "ec":
			names = append(names, "EC (P-256 or P-384)")
		default:
			names = append(names, t)
		}
	}
	return strings.Join(append(names, a.Other...), ", ")
}

// ESTRequest is one enrollment.
type ESTRequest struct {
	// Op is est.OpSimpleEnroll, est.OpSimpleReenroll or est.OpServerKeyGen.
	Op string
	// MakeCSR returns the DER CSR for a connection whose channel binding
	// is given (nil when it has none); it is called again for each retry,
	// each on a new connection. Put the binding in the challengePassword
	// (est.ChannelBindingPassword) to link the request to the connection.
	MakeCSR func(channelBinding []byte) ([]byte, error)
	// PollInterval and MaxWait: while the server answers 202, wait the
	// longer of Retry-After and PollInterval and ask again, up to MaxWait.
	// Zero MaxWait returns a *PendingError at once.
	PollInterval time.Duration
	MaxWait      time.Duration
	// Held, when set, is called once, at the first 202 (the request held
	// for approval), before any wait: a caller that keeps the request's
	// key records the hold then, as the process may be killed during the
	// wait.
	Held func()
	// DecryptKey opens an encrypted server-generated key (serverkeygen with
	// an AsymmetricDecryptKeyIdentifier): the key the identifier names.
	DecryptKey crypto.Decrypter
	// KeyID is that identifier.
	KeyID []byte
}

// ESTResult is what an enrollment returns.
type ESTResult struct {
	Certificate *x509.Certificate
	// Key is the server-generated key (serverkeygen only).
	Key crypto.Signer
	// KeyEncrypted says the key came encrypted to DecryptKey.
	KeyEncrypted bool
}

// Enroll sends one enrollment and waits out 202s as asked.
func (c *EST) Enroll(ctx context.Context, r ESTRequest) (*ESTResult, error) {
	if err := c.bootstrap(ctx); err != nil {
		return nil, err
	}
	c.fetchChainCAs(ctx)
	// Real time, as the waits below are: c.now may be a test's clock.
	started := time.Now()
	deadline := started.Add(r.MaxWait)
	held := false // the server has answered this run with a hold
	for {
		res, retry, err := c.enrollOnce(ctx, r)
		if err != nil && held && ctx.Err() != nil {
			// Told to stop while asking again about a held request: it
			// stays held (or approved), as after a stop between asks.
			return nil, &PendingError{Waited: time.Since(started).Round(time.Second), Stopped: ctx.Err()}
		}
		if busy := unavailableFor(err); busy > 0 && r.MaxWait > 0 {
			// A 503 (or 429) with Retry-After (RFC 7030 §4.2.3): the
			// server is there and asks to be asked later, as a 202 does;
			// within MaxWait the client does, a bare one ends the run.
			// A wait beyond the time left is not cut short: the client
			// MUST wait at least Retry-After (RFC 7030 §4.2.3).
			left := time.Until(deadline)
			if busy > left {
				return nil, maxWaitSpent(err, r.MaxWait, busy, c.now())
			}
			wait := min(max(busy, r.PollInterval), left)
			c.warnf("%v; asking again in %s", err, wait.Round(time.Second))
			select {
			case <-ctx.Done():
				if held {
					return nil, &PendingError{RetryAfter: busy, Waited: time.Since(started).Round(time.Second), Stopped: ctx.Err()}
				}
				return nil, fmt.Errorf("%w (waiting to ask again was stopped)", err)
			case <-time.After(wait):
			}
			continue
		}
		if err != nil || retry == 0 {
			return res, err
		}
		if !held && r.Held != nil {
			r.Held()
		}
		held = true
		// The server's Retry-After, or the poll interval when longer, cut
		// to the time left; a Retry-After longer than the time left ends
		// the wait at once, as the client MUST wait at least that long
		// before asking again (RFC 7030 §4.2.3).
		left := time.Until(deadline)
		if r.MaxWait <= 0 || left <= 0 {
			return nil, &PendingError{RetryAfter: retry, Waited: max(r.MaxWait, 0)}
		}
		if retry > left {
			return nil, &PendingError{RetryAfter: retry, Waited: time.Since(started).Round(time.Second), AskAgainAt: c.now().Add(retry)}
		}
		wait := min(max(retry, r.PollInterval), left)
		c.warnf("the request is held for approval; asking again in %s", wait.Round(time.Second))
		select {
		case <-ctx.Done():
			// Told while the server holds the request: it stays held,
			// and the caller says so (and where its key is).
			return nil, &PendingError{RetryAfter: retry, Waited: time.Since(started).Round(time.Second), Stopped: ctx.Err()}
		case <-time.After(wait):
		}
	}
}

// ReplyError is an answer (200) to an enrollment, EST or SCEP, that the client cannot
// use: unlike a connection lost before the answer, the server did answer,
// and what it sent is wrong.
type ReplyError struct{ Err error }

func (e *ReplyError) Error() string { return e.Err.Error() }
func (e *ReplyError) Unwrap() error { return e.Err }

// enrollOnce returns the result, or the wait a 202 asks for.
func (c *EST) enrollOnce(ctx context.Context, r ESTRequest) (*ESTResult, time.Duration, error) {
	cn, err := c.dial(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer cn.tls.Close()
	der, err := r.MakeCSR(cn.binding)
	if err != nil {
		return nil, 0, err
	}
	resp, err := c.do(ctx, cn, http.MethodPost, r.Op, est.EncodeBase64(der))
	if err != nil {
		return nil, 0, err
	}
	switch resp.status {
	case http.StatusOK:
	case http.StatusAccepted:
		wait, ok := parseRetryAfter(resp.header.Get("Retry-After"), c.now())
		if !ok {
			wait = 60 * time.Second
		}
		return nil, max(wait, time.Second), nil
	default:
		return nil, 0, fmt.Errorf("%s: %w", r.Op, refusal(resp))
	}
	if r.Op == est.OpServerKeyGen {
		res, err := c.serverKey(resp, r)
		if err != nil {
			return nil, 0, &ReplyError{err}
		}
		return res, 0, nil
	}
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: our own request: %w", r.Op, err)
	}
	cert, err := certFromCertsOnly(resp.body, true, req.PublicKey)
	if err != nil {
		return nil, 0, &ReplyError{fmt.Errorf("%s: %w", r.Op, err)}
	}
	return &ESTResult{Certificate: cert}, 0, nil
}

// maxReplyBodyBytes bounds a reply's body; maxReplyBytes all of one
// reply, headers and body: the headers get 1 MiB more.
const (
	maxReplyBodyBytes = 4 * est.MaxBodyBytes
	maxReplyBytes     = maxReplyBodyBytes + 1<<20
)

// maxRetryAfter bounds a Retry-After in seconds (a year): beyond any
// --max-wait, and far from overflowing a time.Duration.
const maxRetryAfter = 365 * 24 * 3600

// parseRetryAfter reads a Retry-After header: delta-seconds or an HTTP
// date (RFC 9110 §10.2.3), as of now; false when there is none or it is
// neither.
func parseRetryAfter(h string, now time.Time) (time.Duration, bool) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		// Bounded before it is multiplied: a huge value must not wrap.
		return time.Duration(min(s, maxRetryAfter)) * time.Second, true
	}
	if t, err := http.ParseTime(h); err == nil {
		return min(max(t.Sub(now), time.Second), maxRetryAfter*time.Second), true
	}
	return 0, false
}

// maxWaitSpent is err, a 503 or 429 whose Retry-After goes beyond the
// time left of maxWait, with both waits named and when the server asked
// to be asked again: the client does not ask earlier (RFC 7030 §4.2.3:
// it MUST wait at least Retry-After), where it cut the wait to the time
// left (r144 D2).
func maxWaitSpent(err error, maxWait, retryAfter time.Duration, now time.Time) error {
	return fmt.Errorf("%w; not asked again within --max-wait %s: the server asked to wait %s, until %s (a client must not ask earlier, RFC 7030 section 4.2.3); running the same command then asks again",
		err, pki.ShortDuration(maxWait), pki.ShortDuration(retryAfter), AskAgainTime(now.Add(retryAfter)))
}

// AskAgainTime writes when a server asked to be asked again, in UTC to
// the second.
func AskAgainTime(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// unavailableFor is the wait a 503 or 429 with Retry-After asked for
// (at least a second: "Retry-After: 0" must not make a loop of asks),
// zero for any other error, a bare 503 included.
func unavailableFor(err error) time.Duration {
	var he *HTTPError
	var ue *UnavailableError
	switch {
	case errors.As(err, &he) && (he.Status == http.StatusServiceUnavailable || he.Status == http.StatusTooManyRequests) && he.RetryAfter > 0:
		return max(he.RetryAfter, time.Second)
	case errors.As(err, &ue):
		return max(ue.RetryAfter, time.Second)
	}
	return 0
}

// RetryAfter is the wait the server asked for in err's answer: a 503 or
// 429 with Retry-After, or an EST 202 (a *PendingError); zero when none.
func RetryAfter(err error) time.Duration {
	var he *HTTPError
	var ue *UnavailableError
	var pe *PendingError
	switch {
	case errors.As(err, &he):
		return he.RetryAfter
	case errors.As(err, &ue):
		return ue.RetryAfter
	case errors.As(err, &pe):
		return pe.RetryAfter
	}
	return 0
}

// certFromCertsOnly reads the certificate of a certs-only reply (base64
// when encoded): the end-entity certificate for pub, or with pub nil (a
// server-generated key, checked against it after) the first one.
func certFromCertsOnly(body []byte, encoded bool, pub crypto.PublicKey) (*x509.Certificate, error) {
	der := body
	if encoded {
		var err error
		if der, err = est.DecodeReply(body); err != nil {
			return nil, err
		}
	}
	sd, err := parseCertsOnly(der)
	if err != nil {
		return nil, err
	}
	for _, cert := range sd.Certificates {
		if !cert.IsCA && (pub == nil || pki.SamePublicKey(pub, cert.PublicKey)) {
			return cert, nil
		}
	}
	if pub != nil {
		return nil, errors.New("the reply holds no end-entity certificate for our key")
	}
	return nil, errors.New("the reply holds no end-entity certificate")
}

// serverKey reads a serverkeygen reply: the certificate, and the key in
// PKCS#8 or, encrypted, in an EnvelopedData around a SignedData (signed by
// the server, checked against our trust anchors) around an
// AsymmetricKeyPackage.
func (c *EST) serverKey(resp *response, r ESTRequest) (*ESTResult, error) {
	reply, err := est.ParseServerKeyGenReply(resp.header.Get("Content-Type"), resp.body)
	if err != nil {
		return nil, err
	}
	cert, err := certFromCertsOnly(reply.CertsOnly, false, nil)
	if err != nil {
		return nil, fmt.Errorf("serverkeygen certificate: %w", err)
	}
	pkcs8 := reply.Key
	if reply.Encrypted {
		if r.DecryptKey == nil {
			return nil, errors.New("the server sent an encrypted key, and no key was given to decrypt it")
		}
		if pkcs8, err = c.openKeyPackage(reply.Key, r); err != nil {
			return nil, fmt.Errorf("serverkeygen key: %w", err)
		}
	} else if r.DecryptKey != nil {
		return nil, errors.New("the key was asked for encrypted, and the server sent it in clear")
	}
	k, err := x509.ParsePKCS8PrivateKey(pkcs8)
	if err != nil {
		return nil, fmt.Errorf("serverkeygen key: %w", err)
	}
	key, ok := k.(crypto.Signer)
	if !ok || !pki.SamePublicKey(key.Public(), cert.PublicKey) {
		return nil, errors.New("the server-generated key does not match the certificate")
	}
	return &ESTResult{Certificate: cert, Key: key, KeyEncrypted: reply.Encrypted}, nil
}

func (c *EST) openKeyPackage(der []byte, r ESTRequest) ([]byte, error) {
	env, err := cms.ParseEnvelopedData(der)
	if err != nil {
		return nil, err
	}
	inner, err := env.DecryptKeyTransport(&x509.Certificate{SubjectKeyId: r.KeyID}, r.DecryptKey)
	if err != nil {
		return nil, err
	}
	sd, err := cms.ParseSignedData(inner)
	if err != nil {
		return nil, err
	}
	if len(sd.Signers) != 1 || !sd.ContentType.Equal(est.OIDKeyPackage) {
		return nil, errors.New("not a signed key package")
	}
	signer, err := sd.SignerCertificate(&sd.Signers[0])
	if err != nil {
		return nil, err
	}
	if c.Roots != nil {
		inter := x509.NewCertPool()
		for _, x := range sd.Certificates {
			inter.AddCert(x)
		}
		if _, err := signer.Verify(x509.VerifyOptions{Roots: c.Roots, Intermediates: inter, CurrentTime: c.now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return nil, fmt.Errorf("the key package's signer does not chain to the trusted CA: %w", err)
		}
	}
	if err := sd.Verify(&sd.Signers[0], signer); err != nil {
		return nil, err
	}
	// AsymmetricKeyPackage ::= SEQUENCE SIZE (1..MAX) OF OneAsymmetricKey
	s := cryptobyte.String(sd.Content)
	var seq, first cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() || !seq.ReadASN1Element(&first, cbasn1.SEQUENCE) {
		return nil, errors.New("malformed AsymmetricKeyPackage")
	}
	return first, nil
}

// maxLocationShown bounds the part of a redirect's Location an error shows.
const maxLocationShown = 200
