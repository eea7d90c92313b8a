package bench_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/bench"
	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/scep"
)

// lyingNow is the clock of the lying servers and of the runs against them.
var lyingNow = time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)

// lyingCA is a CA the lying servers sign with: a real key, and the
// template of every certificate they issue.
type lyingCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// readPKCSReq reads a PKCSReq sent to ca as its RA: the message, and the
// request its envelope holds for key, ca's.
func (ca *lyingCA) readPKCSReq(body []byte, key crypto.Decrypter) (*scep.PKIMessage, *x509.CertificateRequest, error) {
	msg, err := scep.Parse(body)
	if err != nil {
		return nil, nil, err
	}
	env, err := cms.ParseEnvelopedData(msg.SignedData.Content)
	if err != nil {
		return nil, nil, err
	}
	plain, err := env.DecryptKeyTransport(ca.cert, key)
	if err != nil {
		return nil, nil, err
	}
	req, err := x509.ParseCertificateRequest(plain)
	if err != nil {
		return nil, nil, err
	}
	return msg, req, nil
}

func newLyingCA(t *testing.T, name string, key crypto.Signer) *lyingCA {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: lyingNow.Add(-24 * time.Hour), NotAfter: lyingNow.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &lyingCA{cert: cert, key: key}
}

// issue signs a certificate for pub under serial, valid from notBefore for
// an hour.
func (ca *lyingCA) issue(t *testing.T, serial int64, subject pkix.Name, pub crypto.PublicKey, notBefore time.Time) *x509.Certificate {
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: subject, NotBefore: notBefore, NotAfter: notBefore.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	if subject.CommonName == "127.0.0.1" {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Error(err)
		return nil
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

func (ca *lyingCA) id() string {
	sum := sha256.Sum256(ca.cert.Raw)
	return hex.EncodeToString(sum[:])
}

func ecKey(t *testing.T) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// lyingEST is an EST server on 127.0.0.1 whose CA (trusted: in roots)
// answers simpleenroll as lie says: lie(n, csr) is the reply body to the
// n-th request (from 0), holding certificates only.
func lyingEST(t *testing.T, ca *lyingCA, lie func(n int, req *x509.CertificateRequest) []byte) (url string, roots *x509.CertPool) {
	t.Helper()
	var mu sync.Mutex
	n := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch strings.TrimPrefix(r.URL.Path, est.PathPrefix) {
		case est.OpCACerts:
			w.Header().Set("Content-Type", est.ContentTypeCertsOnly)
			w.Write(estCerts(t, ca.cert))
		case est.OpSimpleEnroll:
			req, ok := readCSR(w, r)
			if !ok {
				return
			}
			mu.Lock()
			reply := lie(n, req)
			n++
			mu.Unlock()
			w.Header().Set("Content-Type", est.ContentTypeCertsOnly)
			w.Write(reply)
		default:
			http.NotFound(w, r)
		}
	}))
	tlsKey := ecKey(t)
	tlsCert := ca.issue(t, 2, pkix.Name{CommonName: "127.0.0.1"}, tlsKey.Public(), lyingNow.Add(-time.Minute))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{tlsCert.Raw}, PrivateKey: tlsKey}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots = x509.NewCertPool()
	roots.AddCert(ca.cert)
	return srv.URL, roots
}

// estCerts is an EST certs-only reply body.
func estCerts(t *testing.T, certs ...*x509.Certificate) []byte {
	p7, err := cms.DegenerateCertificates(certs)
	if err != nil {
		t.Error(err)
	}
	return est.EncodeBase64(p7)
}

func runLying(t *testing.T, o bench.Options) (*bench.Result, []string) {
	t.Helper()
	var serials bytes.Buffer
	o.SerialsOut, o.Now, o.Timeout, o.Challenge = &serials, func() time.Time { return lyingNow }, 20*time.Second, "any"
	res := run(t, o)
	return res, strings.Split(strings.TrimSpace(serials.String()), "\n")
}

// A server that answers every simpleenroll after the first with the
// first reply's bytes gives one certificate, one serial, to every client:
// each repeat fails by its key (verify:key, once each) and counts among
// the duplicate serials (r84 D1: 0 duplicate serials).
func TestRunRepeatedReplyCountsDuplicates(t *testing.T) {
	ca := newLyingCA(t, "Lying CA", ecKey(t))
	var first []byte
	u, roots := lyingEST(t, ca, func(n int, req *x509.CertificateRequest) []byte {
		if first == nil {
			first = estCerts(t, ca.issue(t, 7, req.Subject, req.PublicKey, lyingNow.Add(-time.Minute)), ca.cert)
		}
		return first
	})
	// One client, replies checked on the clock: in the order received.
	res, serials := runLying(t, bench.Options{Protocol: bench.EST, URLs: []string{u}, KeyType: "p256", Roots: roots, Count: 6, OnClock: true})
	if res.OK != 1 || res.Failures["verify:key"] != 5 || len(res.Failures) != 1 || res.Duplicates != 5 || res.BadCerts != 5 {
		t.Fatalf("ok %d failed %d %v dup %d bad %d, want 5 verify:key, 5 duplicates, 5 bad: %v",
			res.OK, res.Failed, res.Failures, res.Duplicates, res.BadCerts, res.FirstErrors)
	}
	if len(res.FirstErrors) != 1 || !strings.Contains(res.FirstErrors[0], "the reply holds no certificate for the CSR's key; and serial (hex) 07 was received before from the same issuer") {
		t.Errorf("first errors %q: want the key's fault and the repeated serial", res.FirstErrors)
	}
	if len(serials) != 6 {
		t.Errorf("%d serials listed, want every certificate received (6): %q", len(serials), serials)
	}
	for _, line := range serials {
		if f := strings.Fields(line); len(f) != 3 || f[0] != "07" || f[1] != ca.id() {
			t.Errorf("serials line %q, want 07 %s URL", line, ca.id())
		}
	}
	err := res.ExitError(true)
	if err == nil || err.Error() != "5 replies or certificates failed verification, 5 duplicate serials" {
		t.Errorf("ExitError(true) = %v", err)
	}
}

// A serial first received on a certificate that failed (here expired) is
// a duplicate when a good certificate repeats it; and certificates signed
// by no CA the run trusts have their serials counted too, per the issuer
// name they give.
func TestRunDuplicateOfARejectedCertificate(t *testing.T) {
	t.Run("expired first", func(t *testing.T) {
		ca := newLyingCA(t, "Lying CA", ecKey(t))
		u, roots := lyingEST(t, ca, func(n int, req *x509.CertificateRequest) []byte {
			notBefore := lyingNow.Add(-time.Minute)
			if n == 0 {
				notBefore = lyingNow.Add(-2 * time.Hour) // expired an hour ago
			}
			return estCerts(t, ca.issue(t, 7, req.Subject, req.PublicKey, notBefore))
		})
		res, serials := runLying(t, bench.Options{Protocol: bench.EST, URLs: []string{u}, KeyType: "p256", Roots: roots, Count: 4, OnClock: true})
		if res.OK != 0 || res.Failures["verify:expired"] != 1 || res.Failures["verify:duplicate"] != 3 || res.Duplicates != 3 || res.BadCerts != 1 {
			t.Fatalf("ok %d failures %v dup %d bad %d, want 0 ok, expired 1, duplicate 3: %v",
				res.OK, res.Failures, res.Duplicates, res.BadCerts, res.FirstErrors)
		}
		if len(serials) != 4 {
			t.Errorf("%d serials listed, want 4: %q", len(serials), serials)
		}
	})
	t.Run("untrusted issuer", func(t *testing.T) {
		ca := newLyingCA(t, "Lying CA", ecKey(t))
		foreign := newLyingCA(t, "Lying CA", ecKey(t)) // the same name, another key
		u, roots := lyingEST(t, ca, func(n int, req *x509.CertificateRequest) []byte {
			return estCerts(t, foreign.issue(t, 7, req.Subject, req.PublicKey, lyingNow.Add(-time.Minute)))
		})
		res, serials := runLying(t, bench.Options{Protocol: bench.EST, URLs: []string{u}, KeyType: "p256", Roots: roots, Count: 3})
		if res.OK != 0 || res.Failures["verify:chain"] != 3 || res.Duplicates != 2 || res.BadCerts != 3 {
			t.Fatalf("ok %d failures %v dup %d bad %d, want chain 3, 2 duplicates: %v",
				res.OK, res.Failures, res.Duplicates, res.BadCerts, res.FirstErrors)
		}
		for _, line := range serials {
			if f := strings.Fields(line); len(f) != 3 || f[0] != "07" || f[1] != "-" {
				t.Errorf("serials line %q, want 07 - URL (no trusted issuer)", line)
			}
		}
	})
	// A foreign CA that gives the trusted issuer's name, byte for byte,
	// repeats that issuer's serial as far as a relying party going by
	// issuer name and serial (a CRL) can tell: every one of its
	// certificates under the serial the trusted CA issued is a duplicate,
	// whichever was checked first (r86 D1: 3 duplicates, the foreign ones
	// among themselves only).
	t.Run("untrusted issuer under the trusted name", func(t *testing.T) {
		for _, onClock := range []bool{true, false} {
			ca := newLyingCA(t, "Lying CA", ecKey(t))
			foreign := newLyingCA(t, "Lying CA", ecKey(t)) // the same name, another key
			if !bytes.Equal(foreign.cert.RawSubject, ca.cert.RawSubject) {
				t.Fatal("the foreign CA's name is not the trusted one's")
			}
			u, roots := lyingEST(t, ca, func(n int, req *x509.CertificateRequest) []byte {
				signer := foreign
				if n == 0 {
					signer = ca
				}
				return estCerts(t, signer.issue(t, 7, req.Subject, req.PublicKey, lyingNow.Add(-time.Minute)))
			})
			res, serials := runLying(t, bench.Options{Protocol: bench.EST, URLs: []string{u}, KeyType: "p256", Roots: roots,
				Count: 5, Concurrency: 1, OnClock: onClock})
			// The trusted CA's certificate is ok when checked first, else
			// the duplicate of a foreign one.
			if res.OK+res.Failures["verify:duplicate"] != 1 || res.Failures["verify:chain"] != 4 || res.Duplicates != 4 || res.BadCerts != 4 {
				t.Fatalf("on clock %v: ok %d failures %v dup %d bad %d, want chain 4 and 4 duplicates: %v",
					onClock, res.OK, res.Failures, res.Duplicates, res.BadCerts, res.FirstErrors)
			}
			if onClock && res.OK != 1 {
				t.Errorf("on clock: ok %d, want the first reply's certificate ok", res.OK)
			}
			trusted := 0
			for _, line := range serials {
				f := strings.Fields(line)
				if len(f) != 3 || f[0] != "07" || f[1] != "-" && f[1] != ca.id() {
					t.Errorf("serials line %q, want 07, the trusted issuer's ID or -, URL", line)
				}
				if len(f) == 3 && f[1] == ca.id() {
					trusted++
				}
			}
			if len(serials) != 5 || trusted != 1 {
				t.Errorf("on clock %v: %d serials listed, %d under the trusted issuer's ID; want 5, 1: %q", onClock, len(serials), trusted, serials)
			}
		}
	})
}

// lyingSCEP is a SCEP server on 127.0.0.1 whose RSA CA, also its RA,
// answers every PKCSReq with a well-formed CertRep (signed, for the
// request's transaction and nonce, encrypted to its signer) holding the
// certificate it issued for the first request: another client's.
func lyingSCEP(t *testing.T) (url string, ca *lyingCA) {
	t.Helper()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ca = newLyingCA(t, "Lying SCEP CA", rsaKey)
	var mu sync.Mutex
	var first *x509.Certificate
	certRep := func(body []byte) ([]byte, error) {
		msg, req, err := ca.readPKCSReq(body, rsaKey)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		if first == nil {
			first = ca.issue(t, 7, req.Subject, req.PublicKey, lyingNow.Add(-time.Minute))
		}
		cert := first
		mu.Unlock()
		inner, err := cms.DegenerateCertificates([]*x509.Certificate{cert})
		if err != nil {
			return nil, err
		}
		envelope, err := cms.Encrypt(inner, []*x509.Certificate{msg.SignerCert}, cms.EncryptOptions{Cipher: cms.AES256CBC, KeyTransport: cms.RSAPKCS1v15})
		if err != nil {
			return nil, err
		}
		return scep.BuildCertRep(scep.Reply{TransactionID: msg.TransactionID, RecipientNonce: msg.SenderNonce, Status: scep.StatusSuccess,
			Digest: crypto.SHA256, Envelope: envelope, SigningTime: lyingNow}, scep.Identity{Cert: ca.cert, Key: rsaKey})
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("operation") {
		case "GetCACaps":
			w.Write([]byte("AES\nPOSTPKIOperation\nSHA-256\nSCEPStandard\n"))
		case "GetCACert":
			w.Header().Set("Content-Type", "application/x-x509-ca-cert")
			w.Write(ca.cert.Raw)
		case "PKIOperation":
			body, _ := io.ReadAll(r.Body)
			reply, err := certRep(body)
			if err != nil {
				t.Errorf("lying server: %v", err)
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/x-pki-message")
			w.Write(reply)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/scep", ca
}

// Over SCEP, a CertRep that holds another client's certificate fails by
// its key, and the repeated serial is counted, whether the replies are
// checked after the clock or on it.
func TestRunSCEPRepeatedCertificateCountsDuplicates(t *testing.T) {
	for _, onClock := range []bool{false, true} {
		u, ca := lyingSCEP(t)
		res, serials := runLying(t, bench.Options{URLs: []string{u}, KeyType: "rsa2048", Count: 4, Concurrency: 2, OnClock: onClock})
		// The first client's certificate is ok, or a duplicate when a
		// repeat of it was checked first.
		if res.OK+res.Failures["verify:duplicate"] != 1 || res.Failures["verify:key"] != 3 || res.Attempted != 4 || res.Duplicates != 3 || res.BadCerts != 3 {
			t.Fatalf("on clock %v: ok %d failures %v dup %d bad %d, want verify:key for all but the first client's, each a duplicate: %v",
				onClock, res.OK, res.Failures, res.Duplicates, res.BadCerts, res.FirstErrors)
		}
		if len(serials) != 4 {
			t.Errorf("on clock %v: %d serials listed, want 4: %q", onClock, len(serials), serials)
		}
		for _, line := range serials {
			if f := strings.Fields(line); len(f) != 3 || f[0] != "07" || f[1] != ca.id() {
				t.Errorf("serials line %q, want 07 %s URL", line, ca.id())
			}
		}
	}
}

// Replies checked after the clock are recorded in the order they came:
// the genuine certificate, received first, is ok, and each later copy of
// its serial fails by its key (r143 D1: the cores' order decided, and at
// times the genuine one failed as the duplicate of a copy).
func TestRunDeferredChecksRecordInArrivalOrder(t *testing.T) {
	for round := range 5 {
		ca := newLyingCA(t, "Lying CA", ecKey(t))
		var first []byte
		u, roots := lyingEST(t, ca, func(n int, req *x509.CertificateRequest) []byte {
			if first == nil {
				first = estCerts(t, ca.issue(t, 7, req.Subject, req.PublicKey, lyingNow.Add(-time.Minute)), ca.cert)
			}
			return first
		})
		res, _ := runLying(t, bench.Options{Protocol: bench.EST, URLs: []string{u}, KeyType: "p256", Roots: roots, Count: 12, Concurrency: 1})
		if res.OK != 1 || res.Failures["verify:key"] != 11 || len(res.Failures) != 1 || res.Duplicates != 11 {
			t.Fatalf("round %d: ok %d failures %v dup %d, want ok 1, 11 verify:key, 11 duplicates: %v",
				round, res.OK, res.Failures, res.Duplicates, res.FirstErrors)
		}
	}
}
