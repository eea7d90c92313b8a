package api_test

import (
	"net/http"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

// The API's own 404 (no such route) and 405 (another method of a route)
// carry the headers of every other API answer: nosniff, and no-store.
func TestNoRouteHeaders(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/api/v1/nothing", http.StatusNotFound},
		{"GET", "/api/", http.StatusNotFound},
		{"GET", "/api", http.StatusNotFound},
		{"PUT", "/api/v1/whoami", http.StatusMethodNotAllowed},
		{"DELETE", "/api/v1/openapi.json", http.StatusMethodNotAllowed},
	} {
		r := e.do(t, pki.RoleAdmin, tc.method, tc.path, nil)
		if r.status != tc.status {
			t.Errorf("%s %s: %d, want %d\n%s", tc.method, tc.path, r.status, tc.status, r.body)
		}
		for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store", "Content-Type": "application/json; charset=utf-8"} {
			if got := r.header.Get(k); got != v {
				t.Errorf("%s %s: %s %q, want %q", tc.method, tc.path, k, got, v)
			}
		}
	}
}
