package scep

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/cms"
)

// Each SCEP attribute is single-valued and appears once: a messageType of
// "19" and "17" must not be read as whichever sorts first.
func TestParseRefusesRepeatedAttributes(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	cert, key := testSigner(t, now, "dev")
	build := func(attrs []cms.Attribute) []byte { return signedMessage(t, cert, key, now, attrs) }
	attr := func(oid asn1.ObjectIdentifier, values ...asn1.RawValue) cms.Attribute {
		return cms.Attribute{Type: oid, Values: values}
	}
	txID, nonce := attr(oidTransactionID, printable("tx-1")), attr(oidSenderNonce, octets(make([]byte, 16)))
	if _, err := Parse(build([]cms.Attribute{txID, nonce, attr(oidMessageType, printable("19"))})); err != nil {
		t.Fatalf("one messageType: %v", err)
	}
	for name, attrs := range map[string][]cms.Attribute{
		"two values":     {txID, nonce, attr(oidMessageType, printable("19"), printable("17"))},
		"two attributes": {txID, nonce, attr(oidMessageType, printable("19")), attr(oidMessageType, printable("17"))},
		"two nonces":     {txID, attr(oidSenderNonce, octets(make([]byte, 16)), octets(make([]byte, 16))), attr(oidMessageType, printable("19"))},
	} {
		if _, err := Parse(build(attrs)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// A CertRep echoes the client's transaction ID in valid DER: one with
// characters a PrintableString cannot hold ('_', '@', non-ASCII) goes out as
// a UTF8String, which strict parsers (Go's encoding/asn1) read back.
func TestCertRepTransactionIDIsValidDER(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	cert, key := testSigner(t, now, "ra")
	for _, tt := range []struct {
		txID string
		tag  int
	}{
		{"0F23A5-tx:1 (retry)", asn1.TagPrintableString},
		{"tx_1@device", asn1.TagUTF8String},
		{"Gerät-7", asn1.TagUTF8String},
	} {
		rep, err := BuildCertRep(Reply{TransactionID: tt.txID, RecipientNonce: make([]byte, 16), Status: StatusPending, SigningTime: now}, Identity{Cert: cert, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		msg, err := Parse(rep)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := singleAttr(msg.Signer, oidTransactionID)
		var decoded string
		if _, err := asn1.Unmarshal(v.FullBytes, &decoded); err != nil || decoded != tt.txID || v.Tag != tt.tag {
			t.Errorf("transaction ID %q: tag %d, decoded %q, %v; want tag %d", tt.txID, v.Tag, decoded, err, tt.tag)
		}
	}
}

// A transaction ID that is no UTF-8 could be echoed neither as a
// PrintableString nor as a UTF8String: the message is refused.
func TestTransactionIDThatIsNoUTF8IsRefused(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	cert, key := testSigner(t, now, "ra")
	for _, txID := range []string{"q\xc3(z", "ab\xff\xfecd"} {
		rep, err := BuildCertRep(Reply{TransactionID: txID, RecipientNonce: make([]byte, 16), Status: StatusPending, SigningTime: now}, Identity{Cert: cert, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(rep); err == nil {
			t.Errorf("transaction ID %q: parsed", txID)
		}
	}
}

// A request's senderNonce is 16 random bytes (RFC 8894 §3.2.1.5), and
// replay protection is keyed on it: a shorter one is malformed, as an
// empty or oversized one is. A CertRep's is read as another server made it.
func TestSenderNonceLength(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	cert, key := testSigner(t, now, "dev")
	for _, tt := range []struct {
		msgType MessageType
		nonce   int
		ok      bool
	}{
		{PKCSReq, 0, false},
		{PKCSReq, 1, false},
		{PKCSReq, 8, false},
		{PKCSReq, 15, false},
		{PKCSReq, 16, true},
		{PKCSReq, 32, true},
		{PKCSReq, 64, true},
		{PKCSReq, 65, false},
		{CertPoll, 1, false},
		{GetCRL, 15, false},
		{RenewalReq, 16, true},
		{CertRep, 8, true},
	} {
		attrs := []cms.Attribute{
			{Type: oidTransactionID, Values: []asn1.RawValue{printable("tx-1")}},
			{Type: oidSenderNonce, Values: []asn1.RawValue{octets(make([]byte, tt.nonce))}},
			{Type: oidMessageType, Values: []asn1.RawValue{printable(string(tt.msgType))}},
		}
		_, err := Parse(signedMessage(t, cert, key, now, attrs))
		if tt.ok && err != nil {
			t.Errorf("messageType %s, %d-byte senderNonce: %v", tt.msgType, tt.nonce, err)
		}
		if !tt.ok && !errors.Is(err, ErrMalformed) {
			t.Errorf("messageType %s, %d-byte senderNonce: %v, want ErrMalformed", tt.msgType, tt.nonce, err)
		}
	}
}

// A transactionID or senderNonce that is refused says which rule it broke
// (r66 D2: one over 256 characters was "bad string attribute", which reads
// as an encoding problem), as the senderNonce length check does.
func TestParseSaysWhyAnAttributeIsRefused(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	cert, key := testSigner(t, now, "dev")
	universal := func(tag int, b string) asn1.RawValue {
		return asn1.RawValue{Class: asn1.ClassUniversal, Tag: tag, Bytes: []byte(b)}
	}
	nonce := octets(make([]byte, 16))
	for _, tt := range []struct {
		name    string
		txID    []asn1.RawValue // nil: no transactionID attribute
		nonce   asn1.RawValue
		wantErr string // "" when the message parses
	}{
		{"256 characters", []asn1.RawValue{printable(strings.Repeat("A", 256))}, nonce, ""},
		{"UTF8String", []asn1.RawValue{universal(asn1.TagUTF8String, "tx_1@Gerät")}, nonce, ""},
		{"IA5String", []asn1.RawValue{universal(asn1.TagIA5String, "tx-1")}, nonce, ""},
		{"257 characters", []asn1.RawValue{printable(strings.Repeat("A", 257))}, nonce,
			"transactionID: 257 bytes, at most 256"},
		{"UTCTime", []asn1.RawValue{universal(asn1.TagUTCTime, "300102030405Z")}, nonce,
			"transactionID: a UTCTime, want a PrintableString (RFC 8894 §3.2.1; a UTF8String or IA5String is accepted too)"},
		{"BMPString", []asn1.RawValue{universal(asn1.TagBMPString, "\x00t\x00x")}, nonce,
			"transactionID: a BMPString, want a PrintableString (RFC 8894 §3.2.1; a UTF8String or IA5String is accepted too)"},
		{"unknown universal tag", []asn1.RawValue{universal(14, "tx")}, nonce,
			"transactionID: a value of ASN.1 universal tag 14, want a PrintableString (RFC 8894 §3.2.1; a UTF8String or IA5String is accepted too)"},
		{"context-specific tag 19", []asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: asn1.TagPrintableString, Bytes: []byte("tx-1")}}, nonce,
			"transactionID: a value of ASN.1 class 2, tag 19, want a PrintableString (RFC 8894 §3.2.1; a UTF8String or IA5String is accepted too)"},
		{"not UTF-8", []asn1.RawValue{universal(asn1.TagUTF8String, "ab\xff\xfecd")}, nonce,
			"transactionID: not valid UTF-8"},
		{"empty", []asn1.RawValue{printable("")}, nonce, "transactionID: empty"},
		{"missing", nil, nonce, "transactionID: missing"},
		{"two values", []asn1.RawValue{printable("tx-1"), printable("tx-2")}, nonce, "transactionID: 2 values; want one"},
		{"senderNonce as a PrintableString", []asn1.RawValue{printable("tx-1")}, printable(strings.Repeat("n", 16)),
			"senderNonce: a PrintableString, want an OCTET STRING"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			attrs := []cms.Attribute{
				{Type: oidSenderNonce, Values: []asn1.RawValue{tt.nonce}},
				{Type: oidMessageType, Values: []asn1.RawValue{printable(string(PKCSReq))}},
			}
			if tt.txID != nil {
				attrs = append(attrs, cms.Attribute{Type: oidTransactionID, Values: tt.txID})
			}
			_, err := Parse(signedMessage(t, cert, key, now, attrs))
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("refused: %v", err)
				}
				return
			}
			if want := ErrMalformed.Error() + ": " + tt.wantErr; !errors.Is(err, ErrMalformed) || err.Error() != want {
				t.Errorf("got %v\nwant %s", err, want)
			}
		})
	}
}

// testSigner is a self-signed P-256 signer named CN=cn, valid around now,
// for the messages and CertReps the tests build.
func testSigner(t *testing.T, now time.Time, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// signedMessage is a pkiMessage of attrs around a placeholder envelope,
// signed by cert and key at now: what Parse reads its attributes from.
func signedMessage(t *testing.T, cert *x509.Certificate, key *ecdsa.PrivateKey, now time.Time, attrs []cms.Attribute) []byte {
	t.Helper()
	msg, err := cms.Sign([]byte("envelope"), cert, key, attrs, cms.SignOptions{Digest: crypto.SHA256, SigningTime: now})
	if err != nil {
		t.Fatal(err)
	}
	return msg
}
