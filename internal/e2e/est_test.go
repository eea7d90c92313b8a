package e2e

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/scepter/scepter/internal/pki"
)

// The EST tests drive the HTTPS listener of `scepter serve` with curl +
// openssl, strongSwan's `pki --est/--estca`, Go's net/http and our own
// `scepter est` client. Each test starts its own server, with its HTTPS
// listener on a port the kernel picks (--est-listen 127.0.0.1:0), read back
// from the "EST URL:" line the server prints.

// estServer is a running `scepter serve` with its EST listener.
type estServer struct {
	*Server
	// HTTPS is https://127.0.0.1:PORT and EST is HTTPS + "/.well-known/est".
	HTTPS, EST string
	// Config is the --config file ("" when none).
	Config string
}

type estOpts struct {
	config    string   // TOML text of a --config file; "" for none
	challenge string   // --challenge
	args      []string // more serve flags
	dataDir   string   // the data directory ("" for a fresh one)
	prepared  bool     // see serverOpts.prepared
	env       []string // see serverOpts.env
}

var estURLLine = regexp.MustCompile(`(?m)^EST URL:\s+(https://127\.0\.0\.1:(\d+))/\.well-known/est\s*$`)

// startEST starts a server with an EST listener on a free port and waits
// until /cacerts answers 200.
func startEST(t *testing.T, o estOpts) *estServer {
	t.Helper()
	args := []string{"--est-listen", "127.0.0.1:0"}
	var cfg string
	if o.config != "" {
		cfg = filepath.Join(t.TempDir(), "scepter.toml")
		writeFile(t, cfg, o.config)
		args = append(args, "--config", cfg)
	}
	args = append(args, o.args...)
	s := startServer(t, serverOpts{challenge: o.challenge, args: args, dataDir: o.dataDir, prepared: o.prepared, env: o.env})
	var m []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if m = estURLLine.FindStringSubmatch(s.Output()); m != nil || time.Now().After(deadline) {
			break
		}
	}
	if m == nil {
		t.Fatalf("the server did not print \"EST URL:            https://127.0.0.1:PORT/.well-known/est\":\n%s", s.Output())
	}
	if port, _ := strconv.Atoi(m[2]); port == 0 {
		t.Fatalf("the server printed EST port 0:\n%s", s.Output())
	}
	e := &estServer{Server: s, HTTPS: m[1], EST: m[1] + "/.well-known/est", Config: cfg}
	var last string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		r, err := e.try(estCall{method: http.MethodGet, path: "cacerts"})
		if err == nil && r.status == http.StatusOK {
			return e
		}
		last = fmt.Sprint(err)
		if err == nil {
			last = fmt.Sprintf("HTTP %d", r.status)
		}
	}
	t.Fatalf("GET %s/cacerts never answered 200 (last: %s)", e.EST, last)
	return nil
}

// addUser makes an EST user (password of at least 12 characters).
func (e *estServer) addUser(t *testing.T, name, password string, extra ...string) {
	t.Helper()
	pf := filepath.Join(t.TempDir(), name+".password")
	writeFile(t, pf, password+"\n")
	args := []string{"est", "user", "add", name, "--password-file", pf, "--data-dir", e.DataDir}
	if e.Config != "" {
		args = append(args, "--config", e.Config)
	}
	r := mustRun(t, runOpts{env: e.env}, e.Bin, append(args, extra...)...)
	expectContains(t, "est user add", r.stdout, name)
}

// cli runs a scepter subcommand that works on the server's store, with its
// --data-dir and --config.
func (e *estServer) cli(t *testing.T, args ...string) result {
	t.Helper()
	args = append(args, "--data-dir", e.DataDir)
	if e.Config != "" {
		args = append(args, "--config", e.Config)
	}
	return run(t, runOpts{env: e.env}, e.Bin, args...)
}

// verify is Server.Verify for the calling (sub)test: openssl verify against
// the root with the issuing CA as intermediate, and no CA:TRUE.
func (e *estServer) verify(t *testing.T, certPath string) *x509.Certificate {
	t.Helper()
	opensslVerify(t, e.CAFile("root.crt"), e.CAFile("issuing.crt"), certPath)
	c := readCert(t, certPath)
	if c.IsCA {
		t.Errorf("%s: issued certificate has CA:TRUE", certPath)
	}
	return c
}

// estCertRecord is the part of `certs list --json` these tests look at.
type estCertRecord struct {
	Serial      string `json:"serial"`
	Subject     string `json:"subject"`
	Status      string `json:"status"`
	Profile     string `json:"profile"`
	Protocol    string `json:"protocol"`
	RenewedFrom string `json:"renewed_from"`
}

// record returns c's entry of `certs list --json`, failing when it is absent.
func (e *estServer) record(t *testing.T, c *x509.Certificate) estCertRecord {
	t.Helper()
	r := e.cli(t, "certs", "list", "--json")
	if r.err != nil {
		t.Fatalf("certs list:\n%s", r)
	}
	var list []estCertRecord
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("certs list --json: %v\n%s", err, r.stdout)
	}
	for _, rec := range list {
		if normSerial(rec.Serial) == serialHex(c.SerialNumber) {
			return rec
		}
	}
	t.Fatalf("serial %s (%s) is not in `certs list --json`:\n%s", serialHex(c.SerialNumber), c.Subject, r.stdout)
	return estCertRecord{}
}

// expectESTRecord checks the inventory has c, issued by EST under profile,
// and that `certs show` says so too.
func (e *estServer) expectESTRecord(t *testing.T, c *x509.Certificate, profile string) estCertRecord {
	t.Helper()
	rec := e.record(t, c)
	if rec.Protocol != "est" {
		t.Errorf("certs list --json: serial %s has protocol %q, want est", rec.Serial, rec.Protocol)
	}
	if rec.Profile != profile {
		t.Errorf("certs list --json: serial %s has profile %q, want %q", rec.Serial, rec.Profile, profile)
	}
	show := e.cli(t, "certs", "show", serialHex(c.SerialNumber))
	if show.err != nil {
		t.Fatalf("certs show:\n%s", show)
	}
	if !regexp.MustCompile(`(?m)^Protocol:\s+est\s*$`).MatchString(show.stdout) {
		t.Errorf("certs show %s does not say \"Protocol: est\":\n%s", serialHex(c.SerialNumber), show.stdout)
	}
	return rec
}

// estCall is one HTTP request to the EST listener made with Go's net/http.
type estCall struct {
	method string
	path   string // after /.well-known/est/, e.g. "simpleenroll" or "mfg/simpleenroll"
	body   []byte
	user   string // HTTP Basic when user or pass is set
	pass   string
	cert   *tls.Certificate // TLS client certificate
	header map[string]string
	tlsMin uint16
	tlsMax uint16
}

// httpReply is what came back, from net/http or curl.
type httpReply struct {
	status   int
	header   http.Header
	body     []byte
	bodyPath string // curl: the file holding the body
	trace    string // curl: its -v output
}

func (r httpReply) String() string {
	return fmt.Sprintf("HTTP %d %v\n%s", r.status, r.header, truncateForLog(r.body))
}

func truncateForLog(b []byte) string {
	if len(b) > 400 {
		return string(b[:400]) + "…"
	}
	return string(b)
}

// try makes one request; it never fails the test.
func (e *estServer) try(c estCall) (httpReply, error) {
	pool := x509.NewCertPool()
	root, err := parseCertsFile(e.CAFile("root.crt"))
	if err != nil {
		return httpReply{}, err
	}
	pool.AddCert(root)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13}
	if c.tlsMin != 0 {
		cfg.MinVersion = c.tlsMin
	}
	if c.tlsMax != 0 {
		cfg.MaxVersion = c.tlsMax
	}
	if c.cert != nil {
		cert := c.cert
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, e.EST+"/"+c.path, body)
	if err != nil {
		return httpReply{}, err
	}
	if c.body != nil {
		req.Header.Set("Content-Type", "application/pkcs10")
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	if c.user != "" || c.pass != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := client.Do(req)
	if err != nil {
		return httpReply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return httpReply{}, err
	}
	return httpReply{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// call is try that fails the test when no HTTP answer comes back.
func (e *estServer) call(t *testing.T, c estCall) httpReply {
	t.Helper()
	r, err := e.try(c)
	if err != nil {
		t.Fatalf("%s %s/%s: %v", c.method, e.EST, c.path, err)
	}
	return r
}

// expectStatus fails unless r has the status; bodyHas are substrings the
// body must contain (case-insensitive).
func expectStatus(t *testing.T, what string, r httpReply, status int, bodyHas ...string) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: HTTP %d, want %d\n%s", what, r.status, status, r)
		return
	}
	if len(bodyHas) > 0 {
		expectContains(t, what+": reply body", string(r.body), bodyHas...)
	}
}

// enrollGo posts a CSR and returns the issued certificate from the
// certs-only reply, failing the test on anything but 200.
func (e *estServer) enrollGo(t *testing.T, what string, c estCall) *x509.Certificate {
	t.Helper()
	r := e.call(t, c)
	if r.status != http.StatusOK {
		t.Fatalf("%s: HTTP %d, want 200\n%s", what, r.status, r)
	}
	certs, err := certsOnlyBase64(r.body)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(certs) != 1 {
		t.Fatalf("%s: the certs-only reply holds %d certificates, want 1", what, len(certs))
	}
	return certs[0]
}

// certsOnlyBase64 decodes a base64 certs-only PKCS#7 (RFC 8951: any white
// space) and returns its certificates.
func certsOnlyBase64(body []byte) ([]*x509.Certificate, error) {
	clean := strings.Map(func(r rune) rune {
		if strings.ContainsRune(" \t\r\n", r) {
			return -1
		}
		return r
	}, string(body))
	der, err := base64.StdEncoding.DecodeString(clean)
	if err != nil {
		return nil, fmt.Errorf("the reply is not base64: %v", err)
	}
	return parseCertsOnly(der)
}

var (
	oidSignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	tagContext0   = cbasn1.Tag(0).Constructed().ContextSpecific()
)

// parseCertsOnly reads a degenerate SignedData (RFC 5652): ContentInfo
// {signedData, [0] SignedData {version, digestAlgorithms, encapContentInfo,
// [0] certificates, [1] crls, signerInfos (empty)}}.
func parseCertsOnly(der []byte) ([]*x509.Certificate, error) {
	s := cryptobyte.String(der)
	var ci, content, sd, certs, signerInfos cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !s.ReadASN1(&ci, cbasn1.SEQUENCE) || !s.Empty() {
		return nil, errors.New("certs-only: not one DER SEQUENCE")
	}
	if !ci.ReadASN1ObjectIdentifier(&oid) || !ci.ReadASN1(&content, tagContext0) || !content.ReadASN1(&sd, cbasn1.SEQUENCE) {
		return nil, errors.New("certs-only: not a ContentInfo")
	}
	if !oid.Equal(oidSignedData) {
		return nil, fmt.Errorf("certs-only: content type %v, want signedData", oid)
	}
	var hasCerts bool
	if !sd.SkipASN1(cbasn1.INTEGER) || !sd.SkipASN1(cbasn1.SET) || !sd.SkipASN1(cbasn1.SEQUENCE) ||
		!sd.ReadOptionalASN1(&certs, &hasCerts, tagContext0) ||
		!sd.SkipOptionalASN1(cbasn1.Tag(1).Constructed().ContextSpecific()) ||
		!sd.ReadASN1(&signerInfos, cbasn1.SET) {
		return nil, errors.New("certs-only: malformed SignedData")
	}
	if !signerInfos.Empty() {
		return nil, errors.New("certs-only: the SignedData has signers; a certs-only reply has none")
	}
	if !hasCerts {
		return nil, errors.New("certs-only: no certificates")
	}
	return x509.ParseCertificates(certs)
}

// dialTLS opens a TLS connection of exactly version to the EST listener
// and returns it with its channel binding (RFC 7030 §3.5): tls-unique on
// TLS 1.2, tls-exporter (RFC 9266) on TLS 1.3.
func (e *estServer) dialTLS(t *testing.T, version uint16) (*tls.Conn, []byte) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(readCert(t, e.CAFile("root.crt")))
	conn, err := tls.Dial("tcp", strings.TrimPrefix(e.HTTPS, "https://"), &tls.Config{RootCAs: pool, MinVersion: version, MaxVersion: version, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatalf("TLS to %s: %v", e.HTTPS, err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	cs := conn.ConnectionState()
	switch cs.Version {
	case tls.VersionTLS12:
		if len(cs.TLSUnique) == 0 {
			t.Fatal("TLS 1.2 connection without tls-unique")
		}
		return conn, cs.TLSUnique
	case tls.VersionTLS13:
		b, err := cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
		if err != nil {
			t.Fatal(err)
		}
		return conn, b
	}
	t.Fatalf("negotiated TLS version %#x", cs.Version)
	return nil, nil
}

// postOnConn sends one POST with HTTP Basic on an open TLS connection.
func (e *estServer) postOnConn(t *testing.T, conn *tls.Conn, path string, body []byte, user, pass string) httpReply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.EST+"/"+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/pkcs10")
	req.SetBasicAuth(user, pass)
	req.Close = true
	if err := req.Write(conn); err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return httpReply{status: resp.StatusCode, header: resp.Header, body: b}
}

// opensslCSRWithChallenge makes a P-256 CSR for CN=cn with openssl req,
// its challengePassword attribute set to challenge, and returns the DER.
func opensslCSRWithChallenge(t *testing.T, dir, cn, challenge string) []byte {
	t.Helper()
	cfg := filepath.Join(dir, cn+".cnf")
	writeFile(t, cfg, "[req]\nprompt = no\ndistinguished_name = dn\nattributes = attrs\n[dn]\nCN = "+cn+
		"\n[attrs]\nchallengePassword = "+challenge+"\n")
	out := filepath.Join(dir, cn+".der")
	mustRun(t, runOpts{dir: dir}, "openssl", "req", "-new", "-config", cfg, "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
		"-nodes", "-keyout", filepath.Join(dir, cn+".key"), "-outform", "DER", "-out", out)
	der, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// newP256 makes a P-256 key.
func newP256(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newCSR makes a DER PKCS#10 request for CN=cn with DNS SANs.
func newCSR(t testing.TB, key crypto.Signer, cn string, dns ...string) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: dns}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// b64 is a request body the way RFC 8951 allows and Go clients send it: no
// line breaks.
func b64(der []byte) []byte { return []byte(base64.StdEncoding.EncodeToString(der)) }

// b64Lines is base64 broken into 76-column CRLF lines (MIME style, what
// older EST clients send).
func b64Lines(der []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(der)
	var b bytes.Buffer
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	return b.Bytes()
}

// tlsPair is a certificate and its key as a TLS client certificate.
func tlsPair(c *x509.Certificate, key crypto.Signer) *tls.Certificate {
	return &tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: key, Leaf: c}
}

// makeCert signs tmpl with parent/parentKey (self-signed when parent is
// nil) for a new P-256 key.
func makeCert(t testing.TB, tmpl *x509.Certificate, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key := newP256(t)
	if tmpl.SerialNumber == nil {
		n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
		if err != nil {
			t.Fatal(err)
		}
		tmpl.SerialNumber = n.Add(n, big.NewInt(1))
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

func writeCertPEM(t testing.TB, path string, certs ...*x509.Certificate) {
	t.Helper()
	var b bytes.Buffer
	for _, c := range certs {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	writeFile(t, path, b.String())
}

// samePublicKey reports whether two public keys are equal.

var curlSeq atomic.Int64

// curl runs curl against the server (trusting its root, -v for the TLS
// details) and returns the final reply; the body lands in a file in dir.
func (e *estServer) curl(t *testing.T, dir string, args ...string) httpReply {
	t.Helper()
	n := curlSeq.Add(1)
	bodyPath := filepath.Join(dir, fmt.Sprintf("reply-%d.body", n))
	hdrPath := filepath.Join(dir, fmt.Sprintf("reply-%d.headers", n))
	full := append([]string{"-sS", "-v", "--max-time", "30", "--cacert", e.CAFile("root.crt"),
		"-o", bodyPath, "-D", hdrPath, "-w", "%{http_code}"}, args...)
	r := run(t, runOpts{dir: dir}, "curl", full...)
	if r.err != nil {
		t.Fatalf("curl failed:\n%s", r)
	}
	status, err := strconv.Atoi(strings.TrimSpace(r.stdout))
	if err != nil {
		t.Fatalf("curl -w %%{http_code} printed %q", r.stdout)
	}
	hb, err := os.ReadFile(hdrPath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := os.ReadFile(bodyPath)
	return httpReply{status: status, header: lastHeaderBlock(hb), body: body, bodyPath: bodyPath, trace: r.stderr}
}

// lastHeaderBlock parses the last header block of a curl -D dump (after
// any 100 Continue).
func lastHeaderBlock(dump []byte) http.Header {
	var last string
	for _, blk := range strings.Split(strings.ReplaceAll(string(dump), "\r\n", "\n"), "\n\n") {
		if strings.TrimSpace(blk) != "" {
			last = blk
		}
	}
	h := http.Header{}
	lines := strings.Split(strings.TrimSpace(last), "\n")
	for _, l := range lines[1:] {
		if k, v, ok := strings.Cut(l, ":"); ok {
			h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	return h
}

// opensslCertsOnly decodes a base64 certs-only body the shell way
// (base64 -d | openssl pkcs7 -print_certs) into a PEM file and returns it.
func opensslCertsOnly(t *testing.T, dir, bodyPath, outName string) string {
	t.Helper()
	out := filepath.Join(dir, outName)
	mustRun(t, runOpts{dir: dir}, "sh", "-c", `base64 -d < "$1" | openssl pkcs7 -inform DER -print_certs -out "$2"`, "sh", bodyPath, out)
	return out
}

// opensslCSR makes a key and a DER CSR with openssl req: keyType "rsa2048"
// or "p256", or "" to reuse an existing key at keyPath.
func opensslCSR(t *testing.T, dir, keyType, keyPath, cn, dns string) string {
	t.Helper()
	csrPath := filepath.Join(dir, fmt.Sprintf("req-%d.der", curlSeq.Add(1)))
	args := []string{"req", "-new", "-subj", "/CN=" + cn, "-addext", "subjectAltName=DNS:" + dns, "-outform", "DER", "-out", csrPath}
	switch keyType {
	case "rsa2048":
		args = append(args, "-newkey", "rsa:2048", "-nodes", "-keyout", keyPath)
	case "p256":
		args = append(args, "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", keyPath)
	case "":
		args = append(args, "-key", keyPath)
	default:
		t.Fatalf("opensslCSR: key type %q", keyType)
	}
	mustRun(t, runOpts{dir: dir}, "openssl", args...)
	return csrPath
}

// opensslSameKey checks with openssl that the certificate carries the key
// (openssl pkey -pubout against openssl x509 -pubkey).
func opensslSameKey(t *testing.T, certPath, keyPath string) {
	t.Helper()
	a := mustRun(t, runOpts{}, "openssl", "pkey", "-in", keyPath, "-pubout")
	b := mustRun(t, runOpts{}, "openssl", "x509", "-in", certPath, "-pubkey", "-noout")
	if strings.TrimSpace(a.stdout) == "" || strings.TrimSpace(a.stdout) != strings.TrimSpace(b.stdout) {
		t.Errorf("openssl: the public key of %s is not the one in %s:\n%s\n%s", keyPath, certPath, a.stdout, b.stdout)
	}
}

// ---------------------------------------------------------------------------

const estCurlConfig = `
[profiles.renewnow]
renewal_window = "100%"

[profiles.keygen]
est_server_keygen = true
`

// TestESTCurlOpenSSL: curl + openssl as a plain RFC 7030 client, over TLS
// 1.2 and over TLS 1.3: /cacerts (headers, the chain), /csrattrs,
// simpleenroll with line-broken base64 (RSA-2048 and P-256), simplereenroll
// with the certificate as TLS client certificate (same key, new key; and
// the refusals: no client certificate, the window not open, another
// profile), and serverkeygen (multipart reply, PKCS#8 key matching the
// certificate).
func TestESTCurlOpenSSL(t *testing.T) {
	t.Parallel()
	need(t, "curl", "openssl", "base64", "sh")
	e := startEST(t, estOpts{prepared: true, config: estCurlConfig})
	const user, pass = "curl-user", "curl-password-0123"
	e.addUser(t, user, pass)
	root := readCert(t, e.CAFile("root.crt"))
	issuing := readCert(t, e.CAFile("issuing.crt"))

	for _, v := range []struct {
		name  string
		flags []string
		trace string
	}{
		{"tls1.2", []string{"--tlsv1.2", "--tls-max", "1.2"}, "SSL connection using TLSv1.2"},
		{"tls1.3", []string{"--tlsv1.3"}, "SSL connection using TLSv1.3"},
	} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			curl := func(t *testing.T, args ...string) httpReply {
				t.Helper()
				r := e.curl(t, dir, append(append([]string{}, v.flags...), args...)...)
				if !strings.Contains(r.trace, v.trace) {
					t.Errorf("curl did not report %q:\n%s", v.trace, r.trace)
				}
				return r
			}
			post := func(t *testing.T, path string, body []byte, args ...string) httpReply {
				t.Helper()
				bodyPath := filepath.Join(dir, fmt.Sprintf("post-%d.b64", curlSeq.Add(1)))
				writeFile(t, bodyPath, string(body))
				return curl(t, append([]string{"--data-binary", "@" + bodyPath,
					"-H", "Content-Type: application/pkcs10", "-H", "Content-Transfer-Encoding: base64",
					e.EST + "/" + path}, args...)...)
			}
			readDER := func(t *testing.T, path string) []byte {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			basic := []string{"-u", user + ":" + pass}

			t.Run("cacerts", func(t *testing.T) {
				r := curl(t, e.EST+"/cacerts")
				if r.status != http.StatusOK {
					t.Fatalf("GET cacerts: %s", r)
				}
				if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/pkcs7-mime") {
					t.Errorf("cacerts Content-Type = %q, want application/pkcs7-mime", ct)
				}
				if cte := r.header.Get("Content-Transfer-Encoding"); !strings.EqualFold(cte, "base64") {
					t.Errorf("cacerts Content-Transfer-Encoding = %q, want base64", cte)
				}
				if cl := r.header.Get("Content-Length"); cl != strconv.Itoa(len(r.body)) {
					t.Errorf("cacerts Content-Length = %q, body is %d bytes (strongSwan needs a Content-Length)", cl, len(r.body))
				}
				if te := r.header.Get("Transfer-Encoding"); te != "" {
					t.Errorf("cacerts sent Transfer-Encoding %q; strongSwan reads no chunked body", te)
				}
				certs := readCerts(t, opensslCertsOnly(t, dir, r.bodyPath, "cacerts.pem"))
				var hasRoot, hasIssuing bool
				for _, c := range certs {
					hasRoot = hasRoot || bytes.Equal(c.Raw, root.Raw)
					hasIssuing = hasIssuing || bytes.Equal(c.Raw, issuing.Raw)
				}
				if !hasRoot || !hasIssuing {
					t.Errorf("cacerts holds %d certificates; root in it: %v, issuing CA in it: %v", len(certs), hasRoot, hasIssuing)
				}
			})

			t.Run("csrattrs", func(t *testing.T) {
				r := curl(t, e.EST+"/csrattrs")
				if r.status != http.StatusOK {
					t.Fatalf("GET csrattrs: %s", r)
				}
				if ct := r.header.Get("Content-Type"); ct != "application/csrattrs" {
					t.Errorf("csrattrs Content-Type = %q, want application/csrattrs", ct)
				}
				p := mustRun(t, runOpts{dir: dir}, "sh", "-c", `base64 -d < "$1" | openssl asn1parse -inform DER`, "sh", r.bodyPath)
				// The default profile takes EC (P-256, P-384) and RSA keys.
				expectContains(t, "openssl asn1parse of csrattrs", p.stdout, "SEQUENCE", "id-ecPublicKey", "prime256v1", "rsaEncryption")
			})

			t.Run("simpleenroll-and-reenroll", func(t *testing.T) {
				// RSA-2048 at the default profile.
				rsaKey := filepath.Join(dir, "rsa.key")
				cnRSA := "curl-rsa-" + v.name
				csr := opensslCSR(t, dir, "rsa2048", rsaKey, cnRSA, cnRSA+".example")
				r := post(t, "simpleenroll", b64Lines(readDER(t, csr)), basic...)
				if r.status != http.StatusOK {
					t.Fatalf("simpleenroll (RSA-2048, line-broken base64): %s", r)
				}
				if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/pkcs7-mime") || !strings.Contains(ct, "certs-only") {
					t.Errorf("simpleenroll Content-Type = %q, want application/pkcs7-mime; smime-type=certs-only", ct)
				}
				rsaCertPath := opensslCertsOnly(t, dir, r.bodyPath, "rsa.pem")
				rsaCert := e.verify(t, rsaCertPath)
				expectKeyMatches(t, rsaCert, rsaKey)
				if rsaCert.Subject.CommonName != cnRSA || len(rsaCert.DNSNames) != 1 || rsaCert.DNSNames[0] != cnRSA+".example" {
					t.Errorf("issued %s %v, want CN=%s [%s.example]", rsaCert.Subject, rsaCert.DNSNames, cnRSA, cnRSA)
				}
				if got := keyDesc(rsaCert.PublicKey); got != "rsa2048" {
					t.Errorf("certificate key %s, want rsa2048", got)
				}
				e.expectESTRecord(t, rsaCert, "default")

				// P-256 at the renewnow profile (renewal allowed at once).
				ecKey := filepath.Join(dir, "ec.key")
				cnEC := "curl-ec-" + v.name
				csr = opensslCSR(t, dir, "p256", ecKey, cnEC, cnEC+".example")
				r = post(t, "renewnow/simpleenroll", b64Lines(readDER(t, csr)), basic...)
				if r.status != http.StatusOK {
					t.Fatalf("simpleenroll (P-256) at renewnow: %s", r)
				}
				ecCertPath := opensslCertsOnly(t, dir, r.bodyPath, "ec.pem")
				ecCert := e.verify(t, ecCertPath)
				expectKeyMatches(t, ecCert, ecKey)
				if ecCert.Subject.CommonName != cnEC || keyDesc(ecCert.PublicKey) != "p256" {
					t.Errorf("issued %s with a %s key, want CN=%s, p256", ecCert.Subject, keyDesc(ecCert.PublicKey), cnEC)
				}
				e.expectESTRecord(t, ecCert, "renewnow")

				// simplereenroll with the certificate as TLS client
				// certificate, the same key.
				csr = opensslCSR(t, dir, "", ecKey, cnEC, cnEC+".example")
				r = post(t, "renewnow/simplereenroll", b64Lines(readDER(t, csr)), "--cert", ecCertPath, "--key", ecKey)
				if r.status != http.StatusOK {
					t.Fatalf("simplereenroll, same key: %s", r)
				}
				sameKeyPath := opensslCertsOnly(t, dir, r.bodyPath, "ec-renewed.pem")
				sameKey := e.verify(t, sameKeyPath)
				expectKeyMatches(t, sameKey, ecKey)
				if sameKey.Subject.String() != ecCert.Subject.String() || sameKey.SerialNumber.Cmp(ecCert.SerialNumber) == 0 {
					t.Errorf("re-enrolled %s serial %s; want the subject %s under a new serial", sameKey.Subject, serialHex(sameKey.SerialNumber), ecCert.Subject)
				}
				if rec := e.expectESTRecord(t, sameKey, "renewnow"); !strings.Contains(normSerial(strings.ReplaceAll(rec.RenewedFrom, ":", "")), serialHex(ecCert.SerialNumber)) {
					t.Errorf("certs list: renewed_from = %q, want it to name serial %s", rec.RenewedFrom, serialHex(ecCert.SerialNumber))
				}

				// A new key, authenticated by the renewed certificate.
				newKey := filepath.Join(dir, "ec2.key")
				csr = opensslCSR(t, dir, "p256", newKey, cnEC, cnEC+".example")
				r = post(t, "renewnow/simplereenroll", b64Lines(readDER(t, csr)), "--cert", sameKeyPath, "--key", ecKey)
				if r.status != http.StatusOK {
					t.Fatalf("simplereenroll, new key: %s", r)
				}
				rekeyed := e.verify(t, opensslCertsOnly(t, dir, r.bodyPath, "ec-rekeyed.pem"))
				expectKeyMatches(t, rekeyed, newKey)
				if rekeyed.Subject.String() != ecCert.Subject.String() {
					t.Errorf("re-keyed certificate has subject %s, want %s", rekeyed.Subject, ecCert.Subject)
				}
				e.expectESTRecord(t, rekeyed, "renewnow")

				// Refusals. No client certificate (Basic is no substitute): 403.
				r = post(t, "renewnow/simplereenroll", b64Lines(readDER(t, csr)), basic...)
				expectStatus(t, "simplereenroll without a client certificate", r, http.StatusForbidden, "client certificate")
				// The default profile's renewal window (last third) is not open.
				csr = opensslCSR(t, dir, "", rsaKey, cnRSA, cnRSA+".example")
				r = post(t, "simplereenroll", b64Lines(readDER(t, csr)), "--cert", rsaCertPath, "--key", rsaKey)
				expectStatus(t, "simplereenroll before the renewal window opens", r, http.StatusForbidden, "renewal")
				// A certificate renews under the profile that issued it.
				r = post(t, "renewnow/simplereenroll", b64Lines(readDER(t, csr)), "--cert", rsaCertPath, "--key", rsaKey)
				expectStatus(t, "simplereenroll at another profile than the certificate's", r, http.StatusForbidden, "profile")
			})

			t.Run("serverkeygen", func(t *testing.T) {
				csrKey := filepath.Join(dir, "keygen-csr.key")
				cn := "curl-keygen-" + v.name
				csr := opensslCSR(t, dir, "p256", csrKey, cn, cn+".example")
				r := post(t, "keygen/serverkeygen", b64Lines(readDER(t, csr)), basic...)
				if r.status != http.StatusOK {
					t.Fatalf("serverkeygen: %s", r)
				}
				if cl := r.header.Get("Content-Length"); cl != strconv.Itoa(len(r.body)) {
					t.Errorf("serverkeygen Content-Length = %q, body is %d bytes", cl, len(r.body))
				}
				keyDER, certsOnly := parseServerKeyGenMultipart(t, r.header.Get("Content-Type"), r.body)
				keyPath := filepath.Join(dir, "keygen.key")
				writeFile(t, keyPath, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
				certB64 := filepath.Join(dir, "keygen-cert.b64")
				writeFile(t, certB64, string(b64(certsOnly)))
				certPath := opensslCertsOnly(t, dir, certB64, "keygen.pem")
				c := e.verify(t, certPath)
				opensslSameKey(t, certPath, keyPath)
				expectKeyMatches(t, c, keyPath)
				if pki.SamePublicKey(readKey(t, csrKey).Public(), c.PublicKey) {
					t.Errorf("serverkeygen certified the CSR's own key; the server must make a new one")
				}
				if c.Subject.CommonName != cn || len(c.DNSNames) != 1 || c.DNSNames[0] != cn+".example" {
					t.Errorf("serverkeygen issued %s %v, want CN=%s [%s.example]", c.Subject, c.DNSNames, cn, cn)
				}
				e.expectESTRecord(t, c, "keygen")
				// The default profile does not make keys.
				r = post(t, "serverkeygen", b64Lines(readDER(t, csr)), basic...)
				expectStatus(t, "serverkeygen at a profile without est_server_keygen", r, http.StatusForbidden, "key generation")
			})
		})
	}
}

// parseServerKeyGenMultipart reads a serverkeygen reply (RFC 7030 §4.4.2)
// with mime/multipart: an application/pkcs8 part and an
// application/pkcs7-mime certs-only part, both base64. It returns the
// decoded PKCS#8 key and certs-only SignedData.
func parseServerKeyGenMultipart(t *testing.T, contentType string, body []byte) (pkcs8, certsOnly []byte) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		t.Fatalf("serverkeygen Content-Type = %q, want multipart/mixed with a boundary", contentType)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("serverkeygen multipart: %v\n%s", err, truncateForLog(body))
		}
		raw, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		if cte := p.Header.Get("Content-Transfer-Encoding"); !strings.EqualFold(cte, "base64") {
			t.Errorf("serverkeygen part %q has Content-Transfer-Encoding %q, want base64", p.Header.Get("Content-Type"), cte)
		}
		der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(raw)), ""))
		if err != nil {
			t.Fatalf("serverkeygen part %q is not base64: %v", p.Header.Get("Content-Type"), err)
		}
		pt, pp, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch {
		case pt == "application/pkcs8":
			pkcs8 = der
		case pt == "application/pkcs7-mime" && strings.EqualFold(pp["smime-type"], "certs-only"):
			certsOnly = der
		default:
			t.Errorf("serverkeygen: unexpected part %q", p.Header.Get("Content-Type"))
		}
	}
	if pkcs8 == nil || certsOnly == nil {
		t.Fatalf("serverkeygen reply lacks the application/pkcs8 part (%v) or the certs-only part (%v)", pkcs8 != nil, certsOnly != nil)
	}
	if _, err := x509.ParsePKCS8PrivateKey(pkcs8); err != nil {
		t.Fatalf("serverkeygen key part is not PKCS#8: %v", err)
	}
	return pkcs8, certsOnly
}

// ---------------------------------------------------------------------------

const estAuthConfig = `
[profiles.renewnow]
renewal_window = "100%"

[profiles.mfg]
est_manufacturer_auth = true

[profiles.short]
validity = "2s"
renewal_window = "100%"

[profiles.grace]
validity = "2s"
renewal_window = "100%"
renewal_grace = "1h"

[profiles.newkey]
renewal_window = "100%"
allow_key_reuse = false

[profiles.supersede]
renewal_window = "100%"
revoke_superseded = true

[profiles.cb]
est_require_channel_binding = true
`

// TestESTAuthMatrix: who may enroll, over real HTTPS with Go's net/http: no
// credentials, wrong and right Basic passwords, a user bound to another
// profile, one-time challenges (once), our certificate on re-enrollment
// (and not on a first enrollment), manufacturer certificates at a profile
// that accepts them and at one that does not, and on re-enrollment an
// expired, a revoked (superseded) and a foreign certificate.
func TestESTAuthMatrix(t *testing.T) {
	t.Parallel()
	// A manufacturer CA and a device certificate (IDevID) it issued.
	mfgDir := t.TempDir()
	now := time.Now()
	mfgRoot, mfgRootKey := makeCert(t, &x509.Certificate{
		Subject:   pkix.Name{Organization: []string{"Acme Devices"}, CommonName: "Acme Manufacturer Root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, nil)
	mfgRootPath := filepath.Join(mfgDir, "mfg-root.pem")
	writeCertPEM(t, mfgRootPath, mfgRoot)
	device, deviceKey := makeCert(t, &x509.Certificate{
		Subject:   pkix.Name{Organization: []string{"Acme Devices"}, CommonName: "device-SN0001", SerialNumber: "SN0001"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, mfgRoot, mfgRootKey)
	deviceTLS := tlsPair(device, deviceKey)
	// A device certificate under a manufacturer intermediate CA, which the
	// device sends along in TLS; and an expired device certificate.
	mfgInter, mfgInterKey := makeCert(t, &x509.Certificate{
		Subject:   pkix.Name{Organization: []string{"Acme Devices"}, CommonName: "Acme Manufacturer Issuing CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, mfgRoot, mfgRootKey)
	device2, device2Key := makeCert(t, &x509.Certificate{
		Subject:   pkix.Name{Organization: []string{"Acme Devices"}, CommonName: "device-SN0002"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, mfgInter, mfgInterKey)
	device2TLS := &tls.Certificate{Certificate: [][]byte{device2.Raw, mfgInter.Raw}, PrivateKey: device2Key, Leaf: device2}
	oldDevice, oldDeviceKey := makeCert(t, &x509.Certificate{
		Subject:   pkix.Name{Organization: []string{"Acme Devices"}, CommonName: "device-SN0003"},
		NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, mfgRoot, mfgRootKey)

	e := startEST(t, estOpts{prepared: true, config: estAuthConfig, challenge: "auth-static-challenge", args: []string{"--est-client-ca-file", mfgRootPath}})
	const user, pass = "auth-user", "auth-password-0123"
	e.addUser(t, user, pass)
	e.addUser(t, "bound-user", "bound-password-0123", "--profile", "renewnow")

	enrollCall := func(t *testing.T, path, cn string, key crypto.Signer) estCall {
		return estCall{method: http.MethodPost, path: path, body: b64(newCSR(t, key, cn, cn+".example"))}
	}

	// The short-lived certificate is issued first; its expiry is checked last.
	shortKey := newP256(t)
	c := enrollCall(t, "short/simpleenroll", "auth-short", shortKey)
	c.user, c.pass = user, pass
	short := e.enrollGo(t, "simpleenroll at the 2-second profile", c)
	if life := short.NotAfter.Sub(time.Now()); life > 10*time.Second {
		t.Fatalf("validity = \"2s\" issued a certificate valid until %s (%v from now)", short.NotAfter, life)
	}
	graceKey := newP256(t)
	c = enrollCall(t, "grace/simpleenroll", "auth-grace", graceKey)
	c.user, c.pass = user, pass
	graced := e.enrollGo(t, "simpleenroll at the 2-second profile with a renewal grace", c)

	t.Run("no-credentials", func(t *testing.T) {
		r := e.call(t, enrollCall(t, "simpleenroll", "auth-none", newP256(t)))
		expectStatus(t, "simpleenroll without credentials", r, http.StatusUnauthorized)
		if wa := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(wa, "Basic ") || !strings.Contains(wa, "realm=") {
			t.Errorf("401 WWW-Authenticate = %q, want Basic realm=…", wa)
		}
	})

	t.Run("wrong-password", func(t *testing.T) {
		c := enrollCall(t, "simpleenroll", "auth-wrong", newP256(t))
		c.user, c.pass = user, "not-the-password-0123"
		r := e.call(t, c)
		expectStatus(t, "simpleenroll with a wrong password", r, http.StatusUnauthorized)
		if r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("401 without WWW-Authenticate")
		}
		c.user = "no-such-user"
		expectStatus(t, "simpleenroll as an unknown user", e.call(t, c), http.StatusUnauthorized)
	})

	t.Run("right-password", func(t *testing.T) {
		key := newP256(t)
		c := enrollCall(t, "simpleenroll", "auth-right", key)
		c.user, c.pass = user, pass
		cert := e.enrollGo(t, "simpleenroll with an EST user", c)
		if !pki.SamePublicKey(cert.PublicKey, key.Public()) || cert.Subject.CommonName != "auth-right" {
			t.Errorf("issued %s for another key or name", cert.Subject)
		}
		e.expectESTRecord(t, cert, "default")
	})

	t.Run("user-bound-to-another-profile", func(t *testing.T) {
		c := enrollCall(t, "simpleenroll", "auth-bound", newP256(t))
		c.user, c.pass = "bound-user", "bound-password-0123"
		expectStatus(t, "a user bound to renewnow at the default profile (the right password: a policy refusal)", e.call(t, c), http.StatusForbidden)
		c.path = "renewnow/simpleenroll"
		e.enrollGo(t, "a user bound to renewnow at renewnow", c)
	})

	t.Run("removed-user", func(t *testing.T) {
		e.addUser(t, "gone-user", "gone-password-0123")
		c := enrollCall(t, "simpleenroll", "auth-gone", newP256(t))
		c.user, c.pass = "gone-user", "gone-password-0123"
		e.enrollGo(t, "simpleenroll before the user is removed", c)
		if r := e.cli(t, "est", "user", "remove", "gone-user"); r.err != nil {
			t.Fatalf("est user remove:\n%s", r)
		}
		c = enrollCall(t, "simpleenroll", "auth-gone-2", newP256(t))
		c.user, c.pass = "gone-user", "gone-password-0123"
		expectStatus(t, "simpleenroll as a removed user", e.call(t, c), http.StatusUnauthorized)
		// Passwords shorter than 12 characters are refused.
		pf := filepath.Join(t.TempDir(), "short")
		writeFile(t, pf, "short-pw\n")
		expectFailed(t, e.cli(t, "est", "user", "add", "short-user", "--password-file", pf), "est user add with an 8-character password")
	})

	t.Run("static-challenge", func(t *testing.T) {
		// The static challenge works as a Basic password at the default
		// profile (challenge mode "any"), and more than once.
		for _, cn := range []string{"auth-static-1", "auth-static-2"} {
			c := enrollCall(t, "simpleenroll", cn, newP256(t))
			c.user, c.pass = "whoever", e.Challenge
			e.enrollGo(t, "simpleenroll with the static challenge as Basic password", c)
		}
	})

	t.Run("one-time-challenge", func(t *testing.T) {
		r := e.cli(t, "challenge", "new")
		if r.err != nil {
			t.Fatalf("challenge new:\n%s", r)
		}
		secret := strings.TrimSpace(r.stdout)
		if secret == "" || strings.Contains(secret, "\n") {
			t.Fatalf("challenge new printed %q, want the secret alone", r.stdout)
		}
		c := enrollCall(t, "simpleenroll", "auth-otp-1", newP256(t))
		c.user, c.pass = "any-name", secret
		e.enrollGo(t, "simpleenroll with a one-time challenge as Basic password", c)
		c = enrollCall(t, "simpleenroll", "auth-otp-2", newP256(t))
		c.user, c.pass = "any-name", secret
		// Refused saying it was used (403), not as a wrong password.
		expectStatus(t, "the same one-time challenge a second time", e.call(t, c), http.StatusForbidden, "used already")
		// Racing for one challenge: exactly one of several parallel
		// requests gets a certificate.
		r = e.cli(t, "challenge", "new")
		if r.err != nil {
			t.Fatalf("challenge new:\n%s", r)
		}
		raced := strings.TrimSpace(r.stdout)
		const racers = 6
		calls := make([]estCall, racers)
		for i := range calls {
			calls[i] = enrollCall(t, "simpleenroll", fmt.Sprintf("auth-otp-race-%d", i), newP256(t))
			calls[i].user, calls[i].pass = "racer", raced
		}
		statuses := make([]int, racers)
		var wg sync.WaitGroup
		for i := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if r, err := e.try(calls[i]); err == nil {
					statuses[i] = r.status
				}
			}()
		}
		wg.Wait()
		ok := 0
		for _, st := range statuses {
			switch st {
			case http.StatusOK:
				ok++
			case http.StatusForbidden: // used already
			default:
				t.Errorf("a racer for one one-time challenge got HTTP %d (all: %v)", st, statuses)
			}
		}
		if ok != 1 {
			t.Errorf("%d of %d parallel requests with one one-time challenge got a certificate, want exactly 1 (statuses %v)", ok, racers, statuses)
		}
		// A challenge restricted to one profile works only there.
		r = e.cli(t, "challenge", "new", "--profile", "renewnow")
		if r.err != nil {
			t.Fatalf("challenge new --profile renewnow:\n%s", r)
		}
		bound := strings.TrimSpace(r.stdout)
		c = enrollCall(t, "simpleenroll", "auth-otp-3", newP256(t))
		c.user, c.pass = "any-name", bound
		// Refused with its reason (403 "bound to another profile"), as
		// SCEP's badRequest, and not used up.
		expectStatus(t, "a one-time challenge for renewnow at the default profile", e.call(t, c), http.StatusForbidden)
		c.path = "renewnow/simpleenroll"
		e.enrollGo(t, "a one-time challenge for renewnow at renewnow", c)
	})

	t.Run("our-certificate", func(t *testing.T) {
		key := newP256(t)
		c := enrollCall(t, "renewnow/simpleenroll", "auth-renew", key)
		c.user, c.pass = user, pass
		old := e.enrollGo(t, "simpleenroll at renewnow", c)
		// It renews...
		c = enrollCall(t, "renewnow/simplereenroll", "auth-renew", key)
		c.cert = tlsPair(old, key)
		renewed := e.enrollGo(t, "simplereenroll with our certificate", c)
		if renewed.Subject.String() != old.Subject.String() {
			t.Errorf("renewed %s, want %s", renewed.Subject, old.Subject)
		}
		// ...keeping its names: another subject or SAN is refused.
		c = enrollCall(t, "renewnow/simplereenroll", "auth-renamed", key)
		c.cert = tlsPair(renewed, key)
		expectStatus(t, "simplereenroll with another subject", e.call(t, c), http.StatusForbidden, "subject")
		c = estCall{method: http.MethodPost, path: "renewnow/simplereenroll", body: b64(newCSR(t, key, "auth-renew", "other.example")), cert: tlsPair(renewed, key)}
		expectStatus(t, "simplereenroll with another SAN", e.call(t, c), http.StatusForbidden, "alternative names")
		// A profile that wants a new key on renewal refuses the old one.
		nkKey := newP256(t)
		c = enrollCall(t, "newkey/simpleenroll", "auth-newkey", nkKey)
		c.user, c.pass = user, pass
		nk := e.enrollGo(t, "simpleenroll at newkey", c)
		c = enrollCall(t, "newkey/simplereenroll", "auth-newkey", nkKey)
		c.cert = tlsPair(nk, nkKey)
		expectStatus(t, "simplereenroll with the same key at allow_key_reuse = false", e.call(t, c), http.StatusForbidden, "new key")
		c = enrollCall(t, "newkey/simplereenroll", "auth-newkey", newP256(t))
		c.cert = tlsPair(nk, nkKey)
		e.enrollGo(t, "simplereenroll with a new key at allow_key_reuse = false", c)
		// ...but buys no first enrollment of another name.
		c = enrollCall(t, "renewnow/simpleenroll", "auth-second-identity", newP256(t))
		c.cert = tlsPair(old, key)
		expectStatus(t, "simpleenroll with only a certificate of ours", e.call(t, c), http.StatusUnauthorized, "simplereenroll")
	})

	t.Run("manufacturer-certificate", func(t *testing.T) {
		key := newP256(t)
		c := enrollCall(t, "mfg/simpleenroll", "device-SN0001", key)
		c.cert = deviceTLS
		cert := e.enrollGo(t, "simpleenroll with a manufacturer certificate at an est_manufacturer_auth profile", c)
		if !pki.SamePublicKey(cert.PublicKey, key.Public()) {
			t.Errorf("the certificate does not carry the CSR's key")
		}
		certPath := filepath.Join(t.TempDir(), "ldevid.pem")
		writeCertPEM(t, certPath, cert)
		e.verify(t, certPath)
		e.expectESTRecord(t, cert, "mfg")
		for _, path := range []string{"renewnow/simpleenroll", "simpleenroll"} {
			c := enrollCall(t, path, "device-SN0001", newP256(t))
			c.cert = deviceTLS
			expectStatus(t, "a manufacturer certificate at "+path+" (no est_manufacturer_auth)", e.call(t, c), http.StatusUnauthorized)
		}
		// Through a manufacturer intermediate the device sends along.
		c = enrollCall(t, "mfg/simpleenroll", "device-SN0002", newP256(t))
		c.cert = device2TLS
		e.enrollGo(t, "simpleenroll with a device certificate under a manufacturer intermediate", c)
		// An expired manufacturer certificate.
		c = enrollCall(t, "mfg/simpleenroll", "device-SN0003", newP256(t))
		c.cert = tlsPair(oldDevice, oldDeviceKey)
		if r := e.call(t, c); r.status != http.StatusForbidden && r.status != http.StatusUnauthorized {
			t.Errorf("simpleenroll with an expired manufacturer certificate: HTTP %d, want 403 (or 401)\n%s", r.status, r)
		} else {
			expectContains(t, "refusal of an expired manufacturer certificate", string(r.body), "expired")
		}
		// A manufacturer certificate renews nothing.
		c = enrollCall(t, "mfg/simplereenroll", "device-SN0001", newP256(t))
		c.cert = deviceTLS
		expectStatus(t, "simplereenroll with a manufacturer certificate", e.call(t, c), http.StatusUnauthorized)
	})

	t.Run("revoked-certificate", func(t *testing.T) {
		// revoke_superseded: renewing revokes the old certificate, the one
		// way to revoke from outside (there is no `certs revoke`).
		key := newP256(t)
		c := enrollCall(t, "supersede/simpleenroll", "auth-revoked", key)
		c.user, c.pass = user, pass
		old := e.enrollGo(t, "simpleenroll at supersede", c)
		c = enrollCall(t, "supersede/simplereenroll", "auth-revoked", key)
		c.cert = tlsPair(old, key)
		renewed := e.enrollGo(t, "simplereenroll at supersede", c)
		if rec := e.record(t, old); rec.Status != "revoked" {
			t.Fatalf("the superseded certificate has status %q, want revoked", rec.Status)
		}
		// The same request again (its answer lost) gets the certificate
		// already issued for its key, not a second one.
		if again := e.enrollGo(t, "the same simplereenroll again", c); !again.Equal(renewed) {
			t.Errorf("the same re-enrollment again got serial %s, want the renewal's %s", again.SerialNumber.Text(16), renewed.SerialNumber.Text(16))
		}
		// A new request with the revoked certificate is refused.
		c = enrollCall(t, "supersede/simplereenroll", "auth-revoked", newP256(t))
		c.cert = tlsPair(old, key)
		r := e.call(t, c)
		if r.status != http.StatusUnauthorized && r.status != http.StatusForbidden {
			t.Errorf("simplereenroll with a revoked certificate: HTTP %d, want 401 or 403\n%s", r.status, r)
		} else {
			expectContains(t, "refusal of a revoked certificate", string(r.body), "revoked")
		}
		// The new certificate still renews.
		c = enrollCall(t, "supersede/simplereenroll", "auth-revoked", key)
		c.cert = tlsPair(renewed, key)
		e.enrollGo(t, "simplereenroll with the superseding certificate", c)
	})

	t.Run("foreign-certificate", func(t *testing.T) {
		self, selfKey := makeCert(t, &x509.Certificate{
			Subject: pkix.Name{CommonName: "auth-foreign"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}, nil, nil)
		c := enrollCall(t, "renewnow/simplereenroll", "auth-foreign", selfKey)
		c.cert = tlsPair(self, selfKey)
		expectStatus(t, "simplereenroll with a self-signed certificate", e.call(t, c), http.StatusUnauthorized)
		c.path = "simplereenroll"
		expectStatus(t, "simplereenroll with a self-signed certificate (default profile)", e.call(t, c), http.StatusUnauthorized)
	})

	t.Run("channel-binding", func(t *testing.T) {
		need(t, "openssl")
		csrattrs := e.call(t, estCall{method: http.MethodGet, path: "cb/csrattrs"})
		if csrattrs.status != http.StatusOK {
			t.Fatalf("GET cb/csrattrs: %s", csrattrs)
		}
		attrsPath := filepath.Join(t.TempDir(), "csrattrs.der")
		der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(csrattrs.body)))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(attrsPath, der, 0o600); err != nil {
			t.Fatal(err)
		}
		p := mustRun(t, runOpts{}, "openssl", "asn1parse", "-inform", "DER", "-in", attrsPath)
		expectContains(t, "csrattrs of a channel-binding profile", p.stdout, "challengePassword")

		// A CSR without the binding: 403 (the credentials are right; 401
		// would ask for them again).
		c := enrollCall(t, "cb/simpleenroll", "auth-cb-none", newP256(t))
		c.user, c.pass = user, pass
		expectStatus(t, "simpleenroll without channel binding at a profile that requires it", e.call(t, c), http.StatusForbidden, "channel binding")

		for _, v := range []struct {
			name    string
			version uint16
		}{{"tls1.2", tls.VersionTLS12}, {"tls1.3", tls.VersionTLS13}} {
			t.Run(v.name, func(t *testing.T) {
				// openssl makes a CSR carrying this connection's binding
				// (tls-unique / tls-exporter) in challengePassword.
				dir := t.TempDir()
				conn, binding := e.dialTLS(t, v.version)
				csr := opensslCSRWithChallenge(t, dir, "auth-cb-"+v.name, base64.StdEncoding.EncodeToString(binding))
				r := e.postOnConn(t, conn, "cb/simpleenroll", b64(csr), user, pass)
				if r.status != http.StatusOK {
					t.Fatalf("simpleenroll with this connection's channel binding over %s: %s", v.name, r)
				}
				// The same CSR over another connection: a replay, refused.
				c := estCall{method: http.MethodPost, path: "cb/simpleenroll", body: b64(csr), user: user, pass: pass, tlsMin: v.version, tlsMax: v.version}
				expectStatus(t, "the CSR replayed over another TLS connection", e.call(t, c), http.StatusForbidden, "channel binding")
				// A binding is checked where it is present, whatever the profile.
				c.path = "simpleenroll"
				expectStatus(t, "the CSR replayed at the default profile", e.call(t, c), http.StatusForbidden, "channel binding")
			})
		}
	})

	t.Run("expired-certificate", func(t *testing.T) {
		if wait := time.Until(short.NotAfter) + 1500*time.Millisecond; wait > 0 {
			time.Sleep(wait)
		}
		c := enrollCall(t, "short/simplereenroll", "auth-short", shortKey)
		c.cert = tlsPair(short, shortKey)
		r := e.call(t, c)
		if r.status != http.StatusForbidden && r.status != http.StatusUnauthorized {
			t.Errorf("simplereenroll with an expired certificate: HTTP %d, want 403 (or 401)\n%s", r.status, r)
		} else {
			expectContains(t, "refusal of an expired certificate", string(r.body), "expired")
		}
		// Within the profile's renewal_grace an expired certificate renews.
		if time.Now().Before(graced.NotAfter) {
			t.Fatalf("the grace certificate has not expired yet (valid until %s)", graced.NotAfter)
		}
		c = enrollCall(t, "grace/simplereenroll", "auth-grace", graceKey)
		c.cert = tlsPair(graced, graceKey)
		e.enrollGo(t, "simplereenroll with a certificate expired within renewal_grace", c)
	})
}

// ---------------------------------------------------------------------------

const estStrongswanConfig = `
# strongSwan's pki puts the URL's path before /.well-known/est/, so it
# reaches only the default profile: renewal is allowed at once there.
[profiles.default]
renewal_window = "100%"
`

// TestESTStrongswan: strongSwan's `pki --estca` fetches the CA
// certificates and `pki --est` enrolls with Basic auth and re-enrolls with
// its certificate and a new key, against a TLS-1.2-only and a
// TLS-1.3-only server.
func TestESTStrongswan(t *testing.T) {
	t.Parallel()
	pkiPath := need(t, "pki", "openssl", "curl")[0]
	for _, v := range []struct {
		name, version, other string
		args                 []string
		curlOther            []string
	}{
		{"tls1.2-only", "1.2", "1.3", []string{"--tls-max-version", "1.2"}, []string{"--tlsv1.3"}},
		{"tls1.3-only", "1.3", "1.2", []string{"--tls-min-version", "1.3"}, []string{"--tlsv1.2", "--tls-max", "1.2"}},
	} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			e := startEST(t, estOpts{prepared: true, config: estStrongswanConfig, args: v.args})
			const user, pass = "ss-user", "ss-password-0123"
			e.addUser(t, user, pass)
			dir := t.TempDir()
			// libtls offers TLS 1.2 at most unless strongswan.conf raises
			// libtls.version_max; a private strongswan.conf (the system one
			// included) does that for pki.
			conf := filepath.Join(dir, "strongswan.conf")
			var include string
			if fileExists("/etc/strongswan.conf") {
				include = "include /etc/strongswan.conf\n"
			}
			writeFile(t, conf, include+"libtls {\n\tversion_max = 1.3\n}\n")
			ssPKI := func(t *testing.T, dir string, args ...string) result {
				t.Helper()
				r := run(t, runOpts{dir: dir, env: []string{"STRONGSWAN_CONF=" + conf}}, pkiPath, args...)
				if tlsUsed := args[0] == "--est" || args[0] == "--estca"; tlsUsed && r.err == nil && !strings.Contains(r.stderr, "negotiated TLS "+v.version) {
					t.Errorf("pki did not negotiate TLS %s:\n%s", v.version, r)
				}
				return r
			}

			// The server really speaks only its version.
			r := run(t, runOpts{dir: dir}, "curl", append([]string{"-sS", "--max-time", "20", "--cacert", e.CAFile("root.crt"), "-o", "/dev/null", e.EST + "/cacerts"}, v.curlOther...)...)
			if r.err == nil {
				t.Errorf("curl with TLS %s succeeded against a %s server", v.other, v.name)
			}

			// pki --estca: root -> ca.pem, issuing CA -> ca-1.pem.
			r = ssPKI(t, dir, "--estca", "--url", e.HTTPS, "--cacert", e.CAFile("root.crt"),
				"--caout", filepath.Join(dir, "ca.pem"), "--outform", "pem")
			if r.err != nil {
				t.Fatalf("pki --estca:\n%s", r)
			}
			sameCert(t, filepath.Join(dir, "ca.pem"), e.CAFile("root.crt"))
			sameCert(t, filepath.Join(dir, "ca-1.pem"), e.CAFile("issuing.crt"))

			cn := "ss-est-" + v.name
			dn, san := "C=US, O=Acme, CN="+cn, cn+".example.com"
			estArgs := func(req string, extra ...string) []string {
				return append([]string{"--est", "--url", e.HTTPS, "--in", req,
					"--cacert", filepath.Join(dir, "ca.pem"), "--cacert", filepath.Join(dir, "ca-1.pem"), "--outform", "pem"}, extra...)
			}
			mkReq := func(sub string) (key, req string) {
				d := filepath.Join(dir, sub)
				if err := os.MkdirAll(d, 0o700); err != nil {
					t.Fatal(err)
				}
				key = pkiGenKey(t, d, "2048")
				rr := ssPKI(t, d, "--req", "--in", key, "--type", "rsa", "--dn", dn, "--san", san, "--outform", "der")
				if rr.err != nil {
					t.Fatalf("pki --req:\n%s", rr)
				}
				req = filepath.Join(d, "req.der")
				if err := os.WriteFile(req, []byte(rr.stdout), 0o600); err != nil {
					t.Fatal(err)
				}
				return key, req
			}

			// Enrollment with HTTP Basic.
			key1, req1 := mkReq("first")
			r = ssPKI(t, dir, estArgs(req1, "--userpass", user+":"+pass)...)
			if r.err != nil {
				t.Fatalf("pki --est:\n%s", r)
			}
			cert1 := filepath.Join(dir, "first", "cert.pem")
			writeFile(t, cert1, r.stdout)
			first := e.verify(t, cert1)
			expectKeyMatches(t, first, key1)
			if first.Subject.CommonName != cn || len(first.Subject.Organization) != 1 || first.Subject.Organization[0] != "Acme" ||
				len(first.DNSNames) != 1 || first.DNSNames[0] != san {
				t.Errorf("pki --est got %s %v, want %s [%s]", first.Subject, first.DNSNames, dn, san)
			}
			e.expectESTRecord(t, first, "default")

			// A wrong password: pki reports the 401.
			r = ssPKI(t, dir, estArgs(req1, "--userpass", user+":wrong-password-0123")...)
			expectContains(t, "pki --est with a wrong password", expectFailed(t, r, "pki --est with a wrong password"), "401")

			// Re-enrollment with the certificate and a new key.
			key2, req2 := mkReq("second")
			r = ssPKI(t, dir, estArgs(req2, "--cert", cert1, "--key", key1)...)
			if r.err != nil {
				t.Fatalf("pki --est re-enrollment:\n%s", r)
			}
			cert2 := filepath.Join(dir, "second", "cert.pem")
			writeFile(t, cert2, r.stdout)
			second := e.verify(t, cert2)
			expectKeyMatches(t, second, key2)
			if second.SerialNumber.Cmp(first.SerialNumber) == 0 || second.Subject.String() != first.Subject.String() {
				t.Errorf("re-enrollment gave %s serial %s; want the same subject under a new serial", second.Subject, serialHex(second.SerialNumber))
			}
			if rec := e.expectESTRecord(t, second, "default"); rec.RenewedFrom == "" {
				t.Errorf("the re-enrolled certificate is not linked to the one it renews in certs list: %+v", rec)
			}
		})
	}

	// A held request: pki --est polls on 202 (Retry-After) until an
	// operator approves. pki reaches only the default profile, so that one
	// needs approval here.
	t.Run("pending-approval", func(t *testing.T) {
		t.Parallel()
		e := startEST(t, estOpts{prepared: true, config: "[profiles.default]\napproval = true\n", args: []string{"--est-retry-after", "1s"}})
		const user, pass = "ss-user", "ss-password-0123"
		e.addUser(t, user, pass)
		dir := t.TempDir()
		key := pkiGenKey(t, dir, "2048")
		rr := run(t, runOpts{dir: dir}, pkiPath, "--req", "--in", key, "--type", "rsa", "--dn", "CN=ss-est-pending", "--outform", "der")
		if rr.err != nil {
			t.Fatalf("pki --req:\n%s", rr)
		}
		req := filepath.Join(dir, "req.der")
		if err := os.WriteFile(req, []byte(rr.stdout), 0o600); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var res result
		wg.Add(1)
		go func() {
			defer wg.Done()
			res = run(t, runOpts{dir: dir}, pkiPath, "--est", "--url", e.HTTPS, "--in", req, "--cacert", e.CAFile("root.crt"),
				"--cacert", e.CAFile("issuing.crt"), "--userpass", user+":"+pass, "--interval", "1", "--maxpolltime", "30", "--outform", "pem")
		}()
		var id string
		for deadline := time.Now().Add(20 * time.Second); id == "" && time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
			r := e.cli(t, "requests", "list", "--json")
			var reqs []estRequest
			if r.err == nil && json.Unmarshal([]byte(r.stdout), &reqs) == nil && len(reqs) > 0 {
				id = reqs[0].ID
			}
		}
		if id == "" {
			wg.Wait()
			t.Fatalf("no pending request while pki --est polls:\n%s", res)
		}
		time.Sleep(1500 * time.Millisecond) // let it poll at least once more
		if ap := e.cli(t, "requests", "approve", id); ap.err != nil {
			wg.Wait()
			t.Fatalf("requests approve:\n%s", ap)
		}
		wg.Wait()
		if res.err != nil {
			t.Fatalf("pki --est polling an approval:\n%s", res)
		}
		expectContains(t, "pki --est output", res.stderr, "pending")
		certPath := filepath.Join(dir, "cert.pem")
		writeFile(t, certPath, res.stdout)
		c := e.verify(t, certPath)
		expectKeyMatches(t, c, key)
		e.expectESTRecord(t, c, "default")
	})
}

// ---------------------------------------------------------------------------

const estOurClientConfig = `
[profiles.renewnow]
renewal_window = "100%"

[profiles.keygen]
est_server_keygen = true

[profiles.cb]
est_require_channel_binding = true
`

// TestESTOurClient: `scepter est` against `scepter serve`: cacerts with a
// fingerprint, enroll, reenroll (same key, --rekey), serverkeygen (plain and
// --encrypt), and channel binding over TLS 1.2 and 1.3.
func TestESTOurClient(t *testing.T) {
	t.Parallel()
	need(t, "openssl")
	e := startEST(t, estOpts{prepared: true, config: estOurClientConfig})
	const user, pass = "ours", "ours-password-0123"
	e.addUser(t, user, pass)
	pwFile := filepath.Join(t.TempDir(), "password")
	writeFile(t, pwFile, pass+"\n")
	fp := e.RootFingerprint()
	est := func(t *testing.T, dir string, args ...string) result {
		t.Helper()
		return run(t, runOpts{dir: dir}, bin(t), append([]string{"est"}, args...)...)
	}
	auth := []string{"--user", user, "--password-file", pwFile}
	expectMode0600 := func(t *testing.T, path string) {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
		}
	}

	t.Run("cacerts", func(t *testing.T) {
		dir := t.TempDir()
		out := filepath.Join(dir, "cacerts.pem")
		r := est(t, dir, "cacerts", "--url", e.HTTPS, "--ca-fingerprint", fp, "--out", out)
		if r.err != nil {
			t.Fatalf("est cacerts:\n%s", r)
		}
		certs := readCerts(t, out)
		root, issuing := readCert(t, e.CAFile("root.crt")), readCert(t, e.CAFile("issuing.crt"))
		var hasRoot, hasIssuing bool
		for _, c := range certs {
			hasRoot = hasRoot || bytes.Equal(c.Raw, root.Raw)
			hasIssuing = hasIssuing || bytes.Equal(c.Raw, issuing.Raw)
		}
		if !hasRoot || !hasIssuing {
			t.Errorf("est cacerts wrote %d certificates; root: %v, issuing CA: %v", len(certs), hasRoot, hasIssuing)
		}
		expectContains(t, "est cacerts output", r.stdout, strings.TrimPrefix(fp, "sha256:"))
		// A wrong fingerprint is refused.
		bad := "sha256:" + strings.Repeat("ab", 32)
		r = est(t, dir, "cacerts", "--url", e.HTTPS, "--ca-fingerprint", bad, "--out", filepath.Join(dir, "bad.pem"))
		expectContains(t, "est cacerts with a wrong fingerprint", expectFailed(t, r, "est cacerts with a wrong fingerprint"), "fingerprint")
		// With the written bundle as --cacert.
		r = est(t, dir, "cacerts", "--url", e.HTTPS, "--cacert", out, "--out", filepath.Join(dir, "again.pem"))
		if r.err != nil {
			t.Fatalf("est cacerts --cacert:\n%s", r)
		}
	})

	t.Run("enroll-reenroll", func(t *testing.T) {
		dir := t.TempDir()
		cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		r := est(t, dir, append([]string{"enroll", "--url", e.HTTPS + "/renewnow", "--ca-fingerprint", fp, "--subject", "CN=ours-1,O=Acme",
			"--dns", "ours-1.example", "--out", cert, "--key-out", key}, auth...)...)
		if r.err != nil {
			t.Fatalf("est enroll:\n%s", r)
		}
		expectMode0600(t, key)
		first := e.verify(t, cert)
		expectKeyMatches(t, first, key)
		if first.Subject.CommonName != "ours-1" || len(first.DNSNames) != 1 || first.DNSNames[0] != "ours-1.example" || keyDesc(first.PublicKey) != "p256" {
			t.Errorf("est enroll got %s %v %s, want CN=ours-1,O=Acme [ours-1.example] p256", first.Subject, first.DNSNames, keyDesc(first.PublicKey))
		}
		if chain := filepath.Join(dir, "chain.pem"); !fileExists(chain) {
			t.Errorf("est enroll wrote no %s", chain)
		}
		e.expectESTRecord(t, first, "renewnow")

		// Same key.
		cert2, key2 := filepath.Join(dir, "cert2.pem"), filepath.Join(dir, "key2.pem")
		r = est(t, dir, "reenroll", "--url", e.HTTPS+"/renewnow", "--ca-fingerprint", fp, "--cert", cert, "--key", key, "--out", cert2, "--key-out", key2)
		if r.err != nil {
			t.Fatalf("est reenroll:\n%s", r)
		}
		expectMode0600(t, key2)
		second := e.verify(t, cert2)
		expectKeyMatches(t, second, key2)
		if !pki.SamePublicKey(second.PublicKey, first.PublicKey) {
			t.Errorf("est reenroll without --rekey changed the key")
		}
		if second.Subject.String() != first.Subject.String() || second.SerialNumber.Cmp(first.SerialNumber) == 0 {
			t.Errorf("est reenroll got %s serial %s, want the old subject under a new serial", second.Subject, serialHex(second.SerialNumber))
		}
		e.expectESTRecord(t, second, "renewnow")

		// --rekey.
		cert3, key3 := filepath.Join(dir, "cert3.pem"), filepath.Join(dir, "key3.pem")
		r = est(t, dir, "reenroll", "--url", e.EST+"/renewnow", "--cacert", e.CAFile("root.crt"), "--cert", cert2, "--key", key2, "--rekey", "--out", cert3, "--key-out", key3)
		if r.err != nil {
			t.Fatalf("est reenroll --rekey:\n%s", r)
		}
		expectMode0600(t, key3)
		third := e.verify(t, cert3)
		expectKeyMatches(t, third, key3)
		if pki.SamePublicKey(third.PublicKey, first.PublicKey) {
			t.Errorf("est reenroll --rekey kept the key")
		}
		if third.Subject.String() != first.Subject.String() || len(third.DNSNames) != 1 || third.DNSNames[0] != "ours-1.example" {
			t.Errorf("est reenroll --rekey got %s %v, want the old names", third.Subject, third.DNSNames)
		}
		e.expectESTRecord(t, third, "renewnow")
	})

	t.Run("serverkeygen", func(t *testing.T) {
		for _, mode := range []struct {
			name  string
			extra []string
			says  string
		}{
			{"plain", nil, "delivered inside TLS"},
			{"encrypt", []string{"--encrypt"}, "encrypted to the request's key"},
		} {
			t.Run(mode.name, func(t *testing.T) {
				dir := t.TempDir()
				cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
				cn := "ours-keygen-" + mode.name
				args := append([]string{"serverkeygen", "--url", e.HTTPS + "/keygen", "--ca-fingerprint", fp, "--subject", "CN=" + cn,
					"--out", cert, "--key-out", key}, auth...)
				r := est(t, dir, append(args, mode.extra...)...)
				if r.err != nil {
					t.Fatalf("est serverkeygen %v:\n%s", mode.extra, r)
				}
				expectContains(t, "est serverkeygen output", r.stdout, mode.says)
				expectMode0600(t, key)
				c := e.verify(t, cert)
				expectKeyMatches(t, c, key)
				opensslSameKey(t, cert, key)
				if c.Subject.CommonName != cn {
					t.Errorf("serverkeygen issued %s, want CN=%s", c.Subject, cn)
				}
				e.expectESTRecord(t, c, "keygen")
			})
		}
	})

	t.Run("channel-binding", func(t *testing.T) {
		for _, v := range []struct {
			name  string
			flags []string
		}{
			{"tls1.2", []string{"--tls-max-version", "1.2"}},
			{"tls1.3", []string{"--tls-min-version", "1.3"}},
		} {
			t.Run(v.name, func(t *testing.T) {
				dir := t.TempDir()
				cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
				cn := "ours-cb-" + v.name
				args := append([]string{"enroll", "--url", e.HTTPS + "/cb", "--ca-fingerprint", fp, "--subject", "CN=" + cn,
					"--out", cert, "--key-out", key}, auth...)
				r := est(t, dir, append(args, v.flags...)...)
				if r.err != nil {
					t.Fatalf("est enroll at a channel-binding profile over %s:\n%s", v.name, r)
				}
				c := e.verify(t, cert)
				expectKeyMatches(t, c, key)
				e.expectESTRecord(t, c, "cb")

				// Without the binding: refused, and the reason says why.
				args = append([]string{"enroll", "--url", e.HTTPS + "/cb", "--ca-fingerprint", fp, "--subject", "CN=" + cn + "-nocb",
					"--out", filepath.Join(dir, "nocb.pem"), "--key-out", filepath.Join(dir, "nocb.key"), "--channel-binding", "never"}, auth...)
				r = est(t, dir, append(args, v.flags...)...)
				out := expectFailed(t, r, "est enroll --channel-binding never at a channel-binding profile")
				expectContains(t, "refusal without channel binding", out, "channel binding", "403")
				if fileExists(filepath.Join(dir, "nocb.pem")) {
					t.Errorf("a refused enrollment wrote a certificate")
				}
			})
		}
		// --channel-binding always at a profile that does not ask for it.
		dir := t.TempDir()
		args := append([]string{"enroll", "--url", e.HTTPS, "--ca-fingerprint", fp, "--subject", "CN=ours-cb-always",
			"--out", filepath.Join(dir, "cert.pem"), "--key-out", filepath.Join(dir, "key.pem"), "--channel-binding", "always"}, auth...)
		if r := est(t, dir, args...); r.err != nil {
			t.Fatalf("est enroll --channel-binding always at the default profile:\n%s", r)
		}
		e.verify(t, filepath.Join(dir, "cert.pem"))
	})
}

// ---------------------------------------------------------------------------

const estApprovalConfig = `
[profiles.approval]
approval = true
`

// estRequest is the part of `requests list --json` these tests look at.
type estRequest struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	Profile       string `json:"profile"`
	TransactionID string `json:"transaction_id"`
	Subject       string `json:"subject"`
	Reason        string `json:"reason"`
	Serial        string `json:"serial"`
	// Protocol is nil when `requests list --json` does not show it.
	Protocol *string `json:"protocol"`
}

// TestESTApproval: a profile with approval = true answers 202 with a
// Retry-After; asking again with the same CSR is the same request; an
// operator approves (the next ask gets the certificate) or rejects (the
// next ask gets 403 with the reason); our client waits it out with
// --max-wait.
func TestESTApproval(t *testing.T) {
	t.Parallel()
	need(t, "curl", "openssl", "base64", "sh")
	e := startEST(t, estOpts{prepared: true, config: estApprovalConfig, args: []string{"--est-retry-after", "1s"}})
	const user, pass = "approval-user", "approval-password-0123"
	e.addUser(t, user, pass)
	dir := t.TempDir()

	pending := func(t *testing.T) []estRequest {
		t.Helper()
		r := e.cli(t, "requests", "list", "--json")
		if r.err != nil {
			t.Fatalf("requests list:\n%s", r)
		}
		var reqs []estRequest
		if err := json.Unmarshal([]byte(r.stdout), &reqs); err != nil {
			t.Fatalf("requests list --json: %v\n%s", err, r.stdout)
		}
		var out []estRequest
		for _, q := range reqs {
			if q.Status == "pending" && q.Profile == "approval" {
				out = append(out, q)
			}
		}
		return out
	}
	postAs := func(t *testing.T, csr, user, pass string) httpReply {
		t.Helper()
		der, err := os.ReadFile(csr)
		if err != nil {
			t.Fatal(err)
		}
		body := filepath.Join(dir, fmt.Sprintf("post-%d.b64", curlSeq.Add(1)))
		writeFile(t, body, string(b64Lines(der)))
		return e.curl(t, dir, "--data-binary", "@"+body, "-H", "Content-Type: application/pkcs10",
			"-u", user+":"+pass, e.EST+"/approval/simpleenroll")
	}
	post := func(t *testing.T, csr string) httpReply {
		t.Helper()
		return postAs(t, csr, user, pass)
	}
	expect202 := func(t *testing.T, what string, r httpReply) {
		t.Helper()
		if r.status != http.StatusAccepted {
			t.Fatalf("%s: HTTP %d, want 202\n%s", what, r.status, r)
		}
		if ra := r.header.Get("Retry-After"); ra != "1" {
			t.Errorf("%s: Retry-After = %q, want 1 (--est-retry-after 1s)", what, ra)
		}
	}

	// Approved.
	key := filepath.Join(dir, "approve.key")
	csr := opensslCSR(t, dir, "p256", key, "est-approve-me", "est-approve-me.example")
	r := post(t, csr)
	expect202(t, "first simpleenroll at an approval profile", r)
	expectContains(t, "202 body", string(r.body), "approval")
	expect202(t, "the same CSR again", post(t, csr))
	reqs := pending(t)
	if len(reqs) != 1 {
		t.Fatalf("pending requests after asking twice: %+v, want exactly one", reqs)
	}
	if !strings.HasPrefix(reqs[0].TransactionID, "est-") || reqs[0].Subject != "CN=est-approve-me" {
		t.Errorf("pending request %+v: want an est- transaction ID and the subject CN=est-approve-me", reqs[0])
	}
	if p := reqs[0].Protocol; p == nil {
		t.Logf("requests list --json shows no protocol field")
	} else if *p != "est" {
		t.Errorf("requests list --json: protocol %q, want est", *p)
	}
	ap := e.cli(t, "requests", "approve", reqs[0].ID)
	if ap.err != nil {
		t.Fatalf("requests approve:\n%s", ap)
	}
	r = post(t, csr)
	if r.status != http.StatusOK {
		t.Fatalf("the same CSR after approval: %s", r)
	}
	certPath := opensslCertsOnly(t, dir, r.bodyPath, "approved.pem")
	c := e.verify(t, certPath)
	expectKeyMatches(t, c, key)
	if c.Subject.CommonName != "est-approve-me" {
		t.Errorf("approved certificate for %s, want CN=est-approve-me", c.Subject)
	}
	e.expectESTRecord(t, c, "approval")
	// Asking once more returns the same certificate, no second one.
	r = post(t, csr)
	if r.status != http.StatusOK {
		t.Fatalf("the same CSR once more: %s", r)
	}
	if again := readCert(t, opensslCertsOnly(t, dir, r.bodyPath, "again.pem")); again.SerialNumber.Cmp(c.SerialNumber) != 0 {
		t.Errorf("asking again after issuance issued serial %s; want the approved %s", serialHex(again.SerialNumber), serialHex(c.SerialNumber))
	}
	if p := pending(t); len(p) != 0 {
		t.Errorf("requests still pending after approval: %+v", p)
	}

	// The same CSR sent several times at once is still one request.
	keyP := filepath.Join(dir, "parallel.key")
	csrP := opensslCSR(t, dir, "p256", keyP, "est-parallel", "est-parallel.example")
	derP, err := os.ReadFile(csrP)
	if err != nil {
		t.Fatal(err)
	}
	statuses := make([]int, 5)
	var wg sync.WaitGroup
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r, err := e.try(estCall{method: http.MethodPost, path: "approval/simpleenroll", body: b64(derP), user: user, pass: pass}); err == nil {
				statuses[i] = r.status
			}
		}()
	}
	wg.Wait()
	for _, st := range statuses {
		if st != http.StatusAccepted {
			t.Errorf("the same CSR sent 5 times at once: statuses %v, want 202 each", statuses)
			break
		}
	}
	if reqs = pending(t); len(reqs) != 1 {
		t.Errorf("the same CSR sent 5 times at once made %d pending requests, want 1: %+v", len(reqs), reqs)
	}
	for _, q := range reqs {
		if rj := e.cli(t, "requests", "reject", q.ID, "--reason", "test cleanup"); rj.err != nil {
			t.Fatalf("requests reject:\n%s", rj)
		}
	}

	// Rejected.
	key2 := filepath.Join(dir, "reject.key")
	csr2 := opensslCSR(t, dir, "p256", key2, "est-reject-me", "est-reject-me.example")
	expect202(t, "a second request", post(t, csr2))
	reqs = pending(t)
	if len(reqs) != 1 {
		t.Fatalf("pending requests: %+v, want one", reqs)
	}
	if rj := e.cli(t, "requests", "reject", reqs[0].ID, "--reason", "unknown device"); rj.err != nil {
		t.Fatalf("requests reject:\n%s", rj)
	}
	r = post(t, csr2)
	expectStatus(t, "the rejected CSR again", r, http.StatusForbidden, "unknown device")

	// Asking again about a held request is an EST request like any other:
	// wrong credentials get 401, not the request's state or its
	// certificate. (The CSR is no proof of anything here: it is signed
	// once and can be replayed by whoever saw it.)
	t.Run("held-request-needs-credentials", func(t *testing.T) {
		key := filepath.Join(dir, "held.key")
		csr := opensslCSR(t, dir, "p256", key, "est-held", "est-held.example")
		expect202(t, "a request to be held", post(t, csr))
		if r := postAs(t, csr, user, "wrong-password-0123"); r.status != http.StatusUnauthorized {
			t.Errorf("PRODUCT BUG: the held CSR re-sent with a wrong Basic password: HTTP %d, want 401\n%s", r.status, r)
		}
		reqs := pending(t)
		if len(reqs) != 1 {
			t.Fatalf("pending requests: %+v, want one", reqs)
		}
		if ap := e.cli(t, "requests", "approve", reqs[0].ID); ap.err != nil {
			t.Fatalf("requests approve:\n%s", ap)
		}
		if r := postAs(t, csr, "no-such-user", "wrong-password-0123"); r.status != http.StatusUnauthorized {
			t.Errorf("PRODUCT BUG: the approved CSR re-sent by an unknown user with a wrong password: HTTP %d (the certificate handed out), want 401", r.status)
		}
		if r := post(t, csr); r.status != http.StatusOK {
			t.Errorf("the approved CSR with the right credentials: %s", r)
		}
	})

	// Our client without --max-wait: it says the request is pending and
	// keeps the key; after the approval the same command with --csr-key
	// collects the certificate.
	t.Run("scepter-est-enroll-csr-key", func(t *testing.T) {
		d := t.TempDir()
		pw := filepath.Join(d, "password")
		writeFile(t, pw, pass)
		args := []string{"est", "enroll", "--url", e.HTTPS + "/approval", "--cacert", e.CAFile("root.crt"),
			"--user", user, "--password-file", pw, "--subject", "CN=est-later", "--out", filepath.Join(d, "cert.pem"),
			"--key-out", filepath.Join(d, "key.pem")}
		r := run(t, runOpts{dir: d}, bin(t), args...)
		out := expectFailed(t, r, "est enroll at an approval profile without --max-wait")
		expectContains(t, "est enroll pending", out, "approv", "--csr-key")
		if !fileExists(filepath.Join(d, "key.pem")) {
			t.Fatalf("the pending enrollment did not keep its key")
		}
		saved := filepath.Join(d, "saved.key")
		if err := os.Rename(filepath.Join(d, "key.pem"), saved); err != nil {
			t.Fatal(err)
		}
		reqs := pending(t)
		if len(reqs) != 1 {
			t.Fatalf("pending requests: %+v, want one", reqs)
		}
		if ap := e.cli(t, "requests", "approve", reqs[0].ID); ap.err != nil {
			t.Fatalf("requests approve:\n%s", ap)
		}
		if r := run(t, runOpts{dir: d}, bin(t), append(args, "--csr-key", saved)...); r.err != nil {
			t.Fatalf("est enroll --csr-key after approval:\n%s", r)
		}
		c := e.verify(t, filepath.Join(d, "cert.pem"))
		expectKeyMatches(t, c, saved)
		expectKeyMatches(t, c, filepath.Join(d, "key.pem"))
	})

	// Our client waits for the approval (--max-wait), polling each second.
	t.Run("scepter-est-enroll-waits", func(t *testing.T) {
		d := t.TempDir()
		pw := filepath.Join(d, "password")
		writeFile(t, pw, pass)
		var wg sync.WaitGroup
		var res result
		wg.Add(1)
		go func() {
			defer wg.Done()
			res = run(t, runOpts{dir: d}, bin(t), "est", "enroll", "--url", e.HTTPS+"/approval", "--cacert", e.CAFile("root.crt"),
				"--user", user, "--password-file", pw, "--subject", "CN=est-waits", "--out", filepath.Join(d, "cert.pem"),
				"--key-out", filepath.Join(d, "key.pem"), "--max-wait", "30s", "--poll-interval", "1s")
		}()
		var reqs []estRequest
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
			if reqs = pending(t); len(reqs) > 0 {
				break
			}
		}
		if len(reqs) != 1 {
			wg.Wait()
			t.Fatalf("pending requests while scepter est enroll waits: %+v\n%s", reqs, res)
		}
		time.Sleep(1500 * time.Millisecond) // let it ask at least once more
		if ap := e.cli(t, "requests", "approve", reqs[0].ID); ap.err != nil {
			wg.Wait()
			t.Fatalf("requests approve:\n%s", ap)
		}
		wg.Wait()
		if res.err != nil {
			t.Fatalf("scepter est enroll --max-wait:\n%s", res)
		}
		expectContains(t, "scepter est enroll stderr", res.stderr, "held for approval")
		c := e.verify(t, filepath.Join(d, "cert.pem"))
		expectKeyMatches(t, c, filepath.Join(d, "key.pem"))
		if c.Subject.CommonName != "est-waits" {
			t.Errorf("got %s, want CN=est-waits", c.Subject)
		}
		if p := pending(t); len(p) != 0 {
			t.Errorf("requests pending after the client collected its certificate: %+v", p)
		}
	})
}

// ---------------------------------------------------------------------------

// TestESTBadInput: malformed requests get 4xx answers with a reason (501
// for fullcmc, which is not implemented), never a 5xx otherwise, and the
// server keeps serving.
func TestESTBadInput(t *testing.T) {
	t.Parallel()
	e := startEST(t, estOpts{prepared: true})
	const user, pass = "bad-user", "bad-password-0123"
	e.addUser(t, user, pass)
	goodCSR := newCSR(t, newP256(t), "bad-input", "bad-input.example")
	tampered := bytes.Clone(goodCSR)
	tampered[len(tampered)-1] ^= 0xff // inside the signature

	cases := []struct {
		name   string
		call   estCall
		status int
	}{
		{"not base64", estCall{method: http.MethodPost, path: "simpleenroll", body: []byte("this is *not* base64 at all!!")}, http.StatusBadRequest},
		{"base64 of garbage", estCall{method: http.MethodPost, path: "simpleenroll", body: b64([]byte("garbage, not a DER certificate request"))}, http.StatusBadRequest},
		{"empty body", estCall{method: http.MethodPost, path: "simpleenroll", body: []byte{}}, http.StatusBadRequest},
		{"CSR with a bad signature", estCall{method: http.MethodPost, path: "simpleenroll", body: b64(tampered)}, http.StatusBadRequest},
		{"body over 64 KiB", estCall{method: http.MethodPost, path: "simpleenroll", body: bytes.Repeat([]byte("A"), 70<<10)}, http.StatusRequestEntityTooLarge},
		{"GET simpleenroll", estCall{method: http.MethodGet, path: "simpleenroll"}, http.StatusMethodNotAllowed},
		{"POST cacerts", estCall{method: http.MethodPost, path: "cacerts", body: b64(goodCSR)}, http.StatusMethodNotAllowed},
		{"unknown label", estCall{method: http.MethodGet, path: "no-such-profile/cacerts"}, http.StatusNotFound},
		{"unknown label, enroll", estCall{method: http.MethodPost, path: "no-such-profile/simpleenroll", body: b64(goodCSR)}, http.StatusNotFound},
		{"unknown operation", estCall{method: http.MethodGet, path: "frobnicate"}, http.StatusNotFound},
		{"unknown operation at a label", estCall{method: http.MethodPost, path: "default/frobnicate", body: b64(goodCSR)}, http.StatusNotFound},
		{"too deep a path", estCall{method: http.MethodGet, path: "a/b/cacerts"}, http.StatusNotFound},
		{"fullcmc", estCall{method: http.MethodPost, path: "fullcmc", body: b64([]byte("cmc"))}, http.StatusNotImplemented},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.call
			c.user, c.pass = user, pass
			r := e.call(t, c)
			if r.status != tc.status {
				t.Errorf("%s %s: HTTP %d, want %d\n%s", c.method, c.path, r.status, tc.status, r)
			}
			if r.status >= 500 && tc.status != http.StatusNotImplemented {
				t.Errorf("%s %s: a server error for bad input: %s", c.method, c.path, r)
			}
			if r.status >= 400 && len(bytes.TrimSpace(r.body)) == 0 {
				t.Errorf("%s %s: HTTP %d without a reason in the body", c.method, c.path, r.status)
			}
			if r.status == http.StatusMethodNotAllowed && r.header.Get("Allow") == "" {
				t.Errorf("405 without an Allow header")
			}
		})
	}

	// EST is not served on the plain HTTP listener.
	code, body, err := httpGet(e.Base + "/.well-known/est/cacerts")
	if err != nil {
		t.Fatal(err)
	}
	if code == http.StatusOK || code >= 500 {
		t.Errorf("GET /.well-known/est/cacerts over plain HTTP: HTTP %d, want a 4xx (EST needs TLS)\n%s", code, body)
	}

	// Still serving, and still enrolling.
	expectStatus(t, "cacerts after the bad input", e.call(t, estCall{method: http.MethodGet, path: "cacerts"}), http.StatusOK)
	e.enrollGo(t, "simpleenroll after the bad input", estCall{method: http.MethodPost, path: "simpleenroll", body: b64(goodCSR), user: user, pass: pass})
}
