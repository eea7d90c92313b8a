package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/store/sqlite"
)

// TestRevocationEndToEnd: `certs revoke` beside a running server, then what
// relying parties see, all over real HTTP from the real binary: the CRL at
// the certificate's CDP URL (checked by `openssl crl`), `openssl ocsp` at
// its AIA URL (revoked, good, unknown; with and without nonce; GET and
// POST), SCEP GetCRL returning the same CRL (to a revoked signer too), a
// revoked certificate that no longer authenticates anything, a hold
// lifted, and an audit trail that verifies until someone edits it.
func TestRevocationEndToEnd(t *testing.T) {
	t.Parallel()
	need(t, "openssl", "curl")
	e := startEST(t, estOpts{prepared: true, challenge: "revoke-secret", config: lifecycleConfig})
	dir := t.TempDir()
	certs := map[string]*x509.Certificate{}
	for _, name := range []string{"a", "b", "c"} {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if r := enroll(t, d, e.URL, e.Challenge, "CN=revoke-"+name+",O=Acme", "--key-type", "rsa2048"); r.err != nil {
			t.Fatalf("enroll %s:\n%s", name, r)
		}
		certs[name] = e.Verify(filepath.Join(d, "cert.pem"))
	}
	certPath := func(name string) string { return filepath.Join(dir, name, "cert.pem") }
	keyPath := func(name string) string { return filepath.Join(dir, name, "key.pem") }
	a := certs["a"]

	// Where relying parties look: under the server's public URL.
	if len(a.CRLDistributionPoints) != 1 || len(a.OCSPServer) != 1 || len(a.IssuingCertificateURL) != 1 {
		t.Fatalf("CDP %v, OCSP %v, caIssuers %v: want one each", a.CRLDistributionPoints, a.OCSPServer, a.IssuingCertificateURL)
	}
	cdp, ocspURL := a.CRLDistributionPoints[0], a.OCSPServer[0]
	if !strings.HasPrefix(cdp, e.Base+"/crl/") || ocspURL != e.Base+"/ocsp" || !strings.HasPrefix(a.IssuingCertificateURL[0], e.Base+"/ca/") {
		t.Fatalf("CDP %s, OCSP %s, caIssuers %s: not under %s", cdp, ocspURL, a.IssuingCertificateURL[0], e.Base)
	}
	issuerPEM := filepath.Join(dir, "issuer.pem")
	code, der, err := httpGet(a.IssuingCertificateURL[0])
	if err != nil || code != 200 {
		t.Fatalf("caIssuers: %d %v", code, err)
	}
	if !bytes.Equal(der, readCert(t, e.CAFile("issuing.crt")).Raw) {
		t.Fatal("caIssuers serves another certificate than the issuing CA")
	}
	writePEM(t, issuerPEM, "CERTIFICATE", der)

	// Revoke: once, again (the same answer, no second event), and an
	// unknown serial (a clear error naming it).
	serialA := serialHex(a.SerialNumber)
	r := e.cli(t, "certs", "revoke", serialA, "--reason", "keyCompromise")
	if r.err != nil {
		t.Fatalf("certs revoke:\n%s", r)
	}
	expectContains(t, "certs revoke", r.stdout, "revoked "+shownSerial(a.SerialNumber), "keyCompromise")
	r = e.cli(t, "certs", "revoke", serialA, "--reason", "keyCompromise")
	if r.err != nil {
		t.Fatalf("certs revoke again:\n%s", r)
	}
	expectContains(t, "certs revoke again", r.stdout, "already revoked")
	expectFailed(t, e.cli(t, "certs", "revoke", "0badc0ffee", "--reason", "keyCompromise"), "unknown serial")
	expectContains(t, "unknown serial", e.cli(t, "certs", "revoke", "0badc0ffee").stderr, "badc0ffee")
	expectFailed(t, e.cli(t, "certs", "revoke", serialA, "--reason", "compromised"), "unknown reason")
	events := e.cli(t, "audit", "list", "--serial", serialA, "--type", "certificate.revoked", "--json")
	if n := strings.Count(events.stdout, `"certificate.revoked"`); n != 1 {
		t.Errorf("%d certificate.revoked events for one revocation done twice:\n%s", n, events)
	}

	// The CRL at the CDP lists it within seconds, and verifies.
	crlFile := filepath.Join(dir, "crl.der")
	waitCRL(t, cdp, crlFile, func(text string) bool { return strings.Contains(text, strings.ToUpper(serialA)) })
	r = mustRun(t, runOpts{}, "openssl", "crl", "-inform", "DER", "-in", crlFile, "-CAfile", issuerPEM, "-noout", "-text")
	expectContains(t, "openssl crl", r.stdout+r.stderr, "verify OK", "Key Compromise", "X509v3 CRL Number")

	// OCSP at the AIA URL: revoked, good, unknown; with a nonce (openssl's
	// default) and without.
	ocspCheck := func(name string, args []string, want ...string) {
		t.Helper()
		full := append([]string{"ocsp", "-issuer", issuerPEM, "-url", ocspURL, "-CAfile", e.CAFile("root.crt"),
			"-verify_other", e.CAFile("issuing.crt")}, args...)
		r := mustRun(t, runOpts{}, "openssl", full...)
		expectContains(t, "openssl ocsp "+name, r.stdout+r.stderr, append([]string{"Response verify OK"}, want...)...)
	}
	ocspCheck("revoked", []string{"-cert", certPath("a")}, ": revoked", "Reason: keyCompromise")
	ocspCheck("good", []string{"-cert", certPath("b")}, ": good")
	ocspCheck("good, no nonce", []string{"-cert", certPath("b"), "-no_nonce"}, ": good")
	ocspCheck("revoked, no nonce", []string{"-cert", certPath("a"), "-no_nonce"}, ": revoked")
	ocspCheck("never issued", []string{"-serial", "0x1234567890abcdef"}, ": unknown")
	ocspCheck("SHA-256 CertID", []string{"-sha256", "-cert", certPath("a")}, ": revoked")

	// strongSwan's pki, another relying party, follows the certificate's
	// OCSP URL by itself.
	if _, err := exec.LookPath("pki"); err == nil || requireAll() {
		need(t, "pki")
		sw := func(cert string) result {
			return run(t, runOpts{}, "pki", "--verify", "--in", cert, "--cacert", e.CAFile("root.crt"), "--cacert", e.CAFile("issuing.crt"), "--online")
		}
		r := sw(certPath("a"))
		expectContains(t, "strongSwan pki --verify --online (revoked)", expectFailed(t, r, "strongSwan trusts a revoked certificate"),
			"ocsp response correctly signed", "certificate was revoked", "key compromise")
		r = sw(certPath("b"))
		if r.err != nil {
			t.Fatalf("strongSwan pki --verify --online (good):\n%s", r)
		}
		expectContains(t, "strongSwan pki --verify --online (good)", r.stdout+r.stderr, "ocsp response correctly signed", "certificate status is good")
	}

	// GET, the request base64 in the path, answered with caching headers.
	reqFile := filepath.Join(dir, "req.der")
	mustRun(t, runOpts{}, "openssl", "ocsp", "-issuer", issuerPEM, "-cert", certPath("b"), "-no_nonce", "-reqout", reqFile)
	reqDER, err := os.ReadFile(reqFile)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := httpDo(t, http.MethodGet, ocspURL+"/"+base64.StdEncoding.EncodeToString(reqDER), nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/ocsp-response" || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age") {
		t.Fatalf("OCSP GET: %d %v", resp.StatusCode, resp.Header)
	}
	respFile := filepath.Join(dir, "resp.der")
	writeFile(t, respFile, string(body))
	r = mustRun(t, runOpts{}, "openssl", "ocsp", "-respin", respFile, "-issuer", issuerPEM, "-cert", certPath("b"),
		"-CAfile", e.CAFile("root.crt"), "-verify_other", e.CAFile("issuing.crt"))
	expectContains(t, "OCSP GET answer", r.stdout+r.stderr, "Response verify OK", ": good")

	// A malformed request: malformedRequest, not a 5xx.
	resp, body = httpDo(t, http.MethodPost, ocspURL, []byte("this is not an OCSP request"))
	if resp.StatusCode != 200 || !bytes.Equal(body, []byte{0x30, 0x03, 0x0a, 0x01, 0x01}) {
		t.Errorf("malformed OCSP request: %d %x, want 200 malformedRequest", resp.StatusCode, body)
	}
	writeFile(t, respFile, string(body))
	r = run(t, runOpts{}, "openssl", "ocsp", "-respin", respFile, "-resp_text", "-noverify")
	expectContains(t, "openssl reads the malformedRequest", strings.ToLower(r.stdout+r.stderr), "malformedrequest")

	// SCEP GetCRL: the same CRL as the CDP serves.
	crlNow := filepath.Join(dir, "now.der")
	waitCRL(t, cdp, crlNow, func(string) bool { return true })
	getcrl := filepath.Join(dir, "getcrl.der")
	mustRun(t, runOpts{}, e.Bin, "getcrl", "--url", e.URL, "--cert", certPath("b"), "--key", keyPath("b"), "--out", getcrl)
	if got, want := readBytes(t, getcrl), readBytes(t, crlNow); !bytes.Equal(got, want) {
		t.Error("SCEP GetCRL returned another CRL than the CDP")
	}

	// A revoked certificate authenticates nothing: SCEP renewal, EST
	// re-enrollment with it as TLS client certificate. GetCRL asks for
	// nothing secret: signed by it, the same public CRL comes back.
	r = run(t, runOpts{dir: dir}, e.Bin, "renew", "--url", e.URL, "--cert", certPath("a"), "--key", keyPath("a"),
		"--out", filepath.Join(dir, "a2.pem"), "--key-out", filepath.Join(dir, "a2.key"))
	expectContains(t, "renewal by a revoked certificate", expectFailed(t, r, "renewal by a revoked certificate"), "revoked")
	mustRun(t, runOpts{}, e.Bin, "getcrl", "--url", e.URL, "--cert", certPath("a"), "--key", keyPath("a"), "--out", getcrl)
	if got, want := readBytes(t, getcrl), readBytes(t, crlNow); !bytes.Equal(got, want) {
		t.Error("SCEP GetCRL signed by a revoked certificate returned another CRL than the CDP")
	}
	r = run(t, runOpts{dir: dir}, e.Bin, "est", "reenroll", "--url", e.HTTPS, "--ca-fingerprint", e.RootFingerprint(),
		"--cert", certPath("a"), "--key", keyPath("a"), "--out", filepath.Join(dir, "a3.pem"))
	expectContains(t, "EST reenroll with a revoked certificate", expectFailed(t, r, "EST reenroll by a revoked certificate"), "revoked")

	// A hold: revoked (certificateHold) for relying parties, then lifted.
	serialC := serialHex(certs["c"].SerialNumber)
	e.cli(t, "certs", "revoke", serialC, "--reason", "certificateHold")
	waitCRL(t, cdp, crlFile, func(text string) bool { return strings.Contains(text, strings.ToUpper(serialC)) })
	ocspCheck("on hold", []string{"-cert", certPath("c"), "-no_nonce"}, ": revoked", "Reason: certificateHold")
	r = e.cli(t, "certs", "unhold", serialC)
	if r.err != nil {
		t.Fatalf("certs unhold:\n%s", r)
	}
	expectContains(t, "certs unhold", r.stdout, "valid again")
	waitCRL(t, cdp, crlFile, func(text string) bool { return !strings.Contains(text, strings.ToUpper(serialC)) })
	waitFor(t, "OCSP says good after the hold is lifted", func() bool {
		r := run(t, runOpts{quiet: true}, "openssl", "ocsp", "-issuer", issuerPEM, "-url", ocspURL, "-CAfile", e.CAFile("root.crt"),
			"-verify_other", e.CAFile("issuing.crt"), "-cert", certPath("c"), "-no_nonce")
		return strings.Contains(r.stdout, ": good")
	})
	expectFailed(t, e.cli(t, "certs", "unhold", serialA), "unhold of a certificate revoked for good")

	// The audit trail verifies; after an edit behind scepter's back it
	// names the record.
	r = e.cli(t, "audit", "verify")
	if r.err != nil {
		t.Fatalf("audit verify on an intact trail:\n%s", r)
	}
	expectContains(t, "audit verify", r.stdout, "OK:", "record(s) checked")
	list := e.cli(t, "audit", "list", "--serial", serialA)
	expectContains(t, "audit list --serial", list.stdout, "certificate.revoked", "certificate.issued", "cli:")
	e.Stop()
	id := tamperAuditOf(t, e.DataDir, serialA)
	r = e.cli(t, "audit", "verify")
	out := expectFailed(t, r, "audit verify after an edit")
	expectContains(t, "audit verify after an edit", r.stdout+out, fmt.Sprintf("record %d", id), "edited")
}

// tamperAudit edits the revocation event of a serial straight in the
// database, as someone with the file could, and returns its id.
func tamperAudit(t *testing.T, dbPath, serial string) int64 {
	t.Helper()
	// Opening through the store registers the driver and checks the file.
	st, err := sqlite.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	// A running server may be writing (its search indexer does so in the
	// background): wait as any other writer must.
	db, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id int64
	if err := db.QueryRow(`SELECT id FROM audit_events WHERE type = 'certificate.revoked' AND serial_hex = ?`, serial).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_events SET reason = 'superseded' WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	return id
}

// waitCRL fetches the CRL at url into file until `openssl crl -text` of it
// satisfies ok (the server regenerates within seconds of a revocation).
func waitCRL(t *testing.T, url, file string, ok func(text string) bool) {
	t.Helper()
	var last string
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, der, err := httpGet(url)
		if err == nil && code == 200 {
			writeFile(t, file, string(der))
			r := run(t, runOpts{quiet: true}, "openssl", "crl", "-inform", "DER", "-in", file, "-noout", "-text")
			if r.err == nil && ok(r.stdout) {
				return
			}
			last = r.stdout
		} else {
			last = fmt.Sprintf("HTTP %d, %v", code, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the CRL at %s did not change as expected within 15 s; last:\n%s", url, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !ok(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15 s", what)
		}
	}
}

func httpDo(t *testing.T, method, url string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/ocsp-request")
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func readBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	writeFile(t, path, string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})))
}
