package console_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/scepter/scepter/internal/console"
)

// TestLoginNextStaysInTheConsole: the page a login goes on to is one of
// the console's, as given; a target whose path cleaning would move it
// (out of /ui/, or to another page of it) is the dashboard (r81 D7).
func TestLoginNextStaysInTheConsole(t *testing.T) {
	e := newEnv(t, console.Options{})
	for _, tc := range []struct{ next, want string }{
		{"/ui/cas", "/ui/cas"},
		{"/ui/certificates?q=a%2F..%2F..&status=valid", "/ui/certificates?q=a%2F..%2F..&status=valid"},
		{"/ui/audit?type=x", "/ui/audit?type=x"},
		{"/ui/certificates/0a?issuer=ab", "/ui/certificates/0a?issuer=ab"},
		{"/ui/../../evil", "/ui/"},
		{"/ui/..", "/ui/"},
		{"/ui//evil.example", "/ui/"},
		{"/ui//evil.example/x", "/ui/"},
		{"/ui/./cas", "/ui/"},
		{"/ui/cas/.", "/ui/"},
		{"/ui/certificates/../../evil?x=1", "/ui/"},
		{"/ui/%2e%2e/evil", "/ui/"},
		{"/ui/%2E%2E/%2E%2E/evil", "/ui/"},
		{"/ui/.%2e/evil", "/ui/"},
		{"/ui/%2F%2Fevil.example", "/ui/"},
		{"/ui/%2F/evil.example", "/ui/"},
		{"/ui/%5Cevil", "/ui/"},
		{"/ui/%5C%5Cevil.example", "/ui/"},
		{"/ui/#/../../evil", "/ui/"},
		{"/ui/%6cogin", "/ui/"},
	} {
		b := e.browser()
		tok := hiddenValue(t, b.get("/ui/login?next="+url.QueryEscape(tc.next)).body, "csrf")
		res := b.do(http.MethodPost, "/ui/login", url.Values{"csrf": {tok}, "username": {"auditor"}, "password": {e.passwords["auditor"]}, "next": {tc.next}}, nil)
		expectStatus(t, "login with next="+tc.next, res, http.StatusSeeOther)
		if loc := res.Header.Get("Location"); loc != tc.want {
			t.Errorf("login with next=%q: Location %q, want %q", tc.next, loc, tc.want)
		}
		// The login page, to a person logged in, goes on alike.
		res = b.get("/ui/login?next=" + url.QueryEscape(tc.next))
		expectStatus(t, "GET /ui/login?next="+tc.next+" logged in", res, http.StatusSeeOther)
		if loc := res.Header.Get("Location"); loc != tc.want {
			t.Errorf("GET /ui/login?next=%q logged in: Location %q, want %q", tc.next, loc, tc.want)
		}
	}
}
