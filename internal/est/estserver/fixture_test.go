package estserver_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/credential"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/est/estserver"
	"github.com/scepter/scepter/internal/keys/keytest"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/server"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite/sqlitetest"
)

// testTime pins every clock of these tests: nothing depends on today's date.
var testTime = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// userPassword is the password of the EST user "alice" every fixture has.
const userPassword = "alice-password-123"

type fixture struct {
	t     testing.TB
	dir   string
	clock *pkitest.Clock
	auth  *ca.Authority
	st    store.Store
	svc   *enroll.Service
	adm   *admin.Service
	url   string
	roots *x509.CertPool
	// manufacturer is a CA outside ours whose device certificates may
	// enroll at profiles with ManufacturerAuth.
	manufacturer *testCA
}

type fixtureOptions struct {
	profiles   []pki.Profile // besides "default"
	minVersion uint16
	maxVersion uint16
	// wrapStore, when set, wraps the store the service uses.
	wrapStore func(store.Store) store.Store
	// logTo, when set, receives the log of the service and the handler.
	logTo io.Writer
	// issuanceGate is the service's IssuanceGate.
	issuanceGate func() error
	// db, when set, is the store instead of a new SQLite one (a
	// PostgreSQL store its opener closes).
	db store.Store
	// failureLimit is the service's FailedAttemptsPerAddress (0: its default).
	failureLimit int
}

// testKeys makes the RA keys of the fixtures' CAs: RSA key generation was
// a third of this package's test CPU. Its 4 keys are distinct, so the
// fixtures of one test (at most 3, and none runs in parallel) never share
// one.
var testKeys = keytest.NewPool(4)

func newFixture(t testing.TB, o fixtureOptions) *fixture {
	t.Helper()
	dir := t.TempDir()
	clock := pkitest.NewClock(testTime)
	auth, _, err := ca.LoadOrCreate(dir, ca.InitOptions{GenerateKey: testKeys.Generate}, clock)
	if err != nil {
		t.Fatal(err)
	}
	st := o.db
	if st == nil {
		// A copy of a migrated database: applying the migrations per
		// fixture was a fifth of this package's test CPU.
		st = sqlitetest.Open(t, filepath.Join(dir, "scepter.db"))
	}
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if o.logTo != nil {
		log = slog.New(slog.NewTextHandler(o.logTo, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	profiles := map[string]pki.Profile{"default": pki.DefaultProfile()}
	for _, p := range o.profiles {
		profiles[p.Name] = p
	}
	mfr := newTestCA(t, "Manufacturer Root", clock.Now())
	pool := x509.NewCertPool()
	pool.AddCert(mfr.cert)
	svcStore := store.Store(st)
	if o.wrapStore != nil {
		svcStore = o.wrapStore(st)
	}
	// New's default checker, but burning an unknown user's check at the
	// cost of the tests' hashes (testPasswordCost).
	passwords := credential.NewRememberingPasswordChecker(0, clock.Now, acceptedPasswordLifetime).WithBurnHash(testBurnHash())
	svc, err := enroll.New(svcStore, auth, clock, log, enroll.Config{StaticChallenge: "static-secret", Profiles: profiles,
		DefaultProfile: "default", ManufacturerRoots: pool, IssuanceGate: o.issuanceGate, Passwords: passwords,
		FailedAttemptsPerAddress: o.failureLimit})
	if err != nil {
		t.Fatal(err)
	}
	adm := admin.New(st, clock, log, profiles, "default")
	addESTUser(t, st, clock, "alice", userPassword, "")
	h := estserver.New(svc, log, estserver.Options{RetryAfter: 7 * time.Second})
	mux, err := server.TLSMux(server.Handlers{EST: h})
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := server.ManagedCertificate(context.Background(), filepath.Join(dir, "tls"), []string{"127.0.0.1"}, svc, "", clock, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = server.TLSConfig(cert.GetCertificate, o.minVersion, o.maxVersion)
	// httptest adds a certificate of its own, which would win over
	// GetCertificate for clients that send no SNI (an IP address URL).
	pair, _ := cert.GetCertificate(nil)
	srv.TLS.Certificates, srv.TLS.GetCertificate = []tls.Certificate{*pair}, nil
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(auth.Root)
	return &fixture{t: t, dir: dir, clock: clock, auth: auth, st: st, svc: svc, adm: adm, url: srv.URL, roots: roots, manufacturer: mfr}
}

// testPasswordCost is the argon2id cost of the EST users' password hashes
// these tests make, and of the unknown-user burn: they are about who may
// enroll over EST, not about argon2id's cost (internal/credential's tests
// check HashPassword's, internal/admin's AddESTUser's), and at RFC 9106's
// 19 MiB the hash and first check of each fixture's user were 40% of this
// package's test CPU. VerifyPassword reads the cost from the hash, so a
// wrong password is refused and a right one accepted alike.
var testPasswordCost = credential.Cost{Time: 1, MemoryKiB: 64}

// acceptedPasswordLifetime is enroll.New's default checker's: how long an
// accepted password is accepted again without argon2id.
const acceptedPasswordLifetime = 15 * time.Minute

// testBurnHash is what the fixtures' password checker verifies an unknown
// user's password against, at testPasswordCost.
var testBurnHash = sync.OnceValue(func() string {
	h, err := credential.HashPasswordWithCost("scepter-dummy-password", testPasswordCost)
	if err != nil {
		panic(err)
	}
	return h
})

// addESTUser stores an EST user as admin's AddESTUser does (the hash, the
// user, its est_user.added event), its password hashed at testPasswordCost.
func addESTUser(t testing.TB, st store.Store, clock pki.Clock, name, password, profile string) {
	t.Helper()
	hash, err := credential.HashPasswordWithCost(password, testPasswordCost)
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	u := pki.ESTUser{Name: name, PasswordHash: hash, Profile: profile, CreatedAt: now, CreatedBy: "test"}
	ev := pki.AuditEvent{Time: now, Type: pki.EventESTUserAdded, Actor: "test", Profile: profile, Outcome: "success", Detail: "user " + name}
	if err := st.CreateESTUser(context.Background(), u, ev); err != nil {
		t.Fatalf("add EST user %s: %v", name, err)
	}
}

// client is our EST client for the label, trusting our root.
func (f *fixture) client(label string) *client.EST {
	u := f.url
	if label != "" {
		u += "/" + label
	}
	return &client.EST{URL: u, Roots: f.roots, Now: f.clock.Now}
}

// httpClient is a plain net/http client over TLS, trusting our root, with
// an optional client certificate.
func (f *fixture) httpClient(cert *tls.Certificate, maxVersion uint16) *http.Client {
	cfg := &tls.Config{RootCAs: f.roots, Time: f.clock.Now, MaxVersion: maxVersion}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
}

// reply is a read HTTP response.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// post sends body to OP (label/op or op) with optional Basic credentials.
func (f *fixture) post(c *http.Client, path, user, pass string, body []byte, header map[string]string) reply {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.url+est.PathPrefix+path, bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", est.ContentTypePKCS10)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if user != "" || pass != "" {
		req.SetBasicAuth(user, pass)
	}
	return f.do(c, req)
}

func (f *fixture) get(c *http.Client, path string) reply {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.url+est.PathPrefix+path, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.do(c, req)
}

func (f *fixture) do(c *http.Client, req *http.Request) reply {
	f.t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	if resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented {
		f.t.Errorf("%s %s: HTTP %d (%s): never a 5xx for client input", req.Method, req.URL.Path, resp.StatusCode, b)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// issued decodes a certs-only reply and checks the certificate chains to
// our root.
func (f *fixture) issued(r reply) *x509.Certificate {
	f.t.Helper()
	if r.status != http.StatusOK {
		f.t.Fatalf("HTTP %d: %s", r.status, r.body)
	}
	der, err := est.DecodeBase64(r.body)
	if err != nil {
		f.t.Fatal(err)
	}
	sd, err := cms.ParseSignedData(der)
	if err != nil || len(sd.Certificates) != 1 {
		f.t.Fatalf("certs-only reply: %v, %d certificates", err, len(sd.Certificates))
	}
	cert := sd.Certificates[0]
	f.verify(cert)
	return cert
}

func (f *fixture) verify(cert *x509.Certificate) {
	f.t.Helper()
	inter := x509.NewCertPool()
	for _, i := range f.auth.Issuers() {
		inter.AddCert(i.Cert)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: f.roots, Intermediates: inter, CurrentTime: f.clock.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		f.t.Fatalf("issued certificate does not chain to our root: %v", err)
	}
	if cert.IsCA {
		f.t.Fatal("issued certificate is a CA")
	}
}

// record returns the inventory record of cert.
func (f *fixture) record(cert *x509.Certificate) *pki.Certificate {
	f.t.Helper()
	recs, err := f.st.CertificatesBySerial(context.Background(), cert.SerialNumber.Text(16))
	if err != nil || len(recs) != 1 {
		f.t.Fatalf("certificate %x in the inventory: %v (%d records)", cert.SerialNumber, err, len(recs))
	}
	return &recs[0]
}

func wantStatus(t testing.TB, r reply, status int, reasonContains string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("HTTP %d (%s), want %d", r.status, r.body, status)
	}
	if reasonContains != "" && !strings.Contains(strings.ToLower(string(r.body)), strings.ToLower(reasonContains)) {
		t.Errorf("reason %q does not mention %q", r.body, reasonContains)
	}
	if status == http.StatusUnauthorized && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("401 without a Basic WWW-Authenticate: %q", r.header.Get("WWW-Authenticate"))
	}
}

func newKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newCSR makes a base64 CSR (what goes on the wire).
func newCSR(t testing.TB, key crypto.Signer, cn string, tmpl csr.Template) []byte {
	t.Helper()
	tmpl.Subject = pkix.Name{CommonName: cn}
	der, err := csr.Create(tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return est.EncodeBase64(der)
}

// tlsPair turns a certificate and its key into a TLS client certificate.
func tlsPair(cert *x509.Certificate, key crypto.Signer, chain ...*x509.Certificate) *tls.Certificate {
	p := &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
	for _, c := range chain {
		p.Certificate = append(p.Certificate, c.Raw)
	}
	return p
}

// testCA is a small CA outside ours (a manufacturer's, or an unknown one).
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newTestCA(t testing.TB, name string, now time.Time) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

// issue makes a device certificate (an IDevID) for key; each of change
// alters its template first.
func (c *testCA) issue(t testing.TB, cn string, key crypto.Signer, notBefore, notAfter time.Time, change ...func(*x509.Certificate)) *x509.Certificate {
	t.Helper()
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	for _, ch := range change {
		ch(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, key.Public(), c.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}
