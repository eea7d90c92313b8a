package estserver_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/pki"
)

// Copies of one simplereenroll (the same client certificate, new key and
// CSR) sent at once get one certificate, every copy that one: with
// revoke_superseded no copy is told that the certificate it renews is
// revoked, as its own renewal's winner revoked it.
func TestReenrollCopiesAtOnceGetOneCertificate(t *testing.T) {
	for _, revoke := range []bool{false, true} {
		t.Run(fmt.Sprintf("revoke superseded: %v", revoke), func(t *testing.T) {
			renew := profile("renew", func(p *pki.Profile) { p.RenewalWindow, p.RevokeSuperseded = 1, revoke })
			f := newFixture(t, fixtureOptions{profiles: []pki.Profile{renew}})
			names := csr.Template{DNSNames: []string{"copies.example"}}
			key := newKey(t)
			old := f.issued(f.post(f.httpClient(nil, 0), "renew/simpleenroll", "alice", userPassword, newCSR(t, key, "copies", names), nil))
			tc := f.httpClient(tlsPair(old, key, f.auth.Issuer.Cert), 0)
			body := newCSR(t, newKey(t), "copies", names)

			const copies = 8
			statuses, serials := make([]int, copies), make([]string, copies)
			errs := make([]error, copies)
			gate := make(chan struct{})
			var wg sync.WaitGroup
			for i := range copies {
				wg.Go(func() {
					<-gate
					statuses[i], serials[i], errs[i] = reenroll(tc, f.url+est.PathPrefix+"renew/simplereenroll", body)
				})
			}
			close(gate)
			wg.Wait()

			renewals, err := f.st.RenewalsOf(context.Background(), f.record(old).IssuerID, f.record(old).SerialHex)
			if err != nil {
				t.Fatal(err)
			}
			if len(renewals) != 1 {
				t.Fatalf("%d renewals issued for one request, want 1", len(renewals))
			}
			for i := range copies {
				switch {
				case errs[i] != nil:
					t.Errorf("copy %d: %v", i, errs[i])
				case statuses[i] != http.StatusOK:
					t.Errorf("copy %d: HTTP %d (%s), want 200", i, statuses[i], serials[i])
				case serials[i] != renewals[0].SerialHex:
					t.Errorf("copy %d answered with %s, want %s", i, serials[i], renewals[0].SerialHex)
				}
			}
		})
	}
}

// reenroll posts one simplereenroll with c, and returns its status and
// the serial it was issued (or, not 200, the reason).
func reenroll(c *http.Client, url string, body []byte) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", est.ContentTypePKCS10)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.Do(req.WithContext(ctx))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp.StatusCode, string(b), err
	}
	der, err := est.DecodeBase64(b)
	if err != nil {
		return resp.StatusCode, "", err
	}
	sd, err := cms.ParseSignedData(der)
	if err != nil || len(sd.Certificates) != 1 {
		return resp.StatusCode, "", fmt.Errorf("certs-only reply: %v, %d certificates", err, len(sd.Certificates))
	}
	return resp.StatusCode, sd.Certificates[0].SerialNumber.Text(16), nil
}
