package main

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
)

// rolledOverSCEP is a SCEP server after a CA rollover: GetCACert carries
// the RA, the current issuing CA and the root, and a renewal is answered
// (as one asked for again after its answer was lost before the switch)
// with a certificate of the previous issuing CA, whose certificate is at
// the caIssuers URL in it.
type rolledOverSCEP struct {
	t                 *testing.T
	now               time.Time
	root, current, ra *x509.Certificate
	raKey             crypto.Signer
	previous          *x509.Certificate
	previousKey       crypto.Signer
	atCAIssuers       *x509.Certificate // what the caIssuers URL serves
	url               string
	serial            atomic.Int64
}

func (s *rolledOverSCEP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/previous.crt" {
		w.Write(s.atCAIssuers.Raw)
		return
	}
	switch r.URL.Query().Get("operation") {
	case "GetCACaps":
		w.Write([]byte("AES\nPOSTPKIOperation\nSHA-256\nSCEPStandard\nRenewal\n"))
	case "GetCACert":
		der, err := cms.DegenerateCertificates([]*x509.Certificate{s.ra, s.current, s.root})
		if err != nil {
			s.t.Error(err)
		}
		w.Header().Set("Content-Type", "application/x-x509-ca-ra-cert")
		w.Write(der)
	case "PKIOperation":
		reply, err := s.renew(r)
		if err != nil {
			s.t.Errorf("fake server: %v", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/x-pki-message")
		w.Write(reply)
	default:
		http.NotFound(w, r)
	}
}

func (s *rolledOverSCEP) renew(r *http.Request) ([]byte, error) {
	var body bytes.Buffer
	if _, err := body.ReadFrom(r.Body); err != nil {
		return nil, err
	}
	msg, err := scep.Parse(body.Bytes())
	if err != nil {
		return nil, err
	}
	env, err := cms.ParseEnvelopedData(msg.SignedData.Content)
	if err != nil {
		return nil, err
	}
	plain, err := env.DecryptKeyTransport(s.ra, s.raKey.(crypto.Decrypter))
	if err != nil {
		return nil, err
	}
	csr, err := x509.ParseCertificateRequest(plain)
	if err != nil {
		return nil, err
	}
	issued := s.issue(csr.Subject, csr.PublicKey)
	inner, err := cms.DegenerateCertificates([]*x509.Certificate{issued})
	if err != nil {
		return nil, err
	}
	envelope, err := cms.Encrypt(inner, []*x509.Certificate{msg.SignerCert}, cms.EncryptOptions{Cipher: cms.AES256CBC, KeyTransport: cms.RSAPKCS1v15})
	if err != nil {
		return nil, err
	}
	return scep.BuildCertRep(scep.Reply{TransactionID: msg.TransactionID, RecipientNonce: msg.SenderNonce, Status: scep.StatusSuccess,
		Digest: crypto.SHA256, Envelope: envelope, SigningTime: s.now}, scep.Identity{Cert: s.ra, Key: s.raKey})
}

// issue makes a device certificate of the previous issuing CA.
func (s *rolledOverSCEP) issue(subject pkix.Name, pub crypto.PublicKey) *x509.Certificate {
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(100 + s.serial.Add(1)), Subject: subject, NotBefore: s.now.Add(-time.Minute), NotAfter: s.now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		IssuingCertificateURL: []string{s.url + "/previous.crt"}}
	return mustCert(s.t, tmpl, s.previous, pub, s.previousKey)
}

func mustCert(t *testing.T, tmpl, parent *x509.Certificate, pub crypto.PublicKey, parentKey crypto.Signer) *x509.Certificate {
	t.Helper()
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// `scepter renew` asked again after a CA rollover is answered with the
// certificate the previous issuing CA issued, which GetCACert no longer
// carries: it is checked with that CA, from the certificate's caIssuers
// URL, and accepted only because that CA chains to the pinned root.
func TestRenewAnsweredByThePreviousIssuingCA(t *testing.T) {
	now := pki.SystemClock{}.Now() // the command checks with the real clock
	// From the pool: its consecutive keys are distinct, so the rogue key
	// is still none of the CAs'.
	rsaKey := func() *rsa.PrivateKey {
		k, err := testKeys.Generate(keys.RSA2048)
		if err != nil {
			t.Fatal(err)
		}
		return k.(*rsa.PrivateKey)
	}
	caTmpl := func(name string, serial int64) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, NotBefore: now.Add(-time.Hour),
			NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	}
	rootKey, previousKey, currentKey, raKey, rogueKey := rsaKey(), rsaKey(), rsaKey(), rsaKey(), rsaKey()
	root := mustCert(t, caTmpl("Test Root", 1), nil, rootKey.Public(), rootKey)
	previous := mustCert(t, caTmpl("Test Issuing 1", 2), root, previousKey.Public(), rootKey)
	current := mustCert(t, caTmpl("Test Issuing 2", 3), root, currentKey.Public(), rootKey)
	rogueRoot := mustCert(t, caTmpl("Rogue Root", 4), nil, rogueKey.Public(), rogueKey)
	rogue := mustCert(t, caTmpl("Test Issuing 1", 5), rogueRoot, previousKey.Public(), rogueKey) // the same name and key, under another root
	ra := mustCert(t, &x509.Certificate{SerialNumber: big.NewInt(6), Subject: pkix.Name{CommonName: "Test RA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment}, current, raKey.Public(), currentKey)

	for _, tt := range []struct {
		name        string
		atCAIssuers *x509.Certificate
		want        string // in the error; "" for success
	}{
		{"the previous issuing CA at caIssuers", previous, ""},
		{"a CA of another root at caIssuers", rogue, "refusing what the server returned"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &rolledOverSCEP{t: t, now: now, root: root, current: current, ra: ra, raKey: raKey, previous: previous, previousKey: previousKey, atCAIssuers: tt.atCAIssuers}
			srv := httptest.NewServer(s)
			defer srv.Close()
			s.url = srv.URL

			d := t.TempDir()
			path := func(name string) string { return filepath.Join(d, name) }
			deviceKey := rsaKey()
			old := s.issue(pkix.Name{CommonName: "device"}, deviceKey.Public())
			if err := keys.WriteCertFile(path("cert.pem"), old); err != nil {
				t.Fatal(err)
			}
			if err := keys.WriteKeyFile(path("key.pem"), deviceKey); err != nil {
				t.Fatal(err)
			}
			out, err := runCLI("renew", "--url", srv.URL+"/scep", "--ca-fingerprint", client.Fingerprint(root),
				"--cert", path("cert.pem"), "--key", path("key.pem"), "--out", path("new.pem"), "--chain-out", path("chain.pem"))
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("renew: %v, want %q\n%s", err, tt.want, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("renew: %v\n%s", err, out)
			}
			chain, err := keys.LoadCertFile(path("chain.pem"))
			if err != nil {
				t.Fatal(err)
			}
			if len(chain) != 2 || !chain[0].Equal(previous) || !chain[1].Equal(root) {
				t.Errorf("chain.pem holds %d certificates, want the previous issuing CA and the root", len(chain))
			}
		})
	}
}
