package agent

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pkitest"
)

// epoch is the tests' pinned clock; nothing compares it with the real time.
var epoch = time.Date(2031, 3, 14, 9, 0, 0, 0, time.UTC)

// testCA issues certificates in-process.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	// inter, when set, issues the device certificates (cert signs it).
	inter    *x509.Certificate
	interKey crypto.Signer
	serial   int64
	// ocspURL, when set, goes into the AIA of the certificates it issues;
	// crlURL into their CRL distribution points, issuerURL into their
	// caIssuers.
	ocspURL, crlURL, issuerURL string
}

func newTestCA(t testing.TB, now time.Time, withIntermediate bool) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Agent Test Root"},
		NotBefore: now.Add(-24 * time.Hour), NotAfter: now.Add(20 * 365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{key: key, serial: 100}
	ca.cert, _ = x509.ParseCertificate(der)
	if withIntermediate {
		ik, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		it := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Agent Test Issuing CA"},
			NotBefore: now.Add(-24 * time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
		der, err := x509.CreateCertificate(rand.Reader, it, ca.cert, ik.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		ca.inter, _ = x509.ParseCertificate(der)
		ca.interKey = ik
	}
	return ca
}

func (ca *testCA) certs() []*x509.Certificate {
	if ca.inter != nil {
		return []*x509.Certificate{ca.cert, ca.inter}
	}
	return []*x509.Certificate{ca.cert}
}

// issue makes a device certificate for pub, valid from notBefore for life.
func (ca *testCA) issue(t testing.TB, pub crypto.PublicKey, subject pkix.Name, dns []string, notBefore time.Time, life time.Duration) *x509.Certificate {
	t.Helper()
	ca.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.serial), Subject: subject, DNSNames: dns,
		NotBefore: notBefore, NotAfter: notBefore.Add(life), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if ca.ocspURL != "" {
		tmpl.OCSPServer = []string{ca.ocspURL}
	}
	if ca.crlURL != "" {
		tmpl.CRLDistributionPoints = []string{ca.crlURL}
	}
	if ca.issuerURL != "" {
		tmpl.IssuingCertificateURL = []string{ca.issuerURL}
	}
	parent, key := ca.cert, ca.key
	if ca.inter != nil {
		parent, key = ca.inter, ca.interKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fakeRenewer is a server: it issues from ca with the old names.
type fakeRenewer struct {
	t     testing.TB
	ca    *testCA
	clock *pkitest.Clock
	life  time.Duration

	mu      sync.Mutex
	calls   int
	keys    []crypto.PublicKey
	issued  []*x509.Certificate
	failFor int   // the first failFor calls fail
	err     error // with this error, the request sent (default: a connection refused, nothing sent)
	// wrong, when set, makes the answer: "key" a certificate for another
	// key, "ca" one from another CA, "name" one for another subject, "sans"
	// one without the DNS names, "more sans" one with another added.
	wrong string
	// serverAhead is how far the server's clock is ahead of the agent's:
	// the certificates it issues start that much after the agent's now.
	serverAhead time.Duration
	// caErr, when set, is what fetching its CA certificates fails with.
	caErr   error
	caCalls int
}

func (f *fakeRenewer) Renew(ctx context.Context, r RenewRequest) (*RenewResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.keys = append(f.keys, r.Key.Public())
	if f.calls <= f.failFor && f.err == nil {
		// Not reached: the request never left.
		return nil, fmt.Errorf("dial tcp 127.0.0.1:1: connect: connection refused")
	}
	if r.Sending != nil {
		if err := r.Sending(); err != nil {
			return nil, err
		}
	}
	if f.calls <= f.failFor {
		return nil, f.err
	}
	pub, ca, subject, dns := r.Key.Public(), f.ca, r.Old.Subject, r.Old.DNSNames
	switch f.wrong {
	case "name":
		subject.CommonName = "evil.example"
	case "sans":
		dns = nil
	case "more sans":
		dns = append(slices.Clone(dns), "evil.example")
	case "key":
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		pub = k.Public()
	case "ca":
		ca = newTestCA(f.t, f.clock.Now(), false)
	}
	c := ca.issue(f.t, pub, subject, dns, f.clock.Now().Add(f.serverAhead), f.life)
	f.issued = append(f.issued, c)
	return &RenewResult{Cert: c, CACerts: f.ca.certs()}, nil
}

// CACerts is the server's GetCACert: its CA's certificates.
func (f *fakeRenewer) CACerts(ctx context.Context, c *Certificate, r RenewRequest) ([]*x509.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.caCalls++
	if f.caErr != nil {
		return nil, f.caErr
	}
	return f.ca.certs(), nil
}

func (f *fakeRenewer) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// fixture is a machine with one certificate and an agent for it.
type fixture struct {
	t       *testing.T
	dir     string
	clock   *pkitest.Clock
	ca      *testCA
	renewer *fakeRenewer
	cfg     *Config
	agent   *Agent
	logs    *syncBuffer
	sleeps  []time.Duration
	first   *x509.Certificate // the certificate enrolled at the start
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type fixtureOpts struct {
	keyType string // of the enrolled key; default p256
	life    time.Duration
	// toml is the [[certificate]] table's extra lines; the files are
	// key.pem and cert.pem unless it says otherwise.
	extra        string
	combined     bool // key and certificate in one file, all.pem
	intermediate bool
}

const post = "post.log"

func newFixture(t *testing.T, o fixtureOpts) *fixture {
	t.Helper()
	if o.keyType == "" {
		o.keyType = keys.P256
	}
	if o.life == 0 {
		o.life = 30 * 24 * time.Hour
	}
	f := &fixture{t: t, dir: t.TempDir(), clock: pkitest.NewClock(epoch), logs: &syncBuffer{}}
	f.ca = newTestCA(t, epoch, o.intermediate)
	f.renewer = &fakeRenewer{t: t, ca: f.ca, clock: f.clock, life: o.life}
	key, err := keys.Generate(o.keyType)
	if err != nil {
		t.Fatal(err)
	}
	f.first = f.ca.issue(t, key.Public(), pkix.Name{CommonName: "device-1", Organization: []string{"Acme"}}, []string{"device-1.example"}, epoch, o.life)
	paths := "key_path = \"key.pem\"\ncert_path = \"cert.pem\"\n"
	if o.combined {
		paths = "key_path = \"all.pem\"\ncert_path = \"all.pem\"\n"
		writePEM(t, filepath.Join(f.dir, "all.pem"), 0o600, key, f.first)
	} else {
		writePEM(t, filepath.Join(f.dir, "key.pem"), 0o600, key)
		writePEM(t, filepath.Join(f.dir, "cert.pem"), 0o644, nil, f.first)
	}
	cfgText := fmt.Sprintf("retry_initial = \"10s\"\nretry_max = \"5m\"\n\n[[certificate]]\nname = \"dev\"\nprotocol = \"scep\"\nurl = \"http://127.0.0.1:1/scep\"\n"+
		"ca_fingerprint = %q\n%spost_renew = \"echo renewed >> %s\"\n%s", client.Fingerprint(f.ca.cert), paths, post, o.extra)
	f.cfg, err = ParseConfig([]byte(cfgText), f.dir)
	if err != nil {
		t.Fatalf("config:\n%s\n%v", cfgText, err)
	}
	f.agent = &Agent{Config: f.cfg, Clock: f.clock, Log: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Renewers: map[string]Renewer{ProtocolSCEP: f.renewer, ProtocolEST: f.renewer},
		Jitter:   func() float64 { return 0.5 },
		Sleep: func(ctx context.Context, d time.Duration) error {
			f.sleeps = append(f.sleeps, d)
			f.clock.Advance(d)
			return ctx.Err()
		}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", f.logs.String())
		}
	})
	return f
}

func (f *fixture) cert() *Certificate { return &f.cfg.Certificates[0] }

// pair reads the pair on disk as a consumer would, failing the test when
// it does not match.
func (f *fixture) pair() *pair {
	f.t.Helper()
	p, err := readPair(newLayout(f.cert(), nil))
	if err != nil {
		f.t.Fatalf("the files do not hold a matching pair: %v", err)
	}
	return p
}

// postRuns is how many times post_renew ran.
func (f *fixture) postRuns() int {
	b, err := os.ReadFile(filepath.Join(f.dir, post))
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return strings.Count(string(b), "renewed\n")
}

func writePEM(t testing.TB, path string, mode os.FileMode, key crypto.Signer, certs ...*x509.Certificate) {
	t.Helper()
	var data []byte
	for _, c := range certs {
		data = append(data, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if key != nil {
		k, err := encodeKey(key)
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, k...)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}
