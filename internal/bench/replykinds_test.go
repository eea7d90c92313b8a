package bench_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
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

// replyKind is what a test server answers every second enrollment with,
// the others being answered well.
type replyKind struct {
	name string
	// status, contentType and body are the answer, unless signed is set.
	status      int
	contentType string
	body        string
	// signed, when set, makes the answer a well-formed reply of the CA
	// holding this instead: "another key" (a certificate for a key that
	// is not the CSR's) or "another transaction" (SCEP only: a CertRep
	// that does not answer the request).
	signed string
	// want is the failure's reason; bad, whether it is a bad certificate,
	// which --allow-failures does not accept.
	want string
	bad  bool
}

// replyKinds: a reply that is no CMS at all (a proxy's page, an empty or
// garbled body) is a request that did not reach the server, which
// --allow-failures accepts, as a 500; a signed reply whose certificate or
// checks fail is a bad one, which it never accepts (r124: an HTML 200
// counted as a bad certificate).
var replyKinds = []replyKind{
	{name: "HTML 200", status: 200, contentType: "text/html; charset=utf-8", body: "<html><body>502 Bad Gateway (proxy)</body></html>", want: bench.ReasonNotCMS},
	{name: "empty 200", status: 200, contentType: "application/x-pki-message", want: bench.ReasonNotCMS},
	{name: "text garbage 200", status: 200, contentType: "application/octet-stream", body: "hello, not a message", want: bench.ReasonNotCMS},
	{name: "DER-like garbage 200", status: 200, contentType: "application/x-pki-message", body: "\x30\x05\x02\x03\x01\x02\x03", want: bench.ReasonNotCMS},
	{name: "500", status: 500, contentType: "text/plain", body: "internal error", want: "http:500"},
	{name: "certificate of another key", signed: "another key", want: "verify:key", bad: true},
}

// checkReplyKind runs 4 enrollments against a server answering every second
// one with kind and checks how the run counts it and whether
// --allow-failures accepts it.
func checkReplyKind(t *testing.T, protocol string, kind replyKind, res *bench.Result) {
	t.Helper()
	if res.OK != 2 || res.Failed != 2 || res.Failures[kind.want] != 2 || len(res.Failures) != 1 {
		t.Errorf("%s, %s: ok %d failed %d %v, want 2 ok and 2 %q: %v", protocol, kind.name, res.OK, res.Failed, res.Failures, kind.want, res.FirstErrors)
		return
	}
	if wantBad := map[bool]int{true: 2}[kind.bad]; res.BadCerts != wantBad {
		t.Errorf("%s, %s: %d bad certificates, want %d", protocol, kind.name, res.BadCerts, wantBad)
	}
	if err := res.ExitError(true); (err != nil) != kind.bad {
		t.Errorf("%s, %s: ExitError(allow failures) = %v, want an error %v", protocol, kind.name, err, kind.bad)
	}
	if res.ExitError(false) == nil {
		t.Errorf("%s, %s: ExitError without --allow-failures is nil", protocol, kind.name)
	}
}

func TestRunReplyKinds(t *testing.T) {
	scepKinds := append(replyKinds[:len(replyKinds):len(replyKinds)],
		replyKind{name: "CertRep of another transaction", signed: "another transaction", want: "verify:reply", bad: true})
	for _, kind := range scepKinds {
		u := kindsSCEP(t, kind)
		for _, onClock := range []bool{false, true} {
			res, _ := runLying(t, bench.Options{URLs: []string{u}, KeyType: "rsa2048", Count: 4, OnClock: onClock})
			checkReplyKind(t, "scep", kind, res)
		}
	}
	for _, kind := range replyKinds {
		u, roots := kindsEST(t, kind)
		res, _ := runLying(t, bench.Options{Protocol: bench.EST, URLs: []string{u}, KeyType: "p256", Roots: roots, Count: 4})
		checkReplyKind(t, "est", kind, res)
	}
}

// writeKind answers w with kind's status, content type and body.
func writeKind(w http.ResponseWriter, kind replyKind) {
	if kind.contentType != "" {
		w.Header().Set("Content-Type", kind.contentType)
	}
	w.WriteHeader(kind.status)
	io.WriteString(w, kind.body)
}

// kindsSCEP is a SCEP server on 127.0.0.1 whose RSA CA, also its RA,
// answers the odd PKCSReqs (from 0) with kind and the even ones with a
// certificate for the request's key, under serials of their own.
func kindsSCEP(t *testing.T, kind replyKind) string {
	t.Helper()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ca := newLyingCA(t, "Kinds SCEP CA", rsaKey)
	var mu sync.Mutex
	n := 0
	certRep := func(body []byte, kind string, serial int64) ([]byte, error) {
		msg, req, err := ca.readPKCSReq(body, rsaKey)
		if err != nil {
			return nil, err
		}
		var pub crypto.PublicKey = req.PublicKey
		if kind == "another key" {
			pub = ecKey(t).Public()
		}
		inner, err := cms.DegenerateCertificates([]*x509.Certificate{ca.issue(t, serial, req.Subject, pub, lyingNow.Add(-time.Minute))})
		if err != nil {
			return nil, err
		}
		envelope, err := cms.Encrypt(inner, []*x509.Certificate{msg.SignerCert}, cms.EncryptOptions{Cipher: cms.AES256CBC, KeyTransport: cms.RSAPKCS1v15})
		if err != nil {
			return nil, err
		}
		txID := msg.TransactionID
		if kind == "another transaction" {
			txID = "not-" + txID
		}
		return scep.BuildCertRep(scep.Reply{TransactionID: txID, RecipientNonce: msg.SenderNonce, Status: scep.StatusSuccess,
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
			mu.Lock()
			i := n
			n++
			mu.Unlock()
			signed := ""
			if i%2 == 1 {
				if kind.signed == "" {
					writeKind(w, kind)
					return
				}
				signed = kind.signed
			}
			reply, err := certRep(body, signed, int64(100+i))
			if err != nil {
				t.Errorf("kinds server: %v", err)
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
	return srv.URL + "/scep"
}

// kindsEST is an EST server on 127.0.0.1 whose CA (trusted: in roots)
// answers the odd simpleenrolls (from 0) with kind and the even ones with
// a certificate for the CSR's key, under serials of their own.
func kindsEST(t *testing.T, kind replyKind) (url string, roots *x509.CertPool) {
	t.Helper()
	ca := newLyingCA(t, "Kinds EST CA", ecKey(t))
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
			i := n
			n++
			mu.Unlock()
			var pub crypto.PublicKey = req.PublicKey
			if i%2 == 1 {
				if kind.signed == "" {
					writeKind(w, kind)
					return
				}
				pub = ecKey(t).Public() // "another key"
			}
			w.Header().Set("Content-Type", est.ContentTypeCertsOnly)
			w.Write(estCerts(t, ca.issue(t, int64(100+i), req.Subject, pub, lyingNow.Add(-time.Minute))))
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
