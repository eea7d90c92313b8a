package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
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
// connection closes); refuse answers every request with that status;
// rename, when set, gives the certificates it issues its subject and DNS
// names instead of the CSR's (simpleenroll too).
type reenrollEST struct {
	t         *testing.T
	now       time.Time
	ca        *x509.Certificate
	caKey     crypto.Signer
	dropFirst bool
	// badFirst answers the first request with no certificate for its key
	// (only the CA's), after issuing.
	badFirst bool
	refuse   int
	// hold answers that many requests 202 (held for approval), after refuse.
	hold int
	// authenticate is the WWW-Authenticate of a refusal, none when "".
	authenticate string
	rename       *x509.Certificate
	// cacertsAlso are sent in /cacerts after the CA.
	cacertsAlso []*x509.Certificate
	// busy answers that many requests 503, first of all, with
	// Retry-After: busyRetryAfter when it is not "".
	busy           int
	busyRetryAfter string

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
		reply(append([]*x509.Certificate{s.ca}, s.cacertsAlso...)...)
	case est.OpSimpleReenroll, est.OpSimpleEnroll:
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.busy > 0 {
			s.busy--
			if s.busyRetryAfter != "" {
				w.Header().Set("Retry-After", s.busyRetryAfter)
			}
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		if s.refuse != 0 {
			if s.authenticate != "" {
				w.Header().Set("WWW-Authenticate", s.authenticate)
			}
			http.Error(w, "no", s.refuse)
			return
		}
		if s.hold > 0 {
			s.hold--
			w.Header().Set("Retry-After", "60")
			w.WriteHeader(http.StatusAccepted)
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
			names := &x509.Certificate{Subject: req.Subject, DNSNames: req.DNSNames}
			if s.rename != nil {
				names = s.rename
			}
			cert = s.issueNames(names, req.PublicKey, int64(100+len(s.issued)))
			s.issued[string(spki)] = cert
		}
		if s.badFirst && !s.dropped {
			s.dropped = true
			reply(s.ca)
			return
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
	return s.issueNames(&x509.Certificate{Subject: subject}, pub, serial)
}

// issueNames issues a certificate with the subject and DNS names of names.
func (s *reenrollEST) issueNames(names *x509.Certificate, pub crypto.PublicKey, serial int64) *x509.Certificate {
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: names.Subject, DNSNames: names.DNSNames,
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

// `scepter est reenroll` refuses a certificate for other names than the one
// it renews (RFC 7030 §4.2.2), however well it chains and whatever its
// key: cert.pem and key.pem stay as they were, and a key made for it
// (--rekey) is not kept. Names that differ only where RFC 5280 ignores case
// are the same names.
func TestESTReenrollRefusesACertificateForOtherNames(t *testing.T) {
	device := &x509.Certificate{Subject: pkix.Name{CommonName: "device"}, DNSNames: []string{"device.example", "alt.example"}}
	for _, tt := range []struct {
		name   string
		rename *x509.Certificate
		rekey  bool
		held   bool   // key.pem.pending holds a key from an earlier run
		want   string // in the error; "" for a renewal
	}{
		{"other subject", &x509.Certificate{Subject: pkix.Name{CommonName: "someone-else"}, DNSNames: device.DNSNames}, false, false, `subject "CN=someone-else", not "CN=device"`},
		{"other subject, rekey", &x509.Certificate{Subject: pkix.Name{CommonName: "someone-else"}, DNSNames: device.DNSNames}, true, false, `subject "CN=someone-else", not "CN=device"`},
		{"other subject, rekey with a kept key", &x509.Certificate{Subject: pkix.Name{CommonName: "someone-else"}, DNSNames: device.DNSNames}, true, true, `subject "CN=someone-else"`},
		{"other DNS name", &x509.Certificate{Subject: device.Subject, DNSNames: []string{"device.example", "evil.example"}}, false, false, "DNS names [device.example evil.example], not [alt.example device.example]"},
		{"a DNS name fewer, rekey", &x509.Certificate{Subject: device.Subject, DNSNames: []string{"device.example"}}, true, false, "DNS names"},
		{"same names, other order and case", &x509.Certificate{Subject: device.Subject, DNSNames: []string{"ALT.example", "Device.Example"}}, false, false, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &reenrollEST{t: t}
			u, caFile := startReenrollEST(t, s)
			s.rename = tt.rename
			d := t.TempDir()
			path := func(name string) string { return filepath.Join(d, name) }
			oldKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			old := s.issueNames(device, oldKey.Public(), 50)
			if err := keys.WriteCertFile(path("cert.pem"), old); err != nil {
				t.Fatal(err)
			}
			if err := keys.WriteKeyFile(path("key.pem"), oldKey); err != nil {
				t.Fatal(err)
			}
			if tt.held {
				heldKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				if err := keys.WriteKeyFile(path("key.pem.pending"), heldKey); err != nil {
					t.Fatal(err)
				}
				if err := writeHeldMarker(path("key.pem.pending"), heldKey.Public(), renewalRequest("est reenroll", old), holdAnswered); err != nil {
					t.Fatal(err)
				}
			}
			args := []string{"est", "reenroll", "--url", u, "--cacert", caFile, "--cert", path("cert.pem"), "--key", path("key.pem"),
				"--out", path("cert.pem"), "--key-out", path("key.pem")}
			if tt.rekey {
				args = append(args, "--rekey")
			}
			out, err := runCLI(args...)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("reenroll: %v\n%s", err, out)
				}
				if got := loadCert(t, path("cert.pem")); got.SerialNumber.Cmp(old.SerialNumber) == 0 {
					t.Error("cert.pem was not renewed")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "refusing what the server returned") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("reenroll: %v, want a refusal saying %q\n%s", err, tt.want, out)
			}
			if got := loadCert(t, path("cert.pem")); !got.Equal(old) {
				t.Errorf("cert.pem was replaced by serial %s", got.SerialNumber)
			}
			if !pki.SamePublicKey(oldKey.Public(), loadKey(t, path("key.pem")).Public()) {
				t.Error("key.pem was replaced")
			}
			if _, err := os.Stat(path("chain.pem")); !os.IsNotExist(err) {
				t.Errorf("chain.pem written: %v", err)
			}
			if _, err := os.Stat(path("key.pem.pending")); !os.IsNotExist(err) {
				t.Errorf("the key made for the refused certificate is kept: %v", err)
			}
		})
	}
}

// `scepter est enroll` writes a certificate whose names the server chose
// (a profile may fix the subject), and says on stderr which names it asked
// for and which it got.
func TestESTEnrollWarnsOfOtherNames(t *testing.T) {
	s := &reenrollEST{t: t}
	u, caFile := startReenrollEST(t, s)
	s.rename = &x509.Certificate{Subject: pkix.Name{CommonName: "fixed-by-profile"}}
	d := t.TempDir()
	e, stdout, stderr := testEnv(nil)
	err := run(context.Background(), e, []string{"est", "enroll", "--url", u, "--cacert", caFile, "--subject", "CN=asked",
		"--out", filepath.Join(d, "cert.pem"), "--key-out", filepath.Join(d, "key.pem")})
	if err != nil {
		t.Fatalf("enroll: %v\n%s%s", err, stdout, stderr)
	}
	if got := loadCert(t, filepath.Join(d, "cert.pem")); got.Subject.CommonName != "fixed-by-profile" {
		t.Errorf("cert.pem is for %s", got.Subject)
	}
	if want := `warning: the server issued other names than the request asked for: subject "CN=fixed-by-profile", not "CN=asked"`; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q does not say %q", stderr, want)
	}
}

func loadCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	certs, err := keys.LoadCertFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

// A new key kept by a `est reenroll --rekey` whose answer was lost is
// taken up by the next run; when that run is refused (a 4xx other than
// 401, 408 and 429), the key is useless and removed with its marker, as
// README says, and the run after makes a new one; after a failure that may
// pass it stays (r57 D6), and so it does after a wrong password (401): the
// request was not refused, and its certificate, issued or approved, is
// given only for that key (r63 D2).
func TestESTReenrollRefusalRemovesAKeyKeptByAnEarlierRun(t *testing.T) {
	for _, tt := range []struct {
		status int
		kept   bool // key.pem.pending after the refused run
	}{
		{http.StatusUnauthorized, true},
		{http.StatusForbidden, false},
		{http.StatusTooManyRequests, true},
		{http.StatusRequestTimeout, true},
		{http.StatusServiceUnavailable, true},
	} {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			s := &reenrollEST{t: t, dropFirst: true}
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
			if out, err := reenroll(); err == nil || !strings.Contains(err.Error(), "the new key is kept in "+path("key.pem.pending")) {
				t.Fatalf("first reenroll, its answer lost: %v\n%s", err, out)
			}
			kept := loadKey(t, path("key.pem.pending")).Public()

			s.mu.Lock()
			s.refuse = tt.status
			s.mu.Unlock()
			out, err := reenroll()
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("HTTP %d", tt.status)) || !strings.Contains(out, "using the key in "+path("key.pem.pending")) {
				t.Fatalf("second reenroll: %v, want HTTP %d with the kept key\n%s", err, tt.status, out)
			}
			_, keyErr := os.Stat(path("key.pem.pending"))
			_, markerErr := os.Stat(path("key.pem.pending.request"))
			if kept := keyErr == nil; kept != tt.kept || (markerErr == nil) != tt.kept {
				t.Fatalf("key.pem.pending kept: %v (its marker: %v), want %v; %v", kept, markerErr == nil, tt.kept, err)
			}
			if !tt.kept && !strings.Contains(err.Error(), path("key.pem.pending")+" is removed") {
				t.Errorf("the refusal does not say the kept key is removed: %v", err)
			}
			if tt.status == http.StatusUnauthorized && !strings.Contains(err.Error(), "the credentials were refused, not the key: the new key stays in "+path("key.pem.pending")) {
				t.Errorf("a wrong password: %v; want it to say the key stays", err)
			}
			if !pki.SamePublicKey(oldKey.Public(), loadKey(t, path("key.pem")).Public()) {
				t.Fatal("the refused reenroll changed key.pem")
			}

			s.mu.Lock()
			s.refuse = 0
			s.mu.Unlock()
			if out, err := reenroll(); err != nil {
				t.Fatalf("third reenroll: %v\n%s", err, out)
			}
			if got := certKey(t, path("cert.pem")); pki.SamePublicKey(kept, got) == !tt.kept {
				t.Errorf("renewed for the kept key: %v, want %v", pki.SamePublicKey(kept, got), tt.kept)
			}
		})
	}
}

// `scepter est reenroll` asks for the names of --cert (RFC 7030 §4.2.2) and,
// without --rekey, with the key of --key: --subject, the SAN flags and
// --key-type without --rekey are refused (exit 2) before anything is asked
// or written, not dropped without a word while the old certificate is
// renewed (and, with revoke_superseded, revoked).
func TestESTReenrollRefusesFlagsItCannotHonour(t *testing.T) {
	s := &reenrollEST{t: t}
	u, caFile := startReenrollEST(t, s)
	d := t.TempDir()
	path := func(name string) string { return filepath.Join(d, name) }
	oldKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := keys.WriteCertFile(path("cert.pem"), s.issueNames(&x509.Certificate{Subject: pkix.Name{CommonName: "gw-5"}, DNSNames: []string{"gw-5.vpn.acme.example"}}, oldKey.Public(), 50)); err != nil {
		t.Fatal(err)
	}
	if err := keys.WriteKeyFile(path("key.pem"), oldKey); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--dns", "other.vpn.acme.example"}, "--dns is for enroll and serverkeygen: reenroll asks for the subject and SANs of --cert"},
		{[]string{"--subject", "CN=gw-6"}, "--subject is for enroll and serverkeygen"},
		{[]string{"--subject", ""}, "--subject is for enroll and serverkeygen"},
		{[]string{"--ip", "10.0.0.1"}, "--ip is for enroll"},
		{[]string{"--email", "ops@acme.example"}, "--email is for enroll"},
		{[]string{"--uri", "spiffe://acme.example/gw"}, "--uri is for enroll"},
		{[]string{"--subject", "CN=gw-6", "--rekey"}, "--subject is for enroll"},
		{[]string{"--key-type", "rsa2048"}, "--key-type is for reenroll only with --rekey"},
	} {
		args := append([]string{"est", "reenroll", "--url", u, "--cacert", caFile, "--cert", path("cert.pem"), "--key", path("key.pem"),
			"--out", path("r.pem"), "--key-out", path("r.key")}, tt.args...)
		out, err := runCLI(args...)
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: err = %v (exit %d), want exit 2 saying %q\n%s", tt.args, err, exitCode(err), tt.want, out)
		}
	}
	entries, _ := os.ReadDir(d)
	if len(entries) != 2 {
		t.Errorf("the refused runs left files: %v", entries)
	}
	if len(s.asked) != 0 {
		t.Errorf("the server was asked %d times", len(s.asked))
	}
	// --key-type with --rekey still chooses the new key's type.
	out, err := runCLI("est", "reenroll", "--url", u, "--cacert", caFile, "--cert", path("cert.pem"), "--key", path("key.pem"),
		"--rekey", "--key-type", "p384", "--out", path("r.pem"), "--key-out", path("r.key"))
	if err != nil {
		t.Fatalf("reenroll --rekey --key-type p384: %v\n%s", err, out)
	}
	if kt := keys.KeyTypeOf(loadKey(t, path("r.key")).Public()); kt != "p384" {
		t.Errorf("the new key is %s, want p384", kt)
	}
}

// The same settings from the environment are not refused (one environment
// often serves enroll scripts too) but warned about on stderr, naming the
// variable, while the renewal keeps the names of --cert and, without
// --rekey, the key of --key (r92 D9).
func TestESTReenrollWarnsOfVariablesItIgnores(t *testing.T) {
	s := &reenrollEST{t: t}
	u, caFile := startReenrollEST(t, s)
	d := t.TempDir()
	path := func(name string) string { return filepath.Join(d, name) }
	oldKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := keys.WriteCertFile(path("cert.pem"), s.issueNames(&x509.Certificate{Subject: pkix.Name{CommonName: "gw-7"}}, oldKey.Public(), 70)); err != nil {
		t.Fatal(err)
	}
	if err := keys.WriteKeyFile(path("key.pem"), oldKey); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"SCEPTER_SUBJECT": "CN=zzz", "SCEPTER_DNS": "other.example", "SCEPTER_KEY_TYPE": "p384"}
	e, out, errb := testEnv(vars)
	err := run(context.Background(), e, []string{"est", "reenroll", "--url", u, "--cacert", caFile, "--cert", path("cert.pem"), "--key", path("key.pem"),
		"--out", path("r.pem"), "--key-out", path("r.key")})
	if err != nil {
		t.Fatalf("reenroll with SCEPTER_SUBJECT set: %v\n%s%s", err, out, errb)
	}
	for _, w := range []string{
		"warning: SCEPTER_SUBJECT is set, and est reenroll ignores it: a renewal asks for the subject and SANs of --cert",
		"warning: SCEPTER_DNS is set, and est reenroll ignores it",
		"warning: SCEPTER_KEY_TYPE is set, and est reenroll ignores it without --rekey: the renewal keeps the key of --key",
	} {
		if !strings.Contains(errb.String(), w) {
			t.Errorf("stderr %q does not say %q", errb, w)
		}
	}
	if strings.Contains(errb.String(), "zzz") {
		t.Errorf("stderr %q repeats the variable's value", errb)
	}
	renewed, err := keys.LoadCertFile(path("r.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if cn := renewed[0].Subject.CommonName; cn != "gw-7" || !pki.SamePublicKey(renewed[0].PublicKey, oldKey.Public()) {
		t.Errorf("renewed as %q, same key %v; want gw-7 with the key of --key", cn, pki.SamePublicKey(renewed[0].PublicKey, oldKey.Public()))
	}
	// With --rekey, SCEPTER_KEY_TYPE is honoured: no warning of it.
	e, out, errb = testEnv(map[string]string{"SCEPTER_KEY_TYPE": "p384"})
	if err := run(context.Background(), e, []string{"est", "reenroll", "--url", u, "--cacert", caFile, "--cert", path("r.pem"), "--key", path("r.key"),
		"--rekey", "--out", path("r2.pem"), "--key-out", path("r2.key")}); err != nil {
		t.Fatalf("reenroll --rekey: %v\n%s%s", err, out, errb)
	}
	if strings.Contains(errb.String(), "SCEPTER_KEY_TYPE") {
		t.Errorf("stderr %q warns of a variable honoured", errb)
	}
	if kt := keys.KeyTypeOf(loadKey(t, path("r2.key")).Public()); kt != "p384" {
		t.Errorf("the new key is %s, want p384", kt)
	}
}

// `est reenroll --rekey` to a fresh --out and --key-out refused for other
// names says once what became of each file (r117 D6): the certificate is
// not written, and the new key kept in --key-out before asking is removed,
// not called unchanged; and the refusal is the client's, not the server's
// "final" one.
func TestESTReenrollRekeyRefusedForNamesSaysWhereTheKeyIs(t *testing.T) {
	device := &x509.Certificate{Subject: pkix.Name{CommonName: "device"}}
	for _, tt := range []struct {
		name        string
		keyOut      string // relative to the test's directory
		want, never []string
	}{
		{"a fresh --key-out", "rk/key.pem",
			[]string{"; rk/cert.pem is unchanged, and the new key kept for this renewal in rk/key.pem is removed"},
			[]string{"key.pem are unchanged", "a refusal is final"}},
		{"--key-out holds the key renewed", "key.pem",
			[]string{"; rk/cert.pem and key.pem are unchanged, and the new key kept for this renewal in key.pem.pending is removed"},
			[]string{"a refusal is final"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &reenrollEST{t: t}
			u, caFile := startReenrollEST(t, s)
			s.rename = &x509.Certificate{Subject: pkix.Name{CommonName: "renamed"}}
			d := t.TempDir()
			t.Chdir(d)
			oldKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			old := s.issueNames(device, oldKey.Public(), 50)
			if err := keys.WriteCertFile("cert.pem", old); err != nil {
				t.Fatal(err)
			}
			if err := keys.WriteKeyFile("key.pem", oldKey); err != nil {
				t.Fatal(err)
			}
			out, err := runCLI("est", "reenroll", "--url", u, "--cacert", caFile, "--cert", "cert.pem", "--key", "key.pem", "--rekey",
				"--out", "rk/cert.pem", "--key-out", tt.keyOut)
			if err == nil {
				t.Fatalf("reenroll succeeded\n%s", out)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v\ndoes not say %q", err, w)
				}
			}
			for _, n := range tt.never {
				if strings.Contains(err.Error(), n) {
					t.Errorf("%v\nsays %q", err, n)
				}
			}
			for _, gone := range []string{"rk/cert.pem", "rk/key.pem", "rk/key.pem.request", "key.pem.pending", "key.pem.pending.request"} {
				if _, err := os.Stat(gone); !os.IsNotExist(err) {
					t.Errorf("%s after the refusal: %v", gone, err)
				}
			}
		})
	}
}
