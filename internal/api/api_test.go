package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/api"
	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/ops"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/store"
)

// env is an API over a real CA, store and enrollment service, with one
// token per role.
type env struct {
	*fixture.PKI
	srv    *httptest.Server
	h      *api.Handler
	tokens map[pki.Role]string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvWith(t)
}

// newEnvWith is newEnv with more profiles beside "default" and "approval".
func newEnvWith(t testing.TB, more ...pki.Profile) *env {
	t.Helper()
	approval := pki.DefaultProfile()
	approval.Name, approval.RequireApproval = "approval", true
	configured := map[string]pki.Profile{"default": pki.DefaultProfile(), "approval": approval}
	for _, m := range more {
		configured[m.Name] = m
	}
	p := fixture.New(t, fixture.Options{Config: enroll.Config{DefaultProfile: "default", Profiles: configured}})
	profiles, def := p.Service.Profiles()
	au := auth.New(p.Store, p.Clock, p.Log)
	o := ops.New(ops.Config{Store: p.Store, Admin: admin.New(p.Store, p.Clock, p.Log, profiles, def), Enroll: p.Service, Auth: au,
		Authority: p.Authority, Clock: p.Clock, Log: p.Log})
	h := api.New(o, p.Log)
	mux := http.NewServeMux()
	for pattern, handler := range h.Routes() {
		mux.Handle(pattern, handler)
	}
	e := &env{PKI: p, srv: httptest.NewServer(mux), h: h, tokens: map[pki.Role]string{}}
	t.Cleanup(e.srv.Close)
	for _, r := range []pki.Role{pki.RoleAuditor, pki.RoleOperator, pki.RoleAdmin} {
		secret, _, err := au.NewToken(context.Background(), "t-"+string(r), r, 0, auth.CLI("cli:test"))
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[r] = secret
	}
	return e
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("reply is not JSON: %v\n%s", err, r.body)
	}
}

func (e *env) do(t testing.TB, role pki.Role, method, path string, body any) reply {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok, ok := e.tokens[role]; ok {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, b}
}

// heldRequest makes a request held for approval and returns its ID.
func (e *env) heldRequest(t *testing.T, cn string) string {
	t.Helper()
	req := e.Request(t, cn)
	req.Profile = "approval"
	otp, _, err := admin.New(e.Store, e.Clock, e.Log, map[string]pki.Profile{"approval": {}}, "approval").NewChallenge(context.Background(), time.Hour, "approval", "test")
	if err != nil {
		t.Fatal(err)
	}
	req.Evidence.Challenge = otp
	res, err := e.Service.Enroll(context.Background(), req.Request)
	if err != nil || res.Pending == nil {
		t.Fatalf("not held: %v", err)
	}
	return res.Pending.ID
}

// TestRoles: every route, for every role and without a token. A role below
// the route's gets 403 and changes nothing; its role or above succeeds.
func TestRoles(t *testing.T) {
	e := newEnv(t)
	var n atomic.Int64
	uniq := func(s string) string { return fmt.Sprintf("%s-%d", s, n.Add(1)) }
	cases := []struct {
		method string
		need   pki.Role
		want   int
		// prepare returns the path and body of one call (fresh objects for
		// calls that change something).
		prepare func() (string, any)
	}{
		{"GET", pki.RoleAuditor, 200, func() (string, any) { return "/api/v1/whoami", nil }},
		{"GET", pki.RoleAuditor, 200, func() (string, any) { return "/api/v1/certificates", nil }},
		{"GET", pki.RoleAuditor, 200, func() (string, any) {
			c, _ := e.Issue(t, uniq("get"))
			return "/api/v1/certificates/" + c.SerialNumber.Text(16), nil
		}},
		{"GET", pki.RoleAuditor, 200, func() (string, any) {
			c, _ := e.Issue(t, uniq("pem"))
			return "/api/v1/certificates/" + c.SerialNumber.Text(16) + "/pem", nil
		}},
		{"GET", pki.RoleAuditor, 200, func() (string, any) {
			c, _ := e.Issue(t, uniq("der"))
			return "/api/v1/certificates/" + c.SerialNumber.Text(16) + "/der", nil
		}},
		{"GET", pki.RoleAuditor, 200, func() (string, any) {
			c, _ := e.Issue(t, uniq("chain"))
			return "/api/v1/certificates/" + c.SerialNumber.Text(16) + "/chain", nil
		}},
		{"POST", pki.RoleOperator, 200, func() (string, any) {
			c, _ := e.Issue(t, uniq("revoke"))
			return "/api/v1/certificates/" + c.SerialNumber.Text(16) + "/revoke", map[string]string{"reason": "keyCompromise"}
		}},
		{"POST", pki.RoleOperator, 200, func() (string, any) {
			c, _ := e.Issue(t, uniq("hold"))
			e.Revoke(t, c, 6)
			return "/api/v1/certificates/" + c.SerialNumber.Text(16) + "/unhold", map[string]string{}
		}},
		{"GET", pki.RoleAuditor, 200, func() (string, any) { return "/api/v1/requests?status=all", nil }},
		{"POST", pki.RoleOperator, 200, func() (string, any) { return "/api/v1/requests/" + e.heldRequest(t, uniq("approve")) + "/approve", nil }},
		{"POST", pki.RoleOperator, 200, func() (string, any) {
			return "/api/v1/requests/" + e.heldRequest(t, uniq("reject")) + "/reject", map[string]string{"reason": "unknown device"}
		}},
		{"GET", pki.RoleAuditor, 200, func() (string, any) { return "/api/v1/challenges", nil }},
		{"POST", pki.RoleOperator, 201, func() (string, any) { return "/api/v1/challenges", map[string]any{"ttl": "1h", "profile": "default"} }},
		{"DELETE", pki.RoleOperator, 204, func() (string, any) {
			_, ch, err := admin.New(e.Store, e.Clock, e.Log, map[string]pki.Profile{"default": {}}, "default").NewChallenge(context.Background(), time.Hour, "", "test")
			if err != nil {
				t.Fatal(err)
			}
			return "/api/v1/challenges/" + ch.ID, nil
		}},
		{"GET", pki.RoleAuditor, 200, func() (string, any) { return "/api/v1/audit?limit=5", nil }},
		{"GET", pki.RoleAuditor, 200, func() (string, any) { return "/api/v1/audit/verify", nil }},
		{"GET", pki.RoleAuditor, 200, func() (string, any) { return "/api/v1/cas", nil }},
		{"GET", pki.RoleAuditor, 200, func() (string, any) { return "/api/v1/profiles", nil }},
		{"GET", pki.RoleAuditor, 200, func() (string, any) { return "/api/v1/dashboard?days=7", nil }},
		{"GET", pki.RoleAuditor, 200, func() (string, any) { return "/api/v1/est-users", nil }},
		{"POST", pki.RoleAdmin, 201, func() (string, any) {
			return "/api/v1/est-users", map[string]string{"name": uniq("router"), "password": "correct horse battery"}
		}},
		{"DELETE", pki.RoleAdmin, 204, func() (string, any) {
			name := uniq("gone")
			if _, err := admin.New(e.Store, e.Clock, e.Log, nil, "").AddESTUser(context.Background(), name, "correct horse battery", "", "test"); err != nil {
				t.Fatal(err)
			}
			return "/api/v1/est-users/" + name, nil
		}},
		{"GET", pki.RoleAdmin, 200, func() (string, any) { return "/api/v1/tokens", nil }},
		{"POST", pki.RoleAdmin, 201, func() (string, any) {
			return "/api/v1/tokens", map[string]string{"name": uniq("tok"), "role": "auditor", "ttl": "30d"}
		}},
		{"DELETE", pki.RoleAdmin, 204, func() (string, any) {
			_, tok, err := auth.New(e.Store, e.Clock, nil).NewToken(context.Background(), uniq("old"), pki.RoleAuditor, 0, auth.CLI("test"))
			if err != nil {
				t.Fatal(err)
			}
			return "/api/v1/tokens/" + tok.ID, nil
		}},
		{"GET", pki.RoleAdmin, 200, func() (string, any) { return "/api/v1/users", nil }},
		{"POST", pki.RoleAdmin, 201, func() (string, any) {
			return "/api/v1/users", map[string]string{"name": uniq("dana"), "role": "operator", "password": "a long enough password"}
		}},
		{"DELETE", pki.RoleAdmin, 204, func() (string, any) {
			name := uniq("eve")
			if _, err := auth.New(e.Store, e.Clock, nil).AddUser(context.Background(), name, pki.RoleAuditor, "a long enough password", auth.CLI("test")); err != nil {
				t.Fatal(err)
			}
			return "/api/v1/users/" + name, nil
		}},
	}
	roles := []pki.Role{"", pki.RoleAuditor, pki.RoleOperator, pki.RoleAdmin}
	covered := map[string]bool{}
	for _, c := range cases {
		for _, role := range roles {
			path, body := c.prepare()
			pattern := routeOf(path)
			covered[c.method+" "+pattern] = true
			before := auditCount(t, e)
			r := e.do(t, role, c.method, path, body)
			want := c.want
			switch {
			case role == "":
				want = http.StatusUnauthorized
			case !role.Allows(c.need):
				want = http.StatusForbidden
			}
			if r.status != want {
				t.Errorf("%s %s as %q: %d, want %d\n%s", c.method, path, role, r.status, want, r.body)
				continue
			}
			if want >= 400 {
				var eb struct {
					Error string `json:"error"`
				}
				r.json(t, &eb)
				if eb.Error == "" {
					t.Errorf("%s %s as %q: error body without a message: %s", c.method, path, role, r.body)
				}
				// A change refused by role is one action.refused event, and
				// nothing else; a read refused so, or a call without a
				// token, writes none.
				wantEvents := int64(0)
				if want == http.StatusForbidden && c.method != "GET" {
					wantEvents = 1
					checkRoleRefusal(t, e, "api:t-"+string(role), c.method+" "+path, role, c.need)
				}
				if after := auditCount(t, e); after-before != wantEvents {
					t.Errorf("%s %s as %q: a refused call wrote %d audit events, want %d", c.method, path, role, after-before, wantEvents)
				}
			}
		}
	}
	// Every route of the API is in this table.
	for _, op := range openAPIOps(t, e) {
		if !covered[op] {
			t.Errorf("route %s is not tested for every role", op)
		}
	}
}

// checkRoleRefusal checks the newest audit event: the action.refused of
// actor, refused action (method and path) for want its role.
func checkRoleRefusal(t *testing.T, e *env, actor, action string, role, need pki.Role) {
	t.Helper()
	evs, err := e.Store.ListAudit(context.Background(), store.AuditFilter{Limit: 1})
	if err != nil || len(evs) != 1 {
		t.Fatalf("newest audit event: %v %v", evs, err)
	}
	ev := evs[0]
	wantReason := fmt.Sprintf("token %q has role %s; this needs %s", "t-"+string(role), role, need)
	if ev.Type != pki.EventActionRefused || ev.Actor != actor || ev.Outcome != "failure" || ev.Reason != wantReason || ev.Detail != action {
		t.Errorf("%s as %q: audited %+v, want %s by %s, reason %q, detail %q", action, role, ev, pki.EventActionRefused, actor, wantReason, action)
	}
}

// routeOf turns a concrete path into its route pattern, for coverage.
func routeOf(path string) string {
	path, _, _ = strings.Cut(path, "?")
	parts := strings.Split(path, "/")
	if len(parts) > 4 {
		switch parts[3] {
		case "certificates":
			parts[4] = "{serial}"
		case "requests", "challenges", "tokens":
			parts[4] = "{id}"
		case "est-users", "users":
			parts[4] = "{name}"
		}
	}
	return strings.Join(parts, "/")
}

func auditCount(t *testing.T, e *env) int64 {
	t.Helper()
	h, err := e.Store.AuditHead(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h.Count
}

// openAPIOps lists "METHOD /path" of every operation the description has.
func openAPIOps(t *testing.T, e *env) []string {
	t.Helper()
	r := e.do(t, "", "GET", "/api/v1/openapi.json", nil)
	if r.status != 200 {
		t.Fatalf("openapi.json: %d", r.status)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	r.json(t, &doc)
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	var out []string
	for path, ops := range doc.Paths {
		for method := range ops {
			out = append(out, strings.ToUpper(method)+" "+path)
		}
	}
	return out
}

// openAPIResponses maps "METHOD /path" of every documented operation to
// its answers: status to the names of the headers documented with it.
func openAPIResponses(t *testing.T, e *env) map[string]map[string][]string {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]struct {
				Headers map[string]json.RawMessage `json:"headers"`
			} `json:"responses"`
		} `json:"paths"`
	}
	e.do(t, "", "GET", "/api/v1/openapi.json", nil).json(t, &doc)
	out := map[string]map[string][]string{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			answers := map[string][]string{}
			for status, r := range op.Responses {
				answers[status] = slices.Sorted(maps.Keys(r.Headers))
			}
			out[strings.ToUpper(method)+" "+path] = answers
		}
	}
	return out
}

// checkDocumented fails t unless op's description lists r's status, with
// each of the headers named that r carries.
func checkDocumented(t *testing.T, responses map[string]map[string][]string, op string, r reply, headers ...string) {
	t.Helper()
	documented, ok := responses[op][strconv.Itoa(r.status)]
	if !ok {
		t.Errorf("%s answers %d, which its OpenAPI description leaves out\n%s", op, r.status, r.body)
		return
	}
	for _, h := range headers {
		if r.header.Get(h) == "" {
			t.Errorf("%s answers %d without %s", op, r.status, h)
		}
		if !slices.Contains(documented, h) {
			t.Errorf("%s: its OpenAPI description of %d leaves out the %s header", op, r.status, h)
		}
	}
}

// The OpenAPI description and the real routes agree: every documented
// operation is answered by a route (not the 404 catch-all), every route is
// documented, every answer the server gives is among the operation's
// documented responses (another method of its path: 405 with Allow), and
// every schema reference resolves.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t)
	responses := openAPIResponses(t, e)
	documented := map[string]bool{}
	methodsOf := map[string][]string{} // path: its documented methods
	for _, op := range openAPIOps(t, e) {
		documented[op] = true
		method, path, _ := strings.Cut(op, " ")
		methodsOf[path] = append(methodsOf[path], method)
		concrete := strings.NewReplacer("{serial}", "ab12", "{id}", "x", "{name}", "x").Replace(path)
		r := e.do(t, pki.RoleAdmin, method, concrete, nil)
		checkDocumented(t, responses, op, r)
		if r.status == http.StatusNotFound || r.status == http.StatusMethodNotAllowed {
			var eb struct{ Error string }
			json.Unmarshal(r.body, &eb)
			if strings.HasPrefix(eb.Error, "no such API route") || r.status == http.StatusMethodNotAllowed {
				t.Errorf("documented %s is not a route: %d %s", op, r.status, r.body)
			}
		}
	}
	for path, methods := range methodsOf {
		concrete := strings.NewReplacer("{serial}", "ab12", "{id}", "x", "{name}", "x").Replace(path)
		r := e.do(t, pki.RoleAdmin, "PATCH", concrete, nil) // no route takes PATCH
		if r.status != http.StatusMethodNotAllowed {
			t.Errorf("PATCH %s: %d, want 405\n%s", path, r.status, r.body)
		}
		for _, method := range methods {
			checkDocumented(t, responses, method+" "+path, r, "Allow")
		}
	}
	for pattern := range e.h.Routes() {
		method, path, ok := strings.Cut(pattern, " ")
		if !ok || path == "/api/v1/openapi.json" {
			continue // the catch-all, and the description itself
		}
		if !documented[method+" "+path] {
			t.Errorf("route %s is not documented", pattern)
		}
	}
	raw := e.do(t, "", "GET", "/api/v1/openapi.json", nil).body
	var doc struct {
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	json.Unmarshal(raw, &doc)
	for _, m := range strings.Split(string(raw), `"$ref": "#/components/schemas/`)[1:] {
		name, _, _ := strings.Cut(m, `"`)
		if _, ok := doc.Components.Schemas[name]; !ok {
			t.Errorf("$ref to undefined schema %s", name)
		}
	}
}

// A store that cannot write is answered 503 with Retry-After, and the
// description says so of every operation: any of them may find the store
// out of reach.
func TestOpenAPIDocumentsUnavailableStore(t *testing.T) {
	e := newEnv(t)
	responses := openAPIResponses(t, e)
	db := filepath.Join(e.Dir, "scepter.db")
	if err := os.Rename(db, db+".away"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Rename(db+".away", db) })
	r := e.do(t, pki.RoleOperator, "POST", "/api/v1/challenges", `{"ttl":"1h"}`)
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("a challenge with the database file gone: %d, want 503\n%s", r.status, r.body)
	}
	for op := range responses {
		checkDocumented(t, responses, op, r, "Retry-After")
	}
}

// Bad input gets a 4xx with a reason and changes nothing.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	c, _ := e.Issue(t, "victim")
	serial := c.SerialNumber.Text(16)
	huge := `{"reason": "` + strings.Repeat("a", api.MaxBodyBytes) + `"}`
	cases := []struct {
		name         string
		method, path string
		body         any
		want         int
	}{
		{"unknown field", "POST", "/api/v1/certificates/" + serial + "/revoke", `{"reason":"keyCompromise","force":true}`, 400},
		{"wrong type", "POST", "/api/v1/certificates/" + serial + "/revoke", `{"reason":7}`, 400},
		{"not JSON", "POST", "/api/v1/certificates/" + serial + "/revoke", `reason=keyCompromise`, 400},
		{"two objects", "POST", "/api/v1/certificates/" + serial + "/revoke", `{"reason":"superseded"}{"reason":"keyCompromise"}`, 400},
		{"an array", "POST", "/api/v1/challenges", `[]`, 400},
		{"empty body", "POST", "/api/v1/challenges", ``, 400},
		{"oversized body", "POST", "/api/v1/certificates/" + serial + "/revoke", huge, 413},
		{"unknown reason", "POST", "/api/v1/certificates/" + serial + "/revoke", `{"reason":"compromised"}`, 422},
		{"a signed reason code", "POST", "/api/v1/certificates/" + serial + "/revoke", `{"reason":"+1"}`, 422},
		{"a reason code with a space", "POST", "/api/v1/certificates/" + serial + "/revoke", `{"reason":" 1"}`, 422},
		{"removeFromCRL is no reason to revoke", "POST", "/api/v1/certificates/" + serial + "/revoke", `{"reason":"removeFromCRL"}`, 422},
		{"bad serial", "GET", "/api/v1/certificates/not-hex", nil, 422},
		{"unknown serial", "GET", "/api/v1/certificates/abcdef", nil, 404},
		{"unknown query parameter", "GET", "/api/v1/certificates?stauts=valid", nil, 400},
		{"repeated query parameter", "GET", "/api/v1/certificates?limit=1&limit=2", nil, 400},
		{"a semicolon in the query", "GET", "/api/v1/certificates?status=revoked;", nil, 400},
		{"a semicolon on a change", "POST", "/api/v1/challenges?dry_run=1;", `{"profile":"default"}`, 400},
		{"a bad escape in the query", "GET", "/api/v1/certificates?status=%zz", nil, 400},
		{"absurd limit", "GET", "/api/v1/certificates?limit=1000000", nil, 422},
		{"negative limit", "GET", "/api/v1/certificates?limit=-1", nil, 422},
		{"bad status", "GET", "/api/v1/certificates?status=deleted", nil, 422},
		{"bad duration", "GET", "/api/v1/certificates?expiring_within=soon", nil, 422},
		{"zero duration", "GET", "/api/v1/certificates?expiring_within=0d", nil, 422},
		{"a field twice", "POST", "/api/v1/tokens", `{"name":"x","role":"auditor","role":"admin"}`, 400},
		{"a field in another case", "POST", "/api/v1/tokens", `{"name":"x","role":"auditor","ROLE":"admin"}`, 400},
		{"a field only in another case", "POST", "/api/v1/tokens", `{"NAME":"x","role":"auditor"}`, 400},
		{"a nested field twice", "POST", "/api/v1/challenges", `{"dns":[{"a":1,"a":2}]}`, 400},
		{"bad time", "GET", "/api/v1/certificates?issued_after=yesterday", nil, 422},
		{"forged cursor", "GET", "/api/v1/certificates?cursor=bm9wZQ", nil, 422},
		{"NUL in the search text", "GET", "/api/v1/certificates?q=zzz%00", nil, 422},
		{"a line break in the search text", "GET", "/api/v1/certificates?q=ab%0Acd", nil, 422},
		{"search text not UTF-8", "GET", "/api/v1/certificates?q=%ff", nil, 422},
		{"search text in Latin-1", "GET", "/api/v1/certificates?q=caf%e9", nil, 422},
		{"null for a body", "POST", "/api/v1/certificates/" + serial + "/revoke", `null`, 400},
		{"a string for a body", "POST", "/api/v1/certificates/" + serial + "/revoke", `"keyCompromise"`, 400},
		{"unknown query parameter on a write", "POST", "/api/v1/challenges?dry_run=1", `{}`, 400},
		{"unknown query parameter on an approval", "POST", "/api/v1/requests/none/approve?dry_run=1", nil, 400},
		{"unknown query parameter on a delete", "DELETE", "/api/v1/challenges/none?dry_run=1", nil, 400},
		{"query parameter on a route that takes none", "GET", "/api/v1/whoami?x=1", nil, 400},
		{"challenge for an unknown profile", "POST", "/api/v1/challenges", `{"profile":"nope"}`, 422},
		{"challenge ttl absurd", "POST", "/api/v1/challenges", `{"ttl":"9999d"}`, 422},
		{"challenge ttl garbage", "POST", "/api/v1/challenges", `{"ttl":"forever"}`, 422},
		{"challenge bound to 65 names", "POST", "/api/v1/challenges", `{"dns":["` + strings.TrimSuffix(strings.Repeat(`d.corp","`, 65), `","`) + `"]}`, 422},
		{"token with an unknown role", "POST", "/api/v1/tokens", `{"name":"x","role":"root"}`, 422},
		{"token that expires before it is used", "POST", "/api/v1/tokens", `{"name":"x","role":"auditor","ttl":"1ns"}`, 422},
		{"token ttl 0s (only \"\" or \"0\" mean no expiry)", "POST", "/api/v1/tokens", `{"name":"x","role":"admin","ttl":"0s"}`, 422},
		{"token ttl 0d (a script's ${DAYS}d with DAYS=0)", "POST", "/api/v1/tokens", `{"name":"x","role":"admin","ttl":"0d"}`, 422},
		{"token ttl garbage", "POST", "/api/v1/tokens", `{"name":"x","role":"admin","ttl":"forever"}`, 422},
		{"token ttl too short", "POST", "/api/v1/tokens", `{"name":"x","role":"admin","ttl":"1s"}`, 422},
		{"token ttl negative", "POST", "/api/v1/tokens", `{"name":"x","role":"admin","ttl":"-1h"}`, 422},
		{"token ttl over 10 years, in days", "POST", "/api/v1/tokens", `{"name":"x","role":"admin","ttl":"100000d"}`, 422},
		{"token ttl over 10 years, in hours", "POST", "/api/v1/tokens", `{"name":"x","role":"admin","ttl":"3000000h"}`, 422},
		{"token ttl too long for a duration", "POST", "/api/v1/tokens", `{"name":"x","role":"admin","ttl":"9999999999h"}`, 422},
		{"token ttl negative days", "POST", "/api/v1/tokens", `{"name":"x","role":"admin","ttl":"-5d"}`, 422},
		{"challenge bound to a DNS name no certificate can carry", "POST", "/api/v1/challenges", `{"dns":[".."]}`, 422},
		{"challenge bound to a subject with an invisible character", "POST", "/api/v1/challenges", `{"subject":"CN=x\u200by"}`, 422},
		{"challenge bound to a subject with a right-to-left override", "POST", "/api/v1/challenges", `{"subject":"CN=dev\u202egnp.exe"}`, 422},
		{"challenge bound to a DNS name with a hyphen first", "POST", "/api/v1/challenges", `{"dns":["-a-"]}`, 422},
		{"token name with a slash", "POST", "/api/v1/tokens", `{"name":"a/b","role":"auditor"}`, 422},
		{"an EST password that is not UTF-8", "POST", "/api/v1/est-users", "{\"name\":\"e7\",\"password\":\"abcdefghijkl\xff\xfe\"}", 400},
		{"a user password that is not UTF-8", "POST", "/api/v1/users", "{\"name\":\"u7\",\"role\":\"auditor\",\"password\":\"abcdefghijkl\xff\xfe\"}", 400},
		{"a challenge subject that is not UTF-8", "POST", "/api/v1/challenges", "{\"subject\":\"CN=a\xc0\xafb\"}", 400},
		{"short user password", "POST", "/api/v1/users", `{"name":"fred","role":"auditor","password":"short"}`, 422},
		{"reject without a reason", "POST", "/api/v1/requests/none/reject", `{"reason":""}`, 422},
		{"reject with a reason of two lines", "POST", "/api/v1/requests/none/reject", `{"reason":"bad\r\nX-Evil: 1"}`, 422},
		{"reject with a NUL and an override in the reason", "POST", "/api/v1/requests/none/reject", `{"reason":"bad\u0000<b>\u202e"}`, 422},
		{"reject with a reason too long", "POST", "/api/v1/requests/none/reject", `{"reason":"` + strings.Repeat("r", 501) + `"}`, 422},
		{"approve an unknown request", "POST", "/api/v1/requests/none/approve", nil, 404},
		{"delete an unknown challenge", "DELETE", "/api/v1/challenges/none", nil, 404},
		{"wrong method", "PUT", "/api/v1/certificates", `{}`, 405},
		{"unknown route", "GET", "/api/v1/nope", nil, 404},
		{"days out of range", "GET", "/api/v1/dashboard?days=0", nil, 422},
		{"unknown protocol", "GET", "/api/v1/certificates?protocol=http", nil, 422},
		{"issuer that is no CA ID", "GET", "/api/v1/certificates?issuer=zz", nil, 422},
		{"issuer ID cut short", "GET", "/api/v1/certificates?issuer=" + e.Issuer().ID[:16], nil, 422},
		{"audit since after until", "GET", "/api/v1/audit?since=2031-12-01T00:00:00Z&until=2031-01-01T00:00:00Z", nil, 422},
		{"audit before_id 0 (below every ID)", "GET", "/api/v1/audit?before_id=0", nil, 422},
		{"audit before_id negative", "GET", "/api/v1/audit?before_id=-1", nil, 422},
		{"audit since equal to until", "GET", "/api/v1/audit?since=2031-01-01T00:00:00Z&until=2031-01-01T00:00:00Z", nil, 422},
		// The zero time.Time is the store's "no bound": refused, never read as
		// no filter (nor any other time before 1970).
		{"audit until year 1", "GET", "/api/v1/audit?until=0001-01-01T00:00:00Z", nil, 422},
		{"audit since year 1", "GET", "/api/v1/audit?since=0001-01-01T00:00:00Z", nil, 422},
		{"audit until 1969", "GET", "/api/v1/audit?until=1969-12-31T23:59:59Z", nil, 422},
		{"issued_before year 1", "GET", "/api/v1/certificates?issued_before=0001-01-01T00:00:00Z", nil, 422},
		{"issued_after year 1", "GET", "/api/v1/certificates?issued_after=0001-01-01T00:00:00Z", nil, 422},
		{"issued_before year 1 in another zone", "GET", "/api/v1/certificates?issued_before=0001-01-01T01:00:00%2B01:00", nil, 422},
	}
	for _, c := range cases {
		before := auditCount(t, e)
		r := e.do(t, pki.RoleAdmin, c.method, c.path, c.body)
		if r.status != c.want {
			t.Errorf("%s: %d, want %d\n%s", c.name, r.status, c.want, r.body)
			continue
		}
		var eb struct {
			Error string `json:"error"`
		}
		r.json(t, &eb)
		if eb.Error == "" || r.header.Get("Content-Type") != "application/json; charset=utf-8" {
			t.Errorf("%s: no JSON error with a reason: %s", c.name, r.body)
		}
		if after := auditCount(t, e); after != before {
			t.Errorf("%s: %d audit events written by a refused call", c.name, after-before)
		}
	}
	if got, _ := e.Store.Certificate(context.Background(), e.Issuer().ID, serial); got.Status != pki.StatusValid {
		t.Error("bad input revoked the certificate")
	}
	r := e.do(t, "", "GET", "/api/v1/certificates", nil)
	if r.status != 401 || r.header.Get("WWW-Authenticate") == "" {
		t.Errorf("no token: %d %v", r.status, r.header)
	}
	e.tokens["bogus"] = "scepter_not-a-token"
	if r := e.do(t, "bogus", "GET", "/api/v1/certificates", nil); r.status != 401 {
		t.Errorf("a wrong token: %d", r.status)
	}
}

// Revocation, approval and the audit trail through the API, each change an
// audit event naming the token.
func TestChangesAreAuditedWithTheToken(t *testing.T) {
	e := newEnv(t)
	c, _ := e.Issue(t, "dev")
	serial := c.SerialNumber.Text(16)
	r := e.do(t, pki.RoleOperator, "POST", "/api/v1/certificates/"+serial+"/revoke", map[string]string{"reason": "keyCompromise"})
	var res api.RevocationResult
	r.json(t, &res)
	if r.status != 200 || !res.Changed || res.Certificate.Status != "revoked" || res.Certificate.RevokeReason != "keyCompromise" ||
		res.Certificate.RevokedBy != "api:t-operator" {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	r = e.do(t, pki.RoleOperator, "POST", "/api/v1/certificates/"+serial+"/revoke", map[string]string{"reason": "keyCompromise"})
	r.json(t, &res)
	if r.status != 200 || res.Changed {
		t.Errorf("revoking again: %d changed=%v", r.status, res.Changed)
	}
	var detail api.CertificateDetail
	e.do(t, pki.RoleAuditor, "GET", "/api/v1/certificates/"+serial, nil).json(t, &detail)
	var revEvents int
	for _, ev := range detail.Events {
		if ev.Type == pki.EventRevoked {
			revEvents++
			if ev.Actor != "api:t-operator" {
				t.Errorf("revocation event actor %q", ev.Actor)
			}
		}
	}
	if revEvents != 1 || detail.PEM == "" || len(detail.Chain) == 0 || len(detail.KeyUsage) == 0 {
		t.Errorf("detail: %d revocation events, pem %v, chain %d", revEvents, detail.PEM != "", len(detail.Chain))
	}
	// Two operators approve at once: one wins, the other gets 409.
	id := e.heldRequest(t, "held")
	var wg sync.WaitGroup
	codes := make(chan int, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- e.do(t, pki.RoleOperator, "POST", "/api/v1/requests/"+id+"/approve", nil).status
		}()
	}
	wg.Wait()
	close(codes)
	var got []int
	for c := range codes {
		got = append(got, c)
	}
	if !(got[0] == 200 && got[1] == 409) && !(got[0] == 409 && got[1] == 200) {
		t.Errorf("two approvals: %v, want one 200 and one 409", got)
	}
	var verify api.AuditVerification
	e.do(t, pki.RoleAuditor, "GET", "/api/v1/audit/verify", nil).json(t, &verify)
	if !verify.OK || verify.Checked == 0 {
		t.Errorf("audit verify: %+v", verify)
	}
	// A new challenge's secret is in the answer only.
	var nc api.NewChallenge
	e.do(t, pki.RoleOperator, "POST", "/api/v1/challenges", map[string]any{"ttl": "2h", "subject": "CN=bound", "dns": []string{"bound.example"}}).json(t, &nc)
	if len(nc.Secret) < 16 || nc.Challenge.Subject != "CN=bound" || nc.Challenge.CreatedBy != "api:t-operator" {
		t.Errorf("new challenge: %+v", nc)
	}
	list := e.do(t, pki.RoleAuditor, "GET", "/api/v1/challenges", nil)
	if bytes.Contains(list.body, []byte(nc.Secret)) {
		t.Error("the challenge list shows a secret")
	}
}

// Cursor pagination walks every certificate exactly once while others are
// inserted at the same time.
func TestPaginationUnderConcurrentInserts(t *testing.T) {
	e := newEnv(t)
	for i := range 30 {
		e.Issue(t, fmt.Sprintf("page-%02d", i))
	}
	before := map[string]bool{}
	certs, _, err := e.Store.ListCertificates(context.Background(), store.CertFilter{Search: "page-", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range certs {
		before[c.SerialHex] = true
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			e.Issue(t, fmt.Sprintf("page-new-%03d", i))
		}
	}()
	seen := map[string]int{}
	cursor := ""
	for pages := 0; pages < 100; pages++ {
		var page api.CertificatePage
		r := e.do(t, pki.RoleAuditor, "GET", "/api/v1/certificates?q=page-&limit=4&cursor="+cursor, nil)
		if r.status != 200 {
			t.Fatalf("page %d: %d %s", pages, r.status, r.body)
		}
		r.json(t, &page)
		for _, c := range page.Items {
			seen[c.Serial]++
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	close(stop)
	<-done
	for s := range before {
		if seen[s] != 1 {
			t.Errorf("certificate %s seen %d times, want once", s, seen[s])
		}
	}
	for s, n := range seen {
		if n != 1 {
			t.Errorf("certificate %s seen %d times", s, n)
		}
	}
}

// A request with more than one Authorization header is refused with 400
// before any token is read, as EST refuses it: the API must not act as the
// first token while a proxy in front checked another.
func TestMoreThanOneAuthorizationHeader(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		name   string
		tokens []string
	}{
		{"two tokens", []string{e.tokens[pki.RoleAdmin], e.tokens[pki.RoleAuditor]}},
		{"the same token twice", []string{e.tokens[pki.RoleAdmin], e.tokens[pki.RoleAdmin]}},
		{"a token and a wrong one", []string{e.tokens[pki.RoleAdmin], "scepter_not-a-token"}},
	} {
		before := auditCount(t, e)
		req, err := http.NewRequest("POST", e.srv.URL+"/api/v1/challenges", strings.NewReader(`{"profile":"default"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		for _, tok := range c.tokens {
			req.Header.Add("Authorization", "Bearer "+tok)
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "more than one Authorization header") {
			t.Errorf("%s: %d, want 400 naming the headers\n%s", c.name, resp.StatusCode, b)
		}
		if after := auditCount(t, e); after != before {
			t.Errorf("%s: %d audit events written by a refused call", c.name, after-before)
		}
	}
}

// Strict-Transport-Security is sent over HTTPS only (RFC 6797 section
// 7.2): on a route's answer, a refusal, the OpenAPI description and the
// JSON 404.
func TestHSTSOnlyOverHTTPS(t *testing.T) {
	e := newEnv(t)
	mux := http.NewServeMux()
	for pattern, handler := range e.h.Routes() {
		mux.Handle(pattern, handler)
	}
	for _, c := range []struct {
		path, token string
	}{
		{"/api/v1/certificates", e.tokens[pki.RoleAuditor]},
		{"/api/v1/certificates", ""},
		{"/api/v1/openapi.json", ""},
		{"/api/v1/no-such-route", ""},
	} {
		for _, scheme := range []string{"https", "http"} {
			r := httptest.NewRequest(http.MethodGet, scheme+"://scepter.test"+c.path, nil)
			if c.token != "" {
				r.Header.Set("Authorization", "Bearer "+c.token)
			}
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, r)
			got, want := rec.Result().Header.Get("Strict-Transport-Security"), ""
			if scheme == "https" {
				want = "max-age=31536000"
			}
			if got != want {
				t.Errorf("GET %s://…%s (HTTP %d): Strict-Transport-Security %q, want %q", scheme, c.path, rec.Code, got, want)
			}
		}
	}
}

// An unknown profile is explained to the API caller in its own terms: the
// profiles the server has, not a command-line flag to run again with.
func TestUnknownProfileMessage(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct{ path, body string }{
		{"/api/v1/challenges", `{"profile":"nope"}`},
		{"/api/v1/est-users", `{"name":"dev1","password":"a long device password","profile":"nope"}`},
	} {
		r := e.do(t, pki.RoleAdmin, "POST", c.path, c.body)
		var eb struct {
			Error string `json:"error"`
		}
		r.json(t, &eb)
		if r.status != 422 || !strings.Contains(eb.Error, `"nope"`) || !strings.Contains(eb.Error, "approval, default") ||
			strings.Contains(eb.Error, "--config") || strings.Contains(eb.Error, "command") {
			t.Errorf("POST %s: %d %q, want 422 naming the profile and the configured ones, no CLI advice", c.path, r.status, eb.Error)
		}
	}
}

// TestBodyOnRouteWithoutOne: a route that takes no body refuses one that
// says something (and changes nothing), as routes with a body refuse
// unknown fields; an empty object, which clients send with any POST, is
// taken.
func TestBodyOnRouteWithoutOne(t *testing.T) {
	e := newEnv(t)
	id := e.heldRequest(t, "held")
	r := e.do(t, pki.RoleAdmin, "POST", "/api/v1/requests/"+id+"/approve", `{"dry_run":true}`)
	if r.status != http.StatusBadRequest {
		t.Errorf("approve with a body: %d, want 400\n%s", r.status, r.body)
	}
	if got, err := e.Store.Request(context.Background(), id); err != nil || got.Status != pki.RequestPending {
		t.Fatalf("approve with a body decided the request: %+v, %v", got, err)
	}
	created := e.do(t, pki.RoleAdmin, "POST", "/api/v1/challenges", `{"profile":"default"}`)
	var ch struct {
		Challenge struct {
			ID string `json:"id"`
		} `json:"challenge"`
	}
	created.json(t, &ch)
	chID := ch.Challenge.ID
	if chID == "" {
		t.Fatalf("no challenge: %s", created.body)
	}
	for _, body := range []string{`{"dry_run":true}`, `not json`, `[]`} {
		if r := e.do(t, pki.RoleAdmin, "DELETE", "/api/v1/challenges/"+chID, body); r.status != http.StatusBadRequest {
			t.Errorf("delete with body %s: %d, want 400\n%s", body, r.status, r.body)
		}
	}
	if r := e.do(t, pki.RoleAdmin, "DELETE", "/api/v1/challenges/"+chID, ` {} `); r.status != http.StatusNoContent {
		t.Errorf("delete with an empty object: %d, want 204\n%s", r.status, r.body)
	}
	if r := e.do(t, pki.RoleAdmin, "POST", "/api/v1/requests/"+id+"/approve", `{}`); r.status != http.StatusOK {
		t.Errorf("approve with an empty object: %d, want 200\n%s", r.status, r.body)
	}
}

// TestChallengeSubjectShownWhole: a challenge's bound subject reads back
// with every attribute, in its own order, as the binding holds it.
func TestChallengeSubjectShownWhole(t *testing.T) {
	e := newEnv(t)
	for _, subject := range []string{"CN=gw-7+OU=admin,O=Acme", "O=Acme,CN=dev"} {
		r := e.do(t, pki.RoleOperator, "POST", "/api/v1/challenges", map[string]any{"subject": subject})
		var nc struct {
			Challenge struct {
				Subject string `json:"subject"`
			} `json:"challenge"`
		}
		r.json(t, &nc)
		if r.status != http.StatusCreated || nc.Challenge.Subject != subject {
			t.Errorf("bound to %q: %d, subject %q\n%s", subject, r.status, nc.Challenge.Subject, r.body)
		}
	}
}

// TestCertificateFiltersByIssuerAndProtocol: a whole issuer ID, in either
// case, and a known protocol filter the list (bad ones are refused:
// TestBadInput).
func TestCertificateFiltersByIssuerAndProtocol(t *testing.T) {
	e := newEnv(t)
	c, _ := e.Issue(t, "filtered")
	serial := c.SerialNumber.Text(16)
	rec, err := e.Store.Certificate(context.Background(), e.Issuer().ID, serial)
	if err != nil {
		t.Fatal(err)
	}
	for _, query := range []string{"issuer=" + e.Issuer().ID, "issuer=" + strings.ToUpper(e.Issuer().ID), "protocol=" + string(rec.Protocol)} {
		r := e.do(t, pki.RoleAuditor, "GET", "/api/v1/certificates?"+query, nil)
		var page struct {
			Items []struct {
				Serial string `json:"serial"`
			} `json:"items"`
		}
		r.json(t, &page)
		found := false
		for _, it := range page.Items {
			found = found || it.Serial == rec.SerialHex
		}
		if r.status != http.StatusOK || !found {
			t.Errorf("%s: %d, certificate %s not listed\n%s", query, r.status, rec.SerialHex, r.body)
		}
	}
}

// TestRejectAnswersTheWholeRequest: the answer to a rejection is the
// request as stored (subject, protocol), even when more requests than a
// page holds were rejected after it was held.
func TestRejectAnswersTheWholeRequest(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.heldRequest(t, "old-device")
	now := e.Clock.Now()
	for i := range ops.MaxPage {
		other := pki.EnrollmentRequest{ID: fmt.Sprintf("later-%d", i), TransactionID: fmt.Sprintf("tx-later-%d", i), Profile: "approval",
			Protocol: pki.ProtocolEST, Subject: "CN=later", CSR: []byte{0x30, 0}, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := e.Store.CreateRequest(ctx, other, nil, pki.AuditEvent{Time: now, Type: pki.EventRequestPending, Outcome: "success"}); err != nil {
			t.Fatal(err)
		}
		if err := e.Store.RejectRequest(ctx, other.ID, "no", "cli:test", now, pki.AuditEvent{Type: pki.EventRequestRejected}); err != nil {
			t.Fatal(err)
		}
	}
	held, err := e.Store.Request(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	r := e.do(t, pki.RoleOperator, "POST", "/api/v1/requests/"+id+"/reject", map[string]string{"reason": "unknown device"})
	var got api.Request
	r.json(t, &got)
	if r.status != http.StatusOK || got.ID != id || got.Status != "rejected" || got.Subject != "CN=old-device" ||
		got.Protocol == "" || got.Protocol != string(held.Protocol) || got.Reason != "unknown device" || got.DecidedBy == "" {
		t.Errorf("reject: %d %+v\n%s", r.status, got, r.body)
	}
}

// Revoking a revoked certificate again: the same reason is idempotent (200,
// changed false); another is not applied and says so with 409, except that
// a certificateHold may become another reason. What the reply names is
// what the store holds afterwards.
func TestRevokeAgainWithAnotherReason(t *testing.T) {
	e := newEnv(t)
	permanent, _ := e.Issue(t, "permanent")
	held, _ := e.Issue(t, "held")
	for _, step := range []struct {
		name        string
		serial      string
		reason      string
		wantStatus  int
		wantChanged bool
		wantReason  string // the certificate's reason after the call
	}{
		{"revoke", permanent.SerialNumber.Text(16), "keyCompromise", 200, true, "keyCompromise"},
		{"same reason again", permanent.SerialNumber.Text(16), "keyCompromise", 200, false, "keyCompromise"},
		{"same reason as a code", permanent.SerialNumber.Text(16), "1", 200, false, "keyCompromise"},
		{"another reason", permanent.SerialNumber.Text(16), "cessationOfOperation", 409, false, "keyCompromise"},
		{"back on hold", permanent.SerialNumber.Text(16), "certificateHold", 409, false, "keyCompromise"},
		{"a hold", held.SerialNumber.Text(16), "certificateHold", 200, true, "certificateHold"},
		{"a hold again", held.SerialNumber.Text(16), "6", 200, false, "certificateHold"},
		{"a hold made permanent", held.SerialNumber.Text(16), "superseded", 200, true, "superseded"},
		{"superseded, then another reason", held.SerialNumber.Text(16), "cessationOfOperation", 409, false, "superseded"},
		{"superseded raised to keyCompromise", held.SerialNumber.Text(16), "keyCompromise", 200, true, "keyCompromise"},
		{"raised, then another reason", held.SerialNumber.Text(16), "superseded", 409, false, "keyCompromise"},
	} {
		r := e.do(t, pki.RoleOperator, "POST", "/api/v1/certificates/"+step.serial+"/revoke", map[string]string{"reason": step.reason})
		if r.status != step.wantStatus {
			t.Errorf("%s: %d %s, want %d", step.name, r.status, r.body, step.wantStatus)
			continue
		}
		if r.status == 200 {
			var res api.RevocationResult
			r.json(t, &res)
			if res.Changed != step.wantChanged {
				t.Errorf("%s: changed=%v, want %v", step.name, res.Changed, step.wantChanged)
			}
		} else if !bytes.Contains(r.body, []byte("reason "+step.wantReason+"; the reason stays")) {
			t.Errorf("%s: %s, want it to name the reason that stays", step.name, r.body)
		}
		var detail api.CertificateDetail
		e.do(t, pki.RoleAuditor, "GET", "/api/v1/certificates/"+step.serial, nil).json(t, &detail)
		if detail.RevokeReason != step.wantReason {
			t.Errorf("%s: reason afterwards %q, want %q", step.name, detail.RevokeReason, step.wantReason)
		}
	}
}

// Operators revoking one certificate at once with different reasons: one
// wins, keyCompromise raising it if it came later, every other is told
// 409, none 200 with a reason it did not get.
func TestConcurrentRevocationsWithDifferentReasons(t *testing.T) {
	e := newEnv(t)
	c, _ := e.Issue(t, "contested")
	path := "/api/v1/certificates/" + c.SerialNumber.Text(16) + "/revoke"
	reasons := []string{"unspecified", "keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation"}
	statuses := make([]int, len(reasons))
	var wg sync.WaitGroup
	for i, reason := range reasons {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = e.do(t, pki.RoleOperator, "POST", path, map[string]string{"reason": reason}).status
		}()
	}
	wg.Wait()
	// Of the other reasons one wins at most; keyCompromise always does,
	// first or raising the winner's reason, and is what is stored.
	var winner string
	var conflicts int
	for i, status := range statuses {
		switch {
		case reasons[i] == "keyCompromise" && status != 200:
			t.Errorf("keyCompromise: %d, want 200 (first, or raising the reason)", status)
		case reasons[i] == "keyCompromise":
		case status == 200:
			if winner != "" {
				t.Errorf("both %s and %s answered 200", winner, reasons[i])
			}
			winner = reasons[i]
		case status == 409:
			conflicts++
		default:
			t.Errorf("%s: %d", reasons[i], status)
		}
	}
	var detail api.CertificateDetail
	e.do(t, pki.RoleAuditor, "GET", "/api/v1/certificates/"+c.SerialNumber.Text(16), nil).json(t, &detail)
	want := len(reasons) - 1 // all but keyCompromise
	if winner != "" {
		want--
	}
	if conflicts != want || detail.RevokeReason != "keyCompromise" {
		t.Errorf("statuses %v (winner %q), reason stored %q: want keyCompromise stored, and %d 409", statuses, winner, detail.RevokeReason, want)
	}
}

// A token that expires makes no credential that does not: no console user
// and no EST user (403, nothing stored); tokens without an expiry still
// do.
func TestShortLivedTokenMakesNoLastingCredential(t *testing.T) {
	e := newEnv(t)
	secret, _, err := auth.New(e.Store, e.Clock, nil).NewToken(context.Background(), "short", pki.RoleAdmin, time.Hour, auth.CLI("cli:test"))
	if err != nil {
		t.Fatal(err)
	}
	e.tokens["short"] = secret
	for _, c := range []struct {
		path string
		body map[string]string
	}{
		{"/api/v1/users", map[string]string{"name": "mallory", "password": "a long enough password 123", "role": "admin"}},
		{"/api/v1/est-users", map[string]string{"name": "ghost", "password": "a long enough password 123"}},
	} {
		r := e.do(t, "short", "POST", c.path, c.body)
		if r.status != http.StatusForbidden || !strings.Contains(string(r.body), "does not expire") {
			t.Errorf("POST %s with a 1h token: %d %s, want 403", c.path, r.status, r.body)
		}
	}
	if users, _ := e.Store.ListUsers(context.Background()); slices.ContainsFunc(users, func(u pki.User) bool { return u.Name == "mallory" }) {
		t.Error("the console user was stored")
	}
	if _, err := e.Store.ESTUser(context.Background(), "ghost"); err == nil {
		t.Error("the EST user was stored")
	}
	if r := e.do(t, pki.RoleAdmin, "POST", "/api/v1/est-users", map[string]string{"name": "router-9", "password": "a long enough password 123"}); r.status != http.StatusCreated {
		t.Errorf("a token without an expiry adding an EST user: %d %s", r.status, r.body)
	}
}

// A token that expires mints no one-time challenge that outlives it, for
// any profile (422, nothing stored), as it makes no token that would; one
// within its lifetime, and any from a token without an expiry, is made.
func TestShortLivedTokenMakesNoLongerChallenge(t *testing.T) {
	e := newEnv(t)
	secret, _, err := auth.New(e.Store, e.Clock, nil).NewToken(context.Background(), "short", pki.RoleOperator, time.Hour, auth.CLI("cli:test"))
	if err != nil {
		t.Fatal(err)
	}
	e.tokens["short"] = secret
	for _, c := range []struct {
		role pki.Role
		body map[string]string
		want int
	}{
		{"short", map[string]string{"ttl": "700h"}, http.StatusUnprocessableEntity},
		{"short", map[string]string{"ttl": "700h", "profile": "approval"}, http.StatusUnprocessableEntity},
		{"short", map[string]string{"ttl": "61m"}, http.StatusUnprocessableEntity},
		{"short", map[string]string{}, http.StatusUnprocessableEntity}, // the default, 24h
		{"short", map[string]string{"ttl": "59m"}, http.StatusCreated},
		{"short", map[string]string{"ttl": "1h"}, http.StatusCreated},
		{pki.RoleOperator, map[string]string{"ttl": "700h"}, http.StatusCreated},
	} {
		before, _, err := e.Store.ListChallenges(context.Background(), store.ChallengeFilter{})
		if err != nil {
			t.Fatal(err)
		}
		r := e.do(t, c.role, "POST", "/api/v1/challenges", c.body)
		if r.status != c.want {
			t.Errorf("%s token, %v: %d %s, want %d", c.role, c.body, r.status, r.body, c.want)
		}
		if c.want == http.StatusUnprocessableEntity && !strings.Contains(string(r.body), "may not outlive it") {
			t.Errorf("%s token, %v: %s, want it to say why", c.role, c.body, r.body)
		}
		after, _, _ := e.Store.ListChallenges(context.Background(), store.ChallengeFilter{})
		if stored := len(after) - len(before); c.want != http.StatusCreated && stored != 0 {
			t.Errorf("%s token, %v: %d challenges stored by a refused call", c.role, c.body, stored)
		}
	}
}

// TestESTUserRemovedInAnyCase: the 409 for a name that differs only in
// case from an EST user's names that user as stored, and DELETE takes the
// name in any case, as for tokens and console users.
func TestESTUserRemovedInAnyCase(t *testing.T) {
	e := newEnv(t)
	if r := e.do(t, pki.RoleAdmin, "POST", "/api/v1/est-users", map[string]string{"name": "fleet", "password": "a long enough password 123"}); r.status != http.StatusCreated {
		t.Fatalf("adding fleet: %d %s", r.status, r.body)
	}
	r := e.do(t, pki.RoleAdmin, "POST", "/api/v1/est-users", map[string]string{"name": "FLEET", "password": "a long enough password 123"})
	if r.status != http.StatusConflict || !strings.Contains(string(r.body), `EST user \"fleet\" exists`) {
		t.Errorf("adding FLEET: %d %s, want 409 naming fleet", r.status, r.body)
	}
	if r := e.do(t, pki.RoleAdmin, "DELETE", "/api/v1/est-users/FLEET", nil); r.status != http.StatusNoContent {
		t.Errorf("removing FLEET: %d %s, want 204", r.status, r.body)
	}
	if _, err := e.Store.ESTUser(context.Background(), "fleet"); err == nil {
		t.Error("fleet is still there")
	}
	if r := e.do(t, pki.RoleAdmin, "DELETE", "/api/v1/est-users/Fleet", nil); r.status != http.StatusNotFound {
		t.Errorf("removing it again: %d %s, want 404", r.status, r.body)
	}
}

// TestAuditUnknownType: a type that is no known one and no event's in the
// trail (a misspelling) is refused naming the known types, rather than
// answered with an empty list that reads as a quiet trail; a known type
// without events, or one only the trail knows, is an empty or a full list.
func TestAuditUnknownType(t *testing.T) {
	e := newEnv(t)
	if err := e.Store.AppendAudit(context.Background(), pki.AuditEvent{Time: e.Clock.Now(), Type: "custom.thing", Actor: "cli:test", Outcome: "success"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		typ   string
		want  int
		items int
	}{
		{"certificate.revoke", http.StatusUnprocessableEntity, 0},
		{"certificate.unheld", http.StatusOK, 0},
		{"custom.thing", http.StatusOK, 1},
	} {
		r := e.do(t, pki.RoleAuditor, "GET", "/api/v1/audit?type="+c.typ, nil)
		if r.status != c.want {
			t.Errorf("type=%s: %d %s, want %d", c.typ, r.status, r.body, c.want)
			continue
		}
		if c.want != http.StatusOK {
			if !strings.Contains(string(r.body), pki.EventRevoked) {
				t.Errorf("type=%s: %s, want it to name the known types", c.typ, r.body)
			}
			continue
		}
		var list struct{ Items []api.AuditEvent }
		r.json(t, &list)
		if len(list.Items) != c.items {
			t.Errorf("type=%s: %d events, want %d", c.typ, len(list.Items), c.items)
		}
	}
}

// TestCursorBoundToItsFilter: a next_cursor continues only the list and
// filter it came from; sent with another filter it is refused, not read as
// a starting point in a list it does not belong to.
func TestCursorBoundToItsFilter(t *testing.T) {
	e := newEnv(t)
	for i := range 4 {
		e.Issue(t, fmt.Sprintf("dev-%d", i))
	}
	next := func(path string) string {
		t.Helper()
		var page api.CertificatePage
		r := e.do(t, pki.RoleAuditor, "GET", path, nil)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
		r.json(t, &page)
		if page.NextCursor == "" {
			t.Fatalf("%s: no next_cursor", path)
		}
		return url.QueryEscape(page.NextCursor)
	}
	plain, dev := next("/api/v1/certificates?limit=2"), next("/api/v1/certificates?limit=2&q=dev")
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/api/v1/certificates?limit=2&cursor=" + plain, 200},
		{"/api/v1/certificates?limit=3&cursor=" + plain, 200}, // another page size is the same list
		{"/api/v1/certificates?limit=2&q=dev&cursor=" + dev, 200},
		{"/api/v1/certificates?limit=2&q=dev&cursor=" + plain, 422},
		{"/api/v1/certificates?limit=2&status=valid&cursor=" + plain, 422},
		{"/api/v1/certificates?limit=2&cursor=" + dev, 422},
	} {
		if r := e.do(t, pki.RoleAuditor, "GET", tc.path, nil); r.status != tc.want {
			t.Errorf("%s: %d, want %d\n%s", tc.path, r.status, tc.want, r.body)
		}
	}
}

// TestRequestsAndChallengesPage: /requests and /challenges page with
// next_cursor as /certificates does, so the oldest (a held request about to
// expire, an unused challenge to delete) can be reached; a cursor goes only
// with its own list and filter, and on past its page's last item deleted.
func TestRequestsAndChallengesPage(t *testing.T) {
	e := newEnv(t)
	var reqIDs, chIDs []string // oldest first
	for i := range 5 {
		reqIDs = append(reqIDs, e.heldRequest(t, fmt.Sprintf("held-%d", i)))
	}
	// heldRequest's challenges are used; these 7 are not.
	for range 7 {
		r := e.do(t, pki.RoleOperator, "POST", "/api/v1/challenges", `{"ttl":"1h"}`)
		var nc api.NewChallenge
		r.json(t, &nc)
		chIDs = append(chIDs, nc.Challenge.ID)
	}
	walk := func(path string) (ids []string, cursors []string) {
		t.Helper()
		cursor := ""
		for range 20 {
			r := e.do(t, pki.RoleAuditor, "GET", path+"&cursor="+url.QueryEscape(cursor), nil)
			if r.status != 200 {
				t.Fatalf("%s: %d %s", path, r.status, r.body)
			}
			var page struct {
				Items []struct {
					ID string `json:"id"`
				} `json:"items"`
				NextCursor string `json:"next_cursor"`
			}
			r.json(t, &page)
			for _, it := range page.Items {
				ids = append(ids, it.ID)
			}
			if page.NextCursor == "" {
				return ids, cursors
			}
			cursor = page.NextCursor
			cursors = append(cursors, cursor)
		}
		t.Fatalf("%s: no end", path)
		return nil, nil
	}
	newestFirst := func(ids []string) []string {
		r := slices.Clone(ids)
		slices.Reverse(r)
		return r
	}
	gotReqs, reqCursors := walk("/api/v1/requests?limit=2")
	if !slices.Equal(gotReqs, newestFirst(reqIDs)) || len(reqCursors) != 2 {
		t.Errorf("requests by pages of 2: %v (%d cursors), want %v", gotReqs, len(reqCursors), newestFirst(reqIDs))
	}
	gotChs, chCursors := walk("/api/v1/challenges?limit=3")
	if len(gotChs) != 12 || !slices.Equal(gotChs[:7], newestFirst(chIDs)) || len(chCursors) != 3 {
		t.Errorf("challenges by pages of 3: %v (%d cursors), want 12, %v first", gotChs, len(chCursors), newestFirst(chIDs))
	}
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/api/v1/requests?limit=2&cursor=" + url.QueryEscape(reqCursors[0]), 200},
		{"/api/v1/requests?limit=2&status=all&cursor=" + url.QueryEscape(reqCursors[0]), 422},
		{"/api/v1/requests?limit=2&profile=approval&cursor=" + url.QueryEscape(reqCursors[0]), 422},
		{"/api/v1/requests?limit=2&cursor=" + url.QueryEscape(chCursors[0]), 422},
		{"/api/v1/challenges?limit=2&cursor=" + url.QueryEscape(reqCursors[0]), 422},
		{"/api/v1/certificates?limit=2&cursor=" + url.QueryEscape(chCursors[0]), 422},
		{"/api/v1/challenges?limit=2&cursor=bm9wZQ", 422},
	} {
		if r := e.do(t, pki.RoleAuditor, "GET", tc.path, nil); r.status != tc.want {
			t.Errorf("%s: %d, want %d\n%s", tc.path, r.status, tc.want, r.body)
		}
	}
	// A page's last challenge deleted: its cursor still gives the next
	// page, which starts where that one ended.
	last := gotChs[2]
	if r := e.do(t, pki.RoleOperator, "DELETE", "/api/v1/challenges/"+last, nil); r.status != 204 {
		t.Fatalf("delete %s: %d %s", last, r.status, r.body)
	}
	r := e.do(t, pki.RoleAuditor, "GET", "/api/v1/challenges?limit=3&cursor="+url.QueryEscape(chCursors[0]), nil)
	var page struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	if r.status == 200 {
		r.json(t, &page)
	}
	var got []string
	for _, it := range page.Items {
		got = append(got, it.ID)
	}
	if r.status != 200 || !slices.Equal(got, gotChs[3:6]) {
		t.Errorf("the cursor after a deleted challenge: %d %v, want 200 %v\n%s", r.status, got, gotChs[3:6], r.body)
	}
}

// A challenge lifetime the API cannot read, or reads and the service
// refuses, is told its bound either way: "99999d" is no less a lifetime
// out of range than "9999d".
//
// A token that expires in 90 days is told the range too, not to stay
// within its own life (which a lifetime of 60 days does, and the range
// refuses).
func TestChallengeLifetimeRefusalNamesItsBound(t *testing.T) {
	e := newEnv(t)
	secret, _, err := auth.New(e.Store, e.Clock, nil).NewToken(context.Background(), "ninety-days", pki.RoleOperator, 90*24*time.Hour, auth.CLI("cli:test"))
	if err != nil {
		t.Fatal(err)
	}
	e.tokens["ninety-days"] = secret
	for _, token := range []pki.Role{pki.RoleAdmin, "ninety-days"} {
		for _, ttl := range []string{"99999d", "9999d", "60d", "forever", "99999999999h", "9223372036854775807ns", "1ns"} {
			r := e.do(t, token, "POST", "/api/v1/challenges", map[string]string{"ttl": ttl})
			var eb struct {
				Error string `json:"error"`
			}
			r.json(t, &eb)
			if r.status != 422 || !strings.Contains(eb.Error, "1s") || !strings.Contains(eb.Error, "30 days") && !strings.Contains(eb.Error, "30d") {
				t.Errorf("%s token, ttl %q: %d %q, want 422 naming the range, 1s to 30 days", token, ttl, r.status, eb.Error)
			}
		}
	}
}
