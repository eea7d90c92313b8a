package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/scepter/scepter/internal/server"
)

// misspeltRoutes is a router that answers its prefixes in another case.
type misspeltRoutes struct {
	routes
	misspelt map[string]http.Handler
}

func (m misspeltRoutes) MisspeltPrefixes() map[string]http.Handler { return m.misspelt }

// A path under a MisspeltPathRouter's prefix spelled in another case goes
// to its handler, on both listeners, where it got the mux's bare 404;
// the prefix in its own case, and any other path, are routed as before.
func TestMisspeltPrefixes(t *testing.T) {
	scep := misspeltRoutes{routes{"/scep": named("scep"), "/scep/{profile}": named("profile")},
		map[string]http.Handler{"/scep": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte("misspelt"))
		})}}
	h := server.Handlers{SCEP: scep, HTTPSPort: "8443"}
	plain, err := server.PlainMux(h)
	if err != nil {
		t.Fatal(err)
	}
	secure, err := server.TLSMux(h)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want int
		body string
	}{
		{"/scep", 200, "scep"},
		{"/scep/one", 200, "profile"},
		{"/scep/ONE", 200, "profile"},
		{"/SCEP", 404, "misspelt"},
		{"/Scep/one", 404, "misspelt"},
		{"/SCEP/", 404, "misspelt"},
		{"/SCEPX", 404, "404 page not found\n"},
		{"/scepx", 404, "404 page not found\n"},
	} {
		for name, mux := range map[string]http.Handler{"plain": plain, "https": secure} {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
			body, _ := io.ReadAll(rec.Result().Body)
			if rec.Code != tc.want || string(body) != tc.body {
				t.Errorf("%s %s: %d %q, want %d %q", name, tc.path, rec.Code, body, tc.want, tc.body)
			}
		}
	}
}
