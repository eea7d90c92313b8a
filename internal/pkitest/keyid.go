package pkitest

import (
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"testing"
)

// SubjectKeyID is RFC 5280 4.2.1.2 method 1 computed the long way, through
// x509.MarshalPKIXPublicKey: SHA-1 of the subjectPublicKey BIT STRING's
// value. Tests check the key identifiers the CA writes against it.
func SubjectKeyID(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	var spki struct {
		Algorithm asn1.RawValue
		Key       asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(spki.Key.Bytes)
	return sum[:]
}
