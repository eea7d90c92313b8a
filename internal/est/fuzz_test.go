package est_test

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/est"
)

const captureDir = "../../testdata/captures/est"

func captured(f *testing.F, file string) {
	paths, _ := filepath.Glob(filepath.Join(captureDir, "*", file))
	if len(paths) == 0 {
		f.Fatalf("no captured %s", file)
	}
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
}

// FuzzRequestBody: the body path of simpleenroll, simplereenroll and
// serverkeygen (base64, PKCS#10, the attributes EST reads) never panics.
func FuzzRequestBody(f *testing.F) {
	captured(f, "request.body")
	f.Add([]byte("MIIB\r\nAAAA==\r\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		der, err := est.DecodeBase64(body)
		if err != nil {
			return
		}
		req, err := x509.ParseCertificateRequest(der)
		if err != nil {
			return
		}
		_ = req.CheckSignature()
		csr.ChallengePassword(req)
		csr.AttributeValues(req, est.OIDAsymmetricDecryptKeyIdentifier)
		csr.AttributeValues(req, est.OIDDecryptKeyIdentifier)
	})
}

// FuzzCSRAttrs: a csrattrs body never panics the parser, and what parses
// encodes back to the same bytes.
func FuzzCSRAttrs(f *testing.F) {
	captured(f, "response.body")
	f.Fuzz(func(t *testing.T, data []byte) {
		attrs, err := est.ParseCSRAttrs(data)
		if err != nil {
			return
		}
		if _, err := est.MarshalCSRAttrs(attrs); err != nil {
			t.Fatalf("re-encoding parsed csrattrs: %v", err)
		}
	})
}

// FuzzServerKeyGenReply: the client's multipart parser never panics.
func FuzzServerKeyGenReply(f *testing.F) {
	body, err := os.ReadFile(filepath.Join(captureDir, "curl-est-serverkeygen", "response.body"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add("multipart/mixed; boundary=estServerKeyGenBoundary", body)
	f.Add("multipart/mixed; boundary=x", []byte("--x\r\nContent-Type: application/pkcs8\r\n\r\nAAAA\r\n--x--\r\n"))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		est.ParseServerKeyGenReply(contentType, body)
	})
}
