package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// reenrollEST is an EST server that answers simplereenroll as scepter's
// does when a renewal is asked for again: with the certificate already
// issued for that key. dropFirst loses the first answer after issuing (the
// connection closes); refuse answers every request with that status.
type reenrollEST struct {
	t         *testing.T
	now       time.Time
	ca        *x509.Certificate
	caKey     crypto.Signer
	dropFirst bool
	refuse    int

	mu      sync.Mutex
	dropped bool
	issued  map[string]*x509.Certificate // by public key
	asked   []crypto.PublicKey
}

func (s *reenrollEST) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reply := func(certs ...*x509.Certificate) {
		der, _ := cms.DegenerateCertificates(certs)
		w.Header().Set("Content-Type", est.ContentTypeCertsOnly)
		w.Write(est.EncodeBase64(der))
	}
	switch strings.TrimPrefix(r.URL.Path, est.PathPrefix) {
	case est.OpCACerts:
		reply(s.ca)
	case est.OpSimpleReenroll:
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.refuse != 0 {
			http.Error(w, "no", s.refuse)
			return
		}
		body, _ := io.ReadAll(r.Body)
		der, err := est.DecodeBase64(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req, err := x509.ParseCertificateRequest(der)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.asked = append(s.asked, req.PublicKey)
		spki, _ := x509.MarshalPKIXPublicKey(req.PublicKey)
		cert := s.issued[string(spki)]
		if cert == nil {
			cert = s.issue(req.Subject, req.PublicKey, int64(100+len(s.issued)))
			s.issued[string(spki)] = cert
		}
		if s.dropFirst && !s.dropped {
			s.dropped = true
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		reply(cert)
	default:
		http.NotFound(w, r)
	}
}

func (s *reenrollEST) issue(subject pkix.Name, pub crypto.PublicKey, serial int64) *x509.Certificate {
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: subject,
		NotBefore: s.now.Add(-time.Minute), NotAfter: s.now.Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
		s.ca, pub, s.caKey)
	if err != nil {
		s.t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

// startReenrollEST starts s on 127.0.0.1 over TLS and returns its URL and
// the file of its CA certificate.
func startReenrollEST(t *testing.T, s *reenrollEST) (string, string) {
	t.Helper()
	s.now = pki.SystemClock{}.Now() // the command checks with the real clock
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Reenroll CA"}, NotBefore: s.now.Add(-time.Hour),
		NotAfter: s.now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	s.ca, _ = x509.ParseCertificate(caDER)
	s.caKey = caKey
	s.issued = map[string]*x509.Certificate{}
	tlsKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tlsDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: s.now.Add(-time.Hour), NotAfter: s.now.Add(24 * time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, s.ca, tlsKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(s)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{tlsDER}, PrivateKey: tlsKey}}, ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := keys.WriteCertFile(caFile, s.ca); err != nil {
		t.Fatal(err)
	}
	return srv.URL, caFile
}

// `scepter est reenroll --rekey` keeps the new key before it asks: when the
// answer is lost after the server issued, running the same command again
// asks with the same key and gets the certificate issued for it; key.pem
// and cert.pem keep the old pair meanwhile. A refusal (4xx) drops the
// kept key, and the next run makes a new one.
func TestESTReenrollRekeyWithLostAnswerAsksAgainWithTheSameKey(t *testing.T) {
	for _, tt := range []struct {
		name      string
		dropFirst bool
		refuse    int
		want      string // in the first run's error
		kept      bool   // key.pem.pending after the first run
	}{
		{"answer lost", true, 0, "the new key is kept in ", true},
		{"refused", false, http.StatusForbidden, "HTTP 403", false},
		{"rate limited", false, http.StatusTooManyRequests, "the new key is kept in ", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &reenrollEST{t: t, dropFirst: tt.dropFirst, refuse: tt.refuse}
			u, caFile := startReenrollEST(t, s)
			d := t.TempDir()
			path := func(name string) string { return filepath.Join(d, name) }
			oldKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err := keys.WriteCertFile(path("cert.pem"), s.issue(pkix.Name{CommonName: "device"}, oldKey.Public(), 50)); err != nil {
				t.Fatal(err)
			}
			if err := keys.WriteKeyFile(path("key.pem"), oldKey); err != nil {
				t.Fatal(err)
			}
			reenroll := func() (string, error) {
				return runCLI("est", "reenroll", "--url", u, "--cacert", caFile, "--cert", path("cert.pem"), "--key", path("key.pem"), "--rekey",
					"--out", path("cert.pem"), "--key-out", path("key.pem"))
			}
			out, err := reenroll()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("first reenroll: %v, want %q\n%s", err, tt.want, out)
			}
			if !pki.SamePublicKey(oldKey.Public(), loadKey(t, path("key.pem")).Public()) || !pki.SamePublicKey(oldKey.Public(), certKey(t, path("cert.pem"))) {
				t.Fatal("the failed reenroll changed key.pem or cert.pem")
			}
			_, statErr := os.Stat(path("key.pem.pending"))
			if kept := statErr == nil; kept != tt.kept {
				t.Fatalf("key.pem.pending kept: %v, want %v", kept, tt.kept)
			}
			if !tt.kept {
				return
			}
			kept := loadKey(t, path("key.pem.pending")).Public()
			if strings.Contains(err.Error(), "kept in ") && !strings.Contains(err.Error(), path("key.pem.pending")) {
				t.Errorf("the error does not say where the key is: %v", err)
			}
			s.mu.Lock()
			s.refuse = 0
			s.mu.Unlock()
			if out, err := reenroll(); err != nil {
				t.Fatalf("reenroll again: %v\n%s", err, out)
			}
			if !pki.SamePublicKey(kept, certKey(t, path("cert.pem"))) || !pki.SamePublicKey(kept, loadKey(t, path("key.pem")).Public()) {
				t.Error("the renewed pair is not for the key kept by the first run")
			}
			if _, err := os.Stat(path("key.pem.pending")); !os.IsNotExist(err) {
				t.Errorf("key.pem.pending left after the renewal: %v", err)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if len(s.issued) != 1 {
				t.Errorf("%d certificates issued, want one", len(s.issued))
			}
		})
	}
}
