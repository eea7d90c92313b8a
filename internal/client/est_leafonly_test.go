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

// A server that leaves its intermediate CA out of the TLS handshake,
// sending its own certificate alone, passes the bootstrap from the pinned
// root by the intermediate /cacerts sends, and every later connection
// (csrattrs, the enrollment) is verified the same way: they failed with
// Go's bare "certificate signed by unknown authority" (r101 D2). When
// /cacerts does not hold the intermediate either, the refusal says that
// the server sent none and what to do; the SCEP client over https alike.
func TestLeafOnlyServerWithPinnedRoot(t *testing.T) {
	later := trustNow.Add(24 * time.Hour)
	root := issue(t, "root", nil, true, later)
	inter := issue(t, "tls intermediate", root, true, later)
	der, tlsKey := localhostTLSCert(t, inter, later)
	leafOnly := []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: tlsKey}}
	const noIntermediate = "the server sent no intermediate CA certificate in the TLS handshake, only its own, issued by CN=tls intermediate, and none of the CA certificates it sent issued it: " +
		"have the server send its chain (its certificate, then CN=tls intermediate's), or give --cacert FILE holding CN=tls intermediate and its root instead of --ca-fingerprint"
	for _, tt := range []struct {
		name    string
		cacerts []*x509.Certificate // what /cacerts and GetCACert send
		want    string              // in the error; "": success
	}{
		{"the intermediate in /cacerts", []*x509.Certificate{inter.cert, root.cert}, ""},
		{"the root alone in /cacerts", []*x509.Certificate{root.cert}, noIntermediate},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := cms.DegenerateCertificates(tt.cacerts)
				switch {
				case r.URL.Path == est.PathPrefix+est.OpCACerts:
					w.Header().Set("Content-Type", est.ContentTypeCertsOnly)
					w.Write(est.EncodeBase64(body))
				case r.URL.Path == est.PathPrefix+est.OpCSRAttrs:
					w.WriteHeader(http.StatusNoContent)
				case r.URL.Query().Get("operation") == "GetCACaps":
					w.Write([]byte("AES\nPOSTPKIOperation\nSHA-256\n"))
				case r.URL.Query().Get("operation") == "GetCACert":
					w.Header().Set("Content-Type", "application/x-x509-ca-ra-cert")
					w.Write(body)
				default:
					http.NotFound(w, r)
				}
			}))
			srv.TLS = &tls.Config{Certificates: leafOnly}
			srv.StartTLS()
			defer srv.Close()
			check := func(what string, err error) {
				t.Helper()
				switch {
				case tt.want == "" && err != nil:
					t.Errorf("%s: %v", what, err)
				case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
					t.Errorf("%s: %v\nwant it to say %q", what, err, tt.want)
				}
			}
			c := &EST{URL: srv.URL, Fingerprint: Fingerprint(root.cert), Now: func() time.Time { return trustNow }}
			_, err := c.CSRAttrs(context.Background())
			check("EST csrattrs", err)
			if tt.want == "" {
				// A third connection, and the enrollment's kind: the same.
				_, err = c.CACerts(context.Background())
				check("EST cacerts after the bootstrap", err)
			}
			sc := &SCEP{URL: srv.URL + "/scep", Fingerprint: Fingerprint(root.cert), Now: func() time.Time { return trustNow }}
			if _, err = sc.GetCACaps(context.Background()); err == nil {
				_, err = sc.GetCACert(context.Background())
			}
			check("SCEP over https", err)
		})
	}
}
