package client

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

// A SCEP server's error reply is quoted escaped, bounded, and only when it
// is text: it cannot drive the user's terminal or forge a line below the
// error.
func TestSCEPErrorReplyIsEscaped(t *testing.T) {
	const forged = "\x1b[2J\x1b[31mFAKE: certificate issued OK\nwarning: everything fine"
	tests := []struct {
		name        string
		contentType string
		body        string
		want        string // in the error; "" checks only that the body is absent
	}{
		{"text is quoted, escaped", "text/plain; charset=utf-8", forged,
			`PKIOperation: HTTP 500: \x1b[2J\x1b[31mFAKE: certificate issued OK\nwarning: everything fine`},
		{"C1, bidi and invalid UTF-8", "text/plain", "a\u009b31m\u202eb\xff", `HTTP 500: a\u009b31m\u202eb\xff`},
		{"untyped is quoted", "", "plain words", "HTTP 500: plain words"},
		{"a binary body is not quoted", "application/octet-stream", forged, ""},
		{"a long body is cut", "text/plain", strings.Repeat("x", 10000), "HTTP 500: " + strings.Repeat("x", maxReasonBytes)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.contentType == "" {
					w.Header()["Content-Type"] = nil // no sniffing: none at all
				} else {
					w.Header().Set("Content-Type", tt.contentType)
				}
				w.WriteHeader(http.StatusInternalServerError)
				w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			c := &SCEP{URL: srv.URL + "/scep"}
			_, err := c.pkiOperation(context.Background(), Caps{"postpkioperation": true}, []byte{0x30})
			if err == nil {
				t.Fatal("no error for HTTP 500")
			}
			msg := err.Error()
			if !strings.Contains(msg, "PKIOperation: HTTP 500") {
				t.Errorf("error %q does not name the operation and status", msg)
			}
			if tt.want != "" && !strings.Contains(msg, tt.want) {
				t.Errorf("error = %q, want it to contain %q", msg, tt.want)
			}
			if tt.want == "" && strings.Contains(msg, "FAKE") {
				t.Errorf("error = %q quotes a body that is not text", msg)
			}
			if len(msg) > 4*maxReasonBytes+100 {
				t.Errorf("error of %d bytes: the body is not bounded", len(msg))
			}
			for _, r := range msg {
				if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == '\u202e' {
					t.Errorf("error holds %U: %q", r, msg)
				}
			}
			if !utf8.ValidString(msg) {
				t.Errorf("error is not UTF-8: %q", msg)
			}
		})
	}
}

// The public operations go through the same path: GetCACaps answered with
// an error page shows it escaped.
func TestSCEPGetCACapsErrorIsEscaped(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "\x1b[2Jdown\nforged line", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	_, err := (&SCEP{URL: srv.URL + "/scep"}).GetCACaps(context.Background())
	if err == nil || !strings.Contains(err.Error(), `GetCACaps: HTTP 503: \x1b[2Jdown\nforged line`) {
		t.Fatalf("err = %q", err)
	}
}

// A SCEP URL net/url cannot read is refused without its password: the
// parse error quotes the URL whole (r79).
func TestSCEPUnreadableURLMasksItsPassword(t *testing.T) {
	for _, raw := range []string{"http://u:pa ss@127.0.0.1:1/scep", "http://u:Secr3t?1@127.0.0.1:1/scep", "http://u:pa%zz@127.0.0.1:1/scep"} {
		_, err := (&SCEP{URL: raw}).GetCACaps(context.Background())
		if err == nil || strings.Contains(err.Error(), "pa ss") || strings.Contains(err.Error(), "Secr3t") || strings.Contains(err.Error(), "pa%zz") ||
			!strings.Contains(err.Error(), "xxxxx@127.0.0.1:1/scep") {
			t.Errorf("%s: %v", raw, err)
		}
	}
}

// A failed exchange names the operation (and the URL) once: the error of
// Go's client, which repeats them, is not quoted whole.
func TestSCEPErrorsNameTheOperationOnce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"an error status", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "busy", http.StatusServiceUnavailable) }},
		{"the connection closed", func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			_, err := (&SCEP{URL: srv.URL + "/scep"}).GetCACaps(context.Background())
			if err == nil || strings.Count(err.Error(), "GetCACaps") != 1 {
				t.Errorf("err = %q, want GetCACaps named once", err)
			}
		})
	}
}

// A pinned fingerprint is accepted as other tools print it: the prefix in
// any case, with or without a hyphen, the digest with colons or without.
func TestCheckFingerprintSpellings(t *testing.T) {
	cert := &x509.Certificate{Raw: []byte("a certificate")}
	sum := sha256.Sum256(cert.Raw)
	lower := hex.EncodeToString(sum[:])
	upper := strings.ToUpper(lower)
	var colons []string
	for i := 0; i < len(upper); i += 2 {
		colons = append(colons, upper[i:i+2])
	}
	tests := []struct {
		name, pin string
		ok        bool
	}{
		{"sha256: lower", "sha256:" + lower, true},
		{"SHA256: upper", "SHA256:" + upper, true},
		{"Sha256: mixed", "Sha256:" + lower, true},
		{"sha-256:", "sha-256:" + lower, true},
		{"SHA-256: with colons (openssl)", "SHA-256:" + strings.Join(colons, ":"), true},
		{"bare hex", lower, true},
		{"surrounding spaces", "  SHA256:" + lower + " ", true},
		{"another digest", "sha256:" + strings.Repeat("0", 64), false},
		{"another algorithm", "sha1:" + lower, false},
		{"prefix twice", "sha256:sha256:" + lower, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckFingerprint([]*x509.Certificate{cert}, tt.pin)
			if (err == nil) != tt.ok {
				t.Errorf("CheckFingerprint(%q) = %v, want accepted: %v", tt.pin, err, tt.ok)
			}
		})
	}
}
