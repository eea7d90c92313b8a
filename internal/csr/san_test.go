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
		// The value of an otherName, and the Name of a directoryName, are
		// DER too: one that is not is malformed, not a name type we do
		// not issue (which would be a policy refusal).
		{"an otherName whose value is truncated", mustMarshal(t, []asn1.RawValue{generalName(0, true, append(append([]byte{}, upnOID...), 0xa0, 0x05, 0x0c, 0x09, 'a', 'b', 'c'))}), nil, true},
		{"an otherName without its value", mustMarshal(t, []asn1.RawValue{generalName(0, true, upnOID)}), nil, true},
		{"an otherName with bytes after its value", mustMarshal(t, []asn1.RawValue{generalName(0, true, append(append(append([]byte{}, upnOID...), upnValue...), 0x05, 0x00))}), nil, true},
		{"an otherName whose value holds two elements", mustMarshal(t, []asn1.RawValue{generalName(0, true, append(append([]byte{}, upnOID...), 0xa0, 0x04, 0x0c, 0x00, 0x0c, 0x00))}), nil, true},
		{"an otherName whose value is [1]", mustMarshal(t, []asn1.RawValue{generalName(0, true, append(append([]byte{}, upnOID...), 0xa1, 0x02, 0x0c, 0x00))}), nil, true},
		{"a directoryName that is truncated", mustMarshal(t, []asn1.RawValue{generalName(4, true, []byte{0x30, 0x03, 0x31, 0x05})}), nil, true},
		{"a directoryName with an empty RDN", mustMarshal(t, []asn1.RawValue{generalName(4, true, []byte{0x30, 0x02, 0x31, 0x00})}), nil, true},
		{"a directoryName with bytes after its Name", mustMarshal(t, []asn1.RawValue{generalName(4, true, append(append([]byte{}, dirName...), 0x05, 0x00))}), nil, true},
		{"an empty directoryName", mustMarshal(t, []asn1.RawValue{generalName(4, true, []byte{0x30, 0x00})}), []string{"directoryName"}, false},
		// crypto/x509 writes url.String() into the certificate: a URI it
		// would write otherwise is refused, naming it, not issued changed.
		{"real URIs", mustMarshal(t, []asn1.RawValue{
			generalName(6, false, []byte("spiffe://trust.example/ns/prod/sa/web")),
			generalName(6, false, []byte("urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6")),
			generalName(6, false, []byte("https://host.example/path?q")),
			generalName(6, false, []byte("https://host.example:8443/a%20b/%7Euser?x=1&y=%2F#frag")),
			generalName(6, false, []byte("tag:microsoft.com,2022-09-14:sid:S-1-5-21-1-2-3-1001")),
			generalName(6, false, []byte("http://[2001:db8::1]/")),
			generalName(6, false, []byte("SPIFFE://trust.example/x")), // the scheme's case is no matter (RFC 3986 §3.1)
		}), nil, false},
		{"a space in the path", mustMarshal(t, []asn1.RawValue{dns, generalName(6, false, []byte("spiffe://x/a b"))}),
			[]string{`URI "spiffe://x/a b" (not RFC 3986: ' ' at byte 12 must be percent-encoded)`}, false},
		{"a space in the query", mustMarshal(t, []asn1.RawValue{generalName(6, false, []byte("https://h.example/p?a b"))}),
			[]string{`URI "https://h.example/p?a b" (not RFC 3986: ' ' at byte 21 must be percent-encoded)`}, false},
		{"a brace", mustMarshal(t, []asn1.RawValue{generalName(6, false, []byte("https://h.example/{x}"))}),
			[]string{`URI "https://h.example/{x}" (not RFC 3986: '{' at byte 18 must be percent-encoded)`}, false},
		{"a second fragment", mustMarshal(t, []asn1.RawValue{generalName(6, false, []byte("https://h.example/#a#b"))}),
			[]string{`URI "https://h.example/#a#b" (it would be issued as "https://h.example/#a%23b")`}, false},
		{"a bad escape", mustMarshal(t, []asn1.RawValue{generalName(6, false, []byte("urn:x:%4"))}),
			[]string{`URI "urn:x:%4" (not RFC 3986: %-escape at byte 6 is not two hex digits)`}, false},
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
