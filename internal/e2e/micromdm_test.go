package e2e

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// desMention matches a log line that speaks of the single-DES legacy switch.
var desMention = regexp.MustCompile(`(?i)\bdes\b|des-cbc|single.des|insecure-des`)

// desMentions counts the log lines that speak of single DES.
func desMentions(log string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if desMention.MatchString(l) {
			n++
		}
	}
	return n
}

// scepclient runs micromdm's scepclient in its own directory (it writes
// csr.pem and self.pem into the working directory and reuses them).
func scepclient(t *testing.T, dir, url, challenge, cn string, extra ...string) result {
	t.Helper()
	sc := need(t, "scepclient")[0]
	args := []string{"-server-url", url, "-challenge", challenge, "-cn", cn, "-organization", "Acme",
		"-private-key", filepath.Join(dir, "key.pem"), "-certificate", filepath.Join(dir, "cert.pem")}
	args = append(args, extra...)
	return run(t, runOpts{dir: dir}, sc, args...)
}

// TestMicromdmScepclient: micromdm's scepclient (Debian package scep) sends a
// single-DES envelope. With --allow-insecure-des it enrolls; without it the
// server answers FAILURE badAlg and records nothing.
//
// scepclient 2.1.0 encrypts to every certificate GetCACert returns unless
// -ca-fingerprint selects one, and panics on an EC certificate
// ("interface {} is *ecdsa.PublicKey, not *rsa.PublicKey"). With the default
// P-256 CA it therefore needs -ca-fingerprint set to the RA certificate's
// SHA-256; with an RSA CA it works without, encrypting to RA, issuing CA and
// root at once.
func TestMicromdmScepclient(t *testing.T) {
	t.Parallel()
	need(t, "scepclient")

	t.Run("des-allowed", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, serverOpts{prepared: true, challenge: "mm-secret-1", args: []string{"--allow-insecure-des"}})
		raFP := fingerprintHex(readCert(t, s.CAFile("ra.crt")))
		desAtStart := desMentions(s.Output())
		if desAtStart == 0 {
			t.Errorf("serve --allow-insecure-des does not warn about single DES at start:\n%s", s.Output())
		}

		dir := t.TempDir()
		tp := startTap(t, s.Addr)
		r := scepclient(t, dir, tp.Base()+"/scep", s.Challenge, "mm-device-1", "-ca-fingerprint", raFP)
		if r.err != nil {
			t.Fatalf("micromdm scepclient could not enroll with --allow-insecure-des:\n%s", r)
		}
		// It sends single DES; the server answers in DES3, never DES.
		expectWire(t, tp, wantWire{method: "POST", reqCipher: "DES-CBC", replyCipher: "DES-EDE3-CBC"})
		c := s.Verify(filepath.Join(dir, "cert.pem"))
		expectKeyMatches(t, c, filepath.Join(dir, "key.pem"))
		if c.Subject.CommonName != "mm-device-1" {
			t.Errorf("subject CN = %q, want mm-device-1", c.Subject.CommonName)
		}
		s.ExpectRecorded(c)

		// The legacy CGI path, RSA-4096.
		dir2 := t.TempDir()
		r = scepclient(t, dir2, s.Base+"/cgi-bin/pkiclient.exe", s.Challenge, "mm-device-2", "-ca-fingerprint", raFP, "-keySize", "4096")
		if r.err != nil {
			t.Fatalf("micromdm scepclient via /cgi-bin/pkiclient.exe:\n%s", r)
		}
		c2 := s.Verify(filepath.Join(dir2, "cert.pem"))
		if got := keyDesc(c2.PublicKey); got != "rsa4096" {
			t.Errorf("key = %s, want rsa4096", got)
		}
		s.ExpectRecorded(c2)

		if desMentions(s.Output()) < desAtStart+2 {
			t.Errorf("the server did not log each use of single DES (2 DES enrollments):\n%s", s.Output())
		}
	})

	t.Run("des-allowed-rsa-ca-all-recipients", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, serverOpts{challenge: "mm-secret-3", args: []string{"--allow-insecure-des", "--ca-key-type", "rsa2048"}})
		dir := t.TempDir()
		r := scepclient(t, dir, s.URL, s.Challenge, "mm-device-4")
		if r.err != nil {
			t.Fatalf("micromdm scepclient (envelope to RA + issuing + root) against an RSA CA:\n%s", r)
		}
		s.ExpectRecorded(s.Verify(filepath.Join(dir, "cert.pem")))
	})

	t.Run("des-refused", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, serverOpts{prepared: true, challenge: "mm-secret-2"})
		raFP := fingerprintHex(readCert(t, s.CAFile("ra.crt")))
		dir := t.TempDir()
		tp := startTap(t, s.Addr)
		r := scepclient(t, dir, tp.Base()+"/scep", s.Challenge, "mm-device-3", "-ca-fingerprint", raFP)
		out := expectFailed(t, r, "micromdm scepclient (single DES) without --allow-insecure-des")
		expectWire(t, tp, wantWire{method: "POST", reqCipher: "DES-CBC"})
		expectContains(t, "scepclient's output", out, "badAlg")
		if fileExists(filepath.Join(dir, "cert.pem")) {
			t.Errorf("scepclient wrote a certificate although enrollment failed")
		}
		if list := s.ListCerts(); len(list) != 0 {
			t.Errorf("a refused DES enrollment recorded certificates: %+v", list)
		}
		if desMentions(s.Output()) == 0 {
			t.Errorf("the server log does not say that a single-DES request was refused:\n%s", s.Output())
		}
	})
}

// startMicromdm starts micromdm's scepserver (Debian package scep) with a
// fresh RSA-2048 CA in a temp depot and returns its SCEP URL and CA file.
// scepserver can only listen on all interfaces (-port takes a bare port);
// the tests talk to it on 127.0.0.1 only.
func startMicromdm(t *testing.T, challenge string) (url, caPEM string) {
	t.Helper()
	ss := need(t, "scepserver")[0]
	dir := t.TempDir()
	depot := filepath.Join(dir, "depot")
	mustRun(t, runOpts{dir: dir}, ss, "ca", "-init", "-depot", depot, "-keySize", "2048", "-organization", "micromdm-e2e")
	var p *proc
	for attempt := 0; attempt < 3; attempt++ {
		port := strconv.Itoa(freePort(t))
		url = "http://127.0.0.1:" + port + "/scep"
		p = startProc(t, dir, nil, ss, "-depot", depot, "-port", port, "-challenge", challenge, "-allowrenew", "0")
		err := waitHTTP200(p, url+"?operation=GetCACaps", readyTimeout)
		if err == nil {
			break
		}
		p.stop(t)
		if attempt == 2 {
			t.Fatalf("micromdm scepserver did not start: %v\n%s", err, p.out.String())
		}
	}
	t.Cleanup(func() {
		if p.exited() {
			t.Errorf("micromdm scepserver exited during the test: %v", p.err)
		}
		p.stop(t)
		if t.Failed() {
			t.Logf("--- micromdm scepserver output ---\n%s", p.out.String())
		}
	})
	return url, filepath.Join(depot, "ca.pem")
}

// TestScepterEnrollAgainstMicromdm: our client against micromdm's
// scepserver, with and without pinning its CA.
func TestScepterEnrollAgainstMicromdm(t *testing.T) {
	t.Parallel()
	bin(t)
	url, caPEM := startMicromdm(t, "micromdm-secret")
	caFP := "sha256:" + fingerprintHex(readCert(t, caPEM))

	check := func(t *testing.T, dir, cn string) {
		t.Helper()
		certPath := filepath.Join(dir, "cert.pem")
		opensslVerify(t, caPEM, "", certPath)
		c := readCert(t, certPath)
		expectKeyMatches(t, c, filepath.Join(dir, "key.pem"))
		if c.Subject.CommonName != cn {
			t.Errorf("subject CN = %q, want %q", c.Subject.CommonName, cn)
		}
	}

	// micromdm 2.1.0 answers every request with a single-DES envelope,
	// whatever the request used. Our request (with the challenge) goes out
	// in AES; the reply holds only the public certificate under a verified
	// signature, so the client accepts it and warns.
	t.Run("plain", func(t *testing.T) {
		dir := t.TempDir()
		tp := startTap(t, strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/scep"))
		r := enroll(t, dir, tp.Base()+"/scep", "micromdm-secret", "CN=against-micromdm-1,O=Acme")
		if r.err != nil {
			t.Fatalf("scepter enroll against micromdm scepserver failed:\n%s", r)
		}
		expectContains(t, "scepter enroll's warning", r.String(), "single DES")
		// We send AES (micromdm advertises it); micromdm answers in DES.
		expectWire(t, tp, wantWire{method: "POST", reqCipherPrefix: "AES-", replyCipher: "DES-CBC"})
		check(t, dir, "against-micromdm-1")
	})
	t.Run("ca-fingerprint", func(t *testing.T) {
		dir := t.TempDir()
		r := enroll(t, dir, url, "micromdm-secret", "CN=against-micromdm-2,O=Acme", "--ca-fingerprint", caFP, "--key-type", "rsa3072")
		if r.err != nil {
			t.Fatalf("scepter enroll --ca-fingerprint against micromdm scepserver failed:\n%s", r)
		}
		check(t, dir, "against-micromdm-2")
	})
	t.Run("wrong-challenge", func(t *testing.T) {
		dir := t.TempDir()
		r := enroll(t, dir, url, "not-the-challenge", "CN=against-micromdm-3,O=Acme")
		out := expectFailed(t, r, "scepter enroll with a wrong challenge against micromdm")
		expectContains(t, "scepter enroll's error", out, "badRequest")
		if fileExists(filepath.Join(dir, "cert.pem")) {
			t.Errorf("scepter enroll wrote cert.pem although enrollment failed")
		}
	})
}
