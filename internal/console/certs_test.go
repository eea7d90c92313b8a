package console_test

import (
	"net/http"
	"net/url"
	"testing"

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
	expectStatus(t, "another milder reason", res, http.StatusBadRequest)
	res = b.post(path, url.Values{"issuer": {rec.IssuerID}, "reason": {"keyCompromise"}, "confirm": {"yes"}})
	expectStatus(t, "raised", res, http.StatusSeeOther)
	if r := e.record(c); r.RevokeReason != 1 || !r.RevokedAt.Equal(e.record(c).RevokedAt) {
		t.Errorf("after the raise: %+v", r)
	}
	page = b.get(certPath(c) + "?issuer=" + url.QueryEscape(rec.IssuerID))
	expectNotBody(t, "a compromised certificate", page, `id="revoke-form"`)
}
