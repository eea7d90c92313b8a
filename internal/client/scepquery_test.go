package client

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// A SCEP URL's own query parameters (a deployment's profile=, token=) are
// sent with every request, the client's operation (and message) after
// them, where the query was dropped before (r101 D5); a query that holds
// operation or message itself is refused before anything is sent.
func TestSCEPURLKeepsItsQuery(t *testing.T) {
	later := trustNow.Add(24 * time.Hour)
	root := issue(t, "root", nil, true, later)
	raKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ra := signed(t, &x509.Certificate{Subject: pkix.Name{CommonName: "ra"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment}, root, raKey)
	fake := &fakeGetCRLServer{t: t, ra: ra, caCerts: []*x509.Certificate{ra.cert, root.cert}, crl: crlOf(t, root)}
	var mu sync.Mutex
	var asked []string // method, path and query of each request
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
		mu.Unlock()
		fake.ServeHTTP(w, r)
	}))
	defer ts.Close()
	device := signed(t, &x509.Certificate{Subject: pkix.Name{CommonName: "device"}, KeyUsage: x509.KeyUsageDigitalSignature}, root, raKey).cert

	for _, tt := range []struct {
		name, query string
		want        []string // the requests, in order; nil: refused
	}{
		{"no query", "", []string{"GET /scep?operation=GetCACaps", "GET /scep?operation=GetCACert", "POST /scep?operation=PKIOperation"}},
		{"a deployment's parameters", "?profile=vpn&token=a%2Fb", []string{
			"GET /scep?profile=vpn&token=a%2Fb&operation=GetCACaps",
			"GET /scep?profile=vpn&token=a%2Fb&operation=GetCACert",
			"POST /scep?profile=vpn&token=a%2Fb&operation=PKIOperation"}},
		{"an empty query", "?", []string{"GET /scep?operation=GetCACaps", "GET /scep?operation=GetCACert", "POST /scep?operation=PKIOperation"}},
		{"operation in the query", "?operation=GetCACert", nil},
		{"message in the query, another case", "?profile=vpn&Message=x", nil},
		{"operation escaped", "?op%65ration=x", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			asked = nil
			mu.Unlock()
			sc := &SCEP{URL: ts.URL + "/scep" + tt.query, Now: func() time.Time { return trustNow }}
			ctx := context.Background()
			if tt.want == nil {
				if err := sc.CheckURL(); err == nil || !strings.Contains(err.Error(), "in its query, which the client sets for each request") {
					t.Errorf("CheckURL: %v, want the query refused", err)
				}
				if _, err := sc.GetCACaps(ctx); err == nil {
					t.Error("GetCACaps succeeded")
				}
				mu.Lock()
				defer mu.Unlock()
				if len(asked) != 0 {
					t.Errorf("the server was asked %q", asked)
				}
				return
			}
			if err := sc.CheckURL(); err != nil {
				t.Fatalf("CheckURL: %v", err)
			}
			caps, err := sc.GetCACaps(ctx)
			if err != nil {
				t.Fatal(err)
			}
			caCerts, err := sc.GetCACert(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sc.GetCRL(ctx, CRLRequest{Cert: device, CACerts: caCerts, Caps: caps}); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if strings.Join(asked, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("the server was asked\n%s\nwant\n%s", strings.Join(asked, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
