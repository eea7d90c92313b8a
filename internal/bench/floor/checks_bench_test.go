package floor

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/ca/lint"
	"github.com/scepter/scepter/internal/pki"
)

// The checks floor: the work besides the private-key operations that no
// enrollment may skip, because a security property rests on it (see
// SECURITY.md). Like the crypto floor it is timed with nothing around it:
// no parsing of the request, no store, no HTTP. For SCEP with an RSA-2048
// requester:
//
//   - the requester's signature on the pkiMessage (RSA-2048 verification);
//   - the CSR's self-signature, its proof of possession (RSA-2048);
//   - the key policy and weak-key checks of the requester's key
//     (ca.CheckKey: size, small factors, Fermat, the Debian blocklist);
//   - lint before signing (internal/ca/lint on the certificate to be signed);
//   - the check of the CA's own signature on the new certificate against a
//     faulty signer (ECDSA P-256 or RSA-2048 verification);
//   - the reply's content key encrypted to the requester (RSA-2048).
//
// The crypto floor plus this is the least CPU an enrollment can take
// without giving up one of those properties.
var (
	checksOnce sync.Once
	checksErr  error
	requester  *rsa.PrivateKey
	csr        *x509.CertificateRequest
	msgSig     []byte            // the requester's signature over digest
	leafDER    map[string][]byte // configuration -> a device certificate of its CA
	caCert     map[string]*x509.Certificate
	linter     *lint.Linter
)

func checksSetup(b *testing.B) {
	b.Helper()
	benchKeys(b)
	checksOnce.Do(func() { checksErr = buildChecks() })
	if checksErr != nil {
		b.Fatal(checksErr)
	}
}

func buildChecks() error {
	var err error
	if requester, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return err
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "device-0042", Organization: []string{"Example"}},
	}, requester)
	if err != nil {
		return err
	}
	if csr, err = x509.ParseCertificateRequest(csrDER); err != nil {
		return err
	}
	if msgSig, err = requester.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
		return err
	}
	if linter, err = lint.New(); err != nil {
		return err
	}
	leafDER, caCert = map[string][]byte{}, map[string]*x509.Certificate{}
	// A fixed validity: nothing here is checked against a clock.
	notBefore := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, key := range map[string]crypto.Signer{"default": ecKey, "rsa-ca": rsaKey} {
		caTmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA " + name},
			NotBefore: notBefore, NotAfter: notBefore.AddDate(10, 0, 0),
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
			SubjectKeyId: []byte{1, 2, 3, 4},
		}
		der, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, key.Public(), key)
		if err != nil {
			return err
		}
		if caCert[name], err = x509.ParseCertificate(der); err != nil {
			return err
		}
		leafTmpl := &x509.Certificate{
			SerialNumber: new(big.Int).Lsh(big.NewInt(1), 120), Subject: csr.Subject,
			NotBefore: notBefore, NotAfter: notBefore.AddDate(1, 0, 0),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, // the default profile's
			BasicConstraintsValid: true, SubjectKeyId: []byte{5, 6, 7, 8},
			CRLDistributionPoints: []string{"http://ca.example/crl"}, OCSPServer: []string{"http://ca.example/ocsp"},
		}
		if leafDER[name], err = x509.CreateCertificate(rand.Reader, leafTmpl, caCert[name], &requester.PublicKey, key); err != nil {
			return err
		}
	}
	return nil
}

// checks returns one enrollment's checks for configuration name.
func checks(b *testing.B, name string) func() {
	leaf, err := x509.ParseCertificate(leafDER[name])
	if err != nil {
		b.Fatal(err)
	}
	issuer, der := caCert[name], leafDER[name]
	cek := make([]byte, contentKeyLen)
	return func() {
		if err := rsa.VerifyPKCS1v15(&requester.PublicKey, crypto.SHA256, digest[:], msgSig); err != nil {
			b.Fatal(err)
		}
		if err := csr.CheckSignature(); err != nil {
			b.Fatal(err)
		}
		if err := ca.CheckKey(pki.DefaultKeyPolicy, &requester.PublicKey); err != nil {
			b.Fatal(err)
		}
		if err := linter.Check(der); err != nil {
			b.Fatal(err)
		}
		if err := issuer.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
			b.Fatal(err)
		}
		//lint:ignore SA1019 the CertRep's envelope wraps its content key with PKCS #1 v1.5, as the request's did.
		if _, err := rsa.EncryptPKCS1v15(rand.Reader, &requester.PublicKey, cek); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChecksFloor: one iteration is one SCEP enrollment's mandatory
// checks (see above), in the configurations of BenchmarkCryptoFloor that
// SCEP uses; scripts/bench reads it next to the crypto floor.
func BenchmarkChecksFloor(b *testing.B) {
	checksSetup(b)
	for _, name := range []string{"default", "rsa-ca"} {
		b.Run(name, func(b *testing.B) {
			run := checks(b, name)
			for b.Loop() {
				run()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/enroll")
		})
	}
}
