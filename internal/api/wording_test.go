package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

// A token lifetime the API refuses is quoted as the caller sent it, as
// the challenge refusals do, not as Go prints a duration.
func TestTokenLifetimeRefusalQuotesTheInput(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		ttl, want string
	}{
		{"3661d", `token lifetime "3661d" is out of range`},
		{"-1h", `token lifetime "-1h" is out of range`},
		{"30s", `token lifetime "30s" is out of range`},
		{"99999d", `token lifetime "99999d" is out of range`},
	} {
		r := e.do(t, pki.RoleAdmin, "POST", "/api/v1/tokens", map[string]string{"name": "x", "role": "auditor", "ttl": tc.ttl})
		if r.status != http.StatusUnprocessableEntity || !strings.Contains(errorOf(t, r), tc.want) {
			t.Errorf("ttl %q: %d %q, want 422 saying %q", tc.ttl, r.status, errorOf(t, r), tc.want)
		}
	}
}

// A token's or a console user's name takes ASCII letters only, and the
// refusal says so, as the EST user's does.
func TestNameRuleSaysASCIILetters(t *testing.T) {
	e := newEnv(t)
	const want = "use 1 to 64 ASCII letters (a-z, A-Z), digits and . _ @ -"
	for _, tc := range []struct {
		what, path string
		body       map[string]string
	}{
		{"token", "/api/v1/tokens", map[string]string{"name": "ünï", "role": "auditor"}},
		{"user", "/api/v1/users", map[string]string{"name": "ünï", "role": "auditor", "password": "correct horse battery staple"}},
	} {
		r := e.do(t, pki.RoleAdmin, "POST", tc.path, tc.body)
		if r.status != http.StatusUnprocessableEntity || !strings.Contains(errorOf(t, r), want) {
			t.Errorf("%s named ünï: %d %q, want 422 saying %q", tc.what, r.status, errorOf(t, r), want)
		}
	}
}
