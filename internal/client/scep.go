// Package client is scepter's SCEP and EST client library, used by
// `scepter enroll`, `scepter est` and the tests. It talks to any RFC 8894 or
// RFC 7030 server, not only ours, and imports only the wire formats.
package client

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
)

// maxResponseBytes bounds what we read from a server.
const maxResponseBytes = 4 << 20

// SCEP is a client for one SCEP URL.
type SCEP struct {
	URL string
	// HTTP, when set, is used as it is: its transport decides whom TLS
	// trusts, and Roots and Fingerprint are not used for it.
	HTTP *http.Client
	// Roots, when set, are the only trust anchors for an https server's
	// TLS certificate (as EST's --cacert).
	Roots *x509.CertPool
	// RootsFile names the file Roots were read from (scepter's --cacert),
	// for the error when the server's certificate does not chain to
	// them; empty, that error is Go's.
	RootsFile string
	// NoCACertFlag: the caller takes no --cacert (scepter getcrl), so a
	// server the system's roots do not trust is told what it does take.
	NoCACertFlag bool
	// Fingerprint ("sha256:HEX") pins an https server's TLS to our own CA
	// when Roots is nil, as EST's bootstrap does (RFC 7030 §4.1.1): before
	// the first request GetCACert is fetched once, on a connection used
	// for nothing else, and the server's TLS certificate must chain for
	// the URL's host to the CA with that fingerprint among what it sent,
	// and to nothing else (a system root does not do: a pin means only
	// the pinned CA); every later connection is held to the same. Without
	// Roots or Fingerprint, the system roots. The caller still checks the
	// GetCACert it fetches against the fingerprint (TrustedCACerts).
	Fingerprint string
	// AllowInsecureDES lets the client send single DES to a server that
	// offers nothing better. Off by default.
	AllowInsecureDES bool
	// Warnf, when set, receives warnings the caller should show.
	Warnf func(format string, args ...any)
	// Now is the client's clock, for signingTime and the self-signed
	// signer's validity; nil means pki.SystemClock. Tests talking to a
	// server with a pinned clock pass that clock here.
	Now func() time.Time
	// URLFromConfig says URL is the `url` setting of a configuration file
	// (the agent's), which advice names instead of --url.
	URLFromConfig bool
	// PasswordKEKs, when set, keeps the keys derived from the challenge to
	// open password-based replies (EC requesters), for clients that open
	// many replies under one challenge: a load tool. Nil: derived per reply.
	PasswordKEKs *cms.PasswordKEKs

	// own is the client made from Roots and Fingerprint, once.
	ownMu sync.Mutex
	own   *http.Client
	// systemRoots stands in for the machine's roots (nil) in tests.
	systemRoots *x509.CertPool
	// offered is what the last GetCACert returned, before the caller
	// keeps what it trusts (TrustedCACerts drops an expired RA): only to
	// say why no certificate is left to encrypt a request to.
	offeredMu sync.Mutex
	offered   []*x509.Certificate
	// capsUnsupported is how the last GetCACaps was refused (a 404, say)
	// when it was taken for a server without GetCACaps, "" otherwise:
	// only to say why it is taken to offer nothing but single DES.
	capsUnsupported string
}

// trustNaming is how this client's caller names its trust settings.
func (c *SCEP) trustNaming() TrustNaming {
	switch {
	case c.URLFromConfig:
		return NamingAgent
	case c.NoCACertFlag:
		return NamingNoCACert
	}
	return NamingFlags
}

func (c *SCEP) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return pki.SystemClock{}.Now()
}

func (c *SCEP) warnf(format string, args ...any) {
	if c.Warnf != nil {
		c.Warnf(format, args...)
	}
}

// Caps is the set of capabilities a server advertised.
type Caps map[string]bool

// Has reports whether a capability was advertised (case-insensitive, as
// some servers vary the case).
func (c Caps) Has(name string) bool { return c[strings.ToLower(name)] }

// knownCaps are the capabilities RFC 8894 §3.5.2 defines, with SHA-384,
// which servers (ours) list too.
var knownCaps = []string{"aes", "des3", "getnextcacert", "postpkioperation", "renewal", "sha-1", "sha-256", "sha-384", "sha-512", "scepstandard", "update"}

// hasKnown reports whether c lists a capability RFC 8894 defines.
func (c Caps) hasKnown() bool {
	for _, k := range knownCaps {
		if c[k] {
			return true
		}
	}
	return false
}

// String lists the capabilities, sorted, clipped and escaped for an error.
func (c Caps) String() string {
	names := make([]string, 0, len(c))
	for k := range c {
		names = append(names, k)
	}
	slices.Sort(names)
	return Printable(pki.Clip(strings.Join(names, " "), 200))
}

// FailureError is a FAILURE CertRep: the server refused, and says why.
type FailureError struct {
	FailInfo scep.FailInfo
	Text     string
}

func (e *FailureError) Error() string {
	if e.Text != "" {
		return fmt.Sprintf("server refused the request: %s (%s)", e.FailInfo, e.Text)
	}
	return fmt.Sprintf("server refused the request: %s", e.FailInfo)
}

// PendingError: the request awaits manual approval (a SCEP PENDING, an EST
// 202).
type PendingError struct {
	TransactionID string
	// RetryAfter is the wait the server asked for (EST), zero when none.
	RetryAfter time.Duration
	// Waited is how long the client kept asking (its MaxWait, spent),
	// zero when it was not asked to wait.
	Waited time.Duration
	// AskAgainAt, when set, is when the server asked to be asked again:
	// beyond MaxWait, so the client stopped rather than ask earlier (RFC
	// 7030 §4.2.3).
	AskAgainAt time.Time
	// Stopped is why the wait ended before MaxWait (the context's error:
	// the process was told to stop), nil when it did not: the request is
	// still held at the server, as after a wait that ran out.
	Stopped error
}

// Unwrap is the reason a wait was stopped, so that errors.Is finds
// context.Canceled in it.
func (e *PendingError) Unwrap() error { return e.Stopped }

// UnavailableError is a SCEP server's 503 or 429 that says with
// Retry-After when to come back (RFC 9110 §10.2.3).
type UnavailableError struct {
	Err        error
	RetryAfter time.Duration
}

func (e *UnavailableError) Error() string { return e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

func (e *PendingError) Error() string {
	what := "the request" // EST: the request is known by its key
	if e.TransactionID != "" {
		what = "request " + e.TransactionID
	}
	if e.Stopped != nil {
		// Why it stopped (context.Canceled, in Go's words) tells the
		// user nothing: they stopped it. Unwrap still gives it.
		return what + " is pending manual approval (waiting for it was stopped)"
	}
	if !e.AskAgainAt.IsZero() {
		return fmt.Sprintf("%s is pending manual approval; the server asked to be asked again in %s, at %s, beyond --max-wait, and is not asked earlier (RFC 7030 section 4.2.3)",
			what, pki.ShortDuration(e.RetryAfter), AskAgainTime(e.AskAgainAt))
	}
	return what + " is pending manual approval"
}

// httpClient is HTTP, or the client's own: its TLS trusts Roots, else only
// the CA pinned by Fingerprint (bootstrapped here, once), else the system
// roots.
func (c *SCEP) httpClient(ctx context.Context) (*http.Client, error) {
	if c.HTTP != nil {
		return c.HTTP, nil
	}
	c.ownMu.Lock()
	defer c.ownMu.Unlock()
	if c.own != nil {
		return c.own, nil
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, scepURLError(c.URL)
	}
	hc := &http.Client{Timeout: scepHTTPTimeout, CheckRedirect: refuseRedirect}
	if strings.EqualFold(u.Scheme, "https") {
		// TLS validity is checked at the client's clock, as EST does.
		roots := c.Roots
		if roots == nil {
			roots = c.systemRoots
		}
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, Time: c.now}
		if c.Roots == nil && c.Fingerprint != "" {
			if cfg, err = c.pinnedTLS(ctx, u); err != nil {
				return nil, err
			}
		}
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = cfg
		hc.Transport = t
	}
	c.own = hc
	return hc, nil
}

// scepHTTPTimeout bounds each exchange with a SCEP server.
const scepHTTPTimeout = 60 * time.Second

// refuseRedirect is the SCEP client's redirect policy: none is followed,
// so that the challenge and the request go only where the URL says, and an
// https URL never goes on over plain HTTP (after which the CA and RA
// certificates, pinned only by TLS under --cacert, would be anyone's); a
// 301 or 302 on a POST would also come back as a GET without the message.
// doWith names the redirect instead.
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// RedirectError is a 3xx from the SCEP server, not followed.
type RedirectError struct {
	Operation string // GetCACaps, GetCACert, PKIOperation
	Status    int
	// Location is where the server redirects, absolute, without user
	// info.
	Location string
	// From is the URL the client was given (scepter's --url, or the
	// agent's url setting when URLFromConfig).
	From          string
	URLFromConfig bool
}

func (e *RedirectError) Error() string {
	target, advice := e.Location, ""
	u, err := url.Parse(e.Location)
	from, ferr := url.Parse(e.From)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https"):
		advice = "it is no http or https URL, which SCEP needs"
	case ferr == nil && strings.EqualFold(from.Scheme, "https") && u.Scheme == "http":
		// TLS is what authenticates the server under --cacert or a pin:
		// offering the plain URL would be advice to drop it.
		advice = "it leaves https for plain http, where the server is not authenticated; ask the server's operator why, or give its https URL"
	default:
		// The client adds operation and message to each request: the
		// URL to give is the target without them.
		base := *u
		var kept []string
		for _, param := range strings.FieldsFunc(u.RawQuery, func(r rune) bool { return r == '&' || r == ';' }) {
			name, _, _ := strings.Cut(param, "=")
			if !strings.EqualFold(name, "operation") && !strings.EqualFold(name, "message") {
				kept = append(kept, param)
			}
		}
		base.RawQuery, base.ForceQuery = strings.Join(kept, "&"), false
		target = base.String()
		advice = "give --url " + target + " if you trust it"
		if e.URLFromConfig {
			advice = fmt.Sprintf("set url = %q for this certificate in the configuration file if you trust it", target)
		}
	}
	// A server's header, cut as other quoted texts are: it may be
	// megabytes long.
	return fmt.Sprintf("%s: HTTP %d: the server redirects to %s; scepter does not follow redirects (the challenge and the request must go only where the URL says): %s",
		e.Operation, e.Status, Printable(pki.Clip(e.Location, maxLocationShown)), Printable(pki.Clip(advice, maxLocationShown+128)))
}

// CheckURL reports whether URL is one the client can use, before anything
// is sent: a URL net/url reads, whose query (a deployment's own
// parameters, profile=vpn say, which every request keeps) holds neither
// operation nor message, which the client sets for each request (RFC 8894
// §4.1): sent twice, which one a server reads is its own choice.
func (c *SCEP) CheckURL() error {
	_, err := c.operationURL("", "")
	return err
}

// operationURL is URL asking for operation, with message when not empty:
// the URL's own query parameters come first, as given, then operation and
// message.
func (c *SCEP) operationURL(operation, message string) (*url.URL, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, scepURLError(c.URL)
	}
	// Split by hand: url.ParseQuery refuses a ";", which a server may
	// take, and the query is sent as given.
	for _, param := range strings.FieldsFunc(u.RawQuery, func(r rune) bool { return r == '&' || r == ';' }) {
		name, _, _ := strings.Cut(param, "=")
		if unescaped, err := url.QueryUnescape(name); err == nil {
			name = unescaped
		}
		if strings.EqualFold(name, "operation") || strings.EqualFold(name, "message") {
			return nil, fmt.Errorf("SCEP URL %q has %q in its query, which the client sets for each request (RFC 8894 §4.1): remove it from the URL (other query parameters are kept and sent with each request)",
				Printable(RedactURL(c.URL)), Printable(name))
		}
	}
	q := u.RawQuery
	add := func(p string) {
		if q != "" {
			q += "&"
		}
		q += p
	}
	if operation != "" {
		add("operation=" + url.QueryEscape(operation))
	}
	if message != "" {
		add("message=" + url.QueryEscape(message))
	}
	u.RawQuery, u.ForceQuery = q, false
	return u, nil
}

func (c *SCEP) get(ctx context.Context, operation, message string) (*http.Response, []byte, error) {
	u, err := c.operationURL(operation, message)
	if err != nil {
		return nil, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, err
	}
	return c.do(req)
}

func (c *SCEP) do(req *http.Request) (*http.Response, []byte, error) {
	hc, err := c.httpClient(req.Context())
	if err != nil {
		return nil, nil, err
	}
	return c.doWith(hc, req)
}

// doWith sends req with hc and reads the reply, which must be a 200.
func (c *SCEP) doWith(hc *http.Client, req *http.Request) (*http.Response, []byte, error) {
	resp, err := hc.Do(req)
	if err != nil {
		// Go's *url.Error repeats the method and the URL.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if c.HTTP == nil {
			// Otherwise the caller's transport decides whom TLS trusts.
			err = untrustedServer(err, trust{roots: c.Roots, rootsFile: c.RootsFile, fingerprint: c.Fingerprint, noCACertFlag: c.NoCACertFlag})
		}
		return nil, nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	// One byte beyond the bound tells a reply cut short from one that
	// fits: cut short, it would be judged by the bytes read, as if that
	// were its size.
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: reading the response: %w", req.URL.Query().Get("operation"), err)
	}
	if len(body) > maxResponseBytes {
		if resp.StatusCode == http.StatusOK {
			return nil, nil, fmt.Errorf("%s: the reply is more than %d bytes, the most read", req.URL.Query().Get("operation"), maxResponseBytes)
		}
		body = body[:maxResponseBytes] // only its start is shown
	}
	if loc, err := resp.Location(); err == nil && resp.StatusCode >= 300 && resp.StatusCode < 400 {
		loc.User = nil
		return nil, nil, &RedirectError{Operation: req.URL.Query().Get("operation"), Status: resp.StatusCode,
			Location: loc.String(), From: c.URL, URLFromConfig: c.URLFromConfig}
	}
	if resp.StatusCode != http.StatusOK {
		// Not an HTTPError: the agent takes an HTTPError 4xx for EST's final
		// refusal of a held request, which this is not.
		msg := fmt.Sprintf("%s: HTTP %d", req.URL.Query().Get("operation"), resp.StatusCode)
		if reason := replyReason(resp.Header.Get("Content-Type"), body); reason != "" {
			msg += ": " + reason
		}
		if resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests {
			if wait, ok := parseRetryAfter(resp.Header.Get("Retry-After"), c.now()); ok {
				return nil, nil, &UnavailableError{Err: errors.New(msg), RetryAfter: wait}
			}
		}
		return nil, nil, &statusError{status: resp.StatusCode, msg: msg}
	}
	return resp, body, nil
}

// statusError is a SCEP server's answer other than 200 (and a redirect,
// or a 503 or 429 with Retry-After): its status, and the operation and
// status with the start of its text.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

// MarkResendable marks a POST as safe to send again, so that Go's
// transport, finding that the server closed a kept-alive connection as the
// request went out on it (servers close idle connections to make room for
// others, or at their idle timeout), resends it on a new connection rather
// than failing, as devices' HTTP stacks do: Go resends only requests
// marked idempotent. The key is the body's digest, the same for every
// copy and different for every other request.
func MarkResendable(req *http.Request, body []byte) {
	sum := sha256.Sum256(body)
	req.Header.Set("Idempotency-Key", hex.EncodeToString(sum[:16]))
}

// maxReasonBytes bounds how much of an error reply's body an error quotes.
const maxReasonBytes = 300

// replyReason is what an error reply's body adds to the error: its start,
// escaped, so that a server's text cannot drive the user's terminal or
// forge a line below the error; nothing when the body is not text (a DER
// or binary body would be noise).
func replyReason(contentType string, body []byte) string {
	if contentType != "" && !strings.HasPrefix(contentType, "text/") {
		return ""
	}
	return Printable(strings.TrimSpace(string(truncate(body, maxReasonBytes))))
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// GetCACaps fetches the server's capabilities. An answer that is no list
// of capabilities (a web page, a login form) is refused as coming from no
// SCEP server: read as one, it offers nothing, and the advice would be to
// allow single DES. A server that does not know the operation (a server
// older than RFC 8894's drafts' GetCACaps) offers no capabilities, as
// RFC 8894 §3.5.1 says a client should take it: see capsNotSupported.
func (c *SCEP) GetCACaps(ctx context.Context) (Caps, error) {
	resp, body, err := c.get(ctx, "GetCACaps", "")
	var se *statusError
	if errors.As(err, &se) && capsNotSupported(se.status) {
		c.offeredMu.Lock()
		c.capsUnsupported = se.msg
		c.offeredMu.Unlock()
		c.warnf("the server does not support GetCACaps (%s): taking it to offer no capabilities (RFC 8894 §3.5.1)", se.msg)
		return Caps{}, nil
	}
	if err != nil {
		return nil, err
	}
	c.offeredMu.Lock()
	c.capsUnsupported = ""
	c.offeredMu.Unlock()
	caps := Caps{}
	ct := resp.Header.Get("Content-Type")
	for _, line := range strings.FieldsFunc(string(body), func(r rune) bool { return r == '\n' || r == '\r' }) {
		s := strings.TrimSpace(line)
		if s == "" {
			continue
		}
		if !isCapability(s) || isHTML(ct) {
			return nil, notSCEPError("GetCACaps", ct, body, "a list of capabilities, one a line (RFC 8894 §3.5.2)")
		}
		caps[strings.ToLower(s)] = true
	}
	return caps, nil
}

// capsNotSupported: a GetCACaps answered with status comes from a server
// that does not know the operation: 404 and 400 (an unknown operation,
// in the words of servers that have none), 405 and 501 (not
// implemented). Such a server offers no capabilities (RFC 8894 §3.5.1),
// which leaves single DES, refused unless allowed, and PKIOperation by
// GET. A 400 is taken too, though it may also come from a web server
// that is no SCEP server: GetCACert, asked next, refuses that one by its
// answer, and nothing is sent on the strength of the 400. Other answers
// stop: 5xx but 501 are the server's trouble, for now; 401, 403 and 429
// say that it is there and refuses us.
func capsNotSupported(status int) bool {
	switch status {
	case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return true
	}
	return false
}

// isCapability: s could be a capability's keyword ("AES", "SHA-256",
// "POSTPKIOperation"): letters, digits, "-", "_" and ".", at most 64.
func isCapability(s string) bool {
	if len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// isHTML: a Content-Type of a web page.
func isHTML(contentType string) bool {
	ct := strings.ToLower(strings.TrimSpace(contentType))
	return strings.HasPrefix(ct, "text/html") || strings.HasPrefix(ct, "application/xhtml")
}

// maxFirstBytesShown bounds the start of an answer an error quotes.
const maxFirstBytesShown = 48

// notSCEPError says that the answer to operation, body of contentType, is
// not what a SCEP server sends (want): whatever answered (a web server, a
// proxy's page, a wrong path) is no SCEP server, and what its body would
// mean to a SCEP parser (no capabilities, a malformed PKCS#7) is not the
// point. It names the content type and the body's first bytes, escaped.
func notSCEPError(operation, contentType string, body []byte, want string) error {
	if contentType == "" {
		contentType = "none"
	}
	first := "an empty body"
	if len(body) > 0 {
		start, more := body, ""
		if len(body) > maxFirstBytesShown {
			cut := maxFirstBytesShown
			for cut > 0 && !utf8.RuneStart(body[cut]) {
				cut--
			}
			start, more = body[:cut], "…"
		}
		first = fmt.Sprintf("a body of %d bytes starting \"%s%s\"", len(body), Printable(string(start)), more)
	}
	return &NotSCEPError{fmt.Sprintf("%s: the server does not look like a SCEP server: it answered with Content-Type %s and %s, not %s; check that the URL is the SCEP server's (http://HOST/scep, say, or http://HOST/cgi-bin/pkiclient.exe)",
		operation, Printable(pki.Clip(contentType, 100)), first, want)}
}

// NotSCEPError is an answer no SCEP server sends (notSCEPError): a load
// tool counts such a reply, a proxy's page say, as a request that did not
// reach the server rather than as a bad certificate.
type NotSCEPError struct{ text string }

func (e *NotSCEPError) Error() string { return e.text }

// GetCACert fetches the CA (and RA) certificates.
func (c *SCEP) GetCACert(ctx context.Context) ([]*x509.Certificate, error) {
	resp, body, err := c.get(ctx, "GetCACert", "")
	if err != nil {
		return nil, err
	}
	certs, err := parseGetCACert(resp, body)
	if err != nil {
		return nil, err
	}
	c.offeredMu.Lock()
	c.offered = certs
	c.offeredMu.Unlock()
	return certs, nil
}

// parseGetCACert reads a GetCACert reply: one DER certificate, or a
// certs-only CMS. Anything else is no SCEP server's answer (notSCEPError),
// the parser's own words aside.
func parseGetCACert(resp *http.Response, body []byte) ([]*x509.Certificate, error) {
	ct := resp.Header.Get("Content-Type")
	const want = "a DER certificate or a PKCS#7 certs-only (RFC 8894 §4.2.1)"
	if strings.HasPrefix(ct, "application/x-x509-ca-cert") {
		cert, err := x509.ParseCertificate(body)
		if err != nil {
			return nil, notSCEPError("GetCACert", ct, body, want)
		}
		return []*x509.Certificate{cert}, nil
	}
	sd, err := cms.ParseSignedData(body)
	if err != nil {
		// Some servers label a single DER certificate wrongly.
		if cert, cerr := x509.ParseCertificate(body); cerr == nil {
			return []*x509.Certificate{cert}, nil
		}
		return nil, notSCEPError("GetCACert", ct, body, want)
	}
	if len(sd.Certificates) == 0 {
		return nil, errors.New("GetCACert: no certificates in the response")
	}
	return sd.Certificates, nil
}

// Fingerprint is "sha256:" + hex of the certificate's SHA-256.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// CheckFingerprint succeeds when one of certs has the given fingerprint
// ("sha256:HEX" or bare hex, colons allowed; the prefix in any case, and
// "sha-256:" too, as other tools print it).
func CheckFingerprint(certs []*x509.Certificate, want string) error {
	w, ok := NormalizeFingerprint(want)
	if !ok {
		return fmt.Errorf("CA fingerprint %q is not a SHA-256 hex digest", want)
	}
	for _, c := range certs {
		if strings.TrimPrefix(Fingerprint(c), "sha256:") == w {
			return nil
		}
	}
	return &PinMismatchError{Pin: want, Sent: certs}
}

// PinMismatchError: none of the certificates a server sent (Sent) has the
// pinned fingerprint (Pin, as given). The caller may know more of why
// (the pin let an earlier run in: the pinned CA is gone).
type PinMismatchError struct {
	Pin  string
	Sent []*x509.Certificate
	// Naming is how the caller's trust settings are named in the advice.
	Naming TrustNaming
}

func (e *PinMismatchError) Error() string {
	return fmt.Sprintf("no certificate from the server matches CA fingerprint %s: refusing to trust it%s", e.Pin, sentInstead(e.Sent, e.Pin, e.Naming))
}

// maxCertsNamed bounds how many of a server's certificates an error names.
const maxCertsNamed = 6

// sentInstead says, for a fingerprint none of certs has, what the server
// sent: each certificate's subject and fingerprint, and for a CA
// certificate whose issuer it did not send (an intermediate without its
// root, as step-ca's GetCACert sends), that pinning it, or trusting that
// root by --cacert, works: the pin is often the root's, printed by the
// server at start, while the server sends only the CA below it.
func sentInstead(certs []*x509.Certificate, pin string, naming TrustNaming) string {
	if len(certs) == 0 {
		return ""
	}
	var sent []string
	var orphan *x509.Certificate
	for i, c := range certs {
		selfSigned := bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
		note := ""
		if !selfSigned && IssuerAmong(c, certs) == nil {
			note = ", issued by " + Printable(pki.Clip(c.Issuer.String(), 200)) + ", which it did not send"
			if c.IsCA && orphan == nil {
				orphan = c
			}
		}
		if i < maxCertsNamed {
			sent = append(sent, fmt.Sprintf("%s (%s%s)", Printable(pki.Clip(c.Subject.String(), 200)), Fingerprint(c), note))
		}
	}
	if len(certs) > maxCertsNamed {
		sent = append(sent, fmt.Sprintf("and %d more", len(certs)-maxCertsNamed))
	}
	msg := "; the server sent " + strings.Join(sent, ", ")
	if orphan != nil {
		issuer := Printable(pki.Clip(orphan.Issuer.String(), 200))
		msg += fmt.Sprintf("; if %s is the fingerprint of %s, pin the CA certificate the server sends instead", Printable(pki.Clip(pin, 100)), issuer)
		switch naming {
		case NamingAgent:
			msg += fmt.Sprintf(" (ca_fingerprint = %q in the agent's configuration: a pin need not be a root)", Fingerprint(orphan))
		case NamingNoCACert:
			msg += fmt.Sprintf(" (--ca-fingerprint %s: a pin need not be a root)", Fingerprint(orphan))
		default:
			msg += fmt.Sprintf(" (--ca-fingerprint %s: a pin need not be a root), or, over https, give --cacert with %s's certificate instead of --ca-fingerprint", Fingerprint(orphan), issuer)
		}
	}
	return msg
}

// NormalizeFingerprint reads a SHA-256 fingerprint as people write it
// (sha256: or sha-256: in any case, or no prefix; colons allowed) as 64
// lower-case hex digits; false when it is none.
func NormalizeFingerprint(s string) (string, bool) {
	w := strings.ToLower(strings.TrimSpace(s))
	for _, prefix := range []string{"sha256:", "sha-256:"} {
		w = strings.TrimPrefix(w, prefix)
	}
	w = strings.ReplaceAll(w, ":", "")
	if _, err := hex.DecodeString(w); err != nil || len(w) != 64 {
		return "", false
	}
	return w, true
}

// Recipient picks the certificate to encrypt to: an RA certificate meant for
// encryption if there is one, else the CA certificate itself.
func Recipient(certs []*x509.Certificate) (*x509.Certificate, error) {
	var fallback *x509.Certificate
	for _, c := range certs {
		if !canBeRecipient(c) {
			continue
		}
		if !c.IsCA {
			return c, nil
		}
		if fallback == nil {
			fallback = c
		}
	}
	if fallback == nil {
		return nil, errNoRecipient
	}
	return fallback, nil
}

var errNoRecipient = errors.New("the server offers no RSA certificate to encrypt the request to")

// canBeRecipient: an RSA CA certificate, or an RSA RA certificate meant
// for encryption.
func canBeRecipient(c *x509.Certificate) bool {
	if _, ok := c.PublicKey.(*rsa.PublicKey); !ok {
		return false
	}
	return c.IsCA || c.KeyUsage == 0 || c.KeyUsage&x509.KeyUsageKeyEncipherment != 0
}

// recipient is Recipient, and when trusted holds none, says whether the
// last GetCACert offered one that was left out only for being outside its
// validity at the client's clock (an RA certificate the server let
// expire), rather than that there is no RSA certificate at all.
func (c *SCEP) recipient(trusted []*x509.Certificate) (*x509.Certificate, error) {
	r, err := Recipient(trusted)
	if err == nil {
		return r, nil
	}
	c.offeredMu.Lock()
	offered := c.offered
	c.offeredMu.Unlock()
	now := c.now()
	var stale []string
	for _, cand := range offered {
		// An RA, or the CA above it: an expired issuing CA leaves its RA
		// out too, as no longer chaining to the pinned CA. Named only when
		// one of trusted signed it: the server's own.
		if !(canBeRecipient(cand) || cand.IsCA) || IssuerAmong(cand, trusted) == nil {
			continue
		}
		switch {
		case now.After(cand.NotAfter):
			stale = append(stale, fmt.Sprintf("%s expired at %s", cand.Subject, cand.NotAfter.UTC().Format(time.RFC3339)))
		case now.Before(cand.NotBefore):
			stale = append(stale, fmt.Sprintf("%s is not valid before %s", cand.Subject, cand.NotBefore.UTC().Format(time.RFC3339)))
		}
	}
	if len(stale) == 0 {
		return nil, err
	}
	return nil, fmt.Errorf("the server offers no valid RSA certificate to encrypt the request to: %s (this machine's clock says %s)",
		strings.Join(stale, "; "), now.UTC().Format(time.RFC3339))
}

// Algorithms chooses the strongest cipher and digest the server offers.
func (c *SCEP) Algorithms(caps Caps) (cms.ContentCipher, crypto.Hash, error) {
	var cipher cms.ContentCipher
	switch {
	case caps.Has("AES") || caps.Has("SCEPStandard"):
		// AES-256-CBC is the AES every deployed server decrypts; some older
		// Go servers could not decrypt AES-128-CBC.
		cipher = cms.AES256CBC
	case caps.Has("DES3"):
		cipher = cms.DES3CBC
	case c.AllowInsecureDES:
		cipher = cms.DESCBC
	case len(caps) > 0 && !caps.hasKnown():
		// Words, but none a SCEP server says: more likely no SCEP server
		// than one that wants single DES.
		return 0, 0, fmt.Errorf("the server's GetCACaps lists none of RFC 8894's capabilities (%s): check that the URL is the SCEP server's; if it is, it offers only single DES, which is insecure: pass --allow-insecure-des to use it anyway", caps)
	default:
		c.offeredMu.Lock()
		unsupported := c.capsUnsupported
		c.offeredMu.Unlock()
		if unsupported != "" && len(caps) == 0 {
			return 0, 0, fmt.Errorf("the server does not support GetCACaps (%s), so it is taken to offer neither AES nor DES3 (RFC 8894 §3.5.1), only single DES, which is insecure; pass --allow-insecure-des to use it anyway", unsupported)
		}
		return 0, 0, errors.New("the server offers neither AES nor DES3 (only single DES, which is insecure); pass --allow-insecure-des to use it anyway")
	}
	digest := crypto.SHA1
	switch {
	case caps.Has("SHA-256") || caps.Has("SCEPStandard"):
		digest = crypto.SHA256
	case caps.Has("SHA-512"):
		digest = crypto.SHA512
	}
	return cipher, digest, nil
}

// EnrollRequest is one PKCSReq (or RenewalReq) to send.
type EnrollRequest struct {
	CSR []byte        // DER PKCS#10
	Key crypto.Signer // the CSR's key; signs the self-signed signer certificate
	// SignerCert and SignerKey, when set, sign the message instead (renewal
	// with the current certificate).
	SignerCert *x509.Certificate
	SignerKey  crypto.Signer
	// CACerts are the certificates from GetCACert (already checked).
	CACerts []*x509.Certificate
	Caps    Caps
	Type    scep.MessageType // PKCSReq by default
	// Challenge is the CSR's challenge password: an EC signer receives its
	// certificate in a password-based envelope keyed from it.
	Challenge string
	// TransactionID, when set, is the transaction's ID instead of the one
	// derived from the key (TransactionID), for a load tool that sends one
	// CSR again as a new transaction: a server answers a PKCSReq sent
	// again in the same transaction with the certificate it issued then.
	TransactionID string
	// PollInterval and MaxWait make Enroll poll (CertPoll) while the
	// server answers PENDING, backing off from PollInterval up to ten
	// times it. Zero MaxWait returns a *PendingError at once.
	PollInterval time.Duration
	MaxWait      time.Duration
	// Held, when set, is called once, at the first answer that holds the
	// request for approval (PENDING), before any wait: a caller that
	// keeps the request's key records the hold then, as the process may
	// be killed during the wait.
	Held func()
}

// exchange is one transaction: its ID, signer and where to send.
type exchange struct {
	c          *SCEP
	r          EnrollRequest
	csr        *x509.CertificateRequest
	recipient  *x509.Certificate
	cipher     cms.ContentCipher
	digest     crypto.Hash
	signerCert *x509.Certificate
	signerKey  crypto.Signer
	txID       string
}

// Enroll sends a PKCSReq (or RenewalReq) and returns the issued certificate,
// polling while the request is pending if asked to.
func (c *SCEP) Enroll(ctx context.Context, r EnrollRequest) (*x509.Certificate, error) {
	p, err := c.Prepare(r)
	if err != nil {
		return nil, err
	}
	x := p.x
	started := time.Now()
	deadline := started.Add(r.MaxWait)
	rep, err := x.post(ctx, p.message, p.nonce)
	// Asked again with a new nonce: a server may have recorded the first.
	rep, err = x.whileUnavailable(ctx, deadline, false, rep, err, func() (*scep.PKIMessage, error) { return x.send(ctx, p.typ, r.CSR) })
	if err != nil {
		return nil, err
	}
	wait := r.PollInterval
	if wait <= 0 {
		wait = 10 * time.Second
	}
	if rep.PKIStatus == scep.StatusPending && r.Held != nil {
		r.Held()
	}
	for rep.PKIStatus == scep.StatusPending {
		// The last wait is cut to the time left, so that the request is
		// asked about once more at the deadline.
		left := time.Until(deadline)
		if r.MaxWait <= 0 || left <= 0 {
			return nil, &PendingError{TransactionID: x.txID, Waited: max(r.MaxWait, 0)}
		}
		sleep := min(wait, left)
		c.warnf("request %s is pending approval; polling again in %s", x.txID, sleep.Round(time.Second))
		select {
		case <-ctx.Done():
			// Told while the server holds the request: it stays held,
			// and the caller says so (and where its key is).
			return nil, &PendingError{TransactionID: x.txID, Waited: time.Since(started).Round(time.Second), Stopped: ctx.Err()}
		case <-time.After(sleep):
		}
		wait = min(wait*3/2, 10*max(r.PollInterval, time.Second))
		if _, rsaSigner := x.signerKey.Public().(*rsa.PublicKey); !rsaSigner {
			// The reply to an EC signer is keyed from the challenge, which
			// a CertPoll does not carry: ask again with the request itself
			// (same transaction ID, new nonce), as some devices always do.
			rep, err = x.send(ctx, p.typ, r.CSR)
			if rep, err = x.whileUnavailable(ctx, deadline, true, rep, err, func() (*scep.PKIMessage, error) { return x.send(ctx, p.typ, r.CSR) }); err != nil {
				return nil, err
			}
			continue
		}
		// IssuerAndSubject names the CA: the recipient, or the RA's issuer.
		caName := x.recipient.RawIssuer
		if x.recipient.IsCA {
			caName = x.recipient.RawSubject
		}
		poll, err := scep.MarshalIssuerAndSubject(caName, x.csr.RawSubject)
		if err != nil {
			return nil, err
		}
		rep, err = x.send(ctx, scep.CertPoll, poll)
		if rep, err = x.whileUnavailable(ctx, deadline, true, rep, err, func() (*scep.PKIMessage, error) { return x.send(ctx, scep.CertPoll, poll) }); err != nil {
			return nil, err
		}
	}
	return x.certificate(rep)
}

// whileUnavailable returns rep and err, the answer to a message, unless
// err is a 503 or 429 with Retry-After and MaxWait leaves time: then it
// waits, as for a PENDING, the longer of Retry-After and PollInterval,
// cut to the time left before deadline, and asks again (again), until
// another answer comes or the Retry-After goes beyond the time left (the
// last 503 is returned, naming when to ask again: it is not asked early). A
// bare 503 ends it at once. held says the server held the request before:
// stopped while waiting, the request stays held (a *PendingError).
func (x *exchange) whileUnavailable(ctx context.Context, deadline time.Time, held bool, rep *scep.PKIMessage, err error, again func() (*scep.PKIMessage, error)) (*scep.PKIMessage, error) {
	for {
		busy := unavailableFor(err)
		if busy == 0 || x.r.MaxWait <= 0 {
			return rep, err
		}
		left := time.Until(deadline)
		if busy > left {
			return nil, maxWaitSpent(err, x.r.MaxWait, busy, x.c.now())
		}
		wait := min(max(busy, x.r.PollInterval), left)
		x.c.warnf("%v; asking again in %s", err, wait.Round(time.Second))
		select {
		case <-ctx.Done():
			if held {
				return nil, &PendingError{TransactionID: x.txID, Waited: time.Since(deadline.Add(-x.r.MaxWait)).Round(time.Second), Stopped: ctx.Err()}
			}
			return nil, fmt.Errorf("%w (waiting to ask again was stopped)", err)
		case <-time.After(wait):
		}
		rep, err = again()
	}
}

// Prepared is a PKCSReq (or RenewalReq) signed and encrypted ahead of
// sending, as a load generator builds its requests before its clock starts.
// Send it once, with SendPrepared, and read the reply with Certificate.
type Prepared struct {
	x       *exchange
	typ     scep.MessageType // PKCSReq or RenewalReq
	nonce   []byte
	message []byte // the pkiMessage, DER
}

// Prepare builds r's pkiMessage: a fresh sender nonce, the CSR encrypted to
// the CA or RA, signed by r's signer or by a self-signed certificate of the
// CSR's key.
func (c *SCEP) Prepare(r EnrollRequest) (*Prepared, error) {
	csr, err := x509.ParseCertificateRequest(r.CSR)
	if err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	x, err := c.newExchange(r)
	if err != nil {
		return nil, err
	}
	x.csr, x.txID = csr, TransactionID(csr.RawSubjectPublicKeyInfo)
	if r.TransactionID != "" {
		x.txID = r.TransactionID
	}
	if x.signerCert == nil {
		x.signerKey = r.Key
		if x.signerCert, err = SelfSigned(csr, r.Key, c.now()); err != nil {
			return nil, err
		}
	}
	typ := r.Type
	if typ == "" {
		typ = scep.PKCSReq
	}
	msg, nonce, err := x.build(typ, r.CSR)
	if err != nil {
		return nil, err
	}
	return &Prepared{x: x, typ: typ, nonce: nonce, message: msg}, nil
}

// SendPrepared sends p to c's URL (c may differ from the client that
// prepared it, say by its HTTP connections) and returns the reply's body,
// unchecked: Certificate checks it.
func (c *SCEP) SendPrepared(ctx context.Context, p *Prepared) ([]byte, error) {
	return c.pkiOperation(ctx, p.x.r.Caps, p.message)
}

// Certificate checks a reply to p (signed by a certificate from GetCACert,
// answering p's transaction and nonce) and returns the certificate it
// issued for p's key. A PENDING reply is a *PendingError, a FAILURE a
// *FailureError.
func (p *Prepared) Certificate(body []byte) (*x509.Certificate, error) {
	rep, err := p.x.c.checkReply(body, p.x.r.CACerts, p.x.txID, p.nonce)
	if err != nil {
		return nil, err
	}
	if rep.PKIStatus == scep.StatusPending {
		return nil, &PendingError{TransactionID: p.x.txID}
	}
	return p.x.certificate(rep)
}

// certificate returns the certificate for the request's key from a
// CertRep that is no longer pending.
func (x *exchange) certificate(rep *scep.PKIMessage) (*x509.Certificate, error) {
	switch rep.PKIStatus {
	case scep.StatusSuccess:
	case scep.StatusFailure:
		return nil, &FailureError{FailInfo: rep.FailInfo, Text: Printable(rep.FailInfoText)}
	default:
		return nil, &ReplyError{fmt.Errorf("CertRep has unknown pkiStatus %q", rep.PKIStatus)}
	}
	// What fails from here is an answer that came and cannot be used
	// (ReplyError), not one lost.
	certs, err := x.open(rep)
	if err != nil {
		return nil, &ReplyError{err}
	}
	for _, cert := range certs {
		if bytes.Equal(cert.RawSubjectPublicKeyInfo, x.csr.RawSubjectPublicKeyInfo) {
			return cert, nil
		}
	}
	return nil, &ReplyError{&ForeignCertificatesError{Certs: certs}}
}

// ForeignCertificatesError is a SUCCESS CertRep that holds no certificate
// for the request's key. Certs are those it holds instead: a load tool
// counts their serials among those received (a server that gave one
// client's certificate to another repeats its serial).
type ForeignCertificatesError struct{ Certs []*x509.Certificate }

func (e *ForeignCertificatesError) Error() string {
	return "the CertRep holds no certificate for our key"
}

// newExchange picks the algorithms the server's capabilities allow and the
// recipient of the request's envelope; the signer is r's (nil: the caller
// sets one).
func (c *SCEP) newExchange(r EnrollRequest) (*exchange, error) {
	x := &exchange{c: c, r: r, signerCert: r.SignerCert, signerKey: r.SignerKey}
	var err error
	if x.cipher, x.digest, err = c.Algorithms(r.Caps); err != nil {
		return nil, err
	}
	if x.recipient, err = c.recipient(r.CACerts); err != nil {
		return nil, err
	}
	return x, nil
}

// send signs and sends one pkiMessage of the transaction and checks the reply.
func (x *exchange) send(ctx context.Context, typ scep.MessageType, content []byte) (*scep.PKIMessage, error) {
	msg, nonce, err := x.build(typ, content)
	if err != nil {
		return nil, err
	}
	return x.post(ctx, msg, nonce)
}

// post sends a built pkiMessage and checks that the reply answers it.
func (x *exchange) post(ctx context.Context, msg, nonce []byte) (*scep.PKIMessage, error) {
	body, err := x.c.pkiOperation(ctx, x.r.Caps, msg)
	if err != nil {
		return nil, err
	}
	rep, err := x.c.checkReply(body, x.r.CACerts, x.txID, nonce)
	if err != nil {
		// The server answered: a caller tells this from an answer lost.
		return nil, &ReplyError{err}
	}
	return rep, nil
}

// build encrypts content to the recipient and signs the pkiMessage, with a
// fresh sender nonce, which it returns too.
func (x *exchange) build(typ scep.MessageType, content []byte) (msg, nonce []byte, err error) {
	envelope, err := cms.Encrypt(content, []*x509.Certificate{x.recipient}, cms.EncryptOptions{Cipher: x.cipher, KeyTransport: cms.RSAPKCS1v15})
	if err != nil {
		return nil, nil, fmt.Errorf("encrypting the request: %w", err)
	}
	if nonce, err = scep.NewNonce(); err != nil {
		return nil, nil, err
	}
	msg, err = scep.BuildRequest(scep.Request{
		Type: typ, TransactionID: x.txID, SenderNonce: nonce, Digest: x.digest,
		Envelope: envelope, SigningTime: x.c.now(),
	}, scep.Identity{Cert: x.signerCert, Key: x.signerKey})
	if err != nil {
		return nil, nil, err
	}
	return msg, nonce, nil
}

// open decrypts a SUCCESS CertRep and returns its certificates.
func (x *exchange) open(rep *scep.PKIMessage) ([]*x509.Certificate, error) {
	sd, err := x.openSignedData(rep)
	if err != nil {
		return nil, err
	}
	return sd.Certificates, nil
}

// openSignedData decrypts a SUCCESS CertRep: by key transport to an RSA
// signer, by the challenge password for an EC one.
func (x *exchange) openSignedData(rep *scep.PKIMessage) (*cms.SignedData, error) {
	env, err := cms.ParseEnvelopedData(rep.SignedData.Content)
	if err != nil {
		return nil, fmt.Errorf("CertRep envelope: %w", err)
	}
	if env.Cipher == cms.DESCBC {
		// Some servers (micromdm 2.1.0) answer in single DES whatever we
		// sent. The reply holds only our public certificate and its
		// integrity rests on the signature checked above; the secret (the
		// challenge) travelled in our own envelope. So accept, and say so.
		x.c.warnf("the server answered with single DES, which is insecure (RFC 8894 forbids it); the certificate is public and the reply's signature was verified, so it is accepted")
	}
	var inner []byte
	if dec, ok := x.signerKey.(crypto.Decrypter); ok && isRSA(x.signerCert) {
		inner, err = env.DecryptKeyTransport(x.signerCert, dec)
	} else {
		if x.r.Challenge == "" {
			return nil, errors.New("an EC key receives its certificate in a password-based envelope, and no challenge was given")
		}
		inner, err = env.DecryptPasswordWith([]byte(x.r.Challenge), x.c.PasswordKEKs)
	}
	if err != nil {
		return nil, fmt.Errorf("decrypting the CertRep: %w", err)
	}
	sd, err := cms.ParseSignedData(inner)
	if err != nil {
		return nil, fmt.Errorf("CertRep content: %w", err)
	}
	return sd, nil
}

// CRLRequest asks for the CRL of the CA that issued Cert.
type CRLRequest struct {
	Cert *x509.Certificate
	// SignerCert and SignerKey sign the request and receive the reply
	// (an RSA key: the reply is encrypted to it). Nil: a throwaway
	// self-signed RSA signer, which servers accept for GetCRL.
	SignerCert *x509.Certificate
	SignerKey  crypto.Signer
	CACerts    []*x509.Certificate // from GetCACert (already checked)
	// Fingerprint pins the trust anchor among CACerts as for
	// TrustedCACerts ("": the self-signed ones). An issuer of Cert not
	// among CACerts (the CA before a rollover) is believed only if it
	// chains to that anchor.
	Fingerprint string
	Caps        Caps
}

// GetCRL sends GetCRL (RFC 8894 §3.3.4) and returns the CRL, DER, after
// checking it is signed by the CA that issued Cert (crlIssuer finds it).
func (c *SCEP) GetCRL(ctx context.Context, r CRLRequest) ([]byte, error) {
	if r.Cert == nil {
		return nil, errors.New("GetCRL needs the certificate whose CA's CRL is wanted")
	}
	x, err := c.newExchange(EnrollRequest{CACerts: r.CACerts, Caps: r.Caps, SignerCert: r.SignerCert, SignerKey: r.SignerKey})
	if err != nil {
		return nil, err
	}
	if x.signerCert == nil || !isRSA(x.signerCert) {
		if x.signerKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return nil, err
		}
		if x.signerCert, err = selfSignedSigner(x.signerKey, c.now()); err != nil {
			return nil, err
		}
	}
	txID := make([]byte, 16)
	if _, err := rand.Read(txID); err != nil {
		return nil, err
	}
	x.txID = hex.EncodeToString(txID)
	content, err := scep.MarshalIssuerAndSerial(r.Cert.RawIssuer, r.Cert.SerialNumber)
	if err != nil {
		return nil, err
	}
	rep, err := x.send(ctx, scep.GetCRL, content)
	if err != nil {
		return nil, err
	}
	switch rep.PKIStatus {
	case scep.StatusSuccess:
	case scep.StatusFailure:
		return nil, &FailureError{FailInfo: rep.FailInfo, Text: Printable(rep.FailInfoText)}
	default:
		return nil, fmt.Errorf("GetCRL answered with pkiStatus %q", rep.PKIStatus)
	}
	sd, err := x.openSignedData(rep)
	if err != nil {
		return nil, err
	}
	if len(sd.RawCRLs) == 0 {
		return nil, errors.New("the GetCRL reply holds no CRL")
	}
	der := sd.RawCRLs[0]
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("the GetCRL reply's CRL: %w", err)
	}
	issuer, err := c.crlIssuer(ctx, r, sd.Certificates)
	if err != nil {
		return nil, err
	}
	if err := CheckCRLIssuer(list, issuer); err != nil {
		return nil, err
	}
	return der, nil
}

// Bounds on fetching an issuer certificate from a caIssuers URL: it is one
// certificate (or a few, certs-only) from a server that may be slow or
// hostile.
const (
	caIssuersTimeout  = 10 * time.Second
	maxCAIssuersBytes = 64 << 10
)

// crlIssuer finds the certificate of the CA that issued r.Cert, the only
// one whose CRL answers the GetCRL. It is among r.CACerts while that CA
// issues; after a rollover GetCACert no longer carries it, and it may come
// from the reply's certificates (carried) or from r.Cert's caIssuers URL,
// but then only if it chains, at our clock, to the trust anchor of
// r.CACerts (the pinned CA with r.Fingerprint): else a server could sign
// a CRL with a CA of its own making.
func (c *SCEP) crlIssuer(ctx context.Context, r CRLRequest, carried []*x509.Certificate) (*x509.Certificate, error) {
	for _, ca := range r.CACerts {
		if issued(r.Cert, ca) {
			return ca, nil
		}
	}
	roots, inter, nroots, err := caPools(r.CACerts, r.Fingerprint)
	if err != nil {
		return nil, err
	}
	if nroots == 0 {
		return nil, fmt.Errorf("the issuer of the certificate (%s) is not among the server's CA certificates, and none of them is a root to check another against", r.Cert.Issuer)
	}
	for _, ca := range carried {
		inter.AddCert(ca)
	}
	trusted := func(candidates []*x509.Certificate) (*x509.Certificate, error) {
		var refused error
		for _, ca := range candidates {
			if !issued(r.Cert, ca) {
				continue
			}
			if _, err := ca.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: c.now(),
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				refused = fmt.Errorf("the issuer certificate %s does not chain to the trusted CA: %w", Printable(ca.Subject.String()), err)
				continue
			}
			return ca, nil
		}
		return nil, refused
	}
	ca, refused := trusted(carried)
	if ca != nil {
		return ca, nil
	}
	var problems []string
	if refused != nil {
		problems = append(problems, "from the reply: "+refused.Error())
	}
	for _, u := range r.Cert.IssuingCertificateURL {
		fetched, err := c.fetchCAIssuers(ctx, u)
		if err == nil {
			if ca, err = trusted(fetched); ca != nil {
				return ca, nil
			}
			if err == nil {
				err = errors.New("it holds no certificate that issued the certificate")
			}
		}
		problems = append(problems, fmt.Sprintf("from %s: %v", Printable(u), err))
	}
	msg := fmt.Sprintf("cannot check the CRL: the issuer of the certificate (%s) is not among the server's CA certificates", r.Cert.Issuer)
	if len(problems) == 0 {
		return nil, errors.New(msg + ", nor in the reply, and the certificate names no caIssuers URL")
	}
	return nil, fmt.Errorf("%s (%s)", msg, strings.Join(problems, "; "))
}

// WithIssuer returns caCerts, with the certificates at cert's caIssuers
// URLs added when none of caCerts issued cert. After a CA rollover,
// GetCACert and /cacerts carry the new issuing CA only, while a renewal
// asked again after its answer was lost is answered with the certificate
// the previous CA issued then: without its issuer it could not be checked,
// and the device would ask for it again and again. What is added is
// trusted for nothing by itself: only intermediates are added (never a
// self-signed certificate), and only with a fingerprint, so VerifyIssued
// still requires a chain to the pinned CA. A fetch that fails adds
// nothing; VerifyIssued then says what is missing.
func WithIssuer(ctx context.Context, cert *x509.Certificate, caCerts []*x509.Certificate, fingerprint string) []*x509.Certificate {
	if cert == nil || fingerprint == "" {
		return caCerts
	}
	for _, ca := range caCerts {
		if issued(cert, ca) {
			return caCerts
		}
	}
	out := caCerts
	for _, u := range cert.IssuingCertificateURL {
		fetched, err := (&SCEP{}).fetchCAIssuers(ctx, u)
		if err != nil {
			continue
		}
		for _, c := range fetched {
			if c.IsCA && !bytes.Equal(c.RawIssuer, c.RawSubject) {
				out = append(out[:len(out):len(out)], c)
			}
		}
	}
	return out
}

// issued reports whether ca is a CA certificate whose key signed cert.
func issued(cert, ca *x509.Certificate) bool {
	return ca.IsCA && bytes.Equal(ca.RawSubject, cert.RawIssuer) && cert.CheckSignatureFrom(ca) == nil
}

// IssuerAmong is the first CA certificate among cas whose key signed cert,
// or nil.
func IssuerAmong(cert *x509.Certificate, cas []*x509.Certificate) *x509.Certificate {
	for _, ca := range cas {
		if issued(cert, ca) {
			return ca
		}
	}
	return nil
}

// fetchCAIssuers fetches the certificates at a caIssuers URL (RFC 5280
// §4.2.2.1: a DER certificate or a certs-only CMS), over plain HTTP only,
// as certificates are public and checked by the caller: no LDAP, and no
// TLS whose own chain might need the very CA sought.
func (c *SCEP) fetchCAIssuers(ctx context.Context, rawURL string) ([]*x509.Certificate, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, errors.New("not an http URL")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	// Plain HTTP only: the transport's TLS settings do not matter.
	var transport http.RoundTripper
	if c.HTTP != nil {
		transport = c.HTTP.Transport
	}
	hc := &http.Client{Transport: transport, Timeout: caIssuersTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme != "http" || len(via) >= 3 {
				return errors.New("redirected elsewhere than a plain HTTP URL, or too often")
			}
			return nil
		}}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCAIssuersBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxCAIssuersBytes {
		return nil, fmt.Errorf("larger than %d bytes", maxCAIssuersBytes)
	}
	if cert, err := x509.ParseCertificate(body); err == nil {
		return []*x509.Certificate{cert}, nil
	}
	sd, err := cms.ParseSignedData(body)
	if err != nil {
		return nil, errors.New("neither a DER certificate nor a certs-only CMS")
	}
	return sd.Certificates, nil
}

// selfSignedSigner is a throwaway signer certificate for a request that
// needs no identity.
func selfSignedSigner(key crypto.Signer, now time.Time) (*x509.Certificate, error) {
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "scepter GetCRL"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func isRSA(c *x509.Certificate) bool {
	_, ok := c.PublicKey.(*rsa.PublicKey)
	return ok
}

func (c *SCEP) pkiOperation(ctx context.Context, caps Caps, msg []byte) ([]byte, error) {
	if caps.Has("POSTPKIOperation") || caps.Has("SCEPStandard") {
		u, err := c.operationURL("PKIOperation", "")
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(msg))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-pki-message")
		// A PKCSReq may be sent twice: the server refuses a second copy
		// of its nonce, so it never acts on it twice.
		MarkResendable(req, msg)
		return certRepBody(c.do(req))
	}
	return certRepBody(c.get(ctx, "PKIOperation", base64.StdEncoding.EncodeToString(msg)))
}

// certRepBody is the body of a PKIOperation's 200, refused as no SCEP
// server's answer (notSCEPError, naming its content type and first bytes)
// when it is empty, a web page, or does not start as DER's SEQUENCE does:
// a proxy's or captive portal's page is told as such, not as a malformed
// CMS message.
func certRepBody(resp *http.Response, body []byte, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	if ct := resp.Header.Get("Content-Type"); len(body) == 0 || body[0] != 0x30 || isHTML(ct) {
		return nil, notSCEPError("PKIOperation", ct, body, "a CertRep, a DER PKCS#7 of type application/x-pki-message (RFC 8894 §4.3)")
	}
	return body, nil
}

// checkReply parses a CertRep and checks it answers our message and is
// signed by a certificate the server gave us in GetCACert.
func (c *SCEP) checkReply(body []byte, caCerts []*x509.Certificate, txID string, nonce []byte) (*scep.PKIMessage, error) {
	rep, err := scep.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("CertRep: %w", err)
	}
	var signer *x509.Certificate
	for _, ca := range caCerts {
		if rep.SignerCert != nil && ca.Equal(rep.SignerCert) {
			signer = ca
		}
	}
	if signer == nil {
		// The signer certificate may be omitted; try each CA/RA certificate.
		for _, ca := range caCerts {
			if rep.VerifyWith(ca) == nil {
				signer = ca
				break
			}
		}
		if signer == nil {
			return nil, errors.New("CertRep is not signed by a certificate from GetCACert")
		}
	}
	if err := rep.VerifyWith(signer); err != nil {
		return nil, fmt.Errorf("CertRep signature: %w", err)
	}
	if rep.MessageType != scep.CertRep {
		return nil, fmt.Errorf("reply has messageType %s, want CertRep", rep.MessageType)
	}
	if rep.TransactionID != txID {
		return nil, errors.New("CertRep transactionID does not match the request")
	}
	if !bytes.Equal(rep.RecipientNonce, nonce) {
		return nil, errors.New("CertRep recipientNonce does not match our senderNonce")
	}
	return rep, nil
}

// TransactionID derives the transaction ID from the public key, as RFC 8894
// suggests, so a retry of the same request is recognisable.
func TransactionID(spki []byte) string {
	sum := sha256.Sum256(spki)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// SelfSigned makes the short-lived self-signed certificate that signs a
// first PKCSReq (RFC 8894 §2.3), valid around now.
func SelfSigned(csr *x509.CertificateRequest, key crypto.Signer, now time.Time) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial.Add(serial, big.NewInt(1)),
		RawSubject:   csr.RawSubject,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("self-signed signer certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// scepURLError refuses a SCEP URL net/url cannot read, shown with any
// password masked: net/url's own error quotes the URL whole (r79).
func scepURLError(raw string) error {
	return fmt.Errorf("SCEP URL %q cannot be read as a URL: want http(s)://HOST[:PORT]/PATH, with any user info's special characters percent-escaped", Printable(RedactURL(raw)))
}
