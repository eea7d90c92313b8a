package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/health"
	"github.com/scepter/scepter/internal/metrics"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/server"
)

// A path served for other methods only is answered 405 with Allow on the
// HTTPS listener as on the plain one (r128: POST /healthz and POST
// /metrics got a bare 404 there, as EST's catch-all for misplaced paths
// took them before the mux's own 405).
func TestWrongMethodIs405OnBothListeners(t *testing.T) {
	clock := pkitest.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	h := server.Handlers{
		SCEP:      routes{"/scep": named("scep")},
		EST:       routes{"/.well-known/est/": named("est")},
		Health:    health.New(health.Options{Clock: clock}),
		Metrics:   metrics.New(metrics.Options{Clock: clock}),
		CRL:       routes{"GET /crl/{name}": named("crl")},
		API:       routes{"DELETE /api/v1/thing/{id}": named("delete"), "POST /api/v1/thing/{id}": named("post")},
		HTTPSPort: "8443",
	}
	plainMux, err := server.PlainMux(h)
	if err != nil {
		t.Fatal(err)
	}
	tlsMux, err := server.TLSMux(h)
	if err != nil {
		t.Fatal(err)
	}
	plain := httptest.NewServer(plainMux)
	defer plain.Close()
	secure := httptest.NewTLSServer(tlsMux)
	defer secure.Close()
	for _, tc := range []struct {
		method, path string
		plainToo     bool // the plain listener serves the path
		status       int
		allow        string
	}{
		{http.MethodPost, "/healthz", true, 405, "GET, HEAD"},
		{http.MethodPost, "/readyz", true, 405, "GET, HEAD"},
		{http.MethodPost, "/metrics", true, 405, "GET, HEAD"},
		{http.MethodDelete, "/metrics", true, 405, "GET, HEAD"},
		{http.MethodPut, "/crl/root.crl", true, 405, "GET, HEAD"},
		{http.MethodGet, "/api/v1/thing/1", false, 405, "DELETE, POST"},
		{http.MethodGet, "/healthz", true, 200, ""},
		{http.MethodPost, "/nothing/here", true, 404, ""},
		{http.MethodPost, "/x/.well-known/est/simpleenroll", false, 404, ""},
	} {
		for _, srv := range []*httptest.Server{plain, secure} {
			if srv == plain && !tc.plainToo {
				continue
			}
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader("x"))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || resp.Header.Get("Allow") != tc.allow {
				t.Errorf("%s %s%s: %d, Allow %q (%q); want %d, Allow %q", tc.method, srv.URL, tc.path,
					resp.StatusCode, resp.Header.Get("Allow"), body, tc.status, tc.allow)
			}
		}
	}
}
