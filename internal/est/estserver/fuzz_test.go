package estserver_test

import (
	"bytes"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/est/estserver"
	"github.com/scepter/scepter/internal/pki"
)

// FuzzEnrollBody drives the whole enrollment path of the handler (body,
// base64, PKCS#10, attributes, the service) with any bytes: the answer is
// never a 5xx and nothing panics.
func FuzzEnrollBody(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join(captureDir, "*", "request.body"))
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add("simpleenroll", b)
		}
	}
	// Server-side keys are P-256 only here: an RSA-4096 key per execution
	// would leave the fuzzer nothing else to do.
	fx := newFixture(f, fixtureOptions{profiles: []pki.Profile{profile("keygen", func(p *pki.Profile) {
		p.ServerKeyGen = true
		p.Keys = pki.KeyPolicy{ECCurves: []string{"P-256"}}
	})}})
	f.Add("serverkeygen", newCSRF(f, "fuzz"))
	f.Add("simplereenroll", newCSRF(f, "fuzz"))
	h := estserver.New(fx.svc, nil, estserver.Options{})
	f.Fuzz(func(t *testing.T, op string, body []byte) {
		switch op {
		case "simpleenroll", "simplereenroll", "serverkeygen":
		default:
			op = "simpleenroll"
		}
		req := httptest.NewRequest(http.MethodPost, "https://127.0.0.1"+est.PathPrefix+"keygen/"+op, bytes.NewReader(body))
		req.SetPathValue("label", "keygen")
		req.SetPathValue("op", op)
		req.TLS = &tls.ConnectionState{Version: tls.VersionTLS12, HandshakeComplete: true, TLSUnique: []byte("0123456789ab")}
		// The static challenge as the password: no argon2 per execution.
		req.SetBasicAuth("device", "static-secret")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("HTTP %d: %s", rec.Code, rec.Body.String())
		}
	})
}

func newCSRF(f testing.TB, cn string) []byte {
	der, err := csr.Create(csr.Template{RawSubject: []byte{0x30, 0x00}, DNSNames: []string{cn + ".example"}}, newKey(f))
	if err != nil {
		f.Fatal(err)
	}
	return est.EncodeBase64(der)
}
