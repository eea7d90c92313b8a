package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509/pkix"
	"net/http"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/csr"
)

// padQuery makes every PKIOperation GET longer than 16 KB, as certmonger's
// queries grow with key size, to show the real server's header limits fit.
type padQuery struct{ pad string }

func (p padQuery) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && strings.Contains(r.URL.RawQuery, "operation=PKIOperation") {
		r = r.Clone(r.Context())
		r.URL.RawQuery += "&pad=" + p.pad
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestLongGETQuery(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{prepared: true, challenge: "long-query-secret"})
	ctx := context.Background()
	c := &client.SCEP{URL: s.URL, HTTP: &http.Client{Transport: padQuery{pad: strings.Repeat("A", 17<<10)}}}
	caCerts, err := c.GetCACert(ctx)
	if err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := csr.Create(csr.Template{Subject: pkix.Name{CommonName: "long-query"}, ChallengePassword: s.Challenge}, key)
	if err != nil {
		t.Fatal(err)
	}
	// Capabilities without POSTPKIOperation: the client sends a GET, as certmonger does.
	caps := client.Caps{"aes": true, "sha-256": true}
	cert, err := c.Enroll(ctx, client.EnrollRequest{CSR: der, Key: key, CACerts: caCerts, Caps: caps})
	if err != nil {
		t.Fatalf("GET PKIOperation with a query over 17 KB: %v", err)
	}
	s.ExpectRecorded(cert)
}
