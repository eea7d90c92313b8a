package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/webhook"
)

// WebhookVersion is the "version" field of the webhook body.
const WebhookVersion = 1

// WebhookEventExpiring is the "type" of an expiry notification.
const WebhookEventExpiring = "certificate.expiring"

// WebhookEventTest is the "type" of the request `scepter notify test`
// sends, which names no certificate.
const WebhookEventTest = "test"

// WebhookConfig configures the webhook channel.
type WebhookConfig struct {
	// URL receives the POST; http or https.
	URL string
	// Secret, when set, signs the body exactly like the challenge
	// webhook: X-Scepter-Timestamp and X-Scepter-Signature "sha256=" +
	// hex HMAC-SHA256(secret, timestamp + "." + body).
	Secret []byte
	// Timeout bounds one call (default 10 s).
	Timeout time.Duration
	// Client, when set, is used for its transport; redirects are never
	// followed.
	Client *http.Client
}

// Webhook is the webhook channel: one POST per notification, delivered
// when the receiver answers 2xx.
type Webhook struct {
	url     string
	display string
	secret  []byte
	client  *http.Client
}

var _ Channel = (*Webhook)(nil)

// NewWebhook checks cfg and returns the channel.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, errors.New("notification webhook URL does not parse")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("notification webhook URL scheme must be http or https, not %q", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, errors.New("notification webhook URL has no host")
	}
	if u.Fragment != "" {
		return nil, errors.New("notification webhook URL must not have a fragment")
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	var client http.Client
	if cfg.Client != nil {
		client = *cfg.Client
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if client.Timeout == 0 || client.Timeout > timeout {
		client.Timeout = timeout
	}
	return &Webhook{
		url:     cfg.URL,
		display: displayURL(u),
		secret:  bytes.Clone(cfg.Secret),
		client:  &client,
	}, nil
}

// Name implements Channel.
func (w *Webhook) Name() string { return ChannelWebhook }

// Wants implements Channel: the receiver hears about every certificate.
func (w *Webhook) Wants(*pki.Certificate, *pki.Profile) bool { return true }

// Display is the URL as logs, errors, the store and the audit trail show
// it: scheme, host and port, the path and query elided.
func (w *Webhook) Display() string { return w.display }

// displayURL keeps a webhook URL's secret out of what is shown: Slack,
// Teams and Discord put it in the path, others in the query or the user
// information. "https://hooks.example.test/…" says there was more.
func displayURL(u *url.URL) string {
	s := (&url.URL{Scheme: u.Scheme, Host: u.Host}).String()
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery {
		return s + "/…"
	}
	return s
}

// WebhookBody is the JSON a notification webhook receives
// (docs/notifications.md).
type WebhookBody struct {
	Version          int      `json:"version"`
	Type             string   `json:"type"`
	ID               string   `json:"id"`
	Serial           string   `json:"serial"`
	IssuerID         string   `json:"issuer_id"`
	Subject          string   `json:"subject"`
	SANs             []string `json:"sans"`
	Profile          string   `json:"profile"`
	NotAfter         string   `json:"not_after"`
	Threshold        string   `json:"threshold"`
	ThresholdSeconds int64    `json:"threshold_seconds"`
	Time             string   `json:"time"`
}

// Send implements Channel.
func (w *Webhook) Send(ctx context.Context, m Message) error {
	c := &m.Certificate
	sans := c.SANs
	if sans == nil {
		sans = []string{}
	}
	body, err := json.Marshal(WebhookBody{
		Version:          WebhookVersion,
		Type:             WebhookEventExpiring,
		ID:               m.ID,
		Serial:           c.SerialHex,
		IssuerID:         c.IssuerID,
		Subject:          c.Subject,
		SANs:             sans,
		Profile:          c.Profile,
		NotAfter:         c.NotAfter.UTC().Format(time.RFC3339),
		Threshold:        FormatThreshold(m.Threshold),
		ThresholdSeconds: int64(m.Threshold / time.Second),
		Time:             m.Time.UTC().Format(time.RFC3339),
	})
	if err != nil {
		return fmt.Errorf("notification webhook: encode: %w", err)
	}
	_, err = w.post(ctx, body, m.Time)
	return err
}

// WebhookTestBody is the JSON of the request `scepter notify test` sends
// (docs/notifications.md): the version, type "test", an id of its own and
// the time, and none of a notification's certificate fields.
type WebhookTestBody struct {
	Version int    `json:"version"`
	Type    string `json:"type"`
	ID      string `json:"id"`
	Time    string `json:"time"`
}

// SendTest posts one test request, type "test", signed as a notification
// is, for `scepter notify test`; it returns the receiver's 2xx status.
// Its id, "test:" and the time in nanoseconds, is never a notification's,
// so a receiver that drops duplicates by id drops no real one for it.
func (w *Webhook) SendTest(ctx context.Context, now time.Time) (status int, err error) {
	body, err := json.Marshal(WebhookTestBody{Version: WebhookVersion, Type: WebhookEventTest,
		ID: "test:" + strconv.FormatInt(now.UnixNano(), 10), Time: now.UTC().Format(time.RFC3339)})
	if err != nil {
		return 0, fmt.Errorf("notification webhook: encode: %w", err)
	}
	return w.post(ctx, body, now)
}

// Signed: the requests carry an HMAC signature (a secret was given).
func (w *Webhook) Signed() bool { return len(w.secret) > 0 }

// post sends body, signed at now when a secret is set, and returns the
// receiver's status when it is 2xx.
func (w *Webhook) post(ctx context.Context, body []byte, now time.Time) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("notification webhook %s: build request: %w", w.display, unwrapURLError(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "scepter-notify/1")
	if len(w.secret) > 0 {
		ts := strconv.FormatInt(now.Unix(), 10)
		req.Header.Set(webhook.HeaderTimestamp, ts)
		req.Header.Set(webhook.HeaderSignature, "sha256="+webhook.Sign(w.secret, ts, body))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("notification webhook %s: %w", w.display, unwrapURLError(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return 0, fmt.Errorf("notification webhook %s: HTTP %d", w.display, resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// unwrapURLError drops *url.Error's wrapping, which repeats the whole URL
// (and with it any query or user information).
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
