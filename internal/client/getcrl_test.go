package client

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/scep"
)

// fakeGetCRLServer answers GetCACaps, GetCACert (the RA, the current
// issuing CA and the root, as after a rollover) and GetCRL, with the CRL
// and the certificates the test sets, and serves issuer certificates at
// caIssuers URLs.
type fakeGetCRLServer struct {
	t       *testing.T
	ra      *testCert
	caCerts []*x509.Certificate
	files   map[string][]byte // path: body
	// What the next GetCRL reply holds.
	crl     []byte
	carried []*x509.Certificate
}

func (s *fakeGetCRLServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if body, ok := s.files[r.URL.Path]; ok {
		w.Write(body)
		return
	}
	switch r.URL.Query().Get("operation") {
	case "GetCACaps":
		w.Write([]byte("AES\nPOSTPKIOperation\nSHA-256\nSCEPStandard\n"))
	case "GetCACert":
		der, err := cms.DegenerateCertificates(s.caCerts)
		if err != nil {
			s.t.Error(err)
		}
		w.Header().Set("Content-Type", "application/x-x509-ca-ra-cert")
		w.Write(der)
	case "PKIOperation":
		reply, err := s.getCRL(r)
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

func (s *fakeGetCRLServer) getCRL(r *http.Request) ([]byte, error) {
	body := new(bytes.Buffer)
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
	plain, err := env.DecryptKeyTransport(s.ra.cert, s.ra.key.(crypto.Decrypter))
	if err != nil {
		return nil, err
	}
	if _, err := scep.ParseIssuerAndSerial(plain); err != nil {
		return nil, err
	}
	inner := certsAndCRLs(s.t, s.carried, s.crl)
	envelope, err := cms.Encrypt(inner, []*x509.Certificate{msg.SignerCert}, cms.EncryptOptions{Cipher: cms.AES256CBC, KeyTransport: cms.RSAPKCS1v15})
	if err != nil {
		return nil, err
	}
	return scep.BuildCertRep(scep.Reply{TransactionID: msg.TransactionID, RecipientNonce: msg.SenderNonce, Status: scep.StatusSuccess,
		Digest: crypto.SHA256, Envelope: envelope, SigningTime: trustNow}, scep.Identity{Cert: s.ra.cert, Key: s.ra.key})
}

// certsAndCRLs is a degenerate SignedData with certificates and a CRL, as
// a GetCRL reply may carry the CRL issuer's certificate.
func certsAndCRLs(t *testing.T, certs []*x509.Certificate, crl []byte) []byte {
	t.Helper()
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2})
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(1)
				b.AddASN1(cbasn1.SET, func(*cryptobyte.Builder) {})
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1})
				})
				if len(certs) > 0 {
					b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
						for _, c := range certs {
							b.AddBytes(c.Raw)
						}
					})
				}
				b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(crl) })
				b.AddASN1(cbasn1.SET, func(*cryptobyte.Builder) {})
			})
		})
	})
	der, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// GetCRL after a CA rollover: the CRL of the CA before it is accepted when
// that CA's certificate, from the reply or the certificate's caIssuers URL,
// chains to the trusted root; an impostor with its name is not, and the
// CRL of another CA than the certificate's issuer is refused.
func TestGetCRLAfterRollover(t *testing.T) {
	later := trustNow.Add(365 * 24 * time.Hour)
	root := issue(t, "root", nil, true, later)
	oldCA := issue(t, "issuing-1", root, true, later)
	newCA := issue(t, "issuing-2", root, true, later)
	evilRoot := issue(t, "evil-root", nil, true, later)
	evilOldCA := issue(t, "issuing-1", evilRoot, true, later) // the old CA's name
	raKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ra := signed(t, &x509.Certificate{Subject: pkix.Name{CommonName: "ra-2"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment}, newCA, raKey)

	srv := &fakeGetCRLServer{t: t, ra: ra, caCerts: []*x509.Certificate{ra.cert, newCA.cert, root.cert}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	oversized := bytes.Repeat([]byte{0x30}, maxCAIssuersBytes+1)
	srv.files = map[string][]byte{"/old.crt": oldCA.cert.Raw, "/evil.crt": evilOldCA.cert.Raw, "/big.crt": oversized,
		"/certs-only.p7c": certsAndCRLs(t, []*x509.Certificate{oldCA.cert}, crlOf(t, oldCA))}

	device := func(parent *testCert, caIssuers string) *x509.Certificate {
		t.Helper()
		key, _ := rsa.GenerateKey(rand.Reader, 1024)
		tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: "device"}, KeyUsage: x509.KeyUsageDigitalSignature}
		if caIssuers != "" {
			if !strings.Contains(caIssuers, "://") {
				caIssuers = ts.URL + caIssuers
			}
			tmpl.IssuingCertificateURL = []string{caIssuers}
		}
		return signed(t, tmpl, parent, key).cert
	}
	oldCRL, newCRL, rootCRL, evilCRL := crlOf(t, oldCA), crlOf(t, newCA), crlOf(t, root), crlOf(t, evilOldCA)

	for _, c := range []struct {
		name    string
		cert    *x509.Certificate
		crl     []byte
		carried []*x509.Certificate
		pin     string
		wantErr string // "": the CRL is accepted
	}{
		{"a certificate of the current CA", device(newCA, ""), newCRL, nil, Fingerprint(root.cert), ""},
		{"of the CA before the rollover, its certificate in the reply", device(oldCA, ""), oldCRL, []*x509.Certificate{oldCA.cert}, Fingerprint(root.cert), ""},
		{"of the CA before the rollover, its certificate at the caIssuers URL", device(oldCA, "/old.crt"), oldCRL, nil, Fingerprint(root.cert), ""},
		{"the same, certs-only at the caIssuers URL", device(oldCA, "/certs-only.p7c"), oldCRL, nil, Fingerprint(root.cert), ""},
		{"the same, unpinned", device(oldCA, "/old.crt"), oldCRL, nil, "", ""},
		{"of the CA before the rollover, its certificate nowhere", device(oldCA, ""), oldCRL, nil, Fingerprint(root.cert), "names no caIssuers URL"},
		{"its certificate at an https caIssuers URL", device(oldCA, "https://127.0.0.1:1/old.crt"), oldCRL, nil, Fingerprint(root.cert), "not an http URL"},
		{"too large at the caIssuers URL", device(oldCA, "/big.crt"), oldCRL, nil, Fingerprint(root.cert), "larger than"},
		{"of an impostor with the old CA's name, in the reply", device(evilOldCA, ""), evilCRL, []*x509.Certificate{evilOldCA.cert, evilRoot.cert},
			Fingerprint(root.cert), "does not chain to the trusted CA"},
		{"of an impostor, at the caIssuers URL", device(evilOldCA, "/evil.crt"), evilCRL, nil, Fingerprint(root.cert), "does not chain to the trusted CA"},
		{"of an impostor, unpinned", device(evilOldCA, "/evil.crt"), evilCRL, nil, "", "does not chain to the trusted CA"},
		{"the root's CRL for a certificate of the current CA", device(newCA, ""), rootCRL, nil, Fingerprint(root.cert), "not by CN=issuing-2"},
		{"the old CA's CRL, carried along, for a certificate of the current CA", device(newCA, ""), oldCRL, []*x509.Certificate{oldCA.cert},
			Fingerprint(root.cert), "not by CN=issuing-2"},
		{"a CRL in the old CA's name by an impostor", device(oldCA, ""), evilCRL, []*x509.Certificate{oldCA.cert}, Fingerprint(root.cert), "not signed by CN=issuing-1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv.crl, srv.carried = c.crl, c.carried
			sc := &SCEP{URL: ts.URL + "/scep", Now: func() time.Time { return trustNow }}
			ctx := context.Background()
			caps, err := sc.GetCACaps(ctx)
			if err != nil {
				t.Fatal(err)
			}
			caCerts, err := sc.GetCACert(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if caCerts, err = TrustedCACerts(caCerts, c.pin, trustNow); err != nil {
				t.Fatal(err)
			}
			der, err := sc.GetCRL(ctx, CRLRequest{Cert: c.cert, CACerts: caCerts, Caps: caps, Fingerprint: c.pin})
			switch {
			case c.wantErr == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.wantErr == "" && !bytes.Equal(der, c.crl):
				t.Error("another CRL than the server's")
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Errorf("err = %v, want one saying %q", err, c.wantErr)
			}
		})
	}
}

// signed makes a certificate from tmpl for key, signed by parent.
func signed(t *testing.T, tmpl *x509.Certificate, parent *testCert, key crypto.Signer) *testCert {
	t.Helper()
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = serial, trustNow.Add(-time.Hour), trustNow.Add(30*24*time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent.cert, key.Public(), parent.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{cert: cert, key: key}
}

// crlOf is an empty CRL of ca.
func crlOf(t *testing.T, ca *testCert) []byte {
	t.Helper()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: trustNow.Add(-time.Minute),
		NextUpdate: trustNow.Add(24 * time.Hour)}, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
