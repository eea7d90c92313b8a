package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

// A 405's Allow names HEAD wherever GET is served, as ServeMux serves HEAD
// there too (and as the console's Allow does); a path without GET names
// no HEAD, which would be 405 too.
func TestMethodNotAllowedNamesHead(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		method, path, allow string
	}{
		{"PATCH", "/api/v1/certificates", "GET, HEAD"},
		{"POST", "/api/v1/audit", "GET, HEAD"},
		{"PUT", "/api/v1/challenges", "GET, HEAD, POST"},
		{"PATCH", "/api/v1/openapi.json", "GET, HEAD"},
		{"GET", "/api/v1/tokens/x", "DELETE"},
		{"GET", "/api/v1/requests/x/approve", "POST"},
	} {
		r := e.do(t, pki.RoleAdmin, tc.method, tc.path, nil)
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d, Allow %q; want 405, Allow %q\n%s", tc.method, tc.path, r.status, r.header.Get("Allow"), tc.allow, r.body)
		}
		// Each method named is served: HEAD is answered as GET is.
		for _, m := range strings.Split(tc.allow, ", ") {
			if r := e.do(t, pki.RoleAdmin, m, tc.path, nil); r.status == http.StatusMethodNotAllowed {
				t.Errorf("%s %s, named in Allow: 405", m, tc.path)
			}
		}
		if !strings.Contains(tc.allow, "GET") {
			if r := e.do(t, pki.RoleAdmin, "HEAD", tc.path, nil); r.status != http.StatusMethodNotAllowed {
				t.Errorf("HEAD %s, which takes no GET: %d, want 405", tc.path, r.status)
			}
		}
	}
}
