package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/scep"
)

// target is one server URL, with what was fetched from it before the clock
// started.
type target struct {
	url string // as enrolled at: the SCEP URL, or the EST simpleenroll URL
	// name is url with the password of its user info masked: what bench
	// prints, writes and returns names the URL so, never with the secret.
	name    string
	caCerts []*x509.Certificate
	caps    client.Caps // SCEP only
	// fetchCA fetches the CA certificates again (GetCACert, /cacerts), as
	// trusted at connect: after a rollover's switch during the run they
	// name the new issuing CA.
	fetchCA func(context.Context) ([]*x509.Certificate, error)
}

// connect fetches, once per URL, what every enrollment needs: for SCEP the
// capabilities and the CA/RA certificates, for EST the CA certificates. It
// also fixes the TLS trust the workers use (in o.Roots).
func connect(ctx context.Context, o *Options) ([]*target, error) {
	var targets []*target
	for _, raw := range o.URLs {
		var t *target
		var err error
		if o.Protocol == EST {
			if t, err = connectEST(ctx, o, raw); err != nil {
				return nil, fmt.Errorf("%s: %w", estRequested(raw, o.Profile), err)
			}
		} else {
			u, err := scepURL(raw, o.Profile)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", client.RedactURL(raw), err)
			}
			if t, err = connectSCEP(ctx, o, u); err != nil {
				// Named as requested: a profile the URL names already
				// shows only doubled (…/scep/P/P).
				if o.Profile != "" {
					return nil, fmt.Errorf("%s (profile %q appended to %s): %w", client.RedactURL(u), o.Profile, client.RedactURL(raw), err)
				}
				return nil, fmt.Errorf("%s: %w", client.RedactURL(u), err)
			}
		}
		targets = append(targets, t)
	}
	if o.Roots == nil && o.CAFingerprint != "" {
		// The CA certificates are authenticated by the fingerprint: they
		// are what the servers' TLS certificates must chain to.
		o.Roots = x509.NewCertPool()
		for _, t := range targets {
			for _, c := range t.caCerts {
				if c.IsCA {
					o.Roots.AddCert(c)
				}
			}
		}
	}
	return targets, nil
}

// scepURL is the SCEP URL enrolled at: raw with the profile, when given,
// appended.
func scepURL(raw, profile string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("want an http:// or https:// SCEP URL, as http://HOST:8080/scep")
	}
	if err := checkPort(u); err != nil {
		return "", err
	}
	if profile != "" {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/" + url.PathEscape(profile)
	}
	return u.String(), nil
}

// checkPort refuses a port no connection can be made to (0, or above
// 65535), which url.Parse takes: found here it is a usage error, not a
// failed run. No port at all is the scheme's.
func checkPort(u *url.URL) error {
	p := u.Port()
	if p == "" {
		return nil
	}
	if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %s: want a port from 1 to 65535", p)
	}
	return nil
}

// CheckSCEPURL says what is wrong with a SCEP URL (nil when nothing is),
// before anything is sent.
func CheckSCEPURL(raw, profile string) error {
	_, err := scepURL(raw, profile)
	return err
}

// connectSCEP fetches the capabilities and CA certificates of the SCEP URL
// u (its profile appended).
func connectSCEP(ctx context.Context, o *Options, u string) (*target, error) {
	// Before the CA is known, an https URL pinned by fingerprint is
	// fetched without checking the TLS certificate: what comes back is
	// checked against the fingerprint instead, as `scepter enroll` does.
	cfg := &tls.Config{RootCAs: o.Roots, Time: o.Now, MinVersion: tls.VersionTLS12,
		InsecureSkipVerify: o.Roots == nil && o.CAFingerprint != ""} //nolint:gosec // see above
	tr := newTransport(cfg, o.Timeout)
	defer tr.CloseIdleConnections()
	c := &client.SCEP{URL: u, HTTP: newHTTPClient(explainUntrusted{tr, o}), Now: o.Now}
	caps, err := c.GetCACaps(ctx)
	if err != nil {
		return nil, err // the client's error names GetCACaps
	}
	certs, err := c.GetCACert(ctx)
	if err != nil {
		return nil, err
	}
	if certs, err = trustCACerts(o, certs); err != nil {
		return nil, err
	}
	if _, _, err := c.Algorithms(caps); err != nil {
		return nil, err
	}
	if _, err := client.Recipient(certs); err != nil {
		return nil, err
	}
	fetchCA := func(ctx context.Context) ([]*x509.Certificate, error) {
		tr := newTransport(cfg, o.Timeout)
		defer tr.CloseIdleConnections()
		c := &client.SCEP{URL: u, HTTP: newHTTPClient(explainUntrusted{tr, o}), Now: o.Now}
		certs, err := c.GetCACert(ctx)
		if err != nil {
			return nil, err
		}
		return trustCACerts(o, certs)
	}
	return &target{url: u, name: client.RedactURL(u), caCerts: certs, caps: caps, fetchCA: fetchCA}, nil
}

// explainUntrusted adds to a TLS server's certificate that does not chain
// to what o trusts the client's ways out, as scepter enroll gives them: the
// SCEP client leaves the errors of a caller's HTTP client as they are.
type explainUntrusted struct {
	http.RoundTripper
	o *Options
}

func (e explainUntrusted) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := e.RoundTripper.RoundTrip(req)
	if err != nil {
		return nil, client.ExplainUntrusted(err, e.o.Roots, e.o.RootsFile)
	}
	return resp, nil
}

// trustCACerts checks the CA certificates a server sent (GetCACert,
// /cacerts) against the fingerprint or the trust anchors, when given, and
// returns those to use: only those that chain to the pinned CA or to the
// anchors (a server may not slip in an RA or a CA of its own beside them).
func trustCACerts(o *Options, certs []*x509.Certificate) ([]*x509.Certificate, error) {
	if o.CAFingerprint != "" {
		return client.TrustedCACerts(certs, o.CAFingerprint, o.Now())
	}
	if o.Roots == nil {
		return certs, nil
	}
	if err := client.UntrustedCACerts(certs, o.Roots, o.RootsFile, o.Now()); err != nil {
		return nil, err // naming the file and where the server's certificates lead
	}
	inter := x509.NewCertPool()
	for _, c := range certs {
		inter.AddCert(c)
	}
	var kept []*x509.Certificate
	for _, c := range certs {
		if _, err := c.Verify(x509.VerifyOptions{Roots: o.Roots, Intermediates: inter, CurrentTime: o.Now(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
			kept = append(kept, c)
		}
	}
	return kept, nil
}

// estBase splits an EST URL into the server (https://HOST:PORT) and the
// label; the profile, when given, is the label. The URL is read by the EST
// client's rules (est.ParseClientURL): what the requests would not carry
// (user info, a query, a fragment) is refused rather than dropped.
func estBase(raw, profile string) (server, label string, err error) {
	host, label, err := est.ParseClientURL(raw)
	if errors.Is(err, est.ErrURLCredentials) {
		// Neither sent nor shown, they would be dropped without a word,
		// and the run refused for credentials the user thinks given.
		return "", "", fmt.Errorf("%w: give them with --est-user and --est-password-file, or --challenge", err)
	}
	if err != nil {
		return "", "", err
	}
	if err := checkPort(&url.URL{Host: host}); err != nil {
		return "", "", err
	}
	if profile != "" {
		if label != "" && label != profile {
			return "", "", fmt.Errorf("the URL names label %q and the profile is %q", label, profile)
		}
		label = profile
	}
	if strings.Contains(label, "/") {
		return "", "", fmt.Errorf("profile %q: an EST label is one path segment", profile)
	}
	return "https://" + host, label, nil
}

// CheckESTURL says what is wrong with an EST URL (nil when nothing is),
// before anything is sent.
func CheckESTURL(raw, profile string) error {
	_, _, err := estBase(raw, profile)
	return err
}

// estClientURL is the URL the EST client is given for server and label,
// the label escaped: the client reads the URL again, and a label such as
// "#" (sent as "%23") must stay a label, not become a fragment.
func estClientURL(server, label string) string {
	if label == "" {
		return server
	}
	return server + "/" + url.PathEscape(label)
}

// estRequested names the EST URL raw for an error at its server, as the
// SCEP one is named: with the profile, when the URL does not name that
// label already, appended (its password masked).
func estRequested(raw, profile string) string {
	if profile == "" {
		return client.RedactURL(raw)
	}
	if _, named, err := estBase(raw, ""); err == nil && named != "" {
		return client.RedactURL(raw) // the label given twice, or a refusal naming both
	}
	server, label, err := estBase(raw, profile)
	if err != nil {
		return client.RedactURL(raw)
	}
	return fmt.Sprintf("%s (profile %q appended to %s)", client.RedactURL(server+est.PathPrefix+url.PathEscape(label)), profile, client.RedactURL(raw))
}

func connectEST(ctx context.Context, o *Options, raw string) (*target, error) {
	server, label, err := estBase(raw, o.Profile)
	if err != nil {
		return nil, err
	}
	c := &client.EST{URL: estClientURL(server, label), Roots: o.Roots, RootsFile: o.RootsFile, Fingerprint: o.CAFingerprint, Timeout: o.Timeout, Now: o.Now}
	path := est.PathPrefix
	if label != "" {
		path += label + "/"
	}
	// The client filters /cacerts by the fingerprint only: with trust
	// anchors, a CA the server slipped in beside them would otherwise be
	// taken as an issuer (and, self-signed, as a root) too.
	fetchCA := func(ctx context.Context) ([]*x509.Certificate, error) {
		certs, err := c.CACerts(ctx)
		if err != nil {
			return nil, err
		}
		return trustCACerts(o, certs)
	}
	certs, err := fetchCA(ctx)
	if err != nil {
		return nil, err
	}
	// The server part holds no user info (estBase keeps the host alone).
	u := server + path + est.OpSimpleEnroll
	return &target{url: u, name: client.RedactURL(u), caCerts: certs, fetchCA: fetchCA}, nil
}

// newTransport is an HTTP/1.1 transport that keeps its connections alive
// and resumes TLS sessions.
func newTransport(cfg *tls.Config, timeout time.Duration) *http.Transport {
	if cfg.ClientSessionCache == nil {
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(16)
	}
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     cfg,
		TLSHandshakeTimeout: timeout,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

func newWorker(o *Options) *worker {
	cfg := &tls.Config{RootCAs: o.Roots, Time: o.Now, MinVersion: tls.VersionTLS12}
	tr := newTransport(cfg, o.Timeout)
	return &worker{http: newHTTPClient(statusRecorder{tr}), transport: tr}
}

// newHTTPClient is an HTTP client that follows no redirect: a 3xx reply
// is a *statusError naming where it pointed. Followed, it could take the
// requests, with the EST password, to a plain-http URL or to a server
// nobody named, past the https and trust checks made on the URL given.
// CheckRedirect holds even should a 3xx get past the transport.
func newHTTPClient(rt http.RoundTripper) *http.Client {
	return &http.Client{Transport: refuseRedirects{rt},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// refuseRedirects turns a 3xx reply into an error.
type refuseRedirects struct{ http.RoundTripper }

func (r refuseRedirects) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.RoundTripper.RoundTrip(req)
	if err != nil || resp.StatusCode < 300 || resp.StatusCode > 399 {
		return resp, err
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	loc = client.Printable(loc[:min(len(loc), 200)])
	return nil, &statusError{status: resp.StatusCode, err: fmt.Errorf("HTTP %d: a redirect to %q, not followed", resp.StatusCode, loc)}
}

// statusRecorder notes, in the *exchange the request's context carries,
// the HTTP status of every response, so that a refusal by status is counted
// by it whatever error text the client library makes of it, and how long the
// server took to answer: from sending the request to the reply's headers.
type statusRecorder struct{ http.RoundTripper }

// exchange is what statusRecorder noted about one enrollment's requests.
type exchange struct {
	status    int           // the last response's
	roundTrip time.Duration // summed over the enrollment's requests
}

type exchangeKey struct{}

func (s statusRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := s.RoundTripper.RoundTrip(req)
	if ex, ok := req.Context().Value(exchangeKey{}).(*exchange); ok {
		ex.roundTrip += time.Since(start)
		if resp != nil {
			ex.status = resp.StatusCode
		}
	}
	return resp, err
}

// pendingError is a SCEP PENDING reply, told as the server gave it; it
// wraps the client's *PendingError, by which it is counted.
type pendingError struct {
	text string
	err  error
}

func (e *pendingError) Error() string { return e.text }
func (e *pendingError) Unwrap() error { return e.err }

// statusError is an enrollment refused with an HTTP status.
type statusError struct {
	status int
	err    error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// scepEnroller sends PKCSReqs through the SCEP client, each signed by the
// pre-built self-signed certificate of its request's key: built before the
// clock started (prepared, request i is enrollment i's), or on the clock.
type scepEnroller struct {
	o        *Options
	targets  []*target
	keys     []poolKey
	prepared []*client.Prepared // nil: each request is built on the clock
	// The challenge's KEKs, for EC keys' password-based replies: a server
	// that derives one per challenge (scepter) costs the tool one PBKDF2,
	// not one per reply.
	keks cms.PasswordKEKs
}

// request builds the PKCSReq of item for target ti, enrollment i. Each
// enrollment is a transaction of its own (the key's transaction ID and
// its number): a pool's CSR sent again under the key's one would be a
// resend, answered with the certificate issued the first time.
func (e *scepEnroller) request(ti, i int, item *poolItem) (*client.Prepared, error) {
	t := e.targets[ti]
	k := &e.keys[item.key]
	c := &client.SCEP{URL: t.url, Now: e.o.Now, PasswordKEKs: &e.keks}
	return c.Prepare(client.EnrollRequest{
		CSR: item.der, Key: k.key, SignerCert: k.signer, SignerKey: k.key,
		CACerts: t.caCerts, Caps: t.caps, Challenge: e.o.Challenge,
		TransactionID: client.TransactionID(item.spki)[:32] + "-" + strconv.Itoa(i),
	})
}

// prepare builds, on every core, the PKCSReq of each of the run's o.Count
// enrollments, for the URL it will go to.
func (e *scepEnroller) prepare(ctx context.Context, p *pool) error {
	o := e.o
	e.prepared = make([]*client.Prepared, o.Count)
	start := time.Now()
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "bench: signing and encrypting %d requests (before the clock starts)\n", o.Count)
	}
	built, err := parallel(ctx, o.Count, func(i int) error {
		var err error
		e.prepared[i], err = e.request(i%len(e.targets), i, p.item(i))
		return err
	})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return stopped(err, "signing and encrypting the requests", fmt.Sprintf("%d of %d built", built, o.Count))
		}
		return fmt.Errorf("preparing the requests: %w", err)
	}
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "bench: requests ready in %.1fs\n", time.Since(start).Seconds())
	}
	return nil
}

func (e *scepEnroller) enroll(ctx context.Context, w *worker, ti, i int, item *poolItem) (func() (*x509.Certificate, error), error) {
	var req *client.Prepared
	if e.prepared != nil {
		req = e.prepared[i]
	} else {
		var err error
		if req, err = e.request(ti, i, item); err != nil {
			return nil, err
		}
	}
	c := &client.SCEP{URL: e.targets[ti].url, HTTP: w.http, Now: e.o.Now}
	body, err := c.SendPrepared(ctx, req)
	var notSCEP *client.NotSCEPError
	if errors.As(err, &notSCEP) {
		// An empty body, a web page or no DER: no pkiMessage.
		return nil, &notCMSError{err}
	}
	if err != nil {
		// The HTTP status that refused it, if one did.
		if ex, ok := ctx.Value(exchangeKey{}).(*exchange); ok && ex.status != 0 && ex.status != http.StatusOK {
			return nil, &statusError{status: ex.status, err: err}
		}
		return nil, err
	}
	return func() (*x509.Certificate, error) {
		cert, err := req.Certificate(body)
		if errors.Is(err, scep.ErrMalformed) {
			if _, cmsErr := cms.ParseSignedData(body); cmsErr != nil {
				// Not even CMS: no pkiMessage, not a CertRep gone wrong.
				return nil, &notCMSError{err}
			}
		}
		var fe *client.ForeignCertificatesError
		var pe *client.PendingError
		if errors.As(err, &pe) {
			// Said as the server said it: the client's "pending manual
			// approval" is what our server means by it, not every one.
			return nil, &pendingError{text: "the server answered PENDING (transaction " + pe.TransactionID + "); bench does not poll for it", err: err}
		}
		if errors.As(err, &fe) {
			// Another key's certificate: received all the same, and
			// its serial counted (run.record).
			return issuedAmong(fe.Certs), &verifyError{kind: "key", err: err}
		}
		return cert, err
	}, nil
}

// maxESTReply bounds the simpleenroll reply read: a certificate with its
// chain is a few kilobytes.
const maxESTReply = 4 * est.MaxBodyBytes

// estEnroller posts the pre-encoded CSR to simpleenroll with HTTP Basic
// credentials, on the worker's kept-alive connection.
type estEnroller struct {
	o          *Options
	targets    []*target
	pool       *pool
	user, pass string
}

func newESTEnroller(o *Options, targets []*target, pool *pool) *estEnroller {
	e := &estEnroller{o: o, targets: targets, pool: pool, user: o.ESTUser, pass: o.ESTPassword}
	if e.user == "" && e.pass == "" {
		// A challenge is accepted as the password of any unknown user.
		e.user, e.pass = "scepter-bench", o.Challenge
	}
	return e
}

func (e *estEnroller) enroll(ctx context.Context, w *worker, ti, i int, item *poolItem) (func() (*x509.Certificate, error), error) {
	t := e.targets[ti]
	csrBody, err := e.pool.csrFor(i, item)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(csrBody))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", est.ContentTypePKCS10)
	req.Header.Set("Content-Transfer-Encoding", "base64")
	req.SetBasicAuth(e.user, e.pass)
	// Should the server have acted on a copy lost with its connection,
	// it answers the copy sent again with that certificate (ours does at
	// a static-challenge or EST-user profile; another server may issue one
	// more), never a second reply here.
	client.MarkResendable(req, csrBody)
	resp, err := w.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxESTReply+1))
	if err != nil {
		return nil, fmt.Errorf("reading the reply: %w", err)
	}
	if len(body) > maxESTReply && resp.StatusCode == http.StatusOK {
		return nil, &verifyError{kind: "reply", err: fmt.Errorf("the reply is larger than %d bytes", maxESTReply)}
	}
	if resp.StatusCode != http.StatusOK {
		reason := strings.TrimSpace(string(body[:min(len(body), 200)]))
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/") {
			reason = ""
		}
		// A plain-text refusal may start with its status ("429 too many
		// requests…"), which the error says already.
		reason = strings.TrimPrefix(reason, strconv.Itoa(resp.StatusCode)+" ")
		text := fmt.Sprintf("HTTP %d", resp.StatusCode)
		switch {
		case reason != "":
			text += " " + reason
		case resp.StatusCode == http.StatusAccepted:
			// EST's "not yet" (RFC 7030 §4.2.3), without a word of its
			// own: the server holds the request.
			text += ": the server holds the request (EST's pending)"
			if ra := resp.Header.Get("Retry-After"); ra != "" {
				text += ", Retry-After " + client.Printable(ra[:min(len(ra), 40)])
			}
		}
		return nil, &statusError{status: resp.StatusCode, err: errors.New(text)}
	}
	if ct := strings.ToLower(resp.Header.Get("Content-Type")); strings.HasPrefix(ct, "text/html") || strings.HasPrefix(ct, "application/xhtml") {
		// A proxy's or web server's page: no certs-only reply.
		return nil, &notCMSError{fmt.Errorf("a 200 of Content-Type %s, starting %q", client.Printable(ct[:min(len(ct), 100)]), client.Printable(string(body[:min(len(body), 48)])))}
	}
	return func() (*x509.Certificate, error) { return estCertificate(body, item.spki) }, nil
}

// estCertificate finds the certificate for the CSR's key in a
// simpleenroll reply.
func estCertificate(body, spki []byte) (*x509.Certificate, error) {
	// A body that is not base64, or not CMS, is no certs-only reply.
	der, err := est.DecodeReply(body)
	if err != nil {
		return nil, &notCMSError{err}
	}
	sd, err := cms.ParseSignedData(der)
	if err != nil {
		return nil, &notCMSError{err}
	}
	for _, c := range sd.Certificates {
		if bytes.Equal(c.RawSubjectPublicKeyInfo, spki) {
			return c, nil
		}
	}
	// Another key's certificate: received all the same, and its serial
	// counted (run.record).
	return issuedAmong(sd.Certificates), &verifyError{kind: "key", err: errors.New("the reply holds no certificate for the CSR's key")}
}

// issuedAmong is the certificate a reply holding none for the request's key
// issued instead: its first that is no CA certificate (the others are its
// chain), or nil when it holds none.
func issuedAmong(certs []*x509.Certificate) *x509.Certificate {
	for _, c := range certs {
		if !c.IsCA {
			return c
		}
	}
	return nil
}
