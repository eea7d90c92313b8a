package ca

import (
	"context"
	"encoding/asn1"
	"strings"
	"testing"
	"unicode/utf16"

	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/scepter/scepter/internal/pki"
)

// bmp is s as a BMPString's bytes (UTF-16, big-endian), as Windows writes.
func bmp(s string) string {
	var b strings.Builder
	for _, u := range utf16.Encode([]rune(s)) {
		b.WriteByte(byte(u >> 8))
		b.WriteByte(byte(u))
	}
	return b.String()
}

// A subject must not hold a character that makes it read as another name:
// controls, line separators, bidi controls, invisible format characters.
// Letters of any script, their marks, and symbols stay accepted.
func TestParseSubjectRefusesUnreadableCharacters(t *testing.T) {
	oidCN, oidO := asn1.ObjectIdentifier{2, 5, 4, 3}, asn1.ObjectIdentifier{2, 5, 4, 10}
	utf8CN := func(v string) []byte { return rawSubject(atv{oidCN, cbasn1.UTF8String, v}) }
	for _, tc := range []struct {
		name string
		raw  []byte
		want string // "" accepted, else in the refusal
	}{
		{"device name", rawSubject(atv{oidO, cbasn1.PrintableString, "interop-lab"}, atv{oidCN, cbasn1.PrintableString, "lab-cm-2048-1795621758-12786"}), ""},
		{"other scripts", utf8CN("Grüße 東京 нода-7"), ""},
		{"combining marks", utf8CN("cafe\u0301 नमस्ते"), ""},
		{"symbols", utf8CN("printer 🖨 #7 (2nd floor)"), ""},
		{"no-break space", utf8CN("printer\u00a07"), ""},
		{"NUL", utf8CN("dev\x00.corp"), "commonName holds the character U+0000"},
		{"line break", utf8CN("dev\nforged"), "commonName holds the character U+000A"},
		{"C1 control", utf8CN("dev\u009b31m"), "commonName holds the character U+009B"},
		{"right-to-left override", utf8CN("printer-7 \u202enimda\u202c"), "commonName holds the character U+202E"},
		{"left-to-right mark", utf8CN("a\u200eb"), "commonName holds the character U+200E"},
		{"Arabic letter mark", utf8CN("a\u061cb"), "commonName holds the character U+061C"},
		{"bidi isolate", utf8CN("a\u2067b"), "commonName holds the character U+2067"},
		{"zero width space", utf8CN("adm\u200bin"), "commonName holds the character U+200B"},
		{"zero width non-joiner", utf8CN("adm\u200cin"), "commonName holds the character U+200C"},
		{"zero width joiner", utf8CN("adm\u200din"), "commonName holds the character U+200D"},
		{"word joiner", utf8CN("adm\u2060in"), "commonName holds the character U+2060"},
		{"invisible times", utf8CN("adm\u2062in"), "commonName holds the character U+2062"},
		{"byte order mark", utf8CN("adm\ufeffin"), "commonName holds the character U+FEFF"},
		{"soft hyphen", utf8CN("adm\u00adin"), "commonName holds the character U+00AD"},
		{"Mongolian vowel separator", utf8CN("adm\u180ein"), "commonName holds the character U+180E"},
		{"tag character", utf8CN("admin\U000E0041"), "commonName holds the character U+E0041"},
		{"line separator", utf8CN("dev\u2028forged"), "commonName holds the character U+2028"},
		{"paragraph separator", utf8CN("dev\u2029forged"), "commonName holds the character U+2029"},
		{"in another attribute", rawSubject(atv{oidO, cbasn1.UTF8String, "Ac\u200bme"}, atv{oidCN, cbasn1.UTF8String, "dev"}), "organizationName holds the character U+200B"},
		{"in a BMPString", rawSubject(atv{oidCN, cbasn1.Tag(asn1.TagBMPString), bmp("adm\u200bin")}), "commonName holds the character U+200B"},
		{"soft hyphen in a T61String (Latin-1 0xAD)", rawSubject(atv{oidCN, cbasn1.T61String, "adm\xadin"}), "commonName holds the character U+00AD"},
	} {
		_, err := parseSubject(tc.raw)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && err == nil:
			t.Errorf("%s: accepted, want a refusal with %q", tc.name, tc.want)
		case tc.want != "" && !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// The reviewer's names are refused by Issue and by CheckRequest (held
// requests) before a serial is reserved or the CA key signs.
func TestIssueRefusesInvisibleCharacters(t *testing.T) {
	a := testCA(t, "p256")
	pub := genKey(t, "p256").Public()
	for _, cn := range []string{"adm\u200bin", "adm\ufeffin", "adm\u00adin", "adm\u180ein", "adm\u2028in", "printer-7 \u202enimda\u202c"} {
		req := Request{RawSubject: rawSubject(atv{asn1.ObjectIdentifier{2, 5, 4, 3}, cbasn1.UTF8String, cn}), PublicKey: pub, Profile: pki.DefaultProfile()}
		iss, cs := countingIssuer(t, a)
		if err := iss.CheckRequest(req, now); codeOf(err) != pki.EBadRequest || !strings.Contains(pki.ErrorMessage(err), "commonName holds the character U+") {
			t.Errorf("CheckRequest(CN=%q): %v, want a bad request naming the character", cn, err)
		}
		r := &reserver{}
		_, err := iss.Issue(context.Background(), req, now, r.reserve)
		if codeOf(err) != pki.EBadRequest || !strings.Contains(pki.ErrorMessage(err), "commonName holds the character U+") {
			t.Errorf("Issue(CN=%q): %v, want a bad request naming the character", cn, err)
		}
		if len(r.serials) != 0 || cs.n.Load() != 0 {
			t.Errorf("Issue(CN=%q) reserved %d serials and made %d signatures", cn, len(r.serials), cs.n.Load())
		}
	}
}

// A max_sans refusal says what it counted and names the rule: the
// profile's fixed names only where the profile has some (r63).
func TestCheckSANCountNamesTheRule(t *testing.T) {
	plain := pki.Profile{Name: "req", MaxSANs: 2}
	fixed := pki.Profile{Name: "vpn", MaxSANs: 4, SANFixed: []string{"dns:vpn.acme.example"}}
	for _, tc := range []struct {
		p    pki.Profile
		n    int
		want string
	}{
		{plain, 2, ""},
		{plain, 3, "3 subject alternative names requested, the profile allows at most 2 (max_sans)"},
		{fixed, 4, ""},
		{fixed, 5, "5 subject alternative names with the profile's fixed ones (san_fixed), the profile allows at most 4 (max_sans)"},
	} {
		err := CheckSANCount(tc.p, tc.n)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s, %d names: %v, want nil", tc.p.Name, tc.n, err)
			}
			continue
		}
		if err == nil || pki.ErrorCode(err) != pki.EBadRequest || pki.ErrorMessage(err) != tc.want {
			t.Errorf("%s, %d names: %v, want badRequest %q", tc.p.Name, tc.n, err, tc.want)
		}
	}
}
