package scepserver_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/store"
)

// TestConcurrentEnrollments runs 16 clients × 50 enrollments through the
// real handler, service and SQLite store: every certificate is recorded
// exactly once and no serial repeats.
func TestConcurrentEnrollments(t *testing.T) {
	workers, perWorker := 16, 50
	if raceEnabled || testing.Short() {
		perWorker = 8 // the race detector makes RSA ~10x slower
	}
	ts := newTestServer(t, serverOptions{})
	ctx := context.Background()
	c := &client.SCEP{URL: ts.URL + "/scep", Now: ts.Clock.Now}
	caps, caCerts := fetchCA(t, c)
	var (
		mu      sync.Mutex
		serials = map[string]int{}
		errs    []error
		wg      sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := testKey(t, w)
			for i := range perWorker {
				der, err := csr.Create(csr.Template{Subject: pkix.Name{CommonName: fmt.Sprintf("dev-%d-%d", w, i)}, ChallengePassword: testChallenge}, key)
				var cert *x509.Certificate
				if err == nil {
					cert, err = c.Enroll(ctx, client.EnrollRequest{CSR: der, Key: key, CACerts: caCerts, Caps: caps})
				}
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					serials[cert.SerialNumber.Text(16)]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs[:min(len(errs), 5)] {
		t.Error(err)
	}
	total := workers * perWorker
	if len(serials) != total {
		t.Errorf("%d distinct serials for %d enrollments (%d errors)", len(serials), total, len(errs))
	}
	for s, n := range serials {
		if n != 1 {
			t.Errorf("serial %s issued %d times", s, n)
		}
	}
	var recorded []string
	f := store.CertFilter{Limit: 1000}
	for {
		page, next, err := ts.Store.ListCertificates(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page {
			recorded = append(recorded, c.SerialHex)
		}
		if next == "" {
			break
		}
		f.Cursor = next
	}
	if len(recorded) != total {
		t.Errorf("store holds %d certificates, want %d", len(recorded), total)
	}
	for _, s := range recorded {
		if serials[s] != 1 {
			t.Errorf("recorded serial %s was not returned to a client", s)
		}
	}
}

// A server may close a kept-alive connection just as the client sends its
// next request on it (to make room for other clients, or at its idle
// timeout). The client's PKCSReq then goes again on a new connection
// instead of failing: it is marked idempotent, which is safe because the
// server refuses a second copy of its nonce.
func TestClientResendsOnClosedKeepAlive(t *testing.T) {
	var (
		mu          sync.Mutex
		requests    = map[string]int{} // per connection (client address)
		droppedPOST int
	)
	ts := newTestServer(t, serverOptions{wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			requests[r.RemoteAddr]++
			again := requests[r.RemoteAddr] > 1
			if again && r.Method == http.MethodPost {
				droppedPOST++
			}
			mu.Unlock()
			if again {
				// Each connection serves one request; the next one on it
				// finds it closed, with no reply.
				if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
					conn.Close()
				}
				return
			}
			next.ServeHTTP(w, r)
		})
	}})
	ctx := context.Background()
	c := &client.SCEP{URL: ts.URL + "/scep", Now: ts.Clock.Now, HTTP: &http.Client{Transport: &http.Transport{}}}
	caps, caCerts := fetchCA(t, c)
	for i := range 3 {
		key := testKey(t, i)
		der, err := csr.Create(csr.Template{Subject: pkix.Name{CommonName: fmt.Sprintf("keepalive-%d", i)}, ChallengePassword: testChallenge}, key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Enroll(ctx, client.EnrollRequest{CSR: der, Key: key, CACerts: caCerts, Caps: caps}); err != nil {
			t.Fatalf("enrollment %d: %v", i, err)
		}
	}
	if droppedPOST == 0 {
		t.Fatal("no PKIOperation met a closed connection: the test proves nothing")
	}
	if n := ts.certCount(t); n != 3 {
		t.Fatalf("%d certificates issued, want 3", n)
	}
}

// fetchCA asks the server for its capabilities and CA certificates, as a
// client does before it enrolls.
func fetchCA(t *testing.T, c *client.SCEP) (client.Caps, []*x509.Certificate) {
	t.Helper()
	caps, err := c.GetCACaps(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	certs, err := c.GetCACert(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return caps, certs
}
