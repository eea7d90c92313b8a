package estserver_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/est/estserver"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/server"
	"github.com/scepter/scepter/internal/store"
)

// Every EST path on the plain HTTP listener is refused with 403 naming
// the HTTPS EST URL, and, when the request carried credentials, saying
// that they crossed in the clear; each refusal is audited as the EST
// handler's others are; an unclean path is refused too, not redirected
// (r75 D6).
func TestPlainHTTPListenerRefusesESTNamingHTTPS(t *testing.T) {
	kg := pki.DefaultProfile()
	kg.Name = "kg"
	f := newFixture(t, fixtureOptions{profiles: []pki.Profile{kg}})
	h := estserver.New(f.svc, nil, estserver.Options{})
	mux, err := server.PlainMux(server.Handlers{EST: h, HTTPSPort: "8443", HTTPSNames: []string{"est.example", "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		name, method, path string
		auth               bool
		want               []string
		wantProfile        string
	}{
		{"cacerts", http.MethodGet, "cacerts", false, []string{"HTTPS only", "use https://127.0.0.1:8443/.well-known/est/cacerts"}, "default"},
		{"simpleenroll with a password", http.MethodPost, "simpleenroll", true,
			[]string{"use https://127.0.0.1:8443/.well-known/est/", "crossed the network in the clear", "change them"}, "default"},
		{"a label", http.MethodPost, "kg/simpleenroll", true, []string{"use https://127.0.0.1:8443/.well-known/est/kg/simpleenroll", "in the clear"}, "kg"},
		{"an unclean path", http.MethodGet, "a//cacerts", false, []string{"use https://127.0.0.1:8443/.well-known/est/OPERATION (cacerts, simpleenroll, simplereenroll, serverkeygen, csrattrs) (unknown EST path \"/.well-known/est/a//cacerts\": a path with an empty"}, ""},
		// r92 D7: quoted whole, as sent, with the reason; no label.
		{"a trailing slash", http.MethodGet, "cacerts/", false, []string{`(unknown EST path "/.well-known/est/cacerts/": a path with an empty, "." or ".." segment is not served (a trailing "/" ends in an empty one))`}, ""},
		{"an escaped dot-dot", http.MethodGet, "%2e%2e/x", false, []string{`(unknown EST path "/.well-known/est/%2e%2e/x": a path with an empty`}, ""},
		{"an escaped slash", http.MethodGet, "a%2Fb/simpleenroll", false, []string{`(unknown EST path "/.well-known/est/a%2Fb/simpleenroll": a path with an escaped "/"`}, ""},
		{"too deep", http.MethodGet, "a/b/cacerts", false, []string{`(unknown EST path "/.well-known/est/a/b/cacerts")`}, ""},
		// r79: a label that is none is not offered back, nor its bytes raw.
		{"an unknown label", http.MethodGet, "typo/simpleenroll", false, []string{"use https://127.0.0.1:8443/.well-known/est/OPERATION (cacerts, simpleenroll, simplereenroll, serverkeygen, csrattrs) (there is no EST label \"typo\")"}, ""},
		{"control characters", http.MethodGet, "%1b%5b31mRED%0d%0aX-Inj:%201/simpleenroll", false, []string{`(there is no EST label "\x1b[31mRED\r\nX-Inj: 1")`}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+"/.well-known/est/"+tc.path, strings.NewReader("MIIB"))
			if err != nil {
				t.Fatal(err)
			}
			if tc.auth {
				req.SetBasicAuth("alice", userPassword)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			body := string(b)
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("HTTP %d %q, want 403", resp.StatusCode, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("reason %q does not say %q", body, w)
				}
			}
			if strings.Contains(tc.want[0], "unknown EST path") && strings.Contains(body, "no EST label") {
				t.Errorf("reason %q takes a segment of a path that names none for a label", body)
			}
			if !tc.auth && strings.Contains(body, "in the clear") {
				t.Errorf("reason %q speaks of credentials that were not sent", body)
			}
			evs, err := f.st.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventRefused, Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 || !strings.Contains(evs[0].Reason, "HTTPS only") || evs[0].Profile != tc.wantProfile || !strings.HasPrefix(evs[0].Actor, "est:") {
				t.Errorf("the last refusal recorded: %+v, want this one (profile %q)", evs, tc.wantProfile)
			}
		})
	}
}
