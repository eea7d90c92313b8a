// Package client is scepter's SCEP client library, used by `scepter enroll`
// and by the tests. It talks to any RFC 8894 server, not only ours.
package client

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/scep"
)

// maxResponseBytes bounds what we read from a server.
const maxResponseBytes = 4 << 20

// SCEP is a client for one SCEP URL.
type SCEP struct {
	URL  string
	HTTP *http.Client
	// AllowInsecureDES lets the client send single DES to a server that
	// offers nothing better. Off by default.
	AllowInsecureDES bool
	// Warnf, when set, receives warnings the caller should show.
	Warnf func(format string, args ...any)
}

func (c *SCEP) warnf(format string, args ...any) {
	if c.Warnf != nil {
		c.Warnf(format, args...)
	}
}

// Caps is the set of capabilities a server advertised.
type Caps map[string]bool

// Has reports whether a capability was advertised (case-insensitive, as
// some servers vary the case).
func (c Caps) Has(name string) bool { return c[strings.ToLower(name)] }

// FailureError is a FAILURE CertRep: the server refused, and says why.
type FailureError struct {
	FailInfo scep.FailInfo
	Text     string
}

func (e *FailureError) Error() string {
	if e.Text != "" {
		return fmt.Sprintf("server refused the request: %s (%s)", e.FailInfo, e.Text)
	}
	return fmt.Sprintf("server refused the request: %s", e.FailInfo)
}

// PendingError is a PENDING CertRep: the request awaits manual approval.
type PendingError struct{ TransactionID string }

func (e *PendingError) Error() string {
	return fmt.Sprintf("request %s is pending manual approval", e.TransactionID)
}

func (c *SCEP) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 60 * time.Second}
}

func (c *SCEP) get(ctx context.Context, operation, message string) (*http.Response, []byte, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, nil, fmt.Errorf("scep url: %w", err)
	}
	q := "operation=" + operation
	if message != "" {
		q += "&message=" + url.QueryEscape(message)
	}
	u.RawQuery = q
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, err
	}
	return c.do(req)
}

func (c *SCEP) do(req *http.Request) (*http.Response, []byte, error) {
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, nil, fmt.Errorf("reading response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("%s: HTTP %d: %s", req.URL.Query().Get("operation"), resp.StatusCode, strings.TrimSpace(string(truncate(body, 200))))
	}
	return resp, body, nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// GetCACaps fetches the server's capabilities.
func (c *SCEP) GetCACaps(ctx context.Context) (Caps, error) {
	_, body, err := c.get(ctx, "GetCACaps", "")
	if err != nil {
		return nil, err
	}
	caps := Caps{}
	for _, line := range strings.FieldsFunc(string(body), func(r rune) bool { return r == '\n' || r == '\r' }) {
		if s := strings.TrimSpace(line); s != "" {
			caps[strings.ToLower(s)] = true
		}
	}
	return caps, nil
}

// GetCACert fetches the CA (and RA) certificates.
func (c *SCEP) GetCACert(ctx context.Context) ([]*x509.Certificate, error) {
	resp, body, err := c.get(ctx, "GetCACert", "")
	if err != nil {
		return nil, err
	}
	ct := resp.Header.Get("Content-Type")
	if strings.HasPrefix(ct, "application/x-x509-ca-cert") {
		cert, err := x509.ParseCertificate(body)
		if err != nil {
			return nil, fmt.Errorf("GetCACert: %w", err)
		}
		return []*x509.Certificate{cert}, nil
	}
	sd, err := cms.ParseSignedData(body)
	if err != nil {
		// Some servers label a single DER certificate wrongly.
		if cert, cerr := x509.ParseCertificate(body); cerr == nil {
			return []*x509.Certificate{cert}, nil
		}
		return nil, fmt.Errorf("GetCACert (%s): %w", ct, err)
	}
	if len(sd.Certificates) == 0 {
		return nil, errors.New("GetCACert: no certificates in the response")
	}
	return sd.Certificates, nil
}

// Fingerprint is "sha256:" + hex of the certificate's SHA-256.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// CheckFingerprint succeeds when one of certs has the given fingerprint
// ("sha256:HEX" or bare hex, colons allowed).
func CheckFingerprint(certs []*x509.Certificate, want string) error {
	w := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(strings.TrimSpace(want), "sha256:"), ":", ""))
	if _, err := hex.DecodeString(w); err != nil || len(w) != 64 {
		return fmt.Errorf("CA fingerprint %q is not a SHA-256 hex digest", want)
	}
	for _, c := range certs {
		if strings.TrimPrefix(Fingerprint(c), "sha256:") == w {
			return nil
		}
	}
	return fmt.Errorf("no certificate from the server matches CA fingerprint %s: refusing to trust it", want)
}

// Recipient picks the certificate to encrypt to: an RA certificate meant for
// encryption if there is one, else the CA certificate itself.
func Recipient(certs []*x509.Certificate) (*x509.Certificate, error) {
	var fallback *x509.Certificate
	for _, c := range certs {
		if _, ok := c.PublicKey.(*rsa.PublicKey); !ok {
			continue
		}
		if !c.IsCA && (c.KeyUsage == 0 || c.KeyUsage&x509.KeyUsageKeyEncipherment != 0) {
			return c, nil
		}
		if fallback == nil && c.IsCA {
			fallback = c
		}
	}
	if fallback == nil {
		return nil, errors.New("the server offers no RSA certificate to encrypt the request to")
	}
	return fallback, nil
}

// Algorithms chooses the strongest cipher and digest the server offers.
func (c *SCEP) Algorithms(caps Caps) (cms.ContentCipher, crypto.Hash, error) {
	var cipher cms.ContentCipher
	switch {
	case caps.Has("AES") || caps.Has("SCEPStandard"):
		// AES-256-CBC is the AES every deployed server decrypts; some older
		// Go servers could not decrypt AES-128-CBC.
		cipher = cms.AES256CBC
	case caps.Has("DES3"):
		cipher = cms.DES3CBC
	case c.AllowInsecureDES:
		cipher = cms.DESCBC
	default:
		return 0, 0, errors.New("the server offers neither AES nor DES3 (only single DES, which is insecure); pass --allow-insecure-des to use it anyway")
	}
	digest := crypto.SHA1
	switch {
	case caps.Has("SHA-256") || caps.Has("SCEPStandard"):
		digest = crypto.SHA256
	case caps.Has("SHA-512"):
		digest = crypto.SHA512
	}
	return cipher, digest, nil
}

// EnrollRequest is one PKCSReq (or RenewalReq) to send.
type EnrollRequest struct {
	CSR []byte        // DER PKCS#10
	Key crypto.Signer // the CSR's key; signs the self-signed signer certificate
	// SignerCert and SignerKey, when set, sign the message instead (renewal
	// with the current certificate).
	SignerCert *x509.Certificate
	SignerKey  crypto.Signer
	// CACerts are the certificates from GetCACert (already checked).
	CACerts []*x509.Certificate
	Caps    Caps
	Type    scep.MessageType // PKCSReq by default
}

// Enroll sends a PKCSReq and returns the issued certificate.
func (c *SCEP) Enroll(ctx context.Context, r EnrollRequest) (*x509.Certificate, error) {
	csr, err := x509.ParseCertificateRequest(r.CSR)
	if err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	cipher, digest, err := c.Algorithms(r.Caps)
	if err != nil {
		return nil, err
	}
	recipient, err := Recipient(r.CACerts)
	if err != nil {
		return nil, err
	}
	signerCert, signerKey := r.SignerCert, r.SignerKey
	if signerCert == nil {
		signerKey = r.Key
		if signerCert, err = SelfSigned(csr, r.Key); err != nil {
			return nil, err
		}
	}
	envelope, err := cms.Encrypt(r.CSR, []*x509.Certificate{recipient}, cms.EncryptOptions{Cipher: cipher, KeyTransport: cms.RSAPKCS1v15})
	if err != nil {
		return nil, fmt.Errorf("encrypting the request: %w", err)
	}
	nonce, err := scep.NewNonce()
	if err != nil {
		return nil, err
	}
	typ := r.Type
	if typ == "" {
		typ = scep.PKCSReq
	}
	txID := TransactionID(csr.RawSubjectPublicKeyInfo)
	msg, err := scep.BuildRequest(scep.Request{
		Type: typ, TransactionID: txID, SenderNonce: nonce, Digest: digest,
		Envelope: envelope, SigningTime: time.Now(),
	}, scep.Identity{Cert: signerCert, Key: signerKey})
	if err != nil {
		return nil, err
	}
	body, err := c.pkiOperation(ctx, r.Caps, msg)
	if err != nil {
		return nil, err
	}
	rep, err := c.checkReply(body, r.CACerts, txID, nonce)
	if err != nil {
		return nil, err
	}
	switch rep.PKIStatus {
	case scep.StatusSuccess:
	case scep.StatusFailure:
		return nil, &FailureError{FailInfo: rep.FailInfo, Text: rep.FailInfoText}
	case scep.StatusPending:
		return nil, &PendingError{TransactionID: txID}
	default:
		return nil, fmt.Errorf("CertRep has unknown pkiStatus %q", rep.PKIStatus)
	}
	dec, ok := signerKey.(crypto.Decrypter)
	if !ok {
		return nil, errors.New("the signer key cannot decrypt the reply")
	}
	env, err := cms.ParseEnvelopedData(rep.SignedData.Content)
	if err != nil {
		return nil, fmt.Errorf("CertRep envelope: %w", err)
	}
	if env.Cipher == cms.DESCBC {
		// Some servers (micromdm 2.1.0) answer in single DES whatever we
		// sent. The reply holds only our public certificate and its
		// integrity rests on the signature checked above; the secret (the
		// challenge) travelled in our own envelope. So accept, and say so.
		c.warnf("the server answered with single DES, which is insecure (RFC 8894 forbids it); the certificate is public and the reply's signature was verified, so it is accepted")
	}
	inner, err := env.DecryptKeyTransport(signerCert, dec)
	if err != nil {
		return nil, fmt.Errorf("decrypting the CertRep: %w", err)
	}
	certs, err := cms.ParseSignedData(inner)
	if err != nil {
		return nil, fmt.Errorf("CertRep content: %w", err)
	}
	for _, cert := range certs.Certificates {
		if bytes.Equal(cert.RawSubjectPublicKeyInfo, csr.RawSubjectPublicKeyInfo) {
			return cert, nil
		}
	}
	return nil, errors.New("the CertRep holds no certificate for our key")
}

func (c *SCEP) pkiOperation(ctx context.Context, caps Caps, msg []byte) ([]byte, error) {
	if caps.Has("POSTPKIOperation") || caps.Has("SCEPStandard") {
		u, err := url.Parse(c.URL)
		if err != nil {
			return nil, fmt.Errorf("scep url: %w", err)
		}
		u.RawQuery = "operation=PKIOperation"
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(msg))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-pki-message")
		_, body, err := c.do(req)
		return body, err
	}
	_, body, err := c.get(ctx, "PKIOperation", base64.StdEncoding.EncodeToString(msg))
	return body, err
}

// checkReply parses a CertRep and checks it answers our message and is
// signed by a certificate the server gave us in GetCACert.
func (c *SCEP) checkReply(body []byte, caCerts []*x509.Certificate, txID string, nonce []byte) (*scep.PKIMessage, error) {
	rep, err := scep.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("CertRep: %w", err)
	}
	var signer *x509.Certificate
	for _, ca := range caCerts {
		if rep.SignerCert != nil && ca.Equal(rep.SignerCert) {
			signer = ca
		}
	}
	if signer == nil {
		// The signer certificate may be omitted; try each CA/RA certificate.
		for _, ca := range caCerts {
			if rep.VerifyWith(ca) == nil {
				signer = ca
				break
			}
		}
		if signer == nil {
			return nil, errors.New("CertRep is not signed by a certificate from GetCACert")
		}
	}
	if err := rep.VerifyWith(signer); err != nil {
		return nil, fmt.Errorf("CertRep signature: %w", err)
	}
	if rep.MessageType != scep.CertRep {
		return nil, fmt.Errorf("reply has messageType %s, want CertRep", rep.MessageType)
	}
	if rep.TransactionID != txID {
		return nil, errors.New("CertRep transactionID does not match the request")
	}
	if !bytes.Equal(rep.RecipientNonce, nonce) {
		return nil, errors.New("CertRep recipientNonce does not match our senderNonce")
	}
	return rep, nil
}

// TransactionID derives the transaction ID from the public key, as RFC 8894
// suggests, so a retry of the same request is recognisable.
func TransactionID(spki []byte) string {
	sum := sha256.Sum256(spki)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// SelfSigned makes the short-lived self-signed certificate that signs a
// first PKCSReq (RFC 8894 §2.3).
func SelfSigned(csr *x509.CertificateRequest, key crypto.Signer) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial.Add(serial, big.NewInt(1)),
		RawSubject:   csr.RawSubject,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("self-signed signer certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}
