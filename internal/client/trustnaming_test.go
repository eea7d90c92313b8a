package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/est"
)

// A refusal's advice names the trust settings its caller has: scepter's
// enroll and est take --ca-fingerprint and --cacert, getcrl
// (NoCACertFlag) only --ca-fingerprint, and the agent (URLFromConfig) a
// ca_fingerprint setting and no cacert; before, all were told to give
// --cacert (r144 D3).
func TestTrustAdviceNamesTheCallersSettings(t *testing.T) {
	later := trustNow.Add(24 * time.Hour)
	root := issue(t, "root", nil, true, later)
	inter := issue(t, "intermediate", root, true, later)
	der, tlsKey := localhostTLSCert(t, inter, later)
	leafOnly := []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: tlsKey}}
	clock := func() time.Time { return trustNow }
	start := func(cacerts []*x509.Certificate) string {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := cms.DegenerateCertificates(cacerts)
			switch {
			case r.URL.Path == est.PathPrefix+est.OpCACerts:
				w.Header().Set("Content-Type", est.ContentTypeCertsOnly)
				w.Write(est.EncodeBase64(body))
			case r.URL.Query().Get("operation") == "GetCACaps":
				w.Write([]byte("AES\nPOSTPKIOperation\nSHA-256\n"))
			case r.URL.Query().Get("operation") == "GetCACert" && len(cacerts) == 1:
				w.Header().Set("Content-Type", "application/x-x509-ca-cert")
				w.Write(cacerts[0].Raw)
			case r.URL.Query().Get("operation") == "GetCACert":
				w.Header().Set("Content-Type", "application/x-x509-ca-ra-cert")
				w.Write(body)
			default:
				http.NotFound(w, r)
			}
		}))
		srv.TLS = &tls.Config{Certificates: leafOnly}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv.URL
	}
	interOnly := start([]*x509.Certificate{inter.cert}) // step-ca's GetCACert: the intermediate alone
	rootOnly := start([]*x509.Certificate{root.cert})   // the TLS intermediate nowhere
	pin := Fingerprint(root.cert)
	scepCall := func(url string, noCACert, agent bool) func() error {
		return func() error {
			_, err := (&SCEP{URL: url + "/scep", Fingerprint: pin, NoCACertFlag: noCACert, URLFromConfig: agent, Now: clock}).GetCACaps(context.Background())
			return err
		}
	}
	estCall := func(url string, agent bool) func() error {
		return func() error {
			_, err := (&EST{URL: url, Fingerprint: pin, URLFromConfig: agent, Now: clock}).CACerts(context.Background())
			return err
		}
	}
	pinAdvice := "pin the CA certificate the server sends instead (--ca-fingerprint " + Fingerprint(inter.cert) + ": a pin need not be a root)"
	for _, tt := range []struct {
		name    string
		call    func() error
		want    string
		cacert  bool // the advice may name --cacert
		setting bool // it names the agent's ca_fingerprint setting, and no flag
	}{
		{"enroll, pin mismatch", scepCall(interOnly, false, false), pinAdvice + ", or, over https, give --cacert with CN=root's certificate instead of --ca-fingerprint", true, false},
		{"getcrl, pin mismatch", scepCall(interOnly, true, false), pinAdvice, false, false},
		{"agent SCEP, pin mismatch", scepCall(interOnly, false, true),
			`pin the CA certificate the server sends instead (ca_fingerprint = "` + Fingerprint(inter.cert) + `" in the agent's configuration: a pin need not be a root)`, false, true},
		{"est, no intermediate", estCall(rootOnly, false), "give --cacert FILE holding CN=intermediate and its root instead of --ca-fingerprint", true, false},
		{"agent EST, no intermediate", estCall(rootOnly, true),
			"if CN=intermediate is a CA under the pinned one, have the server send its chain (its certificate, then CN=intermediate's); the agent trusts a server's TLS certificate only by ca_fingerprint (it has no cacert setting)", false, true},
		{"getcrl, no intermediate", scepCall(rootOnly, true, false), "have the server send its chain (its certificate, then CN=intermediate's), or use the server's plain http:// SCEP URL", false, false},
		{"agent SCEP, no intermediate", scepCall(rootOnly, false, true), "the agent trusts a server's TLS certificate only by ca_fingerprint", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("%v\nwant it to say %q", err, tt.want)
			}
			if got := strings.Contains(err.Error(), "--cacert"); got != tt.cacert {
				t.Errorf("%v\nnames --cacert: %v, want %v", err, got, tt.cacert)
			}
			if tt.setting && strings.Contains(err.Error(), "--ca-fingerprint") {
				t.Errorf("%v\nnames a flag the agent does not have", err)
			}
		})
	}
}
