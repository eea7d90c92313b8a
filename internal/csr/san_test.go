package csr

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net"
	"reflect"
	"testing"
)

// generalName builds one GeneralName of a context-specific tag.
func generalName(tag int, compound bool, contents []byte) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tag, IsCompound: compound, Bytes: contents}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	der, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestUnissuedSANs(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	upnOID := mustMarshal(t, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3})
	upnValue := mustMarshal(t, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true,
		Bytes: mustMarshal(t, asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte("alice@corp.example")})})
	upn := generalName(0, true, append(upnOID, upnValue...))
	privateOID := mustMarshal(t, asn1.ObjectIdentifier{1, 2, 3, 4})
	otherName := generalName(0, true, append(append([]byte{}, privateOID...), upnValue...))
	registeredID := generalName(8, false, privateOID[2:]) // IMPLICIT: the OID's contents
	dirName, err := ParseDN("CN=dir,O=Example")
	if err != nil {
		t.Fatal(err)
	}
	directoryName := generalName(4, true, dirName)
	x400 := generalName(3, true, mustMarshal(t, []int{1}))
	edi := generalName(5, true, mustMarshal(t, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, IsCompound: true,
		Bytes: mustMarshal(t, asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte("party")})}))
	dns := generalName(2, false, []byte("dev.example"))
	email := generalName(1, false, []byte("dev@example.com"))
	uri := generalName(6, false, []byte("urn:example:dev"))
	ip := generalName(7, false, net.IPv4(192, 0, 2, 1).To4())

	for _, tc := range []struct {
		name    string
		san     []byte // the subjectAltName extension's value; nil: none
		want    []string
		wantErr bool
	}{
		{"no SAN", nil, nil, false},
		{"only names we issue", mustMarshal(t, []asn1.RawValue{dns, email, uri, ip}), nil, false},
		{"a UPN alone", mustMarshal(t, []asn1.RawValue{upn}), []string{"otherName 1.3.6.1.4.1.311.20.2.3 (Microsoft UPN)"}, false},
		{"a UPN beside a DNS name", mustMarshal(t, []asn1.RawValue{dns, upn}), []string{"otherName 1.3.6.1.4.1.311.20.2.3 (Microsoft UPN)"}, false},
		{"an otherName of unknown type", mustMarshal(t, []asn1.RawValue{otherName}), []string{"otherName 1.2.3.4"}, false},
		{"registeredID", mustMarshal(t, []asn1.RawValue{registeredID}), []string{"registeredID 1.2.3.4"}, false},
		{"directoryName", mustMarshal(t, []asn1.RawValue{directoryName}), []string{"directoryName CN=dir,O=Example"}, false},
		{"x400Address and ediPartyName", mustMarshal(t, []asn1.RawValue{x400, edi}), []string{"x400Address", "ediPartyName"}, false},
		{"a universal tag among the names", mustMarshal(t, []asn1.RawValue{dns, {Tag: asn1.TagUTF8String, Bytes: []byte("x")}}), nil, true},
		{"an otherName without a type", mustMarshal(t, []asn1.RawValue{generalName(0, true, nil)}), nil, true},
		// crypto/x509 skips a string type sent constructed, which openssl
		// reads as the name: refused, not dropped.
		{"a DNS name sent constructed", mustMarshal(t, []asn1.RawValue{generalName(2, true, mustMarshal(t, asn1.RawValue{Tag: asn1.TagIA5String, Bytes: []byte("only.example")}))}), nil, true},
		{"an IP address sent constructed", mustMarshal(t, []asn1.RawValue{dns, generalName(7, true, mustMarshal(t, asn1.RawValue{Tag: asn1.TagOctetString, Bytes: []byte{192, 0, 2, 1}}))}), nil, true},
		{"an otherName sent primitive", mustMarshal(t, []asn1.RawValue{generalName(0, false, privateOID)}), nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := Template{Subject: pkix.Name{CommonName: "dev"}}
			if tc.san != nil {
				tmpl.ExtraExtensions = []pkix.Extension{{Id: oidSubjectAltName, Value: tc.san}}
			}
			der, err := Create(tmpl, key)
			if err != nil {
				t.Fatal(err)
			}
			req, err := x509.ParseCertificateRequest(der)
			if err != nil {
				t.Fatal(err)
			}
			got, err := UnissuedSANs(req)
			if (err != nil) != tc.wantErr || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("UnissuedSANs = %q, %v; want %q, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
	// Two subjectAltName extensions: crypto/x509 keeps the last one's names.
	t.Run("two subjectAltName extensions", func(t *testing.T) {
		one := mustMarshal(t, []asn1.RawValue{dns})
		two := mustMarshal(t, []asn1.RawValue{email})
		req := &x509.CertificateRequest{Extensions: []pkix.Extension{{Id: oidSubjectAltName, Value: one}, {Id: oidSubjectAltName, Value: two}}}
		if got, err := UnissuedSANs(req); err == nil {
			t.Errorf("UnissuedSANs = %q, nil; want an error", got)
		}
	})
}
