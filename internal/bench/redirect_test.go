package bench_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/bench"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/est/estserver"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/scep/scepserver"
	"github.com/scepter/scepter/internal/server"
)

// A redirect is never followed, https to plain http least of all: the
// requests, and the EST password with them, would go where nobody pointed
// the tool, past its https and trust checks. During the run a 3xx is a
// failure by its status, naming where it pointed; during the setup
// (GetCACaps, GetCACert, /cacerts) it stops the run.
func TestRunFollowsNoRedirect(t *testing.T) {
	p := fixture.New(t, fixture.Options{})
	sh, err := scepserver.New(p.Service, p.Clock, p.Log, scepserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mux, err := server.TLSMux(server.Handlers{SCEP: sh, EST: estserver.New(p.Service, p.Log, estserver.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := server.ManagedCertificate(context.Background(), filepath.Join(p.Dir, "tls"), []string{"127.0.0.1"}, p.Service, "", p.Clock, p.Log)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := cert.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(p.Authority.Root.Raw)
	fingerprint := "sha256:" + hex.EncodeToString(sum[:])

	// The plain-http listener the redirects point to, which must hear
	// nothing.
	var heard atomic.Int64
	var heardAuth atomic.Value
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		heard.Add(1)
		heardAuth.Store(r.Header.Get("Authorization"))
		mux.ServeHTTP(w, r) // answers as the real server would
	}))
	t.Cleanup(plain.Close)

	for _, tc := range []struct {
		name     string
		protocol string
		// redirected tells which requests the https server sends to the
		// plain listener; the rest it answers itself.
		redirected func(*http.Request) bool
		setup      bool // the run cannot start
	}{
		{"est simpleenroll", bench.EST, func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/"+est.OpSimpleEnroll) }, false},
		{"est cacerts", bench.EST, func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/"+est.OpCACerts) }, true},
		{"scep PKIOperation", bench.SCEP, func(r *http.Request) bool { return r.URL.Query().Get("operation") == "PKIOperation" }, false},
		{"scep GetCACert", bench.SCEP, func(r *http.Request) bool { return r.URL.Query().Get("operation") == "GetCACert" }, true},
		{"scep GetCACaps", bench.SCEP, func(r *http.Request) bool { return r.URL.Query().Get("operation") == "GetCACaps" }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			heard.Store(0)
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.redirected(r) {
					http.Redirect(w, r, plain.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
					return
				}
				mux.ServeHTTP(w, r)
			}))
			srv.TLS = server.TLSConfig(nil, 0, 0)
			srv.TLS.Certificates = []tls.Certificate{*pair}
			srv.StartTLS()
			t.Cleanup(srv.Close)

			u := srv.URL
			if tc.protocol == bench.SCEP {
				u += "/scep"
			}
			o := bench.Options{Protocol: tc.protocol, URLs: []string{u}, Challenge: fixture.Challenge, KeyType: "p256",
				CAFingerprint: fingerprint, Now: p.Clock.Now, Count: 3, Timeout: 20 * time.Second}
			if tc.protocol == bench.EST {
				o.ESTUser, o.ESTPassword = "fleet", "a long device password"
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := bench.Run(ctx, o)
			if n := heard.Load(); n != 0 {
				t.Fatalf("the plain-http listener got %d requests (Authorization %q)", n, heardAuth.Load())
			}
			if tc.setup {
				if err == nil || !strings.Contains(err.Error(), "HTTP 307") {
					t.Fatalf("Run: %v, want the redirect refused", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.OK != 0 || res.Failures["http:307"] != 3 {
				t.Fatalf("ok %d failures %v, want http:307 3: %v", res.OK, res.Failures, res.FirstErrors)
			}
			if len(res.FirstErrors) != 1 || !strings.Contains(res.FirstErrors[0], `a redirect to "`+plain.URL) {
				t.Errorf("first errors %q, want the redirect's Location named", res.FirstErrors)
			}
			if res.ExitError(false) == nil {
				t.Error("ExitError = nil, want the failures")
			}
		})
	}
}
