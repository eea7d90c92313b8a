package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

// POST /api/v1/challenges with a binding the profile's subject or name
// rules refuse is 422, naming what and the rule, and mints nothing: every
// enrollment with that challenge would be refused by those rules.
func TestNewChallengeBindingProfileRules(t *testing.T) {
	strict := pki.DefaultProfile()
	strict.Name = "strict"
	strict.SubjectRequired = []string{"CN"}
	strict.SubjectPatterns = map[string]string{"CN": `^dev-[0-9]+$`}
	strict.DNSPatterns = []string{`\.corp\.example$`}
	e := newEnvWith(t, strict)
	for _, tc := range []struct {
		name   string
		body   map[string]any
		status int
		says   string
	}{
		{"unbound", map[string]any{"profile": "strict"}, http.StatusCreated, ""},
		{"allowed", map[string]any{"profile": "strict", "subject": "CN=dev-7", "dns": []string{"dev-7.corp.example"}}, http.StatusCreated, ""},
		{"subject pattern", map[string]any{"profile": "strict", "subject": "CN=laptop"}, http.StatusUnprocessableEntity,
			`subject CN "laptop" is not allowed by the profile (subject_patterns.CN)`},
		{"unlisted attribute", map[string]any{"profile": "strict", "subject": "CN=dev-7,OU=admins"}, http.StatusUnprocessableEntity,
			`attribute OU is not allowed by profile "strict"`},
		{"dns pattern", map[string]any{"profile": "strict", "dns": []string{"www.other.example"}}, http.StatusUnprocessableEntity,
			`DNS name "www.other.example" is not allowed by the profile (dns_patterns)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before struct{ Items []any }
			e.do(t, pki.RoleAuditor, "GET", "/api/v1/challenges", nil).json(t, &before)
			r := e.do(t, pki.RoleOperator, "POST", "/api/v1/challenges", tc.body)
			var after struct{ Items []any }
			e.do(t, pki.RoleAuditor, "GET", "/api/v1/challenges", nil).json(t, &after)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status == http.StatusCreated {
				if len(after.Items) != len(before.Items)+1 {
					t.Errorf("%d challenges after one was created, were %d", len(after.Items), len(before.Items))
				}
				return
			}
			var body struct {
				Error  string            `json:"error"`
				Detail map[string]string `json:"detail"`
			}
			r.json(t, &body)
			if !strings.Contains(body.Error, tc.says) || !strings.HasSuffix(body.Error, "no enrollment could use this challenge") || body.Detail["code"] != "unprocessable" {
				t.Errorf("answer %s: want it to say %q, and that no enrollment could use it", r.body, tc.says)
			}
			if len(after.Items) != len(before.Items) {
				t.Errorf("a refused challenge was stored: %d challenges, were %d", len(after.Items), len(before.Items))
			}
		})
	}
}
