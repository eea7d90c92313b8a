package bench_test

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/bench"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
)

// silentPendingEST is an EST server on 127.0.0.1 that answers every
// simpleenroll with a 202, a Retry-After and no body, as other servers do.
func silentPendingEST(t *testing.T) bench.Options {
	t.Helper()
	ca := newLyingCA(t, "Holding CA", ecKey(t))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch strings.TrimPrefix(r.URL.Path, est.PathPrefix) {
		case est.OpCACerts:
			w.Header().Set("Content-Type", est.ContentTypeCertsOnly)
			w.Write(estCerts(t, ca.cert))
		case est.OpSimpleEnroll:
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusAccepted)
		default:
			http.NotFound(w, r)
		}
	}))
	tlsKey := ecKey(t)
	tlsCert := ca.issue(t, 2, pkix.Name{CommonName: "127.0.0.1"}, tlsKey.Public(), lyingNow.Add(-time.Minute))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{tlsCert.Raw}, PrivateKey: tlsKey}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	return bench.Options{Protocol: bench.EST, URLs: []string{srv.URL}, Challenge: "any", Roots: roots,
		Now: func() time.Time { return lyingNow }, Timeout: 20 * time.Second}
}

// A request the server holds is counted as pending and told as the server
// said it: over SCEP "PENDING", not the client's "pending manual approval"
// (which is our server's reason, not every server's), over EST the 202 with
// the server's text, or, without one, its Retry-After, never "HTTP 202 "
// with nothing after it (r124 observation 6).
func TestRunPendingSaysWhatTheServerSaid(t *testing.T) {
	held := pki.DefaultProfile()
	held.RequireApproval = true
	fo := fixture.Options{Config: enroll.Config{DefaultProfile: held.Name, Profiles: map[string]pki.Profile{held.Name: held}}}
	s := newSCEPServerWith(t, fo)
	_, est := newESTServerWith(t, fo, nil)
	for _, c := range []struct {
		name string
		o    bench.Options
		want string
	}{
		{"scep", s.options(s.url), "pending: the server answered PENDING (transaction "},
		{"est, the server's text", est, "pending: HTTP 202 request "},
		{"est, no text", silentPendingEST(t), "pending: HTTP 202: the server holds the request (EST's pending), Retry-After 30"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.o.KeyType, c.o.Count, c.o.Concurrency = "p256", 2, 1
			res := run(t, c.o)
			if res.OK != 0 || res.Failures["pending"] != 2 {
				t.Fatalf("ok %d failures %v, want pending 2: %v", res.OK, res.Failures, res.FirstErrors)
			}
			if len(res.FirstErrors) != 1 {
				t.Fatalf("first errors %q, want one", res.FirstErrors)
			}
			got := res.FirstErrors[0]
			if !strings.Contains(got, c.want) || strings.Contains(got, "manual approval") || strings.HasSuffix(got, " ") {
				t.Errorf("first error %q, want it to say %q (and nothing of manual approval, no trailing blank)", got, c.want)
			}
		})
	}
}
