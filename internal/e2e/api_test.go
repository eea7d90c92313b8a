package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAdminAPI drives the admin API of the real binary: tokens made with
// `scepter admin token new`, roles enforced, a revocation through the API
// seen by the CRL at once, the OpenAPI description served, and the plain
// listener sending people to HTTPS.
func TestAdminAPI(t *testing.T) {
	t.Parallel()
	need(t, "openssl")
	e := startEST(t, estOpts{challenge: "api-secret"})
	token := func(name, role string) string {
		r := e.cli(t, "admin", "token", "new", "--name", name, "--role", role, "--ttl", "1d")
		if r.err != nil {
			t.Fatalf("admin token new:\n%s", r)
		}
		secret := strings.TrimSpace(r.stdout)
		if !strings.HasPrefix(secret, "scepter_") || strings.Contains(r.stderr, secret) {
			t.Fatalf("token secret %q (stderr %q)", secret, r.stderr)
		}
		return secret
	}
	auditor, operator := token("grafana", "auditor"), token("ci", "operator")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	call := func(tok, method, url string, body any) (int, []byte, http.Header) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequest(method, url, rd)
		if err != nil {
			t.Fatal(err)
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, resp.Header
	}
	api := e.HTTPS + "/api/v1"

	dir := t.TempDir()
	if r := enroll(t, dir, e.URL, e.Challenge, "CN=api-device-1,O=Acme"); r.err != nil {
		t.Fatalf("enroll:\n%s", r)
	}
	cert := e.Verify(filepath.Join(dir, "cert.pem"))
	serial := serialHex(cert.SerialNumber)

	code, body, _ := call(auditor, "GET", api+"/certificates?q=api-device", nil)
	var page struct {
		Items []struct {
			Serial, Status string
		} `json:"items"`
	}
	if code != 200 || json.Unmarshal(body, &page) != nil || len(page.Items) != 1 || page.Items[0].Serial != serial {
		t.Fatalf("search: %d %s", code, body)
	}
	if code, body, _ := call(auditor, "POST", api+"/certificates/"+serial+"/revoke", map[string]string{"reason": "keyCompromise"}); code != 403 {
		t.Errorf("an auditor revoked: %d %s", code, body)
	}
	if code, _, h := call("", "GET", api+"/certificates", nil); code != 401 || h.Get("WWW-Authenticate") == "" {
		t.Errorf("no token: %d", code)
	}
	code, body, _ = call(operator, "POST", api+"/certificates/"+serial+"/revoke", map[string]string{"reason": "keyCompromise"})
	if code != 200 || !strings.Contains(string(body), `"revoked_by": "api:ci"`) {
		t.Fatalf("revoke: %d %s", code, body)
	}
	// The CRL follows at once (the API kicks the publisher).
	waitCRL(t, cert.CRLDistributionPoints[0], filepath.Join(dir, "crl.der"), func(text string) bool {
		return strings.Contains(text, strings.ToUpper(serial))
	})
	code, body, _ = call(auditor, "GET", api+"/audit?serial="+serial+"&type=certificate.revoked", nil)
	if code != 200 || !strings.Contains(string(body), `"actor": "api:ci"`) {
		t.Errorf("audit of the revocation: %d %s", code, body)
	}
	if code, body, _ := call("", "GET", api+"/openapi.json", nil); code != 200 || !strings.Contains(string(body), `"openapi": "3.0.3"`) {
		t.Errorf("openapi.json: %d", code)
	}
	// The plain listener: a GET is redirected to HTTPS, a POST refused.
	if code, _, h := call("", "GET", e.Base+"/api/v1/certificates", nil); code != 301 || !strings.HasPrefix(h.Get("Location"), "https://") {
		t.Errorf("plain GET /api/: %d %s", code, h.Get("Location"))
	}
	if code, _, _ := call(operator, "POST", e.Base+"/api/v1/challenges", map[string]string{}); code != 403 {
		t.Errorf("plain POST /api/: %d", code)
	}
	if code, _, h := call("", "GET", e.Base+"/ui/", nil); code != 301 || !strings.HasPrefix(h.Get("Location"), "https://") {
		t.Errorf("plain GET /ui/: %d", code)
	}
	// Tokens are listed (never a secret) and revoked from the CLI.
	r := e.cli(t, "admin", "token", "list")
	if r.err != nil || !strings.Contains(r.stdout, "grafana") || strings.Contains(r.stdout, auditor) {
		t.Errorf("token list:\n%s", r)
	}
	if r := e.cli(t, "admin", "token", "revoke", "grafana"); r.err != nil {
		t.Fatalf("token revoke:\n%s", r)
	}
	if code, _, _ := call(auditor, "GET", api+"/certificates", nil); code != 401 {
		t.Errorf("a revoked token: %d", code)
	}
	// The first start made the console's admin user, and said where its
	// password is.
	expectContains(t, "serve output", e.Output(), "Console login:", "admin-password.txt")
	if r := e.cli(t, "admin", "user", "list"); r.err != nil || !strings.Contains(r.stdout, "admin") {
		t.Errorf("user list:\n%s", r)
	}
}
