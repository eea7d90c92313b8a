package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/api"
	"github.com/scepter/scepter/internal/pki"
)

// A held request whose retention ran out with no decision is listed as
// "expired": not among the pending ones (the default), but under
// ?status=expired and all; approving or rejecting it is 409.
func TestExpiredRequestIsListedExpired(t *testing.T) {
	e := newEnv(t)
	old := e.heldRequest(t, "too-late")
	e.Clock.Advance(pki.DefaultProfile().RequestRetention)
	fresh := e.heldRequest(t, "in-time")

	list := func(query string) map[string]string {
		t.Helper()
		r := e.do(t, pki.RoleAuditor, "GET", "/api/v1/requests"+query, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET /api/v1/requests%s: %d %s", query, r.status, r.body)
		}
		var page api.RequestPage
		r.json(t, &page)
		got := map[string]string{}
		for _, q := range page.Items {
			got[q.ID] = q.Status
		}
		return got
	}
	for _, c := range []struct {
		query string
		want  map[string]string
	}{
		{"", map[string]string{fresh: "pending"}},
		{"?status=pending", map[string]string{fresh: "pending"}},
		{"?status=expired", map[string]string{old: "expired"}},
		{"?status=all", map[string]string{fresh: "pending", old: "expired"}},
	} {
		got := list(c.query)
		if len(got) != len(c.want) {
			t.Errorf("GET /api/v1/requests%s: %v, want %v", c.query, got, c.want)
			continue
		}
		for id, st := range c.want {
			if got[id] != st {
				t.Errorf("GET /api/v1/requests%s: %v, want %v", c.query, got, c.want)
			}
		}
	}
	for action, body := range map[string]any{"approve": nil, "reject": map[string]string{"reason": "too late"}} {
		r := e.do(t, pki.RoleOperator, "POST", "/api/v1/requests/"+old+"/"+action, body)
		if r.status != http.StatusConflict || !strings.Contains(string(r.body), "expired at") {
			t.Errorf("%s an expired request: %d %s, want 409, expired at", action, r.status, r.body)
		}
	}
}
