package csr

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"
	"unicode/utf16"

	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

func TestSameName(t *testing.T) {
	cn := asn1.ObjectIdentifier{2, 5, 4, 3}
	o := asn1.ObjectIdentifier{2, 5, 4, 10}
	ou := asn1.ObjectIdentifier{2, 5, 4, 11}
	typed := func(tag int, b []byte) asn1.RawValue {
		return asn1.RawValue{Class: asn1.ClassUniversal, Tag: tag, Bytes: b}
	}
	bmp := func(s string) asn1.RawValue {
		var b []byte
		for _, u := range utf16.Encode([]rune(s)) {
			b = append(b, byte(u>>8), byte(u))
		}
		return typed(30, b)
	}
	atv := func(oid asn1.ObjectIdentifier, v any) pkix.AttributeTypeAndValue {
		return pkix.AttributeTypeAndValue{Type: oid, Value: v}
	}
	name := func(rdns ...pkix.RelativeDistinguishedNameSET) []byte {
		der, err := asn1.Marshal(pkix.RDNSequence(rdns))
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	rdn := func(atvs ...pkix.AttributeTypeAndValue) pkix.RelativeDistinguishedNameSET { return atvs }
	dev := name(rdn(atv(o, "Acme")), rdn(atv(cn, "dev")))
	for _, c := range []struct {
		name string
		a, b []byte
		same bool
	}{
		{"the same bytes", dev, dev, true},
		{"CN as UTF8String and as PrintableString", dev, name(rdn(atv(o, "Acme")), rdn(atv(cn, typed(asn1.TagUTF8String, []byte("dev"))))), true},
		{"CN as BMPString", dev, name(rdn(atv(o, "Acme")), rdn(atv(cn, bmp("dev")))), true},
		{"CN as T61String", dev, name(rdn(atv(o, "Acme")), rdn(atv(cn, typed(asn1.TagT61String, []byte("dev"))))), true},
		{"a multi-valued RDN in either order", name(rdn(atv(cn, "dev"), atv(ou, "lab"))), name(rdn(atv(ou, "lab"), atv(cn, "dev"))), true},
		{"a second CN before", dev, name(rdn(atv(o, "Acme")), rdn(atv(cn, "evil")), rdn(atv(cn, "dev"))), false},
		{"a second CN after", dev, name(rdn(atv(o, "Acme")), rdn(atv(cn, "dev")), rdn(atv(cn, "evil"))), false},
		{"a second CN in the same RDN", dev, name(rdn(atv(o, "Acme")), rdn(atv(cn, "evil"), atv(cn, "dev"))), false},
		{"the RDNs in another order", dev, name(rdn(atv(cn, "dev")), rdn(atv(o, "Acme"))), false},
		{"another case", dev, name(rdn(atv(o, "Acme")), rdn(atv(cn, "DEV"))), false},
		{"a value that is no string", name(rdn(atv(ou, typed(asn1.TagNull, nil)))), name(rdn(atv(ou, ""))), false},
		{"a value that is no string, the same bytes", name(rdn(atv(ou, typed(asn1.TagNull, nil))), rdn(atv(cn, "dev"))),
			name(rdn(atv(ou, typed(asn1.TagNull, nil))), rdn(atv(cn, typed(asn1.TagUTF8String, []byte("dev"))))), true},
		{"an unpaired surrogate", name(rdn(atv(cn, typed(30, []byte{0xd8, 0x00})))), name(rdn(atv(cn, typed(30, []byte{0xdc, 0x00})))), false},
		{"not a Name", []byte{0x30, 0x03, 0x01, 0x01, 0xff}, []byte{0x30, 0x03, 0x01, 0x01, 0x00}, false},
		{"trailing bytes", append(append([]byte{}, dev...), 0), dev, false},
		{"empty and empty", name(), name(), true},
	} {
		if got := SameName(c.a, c.b); got != c.same {
			t.Errorf("%s: SameName = %v, want %v", c.name, got, c.same)
		}
		if got := SameName(c.b, c.a); got != c.same {
			t.Errorf("%s, the other way: SameName = %v, want %v", c.name, got, c.same)
		}
	}
}

// FuzzSameName: never panics, and is symmetric. ParseDN, fed the same
// bytes as text, never panics either, and what it accepts is one DER Name.
func FuzzSameName(f *testing.F) {
	f.Add([]byte{0x30, 0x00}, []byte{0x30, 0x00})
	f.Add([]byte(`CN=a\2Cb\ ,O=x\C3\A9+OU=\#y`), []byte(`CN=c\qx`))
	f.Add([]byte{0x30, 0x0e, 0x31, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x03, 'd', 'e', 'v'},
		[]byte{0x30, 0x0e, 0x31, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x04, 0x03, 0x13, 0x03, 'd', 'e', 'v'})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if SameName(a, b) != SameName(b, a) {
			t.Fatalf("SameName(%x, %x) is not symmetric", a, b)
		}
		if der, err := ParseDN(string(a)); err == nil {
			if _, err := WalkName(der, func(asn1.ObjectIdentifier, cbasn1.Tag, []byte) error { return nil }, nil); err != nil {
				t.Fatalf("ParseDN(%q) made no Name: %v", a, err)
			}
		}
	})
}

// TestNameStringKeepsEveryAttribute: a name reads with every attribute, in
// its own order, so a second CN cannot hide behind the first.
func TestNameStringKeepsEveryAttribute(t *testing.T) {
	cn := func(v any) pkix.AttributeTypeAndValue {
		return pkix.AttributeTypeAndValue{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: v}
	}
	o := pkix.AttributeTypeAndValue{Type: asn1.ObjectIdentifier{2, 5, 4, 10}, Value: "Acme, Inc"}
	uid := pkix.AttributeTypeAndValue{Type: asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}, Value: "42"}
	for _, tc := range []struct {
		name string
		rdns pkix.RDNSequence
		want string
	}{
		{"plain", pkix.RDNSequence{{o}, {cn("dev")}}, `CN=dev,O=Acme\, Inc`},
		// (DER sorts a SET's members: the shorter encoding first.)
		{"two common names in one RDN", pkix.RDNSequence{{o}, {cn("allowed"), cn("other")}}, `CN=other+CN=allowed,O=Acme\, Inc`},
		{"two common names in two RDNs", pkix.RDNSequence{{cn("first")}, {cn("second")}}, "CN=second,CN=first"},
		{"the name's own order", pkix.RDNSequence{{cn("dev")}, {uid}, {o}}, `O=Acme\, Inc,0.9.2342.19200300.100.1.1=#13023432,CN=dev`},
		{"a value that is no text", pkix.RDNSequence{{cn(7)}}, "CN=#020107"},
		{"escapes", pkix.RDNSequence{{cn(" #a+b\\c ")}}, `CN=\ #a\+b\\c\ `},
		{"a leading #", pkix.RDNSequence{{cn("#1")}}, `CN=\#1`},
		{"NUL", pkix.RDNSequence{{cn("a\x00b")}}, `CN=a\00b`},
		{"empty", pkix.RDNSequence{}, ""},
	} {
		der, err := asn1.Marshal(tc.rdns)
		if err != nil {
			t.Fatal(err)
		}
		if got := NameString(der); got != tc.want {
			t.Errorf("%s: NameString = %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := NameString([]byte{0x30, 0x03, 0x31, 0x01}); got != "" {
		t.Errorf("a malformed name reads %q, want \"\"", got)
	}
}
