package server_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
)

// The plain listener's refusals of the API carry the detail ErrorBody's
// doc gives their status: a 403 (not HTTPS) {"code": "forbidden"}, as the
// API's own 403s; a 404 for a path that is no route's, null, as the API's
// own 404 for one.
func TestPlainListenerAPIRefusalDetail(t *testing.T) {
	l := newListeners(t)
	forbidden := map[string]any{"code": "forbidden"}
	for _, tc := range []struct {
		name, method, path, authorization, body string
		status                                  int
		detail                                  any
	}{
		{"POST without a token", "POST", "/api/v1/challenges", "", "{}", http.StatusForbidden, forbidden},
		{"DELETE without a token", "DELETE", "/api/v1/tokens/x", "", "", http.StatusForbidden, forbidden},
		{"POST to /api", "POST", "/api", "", "", http.StatusForbidden, forbidden},
		{"GET with a token", "GET", "/api/v1/whoami", "Bearer " + l.token, "", http.StatusForbidden, forbidden},
		{"POST with another scheme", "POST", "/api/v1/tokens", "Basic eDp5", "{}", http.StatusForbidden, forbidden},
		{"unclean path", "GET", "/api/v1/./whoami", "", "", http.StatusNotFound, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, l.plain, tc.method, tc.path, tc.authorization, tc.body)
			if a.status != tc.status {
				t.Fatalf("%d %q, want %d", a.status, a.body, tc.status)
			}
			apiError(t, a)
			var e struct {
				Detail any `json:"detail"`
			}
			if err := json.Unmarshal([]byte(a.body), &e); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(e.Detail, tc.detail) {
				t.Errorf("detail %#v, want %#v (%s)", e.Detail, tc.detail, a.body)
			}
		})
	}
}
