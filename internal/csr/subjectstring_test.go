package csr_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"testing"

	"github.com/scepter/scepter/internal/csr"
)

func TestSubjectStringProblem(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	request := func(oid asn1.ObjectIdentifier, tag int, value ...byte) []byte {
		atv, err := asn1.Marshal([]any{oid, asn1.RawValue{Tag: tag, Bytes: value}})
		if err != nil {
			t.Fatal(err)
		}
		name := append([]byte{0x30, byte(len(atv) + 2), 0x31, byte(len(atv))}, atv...)
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{RawSubject: name}, key)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	cn, o, dc := asn1.ObjectIdentifier{2, 5, 4, 3}, asn1.ObjectIdentifier{2, 5, 4, 10}, asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}
	email, other := asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}, asn1.ObjectIdentifier{1, 2, 3, 4}
	good := request(cn, asn1.TagUTF8String, 'o', 'k')
	for _, tc := range []struct {
		name string
		der  []byte
		want string
	}{
		{"a good request", good, ""},
		{"UTF8String cut mid-character", request(o, asn1.TagUTF8String, 'a', 0xc3), "its subject's O is a UTF8String that is not valid UTF-8 (byte 0xC3 at offset 1)"},
		{"PrintableString with an underscore", request(cn, asn1.TagPrintableString, 'a', '_'), "its subject's CN is a PrintableString holding byte 0x5F at offset 1, outside PrintableString's set"},
		{"IA5String not ASCII", request(dc, asn1.TagIA5String, 0x80), "its subject's DC is an IA5String holding byte 0x80 at offset 0, which is not ASCII"},
		{"emailAddress IA5String not ASCII", request(email, asn1.TagIA5String, 'a', 0xff), "its subject's EMAILADDRESS is an IA5String holding byte 0xFF at offset 1"},
		{"NumericString with a letter", request(other, 18, '1', 'x'), "its subject's 1.2.3.4 is a NumericString holding byte 0x78 at offset 1, which is neither a digit nor a space"},
		{"BMPString of odd length", request(cn, 30, 0, 'a', 0), "its subject's CN is a BMPString of 3 bytes, not whole UTF-16 characters"},
		// Not a request in PKCS#10's shape, as SCEP's wrongly decrypted
		// bytes are not: no reason, whatever the subject holds.
		{"trailing data", append(request(cn, asn1.TagUTF8String, 0xff), 0), ""},
		{"no request", []byte("garbage"), ""},
		{"nothing", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := csr.SubjectStringProblem(tc.der); got != tc.want && (tc.want == "" || len(got) < len(tc.want) || got[:len(tc.want)] != tc.want) {
				t.Errorf("SubjectStringProblem = %q, want %q", got, tc.want)
			}
		})
	}
}
