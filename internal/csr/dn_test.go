package csr

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"
	"unicode/utf16"
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

// FuzzSameName: never panics, and is symmetric.
func FuzzSameName(f *testing.F) {
	f.Add([]byte{0x30, 0x00}, []byte{0x30, 0x00})
	f.Add([]byte{0x30, 0x0e, 0x31, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x03, 'd', 'e', 'v'},
		[]byte{0x30, 0x0e, 0x31, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x04, 0x03, 0x13, 0x03, 'd', 'e', 'v'})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if SameName(a, b) != SameName(b, a) {
			t.Fatalf("SameName(%x, %x) is not symmetric", a, b)
		}
	})
}
