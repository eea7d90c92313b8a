package scepserver_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/crl"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/keys/keytest"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/scep/scepserver"
	"github.com/scepter/scepter/internal/server"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite/sqlitetest"
)

// testChallenge is the static challenge of every test server; the captures
// were made with it.
const testChallenge = "capture-secret"

// captureTime is when the captures were made: their signingTime attributes
// are checked against it.
var captureTime = time.Date(2026, 11, 25, 15, 50, 0, 0, time.UTC)

type testServer struct {
	URL       string
	Store     store.Store
	Authority *ca.Authority
	Clock     *pkitest.Clock
	Service   *enroll.Service
	Admin     *admin.Service
	RA        *pki.RA
	Dir       string
	// CRL publishes the CRLs GetCRL returns; tests call its Update.
	CRL *crl.Publisher
}

// captureRA answers with the capture CA as RA, so captured requests
// (encrypted to it) can be replayed; issuance stays with our CA.
type captureRA struct {
	*enroll.Service
	ra *pki.RA
}

func (c captureRA) ActiveRA() *pki.RA { return c.ra }

func (c captureRA) NextRA() (*pki.RA, bool) { return nil, false }

func (c captureRA) RAs() []*pki.RA { return []*pki.RA{c.ra} }

type serverOptions struct {
	scep scepserver.Options
	// raCert/raKey replace the RA (the capture CA, to replay captures).
	raCert *x509.Certificate
	raKey  crypto.Signer
	// ca chooses the CA's key type and RA mode.
	ca ca.InitOptions
	// enroll sets profiles (the static challenge is always testChallenge).
	enroll enroll.Config
	// wrap, when set, wraps the handler the test server serves.
	wrap func(http.Handler) http.Handler
	// service, when set, wraps the service the handler is given.
	service func(scepserver.Service) scepserver.Service
	// store, when set, wraps the store the service is given (one that
	// fails); testServer.Store stays the store itself.
	store func(store.Store) store.Store
	// log, when set, is the service's and the handler's logger.
	log *slog.Logger
	// db, when set, is the store instead of a new SQLite one (a
	// PostgreSQL store its opener closes).
	db store.Store
}

// testKeys makes the RSA keys of the tests' CAs and RAs: the RA key each
// newTestServer generated was 30% of this package's test CPU. Any 8 keys
// drawn one after another are distinct, more than any test draws (at most
// 5: three foreign CAs' RAs, the server's RA and its replacement in
// TestEnvelopeToFormerOrForeignRA), and none of these tests runs in
// parallel, so an RA that a test takes for another CA's, or for a
// replaced one, still has a key of its own.
var testKeys = keytest.NewPool(8)

func newTestServer(t testing.TB, o serverOptions) *testServer {
	t.Helper()
	dir := t.TempDir()
	clock := pkitest.NewClock(captureTime)
	if o.ca.GenerateKey == nil {
		o.ca.GenerateKey = testKeys.Generate
	}
	authority, _, err := ca.LoadOrCreate(dir, o.ca, clock)
	if err != nil {
		t.Fatal(err)
	}
	st := o.db
	if st == nil {
		st = sqlitetest.Open(t, filepath.Join(dir, "scepter.db"))
	}
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if o.log != nil {
		log = o.log
	}
	cfg := o.enroll
	cfg.StaticChallenge = testChallenge
	publisher := crl.New(st, authority, clock, log, crl.Config{})
	if cfg.CRLs == nil {
		cfg.CRLs = publisher
	}
	var svcStore store.Store = st
	if o.store != nil {
		svcStore = o.store(st)
	}
	svc, err := enroll.New(svcStore, authority, clock, log, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var hsvc scepserver.Service = svc
	ra := svc.ActiveRA()
	if o.raCert != nil {
		ra = &pki.RA{Cert: o.raCert, Key: o.raKey, Chain: []*x509.Certificate{o.raCert}}
		hsvc = captureRA{svc, ra}
	}
	if o.service != nil {
		hsvc = o.service(hsvc)
	}
	h, err := scepserver.New(hsvc, clock, log, o.scep)
	if err != nil {
		t.Fatal(err)
	}
	// Mounted as the server mounts it, NDES's paths in any case included.
	mux, err := server.TLSMux(server.Handlers{SCEP: h})
	if err != nil {
		t.Fatal(err)
	}
	var served http.Handler = mux
	if o.wrap != nil {
		served = o.wrap(mux)
	}
	srv := httptest.NewServer(served)
	t.Cleanup(srv.Close)
	return &testServer{URL: srv.URL, Store: st, Authority: authority, Clock: clock, Service: svc, Admin: newAdmin(st, clock, log, svc), RA: ra, Dir: dir,
		CRL: publisher}
}

func (ts *testServer) certCount(t *testing.T) int {
	t.Helper()
	certs, _, err := ts.Store.ListCertificates(context.Background(), store.CertFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(certs)
}

// rawRequest sends exact bytes over TCP (to keep a client's HTTP/1.0 request
// without Host, or its missing Content-Type) and returns the response.
func (ts *testServer) rawRequest(t *testing.T, raw []byte) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", ts.URL[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write(raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	return readResponse(t, resp, err)
}

// readResponse reads a whole response (err is the request's error).
func readResponse(t testing.TB, resp *http.Response, err error) (*http.Response, []byte) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// parseReply parses and verifies a CertRep against the RA certificate and
// checks it answers the request.
func (ts *testServer) parseReply(t *testing.T, body []byte, req *scep.PKIMessage) *scep.PKIMessage {
	t.Helper()
	rep, err := scep.Parse(body)
	if err != nil {
		t.Fatalf("reply: %v", err)
	}
	if err := rep.VerifyWith(ts.RA.Cert); err != nil {
		t.Fatalf("reply signature: %v", err)
	}
	if rep.MessageType != scep.CertRep {
		t.Errorf("reply messageType %s", rep.MessageType)
	}
	if req != nil {
		if rep.TransactionID != req.TransactionID {
			t.Errorf("transactionID %q, want %q", rep.TransactionID, req.TransactionID)
		}
		if !bytes.Equal(rep.RecipientNonce, req.SenderNonce) {
			t.Errorf("recipientNonce does not echo the senderNonce")
		}
		if bytes.Equal(rep.SenderNonce, req.SenderNonce) || len(rep.SenderNonce) != 16 {
			t.Errorf("reply senderNonce must be 16 fresh bytes, got %x", rep.SenderNonce)
		}
	}
	return rep
}

// issuedCert decrypts a SUCCESS CertRep with the requester's key and checks
// the certificate chains to our root.
func (ts *testServer) issuedCert(t *testing.T, rep *scep.PKIMessage, recipient *x509.Certificate, key crypto.Decrypter) (*x509.Certificate, cms.ContentCipher) {
	t.Helper()
	if rep.PKIStatus != scep.StatusSuccess {
		t.Fatalf("pkiStatus %s failInfo %s (%s), want SUCCESS", rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
	}
	env, err := cms.ParseEnvelopedData(rep.SignedData.Content)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := env.DecryptKeyTransport(recipient, key)
	if err != nil {
		t.Fatalf("decrypt reply: %v", err)
	}
	sd, err := cms.ParseSignedData(inner)
	if err != nil {
		t.Fatal(err)
	}
	if len(sd.Certificates) == 0 {
		t.Fatal("no certificate in reply")
	}
	cert := sd.Certificates[0]
	roots := x509.NewCertPool()
	roots.AddCert(ts.Authority.Root)
	inter := x509.NewCertPool()
	for _, i := range ts.Authority.Issuers() {
		inter.AddCert(i.Cert)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: ts.Clock.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("issued certificate does not chain to our root: %v", err)
	}
	if cert.IsCA {
		t.Fatal("issued certificate is a CA")
	}
	return cert, env.Cipher
}

func readPEMKey(t *testing.T, path string) crypto.Signer {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	if k, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
		return k.(crypto.Signer)
	}
	if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		return k
	}
	k, err := x509.ParseECPrivateKey(blk.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return k
}

func readPEMCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newAdmin is the admin service over the same profiles as svc.
func newAdmin(st store.Store, clock pki.Clock, log *slog.Logger, svc *enroll.Service) *admin.Service {
	profiles, def := svc.Profiles()
	return admin.New(st, clock, log, profiles, def)
}
