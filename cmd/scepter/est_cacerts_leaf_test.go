package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/keys"
)

// `est cacerts` writes a trust file (--cacert): a certificate /cacerts
// sends that is no CA (a server's own) is left out and named on stderr,
// not written and counted as a CA certificate (r117 D7).
func TestESTCACertsLeavesOutWhatIsNoCA(t *testing.T) {
	for _, leaf := range []bool{false, true} {
		name := map[bool]string{false: "CAs only", true: "with a leaf"}[leaf]
		t.Run(name, func(t *testing.T) {
			s := &reenrollEST{t: t}
			u, caFile := startReenrollEST(t, s)
			var sent *x509.Certificate
			if leaf {
				key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				sent = s.issueNames(&x509.Certificate{Subject: pkix.Name{CommonName: "some-leaf"}}, key.Public(), 7)
				s.cacertsAlso = []*x509.Certificate{sent}
			}
			out := filepath.Join(t.TempDir(), "cacerts.pem")
			e, stdout, stderr := testEnv(nil)
			if err := run(context.Background(), e, []string{"est", "cacerts", "--url", u, "--cacert", caFile, "--out", out}); err != nil {
				t.Fatalf("est cacerts: %v\n%s%s", err, stdout, stderr)
			}
			written, err := keys.LoadCertFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(written) != 1 || !written[0].Equal(s.ca) {
				t.Errorf("%s holds %d certificates, want the CA alone", out, len(written))
			}
			if !strings.Contains(stdout.String(), "1 CA certificate(s) written to ") {
				t.Errorf("stdout: %s", stdout)
			}
			warned := strings.Contains(stderr.String(), "no CA certificate")
			if warned != leaf {
				t.Errorf("stderr %q; want a warning naming the leaf: %v", stderr, leaf)
			}
			if leaf && !strings.Contains(stderr.String(), "warning: left out "+client.Fingerprint(sent)+"  CN=some-leaf") {
				t.Errorf("stderr %q does not name the leaf", stderr)
			}
		})
	}
}
