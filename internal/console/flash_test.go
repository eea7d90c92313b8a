package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/console"
)

// A success banner is shown only after the action, once, in the session
// that did it, on the page the action led to: a link's ?done=…&also=…
// shows none (r71 D2).
func TestFlashOnlyAfterTheAction(t *testing.T) {
	e := newEnv(t, console.Options{})
	ctx := context.Background()
	b := e.as("operator")
	c := e.issue("flash-cert")
	rec := e.record(c)
	certPage := certPath(c) + "?issuer=" + rec.IssuerID

	// Crafted links: no banner on any page, whatever they say; no page
	// takes done= or also= (any more), so each is refused (r81 D4).
	for _, page := range []string{certPage, "/ui/requests", "/ui/challenges", "/ui/"} {
		for _, done := range []string{"revoked&also=40", "revoked", "held", "unheld", "approved", "rejected", "deleted"} {
			link := page + "?done=" + done
			if page == certPage {
				link = page + "&done=" + done
			}
			res := b.get(link)
			expectStatus(t, link, res, http.StatusBadRequest)
			expectBody(t, link, res, "unknown query parameter")
			expectNotBody(t, link, res, `id="flash"`)
		}
	}

	// Real actions: the banner once, then no more.
	once := func(what, page string, res response, want string) {
		t.Helper()
		expectStatus(t, what, res, http.StatusSeeOther)
		if loc := res.Header.Get("Location"); loc != page {
			t.Errorf("%s: Location %q, want %q", what, loc, page)
		}
		expectBody(t, what+": the page it leads to", b.get(page), `id="flash"`, want)
		expectNotBody(t, what+": the page again", b.get(page), `id="flash"`)
	}
	h := e.issue("flash-hold")
	hrec := e.record(h)
	holdPage := certPath(h) + "?issuer=" + hrec.IssuerID
	once("hold", holdPage, b.post(certPath(h)+"/revoke", url.Values{"issuer": {hrec.IssuerID}, "reason": {"certificateHold"}, "confirm": {"yes"}}),
		"The certificate is on hold")
	once("unhold", holdPage, b.post(certPath(h)+"/unhold", url.Values{"issuer": {hrec.IssuerID}}), "The hold is lifted")
	once("revoke", certPage, b.post(certPath(c)+"/revoke", url.Values{"issuer": {rec.IssuerID}, "reason": {"superseded"}, "confirm": {"yes"}}),
		"The certificate is revoked.")
	id := e.hold("flash-approve")
	once("approve", "/ui/requests", b.post("/ui/requests/"+id+"/approve", nil), "The request is approved")
	id = e.hold("flash-reject")
	once("reject", "/ui/requests", b.post("/ui/requests/"+id+"/reject", url.Values{"reason": {"not ours"}}), "The request is rejected")
	_, ch, err := e.ops.NewChallenge(ctx, auth.CLI("test"), admin.ChallengeSpec{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	once("delete a challenge", "/ui/challenges", b.post("/ui/challenges/"+ch.ID+"/delete", nil), "The challenge is deleted")

	// A flash is good for its page, its session and a short while only.
	n := 0
	flashOf := func() string {
		t.Helper()
		n++
		d := e.issue("flash-" + strconv.Itoa(n))
		drec := e.record(d)
		res := b.post(certPath(d)+"/revoke", url.Values{"issuer": {drec.IssuerID}, "reason": {"superseded"}, "confirm": {"yes"}})
		expectStatus(t, "revoke", res, http.StatusSeeOther)
		for _, ck := range res.Cookies() {
			if ck.MaxAge > 0 && strings.Contains(ck.Name, "flash") {
				return res.Header.Get("Location")
			}
		}
		t.Fatalf("the revocation set no flash cookie: %v", res.Header)
		return ""
	}
	other := e.as("admin")
	for _, tc := range []struct {
		name string
		show func(loc string) response
	}{
		{"another page", func(string) response { return b.get(certPage) }},
		{"another session", func(loc string) response {
			for n, ck := range b.cookies {
				if n != console.SessionCookie {
					other.cookies[n] = ck
				}
			}
			return other.get(loc)
		}},
		{"too late", func(loc string) response {
			e.pki.Clock.Advance(3 * time.Minute)
			return b.get(loc)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loc := flashOf()
			res := tc.show(loc)
			expectStatus(t, tc.name, res, http.StatusOK)
			expectNotBody(t, tc.name, res, `id="flash"`)
		})
	}
}

// A flash waits for its page: another page loaded meanwhile (another tab,
// with the same cookies) neither shows nor clears it, and two tabs that
// act at once each get their banner on their page, two actions that lead
// to one page both, once (r72 D1).
func TestFlashWaitsForItsPage(t *testing.T) {
	e := newEnv(t, console.Options{})
	ctx := context.Background()
	b := e.as("operator")
	other := e.issue("flash-other")
	otherPage := certPath(other) + "?issuer=" + e.record(other).IssuerID

	hold := func(name string) (page string, res response) {
		t.Helper()
		c := e.issue(name)
		rec := e.record(c)
		res = b.post(certPath(c)+"/revoke", url.Values{"issuer": {rec.IssuerID}, "reason": {"certificateHold"}, "confirm": {"yes"}})
		return certPath(c) + "?issuer=" + rec.IssuerID, res
	}
	deleteChallenge := func() response {
		t.Helper()
		_, ch, err := e.ops.NewChallenge(ctx, auth.CLI("test"), admin.ChallengeSpec{TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return b.post("/ui/challenges/"+ch.ID+"/delete", nil)
	}
	// shows follows an action's redirect: its page shows want (all of
	// them), then, loaded again, nothing.
	shows := func(what string, res response, want ...string) {
		t.Helper()
		expectStatus(t, what, res, http.StatusSeeOther)
		loc := res.Header.Get("Location")
		expectBody(t, what+": the page it leads to", b.get(loc), append([]string{`id="flash"`}, want...)...)
		expectNotBody(t, what+": the page again", b.get(loc), `id="flash"`)
	}

	t.Run("other pages first", func(t *testing.T) {
		_, res := hold("flash-wait")
		for _, page := range []string{"/ui/requests", "/ui/challenges", otherPage, "/ui/certificates", "/ui/"} {
			expectNotBody(t, page+" before the redirect", b.get(page), `id="flash"`)
		}
		shows("hold", res, "The certificate is on hold")
	})
	t.Run("two tabs, two pages", func(t *testing.T) {
		_, held := hold("flash-tab-a")
		deleted := deleteChallenge()
		shows("hold in tab A", held, "The certificate is on hold")
		shows("delete in tab B", deleted, "The challenge is deleted")
	})
	t.Run("two tabs, one page", func(t *testing.T) {
		approved := b.post("/ui/requests/"+e.hold("flash-tab-a")+"/approve", nil)
		rejected := b.post("/ui/requests/"+e.hold("flash-tab-b")+"/reject", url.Values{"reason": {"not ours"}})
		expectStatus(t, "reject in tab B", rejected, http.StatusSeeOther)
		shows("approve in tab A", approved, "The request is approved", "The request is rejected")
	})
	t.Run("one certificate, hold, unhold, hold", func(t *testing.T) {
		// In several tabs, before any redirect is followed: the banner
		// ends with the state the certificate is in.
		c := e.issue("flash-again")
		rec := e.record(c)
		revoke := url.Values{"issuer": {rec.IssuerID}, "reason": {"certificateHold"}, "confirm": {"yes"}}
		expectStatus(t, "hold", b.post(certPath(c)+"/revoke", revoke), http.StatusSeeOther)
		expectStatus(t, "unhold", b.post(certPath(c)+"/unhold", url.Values{"issuer": {rec.IssuerID}}), http.StatusSeeOther)
		res := b.post(certPath(c)+"/revoke", revoke)
		expectStatus(t, "hold again", res, http.StatusSeeOther)
		page := b.get(res.Header.Get("Location"))
		held, lifted := strings.LastIndex(page.body, "The certificate is on hold"), strings.LastIndex(page.body, "The hold is lifted")
		if held < 0 || lifted < 0 || held < lifted {
			t.Errorf("the banner after hold, unhold, hold: want the hold last\n%s", page.body)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		for i := range 10 {
			res := deleteChallenge()
			expectStatus(t, "delete "+strconv.Itoa(i), res, http.StatusSeeOther)
			for _, ck := range res.Cookies() {
				if strings.Contains(ck.Name, "flash") && len(ck.Value) > 400 {
					t.Fatalf("after %d deletions the flash cookie is %d bytes", i+1, len(ck.Value))
				}
			}
		}
		shows("ten deletions", deleteChallenge(), "The challenge is deleted")
	})
}

// A hold lifted from a certificate that expired while on hold is not
// confirmed as "valid again": relying parties still refuse it (r134).
func TestUnholdOfAnExpiredCertificateSaysSo(t *testing.T) {
	e := newEnv(t, console.Options{})
	h := e.issue("expired-on-hold")
	rec := e.record(h)
	page := certPath(h) + "?issuer=" + rec.IssuerID
	b := e.as("operator")
	expectStatus(t, "hold", b.post(certPath(h)+"/revoke", url.Values{"issuer": {rec.IssuerID}, "reason": {"certificateHold"}, "confirm": {"yes"}}), http.StatusSeeOther)
	e.pki.Clock.Set(h.NotAfter.Add(time.Hour))
	b = e.as("operator") // the first session ended with the year
	res := b.post(certPath(h)+"/unhold", url.Values{"issuer": {rec.IssuerID}})
	expectStatus(t, "unhold", res, http.StatusSeeOther)
	shown := b.get(page)
	expectBody(t, "the page after the unhold", shown, "The hold is lifted, but the certificate has expired")
	expectNotBody(t, "the page after the unhold", shown, "valid again")
}
