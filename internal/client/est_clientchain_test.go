package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/est"
)

// A server of a two-tier PKI that trusts only the root for client
// certificates gets the issuing CA presented after the leaf: from the
// certificate's file, from ClientChain (the agent's chain_path) or from
// /cacerts, fetched without a client certificate. Nothing that does not
// chain the leaf is sent. A refusal of the client certificate says so,
// naming it, where it read as a problem with the server's CA (r144 D1).
func TestESTClientCertificateChain(t *testing.T) {
	later := trustNow.Add(24 * time.Hour)
	root := issue(t, "root", nil, true, later)
	issuing := issue(t, "issuing", root, true, later)
	leaf := issue(t, "client", issuing, false, later)
	stranger := issue(t, "stranger", nil, true, later)
	strangerIssuing := issue(t, "stranger issuing", stranger, true, later)
	tlsDER, tlsKey := localhostTLSCert(t, root, later)
	pool := func(certs ...*x509.Certificate) *x509.CertPool {
		p := x509.NewCertPool()
		for _, c := range certs {
			p.AddCert(c)
		}
		return p
	}
	pair := func(extra ...*x509.Certificate) *tls.Certificate {
		p := &tls.Certificate{Certificate: [][]byte{leaf.cert.Raw}, PrivateKey: leaf.key}
		for _, c := range extra {
			p.Certificate = append(p.Certificate, c.Raw)
		}
		return p
	}
	for _, tt := range []struct {
		name        string
		auth        tls.ClientAuthType
		trusts      *x509.Certificate // the server's only client CA
		pinned      bool              // Fingerprint, else Roots
		httpNeeds   bool              // a request without a certificate gets HTTP 400 (nginx's way)
		cert        *tls.Certificate
		clientChain []*x509.Certificate
		want        string // in the error; "": success
		wantSent    int    // certificates the server was shown
	}{
		{name: "pinned, leaf alone, /cacerts gives the issuing CA", auth: tls.VerifyClientCertIfGiven, trusts: root.cert, pinned: true, cert: pair(), wantSent: 3},
		{name: "pinned, leaf alone, certificate required also for /cacerts", auth: tls.RequireAndVerifyClientCert, trusts: root.cert, pinned: true, cert: pair(),
			want: "the server refused the TLS client certificate we sent (subject CN=client, issued by CN=issuing; alone, with no CA certificate after it): it does not trust the CA that issued it (remote error: tls: unknown certificate authority); " +
				"it may want the CA certificates of its chain, found neither with the certificate nor in the server's /cacerts: put them after the certificate in its file"},
		{name: "roots, leaf alone, /cacerts gives the issuing CA", auth: tls.VerifyClientCertIfGiven, trusts: root.cert, cert: pair(), wantSent: 3},
		{name: "chain in the certificate file", auth: tls.RequireAndVerifyClientCert, trusts: root.cert, pinned: true, cert: pair(issuing.cert), wantSent: 3},
		{name: "chain file", auth: tls.RequireAndVerifyClientCert, trusts: root.cert, pinned: true, cert: pair(), clientChain: []*x509.Certificate{issuing.cert}, wantSent: 3},
		{name: "unrelated CAs in the file are not sent", auth: tls.RequireAndVerifyClientCert, trusts: root.cert, cert: pair(strangerIssuing.cert, stranger.cert, issuing.cert), wantSent: 2},
		{name: "a server that trusts another CA", auth: tls.VerifyClientCertIfGiven, trusts: stranger.cert, cert: pair(),
			want: "the server refused the TLS client certificate we sent (subject CN=client, issued by CN=issuing; followed by 2 CA certificate(s) of its chain): it does not trust the CA that issued it (remote error: tls: unknown certificate authority)"},
		{name: "pinned, leaf alone, HTTP 400 without one", auth: tls.VerifyClientCertIfGiven, trusts: issuing.cert, httpNeeds: true, pinned: true, cert: pair(), wantSent: 3},
		{name: "none given, one required", auth: tls.RequireAndVerifyClientCert, trusts: root.cert,
			want: "the server requires a TLS client certificate and none was sent (remote error: tls: certificate required): give --cert FILE and --key FILE"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			sent := 0
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if len(r.TLS.PeerCertificates) > 0 {
					mu.Lock()
					sent = len(r.TLS.PeerCertificates)
					mu.Unlock()
				} else if tt.httpNeeds {
					http.Error(w, "No required SSL certificate was sent", http.StatusBadRequest)
					return
				}
				body, _ := cms.DegenerateCertificates([]*x509.Certificate{issuing.cert, root.cert})
				w.Header().Set("Content-Type", est.ContentTypeCertsOnly)
				w.Write(est.EncodeBase64(body))
			}))
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{tlsDER}, PrivateKey: tlsKey}},
				ClientAuth: tt.auth, ClientCAs: pool(tt.trusts), Time: func() time.Time { return trustNow }}
			srv.StartTLS()
			defer srv.Close()
			c := &EST{URL: srv.URL, Certificate: tt.cert, ClientChain: tt.clientChain, Now: func() time.Time { return trustNow }}
			if tt.pinned {
				c.Fingerprint = Fingerprint(root.cert)
			} else {
				c.Roots = pool(root.cert)
			}
			_, err := c.CACerts(context.Background())
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("cacerts: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("cacerts: %v\nwant it to say %q", err, tt.want)
			}
			mu.Lock()
			defer mu.Unlock()
			if tt.want == "" && sent != tt.wantSent {
				t.Errorf("the server was shown %d certificates, want %d", sent, tt.wantSent)
			}
		})
	}
}
