package api_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
)

// The token list says each token's state, in the CLI's words (live,
// revoked, expired), at the server's clock (r111: a script had to work it
// out from revoked_at and expires_at); the OpenAPI document names it.
func TestTokenListSaysTheState(t *testing.T) {
	e := newEnv(t)
	for _, tok := range []map[string]string{
		{"name": "forever", "role": "auditor"},
		{"name": "hour", "role": "auditor", "ttl": "1h"},
		{"name": "day", "role": "auditor", "ttl": "24h"},
		{"name": "gone", "role": "auditor"},
	} {
		r := e.do(t, pki.RoleAdmin, "POST", "/api/v1/tokens", tok)
		var created struct{ Token struct{ State string } }
		r.json(t, &created)
		if r.status != http.StatusCreated || created.Token.State != "live" {
			t.Fatalf("create %s: %d %s", tok["name"], r.status, r.body)
		}
	}
	if r := e.do(t, pki.RoleAdmin, "DELETE", "/api/v1/tokens/gone", nil); r.status/100 != 2 {
		t.Fatalf("revoke gone: %d %s", r.status, r.body)
	}
	e.Clock.Advance(2 * time.Hour)
	r := e.do(t, pki.RoleAdmin, "GET", "/api/v1/tokens", nil)
	var list struct {
		Items []struct{ Name, State string }
	}
	r.json(t, &list)
	got := map[string]string{}
	for _, it := range list.Items {
		got[it.Name] = it.State
	}
	for name, want := range map[string]string{"forever": "live", "hour": "expired", "day": "live", "gone": "revoked", "t-admin": "live"} {
		if got[name] != want {
			t.Errorf("token %s: state %q, want %q\n%s", name, got[name], want, r.body)
		}
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct{ Type, Description string }
			}
		}
	}
	if err := json.Unmarshal(e.do(t, pki.RoleAuditor, "GET", "/api/v1/openapi.json", nil).body, &doc); err != nil {
		t.Fatal(err)
	}
	if p, ok := doc.Components.Schemas["Token"].Properties["state"]; !ok || p.Type != "string" || p.Description == "" {
		t.Errorf("the OpenAPI Token schema's state: %+v (present %v)", p, ok)
	}
}
