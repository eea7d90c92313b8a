package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/est"
)

// A Retry-After longer than the time left of MaxWait (a 202, a 503 or a
// 429) ends the wait at once, the server not asked again early (RFC 7030
// §4.2.3: the client MUST wait at least that long), and the error says
// when the server asked to be asked again; before, the wait was cut to
// the time left and the server asked again then (r144 D2).
func TestESTRetryAfterBeyondMaxWait(t *testing.T) {
	later := trustNow.Add(24 * time.Hour)
	root := issue(t, "root", nil, true, later)
	der, tlsKey := localhostTLSCert(t, root, later)
	anchors := x509.NewCertPool()
	anchors.AddCert(root.cert)
	csrKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	makeCSR := func([]byte) ([]byte, error) {
		return x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev"}}, csrKey)
	}
	for _, tt := range []struct {
		name   string
		status int
		want   string
	}{
		{"202", http.StatusAccepted, "the request is pending manual approval; the server asked to be asked again in 1h, at 2030-01-02 04:04:05 UTC, beyond --max-wait, and is not asked earlier"},
		{"503", http.StatusServiceUnavailable, "HTTP 503: busy; not asked again within --max-wait 30s: the server asked to wait 1h, until 2030-01-02 04:04:05 UTC"},
		{"429", http.StatusTooManyRequests, "HTTP 429: busy; not asked again within --max-wait 30s: the server asked to wait 1h, until 2030-01-02 04:04:05 UTC"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var asked atomic.Int32
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				asked.Add(1)
				w.Header().Set("Retry-After", "3600")
				if tt.status == http.StatusAccepted {
					w.WriteHeader(tt.status)
					return
				}
				http.Error(w, "busy", tt.status)
			}))
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: tlsKey}}}
			srv.StartTLS()
			defer srv.Close()
			c := &EST{URL: srv.URL, Roots: anchors, User: "fleet", Password: "a long device password", Now: func() time.Time { return trustNow }}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := c.Enroll(ctx, ESTRequest{Op: est.OpSimpleEnroll, MakeCSR: makeCSR, PollInterval: time.Second, MaxWait: 30 * time.Second})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant it to say %q", err, tt.want)
			}
			if n := asked.Load(); n != 1 {
				t.Errorf("asked %d times, want once", n)
			}
			var pe *PendingError
			if tt.status == http.StatusAccepted && (!errors.As(err, &pe) || !pe.AskAgainAt.Equal(trustNow.Add(time.Hour))) {
				t.Errorf("err = %#v, want a *PendingError asking again at %s", err, trustNow.Add(time.Hour))
			}
		})
	}
}
