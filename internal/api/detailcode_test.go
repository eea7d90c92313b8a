package api_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

// detail.code says what kind of refusal an error is, one code per status:
// a 422 (a value read and refused) is "unprocessable", never
// "bad_request", which a client switching on it would take for a request
// that could not be read (400, whose detail is null). The description
// lists the codes.
func TestDetailCodeOfEachStatus(t *testing.T) {
	e := newEnv(t)
	c, _ := e.Issue(t, "detail-code")
	serial := c.SerialNumber.Text(16)
	short := e.do(t, pki.RoleAdmin, "POST", "/api/v1/tokens", `{"name":"short","role":"admin","ttl":"1h"}`)
	var nt struct{ Secret string }
	short.json(t, &nt)
	e.tokens["short"] = nt.Secret
	e.tokens["unknown"] = "scepter_AAAA"
	gone := e.do(t, pki.RoleAdmin, "POST", "/api/v1/tokens", `{"name":"gone","role":"admin"}`)
	gone.json(t, &nt)
	e.tokens["revoked"] = nt.Secret
	if r := e.do(t, pki.RoleAdmin, "DELETE", "/api/v1/tokens/gone", nil); r.status != 204 {
		t.Fatalf("revoking a token: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		name         string
		role         pki.Role
		method, path string
		body         any
		status       int
		code         string // "" for a null detail
	}{
		{"limit 0", pki.RoleAuditor, "GET", "/api/v1/certificates?limit=0", nil, 422, "unprocessable"},
		{"unknown status", pki.RoleAuditor, "GET", "/api/v1/requests?status=foo", nil, 422, "unprocessable"},
		{"a cursor of another filter", pki.RoleAuditor, "GET", "/api/v1/certificates?status=revoked&cursor=bm9wZQ", nil, 422, "unprocessable"},
		{"a short-lived token's lasting one", "short", "POST", "/api/v1/tokens", `{"name":"lasting","role":"auditor"}`, 422, "unprocessable"},
		{"an unknown reason", pki.RoleOperator, "POST", "/api/v1/certificates/" + serial + "/revoke", `{"reason":"bored"}`, 422, "unprocessable"},
		{"an unknown field", pki.RoleOperator, "POST", "/api/v1/certificates/" + serial + "/revoke", `{"force":true}`, 400, ""},
		{"an auditor revoking", pki.RoleAuditor, "POST", "/api/v1/certificates/" + serial + "/revoke", `{}`, 403, "forbidden"},
		{"an unknown serial", pki.RoleAuditor, "GET", "/api/v1/certificates/abcdef", nil, 404, "not_found"},
		// Every 401, however the token falls short.
		{"no token", "", "GET", "/api/v1/whoami", nil, 401, "unauthorized"},
		{"an unknown token", "unknown", "GET", "/api/v1/whoami", nil, 401, "unauthorized"},
		{"a revoked token", "revoked", "POST", "/api/v1/challenges", `{"profile":"default"}`, 401, "unauthorized"},
	} {
		r := e.do(t, tc.role, tc.method, tc.path, tc.body)
		var eb struct {
			Error  string          `json:"error"`
			Detail json.RawMessage `json:"detail"`
		}
		r.json(t, &eb)
		want := "null"
		if tc.code != "" {
			want = `{"code":"` + tc.code + `"}`
		}
		if got := strings.Join(strings.Fields(string(eb.Detail)), ""); r.status != tc.status || got != want {
			t.Errorf("%s: %d, detail %s; want %d, detail %s\n%s", tc.name, r.status, got, tc.status, want, r.body)
		}
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Description string `json:"description"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(e.do(t, "", "GET", "/api/v1/openapi.json", nil).body, &doc); err != nil {
		t.Fatal(err)
	}
	d := doc.Components.Schemas["Error"].Properties["detail"].Description
	for _, code := range []string{`"unauthorized"`, `"unprocessable"`, `"not_found"`, `"forbidden"`, `"conflict"`, "null"} {
		if !strings.Contains(d, code) {
			t.Errorf("Error.detail's description %q does not name %s", d, code)
		}
	}
	if strings.Contains(d, "bad_request") {
		t.Errorf("Error.detail's description %q names bad_request", d)
	}
}
