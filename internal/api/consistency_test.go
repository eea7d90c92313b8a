package api_test

import (
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
