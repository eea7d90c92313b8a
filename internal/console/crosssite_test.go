package console_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/console"
)

// A form sent from another site is refused for that reason, whether or not
// its browser sent the session cookie: SameSite=Strict keeps the cookie off
// a cross-site POST, and "your session has ended" would tell a person still
// logged in that they were logged out (r111 D1).
func TestCrossSiteFormSaysWhereItCameFrom(t *testing.T) {
	e := newEnv(t, console.Options{})
	c := e.issue("cross-site-target")
	rec := e.record(c)
	id := e.hold("cross-site-held")
	_, ch, err := e.ops.NewChallenge(context.Background(), auth.CLI("test"), adminSpec("default"))
	if err != nil {
		t.Fatal(err)
	}
	b := e.as("operator")
	actions := []struct {
		path string
		form url.Values
	}{
		{certPath(c) + "/revoke", url.Values{"issuer": {rec.IssuerID}, "reason": {"keyCompromise"}, "confirm": {"yes"}}},
		{certPath(c) + "/unhold", url.Values{"issuer": {rec.IssuerID}}},
		{"/ui/requests/" + id + "/approve", url.Values{}},
		{"/ui/requests/" + id + "/reject", url.Values{"reason": {"no"}}},
		{"/ui/challenges", url.Values{"ttl": {"2h"}, "profile": {"default"}}},
		{"/ui/challenges/" + ch.ID + "/delete", url.Values{}},
	}
	foreign := []struct {
		name   string
		header http.Header
	}{
		{"cross-site fetch from another origin", http.Header{"Origin": {"http://127.0.0.1:31772"}, "Sec-Fetch-Site": {"cross-site"}}},
		{"same-site fetch from another port", http.Header{"Origin": {"https://console.test:8443"}, "Sec-Fetch-Site": {"same-site"}}},
		{"another site's Origin", http.Header{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {""}}},
		{"another site's Referer", http.Header{"Origin": {""}, "Referer": {"https://evil.example/x"}, "Sec-Fetch-Site": {""}}},
	}
	for _, a := range actions {
		for _, f := range foreign {
			for _, withCookie := range []bool{false, true} {
				sender := e.browser() // the cookie kept off, as SameSite=Strict does
				what := "POST " + a.path + " from " + f.name + " without the cookie"
				if withCookie {
					sender = b
					what = "POST " + a.path + " from " + f.name + " with the cookie"
				}
				form := url.Values{"csrf": {b.csrf()}}
				for k, v := range a.form {
					form[k] = v
				}
				res := sender.do(http.MethodPost, a.path, form, f.header)
				expectStatus(t, what, res, http.StatusForbidden)
				expectBody(t, what, res, "this form was sent from another site")
				expectNotBody(t, what, res, "session has ended")
			}
		}
	}
	// The session lives on, and nothing changed.
	expectBody(t, "the dashboard after the refusals", b.get("/ui/"), "operator")
	if r := e.record(c); r.Status != rec.Status {
		t.Errorf("the certificate changed: %s, was %s", r.Status, rec.Status)
	}
}
