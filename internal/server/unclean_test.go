package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/api"
	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/console"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/ops"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/server"
	"github.com/scepter/scepter/internal/store"
)

// listeners are the real API and console over a real CA and store, mounted
// as `scepter serve` mounts them, on an HTTPS and a plain listener on
// 127.0.0.1, with an operator token.
type listeners struct {
	https, plain *httptest.Server
	token        string
	pki          *fixture.PKI
}

func newListeners(t *testing.T) *listeners {
	t.Helper()
	def := pki.DefaultProfile()
	profiles := map[string]pki.Profile{def.Name: def}
	p := fixture.New(t, fixture.Options{Config: enroll.Config{Profiles: profiles, DefaultProfile: def.Name}})
	au := auth.New(p.Store, p.Clock, p.Log)
	o := ops.New(ops.Config{Store: p.Store, Admin: admin.New(p.Store, p.Clock, p.Log, profiles, def.Name), Enroll: p.Service, Auth: au,
		Authority: p.Authority, Clock: p.Clock, Log: p.Log})
	c, err := console.New(o, p.Log, console.Options{})
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := au.NewToken(context.Background(), "ci", pki.RoleOperator, 0, auth.CLI("cli:test"))
	if err != nil {
		t.Fatal(err)
	}
	l := &listeners{token: token, pki: p}
	l.https = httptest.NewUnstartedServer(nil)
	l.plain = httptest.NewUnstartedServer(nil)
	_, port, _ := net.SplitHostPort(l.https.Listener.Addr().String())
	h := server.Handlers{API: api.New(o, p.Log), Console: c, HTTPSPort: port, HTTPSNames: []string{"127.0.0.1"}}
	if l.https.Config.Handler, err = server.TLSMux(h); err != nil {
		t.Fatal(err)
	}
	if l.plain.Config.Handler, err = server.PlainMux(h); err != nil {
		t.Fatal(err)
	}
	l.https.StartTLS()
	l.plain.Start()
	t.Cleanup(l.https.Close)
	t.Cleanup(l.plain.Close)
	return l
}

type answer struct {
	status int
	header http.Header
	body   string
}

// do sends a request with its path as given ("//", "/./", "/../" kept),
// following no redirect.
func do(t *testing.T, srv *httptest.Server, method, path, authorization, body string) answer {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.Opaque = "//" + u.Host + path // sent as it is, uncleaned
	req, err := http.NewRequest(method, srv.URL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.URL = u
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// apiError is the reason of an answer in the API's error shape; the test
// fails for any other.
func apiError(t *testing.T, a answer) string {
	t.Helper()
	var e struct {
		Error  *string `json:"error"`
		Detail any     `json:"detail"`
	}
	if !strings.HasPrefix(a.header.Get("Content-Type"), "application/json") || json.Unmarshal([]byte(a.body), &e) != nil || e.Error == nil {
		t.Fatalf("not the API's error shape: %s %q", a.header.Get("Content-Type"), a.body)
	}
	return *e.Error
}

// A path under /api/ or /ui/ with an empty, "." or ".." segment is not
// redirected by the mux to its cleaned form (a bare 307, with none of the
// API's or the console's headers, which a client follows with its token
// and its POST): the API answers its JSON 404, the console its 404 page,
// each with its headers, and nothing is done.
func TestConsoleAndAPIRefuseUncleanPaths(t *testing.T) {
	l := newListeners(t)
	cert, _ := l.pki.Issue(t, "unclean-1")
	serial := cert.SerialNumber.Text(16)
	bearer := "Bearer " + l.token

	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/api/v1/./whoami", ""},
		{"GET", "/api/v1/certificates//pem", ""},
		{"GET", "/api/v1/certificates/" + serial + "/./pem", ""},
		{"POST", "/api/v1/certificates/" + serial + "//revoke", `{"reason":"superseded"}`},
		{"POST", "/api/v1/x/../certificates/" + serial + "/revoke", `{"reason":"superseded"}`},
		{"GET", "/api/../ui/", ""},
		{"GET", "/api/v1/whoami/..", ""},
		// Escaped dots read as the literal ones: the same 404.
		{"GET", "/api/v1/%2e/whoami", ""},
		{"GET", "/api/v1/%2E%2e/v1/whoami", ""},
		{"POST", "/api/v1/certificates/" + serial + "/%2e/revoke", `{"reason":"superseded"}`},
	} {
		t.Run("HTTPS "+tc.method+" "+tc.path, func(t *testing.T) {
			a := do(t, l.https, tc.method, tc.path, bearer, tc.body)
			if a.status != http.StatusNotFound || a.header.Get("Location") != "" {
				t.Fatalf("%d, Location %q, %q; want 404, no redirect", a.status, a.header.Get("Location"), a.body)
			}
			if msg := apiError(t, a); !strings.Contains(msg, `a path with an empty, "." or ".." segment is not served`) {
				t.Errorf("reason %q", msg)
			}
			for k, v := range map[string]string{"Strict-Transport-Security": "max-age=31536000", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
				if a.header.Get(k) != v {
					t.Errorf("%s %q, want %q", k, a.header.Get(k), v)
				}
			}
		})
	}
	if a := do(t, l.https, "GET", "/api/v1/certificates/"+serial, bearer, ""); a.status != 200 || !strings.Contains(a.body, `"status": "valid"`) {
		t.Errorf("after the unclean revocations: %d %s", a.status, a.body)
	}
	if a := do(t, l.https, "GET", "/api/v1/whoami", bearer, ""); a.status != 200 {
		t.Errorf("a clean path: %d %s", a.status, a.body)
	}

	for _, path := range []string{"/ui/static/../login", "/ui//certificates", "/ui/./", "/ui/../api/v1/whoami", "/ui/%2e%2e/api/v1/whoami"} {
		t.Run("HTTPS GET "+path, func(t *testing.T) {
			a := do(t, l.https, "GET", path, "", "")
			if a.status != http.StatusNotFound || a.header.Get("Location") != "" || !strings.Contains(a.header.Get("Content-Type"), "text/html") ||
				!strings.Contains(a.body, "is not served, nor redirected to its cleaned form") {
				t.Fatalf("%d, Location %q, %s %q; want the console's 404 page", a.status, a.header.Get("Location"), a.header.Get("Content-Type"), a.body)
			}
			csp := a.header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "frame-ancestors 'none'") {
				t.Errorf("Content-Security-Policy %q", csp)
			}
			for k, v := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
				"Strict-Transport-Security": "max-age=31536000"} {
				if a.header.Get(k) != v {
					t.Errorf("%s %q, want %q", k, a.header.Get(k), v)
				}
			}
		})
	}
	if a := do(t, l.https, "GET", "/ui/login", "", ""); a.status != 200 {
		t.Errorf("a clean path: %d", a.status)
	}

	// The plain listener redirects no unclean path either: it would lead
	// the client to the cleaned path, elsewhere.
	for _, tc := range []struct {
		path string
		json bool
	}{{"/ui/static/../login", false}, {"/ui//x", false}, {"/ui/../scep", false}, {"/api/v1/./whoami", true}, {"/api/../.well-known/est/cacerts", true},
		{"/api/v1/%2e/whoami", true}, {"/ui/%2E%2E/scep", false}} {
		t.Run("plain GET "+tc.path, func(t *testing.T) {
			a := do(t, l.plain, "GET", tc.path, "", "")
			if a.status != http.StatusNotFound || a.header.Get("Location") != "" || !strings.Contains(a.body, "is not served, nor redirected") ||
				!strings.Contains(a.body, l.https.URL+"/") {
				t.Fatalf("%d, Location %q, %q; want 404 naming the HTTPS listener", a.status, a.header.Get("Location"), a.body)
			}
			if tc.json {
				apiError(t, a)
			}
		})
	}
}

// An API request carrying an Authorization header to the plain listener
// is refused whatever its method, not redirected (a client following the
// redirect sends its token again), and told that its token crossed the
// network in the clear, as EST says of its credentials. A request without
// one is redirected (a GET) or refused (anything else) as before.
func TestAPITokenOnPlainHTTP(t *testing.T) {
	l := newListeners(t)
	for _, tc := range []struct{ method, path, authorization, body string }{
		{"GET", "/api/v1/whoami", "Bearer " + l.token, ""},
		{"HEAD", "/api/v1/whoami", "Bearer " + l.token, ""},
		{"POST", "/api/v1/tokens", "Bearer x", `{"name":"x","role":"admin"}`},
		{"GET", "/api/v1/./whoami", "Bearer " + l.token, ""},
		{"GET", "/api/v1/whoami", "Basic eDp5", ""},
	} {
		t.Run(tc.method+" "+tc.path+" "+tc.authorization[:5], func(t *testing.T) {
			a := do(t, l.plain, tc.method, tc.path, tc.authorization, tc.body)
			if a.status != http.StatusForbidden || a.header.Get("Location") != "" {
				t.Fatalf("%d, Location %q, %q; want 403, no redirect", a.status, a.header.Get("Location"), a.body)
			}
			if tc.method == "HEAD" {
				return
			}
			msg := apiError(t, a)
			for _, want := range []string{"served over HTTPS only: " + l.https.URL + "/api/v1/", "crossed the network in the clear",
				"scepter admin token revoke NAME"} {
				if !strings.Contains(msg, want) {
					t.Errorf("%q lacks %q", msg, want)
				}
			}
		})
	}
	if a := do(t, l.plain, "GET", "/api/v1/whoami", "", ""); a.status != http.StatusMovedPermanently || a.header.Get("Location") != l.https.URL+"/api/v1/whoami" {
		t.Errorf("GET without a token: %d, Location %q", a.status, a.header.Get("Location"))
	}
	a := do(t, l.plain, "POST", "/api/v1/challenges", "", "{}")
	if a.status != http.StatusForbidden || a.header.Get("Location") != "" {
		t.Errorf("POST without a token: %d, Location %q", a.status, a.header.Get("Location"))
	}
	if msg := apiError(t, a); !strings.Contains(msg, "served over HTTPS only: "+l.https.URL+"/api/v1/challenges") || strings.Contains(msg, "clear") {
		t.Errorf("POST without a token: %q", msg)
	}
	// The console's GET is redirected even with a header (a browser sends
	// its session cookie, Secure, over HTTPS only).
	if a := do(t, l.plain, "GET", "/ui/", "Basic eDp5", ""); a.status != http.StatusMovedPermanently {
		t.Errorf("GET /ui/: %d", a.status)
	}

	// The operator learns of it too, not only the client: the token sent
	// in clear is logged and audited by name, once a minute per token and
	// address (three requests above carried it: the first is recorded, the
	// next ones counted by the next record); "Bearer x", no token, is not
	// recorded.
	sentInClear := func() []pki.AuditEvent {
		t.Helper()
		evs, err := l.pki.Store.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventTokenSentInClear, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	evs := sentInClear()
	if len(evs) != 1 || !strings.Contains(evs[0].Detail, "(ci), live") || evs[0].Actor != "http:127.0.0.1" ||
		!strings.Contains(evs[0].Reason, "1 request since this server's last such record of it, or its start; revoke it unless this was a test") {
		t.Fatalf("token.sent_in_clear records: %+v, want one naming the token ci", evs)
	}
	do(t, l.plain, "GET", "/api/v1/whoami", "Bearer "+l.token, "")
	l.pki.Clock.Advance(time.Minute)
	do(t, l.plain, "GET", "/api/v1/whoami", "Bearer "+l.token, "")
	if evs := sentInClear(); len(evs) != 2 || !strings.Contains(evs[0].Reason, "4 requests since this server's last such record of it") {
		t.Fatalf("token.sent_in_clear records a minute later: %+v, want a second counting 4 requests", evs)
	}

	// Without an HTTPS listener there is no API: 404, which still says
	// the token crossed in clear.
	noTLS, err := server.PlainMux(server.Handlers{})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/api/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+l.token)
	rec := httptest.NewRecorder()
	noTLS.ServeHTTP(rec, req)
	if msg := apiError(t, answer{rec.Code, rec.Header(), rec.Body.String()}); rec.Code != 404 || !strings.Contains(msg, "--est-listen is off") ||
		!strings.Contains(msg, "crossed the network in the clear") {
		t.Errorf("no HTTPS listener: %d %q", rec.Code, msg)
	}
}

// A token sent to the plain listener in another form than "Bearer" (as
// Basic's password or user name, bare without a scheme, under another
// scheme) crossed the network in clear as much: refused 403 as the bearer
// one is, and recorded and counted as it is (r97 D4: only "Bearer" was
// looked up, so the next record counted 1 request, not all of them). So
// is a token sent to the console's paths: such a GET is refused, not
// redirected, and told so; a console GET with another Authorization
// header, or none, is still redirected. The secret is in no record.
func TestTokenInOtherFormsOnPlainHTTP(t *testing.T) {
	l := newListeners(t)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct{ method, path, authorization string }{
		{"GET", "/api/v1/whoami", "Basic " + b64("x:"+l.token)},
		{"GET", "/api/v1/whoami", "Basic " + b64(l.token+":")},
		{"GET", "/api/v1/whoami", l.token},
		{"POST", "/api/v1/challenges", "Token " + l.token},
		{"GET", "/ui/certificates", "Bearer " + l.token},
		{"POST", "/ui/requests/x/reject", "bearer  " + l.token},
	} {
		a := do(t, l.plain, tc.method, tc.path, tc.authorization, "")
		if a.status != http.StatusForbidden || a.header.Get("Location") != "" || !strings.Contains(a.body, "crossed the network in the clear") {
			t.Errorf("%s %s, Authorization %.12s…: %d, Location %q, %q; want 403 saying the token crossed in clear",
				tc.method, tc.path, tc.authorization, a.status, a.header.Get("Location"), a.body)
		}
		if strings.Contains(a.body, l.token) {
			t.Errorf("%s %s: the answer holds the token", tc.method, tc.path)
		}
	}
	if a := do(t, l.plain, "GET", "/ui/certificates", "Bearer x", ""); a.status != http.StatusMovedPermanently {
		t.Errorf("GET /ui/ with no token in its Authorization header: %d, want the redirect", a.status)
	}
	if a := do(t, l.plain, "GET", "/ui/certificates", "", ""); a.status != http.StatusMovedPermanently {
		t.Errorf("GET /ui/ without an Authorization header: %d, want the redirect", a.status)
	}

	sentInClear := func() []pki.AuditEvent {
		t.Helper()
		evs, err := l.pki.Store.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventTokenSentInClear, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	evs := sentInClear()
	if len(evs) != 1 || !strings.Contains(evs[0].Detail, "(ci), live") || !strings.Contains(evs[0].Reason, "1 request since") {
		t.Fatalf("token.sent_in_clear records: %+v, want one naming the token ci", evs)
	}
	l.pki.Clock.Advance(time.Minute)
	do(t, l.plain, "GET", "/api/v1/whoami", "Basic "+b64("x:"+l.token), "")
	evs = sentInClear()
	if len(evs) != 2 || !strings.Contains(evs[0].Reason, "6 requests since this server's last such record of it") {
		t.Fatalf("token.sent_in_clear records a minute later: %+v, want a second counting 6 requests", evs)
	}
	for _, ev := range evs {
		if strings.Contains(ev.Reason+ev.Detail+ev.Actor, strings.TrimPrefix(l.token, auth.TokenPrefix)) {
			t.Errorf("a record holds the secret: %+v", ev)
		}
	}
}
