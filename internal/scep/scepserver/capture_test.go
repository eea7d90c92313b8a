package scepserver_test

import (
	"crypto"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/scep/scepserver"
)

// The captures of real clients live once, at the repository root.
const captureDir = "../../../testdata/captures/scep"

// capture is one recorded exchange of a real client or device emulator
// (see testdata/captures/README.md).
type capture struct {
	name string
	dir  string
}

func (c capture) raw(t *testing.T) []byte {
	t.Helper()
	head, err := os.ReadFile(filepath.Join(c.dir, "request.http"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := os.ReadFile(filepath.Join(c.dir, "request.body"))
	return append(head, body...)
}

// message returns the pkiMessage the client sent, decoded the way the
// server decodes it.
func (c capture) message(t *testing.T) *scep.PKIMessage {
	t.Helper()
	der, err := os.ReadFile(filepath.Join(c.dir, "request.body"))
	if err != nil {
		q, qerr := os.ReadFile(filepath.Join(c.dir, "request.query"))
		if qerr != nil {
			t.Fatal(qerr)
		}
		der, err = scep.DecodeQueryMessage(string(q))
		if err != nil {
			t.Fatal(err)
		}
	}
	m, err := scep.Parse(der)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// replyKey is the key the CertRep is encrypted to: the signer's.
func (c capture) replyKey(t *testing.T) (*x509.Certificate, crypto.Decrypter) {
	t.Helper()
	keyPath := filepath.Join(c.dir, "signer-key.pem")
	if _, err := os.Stat(keyPath); err != nil {
		keyPath = filepath.Join(c.dir, "client-key.pem")
	}
	return c.message(t).SignerCert, readPEMKey(t, keyPath).(crypto.Decrypter)
}

// issuedByPassword opens a SUCCESS CertRep sent to an EC requester.
func (ts *testServer) issuedByPassword(t *testing.T, rep *scep.PKIMessage, password string) (*x509.Certificate, cms.ContentCipher) {
	t.Helper()
	if rep.PKIStatus != scep.StatusSuccess {
		t.Fatalf("pkiStatus %s failInfo %s (%s)", rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
	}
	env, err := cms.ParseEnvelopedData(rep.SignedData.Content)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := env.DecryptPassword([]byte(password))
	if err != nil {
		t.Fatalf("pwri: %v", err)
	}
	sd, err := cms.ParseSignedData(inner)
	if err != nil || len(sd.Certificates) == 0 {
		t.Fatalf("inner: %v", err)
	}
	return sd.Certificates[0], env.Cipher
}

// TestCapturedClients replays every captured PKIOperation byte for byte
// (HTTP/1.0 without Host, no Content-Type, unescaped GET queries, ...)
// against a server whose RA is the capture CA, and checks the answer.
func TestCapturedClients(t *testing.T) {
	captureCA := readPEMCert(t, filepath.Join(captureDir, "ca", "ca-cert.pem"))
	captureKey := readPEMKey(t, filepath.Join(captureDir, "ca", "ca-key.pem"))

	type want struct {
		status   scep.PKIStatus
		failInfo scep.FailInfo
		cipher   cms.ContentCipher // reply cipher on SUCCESS
	}
	success := func(c cms.ContentCipher) want { return want{status: scep.StatusSuccess, cipher: c} }
	failure := func(f scep.FailInfo) want { return want{status: scep.StatusFailure, failInfo: f} }
	tests := []struct {
		capture string
		strict  want // default server: single DES refused
		legacy  want // --allow-insecure-des
	}{
		{"micromdm-scepclient-pkcsreq-rsa2048", failure(scep.BadAlg), success(cms.DES3CBC)},
		{"micromdm-scepclient-pkcsreq-rsa4096", failure(scep.BadAlg), success(cms.DES3CBC)},
		{"micromdm-scepclient-badchallenge", failure(scep.BadAlg), failure(scep.BadRequest)},
		{"emulator-legacy-des", failure(scep.BadAlg), success(cms.DES3CBC)},
		{"emulator-legacy-des-badchallenge", failure(scep.BadAlg), failure(scep.BadRequest)},
		{"strongswan-pki-pkcsreq-aes", success(cms.AES128CBC), success(cms.AES128CBC)},
		{"strongswan-pki-pkcsreq-des3", success(cms.DES3CBC), success(cms.DES3CBC)},
		{"strongswan-pki-pkcsreq-rsa4096", success(cms.AES128CBC), success(cms.AES128CBC)},
		{"strongswan-pki-badchallenge", failure(scep.BadRequest), failure(scep.BadRequest)},
		{"certmonger-get-pkcsreq-rsa2048", success(cms.AES256CBC), success(cms.AES256CBC)},
		{"certmonger-get-pkcsreq-rsa4096", success(cms.AES256CBC), success(cms.AES256CBC)},
		{"certmonger-get-pkcsreq-discovered-ca", success(cms.AES256CBC), success(cms.AES256CBC)},
		{"certmonger-get-badchallenge", failure(scep.BadRequest), failure(scep.BadRequest)},
		// Signed by a certificate another CA issued, with the challenge:
		// a fresh enrollment.
		{"certmonger-get-renewal-resubmit-pkcsreq", success(cms.AES256CBC), success(cms.AES256CBC)},
		// Signed with another key than the CSR's, by a certificate the
		// capture CA (ours here) signed but that is not in our inventory,
		// and whose subject has the lab CA's order (O before CN), not the
		// CSR's: it authenticates nothing, and the request is refused as
		// a relayed CSR. TestSignerOfTheRequestOrOurs re-keys with a
		// certificate of our inventory.
		{"certmonger-get-renewal-rekey-pkcsreq", failure(scep.BadRequest), failure(scep.BadRequest)},
		{"emulator-apple-get-unescaped", success(cms.AES128CBC), success(cms.AES128CBC)},
		{"emulator-apple-get-unescaped-badchallenge", failure(scep.BadRequest), failure(scep.BadRequest)},
		{"emulator-apple-post", success(cms.AES128CBC), success(cms.AES128CBC)},
		{"emulator-apple-post-badchallenge", failure(scep.BadRequest), failure(scep.BadRequest)},
		{"emulator-windows-oaep-aes256", success(cms.AES256CBC), success(cms.AES256CBC)},
		{"emulator-windows-oaep-aes256-badchallenge", failure(scep.BadRequest), failure(scep.BadRequest)},
		{"emulator-cisco-ios-des3-sha1-http10", success(cms.DES3CBC), success(cms.DES3CBC)},
		{"emulator-cisco-ios-des3-sha1-badchallenge", failure(scep.BadRequest), failure(scep.BadRequest)},
		// Renewals (RenewalReq, or PKCSReq without a challenge signed by an
		// issued certificate) signed by certificates another CA issued:
		// badCertId, as the signer is not ours.
		{"emulator-apple-renewal-pkcsreq", failure(scep.BadCertID), failure(scep.BadCertID)},
		{"micromdm-scepclient-renewalreq", failure(scep.BadAlg), failure(scep.BadCertID)},
		{"strongswan-pki-renewalreq-rekey", failure(scep.BadCertID), failure(scep.BadCertID)},
		// EC requesters receive a password-based envelope keyed from the challenge.
		{"emulator-ec-client-p256", success(cms.AES128CBC), success(cms.AES128CBC)},
		{"emulator-ec-client-p256-badchallenge", failure(scep.BadRequest), failure(scep.BadRequest)},
	}
	for _, mode := range []string{"strict", "legacy"} {
		t.Run(mode, func(t *testing.T) {
			ts := newTestServer(t, serverOptions{raCert: captureCA, raKey: captureKey,
				scep: scepserver.Options{AllowInsecureDES: mode == "legacy"}})
			// Certificates received, by serial: captures of one device
			// with one transaction ID, key and names are the same
			// transaction, answered with one certificate.
			issued := map[string]bool{}
			for _, tt := range tests {
				w := tt.strict
				if mode == "legacy" {
					w = tt.legacy
				}
				c := capture{name: tt.capture, dir: filepath.Join(captureDir, tt.capture)}
				t.Run(tt.capture, func(t *testing.T) {
					req := c.message(t)
					resp, body := ts.rawRequest(t, c.raw(t))
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
					}
					if ct := resp.Header.Get("Content-Type"); ct != "application/x-pki-message" {
						t.Errorf("Content-Type %q", ct)
					}
					rep := ts.parseReply(t, body, req)
					if rep.PKIStatus != w.status || rep.FailInfo != w.failInfo {
						t.Fatalf("got pkiStatus %s failInfo %s (%s), want %s %s", rep.PKIStatus, rep.FailInfo, rep.FailInfoText, w.status, w.failInfo)
					}
					if w.status != scep.StatusSuccess {
						if rep.FailInfoText == "" {
							t.Error("FAILURE without failInfoText")
						}
						return
					}
					var cert *x509.Certificate
					var cipher cms.ContentCipher
					if strings.Contains(tt.capture, "-ec-") {
						cert, cipher = ts.issuedByPassword(t, rep, testChallenge)
					} else {
						recipient, key := c.replyKey(t)
						cert, cipher = ts.issuedCert(t, rep, recipient, key)
					}
					if cipher != w.cipher {
						t.Errorf("reply cipher %v, want %v", cipher, w.cipher)
					}
					// The reply's key transport answers in kind (Windows sends OAEP).
					if env, err := cms.ParseEnvelopedData(rep.SignedData.Content); err == nil && !strings.Contains(tt.capture, "-ec-") {
						want := cms.RSAPKCS1v15
						if strings.Contains(tt.capture, "oaep") {
							want = cms.RSAOAEP
						}
						if got := env.Recipients[0].KeyTransport; got != want {
							t.Errorf("reply key transport %v, want %v", got, want)
						}
					}
					if !strings.Contains(cert.Subject.String(), "CN=") {
						t.Errorf("subject %s", cert.Subject)
					}
					issued[cert.SerialNumber.String()] = true
					// Replaying the very same bytes (its answer lost) is
					// answered with the same certificate, and issues nothing.
					before := ts.certCount(t)
					_, body = ts.rawRequest(t, c.raw(t))
					again := ts.parseReply(t, body, req)
					var sent *x509.Certificate
					if strings.Contains(tt.capture, "-ec-") {
						sent, _ = ts.issuedByPassword(t, again, testChallenge)
					} else {
						recipient, key := c.replyKey(t)
						sent, _ = ts.issuedCert(t, again, recipient, key)
					}
					if !sent.Equal(cert) {
						t.Errorf("replay: answered with serial %x, want %x", sent.SerialNumber, cert.SerialNumber)
					}
					if ts.certCount(t) != before {
						t.Error("replay issued a certificate")
					}
				})
			}
			if got := ts.certCount(t); got != len(issued) {
				t.Errorf("store holds %d certificates, %d were received", got, len(issued))
			}
		})
	}
}

// TestCapturedGetOperations replays the GetCACaps and GetCACert requests.
func TestCapturedGetOperations(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	entries, err := os.ReadDir(captureDir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		name := e.Name()
		if !strings.Contains(name, "getcacaps") && !strings.Contains(name, "getcacert") {
			continue
		}
		n++
		t.Run(name, func(t *testing.T) {
			resp, body := ts.rawRequest(t, capture{dir: filepath.Join(captureDir, name)}.raw(t))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("HTTP %d", resp.StatusCode)
			}
			if strings.Contains(name, "getcacaps") {
				if !strings.Contains(string(body), "SCEPStandard") || !strings.Contains(string(body), "SHA-384") {
					t.Errorf("caps: %q", body)
				}
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/x-x509-ca-ra-cert" {
				t.Errorf("Content-Type %q", ct)
			}
			sd, err := cms.ParseSignedData(body)
			if err != nil {
				t.Fatal(err)
			}
			if len(sd.Certificates) != 3 || !sd.Certificates[0].Equal(ts.RA.Cert) {
				t.Errorf("GetCACert holds %d certificates, want RA, issuing CA, root", len(sd.Certificates))
			}
		})
	}
	if n < 8 {
		t.Errorf("only %d GET captures found", n)
	}
}
