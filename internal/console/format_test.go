package console

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"html/template"
	"math/big"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/scepter/scepter/internal/pki"
)

// parseTTL reads the lifetime's form only; its range is ops's to refuse,
// with the API's reason.
func TestParseTTL(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    time.Duration
		refused bool
	}{
		{in: "60m", want: time.Hour},
		{in: " 24h ", want: 24 * time.Hour},
		{in: "7d", want: 7 * 24 * time.Hour},
		{in: "1s", want: time.Second},
		{in: "0", want: 0},
		{in: "0d", want: 0},
		{in: "-5h", want: -5 * time.Hour},
		{in: "500ms", want: 500 * time.Millisecond},
		{in: "36500d", want: 36500 * 24 * time.Hour},
		{in: "", refused: true},
		{in: "soon", refused: true},
		{in: "-1d", refused: true},
		{in: "36501d", refused: true},
		{in: "99999999999999d", refused: true},
		// Days are decimal digits (r81 D8).
		{in: "+7d", refused: true},
		{in: "0x7d", refused: true},
		{in: "7 d", refused: true},
	} {
		got, err := parseTTL(tc.in)
		if tc.refused {
			if pki.ErrorCode(err) != pki.EBadRequest {
				t.Errorf("parseTTL(%q) = %s, %v; want a refusal (EBadRequest)", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseTTL(%q) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

// parseDay refuses a well-formed date out of 1970 to 9999 saying so, not
// that its format is wrong.
func TestParseDay(t *testing.T) {
	for _, tc := range []struct {
		in, want, reason string
	}{
		{in: "2031-05-01", want: "2031-05-01T00:00:00Z"},
		{in: "2031-05-01T10:30", want: "2031-05-01T10:30:00Z"},
		{in: "2031-05-01T10:30:00+02:00", want: "2031-05-01T08:30:00Z"},
		{in: "1970-01-01", want: "1970-01-01T00:00:00Z"},
		{in: "9999-12-31", want: "9999-12-31T00:00:00Z"},
		{in: "1969-12-31", reason: "want a date from 1970 to 9999"},
		{in: "0001-01-01", reason: "want a date from 1970 to 9999"},
		{in: "1970-01-01T00:00:00+01:00", reason: "want a date from 1970 to 9999"},
		{in: "9999-12-31T23:00:00-02:00", reason: "want a date from 1970 to 9999"},
		{in: "10000-01-01", reason: "want a date from 1970 to 9999"},
		{in: "yesterday", reason: "want a date (2006-01-02) or a time"},
		{in: "2031-13-45", reason: "want a date (2006-01-02) or a time"},
	} {
		got, err := parseDay("since", tc.in)
		if tc.reason != "" {
			if pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(pki.ErrorMessage(err), tc.reason) {
				t.Errorf("parseDay(%q) = %v, %v; want a refusal saying %q", tc.in, got, err, tc.reason)
			}
			continue
		}
		if err != nil || got.Format(time.RFC3339) != tc.want {
			t.Errorf("parseDay(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestDNStringKeepsEveryAttribute(t *testing.T) {
	cn := func(v string) pkix.AttributeTypeAndValue {
		return pkix.AttributeTypeAndValue{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: v}
	}
	o := pkix.AttributeTypeAndValue{Type: asn1.ObjectIdentifier{2, 5, 4, 10}, Value: "Acme"}
	uid := pkix.AttributeTypeAndValue{Type: asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}, Value: "42"}
	for _, tc := range []struct {
		name string
		rdns pkix.RDNSequence
		want string
	}{
		{"plain", pkix.RDNSequence{{o}, {cn("dev")}}, "CN=dev,O=Acme"},
		{"two common names in one RDN", pkix.RDNSequence{{o}, {cn("shown"), cn("hidden")}}, "CN=shown+CN=hidden,O=Acme"},
		{"two common names in two RDNs", pkix.RDNSequence{{cn("first")}, {cn("second")}}, "CN=second,CN=first"},
		{"the name's own order", pkix.RDNSequence{{cn("dev")}, {uid}, {o}}, "O=Acme,0.9.2342.19200300.100.1.1=#13023432,CN=dev"},
		{"empty", pkix.RDNSequence{}, ""},
	} {
		der, err := asn1.Marshal(tc.rdns)
		if err != nil {
			t.Fatal(err)
		}
		if got := dnString(der); got != tc.want {
			t.Errorf("%s: dnString = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestDecodeShowsTheWholeSubject: a certificate page shows every attribute
// of the subject, so a second CN cannot hide behind the first.
func TestDecodeShowsTheWholeSubject(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := asn1.Marshal(pkix.RDNSequence{{
		{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "visible"},
		{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "hidden-admin"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	notBefore := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), RawSubject: raw, NotBefore: notBefore, NotAfter: notBefore.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	info := decode(c)
	const want = "CN=visible+CN=hidden-admin"
	if info.Subject != want || info.Issuer != want {
		t.Errorf("subject %q, issuer %q; want %q for both", info.Subject, info.Issuer, want)
	}
}

func TestClipKeepsWholeCharacters(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"short", "short"},
		{strings.Repeat("a", 80), strings.Repeat("a", 80)},
		{strings.Repeat("a", 81), strings.Repeat("a", 80) + "…"},
		{"a" + strings.Repeat("é", 60), "a" + strings.Repeat("é", 39) + "…"},
		{strings.Repeat("€", 30), strings.Repeat("€", 26) + "…"},
	} {
		got := clip(tc.in)
		if got != tc.want || !utf8.ValidString(got) {
			t.Errorf("clip(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestPlural: the noun of a count, for each integer type a page holds.
func TestPlural(t *testing.T) {
	for _, tc := range []struct {
		n    any
		want string
	}{
		{0, "days"}, {1, "day"}, {2, "days"}, {-1, "days"},
		{int64(0), "days"}, {int64(1), "day"}, {int64(366), "days"},
	} {
		if got := plural(tc.n, "day", "days"); got != tc.want {
			t.Errorf("plural(%T %v) = %q, want %q", tc.n, tc.n, got, tc.want)
		}
	}
}

// TestAuditReportCountsAgreeWithTheirNouns: a verification that checked
// one record says so in the singular (r85 D8), whether the chain is intact
// or broken.
func TestAuditReportCountsAgreeWithTheirNouns(t *testing.T) {
	tpl, err := template.New("audit").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/audit.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rep  verifyReport
		want string
	}{
		{verifyReport{OK: true, Checked: 1, LastID: 1}, "intact: 1 record checked, up to record 1."},
		{verifyReport{OK: true, Checked: 2, LastID: 2}, "intact: 2 records checked, up to record 2."},
		{verifyReport{OK: false, Checked: 1, ProblemID: 2, What: "hash mismatch"}, "after 1 record checked."},
		{verifyReport{OK: false, Checked: 0, ProblemID: 1, What: "hash mismatch"}, "after 0 records checked."},
	} {
		var b strings.Builder
		rep := tc.rep
		if err := tpl.ExecuteTemplate(&b, "layout", &view{Title: "Audit log", Page: auditPage{Report: &rep}}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), tc.want) {
			t.Errorf("%+v: the page does not say %q:\n%s", tc.rep, tc.want, b.String())
		}
	}
}
