package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/est"
)

// A 503 or 429 with Retry-After (delta-seconds or an HTTP date, RFC 9110
// §10.2.3) carries the wait on the error, over SCEP and EST, and an EST
// 202's wait is on its *PendingError: the agent waits at least that long
// before it asks again (r88 D7: it was dropped).
func TestRetryAfterIsOnTheError(t *testing.T) {
	now := trustNow
	var status atomic.Int32
	var header atomic.Value
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := header.Load().(string); h != "" {
			w.Header().Set("Retry-After", h)
		}
		w.WriteHeader(int(status.Load()))
	})
	scepSrv := httptest.NewServer(handler)
	t.Cleanup(scepSrv.Close)

	later := trustNow.Add(24 * time.Hour)
	root := issue(t, "root", nil, true, later)
	der, tlsKey := localhostTLSCert(t, root, later)
	estSrv := httptest.NewUnstartedServer(handler)
	estSrv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: tlsKey}}}
	estSrv.StartTLS()
	t.Cleanup(estSrv.Close)
	anchors := x509.NewCertPool()
	anchors.AddCert(root.cert)
	csrKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	clock := func() time.Time { return now }
	for _, tt := range []struct {
		name   string
		status int
		header string
		want   time.Duration
	}{
		{"503 seconds", 503, "120", 120 * time.Second},
		{"429 seconds", 429, " 30 ", 30 * time.Second},
		{"503 date", 503, now.Add(90 * time.Second).UTC().Format(http.TimeFormat), 90 * time.Second},
		{"503 without", 503, "", 0},
		{"503 garbage", 503, "soon", 0},
		{"500 ignores it", 500, "120", 0},
		{"202", 202, "60", 60 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status.Store(int32(tt.status))
			header.Store(tt.header)
			if tt.status != 202 {
				_, err := (&SCEP{URL: scepSrv.URL + "/scep", Now: clock}).GetCACaps(context.Background())
				if err == nil {
					t.Fatal("SCEP: no error")
				}
				if got := RetryAfter(err); got != tt.want {
					t.Errorf("SCEP: RetryAfter(%v) = %s, want %s", err, got, tt.want)
				}
			}
			_, err := (&EST{URL: estSrv.URL, Roots: anchors, Now: clock}).Enroll(context.Background(), ESTRequest{Op: est.OpSimpleReenroll,
				MakeCSR: func([]byte) ([]byte, error) {
					return x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev"}}, csrKey)
				}})
			if err == nil {
				t.Fatal("EST: no error")
			}
			if got := RetryAfter(err); got != tt.want {
				t.Errorf("EST: RetryAfter(%v) = %s, want %s", err, got, tt.want)
			}
		})
	}
}
