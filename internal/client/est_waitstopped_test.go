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

// An EST enrollment told to stop (its context cancelled: SIGINT, SIGTERM)
// while it waits for a request the server holds (202) returns a
// *PendingError that says the wait was stopped, as SCEP's does, whether it
// was between asks or asking again: the request stays held, and the
// caller says where its key is. Before, it returned the bare context
// error (or, asking again, the connection's), which the caller took for no
// answer at all. Stopped before any hold came, it returns that error:
// nothing says the request was held.
func TestESTStoppedWaitIsPending(t *testing.T) {
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
		name      string
		blockFrom int32 // the first request (1-based) the server does not answer, 0: none
		stopOnAsk bool  // stop when the blocked request arrives, not while waiting between asks
		held      bool  // a *PendingError that says the wait was stopped
	}{
		{"between asks", 0, false, true},
		{"while asking again", 2, true, true},
		{"before any hold", 1, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			var asked atomic.Int32
			release := make(chan struct{}) // the blocked request's end, once the client has given up
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				if n := asked.Add(1); tt.blockFrom > 0 && n >= tt.blockFrom {
					stop()
					<-release
					return
				}
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusAccepted)
			}))
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: tlsKey}}}
			srv.StartTLS()
			defer srv.Close()
			defer close(release) // before srv.Close, which waits for the handler
			c := &EST{URL: srv.URL, Roots: anchors, User: "fleet", Password: "a long device password", Now: func() time.Time { return trustNow },
				Warnf: func(string, ...any) {
					if !tt.stopOnAsk {
						stop() // said just before it waits
					}
				}}
			interval := time.Hour
			if tt.stopOnAsk {
				interval = 0 // Retry-After's second
			}
			_, err := c.Enroll(ctx, ESTRequest{Op: est.OpSimpleEnroll, MakeCSR: makeCSR, PollInterval: interval, MaxWait: 2 * time.Hour})
			var pe *PendingError
			if got := errors.As(err, &pe); got != tt.held {
				t.Fatalf("err = %v, a *PendingError: %v, want %v", err, got, tt.held)
			}
			if tt.held {
				if !errors.Is(err, context.Canceled) {
					t.Errorf("err = %v, which errors.Is does not find context.Canceled in", err)
				}
				if want := "the request is pending manual approval (waiting for it was stopped)"; err.Error() != want {
					t.Errorf("err = %q, want %q", err, want)
				}
			} else if strings.Contains(err.Error(), "pending") {
				t.Errorf("err = %q: no hold came", err)
			}
		})
	}
}
