package enroll_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
)

// A subject alternative name of a type crypto/x509 does not read (a
// Microsoft UPN, a registeredID) is refused with a reason naming it,
// alone or beside names we issue: issuing would silently drop it.
func TestUnissuedSANTypesRefused(t *testing.T) {
	f := newFixture(t, nil, "")
	mustMarshal := func(v any) []byte {
		der, err := asn1.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	upnValue := mustMarshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true,
		Bytes: mustMarshal(asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte("alice@corp.example")})})
	upn := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true,
		Bytes: append(mustMarshal(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3}), upnValue...)}
	registeredID := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 8, Bytes: mustMarshal(asn1.ObjectIdentifier{1, 2, 3, 4})[2:]}
	dns := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte("dev.example")}
	for _, tc := range []struct {
		name     string
		names    []asn1.RawValue
		wantText string // in the refusal; "" means issued
	}{
		{"a UPN alone", []asn1.RawValue{upn}, "otherName 1.3.6.1.4.1.311.20.2.3 (Microsoft UPN)"},
		{"a UPN beside a DNS name", []asn1.RawValue{dns, upn}, "otherName 1.3.6.1.4.1.311.20.2.3 (Microsoft UPN)"},
		{"a registeredID", []asn1.RawValue{registeredID}, "registeredID 1.2.3.4"},
		{"a DNS name", []asn1.RawValue{dns}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			der, err := csr.Create(csr.Template{Subject: pkix.Name{CommonName: "dev"},
				ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: mustMarshal(tc.names)}}}, key(t))
			if err != nil {
				t.Fatal(err)
			}
			req, err := x509.ParseCertificateRequest(der)
			if err != nil {
				t.Fatal(err)
			}
			res, err := f.svc.Enroll(context.Background(), enroll.Request{CSR: req, Evidence: enroll.Evidence{Challenge: static},
				Protocol: pki.ProtocolEST, TransactionID: "tx-" + tc.name, RemoteAddr: "127.0.0.1:1234"})
			if tc.wantText == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("issued a certificate with SANs %v %v, want a refusal naming %s", res.Certificate.DNSNames, res.Certificate.Extensions, tc.wantText)
			}
			var pe *pki.Error
			if pki.ErrorCode(err) != pki.EBadRequest || !errors.As(err, &pe) || !strings.Contains(pe.Message, tc.wantText) {
				t.Errorf("refusal %v (code %v), want bad request naming %s", err, pki.ErrorCode(err), tc.wantText)
			}
		})
	}
}

// Names that are not DER inside the request (an otherName's value, a
// directoryName's Name, an RDN with no attribute in the subject) are a
// malformed request, which EST answers 400, not a policy refusal (403);
// the code stays EBadRequest, SCEP's badRequest. Well-formed names of a
// type we do not issue stay a policy refusal.
func TestMalformedNamesAreMalformedRequests(t *testing.T) {
	f := newFixture(t, nil, "")
	upnOID := []byte{0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x14, 0x02, 0x03}
	generalName := func(tag byte, contents ...byte) []byte {
		return append([]byte{0xa0 | tag, byte(len(contents))}, contents...)
	}
	san := func(names ...byte) []pkix.Extension {
		return []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: append([]byte{0x30, byte(len(names))}, names...)}}
	}
	cn := []byte{0x30, 0x0e, 0x31, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x03, 'd', 'e', 'v'} // CN=dev
	for _, tc := range []struct {
		name          string
		tmpl          csr.Template
		wantMalformed bool
	}{
		{"a truncated directoryName", csr.Template{RawSubject: cn, ExtraExtensions: san(generalName(4, 0x30, 0x03, 0x31, 0x05)...)}, true},
		{"a UPN whose value is truncated", csr.Template{RawSubject: cn, ExtraExtensions: san(generalName(0, append(append([]byte{}, upnOID...), 0xa0, 0x05, 0x0c, 0x09, 'a', 'b', 'c')...)...)}, true},
		{"a subject with an empty RDN", csr.Template{RawSubject: []byte{0x30, 0x02, 0x31, 0x00}, DNSNames: []string{"dev.example"}}, true},
		{"a well-formed directoryName", csr.Template{RawSubject: cn, ExtraExtensions: san(generalName(4, cn...)...)}, false},
		{"a well-formed UPN", csr.Template{RawSubject: cn, ExtraExtensions: san(generalName(0, append(append([]byte{}, upnOID...), 0xa0, 0x05, 0x0c, 0x03, 'a', 'b', 'c')...)...)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			der, err := csr.Create(tc.tmpl, key(t))
			if err != nil {
				t.Fatal(err)
			}
			req, err := x509.ParseCertificateRequest(der)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.svc.Enroll(context.Background(), enroll.Request{CSR: req, Evidence: enroll.Evidence{Challenge: static},
				Protocol: pki.ProtocolSCEP, TransactionID: "tx-" + tc.name, RemoteAddr: "127.0.0.1:1234"})
			if pki.ErrorCode(err) != pki.EBadRequest || errors.Is(err, enroll.ErrMalformedRequest) != tc.wantMalformed {
				t.Errorf("refusal %v (code %v, malformed %v), want a bad request, malformed %v",
					err, pki.ErrorCode(err), errors.Is(err, enroll.ErrMalformedRequest), tc.wantMalformed)
			}
		})
	}
}
