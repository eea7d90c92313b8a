package server_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/est/estserver"
	"github.com/scepter/scepter/internal/server"
)

// /api and /.well-known/est without their slash are answered as the paths
// under them are, never with the mux's bare 307 to the slashed path: on
// the plain listener that redirect stays on plain HTTP, and a client
// following it sends its token and its POST in the clear a second time.
func TestPrefixWithoutItsSlash(t *testing.T) {
	l := newListeners(t)
	bearer := "Bearer " + l.token
	for _, tc := range []struct {
		name, method, authorization string
		status                      int
		location                    string
		reason                      []string
	}{
		{"POST with a token", "POST", bearer, 403, "", []string{"served over HTTPS only: " + l.https.URL + "/api", "crossed the network in the clear"}},
		{"DELETE with a token", "DELETE", bearer, 403, "", []string{"crossed the network in the clear"}},
		{"GET with a token", "GET", "Bearer x", 403, "", []string{"crossed the network in the clear"}},
		{"POST without one", "POST", "", 403, "", []string{"served over HTTPS only: " + l.https.URL + "/api"}},
		{"GET without one", "GET", "", 301, l.https.URL + "/api", nil},
	} {
		t.Run("plain /api, "+tc.name, func(t *testing.T) {
			a := do(t, l.plain, tc.method, "/api", tc.authorization, "")
			if a.status != tc.status || a.header.Get("Location") != tc.location {
				t.Fatalf("%d, Location %q, %q; want %d, Location %q", a.status, a.header.Get("Location"), a.body, tc.status, tc.location)
			}
			if tc.status == 301 {
				return
			}
			msg := apiError(t, a)
			for _, want := range tc.reason {
				if !strings.Contains(msg, want) {
					t.Errorf("%q lacks %q", msg, want)
				}
			}
		})
	}
	for _, method := range []string{"GET", "POST"} {
		t.Run("HTTPS /api, "+method, func(t *testing.T) {
			a := do(t, l.https, method, "/api", bearer, "")
			if a.status != 404 || a.header.Get("Location") != "" {
				t.Fatalf("%d, Location %q, %q; want the API's 404", a.status, a.header.Get("Location"), a.body)
			}
			if msg := apiError(t, a); !strings.Contains(msg, "the API is served under /api/v1/") {
				t.Errorf("reason %q", msg)
			}
		})
	}

	// EST on: the EST handler's refusal, naming the HTTPS URL.
	h := server.Handlers{EST: estserver.New(l.pki.Service, l.pki.Log, estserver.Options{}), HTTPSPort: "8443", HTTPSNames: []string{"ca.example"}}
	plain, err := server.PlainMux(h)
	if err != nil {
		t.Fatal(err)
	}
	// EST off: noEST's 404 with its reason; the API's, with the token's.
	off, err := server.PlainMux(server.Handlers{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, path, authorization string
		mux                               http.Handler
		status                            int
		reason                            []string
	}{
		{"EST on", "GET", "/.well-known/est", "", plain, 403, []string{"EST is served over HTTPS only", "https://ca.example:8443/.well-known/est/OPERATION (cacerts, "}},
		{"EST on, credentials", "POST", "/.well-known/est", "Basic eDp5", plain, 403, []string{"https://ca.example:8443/.well-known/est/", "crossed the network in the clear"}},
		{"EST off", "GET", "/.well-known/est", "", off, 404, []string{"--est-listen is off"}},
		{"EST off, API", "POST", "/api", "Bearer x", off, 404, []string{"--est-listen is off", "crossed the network in the clear"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			req.Host = "ca.example:8080"
			if tc.authorization != "" {
				req.Header.Set("Authorization", tc.authorization)
			}
			rec := httptest.NewRecorder()
			tc.mux.ServeHTTP(rec, req)
			if rec.Code != tc.status || rec.Header().Get("Location") != "" {
				t.Fatalf("%d, Location %q, %q; want %d", rec.Code, rec.Header().Get("Location"), rec.Body.String(), tc.status)
			}
			for _, want := range tc.reason {
				if !strings.Contains(rec.Body.String(), want) {
					t.Errorf("%q lacks %q", rec.Body.String(), want)
				}
			}
		})
	}
}
