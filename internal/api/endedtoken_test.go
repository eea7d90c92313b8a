package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/pki"
)

// A 401 for the secret of a revoked or expired token says which, naming
// the token (its sender holds the secret: it learns nothing new), so that a
// script's operator can tell it from a mistyped one; a secret that is no
// token's, or none, still gets only the rule (r111).
func TestEndedTokenIsToldWhy(t *testing.T) {
	e := newEnv(t)
	au := auth.New(e.Store, e.Clock, e.Log)
	ctx := context.Background()
	start := e.Clock.Now()
	mk := func(name string, ttl time.Duration) string {
		secret, _, err := au.NewToken(ctx, name, pki.RoleAuditor, ttl, auth.CLI("cli:test"))
		if err != nil {
			t.Fatal(err)
		}
		return secret
	}
	revoked, expired, live := mk("ci-revoked", 0), mk("ci-hour", time.Hour), mk("ci-live", 0)
	revokedTok, err := au.RevokeToken(ctx, "ci-revoked", auth.CLI("cli:test"))
	if err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(2 * time.Hour)
	const rule = "a valid API token is required: Authorization: Bearer scepter_…"
	for _, tc := range []struct {
		name, header string
		status       int
		want         string // the whole error
	}{
		{"revoked", "Bearer " + revoked, 401, `the API token "ci-revoked" (` + revokedTok.ID + `) was revoked at ` + start.UTC().Format(time.RFC3339) + "; " + rule},
		{"expired", "Bearer " + expired, 401, `the API token "ci-hour" (`},
		{"unknown", "Bearer scepter_" + strings.Repeat("A", 43), 401, rule},
		{"a revoked one mistyped", "Bearer " + revoked[:len(revoked)-1] + "x", 401, rule},
		{"none", "", 401, rule},
		{"live", "Bearer " + live, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/whoami", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			res, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			var eb struct{ Error string }
			json.Unmarshal(b, &eb)
			if res.StatusCode != tc.status || !strings.HasPrefix(eb.Error, tc.want) || (tc.want == rule && eb.Error != rule) {
				t.Errorf("%d %q, want %d %q", res.StatusCode, eb.Error, tc.status, tc.want)
			}
			if tc.name == "expired" && !strings.HasSuffix(eb.Error, " expired at "+start.Add(time.Hour).UTC().Format(time.RFC3339)+"; "+rule) {
				t.Errorf("expired: %q does not give the time it expired", eb.Error)
			}
		})
	}
}
