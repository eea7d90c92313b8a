package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

// Text a caller put in the path or the query comes back in an error
// escaped (a bidi override as \u202e, never as itself, which would make
// the error read as other text) and clipped (a 5000-character ID is not
// repeated whole), as the errors about users, tokens and serials already
// did (SECURITY.md; r111 D2).
func TestCallerTextInErrorsIsEscapedAndClipped(t *testing.T) {
	e := newEnv(t)
	long := strings.Repeat("A", 5000)
	unclean := httptest.NewServer(e.h.UncleanPaths()["/api/"])
	t.Cleanup(unclean.Close)
	cases := []struct {
		name         string
		role         pki.Role
		method, path string
		body         any
		status       int
		want         string // in the error, as JSON decodes it
	}{
		{"approve an unknown request", pki.RoleOperator, "POST", "/api/v1/requests/%E2%80%AEabc/approve", nil, 404, `no request "\u202eabc"`},
		{"reject an unknown request", pki.RoleOperator, "POST", "/api/v1/requests/%E2%80%AEabc/reject", map[string]string{"reason": "no"}, 404, `no request "\u202eabc"`},
		{"delete an unknown challenge", pki.RoleOperator, "DELETE", "/api/v1/challenges/%E2%80%AEabc", nil, 404, `no challenge "\u202eabc"`},
		{"approve a long ID", pki.RoleOperator, "POST", "/api/v1/requests/" + long + "/approve", nil, 404, `no request "` + long[:80] + `… (5000 bytes)"`},
		{"delete a long ID", pki.RoleOperator, "DELETE", "/api/v1/challenges/" + long, nil, 404, `no challenge "` + long[:80] + `… (5000 bytes)"`},
		{"delete a long user name", pki.RoleAdmin, "DELETE", "/api/v1/users/" + long, nil, 404, `no user "` + long[:80] + `… (5000 bytes)"`},
		{"delete a long EST user name", pki.RoleAdmin, "DELETE", "/api/v1/est-users/" + long, nil, 404, `no EST user "` + long[:80] + `… (5000 bytes)"`},
		{"revoke a long token name", pki.RoleAdmin, "DELETE", "/api/v1/tokens/" + long, nil, 404, `no live token "` + long[:80] + `… (5000 bytes)"`},
		{"no such route", pki.RoleAdmin, "GET", "/api/v1/nosuch%E2%80%AE", nil, 404, `no such API route: GET /api/v1/nosuch\u202e`},
		{"no such route, not UTF-8", pki.RoleAdmin, "GET", "/api/v1/nosuch%FF", nil, 404, `no such API route: GET /api/v1/nosuch\xff`},
		{"unknown query parameter", pki.RoleAuditor, "GET", "/api/v1/certificates?" + long + "=1", nil, 400, `unknown query parameter "` + long[:64] + `… (5000 bytes)"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, tc.role, tc.method, tc.path, tc.body)
			checkCallerText(t, r.status, r.body, tc.status, tc.want)
		})
	}
	t.Run("unclean path", func(t *testing.T) {
		res, err := http.Get(unclean.URL + "/api/v1/%E2%80%AE/./x")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		checkCallerText(t, res.StatusCode, b, 404, `no such API route: GET /api/v1/\u202e/./x`)
	})
}

func checkCallerText(t *testing.T, status int, body []byte, wantStatus int, want string) {
	t.Helper()
	var eb struct{ Error string }
	if err := json.Unmarshal(body, &eb); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, body)
	}
	if status != wantStatus || !strings.Contains(eb.Error, want) {
		t.Errorf("%d %q\nwant %d with %q", status, eb.Error, wantStatus, want)
	}
	if strings.ContainsRune(eb.Error, '\u202e') || len(eb.Error) > 600 {
		t.Errorf("the error holds the caller's text raw or whole (%d bytes): %.300q", len(eb.Error), eb.Error)
	}
}
