package scepserver_test

import (
	"encoding/asn1"
	"net/http"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/scep"
)

// r126 D3: an extensionRequest attribute with two values (SAN a.example in
// the first, c.example in the second) is refused badRequest naming the
// attribute, as two challengePassword values are; it was issued with
// a.example alone, c.example dropped unsaid.
func TestTwoValuedExtensionRequestIsRefused(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	challenge, err := asn1.Marshal(struct {
		Type   asn1.ObjectIdentifier
		Values []asn1.RawValue `asn1:"set"`
	}{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 7}, []asn1.RawValue{{Tag: asn1.TagUTF8String, Bytes: []byte(testChallenge)}}})
	if err != nil {
		t.Fatal(err)
	}
	der, msg := ts.build(t, reqParams{csrDER: pkitest.SignedCSR(t, testKey(t, 0), "two", challenge, pkitest.ExtensionRequestOfSANs(t, "a.example", "c.example"))})
	resp, body := ts.post(t, der)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
	}
	rep := ts.parseReply(t, body, msg)
	const want = "its extensionRequest attribute holds 2 values, and PKCS #9 (RFC 2985) allows exactly one"
	if rep.PKIStatus != scep.StatusFailure || rep.FailInfo != scep.BadRequest || !strings.Contains(rep.FailInfoText, want) {
		t.Errorf("pkiStatus %s failInfo %s (%q), want FAILURE badRequest naming %q", rep.PKIStatus, rep.FailInfo, rep.FailInfoText, want)
	}
}

// r128: Microsoft's extension-request attribute is read as extensionRequest
// is; asking in the two for the SAN differently is refused naming both.
func TestDisagreeingMicrosoftExtensionRequestIsRefused(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	challenge, err := asn1.Marshal(struct {
		Type   asn1.ObjectIdentifier
		Values []asn1.RawValue `asn1:"set"`
	}{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 7}, []asn1.RawValue{{Tag: asn1.TagUTF8String, Bytes: []byte(testChallenge)}}})
	if err != nil {
		t.Fatal(err)
	}
	der, msg := ts.build(t, reqParams{csrDER: pkitest.SignedCSR(t, testKey(t, 0), "two", challenge,
		pkitest.ExtensionRequestOfSANs(t, "a.example"), pkitest.MicrosoftExtensionRequestOfSANs(t, "c.example"))})
	resp, body := ts.post(t, der)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
	}
	rep := ts.parseReply(t, body, msg)
	const want = "its extensionRequest attribute and its Microsoft extension-request attribute (1.3.6.1.4.1.311.2.1.14) ask for extension subjectAltName (2.5.29.17) differently"
	if rep.PKIStatus != scep.StatusFailure || rep.FailInfo != scep.BadRequest || !strings.Contains(rep.FailInfoText, want) {
		t.Errorf("pkiStatus %s failInfo %s (%q), want FAILURE badRequest naming %q", rep.PKIStatus, rep.FailInfo, rep.FailInfoText, want)
	}
}
