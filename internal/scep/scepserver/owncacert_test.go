package scepserver_test

import (
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
)

// A request encrypted to this server's own issuing CA or root certificate
// (sscep and scepclient may take the CA's out of GetCACert) is refused
// badMessageCheck with a reason that names that certificate as the CA's
// and says which one to encrypt to, where it was told to fetch GetCACert
// again, which it has, and which would change nothing (r122 D1).
func TestEnvelopeToOwnCACertificate(t *testing.T) {
	const separate = "encrypt to the RA certificate of GetCACert (the one with keyEncipherment, not CA:TRUE)"
	const raModeCA = "encrypt to the issuing CA certificate of GetCACert (the one that is not self-signed), which is this server's SCEP RA"
	tests := []struct {
		name   string
		raMode string
		to     func(ts *testServer) *x509.Certificate
		bySKI  bool
		role   string
		advice string
	}{
		{"issuing CA, separate RA", "", func(ts *testServer) *x509.Certificate { return ts.Authority.Issuer.Cert }, false, "issuing CA", separate},
		{"issuing CA by subject key identifier, separate RA", "", func(ts *testServer) *x509.Certificate { return ts.Authority.Issuer.Cert }, true, "issuing CA", separate},
		{"root, separate RA", "", func(ts *testServer) *x509.Certificate { return ts.Authority.Root }, false, "root CA", separate},
		{"root, RA mode ca", ca.RAModeCA, func(ts *testServer) *x509.Certificate { return ts.Authority.Root }, false, "root CA", raModeCA},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logged syncBuffer
			ts := newTestServer(t, serverOptions{ca: ca.InitOptions{KeyType: "rsa2048", RAMode: tt.raMode},
				log: slog.New(slog.NewTextHandler(&logged, nil))})
			to := tt.to(ts)
			p := reqParams{key: testKey(t, i), subject: fmt.Sprintf("CN=own-ca-%d,O=Acme", i)}
			if tt.bySKI {
				p.envelope = func([]byte) []byte {
					env, err := cms.EncryptToKey(mustCSR(t, p.key), to.PublicKey.(*rsa.PublicKey), to.SubjectKeyId, cms.EncryptOptions{Cipher: cms.AES128CBC})
					if err != nil {
						t.Fatal(err)
					}
					return env
				}
			} else {
				ts.RA = &pki.RA{Cert: to}
			}
			der, _ := ts.build(t, p)
			resp, body := ts.post(t, der)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("HTTP %d: %.300q", resp.StatusCode, body)
			}
			rep, err := scep.Parse(body)
			if err != nil {
				t.Fatal(err)
			}
			wantFailure(t, rep, scep.BadMessageCheck)
			want := fmt.Sprintf("the message is encrypted to this server's %s certificate %s (%s), which is no SCEP RA here: %s",
				tt.role, pki.SerialText(to.SerialNumber), csr.NameString(to.RawSubject), tt.advice)
			if rep.FailInfoText != want {
				t.Errorf("failInfoText %q,\nwant %q", rep.FailInfoText, want)
			}
			// The server opens the envelope with its RA key all the same,
			// and about once in a few hundred runs the wrong key yields a
			// content key whose padding passes (RFC 3218: no error tells
			// a wrong key), so the content fails later: the log's reason
			// then says so and what the client was told stands in told=.
			if l := logged.String(); !strings.Contains(l, "reason="+strconv.Quote(want)) && !strings.Contains(l, "told="+strconv.Quote(want)) {
				t.Errorf("no log line with reason or told %q:\n%s", want, l)
			}
		})
	}
}
