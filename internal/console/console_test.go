package console_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/console"
	"github.com/scepter/scepter/internal/ops"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/store"
)

// Every page renders for every role (each may read everything), with the
// security headers; the forms of changes appear only for roles that may
// make them.
func TestPagesRenderForEveryRole(t *testing.T) {
	e := newEnv(t, console.Options{})
	c := e.issue("page-device-1")
	e.issue("page-device-2")
	e.hold("held-device-1")
	rec := e.record(c)
	pages := []string{
		"/ui/", "/ui/?days=7", "/ui/?days=366",
		"/ui/certificates", "/ui/certificates?q=page-device&status=valid&sort=expiring&limit=1",
		"/ui/certificates?profile=default&protocol=cli&issuer=" + rec.IssuerID + "&expiring=400&issued_from=2031-01-01&issued_to=2031-12-31",
		// The API's bound on expiring_within (36500d), the console's too.
		"/ui/certificates?expiring=36500",
		certPath(c), certPath(c) + "?issuer=" + rec.IssuerID,
		"/ui/requests", "/ui/requests?status=all&profile=held",
		"/ui/challenges", "/ui/audit", "/ui/audit?type=certificate.issued&serial=" + rec.SerialHex + "&since=2031-01-01&until=2031-12-31",
		"/ui/audit/verify", "/ui/cas",
	}
	for _, role := range roles {
		b := e.as(string(role))
		for _, p := range pages {
			res := b.get(p)
			expectStatus(t, string(role)+" GET "+p, res, http.StatusOK)
			if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("%s GET %s: Content-Type %q", role, p, ct)
			}
			expectSecurityHeaders(t, p, res)
			expectBody(t, p, res, `<main id="main"`, `name="csrf" value="`+b.csrf()+`"`, `<h1`)
		}
		operate := role != pki.RoleAuditor
		for _, check := range []struct{ path, marker string }{
			{certPath(c), `id="revoke-form"`},
			{"/ui/challenges", `id="new-challenge"`},
			{"/ui/requests", `/approve"`},
			{"/ui/requests", `/reject"`},
		} {
			res := b.get(check.path)
			if got := strings.Contains(res.body, check.marker); got != operate {
				t.Errorf("%s GET %s: form %s shown=%v, want %v", role, check.path, check.marker, got, operate)
			}
		}
	}
	// The pieces of each page.
	b := e.as("auditor")
	expectBody(t, "dashboard", b.get("/ui/"), `<svg id="activity-chart"`, `<polyline`, `id="activity-table"`, `id="by-status"`,
		`id="by-profile"`, "expiring within 7 days", "expiring within 30 days", "expiring within 90 days", `id="pending-card"`)
	expectBody(t, "detail", b.get(certPath(c)), "CN=page-device-1", rec.SerialHex, "Key usage", "digitalSignature", "clientAuth",
		"ECDSA P-256", "Chain", "certificate.issued", "/pem?issuer=", "Renewal history")
	expectBody(t, "cas", b.get("/ui/cas"), "current", "sha256:", "default", "held", "required")
	expectBody(t, "verify", b.get("/ui/audit/verify"), "The hash chain is intact")
}

func expectSecurityHeaders(t *testing.T, what string, res response) {
	t.Helper()
	h := res.Header
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s: Content-Security-Policy %q lacks %q", what, csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("%s: Content-Security-Policy %q allows inline script or style", what, csp)
	}
	for k, v := range map[string]string{"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
		"Cache-Control": "no-store", "Strict-Transport-Security": "max-age=31536000"} {
		if h.Get(k) != v {
			t.Errorf("%s: %s %q, want %q", what, k, h.Get(k), v)
		}
	}
}

var (
	inlineScriptRE  = regexp.MustCompile(`<script(?:\s[^>]*)?>`)
	inlineHandlerRE = regexp.MustCompile(`\son[a-z]+\s*=`)
)

// No page holds inline script, event handlers or style attributes: the
// CSP would block them.
func TestNoInlineScriptOrStyle(t *testing.T) {
	e := newEnv(t, console.Options{})
	c := e.issue("inline-check")
	e.hold("inline-held")
	b := e.as("admin")
	for _, p := range []string{"/ui/", "/ui/certificates", certPath(c), "/ui/requests", "/ui/challenges", "/ui/audit", "/ui/cas"} {
		res := b.get(p)
		for _, tag := range inlineScriptRE.FindAllString(res.body, -1) {
			if !strings.Contains(tag, ` src="/ui/static/`) {
				t.Errorf("%s: inline script %s", p, tag)
			}
		}
		if m := inlineHandlerRE.FindString(res.body); m != "" {
			t.Errorf("%s: inline event handler %q", p, m)
		}
		if strings.Contains(res.body, " style=") || strings.Contains(res.body, "<style") {
			t.Errorf("%s: inline style", p)
		}
	}
	if res := b.get("/ui/login"); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/ui/" {
		t.Errorf("logged in, GET /ui/login: %s", res)
	}
	res := e.browser().get("/ui/login")
	expectBody(t, "login", res, `<form id="login-form"`, `<script src="/ui/static/console.js?v=`)
	for _, tag := range inlineScriptRE.FindAllString(res.body, -1) {
		if !strings.Contains(tag, ` src="/ui/static/`) {
			t.Errorf("login page: inline script %s", tag)
		}
	}
	if strings.Contains(res.body, " style=") || inlineHandlerRE.MatchString(res.body) {
		t.Errorf("login page: inline style or event handler")
	}
	for _, f := range []string{"console.js", "console.css"} {
		res := e.browser().get("/ui/static/" + f)
		expectStatus(t, f, res, http.StatusOK)
		if res.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(res.Header.Get("Content-Type"), map[string]string{"console.js": "javascript", "console.css": "css"}[f]) {
			t.Errorf("%s: headers %v", f, res.Header)
		}
	}
	expectStatus(t, "unknown static file", e.browser().get("/ui/static/nope.js"), http.StatusNotFound)
}

// An auditor reads but cannot revoke, unhold, approve, reject, create or
// delete challenges: 403, and nothing changes but the audit trail, which
// records each attempt as one action.refused event naming the user, the
// action and the role it lacked, and verifies after.
func TestAuditorIsForbiddenChanges(t *testing.T) {
	e := newEnv(t, console.Options{})
	c := e.issue("auditor-target")
	rec := e.record(c)
	id := e.hold("auditor-held")
	_, ch, err := e.ops.NewChallenge(context.Background(), auth.CLI("test"), adminSpec("default"))
	if err != nil {
		t.Fatal(err)
	}
	b := e.as("auditor")
	for _, a := range []struct {
		path string
		form url.Values
	}{
		{certPath(c) + "/revoke", url.Values{"issuer": {rec.IssuerID}, "reason": {"keyCompromise"}, "confirm": {"yes"}}},
		{certPath(c) + "/revoke", url.Values{"issuer": {rec.IssuerID}, "reason": {"keyCompromise"}}},
		{certPath(c) + "/unhold", url.Values{"issuer": {rec.IssuerID}}},
		{"/ui/requests/" + id + "/approve", nil},
		{"/ui/requests/" + id + "/reject", url.Values{"reason": {"no"}}},
		{"/ui/challenges", url.Values{"ttl": {"1h"}, "profile": {"default"}}},
		{"/ui/challenges/" + ch.ID + "/delete", nil},
	} {
		before := e.auditCount()
		res := b.post(a.path, a.form)
		expectStatus(t, "auditor POST "+a.path, res, http.StatusForbidden)
		expectBody(t, "auditor POST "+a.path, res, "403", "auditor")
		expectNotBody(t, "auditor POST "+a.path, res, "challenge-secret", "Yes, revoke it")
		if n := e.auditCount() - before; n != 1 {
			t.Errorf("auditor POST %s wrote %d audit events, want 1", a.path, n)
			continue
		}
		evs, err := e.pki.Store.ListAudit(context.Background(), store.AuditFilter{Limit: 1})
		if err != nil || len(evs) != 1 {
			t.Fatalf("newest audit event: %v %v", evs, err)
		}
		ev, wantReason := evs[0], `user "auditor" has role auditor; this needs operator`
		if ev.Type != pki.EventActionRefused || ev.Actor != "console:auditor" || ev.Outcome != "failure" ||
			ev.Reason != wantReason || ev.Detail != "POST "+a.path {
			t.Errorf("auditor POST %s audited %+v, want %s by console:auditor, reason %q", a.path, ev, pki.EventActionRefused, wantReason)
		}
	}
	if rep, err := e.ops.VerifyAudit(context.Background(), auth.CLI("test")); err != nil || !rep.OK() {
		t.Errorf("audit verify after the refusals: %+v %v", rep, err)
	}
	if r := e.record(c); r.Status != pki.StatusValid {
		t.Errorf("the auditor revoked the certificate: %+v", r)
	}
	reqs, _, err := e.ops.Requests(context.Background(), auth.CLI("test"), "", "", 10, "")
	if err != nil || len(reqs) != 1 || reqs[0].ID != id {
		t.Errorf("the held request changed: %+v, %v", reqs, err)
	}
	chs, _, _ := e.ops.Challenges(context.Background(), auth.CLI("test"), 10, "")
	if len(chs) != 2 { // the one above and the one hold made
		t.Errorf("challenges after the auditor's attempts: %d, want 2", len(chs))
	}
}

// Every POST needs the session's CSRF token and a same-site origin: a
// missing, wrong or foreign token, or another site's Origin, is 403 and
// changes nothing.
func TestCSRFIsEnforcedOnEveryPost(t *testing.T) {
	e := newEnv(t, console.Options{})
	c := e.issue("csrf-target")
	rec := e.record(c)
	id := e.hold("csrf-held")
	_, ch, err := e.ops.NewChallenge(context.Background(), auth.CLI("test"), adminSpec("default"))
	if err != nil {
		t.Fatal(err)
	}
	b := e.as("admin")
	other := e.as("operator")
	actions := []struct {
		path string
		form url.Values
	}{
		{"/ui/logout", url.Values{}},
		{certPath(c) + "/revoke", url.Values{"issuer": {rec.IssuerID}, "reason": {"keyCompromise"}, "confirm": {"yes"}}},
		{certPath(c) + "/unhold", url.Values{"issuer": {rec.IssuerID}}},
		{"/ui/requests/" + id + "/approve", url.Values{}},
		{"/ui/requests/" + id + "/reject", url.Values{"reason": {"no"}}},
		{"/ui/challenges", url.Values{"ttl": {"1h"}, "profile": {"default"}}},
		{"/ui/challenges/" + ch.ID + "/delete", url.Values{}},
	}
	for _, a := range actions {
		for _, bad := range []struct {
			name   string
			token  *string
			header http.Header
		}{
			{name: "no token"},
			{name: "wrong token", token: ptr("AAAA" + b.csrf()[4:])},
			{name: "another session's token", token: ptr(other.csrf())},
			{name: "empty token", token: ptr("")},
			{name: "another site's Origin", token: ptr(b.csrf()), header: http.Header{"Origin": {"https://evil.example"}}},
			{name: "another site's Referer", token: ptr(b.csrf()), header: http.Header{"Origin": {""}, "Referer": {"https://evil.example/x"}}},
			{name: "cross-site fetch", token: ptr(b.csrf()), header: http.Header{"Sec-Fetch-Site": {"cross-site"}}},
			{name: "another port", token: ptr(b.csrf()), header: http.Header{"Origin": {"https://console.test:8443"}}},
		} {
			form := url.Values{}
			for k, v := range a.form {
				form[k] = v
			}
			if bad.token != nil {
				form.Set("csrf", *bad.token)
			}
			res := b.do(http.MethodPost, a.path, form, bad.header)
			expectStatus(t, "POST "+a.path+" with "+bad.name, res, http.StatusForbidden)
		}
	}
	// Nothing changed, and the session still works.
	if r := e.record(c); r.Status != pki.StatusValid {
		t.Errorf("revoked without a valid token: %+v", r)
	}
	reqs, _, _ := e.ops.Requests(context.Background(), auth.CLI("test"), "", "", 10, "")
	if len(reqs) != 1 {
		t.Errorf("pending requests: %+v", reqs)
	}
	chs, _, _ := e.ops.Challenges(context.Background(), auth.CLI("test"), 10, "")
	if len(chs) != 2 {
		t.Errorf("challenges: %d, want 2", len(chs))
	}
	expectStatus(t, "the session after the refusals", b.get("/ui/"), http.StatusOK)
	// A same-origin POST without Origin (an old browser) or with the
	// "null" Origin the no-referrer policy makes is taken, with the token.
	res := b.do(http.MethodPost, certPath(c)+"/revoke", url.Values{"csrf": {b.csrf()}, "issuer": {rec.IssuerID}, "reason": {"superseded"}},
		http.Header{"Origin": {"null"}, "Sec-Fetch-Site": {""}})
	expectStatus(t, "revoke form with Origin null", res, http.StatusOK)
	expectBody(t, "confirmation", res, "Yes, revoke it")
}

func ptr(s string) *string { return &s }

// A certificate revoked for a reason that may still be raised to
// keyCompromise (superseded, say): the same reason again changes nothing
// (200, as the API's changed: false), another one is 409 naming the reason
// that stays, as the API answers it, not "want one of keyCompromise" (r56:
// a page loaded before another operator's revocation offers every reason).
func TestRevokeAgainAfterARaisableReason(t *testing.T) {
	e := newEnv(t, console.Options{})
	c := e.issue("superseded-me")
	rec := e.record(c)
	b := e.as("operator")
	path := certPath(c) + "/revoke"
	res := b.post(path, url.Values{"issuer": {rec.IssuerID}, "reason": {"superseded"}, "confirm": {"yes"}})
	expectStatus(t, "revoke superseded", res, http.StatusSeeOther)

	res = b.post(path, url.Values{"issuer": {rec.IssuerID}, "reason": {"superseded"}, "confirm": {"yes"}})
	expectStatus(t, "the same reason again", res, http.StatusOK)
	expectBody(t, "the same reason again", res, "already revoked with that reason: nothing changed")
	for _, reason := range []string{"affiliationChanged", "unspecified", "5"} {
		res = b.post(path, url.Values{"issuer": {rec.IssuerID}, "reason": {reason}, "confirm": {"yes"}})
		expectStatus(t, "another reason: "+reason, res, http.StatusConflict)
		expectBody(t, "another reason: "+reason, res, "is already revoked at", "reason superseded; the reason stays")
	}
	if r := e.record(c); r.RevokeReason != 4 {
		t.Fatalf("the reason changed: %+v", r)
	}
	res = b.post(path, url.Values{"issuer": {rec.IssuerID}, "reason": {"keyCompromise"}, "confirm": {"yes"}})
	expectStatus(t, "raised to keyCompromise", res, http.StatusSeeOther)
	if r := e.record(c); r.RevokeReason != 1 {
		t.Fatalf("not raised to keyCompromise: %+v", r)
	}
	// keyCompromise again (r61): nothing changed, as the API's 200; another
	// reason still 409.
	for _, reason := range []string{"keyCompromise", "1"} {
		res = b.post(path, url.Values{"issuer": {rec.IssuerID}, "reason": {reason}, "confirm": {"yes"}})
		expectStatus(t, "keyCompromise again: "+reason, res, http.StatusOK)
		expectBody(t, "keyCompromise again: "+reason, res, "already revoked with that reason: nothing changed")
	}
	res = b.post(path, url.Values{"issuer": {rec.IssuerID}, "reason": {"superseded"}, "confirm": {"yes"}})
	expectStatus(t, "another reason after keyCompromise", res, http.StatusConflict)
}

// Revocation takes a reason and a confirmation; the page then says
// revoked. A hold can be lifted.
func TestRevokeWithConfirmation(t *testing.T) {
	e := newEnv(t, console.Options{})
	c := e.issue("revoke-me")
	rec := e.record(c)
	b := e.as("operator")
	path := certPath(c) + "/revoke"

	res := b.post(path, url.Values{"issuer": {rec.IssuerID}})
	expectStatus(t, "revoke without a reason", res, http.StatusUnprocessableEntity)
	expectBody(t, "revoke without a reason", res, "choose a reason", `id="revoke-form"`)
	res = b.post(path, url.Values{"issuer": {rec.IssuerID}, "reason": {"bogus"}})
	expectStatus(t, "revoke with a bad reason", res, http.StatusUnprocessableEntity)
	expectBody(t, "revoke with a bad reason", res, "keyCompromise")

	res = b.post(path, url.Values{"issuer": {rec.IssuerID}, "reason": {"keyCompromise"}})
	expectStatus(t, "revoke, first step", res, http.StatusOK)
	expectBody(t, "confirmation", res, "Revoke this certificate?", `id="revoke-confirm"`, "keyCompromise", "CN=revoke-me")
	if r := e.record(c); r.Status != pki.StatusValid {
		t.Fatalf("revoked before the confirmation: %+v", r)
	}
	if hiddenValue(t, res.body, "confirm") != "yes" || hiddenValue(t, res.body, "reason") != "keyCompromise" {
		t.Fatal("the confirmation form does not carry the reason and confirm=yes")
	}
	res = b.post(path, url.Values{"issuer": {rec.IssuerID}, "reason": {"keyCompromise"}, "confirm": {"yes"}})
	expectStatus(t, "revoke, confirmed", res, http.StatusSeeOther)
	expectSecurityHeaders(t, "the redirect after revoking", res)
	loc := res.Header.Get("Location")
	if loc != certPath(c)+"?issuer="+rec.IssuerID {
		t.Errorf("after revoking: Location %q", loc)
	}
	r := e.record(c)
	if r.Status != pki.StatusRevoked || r.RevokeReason != 1 || r.RevokedBy != "console:operator" {
		t.Fatalf("after revoking: %+v", r)
	}
	page := b.get(loc)
	expectBody(t, "the certificate after revoking", page, `id="cert-status" class="badge badge-revoked">revoked<`, "The certificate is revoked", "keyCompromise", "console:operator", "certificate.revoked")
	expectNotBody(t, "the certificate after revoking", page, `id="revoke-form"`)
	res = b.post(path, url.Values{"issuer": {rec.IssuerID}, "reason": {"superseded"}, "confirm": {"yes"}})
	expectStatus(t, "revoking again", res, http.StatusConflict)
	expectBody(t, "revoking again", res, "is already revoked at", "reason keyCompromise; the reason stays") // as the API says it (r49)

	// Hold, then lift it.
	h := e.issue("hold-me")
	hrec := e.record(h)
	res = b.post(certPath(h)+"/revoke", url.Values{"issuer": {hrec.IssuerID}, "reason": {"certificateHold"}, "confirm": {"yes"}})
	expectStatus(t, "hold", res, http.StatusSeeOther)
	page = b.get(certPath(h))
	expectBody(t, "on hold", page, "on hold", `id="unhold-form"`, `id="revoke-form"`)
	res = b.post(certPath(h)+"/unhold", url.Values{"issuer": {hrec.IssuerID}})
	expectStatus(t, "unhold", res, http.StatusSeeOther)
	if r := e.record(h); r.Status != pki.StatusValid {
		t.Fatalf("after unhold: %+v", r)
	}
	res = b.post(certPath(c)+"/unhold", url.Values{"issuer": {rec.IssuerID}})
	expectStatus(t, "unhold a revoked certificate", res, http.StatusConflict)
	expectBody(t, "unhold a revoked certificate", res, "revoked for good")
	res = b.post(certPath(h)+"/unhold", url.Values{"issuer": {hrec.IssuerID}})
	expectStatus(t, "unhold a certificate that is not on hold", res, http.StatusConflict)
	expectBody(t, "unhold a certificate that is not on hold", res, "is not on hold")
	expectNotBody(t, "unhold a certificate that is not on hold", res, "The hold is lifted")

	// The PEM download is the certificate.
	res = b.get(certPath(c) + "/pem?issuer=" + rec.IssuerID)
	expectStatus(t, "pem", res, http.StatusOK)
	if !strings.HasPrefix(res.body, "-----BEGIN CERTIFICATE-----") || !strings.Contains(res.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("pem: %v\n%s", res.Header, res.body)
	}
	res = b.get(certPath(c) + "/pem?chain=1")
	if strings.Count(res.body, "BEGIN CERTIFICATE") != 1+len(e.pki.Issuer().Chain) {
		t.Errorf("pem with chain: %d certificates", strings.Count(res.body, "BEGIN CERTIFICATE"))
	}
}

// Approving and rejecting held requests; of two approvals at once one
// wins and the other is told.
func TestApprovals(t *testing.T) {
	e := newEnv(t, console.Options{})
	id := e.hold("approve-me")
	a, b := e.as("operator"), e.as("admin")
	expectBody(t, "pending list", a.get("/ui/requests"), "CN=approve-me", id)

	var wg sync.WaitGroup
	results := make([]response, 2)
	for i, br := range []*browser{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = br.post("/ui/requests/"+id+"/approve", nil)
		}()
	}
	wg.Wait()
	var won, lost int
	var winner *browser
	for i, r := range results {
		switch r.StatusCode {
		case http.StatusSeeOther:
			won++
			winner = []*browser{a, b}[i]
		case http.StatusConflict:
			lost++
			expectBody(t, "the second approval", r, `id="error"`)
			if !strings.Contains(r.body, "not pending") && !strings.Contains(r.body, "decided by someone else") {
				t.Errorf("the second approval does not say the request was decided:\n%s", r.body)
			}
		default:
			t.Errorf("approve: %s", r)
		}
	}
	if won != 1 || lost != 1 {
		t.Fatalf("two approvals at once: %d won, %d lost; want one each", won, lost)
	}
	// The approval's banner is the winner's, on the page it was sent to.
	res := winner.get("/ui/requests?status=issued")
	expectBody(t, "issued list", res, "approved and its certificate issued", "CN=approve-me", "the certificate")
	certs, _, err := e.ops.Certificates(context.Background(), auth.CLI("test"), opsQuery("approve-me"))
	if err != nil || len(certs) != 1 {
		t.Fatalf("approved certificate in the inventory: %v %v", certs, err)
	}

	rid := e.hold("reject-me")
	res = a.post("/ui/requests/"+rid+"/reject", url.Values{"reason": {"  "}})
	expectStatus(t, "reject without a reason", res, http.StatusUnprocessableEntity)
	expectBody(t, "reject without a reason", res, "a reason is required", "CN=reject-me")
	// The reason's input allows what the server accepts, 500 bytes (the
	// server still counts them: a character may take several).
	expectBody(t, "the reason's maxlength", a.get("/ui/requests"), `name="reason" type="text" maxlength="500" required`)
	expectNotBody(t, "the reason's maxlength", a.get("/ui/requests"), `maxlength="1024"`)
	res = a.post("/ui/requests/"+rid+"/reject", url.Values{"reason": {strings.Repeat("x", 501)}})
	expectStatus(t, "reject with 501 bytes", res, http.StatusUnprocessableEntity)
	expectBody(t, "reject with 501 bytes", res, "at most 500 are accepted")
	big := e.hold("reject-at-the-limit")
	res = a.post("/ui/requests/"+big+"/reject", url.Values{"reason": {strings.Repeat("x", 500)}})
	expectStatus(t, "reject with 500 bytes", res, http.StatusSeeOther)
	res = a.post("/ui/requests/"+rid+"/reject", url.Values{"reason": {"unknown <device>"}})
	expectStatus(t, "reject", res, http.StatusSeeOther)
	res = a.get("/ui/requests?status=rejected")
	expectBody(t, "rejected list", res, "unknown &lt;device&gt;", "console:operator")
	res = a.post("/ui/requests/"+rid+"/approve", nil)
	expectStatus(t, "approve a rejected request", res, http.StatusConflict)
	res = a.post("/ui/requests/no-such-request/approve", nil)
	expectStatus(t, "approve an unknown request", res, http.StatusNotFound)
}

// A challenge made in the console shows its secret once, works once, and
// is listed without it; it can be deleted.
func TestChallenges(t *testing.T) {
	e := newEnv(t, console.Options{})
	b := e.as("operator")
	res := b.post("/ui/challenges", url.Values{"ttl": {"2h"}, "profile": {"default"}, "subject": {"CN=bound-device"}, "dns": {"bound.example, bound2.example"}})
	expectStatus(t, "create", res, http.StatusOK)
	m := regexp.MustCompile(`<code id="challenge-secret">([^<]+)</code>`).FindStringSubmatch(res.body)
	if m == nil {
		t.Fatalf("no secret in the page:\n%s", res.body)
	}
	secret := m[1]
	expectBody(t, "create", res, `data-copy="challenge-secret"`, "CN=bound-device", "dns:bound.example", "dns:bound2.example")
	list := b.get("/ui/challenges")
	expectNotBody(t, "the list", list, secret, "challenge-secret")
	expectBody(t, "the list", list, "CN=bound-device", "unused")

	// It works once, for the bound identity.
	req := e.pki.Request(t, "bound-device")
	req.Evidence.Challenge = secret
	if _, err := e.pki.Service.Enroll(context.Background(), req.Request); err != nil {
		t.Fatalf("enroll with the console's challenge: %v", err)
	}
	expectBody(t, "after use", b.get("/ui/challenges"), "badge-used")

	// Every value the console reads and refuses is 422; a lifetime out of
	// range is told its value, as one the console cannot read is (r97 D2).
	const lifetime = "want a lifetime from 1s to 30d, like 60m, 24h or 7d"
	for _, tc := range []struct {
		form   url.Values
		reason string
	}{
		{url.Values{"ttl": {"forever"}, "profile": {"default"}}, "want a lifetime from 1s to 30d, like 60m, 24h or 7d"},
		{url.Values{"ttl": {"-1d"}, "profile": {"default"}}, "want a lifetime from 1s to 30d"},
		{url.Values{"ttl": {"99999d"}, "profile": {"default"}}, "want a lifetime from 1s to 30d"},
		{url.Values{"ttl": {""}, "profile": {"default"}}, "enter a lifetime"},
		{url.Values{"ttl": {"-5m"}, "profile": {"default"}}, lifetime},
		{url.Values{"ttl": {"0"}, "profile": {"default"}}, "lifetime &#34;0&#34;: " + lifetime},
		{url.Values{"ttl": {"0d"}, "profile": {"default"}}, "lifetime &#34;0d&#34;: " + lifetime},
		{url.Values{"ttl": {"500ms"}, "profile": {"default"}}, "lifetime &#34;500ms&#34;: " + lifetime},
		{url.Values{"ttl": {"9999h"}, "profile": {"default"}}, lifetime},
		{url.Values{"ttl": {"3651d"}, "profile": {"default"}}, "lifetime &#34;3651d&#34;: " + lifetime},
		{url.Values{"ttl": {"1h"}, "profile": {"nope"}}, "want one of default"},
		{url.Values{"ttl": {"1h"}, "profile": {"default"}, "subject": {strings.Repeat("a", 1025)}}, "the subject or the names are too long"},
		{url.Values{"ttl": {"1h"}, "profile": {"default"}, "subject": {"not a DN"}}, ""},
		{url.Values{"ttl": {"1h"}, "profile": {"default"}, "subject": {"CN=x,C=UK"}}, ""},
		{url.Values{"ttl": {"1h"}, "profile": {"default"}, "dns": {"a..b"}}, ""},
		{url.Values{"ttl": {"1h"}, "profile": {"default"}, "email": {"no-at-sign"}}, ""},
	} {
		what := "create with " + tc.form.Encode()
		res := b.post("/ui/challenges", tc.form)
		expectStatus(t, what, res, http.StatusUnprocessableEntity)
		expectBody(t, what, res, `id="error"`, `id="new-challenge"`, tc.reason)
		expectNotBody(t, what, res, "challenge-secret")
	}

	chs, _, _ := e.ops.Challenges(context.Background(), auth.CLI("test"), 10, "")
	if len(chs) != 1 {
		t.Fatalf("challenges: %+v", chs)
	}
	res = b.post("/ui/challenges/"+chs[0].ID+"/delete", nil)
	expectStatus(t, "delete", res, http.StatusSeeOther)
	res = b.post("/ui/challenges/"+chs[0].ID+"/delete", nil)
	expectStatus(t, "delete again", res, http.StatusNotFound)
}

// Bad input is 4xx with the reason, never 5xx: 400 only for a query the
// console cannot read, 422 for every value it reads and refuses, with the
// API's reason where ops checks the value (the API answers those 422 too).
func TestBadInputIs4xx(t *testing.T) {
	e := newEnv(t, console.Options{})
	c := e.issue("bad-input")
	b := e.as("admin")
	const (
		days      = "want a number from 1 to 366"
		limit     = "want a number from 1 to 500"
		expiring  = "want a number of days from 1 to 36500"
		format    = "want a date (2006-01-02) or a time"
		yearRange = "want a date from 1970 to 9999"
		cursorLen = "the cursor is longer than any this list gives"
		malformed = "malformed query string"
	)
	long := strings.Repeat("a", 300)
	// An issuer prefix that names no CA of the certificate's serial.
	wrongIssuer := "00ff"
	if strings.HasPrefix(e.record(c).IssuerID, wrongIssuer) {
		wrongIssuer = "ff00"
	}
	for _, tc := range []struct {
		path   string
		want   int
		reason string
	}{
		{"/ui/?days=0", 422, days}, {"/ui/?days=367", 422, days}, {"/ui/?days=abc", 422, days},
		{"/ui/certificates?status=revoked;", 400, malformed}, {"/ui/requests?profile=%zz", 400, malformed},
		{"/ui/certificates?status=bogus", 422, "want valid, revoked or expired"},
		{"/ui/certificates?q=" + long, 422, "the search text is longer than 256 characters"},
		{"/ui/certificates?q=a%01b", 422, "the search text holds a control character"},
		{"/ui/certificates?q=%ff", 422, "the search text is not UTF-8"},
		{"/ui/certificates?q=caf%e9", 422, "the search text is not UTF-8"},
		{"/ui/certificates?limit=0", 422, limit}, {"/ui/certificates?limit=1000000", 422, limit}, {"/ui/certificates?limit=abc", 422, limit},
		{"/ui/certificates?expiring=-1", 422, expiring}, {"/ui/certificates?expiring=x", 422, expiring},
		{"/ui/certificates?expiring=99999", 422, expiring}, {"/ui/certificates?expiring=36501", 422, expiring},
		{"/ui/certificates?issued_from=yesterday", 422, format}, {"/ui/certificates?issued_to=2031-13-45", 422, format},
		{"/ui/certificates?issued_from=1969-12-31", 422, yearRange}, {"/ui/certificates?issued_to=0001-01-01", 422, yearRange},
		{"/ui/certificates?issued_to=10000-01-01", 422, yearRange},
		{"/ui/certificates?issued_from=1970-01-01T00:00:00%2B01:00", 422, yearRange},
		// In the form's words, not the API's parameters (r71 D4).
		{"/ui/certificates?issued_from=2031-05-01&issued_to=2031-04-01", 422, "Issued from (2031-05-01) must not be after Issued until (2031-04-01)"},
		{"/ui/certificates?issued_from=2031-04-01T12:00&issued_to=2031-04-01T12:00", 422, "Issued from (2031-04-01T12:00) must be before Issued until (2031-04-01T12:00)"},
		{"/ui/certificates?cursor=%21%21not-a-cursor", 422, "cursor"}, {"/ui/certificates?cursor=ZTox", 422, "cursor"},
		{"/ui/certificates?cursor=" + strings.Repeat("A", 600), 422, cursorLen},
		{"/ui/certificates?sort=upwards", 422, "want newest or expiring"},
		{"/ui/certificates?sort=expiring&status=expired", 422, "it cannot show expired ones"},
		// In the form's words, not the API's expiring_within (r137 D2).
		{"/ui/certificates?expiring=30&status=expired", 422, "Expiring within and the status Expired exclude each other"},
		{"/ui/certificates?protocol=ftp", 422, "want one of scep"},
		{"/ui/certificates?profile=" + long, 422, "the profile name is longer than 128 characters"},
		{"/ui/certificates?issuer=xyz", 422, "want a CA"},
		{"/ui/certificates/zz-not-hex", 422, "is not a positive hexadecimal number"},
		// Read as written, as the API reads it: 0x10 is no serial 10.
		{"/ui/certificates/0x10", 422, "without 0x"}, {"/ui/certificates/%2B10", 422, "a serial has no sign"},
		{"/ui/certificates/10%20", 422, "white space is no part of a serial"}, {"/ui/certificates/:10", 422, "a colon goes only between"},
		{"/ui/certificates/abcdef0123", 404, "no certificate with serial abcdef0123"},
		{certPath(c) + "?issuer=not-hex", 422, "want (a prefix of) a CA"}, {certPath(c) + "?issuer=" + wrongIssuer, 404, `from an issuer whose ID starts with "` + wrongIssuer + `"; that serial is known from issuer ` + e.record(c).IssuerID[:16]},
		{"/ui/certificates/" + strings.Repeat("a", 200), 422, "a serial has at most 64 hexadecimal digits"},
		{"/ui/requests?status=bogus", 422, "want pending, issued, rejected, expired or all"},
		{"/ui/requests?profile=" + long, 422, "the profile name is longer than 128 characters"},
		{"/ui/requests?cursor=" + strings.Repeat("A", 600), 422, cursorLen},
		{"/ui/challenges?cursor=" + strings.Repeat("A", 600), 422, cursorLen},
		{"/ui/audit?type=bogus", 422, "no such type"}, {"/ui/audit?type=%3Cb%3E", 422, "no such type"},
		{"/ui/audit?since=garbage", 422, format}, {"/ui/audit?until=2031-02-30", 422, format},
		{"/ui/audit?since=1969-12-31", 422, yearRange}, {"/ui/audit?until=0001-01-01", 422, yearRange},
		{"/ui/audit?until=1969-12-31T23:59:59Z", 422, yearRange}, {"/ui/audit?since=10000-01-01", 422, yearRange},
		{"/ui/audit?before=abc", 422, "want an event number"}, {"/ui/audit?before=-4", 422, "want an event number"},
		// A number is decimal digits: a sign, white space or 0x is refused
		// as "abc" is, not read leniently (r81 D8).
		{"/ui/audit?before=%2B5", 422, "want an event number"}, {"/ui/audit?before=%205", 422, "want an event number"},
		{"/ui/audit?before=5%20", 422, "want an event number"}, {"/ui/audit?before=0x5", 422, "want an event number"},
		{"/ui/?days=%2B7", 422, days}, {"/ui/?days=%207", 422, days}, {"/ui/?days=0x7", 422, days},
		{"/ui/certificates?limit=%2B1", 422, limit}, {"/ui/certificates?limit=1%09", 422, limit}, {"/ui/audit?limit=%2B5", 422, limit},
		{"/ui/certificates?expiring=%2B30", 422, expiring}, {"/ui/certificates?expiring=%2030", 422, expiring}, {"/ui/certificates?expiring=0x1e", 422, expiring},
		{"/ui/audit?serial=xyz!", 422, "is not a positive hexadecimal number"},
		{"/ui/audit?serial=" + strings.Repeat("a", 200), 422, "a serial has at most 64 hexadecimal digits"},
		// Read as written, as the API and the certificate page read it
		// (r85 D1): each of these listed the events of c's serial.
		{"/ui/audit?serial=0x" + c.SerialNumber.Text(16), 422, "without 0x"},
		{"/ui/audit?serial=%2B" + c.SerialNumber.Text(16), 422, "a serial has no sign"},
		{"/ui/audit?serial=" + c.SerialNumber.Text(16) + "%20", 422, "white space is no part of a serial"},
		{"/ui/audit?serial=%20" + c.SerialNumber.Text(16), 422, "white space is no part of a serial"},
		{"/ui/audit?serial=%3A" + c.SerialNumber.Text(16), 422, "a colon goes only between"},
		{"/ui/audit?serial=10::20", 422, "a colon goes only between"},
		{"/ui/audit/verify?serial=0x" + c.SerialNumber.Text(16), 422, "without 0x"},
		{"/ui/audit?limit=501", 422, limit}, {"/ui/audit?since=2031-05-01&until=2031-04-01", 422, "Since (2031-05-01) must not be after Until (2031-04-01)"},
		{"/ui/nope", 404, "there is no page"}, {"/ui/certificates/x/y/z", 404, "there is no page"},
	} {
		res := b.get(tc.path)
		if res.StatusCode != tc.want {
			t.Errorf("GET %.120s: %d, want %d\n%.600s", tc.path, res.StatusCode, tc.want, res.body)
			continue
		}
		expectBody(t, tc.path, res, `role="alert"`, html.EscapeString(tc.reason))
	}
	// An ID longer than any this server gives names nothing: 404, as the
	// API answers an unknown one.
	for _, path := range []string{"/ui/requests/" + long + "/approve", "/ui/requests/" + long + "/reject", "/ui/challenges/" + long + "/delete"} {
		res := b.post(path, url.Values{"reason": {"no"}})
		expectStatus(t, "POST "+path, res, http.StatusNotFound)
		expectBody(t, "POST "+path, res, `role="alert"`)
	}
	// A cursor from the expiry order given to the newest-first list.
	for i := 0; i < 3; i++ {
		e.issue("paged")
	}
	res := b.get("/ui/certificates?expiring=400&limit=1")
	next := href(t, res.body, "next-page")
	if next == "" {
		t.Fatalf("no next page:\n%s", res.body)
	}
	u, _ := url.Parse(next)
	res = b.get("/ui/certificates?limit=1&cursor=" + url.QueryEscape(u.Query().Get("cursor")))
	expectStatus(t, "a cursor of another order", res, http.StatusUnprocessableEntity)

	// Bodies are bounded; a body that is not a form fails the CSRF check.
	big := url.Values{"csrf": {b.csrf()}, "reason": {strings.Repeat("x", console.MaxFormBytes)}}
	res = b.do(http.MethodPost, "/ui/requests/x/reject", big, nil)
	expectStatus(t, "an oversized form", res, http.StatusRequestEntityTooLarge)
	res = b.do(http.MethodPost, "/ui/challenges", nil, http.Header{"Content-Type": {"application/json"}})
	expectStatus(t, "a JSON body", res, http.StatusForbidden)
	res = b.do(http.MethodPut, "/ui/challenges", nil, nil)
	expectStatus(t, "PUT", res, http.StatusMethodNotAllowed)
	res = b.do(http.MethodPost, "/ui/login", url.Values{"csrf": {strings.Repeat("y", console.MaxFormBytes)}}, nil)
	expectStatus(t, "an oversized login form", res, http.StatusRequestEntityTooLarge)
}

// Filters, search, sort and cursor pages of the inventory; everything a
// certificate carries is escaped.
func TestInventory(t *testing.T) {
	e := newEnv(t, console.Options{})
	for i := 0; i < 5; i++ {
		e.issue("fleet-node")
		e.pki.Clock.Advance(time.Minute)
	}
	evil := e.issue(`<script>alert("x")</script>`)
	gone := e.issue("gone-node")
	b := e.as("auditor")
	res := b.post(certPath(gone)+"/revoke", url.Values{"reason": {"keyCompromise"}})
	expectStatus(t, "auditor revoke", res, http.StatusForbidden)
	e.pki.Revoke(t, gone, 1)

	res = b.get("/ui/certificates")
	expectBody(t, "list", res, `\&lt;script\&gt;alert(\&#34;x\&#34;)\&lt;/script\&gt;`, "CN=gone-node", `id="certs"`)
	expectNotBody(t, "list", res, `<script>alert`)
	expectBody(t, "detail", b.get(certPath(evil)), "&lt;script&gt;")

	// Pages of 2 with a search: three pages, the filters carried along.
	seen := map[string]bool{}
	next := "/ui/certificates?q=fleet&limit=2&status=valid"
	pages := 0
	for next != "" {
		res := b.get(next)
		expectStatus(t, next, res, http.StatusOK)
		rows := regexp.MustCompile(`<code class="serial">([0-9a-f]+)</code>`).FindAllStringSubmatch(res.body, -1)
		if len(rows) == 0 || len(rows) > 2 {
			t.Fatalf("%s: %d rows", next, len(rows))
		}
		for _, r := range rows {
			if seen[r[1]] {
				t.Errorf("serial %s on two pages", r[1])
			}
			seen[r[1]] = true
		}
		next = href(t, res.body, "next-page")
		if next != "" {
			u, _ := url.Parse(next)
			q := u.Query()
			if q.Get("q") != "fleet" || q.Get("limit") != "2" || q.Get("status") != "valid" || q.Get("cursor") == "" {
				t.Errorf("next link %q does not carry the filters and a cursor", next)
			}
		}
		pages++
	}
	if pages != 3 || len(seen) != 5 {
		t.Errorf("search fleet: %d pages, %d certificates; want 3 and 5", pages, len(seen))
	}
	res = b.get("/ui/certificates?status=revoked")
	expectBody(t, "revoked", res, "CN=gone-node")
	expectNotBody(t, "revoked", res, "CN=fleet-node")
	res = b.get("/ui/certificates?sort=expiring&limit=500")
	expectBody(t, "expiring first", res, "Soonest expiry first")
	res = b.get("/ui/certificates?q=no-such-thing")
	expectBody(t, "no match", res, "No certificate matches")
	res = b.get("/ui/certificates?issued_from=2031-03-04&issued_to=2031-03-04&protocol=cli")
	expectBody(t, "issued on the fixture's day", res, "CN=fleet-node")
	res = b.get("/ui/certificates?issued_from=2030-01-01&issued_to=2030-12-31")
	expectBody(t, "issued a year before", res, "No certificate matches")
}

// Logout ends the session in the store: the old cookie opens nothing.
func TestLogout(t *testing.T) {
	e := newEnv(t, console.Options{})
	b := e.as("operator")
	old := *b.cookies[console.SessionCookie]
	token := b.csrf()
	res := b.post("/ui/logout", nil)
	expectStatus(t, "logout", res, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/ui/login" {
		t.Errorf("logout: Location %q", loc)
	}
	var cleared bool
	for _, c := range res.Cookies() {
		if c.Name == console.SessionCookie && c.MaxAge < 0 {
			cleared = true
		}
	}
	if !cleared {
		t.Error("logout does not clear the session cookie")
	}
	expectBody(t, "after logout", b.get("/ui/login"), "You have logged out")
	// Said once: the login page takes the cookie that carried it.
	expectNotBody(t, "the login page loaded again", b.get("/ui/login"), "You have logged out")
	// Not from a link: the query parameter of older builds says nothing.
	expectNotBody(t, "a link to /ui/login?done=logout", e.browser().get("/ui/login?done=logout"), "You have logged out")

	// The old cookie, replayed.
	b.cookies[console.SessionCookie] = &old
	res = b.get("/ui/certificates")
	expectStatus(t, "GET with the old cookie", res, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); !strings.HasPrefix(loc, "/ui/login?next=") {
		t.Errorf("GET with the old cookie: Location %q", loc)
	}
	b.cookies[console.SessionCookie] = &old
	res = b.post("/ui/challenges", url.Values{"csrf": {token}, "ttl": {"1h"}})
	expectStatus(t, "POST with the old cookie", res, http.StatusForbidden)
	expectBody(t, "POST with the old cookie", res, "your session has ended")
	// Logging out again is just the way to the login page.
	b.cookies[console.SessionCookie] = &old
	res = b.post("/ui/logout", url.Values{"csrf": {token}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/ui/login" {
		t.Errorf("logout with an ended session: %s", res)
	}
	if _, err := e.auth.SessionPrincipal(context.Background(), old.Value); err != auth.ErrUnauthenticated {
		t.Errorf("the session after logout: %v", err)
	}
}

// Repeated wrong passwords lock the login, and the page says until when;
// a name that is no user's gets the same answers, locked out alike, so
// that the lockout does not tell which names are users.
func TestLockout(t *testing.T) {
	e := newEnv(t, console.Options{})
	b := e.browser()
	for i := 0; i < auth.LockAfter; i++ {
		res := b.tryLogin("operator", "wrong-password-123")
		expectStatus(t, "wrong password", res, http.StatusUnauthorized)
		expectBody(t, "wrong password", res, "Wrong user name or password.")
	}
	until := fixture.Start.Add(auth.LockBase).UTC().Format("2006-01-02 15:04:05 UTC")
	res := b.tryLogin("operator", e.passwords["operator"])
	expectStatus(t, "the right password while locked", res, http.StatusTooManyRequests)
	expectBody(t, "locked", res, "locked until "+until, `role="alert"`)
	if got, want := res.Header.Get("Retry-After"), strconv.Itoa(int(auth.LockBase/time.Second)); got != want {
		t.Errorf("locked: Retry-After %q, want %q (the seconds until the lock ends)", got, want)
	}
	if b.cookies[console.SessionCookie] != nil {
		t.Fatal("a session while locked")
	}
	for i := 0; i < auth.LockAfter; i++ {
		res := b.tryLogin("nobody-here", "wrong-password-123")
		expectStatus(t, "unknown user", res, http.StatusUnauthorized)
		expectBody(t, "unknown user", res, "Wrong user name or password.")
		expectNotBody(t, "unknown user", res, "locked")
	}
	res = b.tryLogin("nobody-here", "wrong-password-123")
	expectStatus(t, "unknown user, as often as the user", res, http.StatusTooManyRequests)
	expectBody(t, "unknown user, as often as the user", res, "locked until "+until, `role="alert"`)
	// Later in the lock, less to wait (a part of a second counts whole).
	e.pki.Clock.Advance(auth.LockBase/2 + time.Second/2)
	res = b.tryLogin("operator", e.passwords["operator"])
	if got, want := res.Header.Get("Retry-After"), strconv.Itoa(int(auth.LockBase/2/time.Second)); got != want {
		t.Errorf("half-way through the lock: Retry-After %q, want %q", got, want)
	}
	e.pki.Clock.Advance(auth.LockBase/2 + time.Second/2)
	b.login("operator")
	expectStatus(t, "after the lock", b.get("/ui/"), http.StatusOK)
}

// A user name longer than any user's is a wrong name, not a missing one:
// 401, counted towards the lockout as any unknown name is.
func TestLoginLongUserName(t *testing.T) {
	e := newEnv(t, console.Options{})
	b := e.browser()
	long := strings.Repeat("a", 200)
	for i := 0; i < auth.LockAfter; i++ {
		res := b.tryLogin(long, "wrong-password-123")
		expectStatus(t, "a long name", res, http.StatusUnauthorized)
		expectBody(t, "a long name", res, "Wrong user name or password.")
		expectNotBody(t, "a long name", res, long)
	}
	res := b.tryLogin(long, "wrong-password-123")
	expectStatus(t, "a long name, as often as a user", res, http.StatusTooManyRequests)
}

// A login without a name or a password is a value read and refused: 422
// with the form again and what to fill in, counted as no failed login (the
// user is not locked by it).
func TestLoginEmptyFields(t *testing.T) {
	e := newEnv(t, console.Options{})
	b := e.browser()
	for _, c := range []struct{ name, user, password string }{
		{"no name", "", "wrong-password-123"},
		{"no password", "operator", ""},
		{"neither", "", ""},
	} {
		for i := 0; i < auth.LockAfter; i++ {
			res := b.tryLogin(c.user, c.password)
			expectStatus(t, c.name, res, http.StatusUnprocessableEntity)
			expectBody(t, c.name, res, "Enter your user name and password.", `name="username"`)
		}
	}
	b.login("operator")
	expectStatus(t, "after empty logins", b.get("/ui/"), http.StatusOK)
}

// The session cookie: HttpOnly, Secure, SameSite=Strict, Path=/ui/,
// expiring with the session; the login form's pre-session cookie alike.
// The login form needs its pre-session token (no login CSRF).
func TestCookiesAndLoginCSRF(t *testing.T) {
	e := newEnv(t, console.Options{})
	b := e.browser()
	page := b.get("/ui/login")
	lc := b.cookies[console.LoginCookie]
	if lc == nil || !lc.HttpOnly || !lc.Secure || lc.SameSite != http.SameSiteStrictMode || lc.Path != "/ui/" {
		t.Fatalf("pre-session cookie: %+v", lc)
	}
	if hiddenValue(t, page.body, "csrf") != lc.Value {
		t.Fatal("the login form's token is not the cookie's")
	}
	res := b.do(http.MethodPost, "/ui/login", url.Values{"username": {"admin"}, "password": {e.passwords["admin"]}}, nil)
	expectStatus(t, "login without the form's token", res, http.StatusForbidden)
	res = b.do(http.MethodPost, "/ui/login", url.Values{"csrf": {"forged"}, "username": {"admin"}, "password": {e.passwords["admin"]}}, nil)
	expectStatus(t, "login with a forged token", res, http.StatusForbidden)
	nocookie := e.browser()
	res = nocookie.do(http.MethodPost, "/ui/login", url.Values{"csrf": {lc.Value}, "username": {"admin"}, "password": {e.passwords["admin"]}}, nil)
	expectStatus(t, "login without the pre-session cookie", res, http.StatusForbidden)
	tok := hiddenValue(t, b.get("/ui/login").body, "csrf")
	res = b.do(http.MethodPost, "/ui/login", url.Values{"csrf": {tok}, "username": {"admin"}, "password": {e.passwords["admin"]}},
		http.Header{"Origin": {"https://evil.example"}})
	expectStatus(t, "login from another site", res, http.StatusForbidden)
	if b.cookies[console.SessionCookie] != nil || nocookie.cookies[console.SessionCookie] != nil {
		t.Fatal("a session was opened by a forged login")
	}

	// The real thing, with a next page.
	tok = hiddenValue(t, b.get("/ui/login?next=%2Fui%2Fcas").body, "csrf")
	res = b.do(http.MethodPost, "/ui/login", url.Values{"csrf": {tok}, "username": {"admin"}, "password": {e.passwords["admin"]}, "next": {"/ui/cas"}}, nil)
	expectStatus(t, "login", res, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/ui/cas" {
		t.Errorf("login: Location %q, want /ui/cas", loc)
	}
	var sc *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == console.SessionCookie {
			sc = c
		}
	}
	if sc == nil {
		t.Fatal("no session cookie")
	}
	if !sc.HttpOnly || !sc.Secure || sc.SameSite != http.SameSiteStrictMode || sc.Path != "/ui/" {
		t.Errorf("session cookie attributes: %+v", sc)
	}
	if sc.MaxAge != int(auth.SessionTTL/time.Second) || !sc.Expires.Equal(fixture.Start.Add(auth.SessionTTL)) {
		t.Errorf("session cookie expiry: MaxAge %d, Expires %v; want %v", sc.MaxAge, sc.Expires, fixture.Start.Add(auth.SessionTTL))
	}
	if _, ok := b.cookies[console.LoginCookie]; ok {
		t.Error("the pre-session cookie outlives the login")
	}
	// Not a redirect to another site.
	for _, next := range []string{"//evil.example/ui/", "https://evil.example/ui/", "/ui/\\evil", "/elsewhere", "/ui/login"} {
		o := e.browser()
		tok := hiddenValue(t, o.get("/ui/login").body, "csrf")
		res := o.do(http.MethodPost, "/ui/login", url.Values{"csrf": {tok}, "username": {"auditor"}, "password": {e.passwords["auditor"]}, "next": {next}}, nil)
		if loc := res.Header.Get("Location"); loc != "/ui/" {
			t.Errorf("login with next=%q: Location %q, want /ui/", next, loc)
		}
	}
	// Without a session, pages send the browser to the login.
	res = e.browser().get("/ui/audit?type=x")
	expectStatus(t, "no session", res, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/ui/login?next=%2Fui%2Faudit%3Ftype%3Dx" {
		t.Errorf("no session: Location %q", loc)
	}

	// InsecureCookies drops Secure (plain-HTTP tests only).
	ie := newEnv(t, console.Options{InsecureCookies: true})
	ib := ie.as("admin")
	if ib.cookies[console.SessionCookie].Secure {
		t.Error("InsecureCookies: the session cookie is Secure")
	}
}

// The audit page filters, pages and verifies.
func TestAuditPage(t *testing.T) {
	e := newEnv(t, console.Options{})
	c := e.issue("audited")
	for i := 0; i < 4; i++ {
		e.issue("filler")
	}
	b := e.as("auditor")
	res := b.get("/ui/audit?serial=" + c.SerialNumber.Text(16))
	expectBody(t, "by serial", res, "certificate.issued", "CN=audited")
	expectNotBody(t, "by serial", res, "CN=filler")
	res = b.get("/ui/audit?type=certificate.issued&limit=2")
	next := href(t, res.body, "next-page")
	if next == "" || !strings.Contains(next, "type=certificate.issued") || !strings.Contains(next, "before=") {
		t.Fatalf("audit next link %q", next)
	}
	expectStatus(t, "audit page 2", b.get(next), http.StatusOK)
	res = b.get("/ui/audit/verify?type=certificate.issued")
	expectBody(t, "verify", res, "The hash chain is intact", `id="verify-result"`)
	res = b.get("/ui/audit?since=2031-03-05")
	expectBody(t, "since tomorrow", res, "No events match")
}

func opsQuery(search string) ops.CertQuery { return ops.CertQuery{Search: search} }

// adminSpec is a one-hour challenge at a profile.
func adminSpec(profile string) admin.ChallengeSpec {
	return admin.ChallengeSpec{TTL: time.Hour, Profile: profile}
}

// Strict-Transport-Security is sent over HTTPS only (RFC 6797 section
// 7.2), on every answer of the console.
func TestHSTSOnlyOverHTTPS(t *testing.T) {
	e := newEnv(t, console.Options{})
	for _, path := range []string{"/ui/login", "/ui/", "/ui/no-such-page", "/ui/static/console.css"} {
		for _, scheme := range []string{"https", "http"} {
			r := httptest.NewRequest(http.MethodGet, scheme+"://console.test"+path, nil)
			rec := httptest.NewRecorder()
			e.handler.ServeHTTP(rec, r)
			got, want := rec.Result().Header.Get("Strict-Transport-Security"), ""
			if scheme == "https" {
				want = "max-age=31536000"
			}
			if got != want {
				t.Errorf("GET %s://…%s: Strict-Transport-Security %q, want %q", scheme, path, got, want)
			}
		}
	}
}

// TestMethodNotAllowedNamesTheMethods: a path the console has, asked with
// another method, is a 405 whose Allow header names the methods it takes
// (RFC 9110 section 15.5.6); a path it does not have is a 404, whatever
// the method.
func TestMethodNotAllowedNamesTheMethods(t *testing.T) {
	e := newEnv(t, console.Options{})
	b := e.as(string(pki.RoleAdmin))
	for _, tc := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{http.MethodGet, "/ui/logout", http.StatusMethodNotAllowed, "POST"},
		{http.MethodDelete, "/ui/logout", http.StatusMethodNotAllowed, "POST"},
		{http.MethodDelete, "/ui/login", http.StatusMethodNotAllowed, "GET, HEAD, POST"},
		{http.MethodGet, "/ui/certificates/0a/revoke", http.StatusMethodNotAllowed, "POST"},
		{http.MethodGet, "/ui/requests/X/approve", http.StatusMethodNotAllowed, "POST"},
		{http.MethodPut, "/ui/challenges", http.StatusMethodNotAllowed, "GET, HEAD, POST"},
		{http.MethodPost, "/ui/certificates", http.StatusMethodNotAllowed, "GET, HEAD"},
		{http.MethodDelete, "/ui/", http.StatusMethodNotAllowed, "GET, HEAD"},
		{http.MethodGet, "/ui/nope", http.StatusNotFound, ""},
		{http.MethodGet, "/ui/certificates/0a/revoke/more", http.StatusNotFound, ""},
		// A path no route has is no resource, whatever the method: 404
		// as for a GET, with no Allow to name (r85 D6).
		{http.MethodPost, "/ui/nothing-here", http.StatusNotFound, ""},
		{http.MethodPost, "/ui/challenges/", http.StatusNotFound, ""},
		{http.MethodPut, "/ui/certificates/0a/revoke/more", http.StatusNotFound, ""},
		{http.MethodDelete, "/ui/nope", http.StatusNotFound, ""},
		{http.MethodPost, "/ui/%2e/challenges", http.StatusNotFound, ""},
	} {
		res := b.do(tc.method, tc.path, nil, nil)
		if res.StatusCode != tc.status || res.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d, Allow %q; want %d, Allow %q", tc.method, tc.path, res.StatusCode, res.Header.Get("Allow"), tc.status, tc.allow)
		}
	}
}

// TestChallengeFormLongLifetime: a console user's credential does not
// expire (only API tokens do), so the bound on a challenge's lifetime by
// the caller's (which the form shares with the API, through ops) leaves
// the form the whole range.
func TestChallengeFormLongLifetime(t *testing.T) {
	e := newEnv(t, console.Options{})
	res := e.as("operator").post("/ui/challenges", url.Values{"ttl": {"720h"}, "profile": {"default"}})
	expectStatus(t, "a challenge for 30 days", res, http.StatusOK)
	expectBody(t, "a challenge for 30 days", res, "Copy its secret now")
	chs, _, err := e.ops.Challenges(context.Background(), auth.CLI("test"), 10, "")
	if err != nil || len(chs) != 1 || chs[0].ExpiresAt.Sub(e.pki.Clock.Now()) != 720*time.Hour {
		t.Errorf("challenges: %+v, %v; want one for 720h", chs, err)
	}
}

// TestListsPageOn: the pending approvals and the challenges show a page
// at a time, with a link to the next; the oldest (a request about to
// expire, a challenge to delete) is reached through them.
func TestListsPageOn(t *testing.T) {
	e := newEnv(t, console.Options{})
	ctx := context.Background()
	now := e.pki.Clock.Now()
	const n = 205 // more than a page (200)
	for i := range n {
		r := pki.EnrollmentRequest{ID: fmt.Sprintf("req-%03d", i), TransactionID: fmt.Sprintf("tx-%d", i), Profile: "held",
			Protocol: pki.ProtocolSCEP, Status: pki.RequestPending, Subject: fmt.Sprintf("CN=bulk-%03d", i), CSR: []byte{0x30},
			CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := e.pki.Store.CreateRequest(ctx, r, nil, pki.AuditEvent{Type: pki.EventRequestPending, Time: now}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.ops.NewChallenge(ctx, auth.CLI("test"), admin.ChallengeSpec{TTL: time.Hour, Subject: fmt.Sprintf("CN=ch-%03d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	b := e.as("operator")
	for _, tc := range []struct {
		page, newest, oldest, more string
	}{
		{"/ui/requests", "CN=bulk-204", "CN=bulk-000", "No more requests."},
		{"/ui/requests?profile=held", "CN=bulk-204", "CN=bulk-000", "No more requests."},
		{"/ui/challenges", "CN=ch-204", "CN=ch-000", "No more challenges."},
	} {
		first := b.get(tc.page)
		expectStatus(t, tc.page, first, http.StatusOK)
		expectBody(t, tc.page, first, tc.newest, "older ones on the next pages")
		expectNotBody(t, tc.page, first, tc.oldest+"<", "First page")
		next := href(t, first.body, "next-page")
		if next == "" {
			t.Fatalf("%s: no link to the next page", tc.page)
		}
		second := b.get(next)
		expectStatus(t, tc.page+", page 2", second, http.StatusOK)
		expectBody(t, tc.page+", page 2", second, tc.oldest+"<", "First page", "(a later page)")
		expectNotBody(t, tc.page+", page 2", second, tc.newest+"<")
		if href(t, second.body, "next-page") != "" {
			t.Errorf("%s, page 2: a next page after the oldest", tc.page)
		}
	}
	// The cursor of one list is refused by another, and with another filter.
	u, _ := url.Parse(href(t, b.get("/ui/requests").body, "next-page"))
	cursor := url.QueryEscape(u.Query().Get("cursor"))
	expectStatus(t, "a requests cursor for challenges", b.get("/ui/challenges?cursor="+cursor), http.StatusUnprocessableEntity)
	expectStatus(t, "a requests cursor with another status", b.get("/ui/requests?status=all&cursor="+cursor), http.StatusUnprocessableEntity)
}
