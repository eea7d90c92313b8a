package cms

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// captures lists every SCEP PKIOperation capture in testdata/scep (copied
// from shared/testdata/captures/scep) with what its info.txt says the
// client sent.
var captures = []struct {
	name   string
	cipher ContentCipher
	kt     KeyTransport
	digest crypto.Hash
	sigAlg string // as openssl names it in info.txt
}{
	{"certmonger-get-badchallenge", AES256CBC, RSAPKCS1v15, crypto.SHA256, "rsaEncryption"},
	{"certmonger-get-pkcsreq-discovered-ca", AES256CBC, RSAPKCS1v15, crypto.SHA256, "rsaEncryption"},
	{"certmonger-get-pkcsreq-rsa2048", AES256CBC, RSAPKCS1v15, crypto.SHA256, "rsaEncryption"},
	{"certmonger-get-pkcsreq-rsa4096", AES256CBC, RSAPKCS1v15, crypto.SHA256, "rsaEncryption"},
	{"certmonger-get-renewal-rekey-pkcsreq", AES256CBC, RSAPKCS1v15, crypto.SHA256, "rsaEncryption"},
	{"certmonger-get-renewal-resubmit-pkcsreq", AES256CBC, RSAPKCS1v15, crypto.SHA256, "rsaEncryption"},
	{"emulator-apple-get-unescaped", AES128CBC, RSAPKCS1v15, crypto.SHA256, "sha256WithRSAEncryption"},
	{"emulator-apple-get-unescaped-badchallenge", AES128CBC, RSAPKCS1v15, crypto.SHA256, "sha256WithRSAEncryption"},
	{"emulator-apple-post", AES128CBC, RSAPKCS1v15, crypto.SHA256, "sha256WithRSAEncryption"},
	{"emulator-apple-post-badchallenge", AES128CBC, RSAPKCS1v15, crypto.SHA256, "sha256WithRSAEncryption"},
	{"emulator-apple-renewal-pkcsreq", AES128CBC, RSAPKCS1v15, crypto.SHA256, "sha256WithRSAEncryption"},
	{"emulator-cisco-ios-des3-sha1-badchallenge", DES3CBC, RSAPKCS1v15, crypto.SHA1, "sha1WithRSAEncryption"},
	{"emulator-cisco-ios-des3-sha1-http10", DES3CBC, RSAPKCS1v15, crypto.SHA1, "sha1WithRSAEncryption"},
	{"emulator-ec-client-p256", AES128CBC, RSAPKCS1v15, crypto.SHA256, "ecdsa-with-SHA256"},
	{"emulator-ec-client-p256-badchallenge", AES128CBC, RSAPKCS1v15, crypto.SHA256, "ecdsa-with-SHA256"},
	{"emulator-legacy-des", DESCBC, RSAPKCS1v15, crypto.SHA1, "sha1WithRSAEncryption"},
	{"emulator-legacy-des-badchallenge", DESCBC, RSAPKCS1v15, crypto.SHA1, "sha1WithRSAEncryption"},
	{"emulator-windows-oaep-aes256", AES256CBC, RSAOAEP, crypto.SHA256, "sha256WithRSAEncryption"},
	{"emulator-windows-oaep-aes256-badchallenge", AES256CBC, RSAOAEP, crypto.SHA256, "sha256WithRSAEncryption"},
	{"micromdm-scepclient-badchallenge", DESCBC, RSAPKCS1v15, crypto.SHA1, "sha1WithRSAEncryption"},
	{"micromdm-scepclient-pkcsreq-rsa2048", DESCBC, RSAPKCS1v15, crypto.SHA1, "sha1WithRSAEncryption"},
	{"micromdm-scepclient-pkcsreq-rsa4096", DESCBC, RSAPKCS1v15, crypto.SHA1, "sha1WithRSAEncryption"},
	{"micromdm-scepclient-renewalreq", DESCBC, RSAPKCS1v15, crypto.SHA1, "sha1WithRSAEncryption"},
	{"strongswan-pki-badchallenge", AES128CBC, RSAPKCS1v15, crypto.SHA256, "sha256WithRSAEncryption"},
	{"strongswan-pki-pkcsreq-aes", AES128CBC, RSAPKCS1v15, crypto.SHA256, "sha256WithRSAEncryption"},
	{"strongswan-pki-pkcsreq-des3", DES3CBC, RSAPKCS1v15, crypto.SHA256, "sha256WithRSAEncryption"},
	{"strongswan-pki-pkcsreq-rsa4096", AES128CBC, RSAPKCS1v15, crypto.SHA256, "sha256WithRSAEncryption"},
	{"strongswan-pki-renewalreq-rekey", AES128CBC, RSAPKCS1v15, crypto.SHA256, "sha256WithRSAEncryption"},
}

// info.txt names -> our values, to cross-check the table against the files.
var (
	infoCipher = map[string]ContentCipher{
		"des-cbc": DESCBC, "des-ede3-cbc": DES3CBC, "aes-128-cbc": AES128CBC, "aes-256-cbc": AES256CBC,
	}
	infoKT     = map[string]KeyTransport{"rsaEncryption": RSAPKCS1v15, "rsaesOaep": RSAOAEP}
	infoDigest = map[string]crypto.Hash{"sha1": crypto.SHA1, "sha256": crypto.SHA256}
	sigAlgOIDs = map[string]asn1.ObjectIdentifier{
		"rsaEncryption": oidRSAEncryption, "sha1WithRSAEncryption": oidSHA1WithRSA,
		"sha256WithRSAEncryption": oidSHA256WithRSA, "ecdsa-with-SHA256": oidECDSAWithSHA256,
	}
)

// The captures of real clients live once, at the repository root.
const scepDir = "../../testdata/captures/scep"

// requestMessage returns the pkiMessage DER of a capture: the POST body or
// the decoded GET message parameter.
func requestMessage(t testing.TB, dir string) []byte {
	t.Helper()
	if b, err := os.ReadFile(filepath.Join(dir, "request.body")); err == nil {
		return b
	}
	return decodeQueryMessage(t, string(readFile(t, filepath.Join(dir, "request.query"))))
}

func TestCaptureTableComplete(t *testing.T) {
	entries, err := os.ReadDir(scepDir)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, c := range captures {
		listed[c.name] = true
	}
	for _, e := range entries {
		// GetCACaps/GetCACert exchanges carry no CMS request.
		if strings.Contains(e.Name(), "getca") {
			continue
		}
		if e.IsDir() && e.Name() != "ca" && !listed[e.Name()] {
			t.Errorf("capture %s is not in the table", e.Name())
		}
	}
}

func TestCapturedRequests(t *testing.T) {
	caCert := loadCert(t, filepath.Join(scepDir, "ca/ca-cert.pem"))
	caKey := asDecrypter(t, loadKey(t, filepath.Join(scepDir, "ca/ca-key.pem")))
	for _, tc := range captures {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(scepDir, tc.name)
			info := string(readFile(t, filepath.Join(dir, "info.txt")))
			checkInfo(t, info, tc.cipher, tc.kt, tc.digest, tc.sigAlg)

			sd, err := ParseSignedData(requestMessage(t, dir))
			if err != nil {
				t.Fatalf("ParseSignedData: %v", err)
			}
			if !sd.ContentType.Equal(OIDData) || len(sd.Signers) != 1 {
				t.Fatalf("content type %v, %d signers", sd.ContentType, len(sd.Signers))
			}
			si := &sd.Signers[0]
			if got := sd.Digest(si); got != tc.digest {
				t.Errorf("digest %v, want %v", got, tc.digest)
			}
			if !si.SignatureAlgorithm.Algorithm.Equal(sigAlgOIDs[tc.sigAlg]) {
				t.Errorf("signature algorithm %v, want %s", si.SignatureAlgorithm.Algorithm, tc.sigAlg)
			}
			signer, err := sd.SignerCertificate(si)
			if err != nil {
				t.Fatal(err)
			}
			if p := filepath.Join(dir, "signer-cert.pem"); fileExists(p) && !signer.Equal(loadCert(t, p)) {
				t.Errorf("signer is %s, want signer-cert.pem", signer.Subject)
			}
			if err := sd.Verify(si, signer); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if _, ok := si.Attr(asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 7}); !ok {
				t.Errorf("no SCEP transactionID attribute")
			}

			ed, err := ParseEnvelopedData(sd.Content)
			if err != nil {
				t.Fatalf("ParseEnvelopedData: %v", err)
			}
			if ed.Cipher != tc.cipher {
				t.Errorf("cipher %v, want %v", ed.Cipher, tc.cipher)
			}
			if len(ed.Recipients) != 1 || ed.Recipients[0].KeyTransport != tc.kt {
				t.Fatalf("recipients %+v, want one %v", ed.Recipients, tc.kt)
			}
			if tc.kt == RSAOAEP && ed.Recipients[0].OAEPHash != crypto.SHA1 {
				t.Errorf("OAEP hash %v", ed.Recipients[0].OAEPHash)
			}
			csrDER, err := ed.DecryptKeyTransport(caCert, caKey)
			if err != nil {
				t.Fatalf("DecryptKeyTransport: %v", err)
			}
			csr, err := x509.ParseCertificateRequest(csrDER)
			if err != nil {
				t.Fatalf("decrypted content is not a CSR: %v", err)
			}
			if err := csr.CheckSignature(); err != nil {
				t.Errorf("CSR signature: %v", err)
			}
			clientKey := loadKey(t, filepath.Join(dir, "client-key.pem"))
			if !clientKey.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(csr.PublicKey) {
				t.Errorf("CSR key is not client-key.pem")
			}
			// The same message re-encoded as BER must give the same result.
			sdBER, err := ParseSignedData(toBER(t, requestMessage(t, dir)))
			if err != nil {
				t.Fatalf("BER form: %v", err)
			}
			signerBER, err := sdBER.SignerCertificate(&sdBER.Signers[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := sdBER.Verify(&sdBER.Signers[0], signerBER); err != nil || !bytes.Equal(sdBER.Content, sd.Content) {
				t.Errorf("BER form Verify: %v", err)
			}
		})
	}
}

func checkInfo(t *testing.T, info string, c ContentCipher, kt KeyTransport, h crypto.Hash, sigAlg string) {
	t.Helper()
	var line1, line2 string
	for _, l := range strings.Split(info, "\n") {
		if strings.HasPrefix(l, "request: messageType") {
			line1 = l
		}
		if strings.HasPrefix(l, "request envelope:") {
			line2 = l
		}
	}
	// "request: messageType PKCSReq, digest sha256, signature rsaEncryption"
	f := strings.Fields(strings.ReplaceAll(line1, ",", ""))
	if len(f) < 7 || infoDigest[f[4]] != h || f[6] != sigAlg {
		t.Errorf("table disagrees with info.txt: %q", line1)
	}
	// "request envelope: key transport rsaEncryption (ktri), content aes-256-cbc"
	f = strings.Fields(strings.ReplaceAll(line2, ",", ""))
	if len(f) < 8 || infoKT[f[4]] != kt || infoCipher[f[7]] != c {
		t.Errorf("table disagrees with info.txt: %q", line2)
	}
}

func TestCapturedReplies(t *testing.T) {
	caCert := loadCert(t, filepath.Join(scepDir, "ca/ca-cert.pem"))
	checked := 0
	for _, tc := range captures {
		dir := filepath.Join(scepDir, tc.name)
		head := string(readFile(t, filepath.Join(dir, "response.http")))
		if !strings.Contains(head, " 200 ") || !strings.Contains(head, "application/x-pki-message") {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			checked++
			sd, err := ParseSignedData(readFile(t, filepath.Join(dir, "response.body")))
			if err != nil {
				t.Fatalf("ParseSignedData: %v", err)
			}
			si := &sd.Signers[0]
			signer, err := sd.SignerCertificate(si)
			if err != nil {
				t.Fatal(err)
			}
			if !signer.Equal(caCert) {
				t.Errorf("reply signed by %s, not the CA", signer.Subject)
			}
			if err := sd.Verify(si, signer); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !si.SignatureAlgorithm.Algorithm.Equal(oidRSAEncryption) || sd.Digest(si) != crypto.SHA1 {
				t.Errorf("reply signature %v / %v", si.SignatureAlgorithm.Algorithm, sd.Digest(si))
			}
			info := string(readFile(t, filepath.Join(dir, "info.txt")))
			if !strings.Contains(info, "pkiStatus SUCCESS") {
				if len(sd.Content) != 0 {
					t.Errorf("FAILURE reply carries %d bytes of content", len(sd.Content))
				}
				return
			}
			// Decrypt with signer-key.pem when present, else client-key.pem;
			// the envelope names the request's signer certificate.
			keyPath := filepath.Join(dir, "signer-key.pem")
			if !fileExists(keyPath) {
				keyPath = filepath.Join(dir, "client-key.pem")
			}
			req, err := ParseSignedData(requestMessage(t, dir))
			if err != nil {
				t.Fatal(err)
			}
			reqSigner, err := req.SignerCertificate(&req.Signers[0])
			if err != nil {
				t.Fatal(err)
			}
			ed, err := ParseEnvelopedData(sd.Content)
			if err != nil {
				t.Fatalf("ParseEnvelopedData: %v", err)
			}
			if ed.Cipher != AES128CBC || ed.Recipients[0].KeyTransport != RSAPKCS1v15 {
				t.Errorf("reply envelope %v/%v", ed.Cipher, ed.Recipients[0].KeyTransport)
			}
			inner, err := ed.DecryptKeyTransport(reqSigner, asDecrypter(t, loadKey(t, keyPath)))
			if err != nil {
				t.Fatalf("DecryptKeyTransport: %v", err)
			}
			certs, err := ParseSignedData(inner)
			if err != nil {
				t.Fatalf("degenerate reply: %v", err)
			}
			if certs.Content != nil || len(certs.Signers) != 0 || len(certs.Certificates) == 0 {
				t.Fatalf("not a certs-only SignedData: %d signers, %d certs", len(certs.Signers), len(certs.Certificates))
			}
			clientKey := loadKey(t, filepath.Join(dir, "client-key.pem"))
			found := false
			for _, c := range certs.Certificates {
				if clientKey.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(c.PublicKey) {
					found = true
				}
			}
			if !found {
				t.Errorf("no issued certificate for client-key.pem")
			}
		})
	}
	if checked < 20 {
		t.Errorf("only %d replies checked", checked)
	}
}

func TestCapturedESTCerts(t *testing.T) {
	b64 := readFile(t, "testdata/est-cacerts.b64")
	der := decodeQueryMessage(t, "message="+string(bytes.ReplaceAll(b64, []byte("\r\n"), nil)))
	sd, err := ParseSignedData(der)
	if err != nil {
		t.Fatal(err)
	}
	if len(sd.Certificates) != 2 || len(sd.Signers) != 0 || sd.Content != nil {
		t.Fatalf("certs %d signers %d content %v", len(sd.Certificates), len(sd.Signers), sd.Content)
	}
}
