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
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// fakeEST is a minimal EST server on 127.0.0.1: /cacerts, /csrattrs as
// the test says, and /simpleenroll issuing whatever it is sent. Its CA
// certificate is in caFile.
type fakeEST struct {
	url, caFile string
}

func startFakeEST(t *testing.T, csrattrsStatus int, csrattrsBody string) *fakeEST {
	t.Helper()
	now := pki.SystemClock{}.Now()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Fake EST CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	ca, _ := x509.ParseCertificate(caDER)
	tlsKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tlsDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca, tlsKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	serial := int64(100)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch strings.TrimPrefix(r.URL.Path, est.PathPrefix) {
		case est.OpCACerts:
			der, _ := cms.DegenerateCertificates([]*x509.Certificate{ca})
			w.Header().Set("Content-Type", est.ContentTypeCertsOnly)
			w.Write(est.EncodeBase64(der))
		case est.OpCSRAttrs:
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(csrattrsStatus)
			io.WriteString(w, csrattrsBody)
		case est.OpSimpleEnroll:
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
			serial++
			certDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: req.Subject,
				NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
				ca, req.PublicKey, caKey)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			cert, _ := x509.ParseCertificate(certDER)
			out, _ := cms.DegenerateCertificates([]*x509.Certificate{cert})
			w.Header().Set("Content-Type", est.ContentTypeCertsOnly)
			w.Write(est.EncodeBase64(out))
		default:
			http.NotFound(w, r)
		}
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{tlsDER}, PrivateKey: tlsKey}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := keys.WriteCertFile(caFile, ca); err != nil {
		t.Fatal(err)
	}
	return &fakeEST{url: srv.URL, caFile: caFile}
}

// CSR attributes are advice (RFC 7030 §4.5): `est enroll` goes on without
// them when /csrattrs fails, saying so once; it makes the key type they
// ask for unless --key-type says otherwise, and warns when it does.
func TestESTEnrollCSRAttrsAreAdvice(t *testing.T) {
	// RFC 7030 §4.5.2's example: challengePassword, an ecPublicKey on
	// secp384r1, a macAddress extension, ecdsa-with-SHA384.
	const p384Only = "MEEGCSqGSIb3DQEJBzASBgcqhkjOPQIBMQcGBSuBBAAiMBYGCSqGSIb3DQEJDjEJBgcrBgEBAQEWBggqhkjOPQQDAw=="
	tests := []struct {
		name         string
		status       int
		body         string
		args         []string
		wantKey      string
		wantStderr   []string
		refuseStderr []string
	}{
		{"501", http.StatusNotImplemented, "nope", nil, "p256",
			[]string{"warning: csrattrs: HTTP 501: nope; enrolling without the server's CSR attributes"}, []string{"csrattrs: csrattrs"}},
		{"500", http.StatusInternalServerError, "oops", nil, "p256", []string{"warning: csrattrs: HTTP 500: oops"}, nil},
		{"401", http.StatusUnauthorized, "who?", nil, "p256", []string{"warning: csrattrs: HTTP 401: who?"}, nil},
		{"200 empty", http.StatusOK, "", nil, "p256", nil, []string{"warning"}},
		{"P-384 asked", http.StatusOK, p384Only, []string{"--channel-binding", "never"}, "p384",
			[]string{"the server's /csrattrs ask for these key types: p384; making a p384 key"}, []string{"warning"}},
		{"P-384 asked, --key-type given", http.StatusOK, p384Only, []string{"--channel-binding", "never", "--key-type", "rsa2048"}, "rsa2048",
			[]string{"warning: the server's /csrattrs ask for these key types: p384; this request's key is rsa2048"}, []string{"making"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startFakeEST(t, tt.status, tt.body)
			d := t.TempDir()
			e, out, errb := testEnv(map[string]string{"SCEPTER_EST_PASSWORD": "secret"})
			args := append([]string{"est", "enroll", "--url", s.url, "--cacert", s.caFile, "--subject", "CN=advice",
				"--out", filepath.Join(d, "cert.pem"), "--key-out", filepath.Join(d, "key.pem")}, tt.args...)
			if err := run(t.Context(), e, args); err != nil {
				t.Fatalf("est enroll: %v\n%s", err, errb)
			}
			if !strings.Contains(out.String(), "issued CN=advice") {
				t.Errorf("stdout:\n%s", out)
			}
			if got := keys.KeyTypeOf(certKey(t, filepath.Join(d, "cert.pem"))); got != tt.wantKey {
				t.Errorf("the certificate's key is %s, want %s", got, tt.wantKey)
			}
			for _, w := range tt.wantStderr {
				if strings.Count(errb.String(), w) != 1 {
					t.Errorf("stderr does not say %q once:\n%s", w, errb)
				}
			}
			for _, w := range tt.refuseStderr {
				if strings.Contains(errb.String(), w) {
					t.Errorf("stderr says %q:\n%s", w, errb)
				}
			}
		})
	}
}

func certKey(t *testing.T, path string) crypto.PublicKey {
	t.Helper()
	certs, err := keys.LoadCertFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0].PublicKey
}

// serverkeygen --encrypt needs an RSA request key, and the server makes a
// key of the request's type: an EC --key-type given with it is refused
// rather than silently turned into RSA.
func TestESTEncryptKeyType(t *testing.T) {
	for name, tc := range map[string]struct {
		keyType    string
		keyTypeSet bool
		want       string // the request's key type; "" for a usage error
	}{
		"default key type":   {"p256", false, "rsa2048"},
		"rsa3072 chosen":     {"rsa3072", true, "rsa3072"},
		"p384 chosen":        {"p384", true, ""},
		"p256 chosen":        {"p256", true, ""},
		"rsa4096 as default": {"rsa4096", false, "rsa4096"},
	} {
		t.Run(name, func(t *testing.T) {
			_, plan, err := estRequestTemplate("serverkeygen", &estFlags{}, "CN=dev", tc.keyType, tc.keyTypeSet, false, true, names{})
			var usage usageError
			switch {
			case tc.want == "" && !errors.As(err, &usage):
				t.Fatalf("err = %v, want a usage error", err)
			case tc.want == "":
			case err != nil:
				t.Fatal(err)
			case plan.keyType != tc.want:
				t.Errorf("request key %s, want %s", plan.keyType, tc.want)
			}
		})
	}
}

// `est enroll --user NAME` without a password is refused before anything
// is sent (exit 2), naming where the password goes: the server would only
// refuse the empty password, and count each refusal toward that user's
// lockout (r57 D7).
func TestESTUserWithoutPasswordIsRefusedBeforeAsking(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the server was asked %s", r.URL.Path)
	}))
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := keys.WriteCertFile(caFile, srv.Certificate()); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		op   string
		vars map[string]string
	}{
		{"enroll, no password", "enroll", nil},
		{"enroll, SCEPTER_EST_PASSWORD empty", "enroll", map[string]string{"SCEPTER_EST_PASSWORD": ""}},
		{"serverkeygen, no password", "serverkeygen", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			e, _, _ := testEnv(tt.vars)
			err := run(context.Background(), e, []string{"est", tt.op, "--url", srv.URL, "--cacert", caFile, "--user", "fleet", "--subject", "CN=device",
				"--out", filepath.Join(d, "cert.pem"), "--key-out", filepath.Join(d, "key.pem")})
			if exitCode(err) != 2 || !strings.Contains(fmt.Sprint(err), "--user fleet has no password") ||
				!strings.Contains(err.Error(), "--password-file") || !strings.Contains(err.Error(), "SCEPTER_EST_PASSWORD") {
				t.Fatalf("%v (exit %d), want a usage error naming --password-file and SCEPTER_EST_PASSWORD", err, exitCode(err))
			}
		})
	}
}

// --encrypt means something to serverkeygen only: enroll and reenroll
// refuse it (exit 2, nothing sent) rather than add an attribute to the CSR
// that no server reads.
func TestESTEncryptIsForServerKeyGen(t *testing.T) {
	for _, op := range []string{"enroll", "reenroll"} {
		e, _, _ := testEnv(nil)
		err := run(context.Background(), e, []string{"est", op, "--url", "https://127.0.0.1:1", "--encrypt"})
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "--encrypt is for serverkeygen") {
			t.Errorf("est %s --encrypt: %v (exit %d), want exit 2 saying it is for serverkeygen", op, err, exitCode(err))
		}
		// Its variable, which an environment for serverkeygen scripts may
		// hold, is warned about and ignored, not refused as the flag is
		// (r100 D4): the run goes on (here to a port nobody listens on).
		e, _, stderr := testEnv(map[string]string{"SCEPTER_ENCRYPT": "true"})
		err = run(context.Background(), e, []string{"est", op, "--url", "https://127.0.0.1:1", "--ca-fingerprint", "sha256:" + strings.Repeat("ab", 32)})
		if err != nil && strings.Contains(err.Error(), "--encrypt") {
			t.Errorf("est %s with SCEPTER_ENCRYPT set: %v, want it ignored", op, err)
		}
		if want := "warning: SCEPTER_ENCRYPT is set, and est " + op + " ignores it"; !strings.Contains(stderr.String(), want) {
			t.Errorf("est %s with SCEPTER_ENCRYPT set: stderr %q, want %q", op, stderr, want)
		}
	}
}
