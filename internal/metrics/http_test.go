package metrics_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/metrics"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/server"
)

// routes is a server.Router of fixed patterns.
type routes map[string]http.Handler

func (r routes) Routes() map[string]http.Handler { return r }

// prefixed is a router with a raw prefix, like the OCSP responder's GETs.
type prefixed struct {
	routes
	raw map[string]http.Handler
}

func (p prefixed) RawPrefixes() map[string]http.Handler { return p.raw }

// The latency histogram is labelled by the route pattern that took the
// request, never by the path the client sent: profile labels, serials and
// OCSP requests in base64 stay out of the label values.
func TestLatencyIsLabelledByRoutePattern(t *testing.T) {
	clock := pkitest.NewClock(time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC))
	m := metrics.New(metrics.Options{Clock: clock})
	// Each handler takes 250 ms of the injected clock.
	slow := func(code int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			clock.Advance(250 * time.Millisecond)
			w.WriteHeader(code)
		})
	}
	h := server.Handlers{
		SCEP:    routes{"/scep/{profile}": slow(http.StatusOK), "GET /crl/{file}": slow(http.StatusNotFound)},
		OCSP:    prefixed{routes{"POST /ocsp": slow(http.StatusOK)}, map[string]http.Handler{"/ocsp/": slow(http.StatusOK)}},
		Metrics: m,
	}
	plain, err := server.PlainMux(h)
	if err != nil {
		t.Fatal(err)
	}
	secure, err := server.TLSMux(h)
	if err != nil {
		t.Fatal(err)
	}
	httpH, httpsH := m.Instrument("http", plain), m.Instrument("https", secure)
	secrets := []string{"secret-profile", "deadbeef.crl", "MFYwVKADAgEAME0wSzAJBgUrDgMCGgUABBR", "nothing-here"}
	for _, c := range []struct {
		h            http.Handler
		method, path string
	}{
		{httpH, "GET", "/scep/secret-profile?operation=GetCACaps"},
		{httpH, "POST", "/scep/secret-profile?operation=PKIOperation"},
		{httpsH, "GET", "/scep/secret-profile?operation=GetCACaps"},
		{httpH, "GET", "/crl/deadbeef.crl"},
		{httpH, "GET", "/ocsp/MFYwVKADAgEAME0wSzAJBgUrDgMCGgUABBR%2F%2Fabc=="},
		{httpH, "POST", "/ocsp"},
		{httpH, "GET", "/nothing-here/at-all"},
		{httpH, "BREW", "/scep/secret-profile"},
	} {
		rec := httptest.NewRecorder()
		c.h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
	}

	fams := scrape(t, httpH)
	const name = "scepter_http_request_duration_seconds"
	for _, c := range []struct {
		listener, route, method, code string
		want                          float64
	}{
		{"http", "/scep/{profile}", "GET", "200", 1},
		{"http", "/scep/{profile}", "POST", "200", 1},
		{"https", "/scep/{profile}", "GET", "200", 1},
		{"http", "/crl/{file}", "GET", "404", 1},
		{"http", "/ocsp/", "GET", "200", 1},
		{"http", "/ocsp", "POST", "200", 1},
		{"http", metrics.Unmatched, "GET", "404", 1},
		{"http", "/scep/{profile}", "other", "200", 1},
	} {
		expect(t, fams, name, map[string]string{"listener": c.listener, "route": c.route, "method": c.method, "code": c.code}, c.want)
	}
	for _, m := range fams[name].GetMetric() {
		for _, l := range m.GetLabel() {
			for _, s := range secrets {
				if strings.Contains(l.GetValue(), s) {
					t.Errorf("label %s=%q holds the request path", l.GetName(), l.GetValue())
				}
			}
		}
		// The injected clock is what is measured: 250 ms per request
		// that reached a handler of ours.
		if h := m.GetHistogram(); !hasLabel(m, "route", metrics.Unmatched) && h.GetSampleSum() != 0.25*float64(h.GetSampleCount()) {
			t.Errorf("%v: sum %v for %d requests, want 0.25 s each", m.GetLabel(), h.GetSampleSum(), h.GetSampleCount())
		}
	}
}

// /metrics is served on both listeners, unauthenticated.
func TestMetricsOnBothListeners(t *testing.T) {
	m := metrics.New(metrics.Options{Clock: pkitest.NewClock(time.Now())})
	h := server.Handlers{Metrics: m}
	for name, build := range map[string]func(server.Handlers) (http.Handler, error){"plain": server.PlainMux, "TLS": server.TLSMux} {
		mux, err := build(h)
		if err != nil {
			t.Fatal(err)
		}
		fams := scrape(t, mux)
		for _, want := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total"} {
			if _, ok := fams[want]; !ok {
				t.Errorf("%s listener: /metrics has no %s", name, want)
			}
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/metrics", nil))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s listener: POST /metrics: %d, want 405", name, rec.Code)
		}
	}
}

// A body cut short by http.MaxBytesReader still closes the connection
// after the 413, as it does without the middleware, so the rest of an
// oversized body is never read.
func TestOversizedBodyStillClosesTheConnection(t *testing.T) {
	m := metrics.New(metrics.Options{Clock: pkitest.NewClock(time.Now())})
	mux, err := server.PlainMux(server.Handlers{SCEP: routes{"POST /scep": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1024)); err != nil {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		w.WriteHeader(http.StatusOK)
	})}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Instrument("http", mux))
	defer srv.Close()
	resp, err := srv.Client().Post(srv.URL+"/scep", "application/octet-stream", strings.NewReader(strings.Repeat("x", 64<<10)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
		t.Errorf("oversized body: %d, Connection %q; want 413 and the connection closed", resp.StatusCode, resp.Header.Get("Connection"))
	}
	resp, err = srv.Client().Post(srv.URL+"/scep", "application/octet-stream", strings.NewReader("small"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Errorf("small body: %d, close %v; want 200 on a connection kept open", resp.StatusCode, resp.Close)
	}
}
