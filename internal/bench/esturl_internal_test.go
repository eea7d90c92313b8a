package bench

import (
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/client"
)

// bench reads an EST --url by the EST client's rules: what the requests
// would not carry (a query, a fragment, even an empty "?" or "#") is
// refused rather than dropped, and /.well-known/estX is a typo, not label
// "X" (r100 D2: all of them ran, exit 0, the part dropped).
func TestESTBaseFollowsTheClientsRules(t *testing.T) {
	for _, tc := range []struct {
		raw, profile string
		server       string // and label, when accepted
		label        string
		err          string // "" for accepted
	}{
		{raw: "https://127.0.0.1:8443", server: "https://127.0.0.1:8443"},
		{raw: "https://127.0.0.1:8443/", server: "https://127.0.0.1:8443"},
		{raw: "https://127.0.0.1:8443/default", server: "https://127.0.0.1:8443", label: "default"},
		{raw: "https://127.0.0.1:8443/.well-known/est", server: "https://127.0.0.1:8443"},
		{raw: "https://127.0.0.1:8443/.well-known/est/", server: "https://127.0.0.1:8443"},
		{raw: "https://127.0.0.1:8443/.well-known/est/default/", server: "https://127.0.0.1:8443", label: "default"},
		{raw: "https://127.0.0.1:8443", profile: "short", server: "https://127.0.0.1:8443", label: "short"},
		{raw: "https://127.0.0.1:8443/.well-known/est/short", profile: "short", server: "https://127.0.0.1:8443", label: "short"},
		{raw: "https://127.0.0.1:8443/.well-known/estdefault", err: "one path segment"},
		{raw: "https://127.0.0.1:8443/.well-known/estdefault?tenant=7#x", err: "no query or fragment"},
		{raw: "https://127.0.0.1:8443/?x=1", err: "no query or fragment"},
		{raw: "https://127.0.0.1:8443/?", err: "no query or fragment"},
		{raw: "https://127.0.0.1:8443?", err: "no query or fragment"},
		{raw: "https://127.0.0.1:8443#f", err: "no query or fragment"},
		{raw: "https://127.0.0.1:8443/default#", err: "no query or fragment"},
		{raw: "https://127.0.0.1:8443#", err: "no query or fragment"},
		{raw: "https://127.0.0.1:8443/.well-known/est/default?", err: "no query or fragment"},
		{raw: "https://127.0.0.1:8443/a/b", err: "one path segment"},
		{raw: "https://u:pw@127.0.0.1:8443", err: "carries no credentials: give them with --est-user"},
		{raw: "http://127.0.0.1:8443", err: "want https://"},
		{raw: "https://127.0.0.1:0", err: "port 0"},
		{raw: "https://127.0.0.1:8443/other", profile: "short", err: `the URL names label "other" and the profile is "short"`},
		{raw: "https://127.0.0.1:8443", profile: "a/b", err: `profile "a/b": an EST label is one path segment`},
	} {
		server, label, err := estBase(tc.raw, tc.profile)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s (profile %q): %v, want it accepted", tc.raw, tc.profile, err)
		case tc.err == "" && (server != tc.server || label != tc.label):
			t.Errorf("%s (profile %q): server %q label %q, want %q and %q", tc.raw, tc.profile, server, label, tc.server, tc.label)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s (profile %q): server %q label %q err %v, want an error naming %q", tc.raw, tc.profile, server, label, err, tc.err)
		}
	}
}

// A label that reads as a query or fragment once unescaped ("%23", "%3F")
// is given to the EST client escaped, so that it stays a label (r106 D4:
// bench refused it as a query or fragment, which the URL had neither of).
func TestESTClientURLKeepsTheLabel(t *testing.T) {
	for _, raw := range []string{"https://127.0.0.1:8443/%23", "https://127.0.0.1:8443/%3F", "https://127.0.0.1:8443/a%20b", "https://127.0.0.1:8443/default"} {
		server, label, err := estBase(raw, "")
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		c := &client.EST{URL: estClientURL(server, label)}
		if err := c.CheckURL(); err != nil {
			t.Errorf("%s: the client refuses %q: %v", raw, c.URL, err)
		}
	}
}
