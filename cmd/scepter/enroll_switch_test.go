package main

import (
	"context"
	"crypto/x509"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/keys"
)

// A request held for approval while the CA rolls over, and approved after
// the switch, is issued by the new CA, which the GetCACert read before the
// request did not carry: `enroll --max-wait` collects it all the same
// (the new CA chains to the pinned root), and writes the chain through
// the new CA, where before it refused it as not chaining to the pinned CA.
func TestEnrollCollectsAcrossACASwitch(t *testing.T) {
	for _, keyType := range []string{"rsa2048", "p256"} { // CertPoll; PKCSReq asked again
		t.Run(keyType, func(t *testing.T) {
			s := startServe(t, "[profiles.default]\napproval = true\n", "--ca-reload-interval", "200ms")
			d := t.TempDir()
			path := func(name string) string { return filepath.Join(d, name) }
			before := issuingCAs(t, s)

			type result struct {
				out string
				err error
			}
			done := make(chan result, 1)
			go func() {
				out, err := runCLI("enroll", "--url", s.scepURL, "--challenge", "test", "--ca-fingerprint", s.fingerprint,
					"--subject", "CN=across-"+keyType, "--key-type", keyType, "--out", path("cert.pem"), "--key-out", path("key.pem"),
					"--max-wait", "90s", "--poll-interval", "1s")
				done <- result{out, err}
			}()
			var ids []string
			for deadline := time.Now().Add(30 * time.Second); len(ids) == 0; time.Sleep(100 * time.Millisecond) {
				if ids = s.pending(t); len(ids) == 0 && time.Now().After(deadline) {
					t.Fatal("no request held within 30 s")
				}
			}

			newCA := rollOverTo(t, s, before)
			s.approve(t, ids[0])

			r := <-done
			if r.err != nil {
				t.Fatalf("enroll: %v\n%s", r.err, r.out)
			}
			cert := loadCert(t, path("cert.pem"))
			if cert.CheckSignatureFrom(newCA) != nil {
				t.Errorf("certificate issued by %s, want the new CA %s", cert.Issuer, newCA.Subject)
			}
			chain, err := keys.LoadCertFile(path("chain.pem"))
			if err != nil {
				t.Fatal(err)
			}
			if len(chain) == 0 || !chain[0].Equal(newCA) {
				t.Errorf("chain.pem does not begin with the new CA %s", newCA.Subject)
			}
			if !strings.Contains(r.out, "CA chain:") {
				t.Errorf("enroll said:\n%s", r.out)
			}
		})
	}
}

// issuingCAs are the CA certificates below the root in the server's
// GetCACert.
func issuingCAs(t *testing.T, s *testServer) []*x509.Certificate {
	t.Helper()
	certs, err := (&client.SCEP{URL: s.scepURL}).GetCACert(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var cas []*x509.Certificate
	for _, c := range certs {
		if c.IsCA && c.Subject.String() != c.Issuer.String() {
			cas = append(cas, c)
		}
	}
	return cas
}

// rollOverTo runs `scepter ca rollover --switch-in 8s` on s and waits (30 s
// at most) until the server's GetCACert sends an issuing CA that is none
// of before: the new one, returned. 8 s, not less: the switch time is
// truncated to the second and checked after the CA is read, which under
// -race on a loaded machine took over 2 s.
func rollOverTo(t *testing.T, s *testServer, before []*x509.Certificate) *x509.Certificate {
	t.Helper()
	if _, errOut, err := runCA(t, nil, s.dataDir, "rollover", "--switch-in", "8s"); err != nil {
		t.Fatalf("ca rollover: %v\n%s", err, errOut)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		for _, ca := range issuingCAs(t, s) {
			if !slices.ContainsFunc(before, ca.Equal) {
				return ca
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not switch to the new CA within 30 s")
		}
	}
}
