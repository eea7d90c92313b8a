package agent

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
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// estReenrollServer is an EST server on 127.0.0.1 whose /csrattrs answers
// status and body and whose /simplereenroll renews whatever it is sent. It
// returns its URL, its CA, and a certificate of that CA with its key.
func estReenrollServer(t *testing.T, now time.Time, status int, body string) (url string, ca, old *x509.Certificate, oldKey crypto.Signer) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test EST CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	ca, _ = x509.ParseCertificate(caDER)
	issue := func(tmpl *x509.Certificate, pub crypto.PublicKey) *x509.Certificate {
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Minute), now.Add(time.Hour)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c
	}
	tlsKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tlsCert := issue(&x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, tlsKey.Public())
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	old = issue(&x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "device"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, k.Public())
	reply := func(w http.ResponseWriter, certs ...*x509.Certificate) {
		der, _ := cms.DegenerateCertificates(certs)
		w.Header().Set("Content-Type", est.ContentTypeCertsOnly)
		w.Write(est.EncodeBase64(der))
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch strings.TrimPrefix(r.URL.Path, est.PathPrefix) {
		case est.OpCACerts:
			reply(w, ca)
		case est.OpCSRAttrs:
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(status)
			io.WriteString(w, body)
		case est.OpSimpleReenroll:
			b, _ := io.ReadAll(r.Body)
			der, err := est.DecodeBase64(b)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			req, err := x509.ParseCertificateRequest(der)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			reply(w, issue(&x509.Certificate{SerialNumber: big.NewInt(4), Subject: req.Subject,
				ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, req.PublicKey))
		default:
			http.NotFound(w, r)
		}
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{tlsCert.Raw}, PrivateKey: tlsKey}},
		ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL, ca, old, k
}

// CSR attributes are advice (RFC 7030 §4.5): the agent renews over EST
// when /csrattrs fails, with a warning, and warns when they ask for a key
// type other than the renewal's.
func TestESTRenewerCSRAttrsAreAdvice(t *testing.T) {
	// RFC 7030 §4.5.2's example, which asks for a key on secp384r1.
	const p384Only = "MEEGCSqGSIb3DQEJBzASBgcqhkjOPQIBMQcGBSuBBAAiMBYGCSqGSIb3DQEJDjEJBgcrBgEBAQEWBggqhkjOPQQDAw=="
	tests := []struct {
		name        string
		status      int
		body        string
		wantWarning string
	}{
		{"501", http.StatusNotImplemented, "nope", "csrattrs: HTTP 501: nope; enrolling without the server's CSR attributes"},
		{"500", http.StatusInternalServerError, "oops", "csrattrs: HTTP 500: oops"},
		{"401", http.StatusUnauthorized, "who?", "csrattrs: HTTP 401: who?"},
		{"200 empty", http.StatusOK, "", ""},
		{"204", http.StatusNoContent, "", ""},
		{"P-384 asked", http.StatusOK, p384Only, "ask for these key types: p384; the renewal's key is p256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := pki.SystemClock{}.Now()
			url, ca, old, oldKey := estReenrollServer(t, now, tt.status, tt.body)
			newKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			var warnings []string
			res, err := ESTRenewer{}.Renew(context.Background(), RenewRequest{
				Config: &Certificate{Protocol: ProtocolEST, URL: url, CAFingerprint: client.Fingerprint(ca)},
				Old:    old, OldKey: oldKey, Key: newKey, Now: func() time.Time { return now },
				Warnf: func(format string, args ...any) { warnings = append(warnings, fmt.Sprintf(format, args...)) },
			})
			if err != nil {
				t.Fatalf("Renew: %v", err)
			}
			if !pki.SamePublicKey(res.Cert.PublicKey, newKey.Public()) {
				t.Error("the renewed certificate is not for the new key")
			}
			switch {
			case tt.wantWarning == "" && len(warnings) > 0:
				t.Errorf("warnings %q, want none", warnings)
			case tt.wantWarning != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], tt.wantWarning)):
				t.Errorf("warnings %q, want one saying %q", warnings, tt.wantWarning)
			}
		})
	}
}

// A SCEP server that answers GetCACaps with an error is named once in the
// renewal's error (the agent logs it at every retry).
func TestSCEPRenewerGetCACapsErrorNamesItOnce(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "2")
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	// The current key (an EC one would do as well).
	rsaKey, err := keys.Generate(keys.RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	_, err = SCEPRenewer{}.Renew(context.Background(), RenewRequest{
		Config: &Certificate{Protocol: ProtocolSCEP, URL: srv.URL + "/scep", CAFingerprint: "sha256:00"},
		OldKey: rsaKey, Key: key, Now: pki.SystemClock{}.Now,
	})
	if err == nil || strings.Count(err.Error(), "GetCACaps") != 1 || !strings.Contains(err.Error(), "HTTP 503: busy") {
		t.Errorf("err = %q, want GetCACaps named once, with the server's answer", err)
	}
}

// After a CA rollover the server's /cacerts carry the new issuing CA only;
// a renewal asked for again (its answer lost before the switch) is
// answered with the certificate the previous CA issued. Its issuer comes
// from the certificate's caIssuers URL, and it is accepted only because it
// chains to the pinned root.
func TestRenewedCertificateOfThePreviousIssuingCAIsChecked(t *testing.T) {
	now := pki.SystemClock{}.Now()
	newCA := func(name string, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, crypto.Signer) {
		t.Helper()
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: name}, NotBefore: now.Add(-time.Hour),
			NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c, key
	}
	root, rootKey := newCA("Test Root", nil, nil)
	previous, previousKey := newCA("Test Issuing 1", root, rootKey)
	current, currentKey := newCA("Test Issuing 2", root, rootKey)
	rogue, _ := newCA("Test Issuing 1", nil, nil) // same name, not under the root

	for _, tt := range []struct {
		name   string
		served *x509.Certificate // at the caIssuers URL
		want   bool
	}{
		{"the previous issuing CA at caIssuers", previous, true},
		{"a CA of another root at caIssuers", rogue, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			aia := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(tt.served.Raw) }))
			defer aia.Close()
			issue := func(tmpl *x509.Certificate, pub crypto.PublicKey, ca *x509.Certificate, caKey crypto.Signer) *x509.Certificate {
				tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Minute), now.Add(time.Hour)
				tmpl.IssuingCertificateURL = []string{aia.URL + "/ca.crt"}
				der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
				if err != nil {
					t.Fatal(err)
				}
				c, _ := x509.ParseCertificate(der)
				return c
			}
			tlsKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			tlsCert := issue(&x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
				IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, tlsKey.Public(), current, currentKey)
			oldKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			old := issue(&x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "device"}}, oldKey.Public(), previous, previousKey)
			reply := func(w http.ResponseWriter, certs ...*x509.Certificate) {
				der, _ := cms.DegenerateCertificates(certs)
				w.Header().Set("Content-Type", est.ContentTypeCertsOnly)
				w.Write(est.EncodeBase64(der))
			}
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch strings.TrimPrefix(r.URL.Path, est.PathPrefix) {
				case est.OpCACerts:
					reply(w, current, root)
				case est.OpSimpleReenroll:
					b, _ := io.ReadAll(r.Body)
					der, _ := est.DecodeBase64(b)
					req, err := x509.ParseCertificateRequest(der)
					if err != nil {
						http.Error(w, err.Error(), http.StatusBadRequest)
						return
					}
					// The certificate issued before the switch.
					reply(w, issue(&x509.Certificate{SerialNumber: big.NewInt(4), Subject: req.Subject}, req.PublicKey, previous, previousKey))
				default:
					http.NotFound(w, r)
				}
			}))
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{tlsCert.Raw, current.Raw}, PrivateKey: tlsKey}},
				ClientAuth: tls.RequestClientCert}
			srv.StartTLS()
			defer srv.Close()

			newKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			res, err := ESTRenewer{}.Renew(context.Background(), RenewRequest{
				Config: &Certificate{Protocol: ProtocolEST, URL: srv.URL, CAFingerprint: client.Fingerprint(root)},
				Old:    old, OldKey: oldKey, Key: newKey, Now: func() time.Time { return now },
			})
			if err != nil {
				t.Fatalf("Renew: %v", err)
			}
			chain, err := client.VerifyIssued(res.Cert, newKey.Public(), res.CACerts, client.Fingerprint(root), now, nil)
			if got := err == nil; got != tt.want {
				t.Fatalf("VerifyIssued: %v, want accepted: %v", err, tt.want)
			}
			if tt.want && (len(chain) != 2 || !chain[0].Equal(previous) || !chain[1].Equal(root)) {
				t.Errorf("chain %v, want the previous issuing CA and the root", chain)
			}
		})
	}
}

// Over https the SCEP renewer trusts the server's TLS certificate because
// it chains to ca_fingerprint's CA (our own, in no system store): the
// renewal gets past GetCACaps and GetCACert, to the request itself (which
// this EC CA, with no RSA RA, cannot be encrypted to).
func TestSCEPRenewerOverHTTPSTrustsThePinnedCA(t *testing.T) {
	now := epoch
	ca := newTestCA(t, now, false)
	tlsKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tlsDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca.cert, tlsKey.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("operation") {
		case "GetCACaps":
			io.WriteString(w, "POSTPKIOperation\nRenewal\nSHA-256\nAES\n")
		case "GetCACert":
			w.Header().Set("Content-Type", "application/x-x509-ca-cert")
			w.Write(ca.cert.Raw)
		default:
			http.Error(w, "reached", http.StatusServiceUnavailable)
		}
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{tlsDER}, PrivateKey: tlsKey}}}
	srv.StartTLS()
	defer srv.Close()
	oldKey, err := keys.Generate(keys.RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	old := ca.issue(t, oldKey.Public(), pkix.Name{CommonName: "device"}, nil, now, time.Hour)
	_, err = SCEPRenewer{}.Renew(context.Background(), RenewRequest{
		Config: &Certificate{Protocol: ProtocolSCEP, URL: srv.URL + "/scep", CAFingerprint: client.Fingerprint(ca.cert)},
		Old:    old, OldKey: oldKey, Key: oldKey, Now: func() time.Time { return now.Add(time.Minute) },
	})
	if err == nil || !strings.Contains(err.Error(), "no RSA certificate to encrypt the request to") {
		t.Errorf("err = %v, want the request built from what came over the pinned TLS", err)
	}
}

// An empty or blank challenge_file is refused, naming the setting and the
// file, before any server is asked; so is one that holds only the byte
// order mark Windows Notepad writes.
func TestEmptyChallengeFileIsRefused(t *testing.T) {
	for _, content := range []string{"", "\n", " \t\r\n", "\uFEFF", "\uFEFF\r\n"} {
		f := newFixture(t, fixtureOpts{extra: "challenge_file = \"challenge.txt\"\n"})
		path := filepath.Join(f.dir, "challenge.txt")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		asked := false
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			asked = true
			http.Error(w, "no", http.StatusServiceUnavailable)
		}))
		c := f.cert()
		c.URL = srv.URL + "/scep"
		p := f.pair()
		_, err := SCEPRenewer{}.Renew(context.Background(), RenewRequest{Config: c, Old: p.cert, OldKey: p.key, Key: p.key, Now: f.clock.Now})
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), "challenge_file") || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "empty") {
			t.Errorf("challenge file %q: %v; want it refused, naming challenge_file and %s", content, err, path)
		}
		if asked {
			t.Errorf("challenge file %q: the server was asked", content)
		}
	}
}

// A challenge_file written by Windows Notepad starts with a byte order
// mark: the challenge is what follows it.
func TestChallengeFromFile(t *testing.T) {
	for _, tt := range []struct{ content, want string }{
		{"s3cret\n", "s3cret"},
		{"\uFEFFs3cret\r\n", "s3cret"},
		{"\uFEFF  s3cret ", "s3cret"},
		{"s3\uFEFFcret", "s3\uFEFFcret"}, // only a leading one is a mark
		{"\uFEFF", ""},
		{"\uFEFF\r\n", ""},
	} {
		if got := challengeFromFile([]byte(tt.content)); got != tt.want {
			t.Errorf("challengeFromFile(%q) = %q, want %q", tt.content, got, tt.want)
		}
	}
}

// A challenge_file that is gone or empty when the certificate comes due
// (removed after the agent started) fails the renewal at once: it is this
// machine's to mend, and --once does not retry it as if the server had
// failed (it waited retry_initial, twice, for nothing).
func TestChallengeFileFailureIsNotRetried(t *testing.T) {
	for _, tt := range []struct {
		name, content string // content "-": no file
		want          string
	}{
		{"missing", "-", "no such file"},
		{"blank", "\uFEFF  \n", "is empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{extra: "challenge_file = \"challenge.txt\"\n"})
			if tt.content != "-" {
				if err := os.WriteFile(filepath.Join(f.dir, "challenge.txt"), []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			f.agent.Renewers = nil // the real SCEP renewer: it reads the file first
			f.clock.Set(f.first.NotAfter.Add(-time.Hour))
			err := f.agent.RunOnce(context.Background())
			if err == nil {
				t.Fatal("renewed without its challenge")
			}
			if len(f.sleeps) != 0 || strings.Contains(f.logs.String(), "trying again") {
				t.Errorf("retried (sleeps %v):\n%s", f.sleeps, f.logs.String())
			}
			if !strings.Contains(f.logs.String(), tt.want) || !strings.Contains(f.logs.String(), "attempts=1") {
				t.Errorf("the log does not say %q after one attempt:\n%s", tt.want, f.logs.String())
			}
		})
	}
}

// A server that answers 503 with Retry-After is not asked again before
// then (capped at retry_max), over SCEP and EST: the agent retried after
// its own retry_initial, 1 s and 2 s after a Retry-After of 120 (r88 D7).
func TestRetryAfterIsHeeded(t *testing.T) {
	for _, tt := range []struct {
		name, protocol, retryAfter string
		retryMax                   time.Duration
		want                       []time.Duration
	}{
		{"SCEP 503", ProtocolSCEP, "120", 5 * time.Minute, []time.Duration{120 * time.Second, 120 * time.Second}},
		{"EST 503", ProtocolEST, "120", 5 * time.Minute, []time.Duration{120 * time.Second, 120 * time.Second}},
		{"capped at retry_max", ProtocolSCEP, "86400", 5 * time.Minute, []time.Duration{5 * time.Minute, 5 * time.Minute}},
		// Shorter than the backoff: the backoff (10 s, 20 s, jittered to
		// three quarters) stands.
		{"shorter than the backoff", ProtocolSCEP, "1", 5 * time.Minute, []time.Duration{7500 * time.Millisecond, 15 * time.Second}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			f.cfg.RetryMax = tt.retryMax
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", tt.retryAfter)
				http.Error(w, "busy", http.StatusServiceUnavailable)
			})
			c := f.cert()
			c.Protocol = tt.protocol
			f.agent.Renewers = nil // the real renewers
			if tt.protocol == ProtocolEST {
				// Its TLS certificate chains to the pinned CA.
				tlsKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				tlsDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
					NotBefore: epoch.Add(-time.Hour), NotAfter: epoch.Add(365 * 24 * time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
					ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, f.ca.cert, tlsKey.Public(), f.ca.key)
				if err != nil {
					t.Fatal(err)
				}
				srv := httptest.NewUnstartedServer(h)
				srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{tlsDER, f.ca.cert.Raw}, PrivateKey: tlsKey}}}
				srv.StartTLS()
				t.Cleanup(srv.Close)
				c.URL = srv.URL
			} else {
				srv := httptest.NewServer(h)
				t.Cleanup(srv.Close)
				c.URL = srv.URL + "/scep"
			}
			f.clock.Set(f.first.NotAfter.Add(-time.Hour))
			if err := f.agent.RunOnce(context.Background()); err == nil {
				t.Fatal("renewed")
			}
			if !slices.Equal(f.sleeps, tt.want) {
				t.Errorf("waited %v, want %v", f.sleeps, tt.want)
			}
		})
	}
}

// An EST refusal of the renewal is named once: "simplereenroll: HTTP 401:
// …", not "simplereenroll: simplereenroll: HTTP 401: …" (r88 D5).
func TestESTRefusalIsPrefixedOnce(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	tlsKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tlsDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: epoch.Add(-time.Hour), NotAfter: epoch.Add(365 * 24 * time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, f.ca.cert, tlsKey.Public(), f.ca.key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/"+est.OpSimpleReenroll):
			http.Error(w, "the certificate to renew is on hold", http.StatusUnauthorized)
		case strings.HasSuffix(r.URL.Path, "/"+est.OpCACerts):
			der, _ := cms.DegenerateCertificates(f.ca.certs())
			w.Header().Set("Content-Type", "application/pkcs7-mime")
			w.Write(est.EncodeBase64(der))
		default:
			http.NotFound(w, r)
		}
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{tlsDER, f.ca.cert.Raw}, PrivateKey: tlsKey}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c := f.cert()
	c.Protocol, c.URL = ProtocolEST, srv.URL
	p := f.pair()
	_, err = ESTRenewer{}.Renew(context.Background(), RenewRequest{Config: c, Old: p.cert, OldKey: p.key, Key: p.key, Now: f.clock.Now})
	if err == nil || !strings.HasPrefix(err.Error(), "simplereenroll: HTTP 401: the certificate to renew is on hold") {
		t.Errorf("err = %v", err)
	}
}
