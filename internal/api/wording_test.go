package api_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

// A token lifetime the API refuses is quoted as the caller sent it, as
// the challenge refusals do, not as Go prints a duration.
func TestTokenLifetimeRefusalQuotesTheInput(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		ttl, want string
	}{
		{"3661d", `token lifetime "3661d" is out of range`},
		{"-1h", `token lifetime "-1h" is out of range`},
		{"30s", `token lifetime "30s" is out of range`},
		{"99999d", `token lifetime "99999d" is out of range`},
	} {
		r := e.do(t, pki.RoleAdmin, "POST", "/api/v1/tokens", map[string]string{"name": "x", "role": "auditor", "ttl": tc.ttl})
		if r.status != http.StatusUnprocessableEntity || !strings.Contains(errorOf(t, r), tc.want) {
			t.Errorf("ttl %q: %d %q, want 422 saying %q", tc.ttl, r.status, errorOf(t, r), tc.want)
		}
	}
}

// A token's, a console user's or an EST user's name takes ASCII letters
// only and begins with a letter or digit, and the refusal says the whole
// rule: "-x" and "_a" hold only the characters it listed, and were refused
// with a text that allowed them (r111 D3).
func TestNameRuleSaysTheWholeRule(t *testing.T) {
	e := newEnv(t)
	const rule = " ASCII letters (a-z, A-Z), digits and . _ @ -, beginning with a letter or digit"
	const pw = "correct horse battery staple"
	for _, name := range []string{"ünï", "-x", ".a", "_a", "@a", ".", ".."} {
		for _, tc := range []struct {
			what, path, want string
			body             map[string]string
		}{
			{"token", "/api/v1/tokens", "use 1 to 64" + rule, map[string]string{"name": name, "role": "auditor"}},
			{"user", "/api/v1/users", "use 1 to 64" + rule, map[string]string{"name": name, "role": "auditor", "password": pw}},
			{"EST user", "/api/v1/est-users", "use 1 to 128" + rule, map[string]string{"name": name, "password": pw}},
		} {
			r := e.do(t, pki.RoleAdmin, "POST", tc.path, tc.body)
			if r.status != http.StatusUnprocessableEntity || !strings.HasSuffix(errorOf(t, r), tc.want) {
				t.Errorf("%s named %q: %d %q, want 422 ending %q", tc.what, name, r.status, errorOf(t, r), tc.want)
			}
		}
	}
	// What the rule allows is taken.
	for _, name := range []string{"a-", "a.", "a@", "a..b", "0_x"} {
		if r := e.do(t, pki.RoleAdmin, "POST", "/api/v1/tokens", map[string]string{"name": name, "role": "auditor"}); r.status != http.StatusCreated {
			t.Errorf("token named %q: %d %s", name, r.status, r.body)
		}
	}
}

// Valid JSON that encoding/json would read otherwise than it was meant is
// refused for what it is: nested deeper than any request (not "malformed
// JSON at byte N"), or a string with a lone UTF-16 surrogate escape,
// which would be read as U+FFFD and bind a challenge to a subject never
// sent. A pair of escapes, and a backslash followed by "u", are text.
func TestBodyJSONReadAsSent(t *testing.T) {
	e := newEnv(t)
	deep := func(n int) string {
		return `{"ttl":"1h","dns":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`
	}
	const nested = "the JSON nests deeper than 32 levels"
	for _, tc := range []struct {
		name, body string
		want       int
		reason     string // a part of the error; "" for none
	}{
		{"30,000 deep", deep(30000), 400, nested},
		{"33 deep", deep(32), 400, nested},
		{"32 deep", deep(31), 400, `field "dns": want`},
		{"a lone high surrogate", `{"ttl":"1h","subject":"CN=\ud800"}`, 400, `field "subject": the escape \ud800 is half of a UTF-16 surrogate pair`},
		{"a lone low surrogate", `{"ttl":"1h","subject":"CN=\uDC00x"}`, 400, `field "subject": the escape \uDC00`},
		{"a high surrogate before a letter", `{"ttl":"1h","subject":"CN=\ud800\u0041"}`, 400, `the escape \ud800`},
		{"two high surrogates", `{"ttl":"1h","subject":"CN=\ud83d\ud83d\ude00"}`, 400, `the escape \ud83d`},
		{"in a list", `{"ttl":"1h","dns":["a.example","b\udfff.example"]}`, 400, `field "dns": the escape \udfff`},
		{"in a field name", `{"ttl":"1h","\ud800":"x"}`, 400, `a field name: the escape \ud800`},
		{"a pair", `{"ttl":"1h","subject":"CN=\ud83d\ude00"}`, 201, ""},
		{"an escaped backslash before u", `{"ttl":"1h","dns":["a\\ud800.example"]}`, 422, "a\\\\ud800.example"},
	} {
		r := e.do(t, pki.RoleOperator, "POST", "/api/v1/challenges", tc.body)
		if r.status != tc.want || tc.reason != "" && !strings.Contains(errorOf(t, r), tc.reason) {
			t.Errorf("%s: %d %q, want %d saying %q", tc.name, r.status, errorOf(t, r), tc.want, tc.reason)
		}
	}
}

// A route that takes no body, given one that is no JSON object (null, [],
// text), says it takes none, not that it requires a JSON object; given an
// object with fields, it says which.
func TestNoBodyRouteSaysItTakesNone(t *testing.T) {
	e := newEnv(t)
	id := e.heldRequest(t, "no-body")
	created := e.do(t, pki.RoleAdmin, "POST", "/api/v1/challenges", `{"profile":"default"}`)
	var ch struct {
		Challenge struct {
			ID string `json:"id"`
		} `json:"challenge"`
	}
	created.json(t, &ch)
	for _, tc := range []struct{ method, path, body, want string }{
		{"POST", "/api/v1/requests/" + id + "/approve", "null", "/requests/{id}/approve takes no body (send none, or {})"},
		{"POST", "/api/v1/requests/" + id + "/approve", "[]", "/requests/{id}/approve takes no body (send none, or {})"},
		{"DELETE", "/api/v1/challenges/" + ch.Challenge.ID, "null", "/challenges/{id} takes no body (send none, or {})"},
		{"POST", "/api/v1/requests/" + id + "/approve", `{"dry_run":true}`, `/requests/{id}/approve takes no body (send none, or {}): unknown field "dry_run"`},
	} {
		r := e.do(t, pki.RoleAdmin, tc.method, tc.path, tc.body)
		if msg := errorOf(t, r); r.status != http.StatusBadRequest || msg != tc.want {
			t.Errorf("%s %s %s: %d %q, want 400 %q", tc.method, tc.path, tc.body, r.status, msg, tc.want)
		}
	}
}

// A challenge lifetime out of range is refused naming the field and the
// value, in the one message that a lifetime the API cannot read gets:
// "0d" was told only the bounds, "36501d" the field and value too (r97).
func TestChallengeLifetimeRefusalNamesFieldAndValue(t *testing.T) {
	e := newEnv(t)
	for _, ttl := range []string{"0d", "0", "1ns", "-5m", "31d", "721h", "36501d", "soon"} {
		r := e.do(t, pki.RoleOperator, "POST", "/api/v1/challenges", map[string]string{"profile": "default", "ttl": ttl})
		want := `ttl "` + ttl + `": want a duration from 1s to 30d, such as 24h or 7d`
		if r.status != http.StatusUnprocessableEntity || errorOf(t, r) != want {
			t.Errorf("ttl %q: %d %q, want 422 %q", ttl, r.status, errorOf(t, r), want)
		}
	}
}

// A console user's and an EST user's password are held to one rule, said
// in one wording that names what is counted: at least 12 characters (six
// two-byte ones are six, not twelve), at most 1024 bytes. The EST user's
// was counted in bytes and said so, the console user's in characters (r97
// D5).
func TestPasswordRuleOneWording(t *testing.T) {
	e := newEnv(t)
	const want = "the password must have at least 12 characters and at most 1024 bytes (in UTF-8)"
	for _, pw := range []string{"short", "éééééé", strings.Repeat("x", 1025)} {
		for _, tc := range []struct{ path, role string }{{"/api/v1/users", "auditor"}, {"/api/v1/est-users", ""}} {
			body := map[string]string{"name": "someone", "password": pw}
			if tc.role != "" {
				body["role"] = tc.role
			}
			r := e.do(t, pki.RoleAdmin, "POST", tc.path, body)
			if r.status != http.StatusUnprocessableEntity || errorOf(t, r) != want {
				t.Errorf("%s, a password of %d bytes: %d %q, want 422 %q", tc.path, len(pw), r.status, errorOf(t, r), want)
			}
		}
	}
	for _, path := range []string{"/api/v1/users", "/api/v1/est-users"} {
		body := map[string]string{"name": "twelve", "password": "éééééééééééé"}
		if path == "/api/v1/users" {
			body["role"] = "auditor"
		}
		if r := e.do(t, pki.RoleAdmin, "POST", path, body); r.status != http.StatusCreated {
			t.Errorf("%s, 12 two-byte characters: %d %q, want 201", path, r.status, errorOf(t, r))
		}
	}
}

// A console or EST user's password with no visible character, of white
// space or invisible format characters alone, is refused saying so, though
// it meets the length rule (r111: twelve spaces were taken; r127: twelve
// zero-width spaces were).
func TestInvisiblePasswordIsRefused(t *testing.T) {
	e := newEnv(t)
	const want = "the password has no visible character (it is all white space or invisible characters such as U+200B)"
	for i, pw := range []string{
		strings.Repeat(" ", 12), strings.Repeat("\u00a0", 12), strings.Repeat("\u3000", 12), strings.Repeat(" ", 40),
		strings.Repeat("\u200b", 12),                         // zero-width space
		strings.Repeat("\u200c\u200d", 6),                    // zero-width non-joiner and joiner
		strings.Repeat("\u2060", 12),                         // word joiner
		strings.Repeat("\ufeff", 12),                         // zero-width no-break space
		strings.Repeat("\u00ad", 12),                         // soft hyphen
		strings.Repeat(" \u200b", 6),                         // spaces and zero-width spaces
		strings.Repeat("\u2028", 6) + strings.Repeat(" ", 6), // line separators and spaces
		// r128 D1: characters outside Cf that render as nothing.
		strings.Repeat("\u3164", 12), // Hangul filler
		strings.Repeat("\uffa0", 12), // halfwidth Hangul filler
		strings.Repeat("\u115f", 12), // Hangul choseong filler
		strings.Repeat("\u1160", 12), // Hangul jungseong filler
		strings.Repeat("\ufe0f", 12), // variation selector 16
		strings.Repeat("\u0301", 12), // combining acute with no base
		strings.Repeat("\u2800", 12), // braille pattern blank
	} {
		for _, path := range []string{"/api/v1/users", "/api/v1/est-users"} {
			// A name of its own: one accepted must not make the next a 409.
			body := map[string]string{"name": "blank" + strconv.Itoa(i), "password": pw}
			if path == "/api/v1/users" {
				body["role"] = "auditor"
			}
			r := e.do(t, pki.RoleAdmin, "POST", path, body)
			if r.status != http.StatusUnprocessableEntity || !strings.Contains(errorOf(t, r), want) {
				t.Errorf("POST %s with a password of %q: %d %q, want 422 saying %q", path, pw, r.status, errorOf(t, r), want)
			}
		}
	}
	// Spaces around other characters are a password.
	for i, path := range []string{"/api/v1/users", "/api/v1/est-users"} {
		body := map[string]string{"name": "spaced" + strconv.Itoa(i), "password": "     x      "}
		if i == 0 {
			body["role"] = "auditor"
		}
		if r := e.do(t, pki.RoleAdmin, "POST", path, body); r.status != http.StatusCreated {
			t.Errorf("POST %s with spaces around an x: %d %s", path, r.status, r.body)
		}
	}
}
