package e2e

import (
	"bytes"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"testing"
	"unicode/utf16"
)

// decodeUTF16LE decodes NDES's page: UTF-16LE after a byte-order mark.
func decodeUTF16LE(b []byte) string {
	b = bytes.TrimPrefix(b, []byte{0xff, 0xfe})
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		u = append(u, uint16(b[i])|uint16(b[i+1])<<8)
	}
	return string(utf16.Decode(u))
}

// TestNDESPasswordPage: an MDM that fetches NDES one-time passwords gets one
// from /certsrv/mscep_admin/ with HTTP Basic, parses it the way MDMs do, and
// a device enrolls with it once.
func TestNDESPasswordPage(t *testing.T) {
	t.Parallel()
	pw := filepath.Join(t.TempDir(), "ndes-password")
	writeFile(t, pw, "ndes-admin-pass\n")
	s := startServer(t, serverOpts{prepared: true, challenge: "static-secret", args: []string{"--ndes-user", "mdm", "--ndes-password-file", pw}})
	url := s.Base + "/certsrv/mscep_admin/"

	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("without credentials: HTTP %d", resp.StatusCode)
	}
	fetch := func(user, pass string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, decodeUTF16LE(b)
	}
	if code, _ := fetch("mdm", "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: HTTP %d", code)
	}
	code, page := fetch("mdm", "ndes-admin-pass")
	if code != http.StatusOK {
		t.Fatalf("HTTP %d", code)
	}
	m := regexp.MustCompile(`(?i)The enrollment challenge password is: <B> (\S*)`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no password in the page:\n%s", page)
	}
	otp := m[1]
	dir := t.TempDir()
	if r := enroll(t, dir, s.URL, otp, "CN=ndes-device,O=Acme"); r.err != nil {
		t.Fatalf("enroll with the NDES password:\n%s", r)
	}
	s.ExpectRecorded(s.Verify(filepath.Join(dir, "cert.pem")))
	r := enroll(t, t.TempDir(), s.URL, otp, "CN=ndes-device-2,O=Acme")
	expectContains(t, "second use of a one-time password", expectFailed(t, r, "reused NDES password"), "badRequest")
	if bytes.Contains([]byte(s.Output()), []byte(otp)) {
		t.Error("the server log shows the one-time password")
	}
}

// TestWebhookProfileNeedsURL: a profile in webhook mode without a webhook
// is a configuration error at start, not a refusal on every request.
func TestWebhookProfileNeedsURL(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "scepter.toml")
	writeFile(t, cfg, webhookConfig)
	r := run(t, runOpts{}, bin(t), "serve", "--data-dir", filepath.Join(t.TempDir(), "d"), "--listen", "127.0.0.1:0", "--config", cfg)
	expectContains(t, "serve with a webhook profile and no URL", expectFailed(t, r, "webhook profile without URL"), "--webhook-url")
}
