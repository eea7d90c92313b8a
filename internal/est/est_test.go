package est_test

import (
	"bytes"
	"encoding/asn1"
	"os"
	"path/filepath"
	"testing"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/est"
)

func TestDecodeBase64(t *testing.T) {
	want := []byte("\x30\x03\x02\x01\x05 binary")
	enc := est.EncodeBase64(want)
	for name, in := range map[string][]byte{
		"plain":    enc,
		"CRLF":     append(append(append([]byte{}, enc[:8]...), "\r\n"...), enc[8:]...),
		"unpadded": bytes.TrimRight(enc, "="),
		"trailing": append(append([]byte{}, enc...), "\r\n\r\n"...),
		"tabs":     append([]byte("\t "), enc...),
	} {
		got, err := est.DecodeBase64(in)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
	for _, bad := range []string{"", "!!!!", "AAA*", "====", "\r\n"} {
		if _, err := est.DecodeBase64([]byte(bad)); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}

// The captured /cacerts of another server (76 columns, CRLF) decodes.
func TestCapturedCACerts(t *testing.T) {
	body, err := os.ReadFile(filepath.Join(captureDir, "curl-est-cacerts", "response.body"))
	if err != nil {
		t.Fatal(err)
	}
	der, err := est.DecodeBase64(body)
	if err != nil {
		t.Fatal(err)
	}
	sd, err := cms.ParseSignedData(der)
	if err != nil || len(sd.Certificates) != 2 {
		t.Fatalf("%v, %d certificates", err, len(sd.Certificates))
	}
}

func TestCSRAttrsRoundTrip(t *testing.T) {
	curve, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 3, 132, 0, 34})
	attrs := []est.CSRAttr{
		{OID: est.OIDChallengePassword},
		{OID: asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}, Attribute: true, Values: [][]byte{curve}},
	}
	der, err := est.MarshalCSRAttrs(attrs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := est.ParseCSRAttrs(der)
	if err != nil || len(got) != 2 || !got[0].OID.Equal(est.OIDChallengePassword) || got[0].Attribute || !got[1].Attribute || !bytes.Equal(got[1].Values[0], curve) {
		t.Fatalf("%+v, %v", got, err)
	}
	if !est.Has(got, est.OIDChallengePassword) || est.Has(got, est.OIDKeyPackage) {
		t.Error("Has")
	}
	// The captured csrattrs of another server parses.
	body, err := os.ReadFile(filepath.Join(captureDir, "curl-est-csrattrs", "response.body"))
	if err != nil {
		t.Fatal(err)
	}
	if der, err := est.DecodeBase64(body); err == nil {
		if _, err := est.ParseCSRAttrs(der); err != nil {
			t.Errorf("captured csrattrs: %v", err)
		}
	}
}

func TestServerKeyGenReplyRoundTrip(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		body, ct, err := est.MarshalServerKeyGenReply(est.ServerKeyGenReply{Key: []byte("key"), Encrypted: encrypted, CertsOnly: []byte("certs")})
		if err != nil {
			t.Fatal(err)
		}
		r, err := est.ParseServerKeyGenReply(ct, body)
		if err != nil || string(r.Key) != "key" || string(r.CertsOnly) != "certs" || r.Encrypted != encrypted {
			t.Fatalf("%+v, %v", r, err)
		}
	}
	// The captured reply of another server (globalsign/est) parses.
	body, err := os.ReadFile(filepath.Join(captureDir, "curl-est-serverkeygen", "response.body"))
	if err != nil {
		t.Fatal(err)
	}
	hdr, _ := os.ReadFile(filepath.Join(captureDir, "curl-est-serverkeygen", "response.http"))
	ct := ""
	for _, line := range bytes.Split(hdr, []byte("\r\n")) {
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Type")) {
			ct = string(bytes.TrimSpace(v))
		}
	}
	if r, err := est.ParseServerKeyGenReply(ct, body); err != nil || r.Encrypted || len(r.Key) == 0 || len(r.CertsOnly) == 0 {
		t.Fatalf("captured serverkeygen reply (%s): %+v, %v", ct, r, err)
	}
	if _, err := est.ParseServerKeyGenReply("text/plain", body); err == nil {
		t.Error("a non-multipart reply parsed")
	}
}
