package console_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"testing"

	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/console"
	"github.com/scepter/scepter/internal/pki"
)

// A challenge whose binding the profile's subject or name rules refuse is
// refused with 422 as the API refuses it: the form comes back as it was
// filled in, with the reason, and nothing is minted.
func TestNewChallengeBindingProfileRules(t *testing.T) {
	strict := pki.DefaultProfile()
	strict.Name = "strict"
	strict.SubjectRequired = []string{"CN"}
	strict.SubjectPatterns = map[string]string{"CN": `^dev-[0-9]+$`}
	strict.DNSPatterns = []string{`\.corp\.example$`}
	e := newEnv(t, console.Options{}, strict)
	b := e.as("operator")
	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		reason string
	}{
		{"subject pattern", url.Values{"ttl": {"2h"}, "profile": {"strict"}, "subject": {"CN=laptop"}, "dns": {"laptop.corp.example"}},
			http.StatusUnprocessableEntity, `subject CN "laptop" is not allowed by the profile (subject_patterns.CN)`},
		{"unlisted attribute", url.Values{"ttl": {"2h"}, "profile": {"strict"}, "subject": {"CN=dev-7,OU=admins"}},
			http.StatusUnprocessableEntity, `attribute OU is not allowed by profile "strict"`},
		{"dns pattern", url.Values{"ttl": {"2h"}, "profile": {"strict"}, "dns": {"dev-7.other.example"}},
			http.StatusUnprocessableEntity, `DNS name "dev-7.other.example" is not allowed by the profile (dns_patterns)`},
		{"allowed", url.Values{"ttl": {"2h"}, "profile": {"strict"}, "subject": {"CN=dev-7"}, "dns": {"dev-7.corp.example"}},
			http.StatusOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _, _ := e.ops.Challenges(context.Background(), auth.CLI("test"), 100, "")
			res := b.post("/ui/challenges", tc.form)
			after, _, _ := e.ops.Challenges(context.Background(), auth.CLI("test"), 100, "")
			expectStatus(t, tc.name, res, tc.status)
			if tc.status == http.StatusOK {
				expectBody(t, tc.name, res, `id="challenge-secret"`)
				if len(after) != len(before)+1 {
					t.Errorf("%d challenges after one was created, were %d", len(after), len(before))
				}
				return
			}
			expectBody(t, tc.name, res, `id="error"`, html.EscapeString(tc.reason), "no enrollment could use this challenge",
				`id="new-challenge"`, `<option value="strict" selected>`)
			for _, field := range []string{"subject", "dns"} {
				if v := tc.form.Get(field); v != "" {
					expectBody(t, tc.name, res, `value="`+html.EscapeString(v)+`"`)
				}
			}
			expectNotBody(t, tc.name, res, "challenge-secret")
			if len(after) != len(before) {
				t.Errorf("a refused challenge was stored: %d challenges, were %d", len(after), len(before))
			}
		})
	}
}

// The form's subject is read as typed: a space escaped at its end
// ("CN=x\ ", RFC 4514) is bound as the CLI and the API bind it, not cut to
// a dangling backslash by trimming the field; a field of spaces binds no
// subject.
func TestNewChallengeSubjectAsTyped(t *testing.T) {
	e := newEnv(t, console.Options{})
	b := e.as("operator")
	res := b.post("/ui/challenges", url.Values{"ttl": {"2h"}, "subject": {`CN=trail\ `}})
	expectStatus(t, "an escaped trailing space", res, http.StatusOK)
	expectBody(t, "an escaped trailing space", res, `id="challenge-secret"`)
	res = b.post("/ui/challenges", url.Values{"ttl": {"2h"}, "subject": {"   "}, "dns": {"d.example"}})
	expectStatus(t, "a subject of spaces", res, http.StatusOK)
	list, _, err := e.ops.Challenges(context.Background(), auth.CLI("test"), 100, "")
	if err != nil {
		t.Fatal(err)
	}
	subjects := map[string]bool{}
	for _, c := range list {
		subjects[string(c.BoundSubject)] = true
	}
	if len(list) != 2 || !subjects[""] {
		t.Errorf("challenges %+v: want one bound to CN=trail\\ and one to no subject", list)
	}
}
