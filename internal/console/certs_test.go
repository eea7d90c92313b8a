package console_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/console"
	"github.com/scepter/scepter/internal/pki"
)

// Holding a certificate that is on hold already changes nothing, as the
// API answers it (200, changed: false): the page says it is on hold, not
// that certificateHold is an unknown reason, with or without the
// confirmation, and the hold stays as it was.
func TestHoldAgain(t *testing.T) {
	e := newEnv(t, console.Options{})
	c := e.issue("hold-twice")
	rec := e.record(c)
	b := e.as("operator")
	path := certPath(c) + "/revoke"
	res := b.post(path, url.Values{"issuer": {rec.IssuerID}, "reason": {"certificateHold"}, "confirm": {"yes"}})
	expectStatus(t, "hold", res, http.StatusSeeOther)
	held := e.record(c)
	if held.Status != pki.StatusRevoked || held.RevokeReason != 6 {
		t.Fatalf("after the hold: %+v", held)
	}
	for _, confirm := range []string{"", "yes"} {
		res = b.post(path, url.Values{"issuer": {rec.IssuerID}, "reason": {"certificateHold"}, "confirm": {confirm}})
		what := "hold again, confirm=" + confirm
		expectStatus(t, what, res, http.StatusOK)
		expectBody(t, what, res, "already on hold", `id="flash"`, `id="unhold-form"`)
		expectNotBody(t, what, res, `id="error"`, "want one of", `id="revoke-confirm"`)
		if r := e.record(c); r.Status != held.Status || r.RevokeReason != held.RevokeReason || !r.RevokedAt.Equal(held.RevokedAt) {
			t.Errorf("%s: the record changed: %+v", what, r)
		}
	}
	// Another reason still makes the hold permanent.
	res = b.post(path, url.Values{"issuer": {rec.IssuerID}, "reason": {"keyCompromise"}, "confirm": {"yes"}})
	expectStatus(t, "hold made permanent", res, http.StatusSeeOther)
	if r := e.record(c); r.RevokeReason != 1 {
		t.Errorf("after keyCompromise: %+v", r)
	}
}

// A certificate revoked for another reason offers keyCompromise alone, as
// the API allows raising to it (its key found compromised later); one
// revoked for keyCompromise offers nothing.
func TestRaiseToKeyCompromise(t *testing.T) {
	e := newEnv(t, console.Options{})
	c := e.issue("raise-later")
	rec := e.record(c)
	b := e.as("operator")
	path := certPath(c) + "/revoke"
	res := b.post(path, url.Values{"issuer": {rec.IssuerID}, "reason": {"superseded"}, "confirm": {"yes"}})
	expectStatus(t, "superseded", res, http.StatusSeeOther)
	page := b.get(certPath(c) + "?issuer=" + url.QueryEscape(rec.IssuerID))
	expectBody(t, "a superseded certificate", page, `id="revoke-form"`, `<option value="keyCompromise">`)
	expectNotBody(t, "a superseded certificate", page, `<option value="superseded">`, `<option value="cessationOfOperation">`)
	res = b.post(path, url.Values{"issuer": {rec.IssuerID}, "reason": {"cessationOfOperation"}, "confirm": {"yes"}})
	expectStatus(t, "another milder reason", res, http.StatusConflict)
	expectBody(t, "another milder reason", res, "the reason stays")
	res = b.post(path, url.Values{"issuer": {rec.IssuerID}, "reason": {"keyCompromise"}, "confirm": {"yes"}})
	expectStatus(t, "raised", res, http.StatusSeeOther)
	if r := e.record(c); r.RevokeReason != 1 || !r.RevokedAt.Equal(e.record(c).RevokedAt) {
		t.Errorf("after the raise: %+v", r)
	}
	page = b.get(certPath(c) + "?issuer=" + url.QueryEscape(rec.IssuerID))
	expectNotBody(t, "a compromised certificate", page, `id="revoke-form"`)
}

// TestRevokeFormTakesReasonCodes: the form reads a reason as the API and
// the CLI do, a name in any case or its code (1 for keyCompromise), and
// still refuses one it does not offer, or no reason at all.
func TestRevokeFormTakesReasonCodes(t *testing.T) {
	e := newEnv(t, console.Options{})
	b := e.as("operator")
	for _, tc := range []struct {
		reason string
		want   int
		code   int // the reason recorded, when revoked
	}{
		{"1", http.StatusSeeOther, pki.ReasonKeyCompromise},
		{"4", http.StatusSeeOther, pki.ReasonSuperseded},
		{"keycompromise", http.StatusSeeOther, pki.ReasonKeyCompromise},
		{"6", http.StatusSeeOther, pki.ReasonCertificateHold},
		{"8", http.StatusUnprocessableEntity, 0},  // removeFromCRL: no reason to revoke
		{"10", http.StatusUnprocessableEntity, 0}, // aACompromise
		{"+1", http.StatusUnprocessableEntity, 0},
		{"7", http.StatusUnprocessableEntity, 0}, // no such code
	} {
		c := e.issue("reason-" + tc.reason)
		res := b.post(certPath(c)+"/revoke", url.Values{"issuer": {e.record(c).IssuerID}, "reason": {tc.reason}, "confirm": {"yes"}})
		expectStatus(t, "reason "+tc.reason, res, tc.want)
		r := e.record(c)
		if tc.want == http.StatusSeeOther && (r.Status != pki.StatusRevoked || r.RevokeReason != tc.code) {
			t.Errorf("reason %s: %s, reason %d; want revoked for %d", tc.reason, r.Status, r.RevokeReason, tc.code)
		}
		if tc.want != http.StatusSeeOther && r.Status != pki.StatusValid {
			t.Errorf("reason %s: revoked", tc.reason)
		}
	}
	// A code never used to revoke is refused with the API's reason.
	aa := e.issue("reason-aa")
	res := b.post(certPath(aa)+"/revoke", url.Values{"issuer": {e.record(aa).IssuerID}, "reason": {"10"}, "confirm": {"yes"}})
	expectStatus(t, "reason 10", res, http.StatusUnprocessableEntity)
	expectBody(t, "reason 10", res, "aACompromise is for attribute certificates")
	// Without confirm, the confirmation step names the reason.
	c := e.issue("reason-confirm")
	res = b.post(certPath(c)+"/revoke", url.Values{"issuer": {e.record(c).IssuerID}, "reason": {"1"}})
	expectStatus(t, "reason 1 unconfirmed", res, http.StatusOK)
	expectBody(t, "reason 1 unconfirmed", res, `id="revoke-confirm"`, "keyCompromise")
}

// A field sent twice cannot be read one way: every form that changes
// something refuses it (400, naming the field), as the API refuses a
// repeated JSON key, instead of taking the first value and dropping the
// other (reason=superseded&reason=keyCompromise revoked as superseded, the
// compromised key unrecorded); and a page refuses a repeated query
// parameter, as the API does.
func TestRepeatedFieldsAreRefused(t *testing.T) {
	e := newEnv(t, console.Options{})
	b := e.as("admin")
	c := e.issue("repeated-fields")
	rec := e.record(c)
	held := e.issue("repeated-held")
	if res := b.post(certPath(held)+"/revoke", url.Values{"issuer": {e.record(held).IssuerID}, "reason": {"certificateHold"}, "confirm": {"yes"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("hold: %s", res)
	}
	pending := e.hold("repeated-request")
	for _, tc := range []struct {
		name, path, field string
		form              url.Values
	}{
		{"revoke, two reasons", certPath(c) + "/revoke", "reason",
			url.Values{"issuer": {rec.IssuerID}, "reason": {"superseded", "keyCompromise"}, "confirm": {"yes"}}},
		{"revoke, the same reason twice", certPath(c) + "/revoke", "reason",
			url.Values{"issuer": {rec.IssuerID}, "reason": {"keyCompromise", "keyCompromise"}, "confirm": {"yes"}}},
		{"revoke, two confirms", certPath(c) + "/revoke", "confirm",
			url.Values{"issuer": {rec.IssuerID}, "reason": {"superseded"}, "confirm": {"no", "yes"}}},
		{"unhold, two issuers", certPath(held) + "/unhold", "issuer",
			url.Values{"issuer": {e.record(held).IssuerID, "00"}}},
		{"reject, two reasons", "/ui/requests/" + pending + "/reject", "reason",
			url.Values{"reason": {"one", "two"}}},
		{"approve, two tokens", "/ui/requests/" + pending + "/approve", "csrf",
			url.Values{"csrf": {b.csrf(), b.csrf()}}},
		{"new challenge, two lifetimes", "/ui/challenges", "ttl",
			url.Values{"ttl": {"1h", "30d"}}},
	} {
		res := b.post(tc.path, tc.form)
		expectStatus(t, tc.name, res, http.StatusBadRequest)
		expectBody(t, tc.name, res, `role="alert"`, html.EscapeString(`the form field "`+tc.field+`" is given 2 times`), "send it once")
	}
	if r := e.record(c); r.Status != pki.StatusValid {
		t.Errorf("revoked by a form with a repeated field: %+v", r)
	}
	if r := e.record(held); r.Status != pki.StatusRevoked {
		t.Errorf("hold lifted by a form with a repeated field: %+v", r)
	}
	if reqs, _, err := e.ops.Requests(context.Background(), auth.CLI("test"), "pending", "", 10, ""); err != nil || len(reqs) != 1 {
		t.Errorf("pending requests after repeated fields: %d, %v; want the one still pending", len(reqs), err)
	}
	// The login form too: which name would it be?
	res := e.browser().do(http.MethodGet, "/ui/login", nil, nil)
	token := hiddenValue(t, res.body, "csrf")
	lb := e.browser()
	lb.cookies[console.LoginCookie] = &http.Cookie{Name: console.LoginCookie, Value: token}
	res = lb.do(http.MethodPost, "/ui/login", url.Values{"csrf": {token}, "username": {"auditor", "admin"}, "password": {e.passwords["admin"]}}, nil)
	expectStatus(t, "login, two names", res, http.StatusBadRequest)
	expectBody(t, "login, two names", res, html.EscapeString(`the form field "username" is given 2 times`))
	if lb.cookies[console.SessionCookie] != nil {
		t.Error("a session from a login form with two names")
	}
	for _, path := range []string{"/ui/certificates?status=valid&status=revoked", "/ui/?days=7&days=30", "/ui/audit?type=a&type=b"} {
		res := b.get(path)
		expectStatus(t, path, res, http.StatusBadRequest)
		expectBody(t, path, res, `role="alert"`, "is given 2 times")
	}
}

// TestExpiringSelectNamesTheWindowShown: the inventory's "expiring within"
// select has the window the list is filtered by selected, one not among
// its choices too, so that sending the form again (another status, say)
// keeps the filter rather than drop it for "any time"; one day is "1 day".
func TestExpiringSelectNamesTheWindowShown(t *testing.T) {
	e := newEnv(t, console.Options{})
	b := e.as("auditor")
	selected := regexp.MustCompile(`(?s)<select id="expiring".*?</select>`)
	for _, tc := range []struct{ query, want, notWant string }{
		{"", `<option value="">any time</option>`, ` selected`},
		// Expiry order without a window (every unexpired one) is no window.
		{"?sort=expiring", `<option value="">any time</option>`, ` selected`},
		{"?expiring=30", `<option value="30" selected>30 days</option>`, `value="14"`},
		{"?expiring=14", `<option value="14" selected>14 days</option>`, `value="" selected`},
		{"?expiring=1", `<option value="1" selected>1 day</option>`, `1 days`},
		{"?expiring=007", `<option value="7" selected>7 days</option>`, `value="007"`},
	} {
		res := b.get("/ui/certificates" + tc.query)
		expectStatus(t, tc.query, res, http.StatusOK)
		sel := selected.FindString(res.body)
		if !strings.Contains(sel, tc.want) || strings.Contains(sel, tc.notWant) || strings.Count(sel, " selected") > 1 {
			t.Errorf("GET /ui/certificates%s: the select reads\n%s\nwant %s, not %s", tc.query, sel, tc.want, tc.notWant)
		}
	}
}
