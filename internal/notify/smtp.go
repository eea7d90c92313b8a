package notify

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	netmail "net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"github.com/scepter/scepter/internal/pki"
)

// SMTPConfig configures the mail channel.
type SMTPConfig struct {
	// URL is smtp://[USER@]HOST[:PORT] (port 25 by default; STARTTLS
	// whenever the server offers it) or smtps://[USER@]HOST[:PORT] (TLS
	// from the first byte, port 465 by default). A password in the URL is
	// refused: it belongs in Password.
	URL string
	// Password authenticates USER (SMTP AUTH, the strongest mechanism the
	// server offers; PLAIN and LOGIN only over TLS).
	Password string
	// From is the sender address.
	From string
	// RequireTLS refuses to send over smtp:// unless STARTTLS succeeds.
	RequireTLS bool
	// TLSConfig, when set, is used for TLS (its ServerName defaults to
	// the URL's host); nil verifies the server against the system roots.
	TLSConfig *tls.Config
	// Timeout bounds connecting and each command (default 30 s) but the
	// end of the message.
	Timeout time.Duration
	// DataTimeout bounds the wait for the answer to the end of the
	// message (DefaultDataTimeout).
	DataTimeout time.Duration
}

// DefaultDataTimeout is how long the mail server may take to answer the
// end of a message: RFC 5321 §4.5.3.2.6 gives it 10 minutes, since
// servers scan the message (antivirus, DLP) before they answer. A client
// that gives up sooner sends a message the server took again.
const DefaultDataTimeout = 10 * time.Minute

// ErrOutcomeUnknown is in a send's error when the whole message went to
// the mail server and no answer came back: it may have taken the message.
var ErrOutcomeUnknown = errors.New("outcome unknown: the mail server did not answer the end of the message, and may have taken it")

// SMTP is the mail channel: one message per notification to the
// profile's notify_to and, with notify_owner, the certificate's email SANs.
type SMTP struct {
	host        string
	port        int
	implicitTLS bool
	requireTLS  bool
	user, pass  string
	from        string
	fromDomain  string
	tlsConfig   *tls.Config
	timeout     time.Duration
	dataTimeout time.Duration
}

var _ Channel = (*SMTP)(nil)

// ErrSenderAddress is in NewSMTP's error when SMTPConfig.From is not a
// mail address, so that the caller can name the setting that holds the
// sender rather than the mail server's.
var ErrSenderAddress = errors.New("want an address like scepter@example.com")

// NewSMTP checks cfg and returns the channel. Its errors never carry the
// password.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, errors.New("SMTP URL does not parse; want smtp://[user@]host[:port] or smtps://…")
	}
	m := &SMTP{requireTLS: cfg.RequireTLS, pass: cfg.Password, timeout: cfg.Timeout, dataTimeout: cfg.DataTimeout}
	switch strings.ToLower(u.Scheme) {
	case "smtp":
		m.port = 25
	case "smtps":
		m.port, m.implicitTLS = 465, true
	default:
		return nil, fmt.Errorf("SMTP URL scheme %q: want smtp or smtps", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, errors.New("SMTP URL has no host")
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, errors.New("SMTP URL must be smtp://[user@]host[:port] only, without a path or query")
	}
	if u.User != nil {
		if _, set := u.User.Password(); set {
			return nil, errors.New("SMTP URL must not hold a password: use --smtp-password-file or SCEPTER_SMTP_PASSWORD")
		}
		m.user = u.User.Username()
	}
	if m.user == "" && m.pass != "" {
		return nil, errors.New("an SMTP password is set but the URL names no user (smtp://USER@host)")
	}
	if m.user != "" && m.pass == "" {
		// Authenticating with an empty password only fails later, at
		// every send, with an error that hides why.
		return nil, fmt.Errorf("SMTP URL names user %q but no password is set: give it in a file with --smtp-password-file or in SCEPTER_SMTP_PASSWORD "+
			"(a URL without a user sends without authentication)", m.user)
	}
	m.host = u.Hostname()
	if p := u.Port(); p != "" {
		if m.port, err = strconv.Atoi(p); err != nil || m.port < 1 || m.port > 65535 {
			return nil, fmt.Errorf("SMTP URL port %q is not a port", p)
		}
	}
	if m.implicitTLS && m.requireTLS {
		m.requireTLS = false // TLS from the start anyway
	}
	addr, err := netmail.ParseAddress(cfg.From)
	if err != nil || cfg.From == "" || strings.ContainsAny(cfg.From, "\r\n") {
		return nil, fmt.Errorf("sender address %q: %w", cfg.From, ErrSenderAddress)
	}
	m.from = cfg.From
	if _, dom, ok := strings.Cut(addr.Address, "@"); ok && dom != "" {
		m.fromDomain = dom
	} else {
		m.fromDomain = "scepter.invalid"
	}
	if m.timeout <= 0 {
		m.timeout = DefaultSendTimeout
	}
	if m.dataTimeout <= 0 {
		m.dataTimeout = DefaultDataTimeout
	}
	if cfg.TLSConfig != nil {
		m.tlsConfig = cfg.TLSConfig.Clone()
	} else {
		m.tlsConfig = &tls.Config{}
	}
	if m.tlsConfig.ServerName == "" {
		m.tlsConfig.ServerName = m.host
	}
	if m.tlsConfig.MinVersion == 0 {
		m.tlsConfig.MinVersion = tls.VersionTLS12
	}
	return m, nil
}

// Name implements Channel.
func (m *SMTP) Name() string { return ChannelSMTP }

// Host is the server's host name or address.
func (m *SMTP) Host() string { return m.host }

// dialHost is the host as the mail library needs it: it joins host and
// port with a colon, so an IPv6 address goes in brackets.
func (m *SMTP) dialHost() string {
	if strings.Contains(m.host, ":") {
		return "[" + m.host + "]"
	}
	return m.host
}

// SendBound is the longest one message may take: the library gives
// dialling, the greeting, the commands up to the session's start (EHLO,
// STARTTLS, AUTH) and those of the message up to its end a timeout each,
// the answer to the end of the message its own, and QUIT a second. The
// scheduler leases a notification for longer than this, so no other node
// sends it while this one still waits for the answer.
func (m *SMTP) SendBound() time.Duration { return 4*m.timeout + m.dataTimeout + quitTimeout }

// Display is the server as logs and errors show it: no user, no password.
func (m *SMTP) Display() string {
	scheme := "smtp"
	if m.implicitTLS {
		scheme = "smtps"
	}
	return scheme + "://" + net.JoinHostPort(m.host, strconv.Itoa(m.port))
}

// MayBeClear reports whether mail may cross the network unencrypted:
// smtp:// without RequireTLS sends in clear to a server that does not
// offer STARTTLS (or whose offer someone on the path removed).
func (m *SMTP) MayBeClear() bool { return !m.implicitTLS && !m.requireTLS }

// Recipients returns whom a notification about c under p goes to:
// p.NotifyTo, and with p.NotifyOwner the certificate's email SANs, each
// once.
func (m *SMTP) Recipients(c *pki.Certificate, p *pki.Profile) []string {
	var out []string
	seen := map[string]bool{}
	add := func(a string) {
		if key := addressKey(a); a != "" && !seen[key] {
			seen[key] = true
			out = append(out, a)
		}
	}
	for _, a := range p.NotifyTo {
		add(a)
	}
	if p.NotifyOwner {
		for _, san := range c.SANs {
			if a, ok := strings.CutPrefix(san, "email:"); ok {
				// The address alone: a display name in a SAN is the
				// device's text, not the owner's name.
				if parsed, err := netmail.ParseAddress(a); err == nil && !strings.ContainsAny(a, "\r\n") {
					add(parsed.Address)
				}
			}
		}
	}
	return out
}

// addressKey is what two spellings of one recipient have in common: the
// address, without a display name, in lower case.
func addressKey(a string) string {
	if parsed, err := netmail.ParseAddress(a); err == nil {
		return strings.ToLower(parsed.Address)
	}
	return strings.ToLower(a)
}

// Wants implements Channel: there is someone to write to.
func (m *SMTP) Wants(c *pki.Certificate, p *pki.Profile) bool { return len(m.Recipients(c, p)) > 0 }

// RecipientsError is Send's answer when not every recipient it wrote to
// has the notification: who took it (Accepted), who refused it for good
// (Refused: a 5xx answer to RCPT TO, such as an owner's mailbox that is
// gone), and why the others do not have it yet (Err; nil when there are
// none: the rest refused). The scheduler records who is settled, so that
// a retry goes to the others only and nobody gets a second copy.
type RecipientsError struct {
	Accepted []string
	Refused  []string
	Err      error
}

func (e *RecipientsError) Error() string {
	var parts []string
	if len(e.Accepted) > 0 {
		parts = append(parts, "delivered to "+strings.Join(e.Accepted, ", "))
	}
	if len(e.Refused) > 0 {
		parts = append(parts, "refused for good by "+strings.Join(e.Refused, ", "))
	}
	if e.Err != nil {
		parts = append(parts, "not delivered to the others: "+e.Err.Error())
	}
	return strings.Join(parts, "; ")
}

func (e *RecipientsError) Unwrap() error { return e.Err }

// Send implements Channel: one message to the recipients not in n.Settled.
// When the mail server refuses or puts off one of them at RCPT TO (it
// then sends the message to nobody), each is written to on their own, so
// one dead or busy mailbox does not hold back the others; the answer is
// then a *RecipientsError saying who has it, who refused it for good and
// why the rest do not have it yet.
func (m *SMTP) Send(ctx context.Context, n Message) error {
	all := m.Recipients(&n.Certificate, &n.Profile)
	if len(all) == 0 {
		return errors.New("no recipients")
	}
	settled := map[string]bool{}
	for _, r := range n.Settled {
		settled[addressKey(r)] = true
	}
	var rcpts []string
	for _, r := range all {
		if !settled[addressKey(r)] {
			rcpts = append(rcpts, r)
		}
	}
	if len(rcpts) == 0 {
		return nil // every recipient settled in earlier attempts
	}
	err := m.sendTo(ctx, n, rcpts)
	if !recipientFailed(err) {
		return err // sent to all of them, or to none for a reason of the server's
	}
	var out RecipientsError
	one := func(r string, err error) (next bool) {
		switch {
		case err == nil:
			out.Accepted = append(out.Accepted, r)
		case recipientRefused(err):
			out.Refused = append(out.Refused, r)
		case recipientFailed(err):
			if out.Err == nil {
				out.Err = err
			}
		default:
			// The server or the connection, not this recipient: the
			// rest wait for the retry with it.
			out.Err = err
			return false
		}
		return true
	}
	if len(rcpts) == 1 {
		one(rcpts[0], err)
	} else {
		for _, r := range rcpts {
			if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < m.timeout+m.dataTimeout {
				// Its answer could come after ctx ends, with the outcome
				// unknown: the rest wait for the next attempt.
				if out.Err == nil {
					out.Err = errors.New("not tried in this attempt: too little time left to wait for the mail server's answer")
				}
				break
			}
			if !one(r, m.sendTo(ctx, n, []string{r})) {
				break
			}
		}
	}
	if len(out.Accepted) == len(rcpts) {
		return nil // put off for a moment only (greylisting)
	}
	return &out
}

// recipientFailed reports whether err is the mail server answering RCPT
// TO with an error, temporary (4xx) or for good (5xx); it then sent the
// message to nobody.
func recipientFailed(err error) bool {
	var se *mail.SendError
	return errors.As(err, &se) && se.Reason == mail.ErrSMTPRcptTo
}

// recipientRefused reports whether err is the mail server refusing a
// recipient for good (a 5xx answer to RCPT TO).
func recipientRefused(err error) bool {
	var se *mail.SendError
	return recipientFailed(err) && errors.As(err, &se) && !se.IsTemp()
}

// sendTo sends notification n to rcpts, in one message.
func (m *SMTP) sendTo(ctx context.Context, n Message, rcpts []string) error {
	msg := mail.NewMsg()
	if err := m.headers(msg, rcpts, n.Time); err != nil {
		return err
	}
	msg.Subject(literalHeader(mailSubject(n)))
	sum := sha256.Sum256([]byte(n.ID))
	// The same notification sent twice (the crash window) has the same
	// Message-ID, which mail systems use to drop the copy.
	msg.SetMessageIDWithValue("expiry-" + hex.EncodeToString(sum[:16]) + "@" + m.fromDomain)
	msg.SetGenHeader(mail.Header("X-Scepter-Notification"), n.ID)
	return m.send(ctx, msg, mailBody(n))
}

// CheckRecipient reports whether to is an address SendTest can write to,
// so that a caller can check it with its other settings before anything
// is sent.
func CheckRecipient(to string) error {
	if _, err := netmail.ParseAddress(to); err != nil || strings.ContainsAny(to, "\r\n") {
		return fmt.Errorf("recipient %q is not a mail address", to)
	}
	return nil
}

// SendTest sends a test message to one address, for `scepter notify test`.
func (m *SMTP) SendTest(ctx context.Context, to string, now time.Time) error {
	if err := CheckRecipient(to); err != nil {
		return err
	}
	msg := mail.NewMsg()
	if err := m.headers(msg, []string{to}, now); err != nil {
		return err
	}
	msg.Subject("[scepter] Test message")
	msg.SetMessageID()
	return m.send(ctx, msg, "This is a test message from `scepter notify test`, sent through "+m.Display()+
		" at "+now.UTC().Format(time.RFC3339)+".\nExpiry notifications will reach their recipients the same way.\n")
}

func (m *SMTP) headers(msg *mail.Msg, rcpts []string, now time.Time) error {
	if err := msg.From(m.from); err != nil {
		return fmt.Errorf("sender %q: %w", m.from, err)
	}
	// An address holding "=?" would be shown decoded in the To header
	// (readers decode encoded-words even in addresses, where RFC 2047
	// forbids them), and an address cannot be encoded: such a recipient
	// gets the message as a blind copy, named in the envelope only.
	var to, bcc []string
	for _, r := range rcpts {
		if strings.Contains(r, "=?") {
			bcc = append(bcc, r)
		} else {
			to = append(to, r)
		}
	}
	if len(to) > 0 {
		if err := msg.To(to...); err != nil {
			return fmt.Errorf("recipients: %w", err)
		}
	}
	if len(bcc) > 0 {
		if err := msg.Bcc(bcc...); err != nil {
			return fmt.Errorf("recipients: %w", err)
		}
	}
	msg.SetDateWithValue(now)
	msg.SetUserAgent("scepter")
	// RFC 3834: no vacation replies to a machine.
	msg.SetGenHeader(mail.Header("Auto-Submitted"), "auto-generated")
	return nil
}

// send dials, authenticates when a user is set, sends msg with the
// plain-text body and hangs up. A new connection per message:
// notifications are few, and a connection kept open would have to be
// watched.
func (m *SMTP) send(ctx context.Context, msg *mail.Msg, body string) error {
	// The library heeds ctx while it dials only, and then gives each
	// step its own timeout: a server that answers slowly (a tarpit)
	// could hold a send several times longer than ctx allows, beyond the
	// scheduler's lease. The connection is closed when ctx ends instead.
	// Every connection is closed when the send returns too: one whose
	// QUIT went unanswered is left open by the library.
	var unwatch []func() bool
	var conns []net.Conn
	defer func() {
		for _, stop := range unwatch {
			stop()
		}
		for _, conn := range conns {
			_ = conn.Close()
		}
	}()
	dial := func(dctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		conns = append(conns, conn)
		unwatch = append(unwatch, context.AfterFunc(ctx, func() { _ = conn.Close() }))
		if !m.implicitTLS {
			return conn, nil
		}
		tc := tls.Client(conn, m.tlsConfig)
		if err := tc.HandshakeContext(dctx); err != nil {
			_ = conn.Close()
			return nil, err
		}
		return tc, nil
	}
	// No RSET after the message: QUIT follows at once, and a server
	// that hangs on RSET would hold a delivered message as QUIT would.
	opts := []mail.Option{mail.WithPort(m.port), mail.WithTimeout(m.timeout), mail.WithTLSConfig(m.tlsConfig),
		mail.WithDialContextFunc(dial), mail.WithoutRset()}
	switch {
	case m.implicitTLS:
		// TLS from the first byte, made by dial: the library, which does
		// not know, finds it on the connection and treats it as TLS.
		opts = append(opts, mail.WithTLSPolicy(mail.TLSOpportunistic))
	case m.requireTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSOpportunistic))
	}
	if m.user != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover), mail.WithUsername(m.user), mail.WithPassword(m.pass))
	}
	client, err := mail.NewClient(m.dialHost(), opts...)
	if err != nil {
		return fmt.Errorf("SMTP %s: %w", m.Display(), err)
	}
	if err := m.dialAndSend(ctx, client, msg, body); err != nil {
		if errors.Is(err, mail.ErrNoSupportedAuthDiscovered) {
			// The library says "dial failed" and no more, though the
			// usual cause is a server that offers only PLAIN or LOGIN on
			// a connection without TLS, where they are not sent.
			return fmt.Errorf("SMTP %s: authentication as %q not possible: the server offers no mechanism used on this connection "+
				"(PLAIN and LOGIN only over TLS: smtps://, or STARTTLS, which the server must offer; SCRAM-SHA-256, SCRAM-SHA-1, NTLM, CRAM-MD5 without)",
				m.Display(), m.user)
		}
		if noAuthOffered(err) {
			// The library says "dial failed: server does not support
			// SMTP AUTH", as if the connection had failed.
			return &sendError{display: m.Display(), err: err, text: fmt.Sprintf("authentication as %q not possible: the server offers no SMTP AUTH "+
				"on this connection (many offer it only after STARTTLS or on smtps://); remove the user from the URL if this server takes mail without it", m.user)}
		}
		if refused, ok := authRefused(err); ok {
			return &sendError{display: m.Display(), err: err, text: fmt.Sprintf("the server refused authentication as %q (wrong user or password?): %s",
				m.user, m.scrub(refused))}
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			// The connection was closed under the library: say why.
			return &sendError{display: m.Display(), text: "not finished in time (" + ctxErr.Error() + "): " + m.scrub(err.Error()), err: err}
		}
		return &sendError{display: m.Display(), text: m.scrub(err.Error()), err: err}
	}
	return nil
}

// quitTimeout bounds the wait for the answer to QUIT: the outcome of the
// message is known by then.
const quitTimeout = time.Second

// dialAndSend is the library's DialAndSendWithContext, but for QUIT: once
// the server has taken the message (250 to the end of DATA) the send is
// done, whatever happens to QUIT. A server that hangs on it would
// otherwise hold the notification, leased, for the whole timeout, and a
// node that died meanwhile leave it to another to send again.
//
// The answer to the end of the message is waited for dataTimeout: the
// library sets one deadline for the whole message, before MAIL FROM, and
// offers no hook at its end but the body writer, which it calls last,
// before the body's few kilobytes and the final dot go out.
func (m *SMTP) dialAndSend(ctx context.Context, client *mail.Client, msg *mail.Msg, body string) error {
	sc, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return fmt.Errorf("dial failed: %w", err)
	}
	handedOver := false
	msg.SetBodyWriter(mail.TypeTextPlain, func(w io.Writer) (int64, error) {
		n, err := io.WriteString(w, body)
		if err == nil {
			if err = sc.UpdateDeadline(m.dataTimeout); err == nil {
				handedOver = true
			}
		}
		return int64(n), err
	})
	if err := client.SendWithSMTPClient(sc, msg); err != nil && !msg.IsDelivered() {
		err = fmt.Errorf("send failed: %w", err)
		if handedOver && noAnswerToEnd(err) {
			err = fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
		}
		if qerr := quit(client, sc); qerr != nil {
			err = errors.Join(err, fmt.Errorf("failed to close connection: %w", qerr))
		}
		return err
	}
	_ = quit(client, sc)
	return nil
}

// noAnswerToEnd reports whether err is the end of a message going without
// an answer from the mail server (a timeout, a connection closed), as
// opposed to one refusing it with a reply code.
func noAnswerToEnd(err error) bool {
	var se *mail.SendError
	return errors.As(err, &se) && se.Reason == mail.ErrSMTPDataClose && se.ErrorCode() == 0
}

// quit says QUIT and waits quitTimeout at most for the answer.
func quit(client *mail.Client, sc *smtp.Client) error {
	if sc.HasConnection() {
		if err := sc.UpdateDeadline(quitTimeout); err != nil {
			return err
		}
	}
	return client.CloseWithSMTPClient(sc)
}

// sendError is a failed send: its text names the server and never the
// password; Unwrap keeps the library's error for recipientRefused.
type sendError struct {
	display, text string
	err           error
}

func (e *sendError) Error() string { return "SMTP " + e.display + ": " + e.text }
func (e *sendError) Unwrap() error { return e.err }

// scrub keeps the password out of an error, should a server or the
// library ever echo it.
func (m *SMTP) scrub(s string) string {
	if m.pass != "" {
		s = strings.ReplaceAll(s, m.pass, "[password]")
	}
	return s
}

// noAuthOffered reports whether err is the mail library finding no AUTH
// extension in the server's EHLO answer. It is a plain error, known by
// its text only.
func noAuthOffered(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if e.Error() == "server does not support SMTP AUTH" {
			return true
		}
	}
	return false
}

// authRefused reports whether err is the server refusing the credentials
// (the library's "SMTP AUTH failed: ..."), and returns the server's answer.
func authRefused(err error) (string, bool) {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if answer, ok := strings.CutPrefix(e.Error(), "SMTP AUTH failed: "); ok {
			return answer, true
		}
	}
	return "", false
}
