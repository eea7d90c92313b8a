package console_test

import (
	"context"
	"crypto/x509"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/console"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/ops"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
)

// origin is the site the test browser talks to.
const origin = "https://console.test"

// env is a real CA, store, enrollment service, admin and auth services and
// the operations layer, wired as `scepter serve` wires them, with the
// console's routes on a ServeMux and one user per role.
type env struct {
	t       *testing.T
	pki     *fixture.PKI
	ops     *ops.Ops
	auth    *auth.Service
	handler http.Handler
	// passwords by user name; the user names are the roles.
	passwords map[string]string
}

var roles = []pki.Role{pki.RoleAdmin, pki.RoleOperator, pki.RoleAuditor}

// newEnv builds an env; more are profiles beside "default" and "held".
func newEnv(t *testing.T, opts console.Options, more ...pki.Profile) *env {
	t.Helper()
	def := pki.DefaultProfile()
	held := pki.DefaultProfile()
	held.Name, held.RequireApproval = "held", true
	profiles := map[string]pki.Profile{def.Name: def, held.Name: held}
	for _, m := range more {
		profiles[m.Name] = m
	}
	p := fixture.New(t, fixture.Options{Config: enroll.Config{Profiles: profiles, DefaultProfile: def.Name}})
	adm := admin.New(p.Store, p.Clock, p.Log, profiles, def.Name)
	au := auth.New(p.Store, p.Clock, p.Log)
	o := ops.New(ops.Config{Store: p.Store, Admin: adm, Enroll: p.Service, Auth: au, Authority: p.Authority, Clock: p.Clock, Log: p.Log})
	c, err := console.New(o, p.Log, opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for pattern, h := range c.Routes() {
		mux.Handle(pattern, h)
	}
	e := &env{t: t, pki: p, ops: o, auth: au, handler: mux, passwords: map[string]string{}}
	for _, r := range roles {
		pw := "password-of-" + string(r) + "-0123"
		if _, err := au.AddUser(context.Background(), string(r), r, pw, auth.CLI("test")); err != nil {
			t.Fatal(err)
		}
		e.passwords[string(r)] = pw
	}
	return e
}

// auditCount is how many records the audit trail holds.
func (e *env) auditCount() int64 {
	e.t.Helper()
	h, err := e.pki.Store.AuditHead(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return h.Count
}

// issue enrolls cn at the default profile.
func (e *env) issue(cn string) *x509.Certificate {
	e.t.Helper()
	c, _ := e.pki.Issue(e.t, cn)
	return c
}

// hold makes a request at the held profile wait for approval and returns
// its ID.
func (e *env) hold(cn string) string {
	e.t.Helper()
	ctx := context.Background()
	secret, _, err := e.ops.NewChallenge(ctx, auth.CLI("test"), admin.ChallengeSpec{TTL: time.Hour, Profile: "held"})
	if err != nil {
		e.t.Fatal(err)
	}
	req := e.pki.Request(e.t, cn)
	req.Profile, req.Evidence.Challenge, req.Protocol = "held", secret, pki.ProtocolSCEP
	res, err := e.pki.Service.Enroll(ctx, req.Request)
	if err != nil {
		e.t.Fatalf("enroll %s at held: %v", cn, err)
	}
	if res.Pending == nil {
		e.t.Fatalf("enroll %s at held: not held", cn)
	}
	return res.Pending.ID
}

func (e *env) record(c *x509.Certificate) pki.Certificate {
	e.t.Helper()
	d, err := e.ops.Certificate(context.Background(), auth.CLI("test"), c.SerialNumber.Text(16), "")
	if err != nil {
		e.t.Fatal(err)
	}
	return d.Record
}

func certPath(c *x509.Certificate) string {
	return "/ui/certificates/" + c.SerialNumber.Text(16)
}

// browser is a cookie jar and the headers a browser sends.
type browser struct {
	e       *env
	cookies map[string]*http.Cookie
}

func (e *env) browser() *browser { return &browser{e: e, cookies: map[string]*http.Cookie{}} }

// response is an answer, with its body read.
type response struct {
	*http.Response
	body string
}

func (r response) String() string {
	return r.Status + "\n" + r.body
}

// do sends a request as a browser on the console's own pages would: with
// its cookies and, for a POST, Origin and Sec-Fetch-Site of the console.
func (b *browser) do(method, path string, form url.Values, header http.Header) response {
	b.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, origin+path, body)
	r.RemoteAddr = "192.0.2.7:40000"
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if method == http.MethodPost {
		r.Header.Set("Origin", origin)
		r.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	for k, vs := range header {
		r.Header.Del(k)
		for _, v := range vs {
			if v != "" {
				r.Header.Add(k, v)
			}
		}
	}
	for _, c := range b.cookies {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	rec := httptest.NewRecorder()
	b.e.handler.ServeHTTP(rec, r)
	res := rec.Result()
	for _, c := range res.Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	bb, _ := io.ReadAll(res.Body)
	return response{Response: res, body: string(bb)}
}

func (b *browser) get(path string) response {
	b.e.t.Helper()
	return b.do(http.MethodGet, path, nil, nil)
}

// csrf is the session's token, as every form of its pages carries it.
func (b *browser) csrf() string {
	c := b.cookies[console.SessionCookie]
	if c == nil {
		return ""
	}
	return auth.CSRFToken(c.Value)
}

// post sends a form with the session's CSRF token.
func (b *browser) post(path string, form url.Values) response {
	b.e.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.csrf())
	}
	return b.do(http.MethodPost, path, form, nil)
}

// tryLogin fills in the login form.
func (b *browser) tryLogin(user, password string) response {
	b.e.t.Helper()
	page := b.get("/ui/login")
	if page.StatusCode != http.StatusOK {
		b.e.t.Fatalf("GET /ui/login: %s", page)
	}
	token := hiddenValue(b.e.t, page.body, "csrf")
	return b.do(http.MethodPost, "/ui/login", url.Values{"csrf": {token}, "username": {user}, "password": {password}}, nil)
}

// login logs in as one of the env's users.
func (b *browser) login(user string) *browser {
	b.e.t.Helper()
	res := b.tryLogin(user, b.e.passwords[user])
	if res.StatusCode != http.StatusSeeOther || b.cookies[console.SessionCookie] == nil {
		b.e.t.Fatalf("login as %s: %s", user, res)
	}
	return b
}

func (e *env) as(user string) *browser { return e.browser().login(user) }

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)">`)

// hiddenValue finds a hidden field of a form in a page.
func hiddenValue(t *testing.T, page, name string) string {
	t.Helper()
	for _, m := range hiddenRE.FindAllStringSubmatch(page, -1) {
		if m[1] == name {
			return html.UnescapeString(m[2])
		}
	}
	t.Fatalf("no hidden field %q in the page:\n%s", name, page)
	return ""
}

// href finds the link of the element with this id.
func href(t *testing.T, page, id string) string {
	t.Helper()
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `" href="([^"]*)"`).FindStringSubmatch(page)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

func expectStatus(t *testing.T, what string, r response, want int) {
	t.Helper()
	if r.StatusCode != want {
		t.Fatalf("%s: status %d, want %d\n%s", what, r.StatusCode, want, r.body)
	}
}

func expectBody(t *testing.T, what string, r response, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(r.body, s) {
			t.Errorf("%s: the page does not contain %q\n%s", what, s, r.body)
		}
	}
}

func expectNotBody(t *testing.T, what string, r response, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if strings.Contains(r.body, s) {
			t.Errorf("%s: the page contains %q", what, s)
		}
	}
}
