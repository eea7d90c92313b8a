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
