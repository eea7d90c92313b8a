// Package notifytest holds receivers for notification tests: an SMTP
// server (github.com/emersion/go-smtp) and an HTTP webhook receiver, both
// on 127.0.0.1, that keep what they receive. Only tests import it; the
// scepter binary never links go-smtp.
package notifytest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Mail is one message the SMTP sink accepted.
type Mail struct {
	From   string
	To     []string // envelope recipients
	Data   []byte
	Header netmail.Header // Subject decoded
	Body   string         // transfer encoding undone
	// TLS and User say how the session was secured and authenticated.
	TLS  bool
	User string
}

// SMTPOptions configure an SMTP sink.
type SMTPOptions struct {
	// Addr to listen on; "" picks a free port on 127.0.0.1. Given, it
	// lets a test start the server late on an address a client was
	// configured with (a server that was down).
	Addr string
	// TLS, when set, offers STARTTLS with this configuration, or with
	// ImplicitTLS speaks TLS from the first byte (smtps).
	TLS         *tls.Config
	ImplicitTLS bool
	// User and Password, when set, make AUTH PLAIN required.
	User, Password string
	// RefuseRecipients are refused at RCPT TO for good (550 5.1.1), as a
	// mailbox that no longer exists is.
	RefuseRecipients []string
	// DeferRecipients are answered at RCPT TO with a temporary failure
	// (451 4.2.0) the first so many times each is named, and accepted
	// afterwards, as by greylisting or a mailbox briefly over quota.
	DeferRecipients map[string]int
}

// SMTPSink is an SMTP server that keeps the messages it accepts.
type SMTPSink struct {
	Addr string
	opts SMTPOptions
	srv  *smtp.Server

	mu       sync.Mutex
	mails    []Mail
	reject   error
	deferred map[string]int // of DeferRecipients, how often each was answered 451
	authFail int
	closed   bool
}

// StartSMTP starts a sink and stops it when the test ends.
func StartSMTP(t testing.TB, opts SMTPOptions) *SMTPSink {
	t.Helper()
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("SMTP sink: listen %s: %v", addr, err)
	}
	s := &SMTPSink{Addr: ln.Addr().String(), opts: opts}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{sink: s, conn: c}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.MaxMessageBytes = 1 << 20
	// Auth over a plain connection only when there is no TLS to use.
	srv.AllowInsecureAuth = opts.TLS == nil
	if opts.ImplicitTLS {
		ln = tls.NewListener(ln, opts.TLS)
	} else {
		srv.TLSConfig = opts.TLS
	}
	s.srv = srv
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(s.Close)
	return s
}

// Close stops the sink; later connections are refused. It may be called
// more than once.
func (s *SMTPSink) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	_ = s.srv.Close()
}

// Reject makes the sink answer every message with a temporary failure
// (451) until called with false.
func (s *SMTPSink) Reject(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reject = nil
	if on {
		s.reject = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
}

// Mails returns a copy of what the sink accepted so far.
func (s *SMTPSink) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

// AuthFailures counts refused AUTH attempts.
func (s *SMTPSink) AuthFailures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authFail
}

// WaitMails polls (for tests that drive a real process) until the sink
// holds at least n messages or timeout passes, and returns them.
func (s *SMTPSink) WaitMails(n int, timeout time.Duration) []Mail {
	deadline := time.Now().Add(timeout)
	for {
		m := s.Mails()
		if len(m) >= n || time.Now().After(deadline) {
			return m
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type session struct {
	sink *SMTPSink
	conn *smtp.Conn
	user string
	from string
	to   []string
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string {
	if ss.sink.opts.User == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain || ss.sink.opts.User == "" {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != ss.sink.opts.User || password != ss.sink.opts.Password || (identity != "" && identity != username) {
			ss.sink.mu.Lock()
			ss.sink.authFail++
			ss.sink.mu.Unlock()
			return smtp.ErrAuthFailed
		}
		ss.user = username
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.sink.opts.User != "" && ss.user == "" {
		return smtp.ErrAuthRequired
	}
	ss.sink.mu.Lock()
	rej := ss.sink.reject
	ss.sink.mu.Unlock()
	if rej != nil {
		return rej
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	for _, r := range ss.sink.opts.RefuseRecipients {
		if strings.EqualFold(r, to) {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
	}
	for r, times := range ss.sink.opts.DeferRecipients {
		if strings.EqualFold(r, to) {
			ss.sink.mu.Lock()
			if ss.sink.deferred == nil {
				ss.sink.deferred = map[string]int{}
			}
			ss.sink.deferred[r]++
			again := ss.sink.deferred[r] <= times
			ss.sink.mu.Unlock()
			if again {
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "mailbox busy, try again later"}
			}
		}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := Mail{From: ss.from, To: append([]string(nil), ss.to...), Data: b, User: ss.user}
	_, m.TLS = ss.conn.TLSConnectionState()
	if msg, err := netmail.ReadMessage(bytes.NewReader(b)); err == nil {
		m.Header = msg.Header
		var body io.Reader = msg.Body
		if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			body = quotedprintable.NewReader(body)
		}
		text, _ := io.ReadAll(body)
		m.Body = string(text)
		if dec, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject")); err == nil {
			m.Header["Subject"] = []string{dec}
		}
	}
	ss.sink.mu.Lock()
	ss.sink.mails = append(ss.sink.mails, m)
	ss.sink.mu.Unlock()
	return nil
}

func (ss *session) Reset()        { ss.from, ss.to = "", nil }
func (ss *session) Logout() error { return nil }

// WebhookRequest is one POST the webhook receiver got.
type WebhookRequest struct {
	Header http.Header
	Body   []byte
	// JSON is the body decoded; nil when it is not a JSON object.
	JSON map[string]any
	// SignatureOK: the HMAC headers verify with the receiver's secret,
	// computed here independently of scepter's code.
	SignatureOK bool
}

// WebhookSink is an HTTP receiver on 127.0.0.1 that keeps every POST.
type WebhookSink struct {
	URL    string
	secret []byte
	srv    *httptest.Server

	mu     sync.Mutex
	reqs   []WebhookRequest
	status int
}

// StartWebhook starts a receiver that answers 204 (or SetStatus's code)
// and checks signatures with secret.
func StartWebhook(t testing.TB, secret []byte) *WebhookSink {
	t.Helper()
	w := &WebhookSink{secret: secret, status: http.StatusNoContent}
	w.srv = httptest.NewServer(http.HandlerFunc(w.serve))
	w.URL = w.srv.URL + "/notify"
	t.Cleanup(w.srv.Close)
	return w
}

// SetStatus sets the status code later requests get.
func (w *WebhookSink) SetStatus(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.status = code
}

// Requests returns a copy of the requests received so far.
func (w *WebhookSink) Requests() []WebhookRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]WebhookRequest(nil), w.reqs...)
}

// WaitRequests polls until at least n requests arrived or timeout passed.
func (w *WebhookSink) WaitRequests(n int, timeout time.Duration) []WebhookRequest {
	deadline := time.Now().Add(timeout)
	for {
		r := w.Requests()
		if len(r) >= n || time.Now().After(deadline) {
			return r
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (w *WebhookSink) serve(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	req := WebhookRequest{Header: r.Header.Clone(), Body: body}
	var obj map[string]any
	if json.Unmarshal(body, &obj) == nil {
		req.JSON = obj
	}
	req.SignatureOK = VerifySignature(w.secret, r.Header, body) == nil
	w.mu.Lock()
	w.reqs = append(w.reqs, req)
	status := w.status
	w.mu.Unlock()
	if r.Method != http.MethodPost {
		status = http.StatusMethodNotAllowed
	}
	rw.WriteHeader(status)
}

// VerifySignature checks the X-Scepter-Timestamp/X-Scepter-Signature
// headers as docs/webhook.md tells a receiver to.
func VerifySignature(secret []byte, h http.Header, body []byte) error {
	ts := h.Get("X-Scepter-Timestamp")
	sig, ok := strings.CutPrefix(h.Get("X-Scepter-Signature"), "sha256=")
	if ts == "" || !ok {
		return errors.New("signature headers missing")
	}
	mac := hmac.New(sha256.New, secret)
	fmt.Fprintf(mac, "%s.%s", ts, body)
	want := hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return errors.New("signature does not verify")
	}
	return nil
}
