package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/webhook"
)

const challenge = "KX3FQ7ZP2M4RT6WY8BCDEGHJ5LNSVA2Q"

func check() enroll.ChallengeCheck {
	return enroll.ChallengeCheck{
		Challenge:     challenge,
		Subject:       "CN=device-42,O=Example",
		SANs:          []string{"dns:device-42.example.com", "email:ops@example.com", "ip:192.0.2.7", "uri:tag:example.com,2026:device-42"},
		TransactionID: "5F2A9C",
		Profile:       "wifi",
		Protocol:      "scep",
		RemoteAddr:    "192.0.2.1",
		KeyType:       "rsa2048",
		CSR:           []byte{0x30, 0x82, 0x01, 0x0a, 0xde, 0xad, 0xbe, 0xef},
	}
}

// server starts a webhook receiver on 127.0.0.1 (httptest's default).
func server(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test server not on 127.0.0.1: %s", srv.URL)
	}
	return srv
}

func verifier(t *testing.T, cfg webhook.Config) *webhook.Verifier {
	t.Helper()
	v, err := webhook.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func reply(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}
}

// noChallenge fails the test when an error or reason carries the challenge.
func noChallenge(t *testing.T, s string) {
	t.Helper()
	if strings.Contains(strings.ToLower(s), strings.ToLower(challenge)) {
		t.Fatalf("challenge leaked: %q", s)
	}
}

func TestAllow(t *testing.T) {
	srv := server(t, reply(`{"allow": true}`))
	allow, reason, err := verifier(t, webhook.Config{URL: srv.URL}).Verify(context.Background(), check())
	if err != nil || !allow || reason != "" {
		t.Fatalf("got %v %q %v, want allow", allow, reason, err)
	}
}

func TestDenyWithReason(t *testing.T) {
	srv := server(t, reply(`{"allow": false, "reason": "device is not enrolled in the MDM"}`))
	allow, reason, err := verifier(t, webhook.Config{URL: srv.URL}).Verify(context.Background(), check())
	if err != nil || allow {
		t.Fatalf("got %v %q %v, want a refusal", allow, reason, err)
	}
	if reason != "device is not enrolled in the MDM" {
		t.Fatalf("reason %q", reason)
	}
}

// A reason that is not a string is ignored, as docs/webhook.md says of
// fields other than allow: the answer still decides, instead of counting
// as no answer (a 503 the device would retry forever).
func TestReasonOfAnotherTypeIsIgnored(t *testing.T) {
	for _, tc := range []struct {
		body       string
		allow      bool
		wantReason string
	}{
		{`{"allow": false, "reason": 42}`, false, webhook.DefaultReason},
		{`{"allow": false, "reason": ["not enrolled"]}`, false, webhook.DefaultReason},
		{`{"allow": false, "reason": {"code": 7}}`, false, webhook.DefaultReason},
		{`{"allow": false, "reason": null}`, false, webhook.DefaultReason},
		{`{"allow": true, "reason": 5}`, true, ""},
	} {
		srv := server(t, reply(tc.body))
		allow, reason, err := verifier(t, webhook.Config{URL: srv.URL}).Verify(context.Background(), check())
		if err != nil || allow != tc.allow || reason != tc.wantReason {
			t.Errorf("%s: got %v %q %v, want %v %q", tc.body, allow, reason, err, tc.allow, tc.wantReason)
		}
	}
}

func TestDenyReasonIsCleaned(t *testing.T) {
	long := strings.Repeat("x", 500)
	cases := []struct {
		name, reason, want string
	}{
		{"empty", "", webhook.DefaultReason},
		{"controls", "bad\x00\x1b[31m device\r\n\tnext\u202eline", "bad [31m device next line"},
		{"challenge echoed", "challenge " + challenge + " is unknown", "challenge [redacted] is unknown"},
		{"challenge lower case", "got " + strings.ToLower(challenge), "got [redacted]"},
		{"challenge cut by length", strings.Repeat("y", 190) + challenge, strings.Repeat("y", 190) + "[redacted]"},
		{"long", long, long[:200]},
		{"only spaces", " \n\t ", webhook.DefaultReason},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := json.Marshal(map[string]any{"allow": false, "reason": tc.reason})
			srv := server(t, reply(string(b)))
			allow, reason, err := verifier(t, webhook.Config{URL: srv.URL}).Verify(context.Background(), check())
			if err != nil || allow {
				t.Fatalf("got %v %v, want a refusal", allow, err)
			}
			if reason != tc.want {
				t.Fatalf("reason %q, want %q", reason, tc.want)
			}
			if len([]rune(reason)) > webhook.MaxReasonRunes {
				t.Fatalf("reason has %d characters", len([]rune(reason)))
			}
			noChallenge(t, reason)
		})
	}
}

func TestTimeout(t *testing.T) {
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // lets the server notice the client leaving
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
		io.WriteString(w, `{"allow": true}`)
	})
	v := verifier(t, webhook.Config{URL: srv.URL, Timeout: 200 * time.Millisecond})
	start := time.Now()
	allow, _, err := v.Verify(context.Background(), check())
	if allow || err == nil {
		t.Fatalf("got allow=%v err=%v, want a timeout error", allow, err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v is not a deadline", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Verify took %s with a 200ms timeout", d)
	}
	noChallenge(t, err.Error())
}

func TestDefaultTimeoutIsFiveSeconds(t *testing.T) {
	if webhook.DefaultTimeout != 5*time.Second {
		t.Fatalf("DefaultTimeout %s", webhook.DefaultTimeout)
	}
}

func TestDown(t *testing.T) {
	srv := httptest.NewServer(reply(`{"allow": true}`))
	url := srv.URL
	srv.Close()
	allow, _, err := verifier(t, webhook.Config{URL: url, Timeout: 2 * time.Second}).Verify(context.Background(), check())
	if allow || err == nil {
		t.Fatalf("got allow=%v err=%v, want a connection error", allow, err)
	}
	noChallenge(t, err.Error())
}

func TestServerError(t *testing.T) {
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"allow": true}`) // ignored: the status decides
	})
	allow, _, err := verifier(t, webhook.Config{URL: srv.URL}).Verify(context.Background(), check())
	if allow || err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("got allow=%v err=%v, want an error naming 500", allow, err)
	}
}

func TestOtherStatusesAreErrors(t *testing.T) {
	for _, code := range []int{http.StatusCreated, http.StatusNoContent, http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusServiceUnavailable} {
		srv := server(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			io.WriteString(w, `{"allow": true}`)
		})
		allow, _, err := verifier(t, webhook.Config{URL: srv.URL}).Verify(context.Background(), check())
		if allow || err == nil {
			t.Fatalf("status %d: got allow=%v err=%v, want an error", code, allow, err)
		}
	}
}

func TestMalformedRepliesAreErrors(t *testing.T) {
	cases := map[string]string{
		"garbage":          "<html>hello</html>",
		"empty":            "",
		"null":             "null",
		"no allow":         `{"reason": "x"}`,
		"allow as string":  `{"allow": "true"}`,
		"allow as number":  `{"allow": 1}`,
		"array":            `[true]`,
		"trailing data":    `{"allow": true} {"allow": true}`,
		"trailing garbage": `{"allow": true}xyz`,
		"truncated":        `{"allow": tr`,
		"too large":        `{"allow": true, "pad": "` + strings.Repeat("a", webhook.MaxResponseBytes) + `"}`,
		// Ambiguous: encoding/json alone would read the last, in any case.
		"allow twice":             `{"allow": false, "allow": true}`,
		"allow and ALLOW":         `{"allow": false, "ALLOW": true}`,
		"Allow only":              `{"Allow": true}`,
		"a refusal with an aLLoW": `{"allow": false, "reason": "device not enrolled", "aLLoW": true}`,
		// Read otherwise than sent: the reason would become U+FFFD.
		"a lone surrogate in the reason": `{"allow": false, "reason": "device \ud800 not enrolled"}`,
		"nested deeper than 32 levels":   `{"allow": true, "x": ` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			srv := server(t, reply(body))
			allow, reason, err := verifier(t, webhook.Config{URL: srv.URL}).Verify(context.Background(), check())
			if allow || err == nil {
				t.Fatalf("got allow=%v reason=%q err=%v, want an error", allow, reason, err)
			}
		})
	}
}

func TestReplyJustUnderLimitIsRead(t *testing.T) {
	head := `{"allow": true, "pad": "`
	body := head + strings.Repeat("a", webhook.MaxResponseBytes-len(head)-2) + `"}`
	if len(body) != webhook.MaxResponseBytes {
		t.Fatalf("body is %d bytes", len(body))
	}
	srv := server(t, reply(body))
	allow, _, err := verifier(t, webhook.Config{URL: srv.URL}).Verify(context.Background(), check())
	if err != nil || !allow {
		t.Fatalf("got allow=%v err=%v", allow, err)
	}
}

func TestHMACSignature(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	var checked atomic.Bool
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		// Verify the way docs/webhook.md tells a receiver to.
		body, _ := io.ReadAll(r.Body)
		ts := r.Header.Get("X-Scepter-Timestamp")
		sig := r.Header.Get("X-Scepter-Signature")
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
			http.Error(w, "stale", http.StatusUnauthorized)
			return
		}
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(ts + "." + string(body)))
		want := "sha256=" + hex.EncodeToString(m.Sum(nil))
		if !hmac.Equal([]byte(sig), []byte(want)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		checked.Store(true)
		io.WriteString(w, `{"allow": true}`)
	})
	allow, _, err := verifier(t, webhook.Config{URL: srv.URL, Secret: secret}).Verify(context.Background(), check())
	if err != nil || !allow || !checked.Load() {
		t.Fatalf("got allow=%v err=%v checked=%v", allow, err, checked.Load())
	}

	// A receiver holding another key refuses (with 401, an error here).
	other := verifier(t, webhook.Config{URL: srv.URL, Secret: []byte("another key")})
	if allow, _, err := other.Verify(context.Background(), check()); allow || err == nil {
		t.Fatalf("wrong key: got allow=%v err=%v", allow, err)
	}
}

func TestSignMatchesHMAC(t *testing.T) {
	m := hmac.New(sha256.New, []byte("k"))
	m.Write([]byte("1700000000.{}"))
	if got, want := webhook.Sign([]byte("k"), "1700000000", []byte("{}")), hex.EncodeToString(m.Sum(nil)); got != want {
		t.Fatalf("Sign %s, want %s", got, want)
	}
}

func TestNoSignatureWithoutSecret(t *testing.T) {
	var headers http.Header
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		headers = r.Header.Clone()
		io.WriteString(w, `{"allow": true}`)
	})
	if _, _, err := verifier(t, webhook.Config{URL: srv.URL}).Verify(context.Background(), check()); err != nil {
		t.Fatal(err)
	}
	if headers.Get("X-Scepter-Signature") != "" || headers.Get("X-Scepter-Timestamp") != "" {
		t.Fatalf("unsigned verifier sent signature headers: %v", headers)
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	var target atomic.Int32
	dst := server(t, func(w http.ResponseWriter, r *http.Request) {
		target.Add(1)
		io.WriteString(w, `{"allow": true}`)
	})
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		src := server(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, dst.URL, code)
		})
		// Also with a caller's client that would follow redirects.
		for _, client := range []*http.Client{nil, {}} {
			allow, _, err := verifier(t, webhook.Config{URL: src.URL, Client: client}).Verify(context.Background(), check())
			if allow || err == nil {
				t.Fatalf("redirect %d: got allow=%v err=%v, want an error", code, allow, err)
			}
		}
	}
	if n := target.Load(); n != 0 {
		t.Fatalf("redirect target was called %d times", n)
	}
}

func TestCallerClientIsNotModified(t *testing.T) {
	c := &http.Client{}
	verifier(t, webhook.Config{URL: "https://hooks.example.com/x", Client: c})
	if c.CheckRedirect != nil || c.Timeout != 0 {
		t.Fatal("New changed the caller's http.Client")
	}
}

func TestRequestCarriesEveryField(t *testing.T) {
	var (
		got     map[string]any
		headers http.Header
		method  string
	)
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		method = r.Method
		headers = r.Header.Clone()
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &got); err != nil {
			t.Errorf("body is not JSON: %v", err)
		}
		io.WriteString(w, `{"allow": true}`)
	})
	c := check()
	before := time.Now().Add(-time.Second)
	if _, _, err := verifier(t, webhook.Config{URL: srv.URL}).Verify(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if method != http.MethodPost || !strings.HasPrefix(headers.Get("Content-Type"), "application/json") {
		t.Fatalf("method %s content type %q", method, headers.Get("Content-Type"))
	}
	want := map[string]any{
		"version":        float64(1),
		"challenge":      c.Challenge,
		"subject":        c.Subject,
		"sans":           []any{c.SANs[0], c.SANs[1], c.SANs[2], c.SANs[3]},
		"transaction_id": c.TransactionID,
		"profile":        c.Profile,
		"protocol":       c.Protocol,
		"client_addr":    c.RemoteAddr,
		"key_type":       c.KeyType,
		"csr":            base64.StdEncoding.EncodeToString(c.CSR),
	}
	for k, v := range want {
		gv, ok := got[k]
		if !ok {
			t.Errorf("field %q missing", k)
			continue
		}
		gb, _ := json.Marshal(gv)
		wb, _ := json.Marshal(v)
		if string(gb) != string(wb) {
			t.Errorf("field %q = %s, want %s", k, gb, wb)
		}
	}
	ts, ok := got["time"].(string)
	if !ok {
		t.Fatalf("time missing or not a string: %v", got["time"])
	}
	when, err := time.Parse(time.RFC3339, ts)
	if err != nil || when.Before(before) || when.After(time.Now().Add(time.Second)) {
		t.Fatalf("time %q: %v", ts, err)
	}
	if len(got) != len(want)+1 {
		t.Fatalf("body has %d fields, want %d: %v", len(got), len(want)+1, got)
	}
	der, err := base64.StdEncoding.DecodeString(got["csr"].(string))
	if err != nil || string(der) != string(c.CSR) {
		t.Fatalf("csr does not decode to the DER sent")
	}
}

func TestEmptySANsIsAnArray(t *testing.T) {
	var raw string
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		raw = string(b)
		io.WriteString(w, `{"allow": true}`)
	})
	c := check()
	c.SANs = nil
	if _, _, err := verifier(t, webhook.Config{URL: srv.URL}).Verify(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(raw, `"sans":[]`) {
		t.Fatalf("empty SANs not sent as []: %s", raw)
	}
}

func TestCallerCancellation(t *testing.T) {
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // lets the server notice the client leaving
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	allow, _, err := verifier(t, webhook.Config{URL: srv.URL}).Verify(ctx, check())
	if allow || !errors.Is(err, context.Canceled) {
		t.Fatalf("got allow=%v err=%v, want context.Canceled", allow, err)
	}
}

func TestErrorsDoNotCarryURLSecrets(t *testing.T) {
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	})
	u := strings.Replace(srv.URL, "http://", "http://user:hunter2@", 1) + "/hook?token=s3cr3t"
	_, _, err := verifier(t, webhook.Config{URL: u}).Verify(context.Background(), check())
	if err == nil {
		t.Fatal("want an error")
	}
	if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("error leaks URL secrets: %v", err)
	}
	srv.Close()
	_, _, err = verifier(t, webhook.Config{URL: u}).Verify(context.Background(), check())
	if err == nil || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("connection error leaks URL secrets: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	bad := []webhook.Config{
		{},
		{URL: "ftp://hooks.example.com/x"},
		{URL: "file:///etc/passwd"},
		{URL: "hooks.example.com/x"},
		{URL: "/relative"},
		{URL: "https://"},
		{URL: "http://:8080/x"},
		{URL: "https://hooks.example.com/x#frag"},
		{URL: "https://hooks example.com/"},
		{URL: "https://hooks.example.com/x", Timeout: -time.Second},
	}
	for _, cfg := range bad {
		if _, err := webhook.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	for _, u := range []string{"http://127.0.0.1:9000/hook", "https://hooks.example.com/scep?team=a", "https://[::1]:8443/"} {
		if _, err := webhook.New(webhook.Config{URL: u}); err != nil {
			t.Errorf("New(%q): %v", u, err)
		}
	}
}
