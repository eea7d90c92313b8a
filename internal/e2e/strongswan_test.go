package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// pkiCmd runs strongSwan's pki (package strongswan-pki, with the curl fetcher
// from libstrongswan-extra-plugins).
func pkiCmd(t *testing.T, dir string, args ...string) result {
	t.Helper()
	p := need(t, "pki")[0]
	return run(t, runOpts{dir: dir}, p, args...)
}

// pkiGenKey makes an RSA key with `pki --gen` (pki --scep takes only RSA).
func pkiGenKey(t *testing.T, dir string, bits string) string {
	t.Helper()
	r := pkiCmd(t, dir, "--gen", "--type", "rsa", "--size", bits, "--outform", "pem")
	if r.err != nil {
		t.Fatalf("pki --gen:\n%s", r)
	}
	path := filepath.Join(dir, "key.pem")
	writeFile(t, path, r.stdout)
	return path
}

// TestStrongswanPKI: strongSwan's `pki --scepca` fetches the CA and RA
// certificates and `pki --scep` enrolls with AES and DES3 envelopes.
func TestStrongswanPKI(t *testing.T) {
	t.Parallel()
	need(t, "pki")

	t.Run("ra-separate", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, serverOpts{prepared: true, challenge: "ss-secret"})

		// GetCACert: root -> ca.pem, issuing -> ca-1.pem, RA -> ra.pem.
		certs := t.TempDir()
		r := pkiCmd(t, certs, "--scepca", "--url", s.URL,
			"--caout", filepath.Join(certs, "ca.pem"), "--raout", filepath.Join(certs, "ra.pem"), "--outform", "pem")
		if r.err != nil {
			t.Fatalf("pki --scepca:\n%s", r)
		}
		sameCert(t, filepath.Join(certs, "ca.pem"), s.CAFile("root.crt"))
		sameCert(t, filepath.Join(certs, "ca-1.pem"), s.CAFile("issuing.crt"))
		sameCert(t, filepath.Join(certs, "ra.pem"), s.CAFile("ra.crt"))

		cases := []struct{ name, cipher, digest, wire string }{
			{"aes-sha256", "aes", "sha256", "AES-"},
			{"des3-sha256", "des3", "sha256", "DES-EDE3-CBC"},
			{"aes-sha512", "aes", "sha512", "AES-"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				dir := t.TempDir()
				key := pkiGenKey(t, dir, "2048")
				cn := "ss-" + tc.name
				tp := startTap(t, s.Addr)
				r := pkiCmd(t, dir, "--scep", "--url", tp.Base()+"/scep", "--in", key,
					"--dn", "C=US, O=Acme, CN="+cn, "--san", cn+".example.com",
					"--password", s.Challenge,
					"--cacert-enc", filepath.Join(certs, "ra.pem"),
					"--cacert-sig", filepath.Join(certs, "ca-1.pem"),
					"--cacert", filepath.Join(certs, "ca.pem"),
					"--cipher", tc.cipher, "--digest", tc.digest,
					"--interval", "1", "--maxpolltime", "20", "--outform", "pem")
				if r.err != nil {
					t.Fatalf("pki --scep (%s) failed:\n%s", tc.name, r)
				}
				// POST without Content-Type; the reply in the request's cipher.
				expectWire(t, tp, wantWire{method: "POST", noContentType: true, reqCipherPrefix: tc.wire, replySame: true})
				certPath := filepath.Join(dir, "cert.pem")
				writeFile(t, certPath, r.stdout)
				c := s.Verify(certPath)
				expectKeyMatches(t, c, key)
				if c.Subject.CommonName != cn {
					t.Errorf("subject CN = %q, want %q", c.Subject.CommonName, cn)
				}
				if len(c.DNSNames) != 1 || c.DNSNames[0] != cn+".example.com" {
					t.Errorf("DNS SANs = %v, want [%s.example.com]", c.DNSNames, cn)
				}
				s.ExpectRecorded(c)
			})
		}

		t.Run("wrong-challenge", func(t *testing.T) {
			dir := t.TempDir()
			key := pkiGenKey(t, dir, "2048")
			r := pkiCmd(t, dir, "--scep", "--url", s.URL, "--in", key,
				"--dn", "C=US, O=Acme, CN=ss-bad", "--password", "wrong-challenge",
				"--cacert-enc", filepath.Join(certs, "ra.pem"),
				"--cacert-sig", filepath.Join(certs, "ca-1.pem"),
				"--cacert", filepath.Join(certs, "ca.pem"),
				"--interval", "1", "--maxpolltime", "5", "--outform", "pem")
			out := expectFailed(t, r, "pki --scep with a wrong challenge")
			expectContains(t, "pki's output", out, "badRequest")
		})
	})

	// --scep-ra ca: an RSA issuing CA is its own RA. GetCACert carries
	// issuing CA + root, which pki --scepca writes as ca.pem (root) and
	// ca-1.pem (issuing, also the envelope recipient and CertRep signer).
	t.Run("ra-is-ca", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, serverOpts{challenge: "ss-secret-2", args: []string{"--ca-key-type", "rsa2048", "--scep-ra", "ca"}})
		dir := t.TempDir()
		r := pkiCmd(t, dir, "--scepca", "--url", s.URL, "--caout", filepath.Join(dir, "ca.pem"), "--raout", filepath.Join(dir, "ra.pem"), "--outform", "pem")
		if r.err != nil {
			t.Fatalf("pki --scepca:\n%s", r)
		}
		sameCert(t, filepath.Join(dir, "ca.pem"), s.CAFile("root.crt"))
		sameCert(t, filepath.Join(dir, "ca-1.pem"), s.CAFile("issuing.crt"))
		key := pkiGenKey(t, dir, "2048")
		r = pkiCmd(t, dir, "--scep", "--url", s.URL, "--in", key,
			"--dn", "C=US, O=Acme, CN=ss-ra-is-ca", "--password", s.Challenge,
			"--cacert-enc", filepath.Join(dir, "ca-1.pem"),
			"--cacert-sig", filepath.Join(dir, "ca-1.pem"),
			"--cacert", filepath.Join(dir, "ca.pem"),
			"--interval", "1", "--maxpolltime", "20", "--outform", "pem")
		if r.err != nil {
			t.Fatalf("pki --scep against --scep-ra ca:\n%s", r)
		}
		certPath := filepath.Join(dir, "cert.pem")
		writeFile(t, certPath, r.stdout)
		c := s.Verify(certPath)
		s.ExpectRecorded(c)
	})
}

// sameCert fails unless the first certificates of two files are identical.
func sameCert(t *testing.T, got, want string) {
	t.Helper()
	if _, err := os.Stat(got); err != nil {
		t.Fatalf("expected %s: %v", got, err)
	}
	if !bytes.Equal(readCert(t, got).Raw, readCert(t, want).Raw) {
		t.Errorf("%s is not the same certificate as %s (%s vs %s)", got, want,
			readCert(t, got).Subject, readCert(t, want).Subject)
	}
}
