package scepserver_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/scep/scepserver"
)

var (
	keyOnce sync.Once
	rsaKeys []*rsa.PrivateKey
)

// testKey returns one of a few RSA-2048 keys made once per test binary.
func testKey(t testing.TB, i int) *rsa.PrivateKey {
	keyOnce.Do(func() {
		for range 4 {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaKeys = append(rsaKeys, k)
		}
	})
	return rsaKeys[i%len(rsaKeys)]
}

// reqParams describes a PKCSReq to build; zero fields take sane defaults.
type reqParams struct {
	key         crypto.Signer // CSR key (default testKey 0)
	challenge   string        // default testChallenge; "-" for none
	subject     string
	csrDER      []byte // replaces the CSR
	signerCert  *x509.Certificate
	signerKey   crypto.Signer
	cipher      cms.ContentCipher
	msgType     scep.MessageType
	txID        string
	nonce       []byte
	signingTime time.Time
	// noSigningTime leaves the signingTime attribute out.
	noSigningTime bool
	// oaepHash, when set, encrypts the envelope with RSAES-OAEP and it;
	// oaepMGFHash then sets MGF1's hash (by default oaepHash).
	oaepHash    crypto.Hash
	oaepMGFHash crypto.Hash
	digest      crypto.Hash
	// content replaces the CSR as the envelope's content (CertPoll, GetCert).
	content []byte
	// path replaces /scep (e.g. /scep/PROFILE).
	path string
	// envelope, when set, edits the envelope before it is signed.
	envelope func([]byte) []byte
}

func (ts *testServer) build(t testing.TB, p reqParams) ([]byte, *scep.PKIMessage) {
	t.Helper()
	if p.key == nil {
		p.key = testKey(t, 0)
	}
	switch p.challenge {
	case "":
		// The static challenge belongs to the default profile; elsewhere a
		// one-time challenge minted for the profile stands in.
		p.challenge = testChallenge
		if prof := strings.TrimSuffix(strings.TrimPrefix(p.path, "/scep/"), "/pkiclient.exe"); p.path != "" && prof != p.path && prof != "" {
			otp, _, err := ts.Admin.NewChallenge(context.Background(), time.Hour, prof, "test")
			if err != nil {
				t.Fatal(err)
			}
			p.challenge = otp
		}
	case "-":
		p.challenge = ""
	}
	if p.subject == "" {
		p.subject = "CN=device-1,O=Acme"
	}
	if p.csrDER == nil {
		name, err := csr.ParseDN(p.subject)
		if err != nil {
			t.Fatal(err)
		}
		p.csrDER, err = csr.Create(csr.Template{RawSubject: name, DNSNames: []string{"device-1.acme.example"}, ChallengePassword: p.challenge}, p.key)
		if err != nil {
			t.Fatal(err)
		}
	}
	if p.signerCert == nil {
		req, err := x509.ParseCertificateRequest(p.csrDER)
		if err != nil {
			// A deliberately broken CSR: sign with a certificate of its key.
			req, _ = x509.ParseCertificateRequest(mustCSR(t, p.key))
		}
		if p.signerCert, err = client.SelfSigned(req, p.key, ts.Clock.Now()); err != nil {
			t.Fatal(err)
		}
		p.signerKey = p.key
	}
	if p.cipher == 0 {
		p.cipher = cms.AES128CBC
	}
	if p.msgType == "" {
		p.msgType = scep.PKCSReq
	}
	if p.nonce == nil {
		var err error
		if p.nonce, err = scep.NewNonce(); err != nil {
			t.Fatal(err)
		}
	}
	if p.txID == "" {
		p.txID = "tx-" + base64.RawURLEncoding.EncodeToString(p.nonce)
	}
	if p.signingTime.IsZero() && !p.noSigningTime {
		p.signingTime = ts.Clock.Now()
	}
	content := p.csrDER
	if p.content != nil {
		content = p.content
	}
	opts := cms.EncryptOptions{Cipher: p.cipher, KeyTransport: cms.RSAPKCS1v15}
	if p.oaepHash != 0 {
		opts.KeyTransport, opts.OAEPHash, opts.OAEPMGFHash = cms.RSAOAEP, p.oaepHash, p.oaepMGFHash
	}
	env, err := cms.Encrypt(content, []*x509.Certificate{ts.RA.Cert}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if p.envelope != nil {
		env = p.envelope(env)
	}
	der, err := scep.BuildRequest(scep.Request{Type: p.msgType, TransactionID: p.txID, SenderNonce: p.nonce, Digest: p.digest,
		Envelope: env, SigningTime: p.signingTime}, scep.Identity{Cert: p.signerCert, Key: p.signerKey})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := scep.Parse(der)
	if err != nil {
		t.Fatal(err)
	}
	return der, msg
}

func mustCSR(t testing.TB, key crypto.Signer) []byte {
	der, err := csr.Create(csr.Template{Subject: pkix.Name{CommonName: "x"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func (ts *testServer) post(t testing.TB, body []byte) (*http.Response, []byte) {
	t.Helper()
	return ts.postTo(t, "/scep", body)
}

// postTo POSTs a pkiMessage to a SCEP path and returns the whole answer.
func (ts *testServer) postTo(t testing.TB, path string, body []byte) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(ts.URL+path+"?operation=PKIOperation", "application/x-pki-message", bytes.NewReader(body))
	return readResponse(t, resp, err)
}

func TestBadInput(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	ctx := context.Background()
	otp, _, err := ts.Admin.NewChallenge(ctx, time.Hour, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	expiring, _, err := ts.Admin.NewChallenge(ctx, time.Minute, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	badSigCSR := mustCSR(t, testKey(t, 1))
	badSigCSR[len(badSigCSR)-5] ^= 0xff

	// The one-time challenge is used once successfully before the table runs.
	t.Run("one-time challenge works once", func(t *testing.T) {
		der, msg := ts.build(t, reqParams{challenge: otp, key: testKey(t, 2)})
		_, body := ts.post(t, der)
		rep := ts.parseReply(t, body, msg)
		ts.issuedCert(t, rep, msg.SignerCert, testKey(t, 2))
	})
	ts.Clock.Advance(2 * time.Minute) // the one-minute challenge is now expired
	base := ts.certCount(t)

	tests := []struct {
		name     string
		params   reqParams
		failInfo scep.FailInfo
	}{
		{"wrong challenge", reqParams{challenge: "wrong-challenge"}, scep.BadRequest},
		{"no challenge", reqParams{challenge: "-"}, scep.BadRequest},
		{"reused one-time challenge", reqParams{challenge: otp}, scep.BadRequest},
		{"expired one-time challenge", reqParams{challenge: expiring}, scep.BadRequest},
		{"CSR with a bad self-signature", reqParams{csrDER: badSigCSR, key: testKey(t, 1)}, scep.BadMessageCheck},
		{"RSA-1024 key", reqParams{key: rsa1024}, scep.BadRequest},
		{"single DES without the legacy switch", reqParams{cipher: cms.DESCBC}, scep.BadAlg},
		{"unknown messageType", reqParams{msgType: "99"}, scep.BadRequest},
		{"UpdateReq is not an enrollment path", reqParams{msgType: scep.UpdateReq}, scep.BadRequest},
		{"GetCRL whose content is not IssuerAndSerialNumber", reqParams{msgType: scep.GetCRL}, scep.BadMessageCheck},
		{"signingTime a week old", reqParams{signingTime: captureTime.Add(-7 * 24 * time.Hour)}, scep.BadTime},
		{"signingTime in the future", reqParams{signingTime: captureTime.Add(48 * time.Hour)}, scep.BadTime},
		{"self-signed signer with another key", reqParams{signerCert: ts.selfSignedFor(t, testKey(t, 3)), signerKey: testKey(t, 3)}, scep.BadRequest},
		{"EC signer without a challenge cannot receive the reply", reqParams{key: ecKey, challenge: "-"}, scep.BadAlg},
		{"unknown key transport algorithm", reqParams{envelope: func(env []byte) []byte {
			// rsaEncryption (1.2.840.113549.1.1.1) becomes 1.2.840.113549.1.1.99.
			rsaEncryption := []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01}
			i := bytes.Index(env, rsaEncryption)
			if i < 0 {
				t.Fatal("no rsaEncryption OID in the envelope")
			}
			env = bytes.Clone(env)
			env[i+len(rsaEncryption)-1] = 99
			return env
		}}, scep.BadAlg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der, msg := ts.build(t, tt.params)
			resp, body := ts.post(t, der)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
			}
			rep := ts.parseReply(t, body, msg)
			if rep.PKIStatus != scep.StatusFailure || rep.FailInfo != tt.failInfo {
				t.Fatalf("pkiStatus %s failInfo %s (%s), want FAILURE %s", rep.PKIStatus, rep.FailInfo, rep.FailInfoText, tt.failInfo)
			}
			if strings.Contains(rep.FailInfoText, testChallenge) || strings.Contains(rep.FailInfoText, otp) {
				t.Error("failInfoText leaks a challenge")
			}
		})
	}

	t.Run("tampered SignedData", func(t *testing.T) {
		der, msg := ts.build(t, reqParams{})
		// Flip a byte inside the encapsulated envelope: the digest no longer matches.
		i := bytes.Index(der, msg.SignedData.Content[100:120])
		der[i] ^= 0x01
		_, body := ts.post(t, der)
		rep := ts.parseReply(t, body, msg)
		if rep.PKIStatus != scep.StatusFailure || rep.FailInfo != scep.BadMessageCheck {
			t.Fatalf("pkiStatus %s failInfo %s", rep.PKIStatus, rep.FailInfo)
		}
	})

	good, _ := ts.build(t, reqParams{})
	httpTests := []struct {
		name   string
		do     func() (*http.Response, error)
		status int
		reason string // in the body, when set
		allow  string // a 405's Allow: the methods really served
	}{
		{name: "truncated body", do: func() (*http.Response, error) {
			return http.Post(ts.URL+"/scep?operation=PKIOperation", "", bytes.NewReader(good[:len(good)/2]))
		}, status: http.StatusBadRequest},
		{name: "empty body", do: func() (*http.Response, error) {
			return http.Post(ts.URL+"/scep?operation=PKIOperation", "", nil)
		}, status: http.StatusBadRequest},
		{name: "garbage GET message", do: func() (*http.Response, error) {
			return http.Get(ts.URL + "/scep?operation=PKIOperation&message=" + url.QueryEscape("not%%base64!!"))
		}, status: http.StatusBadRequest},
		{name: "base64 of garbage", do: func() (*http.Response, error) {
			return http.Get(ts.URL + "/scep?operation=PKIOperation&message=" + base64.StdEncoding.EncodeToString([]byte("hello world, not DER")))
		}, status: http.StatusBadRequest},
		{name: "GET without message", do: func() (*http.Response, error) {
			return http.Get(ts.URL + "/scep?operation=PKIOperation")
		}, status: http.StatusBadRequest, reason: "missing message parameter"},
		{name: "GET message not validly URL-escaped", do: func() (*http.Response, error) {
			return http.Get(ts.URL + "/scep?operation=PKIOperation&message=%zz")
		}, status: http.StatusBadRequest, reason: "message parameter is not validly URL-escaped"},
		{name: "oversized body", do: func() (*http.Response, error) {
			return http.Post(ts.URL+"/scep?operation=PKIOperation", "", bytes.NewReader(make([]byte, scepserver.DefaultMaxBodyBytes+1)))
		}, status: http.StatusRequestEntityTooLarge},
		{name: "unknown operation", do: func() (*http.Response, error) { return http.Get(ts.URL + "/scep?operation=GetEverything") }, status: http.StatusBadRequest},
		{name: "no operation", do: func() (*http.Response, error) { return http.Get(ts.URL + "/scep") }, status: http.StatusBadRequest},
		{name: "PUT GetCACaps", do: func() (*http.Response, error) {
			req, _ := http.NewRequest(http.MethodPut, ts.URL+"/scep?operation=GetCACaps", nil)
			return http.DefaultClient.Do(req)
		}, status: http.StatusMethodNotAllowed, allow: "GET, HEAD, POST"},
		{name: "DELETE GetCACert", do: func() (*http.Response, error) {
			req, _ := http.NewRequest(http.MethodDelete, ts.URL+"/scep?operation=GetCACert", nil)
			return http.DefaultClient.Do(req)
		}, status: http.StatusMethodNotAllowed, allow: "GET, HEAD, POST"},
		{name: "PUT PKIOperation", do: func() (*http.Response, error) {
			req, _ := http.NewRequest(http.MethodPut, ts.URL+"/scep?operation=PKIOperation", bytes.NewReader(good))
			return http.DefaultClient.Do(req)
		}, status: http.StatusMethodNotAllowed, allow: "GET, POST"},
		{name: "HEAD of a good PKIOperation", do: func() (*http.Response, error) {
			der, _ := ts.build(t, reqParams{})
			req, _ := http.NewRequest(http.MethodHead, ts.URL+"/scep?operation=PKIOperation&message="+
				url.QueryEscape(base64.StdEncoding.EncodeToString(der)), nil)
			return http.DefaultClient.Do(req)
		}, status: http.StatusMethodNotAllowed, allow: "GET, POST"},
		{name: "HEAD of GetCACaps", do: func() (*http.Response, error) { return http.Head(ts.URL + "/scep?operation=GetCACaps") }, status: http.StatusOK},
	}
	for _, tt := range httpTests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tt.do()
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("HTTP %d (%s), want %d", resp.StatusCode, body, tt.status)
			}
			if strings.Contains(string(body), ".go") || strings.Contains(string(body), "asn1:") {
				t.Errorf("error body leaks internals: %q", body)
			}
			if !strings.Contains(string(body), tt.reason) {
				t.Errorf("body %q does not say %q", body, tt.reason)
			}
			if got := resp.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
		})
	}

	if got := ts.certCount(t); got != base {
		t.Errorf("%d certificates were recorded by refused requests", got-base)
	}
	// Still healthy after the abuse: caps answer and a normal enrollment works.
	resp, err := http.Get(ts.URL + "/scep?operation=GetCACaps")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GetCACaps after abuse: %v %v", err, resp)
	}
	resp.Body.Close()
	der, msg := ts.build(t, reqParams{})
	_, body := ts.post(t, der)
	ts.issuedCert(t, ts.parseReply(t, body, msg), msg.SignerCert, testKey(t, 0))
}

// selfSignedFor is a self-signed signer certificate valid at the server's
// (pinned) time.
func (ts *testServer) selfSignedFor(t *testing.T, key crypto.Signer) *x509.Certificate {
	req, err := x509.ParseCertificateRequest(mustCSR(t, key))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.SelfSigned(req, key, ts.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A pkiMessage too broken to answer with a CertRep (no transactionID or
// senderNonce to echo) gets 400 naming what is wrong: that answer is all
// the client learns, and "malformed pkiMessage" alone left it guessing.
func TestMalformedMessageSaysWhy(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	key := testKey(t, 0)
	signer := ts.selfSignedFor(t, key)
	attr := func(oid asn1.ObjectIdentifier, v asn1.RawValue) cms.Attribute {
		return cms.Attribute{Type: oid, Values: []asn1.RawValue{v}}
	}
	str := func(tag int, s string) asn1.RawValue {
		v, _ := asn1.Marshal(asn1.RawValue{Tag: tag, Bytes: []byte(s)})
		var rv asn1.RawValue
		asn1.Unmarshal(v, &rv)
		return rv
	}
	var (
		oidMessageType   = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 2}
		oidSenderNonce   = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 5}
		oidTransactionID = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 7}
		txID             = attr(oidTransactionID, str(asn1.TagPrintableString, "tx-1"))
		nonce            = attr(oidSenderNonce, str(asn1.TagOctetString, "0123456789abcdef"))
		pkcsReq          = attr(oidMessageType, str(asn1.TagPrintableString, "19"))
	)
	for name, tc := range map[string]struct {
		attrs []cms.Attribute
		want  string
	}{
		"no transactionID":    {[]cms.Attribute{nonce, pkcsReq}, "transactionID: missing"},
		"empty transactionID": {[]cms.Attribute{attr(oidTransactionID, str(asn1.TagPrintableString, "")), nonce, pkcsReq}, "transactionID: empty"},
		"no senderNonce":      {[]cms.Attribute{txID, pkcsReq}, "senderNonce: missing"},
		"empty senderNonce":   {[]cms.Attribute{txID, attr(oidSenderNonce, str(asn1.TagOctetString, "")), pkcsReq}, "senderNonce: empty"},
		"1-byte senderNonce":  {[]cms.Attribute{txID, attr(oidSenderNonce, str(asn1.TagOctetString, "x")), pkcsReq}, "senderNonce: 1 bytes, want 16"},
		"15-byte senderNonce": {[]cms.Attribute{txID, attr(oidSenderNonce, str(asn1.TagOctetString, "0123456789abcde")), pkcsReq}, "senderNonce: 15 bytes, want 16"},
		"65-byte senderNonce": {[]cms.Attribute{txID, attr(oidSenderNonce, str(asn1.TagOctetString, strings.Repeat("n", 65))), pkcsReq}, "senderNonce: 65 bytes, at most 64"},
		"no messageType":      {[]cms.Attribute{txID, nonce}, "messageType: missing"},
	} {
		t.Run(name, func(t *testing.T) {
			der, err := cms.Sign([]byte("envelope"), signer, key, tc.attrs, cms.SignOptions{SigningTime: ts.Clock.Now()})
			if err != nil {
				t.Fatal(err)
			}
			resp, body := ts.post(t, der)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "malformed pkiMessage: "+tc.want) {
				t.Errorf("HTTP %d %q, want 400 naming %q", resp.StatusCode, body, tc.want)
			}
		})
	}
}

// A POST body is binary DER; base64 is only taken. A body that is neither
// is refused for what it is, not as bad base64 (r74), and an empty body or
// message parameter as empty.
func TestBodyThatIsNoPKIMessageSaysWhat(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	for name, tc := range map[string]struct {
		body []byte
		want string
	}{
		"empty":         {nil, "the body is empty: a PKIOperation POST carries the DER pkiMessage"},
		"random binary": {[]byte{0x8f, 0x01, 0xfe, 0x00, 0x7a, 0x13}, "the body is not a DER pkiMessage (RFC 8894 §4.3), nor base64 of one"},
		"zeros":         {make([]byte, 1024), "the body is not a DER pkiMessage"},
	} {
		t.Run(name, func(t *testing.T) {
			resp, body := ts.post(t, tc.body)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), tc.want) {
				t.Errorf("HTTP %d %q, want 400 saying %q", resp.StatusCode, body, tc.want)
			}
		})
	}
	resp, err := http.Get(ts.URL + "/scep?operation=PKIOperation&message=")
	resp, body := readResponse(t, resp, err)
	if want := "the message parameter is empty"; resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), want) {
		t.Errorf("GET with an empty message: HTTP %d %q, want 400 saying %q", resp.StatusCode, body, want)
	}
}
