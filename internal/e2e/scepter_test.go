package e2e

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestServeStart: the first start creates the CA files and prints the root
// fingerprint; the data directory layout is what the other tests rely on.
func TestServeStart(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{challenge: "start-secret"})
	for _, f := range []string{"root.crt", "issuing.crt", "ra.crt", "chain.pem"} {
		if !fileExists(s.CAFile(f)) {
			t.Errorf("serve did not create %s", s.CAFile(f))
		}
	}
	// chain.pem = issuing + root.
	chain := readCerts(t, s.CAFile("chain.pem"))
	if len(chain) != 2 || !bytes.Equal(chain[0].Raw, readCert(t, s.CAFile("issuing.crt")).Raw) ||
		!bytes.Equal(chain[1].Raw, readCert(t, s.CAFile("root.crt")).Raw) {
		t.Errorf("chain.pem is not issuing + root (%d certificates)", len(chain))
	}
	opensslVerify(t, s.CAFile("root.crt"), "", s.CAFile("issuing.crt"))
	opensslVerify(t, s.CAFile("root.crt"), s.CAFile("issuing.crt"), s.CAFile("ra.crt"))
	ra := readCert(t, s.CAFile("ra.crt"))
	if ra.KeyUsage&x509.KeyUsageDigitalSignature == 0 || ra.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
		t.Errorf("RA certificate key usage %b lacks digitalSignature or keyEncipherment", ra.KeyUsage)
	}
	if got := keyDesc(ra.PublicKey); got != "rsa2048" {
		t.Errorf("RA key is %s, want rsa2048", got)
	}
	if got := keyDesc(readCert(t, s.CAFile("issuing.crt")).PublicKey); got != "p256" {
		t.Errorf("default issuing CA key is %s, want p256", got)
	}
	// The root fingerprint is printed (in any common hex spelling).
	fp := fingerprintHex(readCert(t, s.CAFile("root.crt")))
	flat := strings.ToLower(strings.NewReplacer(":", "", " ", "").Replace(s.Output()))
	if !strings.Contains(flat, fp) {
		t.Errorf("serve did not print the root SHA-256 fingerprint %s:\n%s", fp, s.Output())
	}
	if !strings.Contains(s.Output(), s.URL) && !strings.Contains(s.Output(), s.Addr) {
		t.Errorf("serve did not print its listen address or SCEP URL:\n%s", s.Output())
	}
	// A static challenge never shows in the log.
	if strings.Contains(s.Output(), s.Challenge) {
		t.Errorf("the static challenge appears in the server output")
	}
}

// TestGetCACaps: the capabilities real clients need, on both paths, over
// HTTP/1.1 and over HTTP/1.0 without a Host header (Cisco IOS).
func TestGetCACaps(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{prepared: true, challenge: "caps-secret"})
	for _, path := range []string{"/scep", "/cgi-bin/pkiclient.exe"} {
		code, body, err := httpGet(s.Base + path + "?operation=GetCACaps")
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET %s GetCACaps: %d %v", path, code, err)
		}
		caps := map[string]bool{}
		for _, l := range strings.Fields(string(body)) {
			caps[strings.ToUpper(l)] = true
		}
		for _, want := range []string{"AES", "DES3", "POSTPKIOPERATION", "RENEWAL", "SHA-1", "SHA-256", "SHA-384", "SHA-512", "SCEPSTANDARD"} {
			if !caps[want] {
				t.Errorf("GetCACaps at %s lacks %s:\n%s", path, want, body)
			}
		}
	}
	// GetCACert: RA + CA chain as a degenerate PKCS#7 (certmonger needs both).
	resp0, err := http.Get(s.URL + "?operation=GetCACert")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp0.Body)
	resp0.Body.Close()
	if ct := resp0.Header.Get("Content-Type"); resp0.StatusCode != http.StatusOK || ct != "application/x-x509-ca-ra-cert" {
		t.Errorf("GetCACert: HTTP %d, Content-Type %q; want 200 application/x-x509-ca-ra-cert", resp0.StatusCode, ct)
	}

	conn, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(conn, "GET /cgi-bin/pkiclient.exe?operation=GetCACaps&message=cisco HTTP/1.0\r\nUser-Agent: Mozilla/4.0 (compatible; MSIE 5.0; Cisco PKI)\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("HTTP/1.0 GetCACaps without Host: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(strings.ToUpper(string(b)), "AES") {
		t.Errorf("HTTP/1.0 GetCACaps without Host: %s\n%s", resp.Status, b)
	}
}

// TestScepterEnroll: our own client against our server: several RSA key
// sizes, both paths, with and without --ca-fingerprint; a wrong fingerprint
// and a wrong challenge fail clearly and record nothing.
func TestScepterEnroll(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{prepared: true, challenge: "enroll-secret"})
	fp := s.RootFingerprint()
	issuing := readCert(t, s.CAFile("issuing.crt"))

	cases := []struct {
		name, keyType, path string
		extra               []string
	}{
		{"rsa2048", "rsa2048", "/scep", nil},
		{"rsa3072-fingerprint", "rsa3072", "/scep", []string{"--ca-fingerprint", fp}},
		{"rsa4096-fingerprint-cgi", "rsa4096", "/cgi-bin/pkiclient.exe", []string{"--ca-fingerprint", "sha256:" + strings.ToUpper(fp[len("sha256:"):])}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cn := "device-" + tc.name
			chainPath := filepath.Join(dir, "chain.pem")
			args := append([]string{"--key-type", tc.keyType, "--dns", cn + ".example.com", "--chain-out", chainPath}, tc.extra...)
			tp := startTap(t, s.Addr)
			r := enroll(t, dir, tp.Base()+tc.path, s.Challenge, "CN="+cn+",O=Acme", args...)
			if r.err != nil {
				t.Fatalf("scepter enroll failed:\n%s", r)
			}
			expectWire(t, tp, wantWire{method: "POST", reqCipherPrefix: "AES-", replySame: true})
			certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
			c := s.Verify(certPath)
			expectKeyMatches(t, c, keyPath)
			if got := keyDesc(c.PublicKey); got != tc.keyType {
				t.Errorf("certificate key = %s, want %s", got, tc.keyType)
			}
			if c.Subject.CommonName != cn || len(c.Subject.Organization) != 1 || c.Subject.Organization[0] != "Acme" {
				t.Errorf("subject = %q, want CN=%s,O=Acme", c.Subject, cn)
			}
			if len(c.DNSNames) != 1 || c.DNSNames[0] != cn+".example.com" {
				t.Errorf("DNS SANs = %v, want [%s.example.com]", c.DNSNames, cn)
			}
			if fi, err := os.Stat(keyPath); err == nil && fi.Mode().Perm() != 0o600 {
				t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
			}
			if fileExists(chainPath) {
				found := false
				for _, cc := range readCerts(t, chainPath) {
					found = found || bytes.Equal(cc.Raw, issuing.Raw)
				}
				if !found {
					t.Errorf("--chain-out %s lacks the issuing CA", chainPath)
				}
			} else {
				t.Errorf("--chain-out %s was not written", chainPath)
			}
			s.ExpectRecorded(c)
		})
	}

	t.Run("wrong-fingerprint", func(t *testing.T) {
		dir := t.TempDir()
		before := len(s.ListCerts())
		wrong := "sha256:" + strings.Repeat("ab", 32)
		r := enroll(t, dir, s.URL, s.Challenge, "CN=device-wrong-fp,O=Acme", "--ca-fingerprint", wrong)
		out := expectFailed(t, r, "scepter enroll with a wrong --ca-fingerprint")
		expectContains(t, "scepter enroll's error", out, "fingerprint")
		if fileExists(filepath.Join(dir, "cert.pem")) {
			t.Errorf("cert.pem written although the CA fingerprint did not match")
		}
		if after := len(s.ListCerts()); after != before {
			t.Errorf("a wrong fingerprint still enrolled: %d -> %d certificates", before, after)
		}
	})

	t.Run("wrong-challenge", func(t *testing.T) {
		dir := t.TempDir()
		before := len(s.ListCerts())
		r := enroll(t, dir, s.URL, "not-the-challenge", "CN=device-wrong-challenge,O=Acme")
		out := expectFailed(t, r, "scepter enroll with a wrong challenge")
		expectContains(t, "scepter enroll's error", out, "badRequest")
		if fileExists(filepath.Join(dir, "cert.pem")) {
			t.Errorf("cert.pem written although the challenge was wrong")
		}
		if after := len(s.ListCerts()); after != before {
			t.Errorf("a wrong challenge was recorded: %d -> %d certificates", before, after)
		}
		if strings.Contains(s.Output(), "not-the-challenge") {
			t.Errorf("a submitted challenge appears in the server log")
		}
	})
}

// TestCAKeyTypes: the server with other CA key types still issues to our
// client and to micromdm's scepclient.
func TestCAKeyTypes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
	}{
		{"p384", []string{"--ca-key-type", "p384"}},
		{"rsa3072-ra-is-ca", []string{"--ca-key-type", "rsa3072", "--scep-ra", "ca", "--allow-insecure-des"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, serverOpts{challenge: "kt-secret", args: tc.args})
			dir := t.TempDir()
			r := enroll(t, dir, s.URL, s.Challenge, "CN=kt-"+tc.name+",O=Acme", "--ca-fingerprint", s.RootFingerprint())
			if r.err != nil {
				t.Fatalf("scepter enroll against --ca-key-type %s failed:\n%s", tc.name, r)
			}
			c := s.Verify(filepath.Join(dir, "cert.pem"))
			s.ExpectRecorded(c)
			if strings.Contains(tc.name, "ra-is-ca") {
				mm := t.TempDir()
				if r := scepclient(t, mm, s.URL, s.Challenge, "kt-mm-"+tc.name); r.err != nil {
					t.Fatalf("micromdm scepclient against --scep-ra ca:\n%s", r)
				}
				s.ExpectRecorded(s.Verify(filepath.Join(mm, "cert.pem")))
			}
		})
	}
}

// TestOneTimeChallenge: `scepter challenge new` gives a challenge that works
// once; a second use and an expired one fail; nothing extra is recorded, and
// no challenge shows in the server log.
func TestOneTimeChallenge(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{prepared: true, challenge: "static-otp-test"})

	newChallenge := func(ttl string) string {
		t.Helper()
		args := []string{"challenge", "new", "--data-dir", s.DataDir}
		if ttl != "" {
			args = append(args, "--ttl", ttl)
		}
		r := s.MustRun(args...)
		ch := strings.TrimSpace(r.stdout)
		if ch == "" || strings.ContainsAny(ch, " \n\t") {
			t.Fatalf("challenge new did not print one challenge alone on stdout:\n%s", r)
		}
		return ch
	}

	once := newChallenge("")
	other := newChallenge("60m")
	if once == other {
		t.Fatalf("two challenge new calls printed the same challenge %q", once)
	}

	dir := t.TempDir()
	if r := enroll(t, dir, s.URL, once, "CN=otp-1,O=Acme"); r.err != nil {
		t.Fatalf("enroll with a fresh one-time challenge failed:\n%s", r)
	}
	c := s.Verify(filepath.Join(dir, "cert.pem"))
	s.ExpectRecorded(c)
	n := len(s.ListCerts())

	r := enroll(t, t.TempDir(), s.URL, once, "CN=otp-2,O=Acme")
	expectContains(t, "reuse of a one-time challenge", expectFailed(t, r, "second use of a one-time challenge"), "badRequest")

	expired := newChallenge("1s")
	time.Sleep(2 * time.Second)
	r = enroll(t, t.TempDir(), s.URL, expired, "CN=otp-3,O=Acme")
	expectContains(t, "an expired one-time challenge", expectFailed(t, r, "expired one-time challenge"), "badRequest")

	if got := len(s.ListCerts()); got != n {
		t.Errorf("refused challenges recorded certificates: %d -> %d", n, got)
	}
	// The unused 60m challenge still works after the failures.
	if r := enroll(t, t.TempDir(), s.URL, other, "CN=otp-4,O=Acme"); r.err != nil {
		t.Fatalf("enroll with the second one-time challenge failed:\n%s", r)
	}
	for _, ch := range []string{once, other, expired, s.Challenge} {
		if strings.Contains(s.Output(), ch) {
			t.Errorf("challenge %q appears in the server output", ch)
		}
	}
}

// TestInventory: `certs list --json` has every serial with subject,
// not_after and status; --expiring-within filters; `certs show` prints PEM.
func TestInventory(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{prepared: true, challenge: "inv-secret"})
	var issued []*x509.Certificate
	for i := 1; i <= 2; i++ {
		dir := t.TempDir()
		if r := enroll(t, dir, s.URL, s.Challenge, fmt.Sprintf("CN=inv-%d,O=Acme", i)); r.err != nil {
			t.Fatalf("enroll:\n%s", r)
		}
		issued = append(issued, s.Verify(filepath.Join(dir, "cert.pem")))
	}

	list := s.ListCerts()
	if len(list) != len(issued) {
		t.Errorf("certs list has %d entries, want %d: %+v", len(list), len(issued), list)
	}
	for _, c := range issued {
		e := findSerial(list, c)
		if e == nil {
			t.Errorf("serial %s missing from certs list", serialHex(c.SerialNumber))
			continue
		}
		if !strings.Contains(e.Subject, c.Subject.CommonName) {
			t.Errorf("entry subject %q does not name %q", e.Subject, c.Subject.CommonName)
		}
		if e.Status != "valid" {
			t.Errorf("entry status %q, want valid", e.Status)
		}
		na, err := time.Parse(time.RFC3339, e.NotAfter)
		if err != nil {
			t.Errorf("not_after %q is not RFC 3339: %v", e.NotAfter, err)
		} else if !na.Equal(c.NotAfter) {
			t.Errorf("not_after %v, certificate says %v", na, c.NotAfter)
		}
		if c.SerialNumber.BitLen() < 64 {
			t.Errorf("serial %s is shorter than 64 bits; want 128-bit random serials", serialHex(c.SerialNumber))
		}
	}
	if len(issued) == 2 && issued[0].SerialNumber.Cmp(issued[1].SerialNumber) == 0 {
		t.Errorf("two certificates share serial %s", serialHex(issued[0].SerialNumber))
	}

	// --expiring-within: exactly the certificates whose not_after falls within.
	for _, w := range []struct {
		flag string
		d    time.Duration
	}{{"30d", 30 * 24 * time.Hour}, {"3650d", 3650 * 24 * time.Hour}} {
		got := s.ListCerts("--expiring-within", w.flag)
		limit := time.Now().Add(w.d)
		want := 0
		for _, c := range issued {
			if c.NotAfter.Before(limit) {
				want++
				if findSerial(got, c) == nil {
					t.Errorf("--expiring-within %s lacks %s (not after %v)", w.flag, c.Subject, c.NotAfter)
				}
			}
		}
		if len(got) != want {
			t.Errorf("--expiring-within %s lists %d certificates, want %d: %+v", w.flag, len(got), want, got)
		}
	}

	// certs show SERIAL, with the serial as the list spells it.
	for _, c := range issued {
		e := findSerial(list, c)
		if e == nil {
			continue
		}
		// The documented order (SERIAL before the flags) and flags first.
		r := s.Run("certs", "show", e.Serial, "--data-dir", s.DataDir)
		if r.err != nil {
			t.Errorf("`certs show SERIAL --data-dir DIR` (the documented form) failed:\n%s", r)
			r = s.MustRun("certs", "show", "--data-dir", s.DataDir, e.Serial)
		}
		blk, _ := pem.Decode([]byte(r.stdout))
		if blk == nil {
			t.Errorf("certs show %s printed no PEM certificate:\n%s", e.Serial, r)
			continue
		}
		if !bytes.Equal(blk.Bytes, c.Raw) {
			t.Errorf("certs show %s printed another certificate", e.Serial)
		}
	}
	r := s.Run("certs", "show", "--data-dir", s.DataDir, "feedfacefeedface")
	expectFailed(t, r, "certs show of an unknown serial")
}

// TestBadHTTPInput: malformed PKIOperation requests get a 4xx or a signed
// FAILURE (never a 5xx), record nothing, and the server keeps serving.
func TestBadHTTPInput(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{prepared: true, challenge: "bad-secret"})
	client := &http.Client{Timeout: 20 * time.Second}
	post := func(body []byte, ctype string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"?operation=PKIOperation", bytes.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type")
	}
	check := func(what string, code int, ctype string) {
		t.Helper()
		switch {
		case code >= 400 && code < 500:
		case code == http.StatusOK && strings.Contains(ctype, "x-pki-message"):
			// a signed CertRep FAILURE
		default:
			t.Errorf("%s: HTTP %d (%s), want a 4xx or a signed FAILURE", what, code, ctype)
		}
	}
	code, ct := post([]byte("this is not a pkiMessage"), "application/x-pki-message")
	check("garbage POST", code, ct)
	code, ct = post([]byte{0x30, 0x82, 0x04, 0x00, 0x06, 0x09}, "")
	check("truncated DER POST without Content-Type", code, ct)
	code, ct = post(bytes.Repeat([]byte{0x30}, 1<<20), "application/x-pki-message")
	if code < 400 || code >= 500 {
		t.Errorf("1 MiB body: HTTP %d, want a 4xx", code)
	}
	c, _, err := httpGet(s.URL + "?operation=PKIOperation&message=%%%not-base64%%%")
	if err != nil {
		t.Fatal(err)
	}
	check("garbage GET message", c, "")
	c, _, err = httpGet(s.URL + "?operation=NoSuchOperation")
	if err != nil {
		t.Fatal(err)
	}
	if c < 400 || c >= 500 {
		t.Errorf("unknown operation: HTTP %d, want a 4xx", c)
	}
	if list := s.ListCerts(); len(list) != 0 {
		t.Errorf("bad input recorded certificates: %+v", list)
	}
	// A real enrollment still works afterwards.
	if r := enroll(t, t.TempDir(), s.URL, s.Challenge, "CN=after-bad-input,O=Acme"); r.err != nil {
		t.Fatalf("enroll after bad input failed:\n%s", r)
	}
}

// TestGeneratedChallengeAndRestart: without --challenge, serve generates a
// challenge, prints it and saves it in the data directory; keys are 0600; a
// restart on the same data directory reuses the CA, the challenge and the
// inventory.
func TestGeneratedChallengeAndRestart(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})

	// The saved challenge: a file in the data directory named *challenge*.
	var challenge string
	entries, err := os.ReadDir(s.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() && strings.Contains(strings.ToLower(e.Name()), "challenge") {
			b, err := os.ReadFile(filepath.Join(s.DataDir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			challenge = strings.TrimSpace(string(b))
			if fi, _ := e.Info(); fi != nil && fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s is readable by others: %v", e.Name(), fi.Mode().Perm())
			}
		}
	}
	if challenge == "" {
		t.Fatalf("no generated challenge saved in %s (%v)", s.DataDir, entries)
	}
	if !strings.Contains(s.Output(), challenge) {
		t.Errorf("serve did not print the generated challenge:\n%s", s.Output())
	}
	keys, _ := filepath.Glob(filepath.Join(s.DataDir, "ca", "*.key"))
	if len(keys) < 3 {
		t.Errorf("expected root, issuing and RA keys in %s/ca, found %v", s.DataDir, keys)
	}
	for _, k := range keys {
		if fi, err := os.Stat(k); err == nil && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", k, fi.Mode().Perm())
		}
	}

	dir := t.TempDir()
	if r := enroll(t, dir, s.URL, challenge, "CN=before-restart,O=Acme"); r.err != nil {
		t.Fatalf("enroll with the generated challenge:\n%s", r)
	}
	c := s.Verify(filepath.Join(dir, "cert.pem"))
	rootBefore, _ := os.ReadFile(s.CAFile("root.crt"))
	raBefore, _ := os.ReadFile(s.CAFile("ra.crt"))
	s.Stop()

	s2 := startServer(t, serverOpts{dataDir: s.DataDir})
	rootAfter, _ := os.ReadFile(s2.CAFile("root.crt"))
	raAfter, _ := os.ReadFile(s2.CAFile("ra.crt"))
	if !bytes.Equal(rootBefore, rootAfter) || !bytes.Equal(raBefore, raAfter) {
		t.Errorf("a restart replaced the root or RA certificate")
	}
	s2.ExpectRecorded(c)
	dir2 := t.TempDir()
	if r := enroll(t, dir2, s2.URL, challenge, "CN=after-restart,O=Acme", "--ca-fingerprint", s2.RootFingerprint()); r.err != nil {
		t.Fatalf("enroll after a restart with the saved challenge:\n%s", r)
	}
	s2.ExpectRecorded(s2.Verify(filepath.Join(dir2, "cert.pem")))
}

// TestParallelEnrollments: 16 `scepter enroll` processes at once (5 rounds)
// against one server: every certificate is issued, verified, recorded once,
// and no two share a serial. (The 16 x 50 load lives in the package tests;
// this is the same race through the real binary and its SQLite store.)
func TestParallelEnrollments(t *testing.T) {
	t.Parallel()
	const workers, rounds = 16, 5
	s := startServer(t, serverOpts{prepared: true, challenge: "parallel-secret"})
	var mu sync.Mutex
	var issued []*x509.Certificate
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				dir := t.TempDir()
				r := enroll(t, dir, s.URL, s.Challenge, fmt.Sprintf("CN=par-%d-%d,O=Acme", w, i))
				if r.err != nil {
					t.Errorf("parallel enroll %d/%d:\n%s", w, i, r)
					return
				}
				c, err := parseCertsFile(filepath.Join(dir, "cert.pem"))
				if err != nil {
					t.Errorf("parallel enroll %d/%d: %v", w, i, err)
					return
				}
				mu.Lock()
				issued = append(issued, c)
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	list := s.ListCerts()
	if len(list) != workers*rounds {
		t.Errorf("certs list has %d entries after %d enrollments", len(list), workers*rounds)
	}
	seen := map[string]bool{}
	for _, e := range list {
		n := normSerial(e.Serial)
		if seen[n] {
			t.Errorf("serial %s recorded twice", e.Serial)
		}
		seen[n] = true
	}
	for _, c := range issued {
		if !seen[serialHex(c.SerialNumber)] {
			t.Errorf("issued %s (serial %s) is not recorded", c.Subject, serialHex(c.SerialNumber))
		}
	}
	// openssl verify a sample (all of them would only cost time).
	for _, c := range issued[:3] {
		p := filepath.Join(t.TempDir(), "c.pem")
		writeFile(t, p, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
		s.Verify(p)
	}
}
