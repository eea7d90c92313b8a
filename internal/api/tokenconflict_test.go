package api_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
)

// A new token's name that a token has, or one differing from it only in
// case, is refused with 409 naming that token as stored, its ID and its
// state, not the name just asked for, which no token has (r127 D2).
func TestTokenNameConflictNamesTheToken(t *testing.T) {
	e := newEnv(t)
	ids := map[string]string{}
	for _, tok := range []struct{ name, ttl string }{{"tauditor", ""}, {"old", ""}, {"brief", "1m"}} {
		r := e.do(t, pki.RoleAdmin, "POST", "/api/v1/tokens", map[string]string{"name": tok.name, "role": "auditor", "ttl": tok.ttl})
		if r.status != http.StatusCreated {
			t.Fatalf("creating %s: %d %s", tok.name, r.status, r.body)
		}
		var made struct{ Token struct{ ID string } }
		r.json(t, &made)
		ids[tok.name] = made.Token.ID
	}
	revokedAt := e.Clock.Now().UTC().Format(time.RFC3339)
	if r := e.do(t, pki.RoleAdmin, "DELETE", "/api/v1/tokens/old", nil); r.status/100 != 2 {
		t.Fatalf("revoking old: %d %s", r.status, r.body)
	}
	expiredAt := e.Clock.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	e.Clock.Advance(time.Minute)

	const rule = "; a token's name is never given to another, even once revoked or expired)"
	for _, tc := range []struct{ name, want string }{
		{"TAUDITOR", `a token is named "tauditor" already, which differs from "TAUDITOR" only in case (token ` + ids["tauditor"] + ", live" + rule},
		{"tauditor", `a token is named "tauditor" already (token ` + ids["tauditor"] + ", live" + rule},
		{"OLD", `a token is named "old" already, which differs from "OLD" only in case (token ` + ids["old"] + ", revoked at " + revokedAt + rule},
		{"Brief", `a token is named "brief" already, which differs from "Brief" only in case (token ` + ids["brief"] + ", expired at " + expiredAt + rule},
	} {
		r := e.do(t, pki.RoleAdmin, "POST", "/api/v1/tokens", map[string]string{"name": tc.name, "role": "auditor"})
		var got struct{ Error string }
		if err := json.Unmarshal(r.body, &got); err != nil || r.status != http.StatusConflict || got.Error != tc.want {
			t.Errorf("creating %s: %d %s\nwant 409 %q", tc.name, r.status, r.body, tc.want)
		}
	}
}
