package ocsp_test

import (
	"bytes"
	"crypto"
	"math/big"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/ocsp"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/pkitest/fixture"
)

// FuzzParseRequest: any bytes give a request or ErrMalformed, never a
// panic; what parses stays within the limits and its CertIDs re-parse.
func FuzzParseRequest(f *testing.F) {
	p := fixture.New(f, fixture.Options{})
	cert, _ := p.Issue(f, "seed")
	issuer := p.Issuer().Cert
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		plain := request(f, cert, issuer, h)
		f.Add(plain)
		f.Add(addNonce(f, plain, octet([]byte("0123456789abcdef"))))
	}
	id := certID{oid: oidSHA1, name: make([]byte, 20), key: make([]byte, 20), serial: big.NewInt(1)}
	f.Add(buildRequest(f, reqSpec{ids: []certID{id, id}, version: true, requestor: true, signature: true, singleExt: true}))
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		req, err := ocsp.ParseRequest(der)
		if err != nil {
			if req != nil {
				t.Fatal("a request and an error")
			}
			return
		}
		if len(req.CertIDs) == 0 || len(req.CertIDs) > ocsp.MaxCertIDs || len(req.Nonce) > ocsp.MaxNonceBytes {
			t.Fatalf("limits broken: %d certificates, nonce of %d bytes", len(req.CertIDs), len(req.Nonce))
		}
		for _, id := range req.CertIDs {
			if !bytes.Contains(der, id.Raw) || id.Serial == nil {
				t.Fatal("CertID.Raw is not from the request")
			}
		}
	})
}

// Answers per second: a cached answer (no nonce: the RFC 5019 path most
// relying parties take) and one signed per request (with a nonce), for an
// EC and an RSA CA (whose delegate is P-256 and RSA-2048). The RSA
// delegate signs through OpenSSL, as serve's --rsa-backend auto has it;
// rsa2048-go through Go's crypto/rsa.
func BenchmarkRespond(b *testing.B) {
	wrap := pkitest.WrapKeyAsServe(b)
	for _, keyType := range []string{"p256", "rsa2048", "rsa2048-go"} {
		caKey, goRSA := strings.CutSuffix(keyType, "-go")
		w := wrap
		if goRSA {
			w = nil
		}
		f := newWrappedResponder(b, caKey, w)
		cert, _ := f.Issue(b, "bench")
		issuer := f.Issuer().Cert
		plain := request(b, cert, issuer, crypto.SHA1)
		withNonce := addNonce(b, plain, octet([]byte("0123456789abcdef")))
		for _, c := range []struct {
			name string
			req  []byte
		}{{"cached", plain}, {"nonce", withNonce}} {
			b.Run(keyType+"/"+c.name, func(b *testing.B) {
				ctx := b.Context()
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if a := f.r.Respond(ctx, c.req); a.Err != nil {
							b.Fatal(a.Err)
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "answers/s")
			})
		}
	}
}
