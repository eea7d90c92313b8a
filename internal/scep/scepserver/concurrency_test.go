package scepserver_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
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
	caps, err := c.GetCACaps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	caCerts, err := c.GetCACert(ctx)
	if err != nil {
		t.Fatal(err)
	}
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
