package console_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/console"
)

// TestUnknownQueryParameterIsRefused: a page or a download refuses a query
// parameter it does not take with 400 naming it, and the API's name of a
// console filter with the console's name, rather than answer as if it were
// applied (r81 D4); chain= of the PEM download is 1 or nothing.
func TestUnknownQueryParameterIsRefused(t *testing.T) {
	e := newEnv(t, console.Options{})
	c := e.issue("query-params")
	rec := e.record(c)
	b := e.as("admin")
	cert := certPath(c)
	for _, tc := range []struct {
		path   string
		want   int
		reason string
	}{
		{"/ui/audit?before_id=5", 400, `unknown query parameter "before_id": that is the API's name; the console's is "before" (allowed: type, serial, since, until, limit, before)`},
		{"/ui/audit/verify?before_id=5", 400, `the console's is "before"`},
		{"/ui/certificates?issued_after=garbage", 400, `unknown query parameter "issued_after": that is the API's name; the console's is "issued_from"`},
		{"/ui/certificates?issued_before=2031-01-01T00:00:00Z", 400, `the console's is "issued_to"`},
		{"/ui/certificates?expiring_within=abc", 400, `unknown query parameter "expiring_within": that is the API's name; the console's is "expiring"`},
		{"/ui/certificates?foo=1", 400, `unknown query parameter "foo" (allowed: q, status, profile, protocol, issuer, expiring, issued_from, issued_to, renewed, sort, limit, cursor)`},
		{"/ui/certificates?status=valid&zz=1&aa=2", 400, `unknown query parameter "aa"`},
		{"/ui/?foo=1", 400, `unknown query parameter "foo" (allowed: days)`},
		{"/ui/cas?foo=1", 400, `unknown query parameter "foo": this page takes none`},
		{"/ui/requests?limit=5", 400, `unknown query parameter "limit" (allowed: status, profile, cursor)`},
		{"/ui/challenges?limit=5", 400, `unknown query parameter "limit" (allowed: cursor)`},
		{"/ui/audit?before_id=5&before=6", 400, `"before_id"`},
		{cert + "?chain=1", 400, `unknown query parameter "chain" (allowed: issuer)`},
		{cert + "/pem?issuer=" + rec.IssuerID + "&foo=1", 400, `unknown query parameter "foo" (allowed: issuer, chain)`},
		{"/ui/login?foo=1", 400, `unknown query parameter "foo" (allowed: next)`},
		{"/ui/login?next=%2Fui%2F&next=%2Fui%2Fcas", 400, `the query parameter "next" is given 2 times`},
		// A value the download reads and refuses: 422, not the leaf alone.
		{cert + "/pem?chain=yes", 422, `chain "yes": want 1 for the certificate with its CA chain, or no chain for the certificate alone`},
		{cert + "/pem?chain=x", 422, `chain "x"`}, {cert + "/pem?chain=2", 422, `chain "2"`}, {cert + "/pem?chain=0", 422, `chain "0"`},
	} {
		res := b.get(tc.path)
		if res.StatusCode != tc.want {
			t.Errorf("GET %s: %d, want %d\n%.600s", tc.path, res.StatusCode, tc.want, res.body)
			continue
		}
		expectBody(t, tc.path, res, `role="alert"`, html.EscapeString(tc.reason))
		// To a person logged in, as their other pages: the navigation
		// and who is logged in, not a "Log in" link (r85 D5).
		expectBody(t, tc.path, res, `<nav aria-label="Main">`, `<span id="whoami">admin <span class="role">(admin)</span>`, `id="logout"`)
		expectNotBody(t, tc.path, res, `href="/ui/login"`)
	}
	// Refused before authentication, as a repeated one is, and shown as
	// to no one logged in: nothing of the console but the reason.
	for _, p := range []string{"/ui/audit?before_id=5", "/ui/?foo=1", "/ui/login?foo=1"} {
		res := e.browser().get(p)
		expectStatus(t, p+" without a session", res, http.StatusBadRequest)
		expectBody(t, p+" without a session", res, `href="/ui/login"`)
		expectNotBody(t, p+" without a session", res, `<nav aria-label="Main">`, `id="whoami"`, `id="logout"`)
	}
	// The downloads the certificate page links to.
	for _, p := range []string{cert + "/pem?issuer=" + rec.IssuerID, cert + "/pem?issuer=" + rec.IssuerID + "&chain=1", cert + "/pem?chain="} {
		res := b.get(p)
		expectStatus(t, p, res, http.StatusOK)
		n := strings.Count(res.body, "BEGIN CERTIFICATE")
		if want := 1; strings.Contains(p, "chain=1") && n < 2 || !strings.Contains(p, "chain=1") && n != want {
			t.Errorf("GET %s: %d certificates", p, n)
		}
	}
}

var (
	hrefRE   = regexp.MustCompile(`\shref="([^"]*)"`)
	formRE   = regexp.MustCompile(`(?s)(<form\b[^>]*>)(.*?)</form>`)
	inputRE  = regexp.MustCompile(`<input\b[^>]*>`)
	selectRE = regexp.MustCompile(`(?s)(<select\b[^>]*>)(.*?)</select>`)
	optionRE = regexp.MustCompile(`<option value="([^"]*)"(\s+selected)?`)
	attrRE   = regexp.MustCompile(`\s([a-z-]+)="([^"]*)"`)
)

func attrs(tag string) map[string]string {
	m := map[string]string{}
	for _, a := range attrRE.FindAllStringSubmatch(tag, -1) {
		m[a[1]] = html.UnescapeString(a[2])
	}
	return m
}

// getForm is a GET form of a page: its action, the values a browser sends
// as the page comes, and for each select the values its other options
// send.
type getForm struct {
	action   string
	base     url.Values
	variants []url.Values
}

func getForms(page string) []getForm {
	var out []getForm
	for _, m := range formRE.FindAllStringSubmatch(page, -1) {
		fa := attrs(m[1])
		if !strings.EqualFold(fa["method"], "get") {
			continue
		}
		f := getForm{action: fa["action"], base: url.Values{}}
		for _, in := range inputRE.FindAllString(m[2], -1) {
			if a := attrs(in); a["name"] != "" {
				f.base.Add(a["name"], a["value"])
			}
		}
		type sel struct {
			name string
			opts []string
		}
		var sels []sel
		for _, s := range selectRE.FindAllStringSubmatch(m[2], -1) {
			name := attrs(s[1])["name"]
			opts := optionRE.FindAllStringSubmatch(s[2], -1)
			if name == "" || len(opts) == 0 {
				continue
			}
			chosen := html.UnescapeString(opts[0][1]) // a browser's choice when none is selected
			var values []string
			for _, o := range opts {
				values = append(values, html.UnescapeString(o[1]))
				if o[2] != "" {
					chosen = html.UnescapeString(o[1])
				}
			}
			f.base.Set(name, chosen)
			sels = append(sels, sel{name, values})
		}
		for _, s := range sels {
			for _, v := range s.opts {
				if v == f.base.Get(s.name) {
					continue
				}
				variant := url.Values{}
				for k, vs := range f.base {
					variant[k] = append([]string(nil), vs...)
				}
				variant.Set(s.name, v)
				f.variants = append(f.variants, variant)
			}
		}
		out = append(out, f)
	}
	return out
}

// TestEveryLinkOfEveryPage walks the console as each role: every link of
// every page, every GET form as a browser sends it (with each option of
// each of its selects), and the pages the actions redirect to, answer
// 200. A parameter the console writes into a link, a form or a redirect
// and a page does not take would be a 400 here (r81 D4). Without a
// session, each kind of page goes through the login and back to itself.
func TestEveryLinkOfEveryPage(t *testing.T) {
	e := newEnv(t, console.Options{})
	for _, cn := range []string{"walk-1", "walk-2", "walk-3", "walk-held", "walk-revoked"} {
		e.issue(cn)
	}
	e.hold("walk-pending-1")
	e.hold("walk-pending-2")
	e.hold("walk-pending-3")
	op := e.as("operator")
	// The actions, each to the page it redirects to.
	certs, _, err := e.ops.Certificates(t.Context(), auth.CLI("test"), opsQuery("walk-"))
	if err != nil || len(certs) < 5 {
		t.Fatalf("certificates: %d, %v", len(certs), err)
	}
	bySubject := map[string]string{}
	issuerOf := map[string]string{}
	for _, c := range certs {
		bySubject[c.Subject] = c.SerialHex
		issuerOf[c.SerialHex] = c.IssuerID
	}
	act := func(what, path string, form url.Values) {
		t.Helper()
		res := op.post(path, form)
		expectStatus(t, what, res, http.StatusSeeOther)
		loc := res.Header.Get("Location")
		expectStatus(t, what+": GET "+loc, op.get(loc), http.StatusOK)
	}
	held := bySubject["CN=walk-held"]
	act("hold", "/ui/certificates/"+held+"/revoke", url.Values{"issuer": {issuerOf[held]}, "reason": {"certificateHold"}, "confirm": {"yes"}})
	act("unhold", "/ui/certificates/"+held+"/unhold", url.Values{"issuer": {issuerOf[held]}})
	act("hold again", "/ui/certificates/"+held+"/revoke", url.Values{"issuer": {issuerOf[held]}, "reason": {"certificateHold"}, "confirm": {"yes"}})
	revoked := bySubject["CN=walk-revoked"]
	act("revoke", "/ui/certificates/"+revoked+"/revoke", url.Values{"issuer": {issuerOf[revoked]}, "reason": {"superseded"}, "confirm": {"yes"}})
	reqs, _, err := e.ops.Requests(t.Context(), auth.CLI("test"), "pending", "", 10, "")
	if err != nil || len(reqs) != 3 {
		t.Fatalf("requests: %d, %v", len(reqs), err)
	}
	act("approve", "/ui/requests/"+reqs[0].ID+"/approve", nil)
	act("reject", "/ui/requests/"+reqs[1].ID+"/reject", url.Values{"reason": {"not ours"}})
	for range 2 {
		expectStatus(t, "new challenge", op.post("/ui/challenges", url.Values{"ttl": {"60m"}, "profile": {"default"}}), http.StatusOK)
	}
	chs, _, err := e.ops.Challenges(t.Context(), auth.CLI("test"), 10, "")
	if err != nil || len(chs) < 2 {
		t.Fatalf("challenges: %d, %v", len(chs), err)
	}
	act("delete challenge", "/ui/challenges/"+chs[0].ID+"/delete", nil)

	seeds := []string{"/ui/", "/ui/certificates?limit=1", "/ui/certificates?sort=expiring&limit=1", "/ui/audit?limit=1"}
	for _, role := range roles {
		b := e.as(string(role))
		seen := map[string]string{} // URL: the page that led to it
		queue := append([]string(nil), seeds...)
		for _, s := range seeds {
			seen[s] = "(start)"
		}
		variantsDone := map[string]bool{}
		add := func(from, u string) {
			if !strings.HasPrefix(u, console.Prefix) {
				return
			}
			if _, ok := seen[u]; !ok {
				seen[u] = from
				queue = append(queue, u)
			}
		}
		for len(queue) > 0 {
			if len(seen) > 3000 {
				t.Fatalf("%s: more than 3000 pages: a walk without end?", role)
			}
			u := queue[0]
			queue = queue[1:]
			res := b.get(u)
			if res.StatusCode != http.StatusOK {
				t.Errorf("%s: GET %s (from %s): %d\n%.400s", role, u, seen[u], res.StatusCode, res.body)
				continue
			}
			if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
				continue
			}
			for _, m := range hrefRE.FindAllStringSubmatch(res.body, -1) {
				add(u, html.UnescapeString(m[1]))
			}
			for _, f := range getForms(res.body) {
				add(u+" (its form)", f.action+"?"+f.base.Encode())
				if p, _ := url.Parse(u); p.RawQuery == "" && !variantsDone[f.action] {
					variantsDone[f.action] = true
					for _, v := range f.variants {
						add(u+" (its form)", f.action+"?"+v.Encode())
					}
				}
			}
		}
		// Each kind of page without a session: to the login, which comes
		// back to it.
		kinds := map[string]bool{}
		for u := range seen {
			p, _ := url.Parse(u)
			kind := p.Path
			if parts := strings.Split(kind, "/"); len(parts) > 3 && parts[2] == "certificates" {
				parts[3] = "S"
				kind = strings.Join(parts, "/")
			}
			if p.RawQuery != "" {
				kind += "?"
			}
			if kinds[kind] || strings.HasPrefix(kind, "/ui/static/") {
				continue
			}
			kinds[kind] = true
			o := e.browser()
			res := o.get(u)
			expectStatus(t, "without a session: GET "+u, res, http.StatusSeeOther)
			login := res.Header.Get("Location")
			page := o.get(login)
			expectStatus(t, "GET "+login, page, http.StatusOK)
			if next := hiddenValue(t, page.body, "next"); next != u {
				t.Errorf("GET %s: the login form's next is %q, want %q", login, next, u)
			}
			res = o.do(http.MethodPost, "/ui/login", url.Values{"csrf": {hiddenValue(t, page.body, "csrf")}, "username": {"auditor"},
				"password": {e.passwords["auditor"]}, "next": {hiddenValue(t, page.body, "next")}}, nil)
			if loc := res.Header.Get("Location"); res.StatusCode != http.StatusSeeOther || loc != u {
				t.Errorf("login from %s: %d, Location %q, want %s", u, res.StatusCode, loc, u)
				continue
			}
			expectStatus(t, "after the login: GET "+u, o.get(u), http.StatusOK)
		}
		t.Logf("%s: %d pages, %d kinds", role, len(seen), len(kinds))
	}
}

// A date range's refusal says the rule it applies: a date "until"
// includes its day, so a range from and until the same day is served and
// one that starts after the day is refused as "must not be after"; a time
// "until" ends the range, so one that starts at it or later "must be
// before" it (r97 D3: the same day was served but the refusal of the day
// before said "must be before").
func TestDateRangeRefusalSaysItsRule(t *testing.T) {
	e := newEnv(t, console.Options{})
	b := e.as("auditor")
	for _, tc := range []struct {
		path   string
		status int
		reason string
	}{
		{"/ui/certificates?issued_from=2026-12-07&issued_to=2026-12-07", http.StatusOK, ""},
		{"/ui/certificates?issued_from=2026-12-07T23:00&issued_to=2026-12-07", http.StatusOK, ""},
		{"/ui/certificates?issued_from=2026-12-07&issued_to=2026-12-06", http.StatusUnprocessableEntity,
			"Issued from (2026-12-07) must not be after Issued until (2026-12-06): give an earlier Issued from or a later Issued until"},
		{"/ui/certificates?issued_from=2026-12-08T00:00&issued_to=2026-12-07", http.StatusUnprocessableEntity,
			"Issued from (2026-12-08T00:00) must not be after Issued until (2026-12-07)"},
		{"/ui/certificates?issued_from=2026-12-07T12:00&issued_to=2026-12-07T12:00", http.StatusUnprocessableEntity,
			"Issued from (2026-12-07T12:00) must be before Issued until (2026-12-07T12:00)"},
		{"/ui/audit?since=2026-12-07&until=2026-12-07", http.StatusOK, ""},
		{"/ui/audit?since=2026-12-07&until=2026-12-06", http.StatusUnprocessableEntity,
			"Since (2026-12-07) must not be after Until (2026-12-06): give an earlier Since or a later Until"},
		{"/ui/audit?since=2026-12-07T12:00&until=2026-12-07T11:00", http.StatusUnprocessableEntity,
			"Since (2026-12-07T12:00) must be before Until (2026-12-07T11:00)"},
	} {
		res := b.get(tc.path)
		if res.StatusCode != tc.status {
			t.Errorf("GET %s: %d, want %d\n%.600s", tc.path, res.StatusCode, tc.status, res.body)
			continue
		}
		if tc.reason != "" {
			expectBody(t, tc.path, res, html.EscapeString(tc.reason))
		}
	}
}
