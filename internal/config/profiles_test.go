package config

import (
	"crypto/x509"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
)

func parseProfiles(t *testing.T, content string) (map[string]pki.Profile, error) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.String("config", "", "")
	profiles := map[string]pki.Profile{}
	err := Parse(fs, []string{"--config", file}, func(string) (string, bool) { return "", false }, Sections{"profiles": ProfileSection(profiles)}, nil)
	return profiles, err
}

func TestProfiles(t *testing.T) {
	profiles, err := parseProfiles(t, `
[profiles.vpn]
validity = "90d"
key_usage = ["digitalSignature", "keyEncipherment"]
ext_key_usage = ["serverAuth", "clientAuth"]
key_types = ["rsa3072", "p384"]
challenge = "onetime"
subject_fixed = { o = "Acme" }
subject_allowed = ["ou", "DC"]
renewal_window = "25%"
approval = true
include_ca_cert = true

[profiles.iot]
est_require_channel_binding = true
est_manufacturer_auth = true
est_server_keygen = true

[profiles.fixedwindow]
renewal_window = "30d"

[profiles.legacy]
allow_legacy_signatures = true
`)
	if err != nil {
		t.Fatal(err)
	}
	vpn := profiles["vpn"]
	if vpn.Validity != 90*24*time.Hour || vpn.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment ||
		len(vpn.ExtKeyUsage) != 2 || vpn.Keys.RSAMinBits != 3072 || len(vpn.Keys.ECCurves) != 1 || vpn.ChallengeMode != "onetime" ||
		vpn.SubjectFixed["O"] != "Acme" || !slices.Equal(vpn.SubjectAllowed, []string{"OU", "DC"}) || vpn.RenewalWindow != 0.25 || !vpn.RequireApproval || !vpn.IncludeCACert {
		t.Errorf("vpn profile: %+v", vpn)
	}
	if !vpn.AllowKeyReuse || vpn.MaxSANs != pki.DefaultProfile().MaxSANs {
		t.Error("unset keys must keep the defaults")
	}
	if iot := profiles["iot"]; !iot.RequireChannelBinding || !iot.ManufacturerAuth || !iot.ServerKeyGen {
		t.Errorf("EST keys not read: %+v", iot)
	}
	if vpn.RequireChannelBinding || vpn.ManufacturerAuth || vpn.ServerKeyGen {
		t.Error("EST options must be off by default")
	}
	if !profiles["legacy"].AllowLegacySignatures {
		t.Error("allow_legacy_signatures = true not read")
	}
	if vpn.AllowLegacySignatures || profiles["iot"].AllowLegacySignatures {
		t.Error("legacy (SHA-1) CSR signatures must be refused by default")
	}
	if profiles["fixedwindow"].RenewalWindowFixed != 30*24*time.Hour {
		t.Errorf("fixed window: %v", profiles["fixedwindow"].RenewalWindowFixed)
	}
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := vpn.RenewalOpens(nb, nb.Add(400*24*time.Hour)); !got.Equal(nb.Add(300 * 24 * time.Hour)) {
		t.Errorf("renewal opens %v", got)
	}
}

func TestProfileErrors(t *testing.T) {
	for name, content := range map[string]string{
		"unknown key":        "[profiles.a]\nvalidty = \"1d\"\n",
		"bad name":           "[profiles.\"Bad Name\"]\nvalidity = \"1d\"\n",
		"bad duration":       "[profiles.a]\nvalidity = \"soon\"\n",
		"CA key usage":       "[profiles.a]\nkey_usage = [\"keyCertSign\"]\n",
		"bad eku":            "[profiles.a]\next_key_usage = [\"everything\"]\n",
		"bad key type":       "[profiles.a]\nkey_types = [\"rsa1024\"]\n",
		"bad challenge mode": "[profiles.a]\nchallenge = \"none\"\n",
		"bad regexp":         "[profiles.a]\ndns_patterns = [\"(\"]\n",
		"bad IP range":       "[profiles.a]\nip_ranges = [\"10.0.0.0/33\"]\n",
		"IP, not a range":    "[profiles.a]\nip_ranges = [\"10.0.0.1\"]\n",
		"bad attribute":      "[profiles.a]\nsubject_fixed = { XX = \"1\" }\n",
		"bad allowed":        "[profiles.a]\nsubject_allowed = [\"title\"]\n",
		"bad window":         "[profiles.a]\nrenewal_window = \"150%\"\n",
		"legacy not a bool":  "[profiles.a]\nallow_legacy_signatures = \"yes\"\n",
		"issuer too short":   "[profiles.a]\nissuer = \"ab12\"\n",
		"issuer not hex":     "[profiles.a]\nissuer = \"bogus-issuer\"\n",
		// Twins that toml would fold into one field, the winner by map order.
		"a key in another case":     "[profiles.a]\napproval = true\nAPPROVAL = false\n",
		"only another case":         "[profiles.a]\nApproval = true\n",
		"a fixed attribute twice":   "[profiles.a]\nsubject_fixed = { CN = \"a\", cn = \"b\" }\n",
		"a pattern attribute twice": "[profiles.a]\nsubject_patterns = { CN = \"^gw-[0-9]+$\", cn = \".*\" }\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parseProfiles(t, content); err == nil {
				t.Fatal("expected an error")
			} else if strings.Contains(err.Error(), "panic") {
				t.Fatal(err)
			}
		})
	}
}

// A profiles key that is not tables of profiles decoded to no profiles at
// all, and the server started with the built-in default alone.
func TestProfilesOfTheWrongType(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{"string", `profiles = "vpn"`, `profiles must be tables, [profiles.NAME], not the string "vpn"`},
		{"integer", `profiles = 3`, "not an integer"},
		{"array", `profiles = ["vpn"]`, "not a list"},
		{"empty array", `profiles = []`, "not a list"},
		{"date", `profiles = 1979-05-27`, "profiles must be tables, [profiles.NAME], not a date"},
		// One profile of the wrong type got the decoder's Go-internal
		// "type mismatch for config.ProfileConfig" (r86 D5).
		{"a profile as an array of tables", "[[profiles.p]]\nvalidity = \"90d\"\n", "[profiles]: p must be a table, [profiles.p], not an array of tables"},
		{"a profile as a string", "[profiles]\np = \"x\"\n", `[profiles]: p must be a table, [profiles.p], not the string "x"`},
		{"a profile as a list", "[profiles]\np = []\n", "[profiles]: p must be a table, [profiles.p], not a list"},
		{"a profile as a number", "profiles = { p = 3 }\n", "[profiles]: p must be a table, [profiles.p], not an integer"},
		{"array of tables", "[[profiles]]\nvalidity = \"90d\"\n", "not an array of tables"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseProfiles(t, tt.content)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	for _, ok := range []string{"[profiles]\n", "profiles = {}\n", "[profiles.vpn]\n", "profiles = { vpn = { validity = \"90d\" } }\n"} {
		if _, err := parseProfiles(t, ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

// A profile key holding a value of another type is refused in the config
// file's words; a string or list given for a table (subject_patterns =
// "CN=.*") was dropped without a word, and the profile took any subject.
func TestProfileValuesOfTheWrongType(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{`subject_patterns = "CN=.*"`, `p: subject_patterns must be a table of strings ({ CN = "…" }), not the string "CN=.*"`},
		{`subject_fixed = "O=Acme"`, `p: subject_fixed must be a table of strings`},
		{`subject_patterns = ["CN=.*"]`, `subject_patterns must be a table of strings ({ CN = "…" }), not a list`},
		{`subject_patterns = { CN = 5 }`, `each value in quotes, not a table`},
		{`key_usage = "digitalSignature"`, `p: key_usage must be a list of strings (["…", "…"]), not the string "digitalSignature"`},
		{`dns_patterns = [1]`, `dns_patterns must be a list of strings (["…", "…"]), each in quotes, not a list`},
		{`approval = "true"`, `p: approval must be true or false (no quotes), not the string "true"`},
		{`max_sans = "3"`, `p: max_sans must be a whole number (no quotes), not the string "3"`},
		{`max_sans = 2.5`, `max_sans must be a whole number (no quotes), not a float`},
		{`validity = 90`, `p: validity must be a string, in quotes, not an integer`},
		// Named as the file spells it, not as time.Time (r86 D6).
		{`validity = 2026-01-01`, `p: validity must be a string, in quotes, not a date`},
		{`backdate = 00:05:00`, `p: backdate must be a string, in quotes, not a time of day`},
		{`renewal_window = 2026-01-01T00:00:00+02:00`, `p: renewal_window must be a string, in quotes, not a date and time`},
		{`dns_patterns = [2026-01-01]`, `dns_patterns must be a list of strings (["…", "…"]), each in quotes, not a list`},
	} {
		t.Run(tc.value, func(t *testing.T) {
			_, err := parseProfiles(t, "[profiles.p]\n"+tc.value+"\n")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// crl_urls, ocsp_urls and issuer_urls: absent, the profile's list is nil
// (the server puts its own URLs under the public URL); [] reaches the
// profile as an empty list, which means none; a list is kept as given.
func TestProfileRevocationURLLists(t *testing.T) {
	profiles, err := parseProfiles(t, `
[profiles.unset]

[profiles.none]
crl_urls = []
ocsp_urls = []
issuer_urls = []

[profiles.own]
crl_urls = ["http://crl.example/a.crl"]
issuer_urls = []
`)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		profile           string
		crl, ocsp, issuer []string // nil: unset
	}{
		{"unset", nil, nil, nil},
		{"none", []string{}, []string{}, []string{}},
		{"own", []string{"http://crl.example/a.crl"}, nil, []string{}},
	} {
		p := profiles[tt.profile]
		for _, l := range []struct {
			key       string
			got, want []string
		}{{"crl_urls", p.CRLURLs, tt.crl}, {"ocsp_urls", p.OCSPURLs, tt.ocsp}, {"issuer_urls", p.IssuerURLs, tt.issuer}} {
			if (l.got == nil) != (l.want == nil) || !slices.Equal(l.got, l.want) {
				t.Errorf("[profiles.%s] %s = %#v, want %#v (nil: unset)", tt.profile, l.key, l.got, l.want)
			}
		}
	}
}

// Settings that each parse but together can never be meant are refused at
// load, naming the profile and both settings, and saying what to give
// (r78 D9); ones that only overlap load.
func TestProfileContradictions(t *testing.T) {
	refused := []struct {
		name, content string
		want          []string
	}{
		{"fixed value the pattern refuses", "[profiles.fp]\nsubject_fixed = { O = \"Acme\" }\nsubject_patterns = { o = \"^Other$\" }\n",
			[]string{"fp: ", `subject_fixed.O = "Acme" does not match subject_patterns.O = "^Other$"`, "drop subject_patterns.O"}},
		{"fixed attribute also allowed", "[profiles.fa]\nsubject_fixed = { OU = \"Devices\" }\nsubject_allowed = [\"ou\"]\n",
			[]string{"fa: ", `subject_allowed lists OU, which subject_fixed sets to "Devices"`, "remove OU from subject_allowed"}},
		{"window longer than the validity", "[profiles.win]\nvalidity = \"30d\"\nrenewal_window = \"60d\"\n",
			[]string{"win: ", `renewal_window "60d" is not shorter than validity "30d"`, "renewable from its first second", "give a renewal_window shorter"}},
		{"window as long as the validity", "[profiles.win]\nvalidity = \"720h\"\nrenewal_window = \"30d\"\n",
			[]string{"win: ", `renewal_window "30d" is not shorter than validity "720h"`}},
		{"window longer than the default validity", "[profiles.win]\nrenewal_window = \"400d\"\n",
			[]string{"win: ", `renewal_window "400d" is not shorter than the default validity "365d"`}},
		{"a SAN required, none allowed", "[profiles.san]\nrequire_san = true\nmax_sans = 0\n",
			[]string{"san: ", "require_san = true with max_sans = 0", "raise max_sans or drop require_san"}},
		// r80: refused at load, not at the first start after its CA.
		{"more fixed names than allowed", "[profiles.r]\nmax_sans = 1\nsan_fixed = [\"dns:a.example\", \"dns:b.example\"]\n",
			[]string{"r: ", "san_fixed has 2 names and max_sans = 1", "raise max_sans to at least 2"}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseProfiles(t, tt.content)
			if err == nil {
				t.Fatal("loaded, want it refused")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to say %q", err, w)
				}
			}
		})
	}

	loaded := map[string]string{
		"fixed value the pattern takes":  "[profiles.a]\nsubject_fixed = { O = \"Acme\" }\nsubject_patterns = { O = \"^Acme$\" }\n",
		"fixed attribute also required":  "[profiles.a]\nsubject_fixed = { O = \"Acme\" }\nsubject_required = [\"O\"]\n",
		"fixed and allowed apart":        "[profiles.a]\nsubject_fixed = { O = \"Acme\" }\nsubject_allowed = [\"OU\"]\n",
		"window shorter than validity":   "[profiles.a]\nvalidity = \"30d\"\nrenewal_window = \"29d\"\n",
		"window of the whole lifetime":   "[profiles.a]\nvalidity = \"30d\"\nrenewal_window = \"100%\"\n",
		"a SAN required, one allowed":    "[profiles.a]\nrequire_san = true\nmax_sans = 1\n",
		"as many fixed names as allowed": "[profiles.a]\nmax_sans = 2\nsan_fixed = [\"dns:a.example\", \"dns:b.example\"]\n",
		"no SAN allowed, none required":  "[profiles.a]\nmax_sans = 0\n",
	}
	for name, content := range loaded {
		t.Run(name, func(t *testing.T) {
			if _, err := parseProfiles(t, content); err != nil {
				t.Fatalf("refused: %v", err)
			}
		})
	}
}

// An empty list or table for a key that sets a rule is refused at load,
// naming the key and saying what to write instead: empty, it was no rule
// at all, and subject_allowed = [] (meant as nothing beyond the required
// attributes), subject_patterns = {}, subject_fixed = {} or dns_patterns
// = [] left a profile that issued any subject and any name (r86 D2). The
// keys whose [] is documented to mean none still load.
func TestProfileEmptyRulesRefused(t *testing.T) {
	for _, tc := range []struct{ content, want string }{
		{`subject_required = ["CN"]` + "\n" + `subject_allowed = []`, `p: subject_allowed = [] is no rule: the profile would take any subject`},
		{`subject_patterns = {}`, `p: subject_patterns = {} is no rule: the profile would take any subject`},
		{"[profiles.p.subject_patterns]", `p: subject_patterns = {} is no rule`},
		{`subject_fixed = {}` + "\n" + `subject_required = ["CN"]`, `p: subject_fixed = {} is no rule`},
		{`dns_patterns = []`, `p: dns_patterns = [] is no rule: the profile would take any DNS name`},
		{`email_patterns = []`, `p: email_patterns = [] is no rule`},
		{`uri_patterns = []`, `p: uri_patterns = [] is no rule`},
		{`ip_ranges = []`, `p: ip_ranges = [] is no rule`},
		{`key_usage = []`, `p: key_usage = [] would issue certificates without a key usage, good for any use`},
		{`ext_key_usage = []`, `p: ext_key_usage = [] would issue certificates without an extended key usage`},
		{`key_types = []`, `p: key_types = [] takes no key type at all`},
	} {
		t.Run(tc.content, func(t *testing.T) {
			_, err := parseProfiles(t, "[profiles.p]\nchallenge = \"any\"\n"+tc.content+"\n")
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "leave the key out") {
				t.Errorf("err = %v\nwant it to say %q and what to write instead", err, tc.want)
			}
		})
	}

	profiles, err := parseProfiles(t, "[profiles.none]\ncrl_urls = []\nocsp_urls = []\nissuer_urls = []\nnotify_before = []\nnotify_to = []\nsubject_required = []\nsan_fixed = []\n")
	if err != nil {
		t.Fatalf("the keys whose [] means none: %v", err)
	}
	if p := profiles["none"]; len(p.NotifyBefore) != 0 || len(p.NotifyTo) != 0 || p.CRLURLs == nil {
		t.Errorf("[] for none not kept: %+v", p)
	}
}

// Every list or table key of a profile is decided: either its empty value
// is refused (emptyRules) or it means none (emptyMeansNone), so a key
// added later cannot take [] as no rule unseen.
func TestEveryProfileListKeyDecidesItsEmptyValue(t *testing.T) {
	for key, typ := range profileFieldKinds {
		if k := typ.Kind(); k != reflect.Slice && k != reflect.Map {
			continue
		}
		_, refused := emptyRules[key]
		if refused == emptyMeansNone[key] {
			t.Errorf("%s: in emptyRules %v, in emptyMeansNone %v; want it in exactly one", key, refused, emptyMeansNone[key])
		}
	}
}

// A negative duration is refused for every duration key of a profile, and
// zero where it means nothing, naming the profile and the key:
// request_retention = "-1h" loaded, and each request held for approval
// lapsed an hour before it was made; CertPoll said there was no such
// request and 'requests approve' that it had expired (r91 D2).
func TestProfileDurationsRefused(t *testing.T) {
	for _, tc := range []struct{ content, want string }{
		{`request_retention = "-1h"`, `p: request_retention = "-1h" must not be negative: it is how long a request held for approval`},
		{"approval = true\nrequest_retention = \"-1h\"", `p: request_retention = "-1h" must not be negative`},
		{"approval = true\nrequest_retention = \"0s\"", `p: request_retention = "0s" with approval = true: every held request would lapse within 0s of being made`},
		{"approval = true\nrequest_retention = \"1ns\"", `p: request_retention = "1ns" with approval = true: every held request would lapse within 1ns`},
		{"approval = true\nrequest_retention = \"59s\"", `give at least "1m", or leave the key out for the default "7d"`},
		// What the device is told of a request that lapsed (181d98a).
		{"approval = true\nrequest_retention = \"30s\"", `and the device is told that its request expired without a decision and to enroll again; give at least "1m"`},
		// Days too: not the parse error, but why (r92 D13).
		{`validity = "-1d"`, `p: validity = "-1d" must be positive: it is the lifetime of the certificates`},
		{`backdate = "-1d"`, `p: backdate = "-1d" must not be negative: it is how far NotBefore is set back`},
		{`renewal_grace = "-1d"`, `p: renewal_grace = "-1d" must not be negative: it is how long after its expiry a certificate may still renew`},
		{"approval = true\nrequest_retention = \"-7d\"", `p: request_retention = "-7d" must not be negative`},
		{`validity = "-36501d"`, `p: validity: bad duration "-36501d": want whole days`},
		{`renewal_window = "-1d"`, `p: renewal_window "-1d": want a percentage like 33% or a duration like 30d`},
		{`renewal_grace = "-1h"`, `p: renewal_grace = "-1h" must not be negative: it is how long after its expiry a certificate may still renew`},
		{`backdate = "-5m"`, `p: backdate = "-5m" must not be negative: it is how far NotBefore is set back`},
		{`validity = "-1h"`, `p: validity = "-1h" must be positive: it is the lifetime of the certificates`},
		{`validity = "0s"`, `p: validity = "0s" must be positive`},
		{`validity = "0d"`, `p: validity = "0d" must be positive`},
		{`renewal_window = "-1h"`, `p: renewal_window "-1h": want a percentage like 33% or a duration like 30d`},
		{`notify_before = ["-1h"]`, `p: notify_before "-1h": want a positive duration`},
	} {
		t.Run(tc.content, func(t *testing.T) {
			_, err := parseProfiles(t, "[profiles.p]\n"+tc.content+"\n")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v\nwant it to say %q", err, tc.want)
			}
		})
	}

	// Zero where it means none, and a retention without approval (unused),
	// still load: a configuration that wrote them so worked.
	profiles, err := parseProfiles(t, `
[profiles.zero]
backdate = "0s"
renewal_grace = "0s"
request_retention = "0s"

[profiles.minuszero]
backdate = "-0d"
renewal_grace = "-0d"

[profiles.held]
approval = true
request_retention = "1m"
renewal_grace = "7d"
backdate = "1h"
`)
	if err != nil {
		t.Fatal(err)
	}
	if z := profiles["zero"]; z.Backdate != 0 || z.RenewalGrace != 0 || z.RequestRetention != 0 {
		t.Errorf("zero: %+v", z)
	}
	// "-0d" is zero, as time's parser reads "-0s".
	if z := profiles["minuszero"]; z.Backdate != 0 || z.RenewalGrace != 0 {
		t.Errorf("minuszero: %+v", z)
	}
	if h := profiles["held"]; h.RequestRetention != time.Minute || h.RenewalGrace != 7*24*time.Hour || h.Backdate != time.Hour {
		t.Errorf("held: %+v", h)
	}
}

// Every key of a profile that takes one string is refused given a
// negative duration: a duration key added later that is not in
// profileDurations would take "-1h" unseen.
func TestEveryProfileStringKeyRefusesANegativeDuration(t *testing.T) {
	for key, typ := range profileFieldKinds {
		if typ.Kind() != reflect.String {
			continue
		}
		for _, v := range []string{"-1h", "-1d"} {
			if _, err := parseProfiles(t, "[profiles.p]\n"+key+" = \""+v+"\"\n"); err == nil {
				t.Errorf("%s = %q loaded", key, v)
			}
		}
	}
	for key := range profileDurations {
		if typ, ok := profileFieldKinds[key]; !ok || typ.Kind() != reflect.String {
			t.Errorf("profileDurations lists %s, no string key of a profile", key)
		}
	}
}
