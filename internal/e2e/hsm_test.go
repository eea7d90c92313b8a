package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/keys/softhsmtest"
)

// TestHSMRealClients: the CA's issuing CA, RA and OCSP responder keys in a
// SoftHSM2 token (given as an RFC 7512 URI), and the real clients of the
// foundation's suite against it: our `scepter enroll`, micromdm's
// scepclient (single DES, PKCS #1 v1.5 to the RA key in the token),
// strongSwan's `pki --scep`, curl and openssl over EST; then revocation
// seen by `openssl crl` and `openssl ocsp`, and a rollover made in the
// token while the server runs.
//
// SoftHSM2 finds its tokens through $SOFTHSM2_CONF, given to the server
// and to the commands that open the token, not set in this process: so
// the test runs beside others.
func TestHSMRealClients(t *testing.T) {
	t.Parallel()
	env := softhsmtest.NewEnv(t, t.TempDir())
	tok := env.InitToken(t, "scepter-e2e")
	need(t, "openssl", "curl", "base64", "sh")

	e := startEST(t, estOpts{challenge: "hsm-secret", env: env.Environ(), args: []string{"--pkcs11-uri", tok.URI(), "--allow-insecure-des", "--ca-reload-interval", "1s"}})
	expectContains(t, "serve banner", e.Output(), "CA keys:             in PKCS#11 token \"scepter-e2e\"")
	for _, f := range []string{"issuing.key", "ra.key"} {
		if fileExists(e.CAFile(f)) {
			t.Errorf("%s exists: the key should be in the token", e.CAFile(f))
		}
	}
	for _, f := range []string{"issuing.pkcs11", "ra.pkcs11"} {
		b, err := os.ReadFile(e.CAFile(f))
		if err != nil || !strings.HasPrefix(string(b), "pkcs11:token=scepter-e2e;object=scepter-") {
			t.Errorf("%s: %v\n%s", f, err, b)
		}
	}
	// The keys are in the token, not extractable (pkcs11-tool, when there).
	if _, err := lookPath("pkcs11-tool"); err == nil {
		r := mustRun(t, runOpts{env: env.Environ()}, "pkcs11-tool", "--module", env.Module, "--token-label", "scepter-e2e", "--pin", tok.PIN, "--list-objects", "--type", "privkey")
		expectContains(t, "pkcs11-tool --list-objects", r.stdout, "scepter-issuing", "scepter-ra", "scepter-ocsp-")
	}

	t.Run("scepter-enroll", func(t *testing.T) {
		dir := t.TempDir()
		if r := enroll(t, dir, e.URL, e.Challenge, "CN=hsm-ours,O=Acme", "--key-type", "rsa2048"); r.err != nil {
			t.Fatalf("scepter enroll:\n%s", r)
		}
		e.ExpectRecorded(e.Verify(filepath.Join(dir, "cert.pem")))
	})

	t.Run("micromdm-scepclient", func(t *testing.T) {
		need(t, "scepclient")
		dir := t.TempDir()
		raFP := fingerprintHex(readCert(t, e.CAFile("ra.crt")))
		r := scepclient(t, dir, e.URL, e.Challenge, "hsm-mm", "-ca-fingerprint", raFP)
		if r.err != nil {
			t.Fatalf("scepclient:\n%s", r)
		}
		c := e.Verify(filepath.Join(dir, "cert.pem"))
		expectKeyMatches(t, c, filepath.Join(dir, "key.pem"))
		e.ExpectRecorded(c)
	})

	t.Run("strongswan-pki", func(t *testing.T) {
		need(t, "pki")
		certs := t.TempDir()
		r := pkiCmd(t, certs, "--scepca", "--url", e.URL,
			"--caout", filepath.Join(certs, "ca.pem"), "--raout", filepath.Join(certs, "ra.pem"), "--outform", "pem")
		if r.err != nil {
			t.Fatalf("pki --scepca:\n%s", r)
		}
		for _, cipher := range []string{"aes", "des3"} {
			dir := t.TempDir()
			key := pkiGenKey(t, dir, "2048")
			r := pkiCmd(t, dir, "--scep", "--url", e.URL, "--in", key,
				"--dn", "C=US, O=Acme, CN=hsm-ss-"+cipher, "--password", e.Challenge,
				"--cacert-enc", filepath.Join(certs, "ra.pem"), "--cacert-sig", filepath.Join(certs, "ca-1.pem"),
				"--cacert", filepath.Join(certs, "ca.pem"), "--cipher", cipher, "--digest", "sha256",
				"--interval", "1", "--maxpolltime", "20", "--outform", "pem")
			if r.err != nil {
				t.Fatalf("pki --scep (%s):\n%s", cipher, r)
			}
			certPath := filepath.Join(dir, "cert.pem")
			writeFile(t, certPath, r.stdout)
			c := e.Verify(certPath)
			expectKeyMatches(t, c, key)
			e.ExpectRecorded(c)
		}
	})

	t.Run("est-curl-openssl", func(t *testing.T) {
		const user, pass = "hsm-user", "hsm-password-0123"
		e.addUser(t, user, pass)
		dir := t.TempDir()
		keyPath := filepath.Join(dir, "key.pem")
		csr := opensslCSR(t, dir, "p256", keyPath, "hsm-est", "hsm-est.example")
		b64 := filepath.Join(dir, "req.b64")
		mustRun(t, runOpts{dir: dir}, "sh", "-c", `base64 < "$1" > "$2"`, "sh", csr, b64)
		r := e.curl(t, dir, "--data-binary", "@"+b64, "-u", user+":"+pass,
			"-H", "Content-Type: application/pkcs10", e.EST+"/simpleenroll")
		if r.status != http.StatusOK {
			t.Fatalf("simpleenroll: %s", r)
		}
		certPath := opensslCertsOnly(t, dir, r.bodyPath, "cert.pem")
		c := e.Verify(certPath)
		opensslSameKey(t, certPath, keyPath)
		e.ExpectRecorded(c)
	})

	t.Run("revocation-crl-ocsp", func(t *testing.T) {
		dir := t.TempDir()
		names := []string{"a", "b"}
		for _, n := range names {
			d := filepath.Join(dir, n)
			if err := os.MkdirAll(d, 0o700); err != nil {
				t.Fatal(err)
			}
			if r := enroll(t, d, e.URL, e.Challenge, "CN=hsm-rev-"+n+",O=Acme"); r.err != nil {
				t.Fatalf("enroll %s:\n%s", n, r)
			}
		}
		a := e.Verify(filepath.Join(dir, "a", "cert.pem"))
		serialA := serialHex(a.SerialNumber)
		if r := e.cli(t, "certs", "revoke", serialA, "--reason", "keyCompromise"); r.err != nil {
			t.Fatalf("certs revoke:\n%s", r)
		}
		// The CRL, signed in the token, lists it and verifies.
		crlFile := filepath.Join(dir, "crl.der")
		waitCRL(t, a.CRLDistributionPoints[0], crlFile, func(text string) bool { return strings.Contains(text, strings.ToUpper(serialA)) })
		r := mustRun(t, runOpts{}, "openssl", "crl", "-inform", "DER", "-in", crlFile, "-CAfile", e.CAFile("issuing.crt"), "-noout", "-text")
		expectContains(t, "openssl crl", r.stdout+r.stderr, "verify OK", "Key Compromise")
		// OCSP, signed by the delegated responder whose key is in the token.
		for _, c := range []struct{ name, want string }{{"a", ": revoked"}, {"b", ": good"}} {
			r := mustRun(t, runOpts{}, "openssl", "ocsp", "-issuer", e.CAFile("issuing.crt"), "-cert", filepath.Join(dir, c.name, "cert.pem"),
				"-url", a.OCSPServer[0], "-CAfile", e.CAFile("root.crt"), "-resp_text")
			expectContains(t, "openssl ocsp "+c.name, r.stdout+r.stderr, "Response verify OK", c.want, "OCSP Signing")
		}
	})

	t.Run("export-keys-refused", func(t *testing.T) {
		pp := filepath.Join(t.TempDir(), "pp")
		writeFile(t, pp, "a long export passphrase\n")
		out := filepath.Join(t.TempDir(), "keys.pem")
		r := e.cli(t, "ca", "export-keys", "--out", out, "--passphrase-file", pp)
		expectFailed(t, r, "export-keys of keys in a token")
		expectContains(t, "export-keys", r.stderr, "cannot be exported", "same --pkcs11")
		if fileExists(out) {
			t.Errorf("export-keys wrote %s", out)
		}
	})

	t.Run("rollover-in-token", func(t *testing.T) {
		// Without the token: refused, nothing made.
		r := e.cli(t, "ca", "rollover", "--switch-in", "1h")
		expectFailed(t, r, "rollover without the token")
		expectContains(t, "rollover without the token", r.stderr, "--pkcs11")
		r = e.cli(t, "ca", "rollover", "--switch-in", "1h", "--pkcs11-uri", tok.URI())
		if r.err != nil {
			t.Fatalf("ca rollover:\n%s", r)
		}
		expectContains(t, "ca rollover", r.stdout, "keys:        in PKCS#11 token \"scepter-e2e\"")
		for _, k := range []string{"issuing", "ra"} {
			b, err := os.ReadFile(filepath.Join(e.DataDir, "ca", "next", k+".pkcs11"))
			if err != nil || !strings.HasPrefix(string(b), "pkcs11:token=scepter-e2e;object=scepter-"+k+"-") {
				t.Errorf("next/%s.pkcs11: %v\n%s", k, err, b)
			}
		}
		next := readCert(t, filepath.Join(e.DataDir, "ca", "next", "issuing.crt"))
		// The running server loads the next CA (its keys opened in the
		// token, made there by another process) and serves it.
		waitFor(t, "GetNextCACert", func() bool {
			code, body, err := httpGet(e.URL + "?operation=GetNextCACert")
			return err == nil && code == http.StatusOK && bytes.Contains(body, next.Raw)
		})
		// It still enrolls, with the current CA.
		dir := t.TempDir()
		if r := enroll(t, dir, e.URL, e.Challenge, "CN=hsm-after-rollover,O=Acme"); r.err != nil {
			t.Fatalf("enroll after the rollover:\n%s", r)
		}
		e.Verify(filepath.Join(dir, "cert.pem"))
	})
}

// lookPath is exec.LookPath without importing os/exec here twice.
func lookPath(name string) (string, error) {
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// TestExportKeys: node A's keys exported (encrypted), imported into an
// empty data directory B; B serves the same CA and issues under it; the
// import is idempotent and refused over another CA.
func TestExportKeys(t *testing.T) {
	t.Parallel()
	need(t, "openssl")
	a := startServer(t, serverOpts{prepared: true, challenge: "export-secret"})
	tmp := t.TempDir()
	pp := filepath.Join(tmp, "pp")
	writeFile(t, pp, "correct horse battery staple\n")
	out := filepath.Join(tmp, "ca-keys.pem")

	// A short passphrase is refused.
	short := filepath.Join(tmp, "short")
	writeFile(t, short, "short\n")
	expectFailed(t, a.Run("ca", "export-keys", "--data-dir", a.DataDir, "--out", out, "--passphrase-file", short), "a short passphrase")

	r := a.MustRun("ca", "export-keys", "--data-dir", a.DataDir, "--out", out, "--passphrase-file", pp)
	expectContains(t, "export-keys", r.stdout, "ca/issuing.key", "ca/ra.key", "root key is not in it")
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v, mode %v", err, fi.Mode())
	}
	body, _ := os.ReadFile(out)
	if !strings.HasPrefix(string(body), "-----BEGIN SCEPTER CA KEYS-----") || strings.Contains(string(body), "PRIVATE KEY") {
		t.Fatalf("the export file is not one sealed block:\n%.300s", body)
	}
	// An existing file is never overwritten.
	expectFailed(t, a.Run("ca", "export-keys", "--data-dir", a.DataDir, "--out", out, "--passphrase-file", pp), "export over an existing file")

	dirB := filepath.Join(t.TempDir(), "b")
	// A wrong passphrase imports nothing.
	wrong := filepath.Join(tmp, "wrong")
	writeFile(t, wrong, "not the right passphrase\n")
	r = a.Run("ca", "import-keys", "--data-dir", dirB, "--in", out, "--passphrase-file", wrong)
	expectFailed(t, r, "import with a wrong passphrase")
	expectContains(t, "import with a wrong passphrase", r.stderr, "wrong passphrase")
	if fileExists(dirB) {
		t.Error("a failed import made the data directory")
	}
	r = run(t, runOpts{env: []string{"SCEPTER_KEYS_PASSPHRASE=correct horse battery staple"}}, a.Bin, "ca", "import-keys", "--data-dir", dirB, "--in", out)
	if r.err != nil {
		t.Fatalf("import-keys:\n%s", r)
	}
	expectContains(t, "import-keys", r.stdout, "Imported the CA "+a.RootFingerprint())
	for path, want := range map[string]os.FileMode{"": 0o700, "ca": 0o700, "ca/issuing.key": 0o600, "ca/ra.key": 0o600} {
		fi, err := os.Stat(filepath.Join(dirB, path))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("B/%s: %v, mode %v, want %04o", path, err, fi.Mode().Perm(), want)
		}
	}
	if fileExists(filepath.Join(dirB, "ca", "root.key")) {
		t.Error("root.key was imported without --include-root")
	}
	// Again: nothing to do.
	r = a.MustRun("ca", "import-keys", "--data-dir", dirB, "--in", out, "--passphrase-file", pp)
	expectContains(t, "import-keys again", r.stdout, "Nothing to do")

	b := startServer(t, serverOpts{challenge: "export-secret-b", dataDir: dirB})
	if b.RootFingerprint() != a.RootFingerprint() {
		t.Fatal("B has another root")
	}
	ca := func(s *Server) []byte {
		code, body, err := httpGet(s.URL + "?operation=GetCACert")
		if err != nil || code != http.StatusOK {
			t.Fatalf("GetCACert: %d %v", code, err)
		}
		return body
	}
	if !bytes.Equal(ca(a), ca(b)) {
		t.Error("A and B answer GetCACert differently")
	}
	dir := t.TempDir()
	if r := enroll(t, dir, b.URL, b.Challenge, "CN=issued-by-b,O=Acme", "--ca-fingerprint", a.RootFingerprint()); r.err != nil {
		t.Fatalf("enroll at B:\n%s", r)
	}
	// Verified against A's files: the same issuing CA.
	a.Verify(filepath.Join(dir, "cert.pem"))
	b.ExpectRecorded(readCert(t, filepath.Join(dir, "cert.pem")))

	// Another CA's data directory is refused: other makes a CA of its own
	// (A's is the prepared one).
	other := startServer(t, serverOpts{challenge: "other"})
	r = other.Run("ca", "import-keys", "--data-dir", other.DataDir, "--in", out, "--passphrase-file", pp)
	expectFailed(t, r, "import into another CA")
	expectContains(t, "import into another CA", r.stderr, "different CA")
}
