package ca

import (
	"context"
	"crypto/x509/pkix"
	"encoding/asn1"
	"slices"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/pki"
)

// The table is the 249 officially assigned codes, each two capitals (what
// isISO3166Alpha2's substring search relies on), sorted and once each.
func TestISO3166Alpha2Table(t *testing.T) {
	codes := strings.Fields(iso3166Alpha2)
	if len(codes) != 249 {
		t.Errorf("%d codes, want the 249 of ISO 3166-1", len(codes))
	}
	for _, c := range codes {
		if len(c) != 2 || !isUpper(c[0]) || !isUpper(c[1]) {
			t.Errorf("%q is not two capital letters", c)
		}
	}
	if !slices.IsSorted(codes) || len(slices.Compact(slices.Clone(codes))) != len(codes) {
		t.Error("the codes are not sorted, or one is listed twice")
	}
}

// A countryName must be an assigned ISO 3166-1 alpha-2 code (or XX), not
// merely two capitals: the issuer refuses the others, and so does
// CheckSubject, with which a one-time challenge's subject is checked when
// the challenge is made (from the operator's RFC 4514 text, as there).
func TestCountryName(t *testing.T) {
	const notISO = "is not an ISO 3166-1 alpha-2 country code"
	a := testCA(t, "p256")
	pub := genKey(t, "p256").Public()
	for _, tc := range []struct {
		code string
		want string // "" accepted, else in the refusal
	}{
		{"US", ""},
		{"GB", ""},
		{"DE", ""},
		{"AX", ""}, // the first and last codes of a line of the table
		{"ZW", ""},
		{"XX", ""}, // CA/B Forum BR 7.1.4.2.2: no country applies
		{"JJ", notISO},
		{"QQ", notISO}, // user-assigned
		{"ZZ", notISO}, // user-assigned
		{"EU", notISO}, // exceptionally reserved
		{"AN", notISO}, // withdrawn (Netherlands Antilles)
		{"UK", "the United Kingdom's code is GB"},
		{"us", notISO},
		{"USA", notISO},
		{"1A", notISO},
		{"U", notISO},
		{"D ", notISO}, // in the table's text ("AD AE"), but no code
	} {
		raw, err := csr.ParseDN("CN=x,C=" + tc.code)
		if err != nil {
			t.Fatalf("C=%q: %v", tc.code, err)
		}
		_, err = CheckSubject(raw)
		if !refusedWith(err, tc.want) {
			t.Errorf("CheckSubject(C=%q): %v, want %q", tc.code, err, tc.want)
		}
		req := Request{RawSubject: rawName(t, pkix.Name{CommonName: "x", Country: []string{tc.code}}), PublicKey: pub, Profile: pki.DefaultProfile()}
		_, err = a.Issuer.Issue(context.Background(), req, now, okReserve)
		if !refusedWith(err, tc.want) {
			t.Errorf("Issue(C=%q): %v, want %q", tc.code, err, tc.want)
		}
	}
}

// refusedWith reports whether err is nil when want is "", and otherwise a
// bad request whose message holds want.
func refusedWith(err error, want string) bool {
	if want == "" {
		return err == nil
	}
	return pki.ErrorCode(err) == pki.EBadRequest && strings.Contains(pki.ErrorMessage(err), want)
}

// jurisdictionCountryName (EV) is a country code as countryName is: "UK"
// was issued while C=UK was refused.
func TestJurisdictionCountryName(t *testing.T) {
	const notISO = "jurisdictionCountryName \"UK\" is not an ISO 3166-1 alpha-2 country code"
	a := testCA(t, "p256")
	pub := genKey(t, "p256").Public()
	for _, tc := range []struct {
		code string
		want string // "" accepted, else in the refusal
	}{
		{"GB", ""},
		{"XX", ""},
		{"UK", notISO},
		{"UK", "the United Kingdom's code is GB"},
	} {
		name := pkix.Name{Country: []string{"GB"}, CommonName: "x", ExtraNames: []pkix.AttributeTypeAndValue{
			{Type: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 60, 2, 1, 3}, Value: tc.code}}}
		req := Request{RawSubject: rawName(t, name), PublicKey: pub, Profile: pki.DefaultProfile()}
		if _, err := CheckSubject(req.RawSubject); !refusedWith(err, tc.want) {
			t.Errorf("CheckSubject(jurisdictionC=%q): %v, want %q", tc.code, err, tc.want)
		}
		if _, err := a.Issuer.Issue(context.Background(), req, now, okReserve); !refusedWith(err, tc.want) {
			t.Errorf("Issue(jurisdictionC=%q): %v, want %q", tc.code, err, tc.want)
		}
	}
}
