package estserver_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// A simpleenroll asked again with the same key and names after its answer
// was lost (`scepter est enroll` keeps its key for that, and makes a new
// CSR of it) is answered with the certificate it was issued when the same
// EST user, or the static challenge, asks within a day: sent again, no
// second certificate. Another user, or a day later, gets one of its own.
func TestSimpleEnrollAskedAgainGetsTheSameCertificate(t *testing.T) {
	cases := []struct {
		name                   string
		firstUser, firstPass   string
		againUser, againPass   string
		wait                   time.Duration
		sameCertificate        bool
		wantCertificatesOfKey  int
		wantSentAgainEventsFor int
	}{
		{"the same EST user", "alice", userPassword, "alice", userPassword, 0, true, 1, 1},
		{"the static challenge", "device", "static-secret", "device-2", "static-secret", 0, true, 1, 1},
		{"another EST user", "alice", userPassword, "bob", "bob-password-123", 0, false, 2, 0},
		{"the same EST user a day later", "alice", userPassword, "alice", userPassword, 24 * time.Hour, false, 2, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, fixtureOptions{})
			addESTUser(t, f.st, f.clock, "bob", "bob-password-123", "")
			hc := f.httpClient(nil, 0)
			key := newKey(t)
			names := csr.Template{DNSNames: []string{"lost.example"}}
			first := f.issued(f.post(hc, "simpleenroll", c.firstUser, c.firstPass, newCSR(t, key, "lost", names), nil))
			f.clock.Advance(c.wait)
			again := f.issued(f.post(hc, "simpleenroll", c.againUser, c.againPass, newCSR(t, key, "lost", names), nil))
			if same := again.SerialNumber.Cmp(first.SerialNumber) == 0; same != c.sameCertificate {
				t.Errorf("asked again: certificate %x after %x (the same: %v), want the same: %v",
					again.SerialNumber, first.SerialNumber, same, c.sameCertificate)
			}
			if n := certsOf(t, f, "CN=lost"); n != c.wantCertificatesOfKey {
				t.Errorf("%d certificates in the inventory, want %d", n, c.wantCertificatesOfKey)
			}
			evs, err := f.st.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventSentAgain, SerialHex: first.SerialNumber.Text(16)})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != c.wantSentAgainEventsFor {
				t.Errorf("%d certificate.sent_again events for %x, want %d", len(evs), first.SerialNumber, c.wantSentAgainEventsFor)
			}
		})
	}
}

// Copies of one simpleenroll (the same EST user, key and CSR) sent at
// once get one certificate, every copy that one.
func TestSimpleEnrollCopiesAtOnceGetOneCertificate(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	hc := f.httpClient(nil, 0)
	body := newCSR(t, newKey(t), "copies", csr.Template{DNSNames: []string{"copies.example"}})
	const copies = 6
	statuses, serials, errs := make([]int, copies), make([]string, copies), make([]error, copies)
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i := range copies {
		wg.Go(func() {
			<-gate
			statuses[i], serials[i], errs[i] = simpleEnroll(hc, f.url+est.PathPrefix+"simpleenroll", body)
		})
	}
	close(gate)
	wg.Wait()
	if n := certsOf(t, f, "CN=copies"); n != 1 {
		t.Fatalf("%d certificates issued for one request sent %d times at once, want 1", n, copies)
	}
	for i := range copies {
		switch {
		case errs[i] != nil:
			t.Errorf("copy %d: %v", i, errs[i])
		case statuses[i] != http.StatusOK:
			t.Errorf("copy %d: HTTP %d (%s), want 200", i, statuses[i], serials[i])
		case serials[i] != serials[0]:
			t.Errorf("copy %d answered with %s, copy 0 with %s", i, serials[i], serials[0])
		}
	}
}

// simpleEnroll posts one simpleenroll as alice, as reenroll posts a
// simplereenroll.
func simpleEnroll(c *http.Client, url string, body []byte) (int, string, error) {
	return reenroll(&http.Client{Transport: basicAuthTransport{c.Transport, "alice", userPassword}}, url, body)
}

// basicAuthTransport sets HTTP Basic credentials on each request.
type basicAuthTransport struct {
	next       http.RoundTripper
	user, pass string
}

func (b basicAuthTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.SetBasicAuth(b.user, b.pass)
	return b.next.RoundTrip(req)
}

// certsOf counts the inventory's certificates of subject (the server's
// own HTTPS certificate is there too).
func certsOf(t *testing.T, f *fixture, subject string) int {
	t.Helper()
	certs, _, err := f.st.ListCertificates(context.Background(), store.CertFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range certs {
		if c.Subject == subject {
			n++
		}
	}
	return n
}
