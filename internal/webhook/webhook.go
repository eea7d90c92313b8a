// Package webhook is a challenge provider that asks an external HTTP service
// whether an enrollment may go ahead.
//
// Before issuing, the enrollment service calls Verify, which POSTs the
// request's details as JSON (see docs/webhook.md) to the configured URL and
// allows the enrollment only when the receiver answers HTTP 200 with
// {"allow": true} within the timeout. {"allow": false, "reason": "…"} refuses
// with that reason, which reaches the SCEP client as failInfoText, so it is
// cleaned (printable, at most 200 characters, never the challenge). Anything
// else (another status, a redirect, a body that is not that JSON object or is
// larger than 64 KiB, a timeout, a connection error) is an error: the
// receiver could not answer, and the enrollment is refused.
//
// With a secret the body is signed: X-Scepter-Timestamp carries the Unix
// time in seconds and X-Scepter-Signature "sha256=" and the hex
// HMAC-SHA256(secret, timestamp + "." + body).
//
// The package never logs, and its errors never carry the challenge, the
// request body, the reply body or the URL's query and user information.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/strictjson"
)

const (
	// DefaultTimeout bounds one call when Config.Timeout is zero.
	DefaultTimeout = 5 * time.Second
	// MaxResponseBytes is the largest reply body accepted.
	MaxResponseBytes = 64 << 10
	// MaxReasonRunes is how long a refusal reason may be once cleaned.
	MaxReasonRunes = 200
	// Version is the value of the "version" field of the request body.
	Version = 1

	// HeaderTimestamp and HeaderSignature carry the HMAC signature.
	HeaderTimestamp = "X-Scepter-Timestamp"
	HeaderSignature = "X-Scepter-Signature"

	// DefaultReason is returned when the receiver refuses without a
	// usable reason.
	DefaultReason = "challenge refused by the enrollment webhook"

	userAgent = "scepter-webhook/1"
)

// Config configures a Verifier.
type Config struct {
	// URL receives the POST; http or https only. Prefer https: the body
	// carries the challenge.
	URL string
	// Secret, when set, is the HMAC-SHA256 key the body is signed with.
	Secret []byte
	// Timeout bounds each call, connection included; 0 means DefaultTimeout.
	Timeout time.Duration
	// Client, when set, is used for the calls (for its transport, proxy or
	// TLS settings). It is copied; redirects are never followed whatever
	// its CheckRedirect says.
	Client *http.Client
}

// Verifier implements enroll.ChallengeVerifier by calling a webhook.
type Verifier struct {
	url     string // as configured, for the request
	display string // scheme://host/path, for errors
	secret  []byte
	timeout time.Duration
	client  *http.Client
	now     func() time.Time
}

var _ enroll.ChallengeVerifier = (*Verifier)(nil)

// New checks cfg and returns a Verifier.
func New(cfg Config) (*Verifier, error) {
	if cfg.URL == "" {
		return nil, errors.New("webhook: URL is required")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, errors.New("webhook: URL does not parse")
	}
	switch u.Scheme {
	case "http", "https":
	default:
		return nil, fmt.Errorf("webhook: URL scheme must be http or https, not %q", u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, errors.New("webhook: URL has no host")
	}
	if u.Fragment != "" {
		return nil, errors.New("webhook: URL must not have a fragment")
	}
	if cfg.Timeout < 0 {
		return nil, errors.New("webhook: timeout must not be negative")
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	var client http.Client
	if cfg.Client != nil {
		client = *cfg.Client
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if client.Timeout == 0 || client.Timeout > timeout {
		client.Timeout = timeout
	}
	display := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	return &Verifier{
		url:     cfg.URL,
		display: display,
		secret:  bytes.Clone(cfg.Secret),
		timeout: timeout,
		client:  &client,
		now:     time.Now,
	}, nil
}

// requestBody is the JSON sent to the webhook; docs/webhook.md documents it.
type requestBody struct {
	Version       int      `json:"version"`
	Challenge     string   `json:"challenge"`
	Subject       string   `json:"subject"`
	SANs          []string `json:"sans"`
	TransactionID string   `json:"transaction_id"`
	Profile       string   `json:"profile"`
	Protocol      string   `json:"protocol"`
	ClientAddr    string   `json:"client_addr"`
	KeyType       string   `json:"key_type"`
	CSR           string   `json:"csr"`
	Time          string   `json:"time"`
}

// responseBody is what the webhook answers.
type responseBody struct {
	Allow *bool `json:"allow"`
	// Reason is read only when it is a string: like any other field, one
	// of another type does not make the answer unreadable.
	Reason json.RawMessage `json:"reason"`
}

// Verify asks the webhook about one enrollment. It returns allow=true only on
// an explicit allow, allow=false with a client-safe reason on an explicit
// refusal, and an error when the webhook gave no usable answer.
func (v *Verifier) Verify(ctx context.Context, c enroll.ChallengeCheck) (bool, string, error) {
	now := v.now()
	sans := c.SANs
	if sans == nil {
		sans = []string{}
	}
	body, err := json.Marshal(requestBody{
		Version:       Version,
		Challenge:     c.Challenge,
		Subject:       c.Subject,
		SANs:          sans,
		TransactionID: c.TransactionID,
		Profile:       c.Profile,
		Protocol:      c.Protocol,
		ClientAddr:    c.RemoteAddr,
		KeyType:       c.KeyType,
		CSR:           base64.StdEncoding.EncodeToString(c.CSR),
		Time:          now.UTC().Format(time.RFC3339),
	})
	if err != nil {
		return false, "", fmt.Errorf("webhook: encode request: %w", err)
	}

	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.url, bytes.NewReader(body))
	if err != nil {
		return false, "", fmt.Errorf("webhook %s: build request: %w", v.display, unwrapURLError(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if len(v.secret) > 0 {
		ts := strconv.FormatInt(now.Unix(), 10)
		req.Header.Set(HeaderTimestamp, ts)
		req.Header.Set(HeaderSignature, "sha256="+Sign(v.secret, ts, body))
	}

	resp, err := v.client.Do(req)
	if err != nil {
		return false, "", v.transportError(ctx, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return false, "", v.transportError(ctx, err)
	}
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			return false, "", fmt.Errorf("webhook %s: answered with redirect %d, which is not followed", v.display, resp.StatusCode)
		}
		return false, "", fmt.Errorf("webhook %s: answered HTTP %d, want 200", v.display, resp.StatusCode)
	}
	if len(raw) > MaxResponseBytes {
		return false, "", fmt.Errorf("webhook %s: reply larger than %d bytes", v.display, MaxResponseBytes)
	}
	// A reason holding a lone surrogate escape would be read as U+FFFD
	// without a word, and shown to the device and in the trail as a text
	// the receiver never sent.
	if err := strictjson.CheckText(raw); err != nil {
		return false, "", fmt.Errorf("webhook %s: reply cannot be read as sent: %w", v.display, err)
	}
	var out responseBody
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&out); err != nil {
		return false, "", fmt.Errorf("webhook %s: reply is not the expected JSON object", v.display)
	}
	if _, err := dec.Token(); err != io.EOF {
		return false, "", fmt.Errorf("webhook %s: reply has data after the JSON object", v.display)
	}
	// Exactly "allow", once: {"allow":false,"ALLOW":true} or a second
	// "allow" would otherwise decode as whichever came last, in any case.
	if err := strictjson.CheckKeys(raw, &out); err != nil {
		return false, "", fmt.Errorf("webhook %s: reply is ambiguous: %w", v.display, err)
	}
	if out.Allow == nil {
		return false, "", fmt.Errorf("webhook %s: reply has no boolean \"allow\"", v.display)
	}
	if *out.Allow {
		return true, "", nil
	}
	var reason string
	_ = json.Unmarshal(out.Reason, &reason) // not a string: no reason
	return false, CleanReason(reason, c.Challenge), nil
}

// transportError describes a failed call without the URL's query or
// credentials (which *url.Error would print).
func (v *Verifier) transportError(ctx context.Context, err error) error {
	inner := unwrapURLError(err)
	var ne net.Error
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || (errors.As(inner, &ne) && ne.Timeout()) {
		return fmt.Errorf("webhook %s: no answer within %s: %w", v.display, v.timeout, context.DeadlineExceeded)
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("webhook %s: %w", v.display, context.Canceled)
	}
	return fmt.Errorf("webhook %s: %w", v.display, inner)
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

// Sign returns the hex HMAC-SHA256 of timestamp + "." + body under secret:
// the value of X-Scepter-Signature after "sha256=". Receivers written in Go
// can use it to check a request.
func Sign(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// CleanReason makes a receiver's refusal reason safe to send to the client:
// characters that are not printable become spaces, runs of spaces shrink to
// one, the challenge is blanked out (in any letter case), and the result is
// cut to MaxReasonRunes characters. An empty result becomes DefaultReason.
func CleanReason(reason, challenge string) string {
	s := strings.TrimSpace(cleanPrintable(reason))
	// Blank the challenge before cutting, so a cut cannot leave a prefix
	// of it behind; it is looked for after the same cleaning.
	if ch := strings.TrimSpace(cleanPrintable(challenge)); ch != "" {
		s = redactFold(s, ch, "[redacted]")
	}
	if utf8.RuneCountInString(s) > MaxReasonRunes {
		s = strings.TrimSpace(string([]rune(s)[:MaxReasonRunes]))
	}
	if s == "" {
		return DefaultReason
	}
	return s
}

// cleanPrintable maps invalid UTF-8 and every character that is not
// printable, or is a space of any kind, to one space per run.
func cleanPrintable(s string) string {
	var b strings.Builder
	space := false
	for _, r := range strings.ToValidUTF8(s, " ") {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			if !space {
				b.WriteByte(' ')
				space = true
			}
			continue
		}
		b.WriteRune(r)
		space = false
	}
	return b.String()
}

// redactFold replaces every occurrence of needle in s, ignoring letter case.
func redactFold(s, needle, with string) string {
	rs, rn := []rune(s), []rune(needle)
	var b strings.Builder
	for i := 0; i < len(rs); {
		if i+len(rn) <= len(rs) && equalFold(rs[i:i+len(rn)], rn) {
			b.WriteString(with)
			i += len(rn)
			continue
		}
		b.WriteRune(rs[i])
		i++
	}
	return b.String()
}

func equalFold(a, b []rune) bool {
	for i := range a {
		if unicode.ToLower(a[i]) != unicode.ToLower(b[i]) {
			return false
		}
	}
	return true
}
