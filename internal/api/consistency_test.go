package api_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

// errorOf is the error text of a JSON error answer.
func errorOf(t *testing.T, r reply) string {
	t.Helper()
	var eb struct {
		Error string `json:"error"`
	}
	r.json(t, &eb)
	return eb.Error
}

// An issuer that could name no CA is refused for what it is (422 naming
// the issuer's form, as the list's filter and the console refuse it), on
// every route of one certificate, not answered "no certificate with
// serial …" as if the serial were wrong. One well formed but unknown is
// still a certificate not found.
func TestIssuerOfOneCertificateIsChecked(t *testing.T) {
	e := newEnv(t)
	c, _ := e.Issue(t, "issuer-checked")
	serial := c.SerialNumber.Text(16)
	id := e.Issuer().ID
	const bad = `issuer "zz": want (a prefix of) a CA's ID in hex`
	for _, tc := range []struct {
		name, method, path, body string
		want                     int
		reason                   string
	}{
		{"detail", "GET", "/api/v1/certificates/" + serial + "?issuer=zz", "", 422, bad},
		{"pem", "GET", "/api/v1/certificates/" + serial + "/pem?issuer=zz", "", 422, bad},
		{"der", "GET", "/api/v1/certificates/" + serial + "/der?issuer=zz", "", 422, bad},
		{"chain", "GET", "/api/v1/certificates/" + serial + "/chain?issuer=zz", "", 422, bad},
		{"revoke", "POST", "/api/v1/certificates/" + serial + "/revoke", `{"reason":"superseded","issuer":"zz"}`, 422, bad},
		{"unhold", "POST", "/api/v1/certificates/" + serial + "/unhold", `{"issuer":"zz"}`, 422, bad},
		{"an issuer longer than any ID", "GET", "/api/v1/certificates/" + serial + "?issuer=" + strings.Repeat("a", 65), "", 422, "want (a prefix of) a CA's ID in hex"},
		{"a prefix of the ID", "GET", "/api/v1/certificates/" + serial + "?issuer=" + id[:8], "", 200, ""},
		{"the whole ID, in capitals", "GET", "/api/v1/certificates/" + serial + "/pem?issuer=" + strings.ToUpper(id), "", 200, ""},
		{"well formed, no such CA", "GET", "/api/v1/certificates/" + serial + "?issuer=00ff", "", 404, "no certificate with serial"},
	} {
		var body any
		if tc.body != "" {
			body = tc.body
		}
		r := e.do(t, pki.RoleOperator, tc.method, tc.path, body)
		if r.status != tc.want {
			t.Errorf("%s: %d, want %d\n%s", tc.name, r.status, tc.want, r.body)
			continue
		}
		if tc.reason != "" && !strings.Contains(errorOf(t, r), tc.reason) {
			t.Errorf("%s: error %q, want it to say %q", tc.name, errorOf(t, r), tc.reason)
		}
	}
	if r := e.do(t, pki.RoleAuditor, "GET", "/api/v1/certificates/"+serial, nil); !strings.Contains(string(r.body), `"status": "valid"`) && !strings.Contains(string(r.body), `"status":"valid"`) {
		t.Errorf("the certificate after refused calls: %s", r.body)
	}
}

// expiring_within beyond its bound is refused naming the bound, not as if
// the value were not positive.
func TestExpiringWithinNamesItsBound(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		value string
		want  int
	}{
		{"36500d", 200}, {"876000h", 200},
		{"36501d", 422}, {"100000d", 422}, {"876001h", 422}, {"9999999999h", 422},
		{"0d", 422}, {"-1h", 422}, {"soon", 422},
	} {
		r := e.do(t, pki.RoleAuditor, "GET", "/api/v1/certificates?expiring_within="+tc.value, nil)
		if r.status != tc.want {
			t.Errorf("expiring_within=%s: %d, want %d\n%s", tc.value, r.status, tc.want, r.body)
			continue
		}
		if tc.want == 422 && !strings.Contains(errorOf(t, r), "at most 36500d (100 years)") {
			t.Errorf("expiring_within=%s: error %q does not name the bound", tc.value, errorOf(t, r))
		}
	}
}

// The OpenAPI description is a route like the others: another method is
// 405 with Allow, not "no such API route".
func TestOpenAPIOtherMethods(t *testing.T) {
	e := newEnv(t)
	for _, method := range []string{"PUT", "POST", "DELETE", "PATCH", "OPTIONS"} {
		r := e.do(t, "", method, "/api/v1/openapi.json", nil)
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s /api/v1/openapi.json: %d, Allow %q; want 405, Allow GET, HEAD\n%s", method, r.status, r.header.Get("Allow"), r.body)
		}
	}
	if r := e.do(t, "", "GET", "/api/v1/openapi.json", nil); r.status != http.StatusOK {
		t.Errorf("GET /api/v1/openapi.json: %d", r.status)
	}
}

// What the OpenAPI description marks required, defaulted or optional is
// what the server does when it is left out: each case checks the marking
// and sends the request without the field (or the body).
func TestOpenAPIMarksWhatTheServerEnforces(t *testing.T) {
	e := newEnv(t)
	var doc struct {
		Paths map[string]map[string]struct {
			RequestBody *struct {
				Required bool `json:"required"`
			} `json:"requestBody"`
		} `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Required   []string `json:"required"`
				Properties map[string]struct {
					Default *string `json:"default"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(e.do(t, "", "GET", "/api/v1/openapi.json", nil).body, &doc); err != nil {
		t.Fatal(err)
	}
	revokeMe, _ := e.Issue(t, "openapi-revoke")
	held, _ := e.Issue(t, "openapi-unhold")
	if r := e.do(t, pki.RoleOperator, "POST", "/api/v1/certificates/"+held.SerialNumber.Text(16)+"/revoke", `{"reason":"certificateHold"}`); r.status != 200 {
		t.Fatalf("hold: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		name             string
		schema, field    string
		required         bool
		def              string // the documented default, "" for none
		method, path     string
		body             string // without the field
		want             int
		replyHas, errHas string
	}{
		{"revoke without a reason", "RevokeRequest", "reason", false, "unspecified",
			"POST", "/api/v1/certificates/" + revokeMe.SerialNumber.Text(16) + "/revoke", `{"reason":""}`, 200, `"unspecified"`, ""},
		{"reject without a reason", "RejectRequest", "reason", true, "",
			"POST", "/api/v1/requests/" + e.heldRequest(t, "openapi-reject") + "/reject", `{}`, 422, "", "reason"},
		{"challenge without a lifetime", "ChallengeRequest", "ttl", false, "24h", "POST", "/api/v1/challenges", `{}`, 201, "", ""},
		{"token without a name", "TokenRequest", "name", true, "", "POST", "/api/v1/tokens", `{"role":"auditor"}`, 422, "", ""},
		{"token without a role", "TokenRequest", "role", true, "", "POST", "/api/v1/tokens", `{"name":"openapi-t"}`, 422, "", ""},
		{"token without a lifetime", "TokenRequest", "ttl", false, "", "POST", "/api/v1/tokens", `{"name":"openapi-t2","role":"auditor"}`, 201, "", ""},
		{"user without a password", "UserRequest", "password", true, "", "POST", "/api/v1/users", `{"name":"openapi-u","role":"auditor"}`, 422, "", ""},
		{"user without a role", "UserRequest", "role", true, "", "POST", "/api/v1/users", `{"name":"openapi-u","password":"abcdefghijklmnop"}`, 422, "", ""},
		{"user without a name", "UserRequest", "name", true, "", "POST", "/api/v1/users", `{"role":"auditor","password":"abcdefghijklmnop"}`, 422, "", ""},
		{"EST user without a password", "ESTUserRequest", "password", true, "", "POST", "/api/v1/est-users", `{"name":"openapi-e"}`, 422, "", ""},
		{"EST user without a name", "ESTUserRequest", "name", true, "", "POST", "/api/v1/est-users", `{"password":"abcdefghijklmnop"}`, 422, "", ""},
		{"EST user without a profile", "ESTUserRequest", "profile", false, "", "POST", "/api/v1/est-users", `{"name":"openapi-e2","password":"abcdefghijklmnop"}`, 201, "", ""},
	} {
		s, ok := doc.Components.Schemas[tc.schema]
		if !ok {
			t.Fatalf("%s: no schema %s", tc.name, tc.schema)
		}
		if got := slices.Contains(s.Required, tc.field); got != tc.required {
			t.Errorf("%s: %s.%s marked required %v, want %v (the server's rule)", tc.name, tc.schema, tc.field, got, tc.required)
		}
		var def string
		if p := s.Properties[tc.field].Default; p != nil {
			def = *p
		}
		if def != tc.def {
			t.Errorf("%s: %s.%s default %q, want %q", tc.name, tc.schema, tc.field, def, tc.def)
		}
		r := e.do(t, pki.RoleAdmin, tc.method, tc.path, tc.body)
		if r.status != tc.want || !strings.Contains(string(r.body), tc.replyHas) {
			t.Errorf("%s: %d, want %d with %s\n%s", tc.name, r.status, tc.want, tc.replyHas, r.body)
		}
		if tc.errHas != "" && !strings.Contains(errorOf(t, r), tc.errHas) {
			t.Errorf("%s: error %q, want it to say %q", tc.name, errorOf(t, r), tc.errHas)
		}
	}
	// unhold takes no body at all (the issuer is needed only when several
	// CAs used the serial): its body is optional; revoke's is required.
	if rb := doc.Paths["/api/v1/certificates/{serial}/unhold"]["post"].RequestBody; rb == nil || rb.Required {
		t.Errorf("unhold's requestBody %+v: want one, not required", rb)
	}
	if rb := doc.Paths["/api/v1/certificates/{serial}/revoke"]["post"].RequestBody; rb == nil || !rb.Required {
		t.Errorf("revoke's requestBody %+v: want one, required", rb)
	}
	if r := e.do(t, pki.RoleOperator, "POST", "/api/v1/certificates/"+held.SerialNumber.Text(16)+"/unhold", nil); r.status != 200 {
		t.Errorf("unhold without a body: %d %s", r.status, r.body)
	}
	if r := e.do(t, pki.RoleOperator, "POST", "/api/v1/certificates/"+revokeMe.SerialNumber.Text(16)+"/revoke", nil); r.status != 400 {
		t.Errorf("revoke without a body: %d %s, want 400", r.status, r.body)
	}
}

// expiring_within without status lists the certificates still to renew,
// as /metrics and the console's links count them: a revoked certificate
// is listed only when status=revoked asks for it (r110 D6).
func TestExpiringWithinListsValidUnlessAsked(t *testing.T) {
	e := newEnv(t)
	live, _ := e.Issue(t, "expiring-live")
	gone, _ := e.Issue(t, "expiring-revoked")
	e.Revoke(t, gone, 1)
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"expiring_within=36500d", []string{live.SerialNumber.Text(16)}},
		{"expiring_within=36500d&status=valid", []string{live.SerialNumber.Text(16)}},
		{"expiring_within=36500d&status=revoked", []string{gone.SerialNumber.Text(16)}},
		{"status=revoked", []string{gone.SerialNumber.Text(16)}},
	} {
		r := e.do(t, pki.RoleAuditor, "GET", "/api/v1/certificates?"+tc.query, nil)
		if r.status != 200 {
			t.Errorf("%s: %d\n%s", tc.query, r.status, r.body)
			continue
		}
		var page struct {
			Items []struct {
				Serial string `json:"serial"`
			} `json:"items"`
		}
		r.json(t, &page)
		got := []string{}
		for _, c := range page.Items {
			got = append(got, c.Serial)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s lists %q, want %q", tc.query, got, tc.want)
		}
	}
}
