package config

import (
	"cmp"
	"crypto/x509"
	"fmt"
	"maps"
	"net/mail"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/scepter/scepter/internal/pki"
)

// ProfileConfig is one [profiles.NAME] table of the config file. Unset
// fields keep the default profile's values.
type ProfileConfig struct {
	Validity         string            `toml:"validity"` // "365d", "8760h"
	Backdate         string            `toml:"backdate"`
	KeyUsage         []string          `toml:"key_usage"`
	ExtKeyUsage      []string          `toml:"ext_key_usage"`
	KeyTypes         []string          `toml:"key_types"` // rsa2048, rsa3072, rsa4096, p256, p384
	Challenge        string            `toml:"challenge"` // static, onetime, any, webhook
	MaxSANs          *int              `toml:"max_sans"`
	SubjectRequired  []string          `toml:"subject_required"`
	SubjectFixed     map[string]string `toml:"subject_fixed"`
	SubjectPatterns  map[string]string `toml:"subject_patterns"`
	SubjectAllowed   []string          `toml:"subject_allowed"`
	DNSPatterns      []string          `toml:"dns_patterns"`
	EmailPatterns    []string          `toml:"email_patterns"`
	URIPatterns      []string          `toml:"uri_patterns"`
	IPRanges         []string          `toml:"ip_ranges"` // ["10.8.0.0/16", "fd00::/8"]
	SANFixed         []string          `toml:"san_fixed"` // "dns:vpn.acme.example", "uri:…", "email:…", "ip:…"
	RequireSAN       *bool             `toml:"require_san"`
	Approval         *bool             `toml:"approval"`
	RequestRetention string            `toml:"request_retention"`
	RenewalWindow    string            `toml:"renewal_window"` // "33%" of the lifetime, or a duration "30d"
	RenewalGrace     string            `toml:"renewal_grace"`
	AllowKeyReuse    *bool             `toml:"allow_key_reuse"`
	AllowNameChange  *bool             `toml:"allow_name_change"`
	RevokeSuperseded *bool             `toml:"revoke_superseded"`
	Issuer           string            `toml:"issuer"`
	IncludeCACert    *bool             `toml:"include_ca_cert"`
	CRLURLs          []string          `toml:"crl_urls"`
	OCSPURLs         []string          `toml:"ocsp_urls"`
	IssuerURLs       []string          `toml:"issuer_urls"`

	// AllowLegacySignatures accepts CSRs signed with SHA-1 (old clients).
	AllowLegacySignatures *bool `toml:"allow_legacy_signatures"`

	// EST (RFC 7030).
	ESTRequireChannelBinding *bool `toml:"est_require_channel_binding"`
	ESTManufacturerAuth      *bool `toml:"est_manufacturer_auth"`
	ESTManufacturerSameSubj  *bool `toml:"est_manufacturer_same_subject"`
	ESTServerKeyGen          *bool `toml:"est_server_keygen"`

	// Expiry notifications (docs/notifications.md).
	NotifyBefore []string `toml:"notify_before"` // ["30d", "7d", "1d"]; [] for none
	NotifyTo     []string `toml:"notify_to"`     // mail recipients
	NotifyOwner  *bool    `toml:"notify_owner"`  // also the certificate's email SANs
}

// ProfileSection decodes [profiles.NAME] tables into dst, strictly.
func ProfileSection(dst map[string]pki.Profile) func(toml.Primitive, toml.MetaData) error {
	return func(prim toml.Primitive, md toml.MetaData) error {
		var raw map[string]toml.Primitive
		if err := md.PrimitiveDecode(prim, &raw); err != nil {
			return err
		}
		for name, p := range raw {
			// Anything but a table (p = "x", [[profiles.p]]) is named in
			// the file's words, as the profiles key itself is, not in
			// the decoder's ("type mismatch for config.ProfileConfig").
			if t := md.Type("profiles", name); t != "" && t != "Hash" {
				return fmt.Errorf("%s must be a table, [profiles.%s], not %s", name, name, primitiveName(md, p))
			}
			var keys map[string]toml.Primitive
			if err := md.PrimitiveDecode(p, &keys); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if err := ExactKeys(slices.Collect(maps.Keys(keys)), ProfileConfig{}); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if err := profileValueTypes(md, keys); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			var pc ProfileConfig
			if err := md.PrimitiveDecode(p, &pc); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			prof, err := pc.Profile(name)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			dst[name] = prof
		}
		var unknown []string
		for _, k := range md.Undecoded() {
			if len(k) >= 1 && k[0] == "profiles" {
				unknown = append(unknown, k.String())
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return fmt.Errorf("unknown keys: %s", strings.Join(unknown, ", "))
		}
		return nil
	}
}

// profileFieldKinds maps each key of a profile to the kind of its field.
var profileFieldKinds = func() map[string]reflect.Type {
	kinds := map[string]reflect.Type{}
	t := reflect.TypeFor[ProfileConfig]()
	for i := range t.NumField() {
		f := t.Field(i)
		if key := f.Tag.Get("toml"); key != "" {
			kinds[key] = f.Type
		}
	}
	return kinds
}()

// profileValueTypes checks that each key of a profile holds a value of
// its field's type, saying what it takes in the config file's words. The
// decoder refuses most mismatches in its own words ("incompatible types:
// TOML value has type string; destination has type slice"), and a string
// or list given for a table, such as subject_patterns = "CN=.*", it
// dropped without a word: the profile then took any subject.
func profileValueTypes(md toml.MetaData, keys map[string]toml.Primitive) error {
	for _, key := range slices.Sorted(maps.Keys(keys)) {
		t, ok := profileFieldKinds[key]
		if !ok {
			continue
		}
		var v any
		if err := md.PrimitiveDecode(keys[key], &v); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		if want, fits := profileValueFits(t, v); !fits {
			return fmt.Errorf("%s must be %s, not %s", key, want, tomlValueName(v))
		}
	}
	return nil
}

// profileValueFits reports whether v, a decoded TOML value, fits a field
// of type t, and what t takes when it does not.
func profileValueFits(t reflect.Type, v any) (want string, ok bool) {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		_, ok = v.(bool)
		return wantBool, ok
	case reflect.Int:
		_, ok = v.(int64)
		return wantWhole, ok
	case reflect.Slice:
		items, isList := v.([]any)
		for _, item := range items {
			if _, isString := item.(string); !isString {
				return wantList + ", each in quotes", false
			}
		}
		return wantList, isList
	case reflect.Map:
		table, isTable := v.(map[string]any)
		for _, item := range table {
			if _, isString := item.(string); !isString {
				return `a table of strings ({ CN = "…" }), each value in quotes`, false
			}
		}
		return `a table of strings ({ CN = "…" })`, isTable
	}
	_, ok = v.(string)
	return wantString, ok
}

var profileName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidProfileName: profile names appear in URLs (/scep/NAME).
func ValidProfileName(name string) bool { return profileName.MatchString(name) }

// ReservedProfileNames are the profiles the server lists its own
// certificates under in the inventory (the SCEP RA, the OCSP responders,
// the HTTPS certificate): a configured profile of that name would mix
// device certificates with them, and is never served.
var ReservedProfileNames = []string{"scep-ra", "ocsp-responder", "tls-server"}

// Profile turns the table into a profile on top of the defaults.
func (pc ProfileConfig) Profile(name string) (pki.Profile, error) {
	if !ValidProfileName(name) {
		return pki.Profile{}, fmt.Errorf("profile name %q: use lower-case letters, digits, - and _", name)
	}
	if slices.Contains(ReservedProfileNames, name) {
		return pki.Profile{}, fmt.Errorf("profile name %q is the server's own: its %s certificates are listed under it; choose another name", name, name)
	}
	if err := pc.refuseEmptyRules(); err != nil {
		return pki.Profile{}, err
	}
	p := pki.DefaultProfile()
	p.Name = name
	var err error
	// Every duration key of a profile is refused negative: time's
	// parser takes "-1h", and request_retention = "-1h" made each held
	// request lapse an hour before it was made (r91 D2). What zero
	// means is each key's own (profileDurations).
	dur := func(s string, dst *time.Duration, key string) {
		if s == "" || err != nil {
			return
		}
		var d time.Duration
		if d, err = ParseDuration(s); err != nil {
			err = fmt.Errorf("%s: %w", key, err)
			return
		}
		switch k := profileDurations[key]; {
		case d < 0 && k.zero:
			err = fmt.Errorf("%s = %q must not be negative: it is %s", key, s, k.is)
		case d <= 0 && !k.zero:
			err = fmt.Errorf("%s = %q must be positive: it is %s", key, s, k.is)
		}
		if err != nil {
			return
		}
		*dst = d
	}
	dur(pc.Validity, &p.Validity, "validity")
	dur(pc.Backdate, &p.Backdate, "backdate")
	dur(pc.RequestRetention, &p.RequestRetention, "request_retention")
	dur(pc.RenewalGrace, &p.RenewalGrace, "renewal_grace")
	if err != nil {
		return p, err
	}
	if pc.KeyUsage != nil {
		if p.KeyUsage, err = parseKeyUsage(pc.KeyUsage); err != nil {
			return p, err
		}
	}
	if pc.ExtKeyUsage != nil {
		if p.ExtKeyUsage, err = parseExtKeyUsage(pc.ExtKeyUsage); err != nil {
			return p, err
		}
	}
	if pc.KeyTypes != nil {
		if p.Keys, err = parseKeyTypes(pc.KeyTypes); err != nil {
			return p, err
		}
	}
	switch pc.Challenge {
	case "":
	case "static", "onetime", "any", "webhook":
		p.ChallengeMode = pc.Challenge
	default:
		return p, fmt.Errorf("challenge %q: want static, onetime, any or webhook", pc.Challenge)
	}
	if pc.MaxSANs != nil {
		if *pc.MaxSANs < 0 || *pc.MaxSANs > 1000 {
			return p, fmt.Errorf("max_sans must be between 0 and 1000")
		}
		p.MaxSANs = *pc.MaxSANs
	}
	for _, a := range pc.SubjectRequired {
		if !knownAttribute(a) {
			return p, fmt.Errorf("subject_required: unknown attribute %q", a)
		}
		p.SubjectRequired = append(p.SubjectRequired, strings.ToUpper(a))
	}
	if len(pc.SubjectFixed) > 0 {
		p.SubjectFixed = map[string]string{}
		for a, v := range pc.SubjectFixed {
			if !knownAttribute(a) {
				return p, fmt.Errorf("subject_fixed: unknown attribute %q", a)
			}
			if _, twice := p.SubjectFixed[strings.ToUpper(a)]; twice {
				return p, fmt.Errorf("subject_fixed: attribute %s given twice (in another case)", strings.ToUpper(a))
			}
			p.SubjectFixed[strings.ToUpper(a)] = v
		}
	}
	if len(pc.SubjectPatterns) > 0 {
		p.SubjectPatterns = map[string]string{}
		for a, re := range pc.SubjectPatterns {
			if !knownAttribute(a) {
				return p, fmt.Errorf("subject_patterns: unknown attribute %q", a)
			}
			if _, err := regexp.Compile(re); err != nil {
				return p, fmt.Errorf("subject_patterns.%s: %w", a, err)
			}
			if _, twice := p.SubjectPatterns[strings.ToUpper(a)]; twice {
				return p, fmt.Errorf("subject_patterns: attribute %s given twice (in another case)", strings.ToUpper(a))
			}
			p.SubjectPatterns[strings.ToUpper(a)] = re
		}
	}
	for _, a := range pc.SubjectAllowed {
		if !knownAttribute(a) {
			return p, fmt.Errorf("subject_allowed: unknown attribute %q", a)
		}
		p.SubjectAllowed = append(p.SubjectAllowed, strings.ToUpper(a))
	}
	for key, list := range map[string][]string{"dns_patterns": pc.DNSPatterns, "email_patterns": pc.EmailPatterns, "uri_patterns": pc.URIPatterns} {
		for _, re := range list {
			if _, err := regexp.Compile(re); err != nil {
				return p, fmt.Errorf("%s: %w", key, err)
			}
		}
	}
	p.DNSPatterns, p.EmailPatterns, p.URIPatterns = pc.DNSPatterns, pc.EmailPatterns, pc.URIPatterns
	for _, r := range pc.IPRanges {
		if _, err := netip.ParsePrefix(r); err != nil {
			return p, fmt.Errorf("ip_ranges %q: want a CIDR prefix such as 10.8.0.0/16: %w", r, err)
		}
	}
	p.IPRanges = pc.IPRanges
	for _, v := range pc.SANFixed {
		if typ, val, ok := strings.Cut(v, ":"); !ok || val == "" || (typ != "dns" && typ != "email" && typ != "ip" && typ != "uri") {
			return p, fmt.Errorf("san_fixed %q: want dns:NAME, email:ADDRESS, ip:ADDRESS or uri:URI", v)
		}
	}
	p.SANFixed = pc.SANFixed
	setBool(&p.RequireSAN, pc.RequireSAN)
	setBool(&p.AllowLegacySignatures, pc.AllowLegacySignatures)
	setBool(&p.RequireApproval, pc.Approval)
	setBool(&p.AllowKeyReuse, pc.AllowKeyReuse)
	setBool(&p.AllowNameChange, pc.AllowNameChange)
	setBool(&p.RevokeSuperseded, pc.RevokeSuperseded)
	setBool(&p.IncludeCACert, pc.IncludeCACert)
	setBool(&p.RequireChannelBinding, pc.ESTRequireChannelBinding)
	setBool(&p.ManufacturerAuth, pc.ESTManufacturerAuth)
	setBool(&p.ManufacturerSameSubject, pc.ESTManufacturerSameSubj)
	setBool(&p.ServerKeyGen, pc.ESTServerKeyGen)
	if w := pc.RenewalWindow; w != "" {
		if pct, ok := strings.CutSuffix(w, "%"); ok {
			f, perr := strconv.ParseFloat(pct, 64)
			if perr != nil || f <= 0 || f > 100 {
				return p, fmt.Errorf("renewal_window %q: want a percentage in (0, 100] or a duration", w)
			}
			p.RenewalWindow = f / 100
		} else if p.RenewalWindowFixed, err = ParseDuration(w); err != nil || p.RenewalWindowFixed <= 0 {
			return p, fmt.Errorf("renewal_window %q: want a percentage like 33%% or a duration like 30d", w)
		}
	}
	if pc.Issuer != "" {
		// A short prefix would name another issuing CA too after a
		// rollover.
		if len(pc.Issuer) < 8 || len(pc.Issuer) > 64 || strings.Trim(strings.ToLower(pc.Issuer), "0123456789abcdef") != "" {
			return p, fmt.Errorf("issuer %q: want an issuing CA's ID, the hex SHA-256 of its certificate ('scepter ca show' lists them), or at least its first 8 digits", pc.Issuer)
		}
	}
	p.Issuer = pc.Issuer
	// As decoded: nil when the key is absent (the server's own URLs), an
	// empty list for crl_urls = [] (none). Nothing here may turn one into
	// the other.
	p.CRLURLs, p.OCSPURLs, p.IssuerURLs = pc.CRLURLs, pc.OCSPURLs, pc.IssuerURLs
	if err := pc.notify(&p); err != nil {
		return p, err
	}
	if err := pc.contradictions(p); err != nil {
		return p, err
	}
	return p, nil
}

// profileDurations are the keys of a profile that take one duration
// (renewal_window takes a share or a duration, notify_before a list; both
// are checked where they are read): what each is, for the refusal of a
// negative value, and whether zero means something. A key added to
// ProfileConfig as a duration must be listed (a test holds them to it).
var profileDurations = map[string]struct {
	is   string
	zero bool
}{
	"validity": {is: `the lifetime of the certificates the profile issues; leave the key out for the default "365d"`},
	"backdate": {is: `how far NotBefore is set back, for devices whose clocks are slow; "0s" for none, or leave the key out for the default "5m"`, zero: true},
	// Zero is taken (and unused) without approval: a configuration that
	// wrote it so still starts; with approval = true it is refused below.
	"request_retention": {is: `how long a request held for approval, and its outcome, are kept for the device to poll; leave the key out for the default "7d"`, zero: true},
	"renewal_grace":     {is: `how long after its expiry a certificate may still renew; "0s" (the default) for none`, zero: true},
}

// minRequestRetention is the least request_retention of a profile that
// holds requests for approval: a held request must outlast the device's
// first poll and the operator's look at it. (The refusal says "1m".)
const minRequestRetention = time.Minute

// emptyRules are the list and table keys of a profile whose empty value
// ([] or {}) sets no rule at all, as if the key were not there, when whoever
// wrote it meant a rule: subject_allowed = [] for "nothing beyond the
// required attributes" left a profile that took any subject, dns_patterns
// = [] one that took any name (r86). Each is refused, saying what the
// empty value does and what to write instead.
var emptyRules = map[string]struct{ is, instead string }{
	"key_usage": {"would issue certificates without a key usage, good for any use",
		`leave the key out for the default (digitalSignature), or list the uses: key_usage = ["digitalSignature"]`},
	"ext_key_usage": {"would issue certificates without an extended key usage, good for any purpose (TLS server included)",
		`leave the key out for the default (clientAuth), or list the purposes: ext_key_usage = ["clientAuth"]`},
	"key_types": {"takes no key type at all",
		`leave the key out for the default (rsa2048 and larger, p256, p384), or list the types taken: key_types = ["rsa3072", "p256"]`},
	"subject_fixed": {"is no rule: the profile would take any subject, as without the key (a profile with a subject_fixed value decides the whole subject)",
		`leave the key out for no rule, or give the values the profile sets: subject_fixed = { O = "Acme" }`},
	"subject_patterns": {"is no rule: the profile would take any subject, as without the key (a profile with a subject_patterns value decides the whole subject)",
		`leave the key out for no rule, or give each attribute type taken its pattern: subject_patterns = { CN = "^dev-[0-9]+$" }`},
	"subject_allowed": {"is no rule: the profile would take any subject, as without the key, not only the required attributes",
		`leave the key out for no rule, or list the attribute types taken beside the required ones: subject_allowed = ["OU"]; to take the required ones alone, give each a pattern: subject_patterns = { CN = ".+" }`},
	"dns_patterns": {"is no rule: the profile would take any DNS name (and any IP address), as without the key",
		`leave the key out for no rule, or list the patterns every DNS name must match: dns_patterns = ["^[a-z0-9-]+\\.acme\\.example$"] (max_sans = 0 takes no name at all)`},
	"email_patterns": {"is no rule: the profile would take any email address, as without the key",
		`leave the key out for no rule, or list the patterns every email address must match: email_patterns = ["@acme\\.example$"]`},
	"uri_patterns": {"is no rule: the profile would take any URI, as without the key",
		`leave the key out for no rule, or list the patterns every URI must match: uri_patterns = ["^spiffe://acme\\.example/"]`},
	"ip_ranges": {"is no rule, as without the key",
		`leave the key out for no rule, or list the ranges every IP address must fall in: ip_ranges = ["10.8.0.0/16"]`},
}

// emptyMeansNone are the list keys of a profile whose [] means none, as
// README and docs/notifications.md say: no CRL, OCSP or caIssuers URL in
// the certificates, no expiry notifications, no mail recipients; and no
// attribute required, no name fixed, which loosen nothing, so that a
// configuration that wrote them so still starts after an upgrade.
var emptyMeansNone = map[string]bool{"crl_urls": true, "ocsp_urls": true, "issuer_urls": true, "notify_before": true, "notify_to": true,
	"subject_required": true, "san_fixed": true}

// refuseEmptyRules refuses a rule key given an empty list or table (emptyRules).
func (pc ProfileConfig) refuseEmptyRules() error {
	v := reflect.ValueOf(pc)
	for i := range v.NumField() {
		f := v.Field(i)
		if k := f.Kind(); (k != reflect.Slice && k != reflect.Map) || f.IsNil() || f.Len() > 0 {
			continue
		}
		key := v.Type().Field(i).Tag.Get("toml")
		rule, ok := emptyRules[key]
		if !ok {
			continue
		}
		empty := "[]"
		if f.Kind() == reflect.Map {
			empty = "{}"
		}
		return fmt.Errorf("%s = %s %s; %s", key, empty, rule.is, rule.instead)
	}
	return nil
}

// contradictions refuses settings that each parse but together can never
// be meant: the profile would start and then refuse, or quietly undo,
// what one of them asks for. Settings that only overlap (a fixed attribute
// also required, a pattern its fixed value matches) pass.
func (pc ProfileConfig) contradictions(p pki.Profile) error {
	for _, a := range slices.Sorted(maps.Keys(p.SubjectFixed)) {
		v := p.SubjectFixed[a]
		// A pattern is checked against the device's value, which the fixed
		// one then replaces: one the fixed value fails refuses the only
		// value the profile issues, and passes others only to drop them.
		if re, ok := p.SubjectPatterns[a]; ok && !regexp.MustCompile(re).MatchString(v) {
			return fmt.Errorf("subject_fixed.%s = %q does not match subject_patterns.%s = %q: a device sending %q would be refused, and one sending a value the pattern takes gets %q instead; drop subject_patterns.%s (the fixed value replaces whatever a device sends) or make it match %q",
				a, v, a, re, v, v, a, v)
		}
		// subject_allowed takes a device's values; the fixed value replaces
		// them all.
		if slices.Contains(p.SubjectAllowed, a) {
			return fmt.Errorf("subject_allowed lists %s, which subject_fixed sets to %q: a device's %s values would be accepted and then replaced; remove %s from subject_allowed, or from subject_fixed to issue the device's values",
				a, v, a, a)
		}
	}
	if p.RenewalWindowFixed >= p.Validity {
		validity := fmt.Sprintf("validity %q", pc.Validity)
		if pc.Validity == "" {
			validity = "the default validity " + formatDays(p.Validity)
		}
		return fmt.Errorf("renewal_window %q is not shorter than %s: every certificate would be renewable from its first second; give a renewal_window shorter than the validity, or a share of the lifetime such as \"33%%\"",
			pc.RenewalWindow, validity)
	}
	if p.RequireApproval && p.RequestRetention < minRequestRetention {
		return fmt.Errorf("request_retention = %q with approval = true: every held request would lapse within %s of being made, before the device polls or an operator approves it, and the device is told that its request expired without a decision and to enroll again; give at least \"1m\", or leave the key out for the default %s",
			pc.RequestRetention, p.RequestRetention, formatDays(pki.DefaultProfile().RequestRetention))
	}
	if n := len(p.SANFixed); n > max(p.MaxSANs, 0) {
		// Every certificate carries the fixed names: each request would be
		// refused for them alone (r80; found before at the first start's
		// profile check, after the CA was made).
		return fmt.Errorf("san_fixed has %d names and max_sans = %d: every request would be refused for the fixed names alone; raise max_sans to at least %d or fix fewer names", n, p.MaxSANs, n)
	}
	if p.RequireSAN && p.MaxSANs == 0 {
		return fmt.Errorf("require_san = true with max_sans = 0: every request would be refused, for having a subject alternative name or for having none; raise max_sans or drop require_san")
	}
	return nil
}

// formatDays writes d as the config file would, in whole days when it is
// some.
func formatDays(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%q", strconv.FormatInt(int64(d/(24*time.Hour)), 10)+"d")
	}
	return fmt.Sprintf("%q", d.String())
}

// notify sets the expiry notification settings: thresholds are positive
// and distinct (kept longest first), recipients well-formed addresses.
func (pc ProfileConfig) notify(p *pki.Profile) error {
	if pc.NotifyBefore != nil {
		p.NotifyBefore = nil
		for _, v := range pc.NotifyBefore {
			d, err := ParseDuration(v)
			if err != nil || d <= 0 {
				return fmt.Errorf("notify_before %q: want a positive duration like 30d or 12h", v)
			}
			if slices.Contains(p.NotifyBefore, d) {
				return fmt.Errorf("notify_before %q: listed twice", v)
			}
			p.NotifyBefore = append(p.NotifyBefore, d)
		}
		slices.SortFunc(p.NotifyBefore, func(a, b time.Duration) int { return cmp.Compare(b, a) })
	}
	for _, a := range pc.NotifyTo {
		if _, err := mail.ParseAddress(a); err != nil || strings.ContainsAny(a, "\r\n") {
			return fmt.Errorf("notify_to %q: want a mail address like pki-team@example.com", a)
		}
	}
	p.NotifyTo = pc.NotifyTo
	setBool(&p.NotifyOwner, pc.NotifyOwner)
	return nil
}

func setBool(dst *bool, v *bool) {
	if v != nil {
		*dst = *v
	}
}

// ParseDuration is time.ParseDuration that also takes whole days ("30d").
// A negative number of days is read as time's parser reads "-1h", so that
// the caller refuses it saying why ("-0d" is zero, as "-0s" is).
func ParseDuration(s string) (time.Duration, error) {
	bad := func() error {
		return fmt.Errorf("bad duration %q: want whole days (\"30d\", up to 36500) or hours, minutes, seconds (\"36h\", \"90m\"; up to 2562047h)", s)
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < -36500 || days > 36500 {
			return 0, bad()
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, bad()
	}
	return d, nil
}

var attributes = map[string]bool{"CN": true, "O": true, "OU": true, "C": true, "L": true, "ST": true, "SERIALNUMBER": true, "DC": true, "UID": true, "EMAILADDRESS": true, "STREET": true, "POSTALCODE": true}

func knownAttribute(a string) bool { return attributes[strings.ToUpper(a)] }

func parseKeyUsage(names []string) (x509.KeyUsage, error) {
	m := map[string]x509.KeyUsage{
		"digitalsignature": x509.KeyUsageDigitalSignature, "contentcommitment": x509.KeyUsageContentCommitment,
		"keyencipherment": x509.KeyUsageKeyEncipherment, "dataencipherment": x509.KeyUsageDataEncipherment,
		"keyagreement": x509.KeyUsageKeyAgreement,
	}
	var ku x509.KeyUsage
	for _, n := range names {
		v, ok := m[strings.ToLower(n)]
		if !ok {
			return 0, fmt.Errorf("key_usage %q: want digitalSignature, contentCommitment, keyEncipherment, dataEncipherment or keyAgreement (never keyCertSign or cRLSign)", n)
		}
		ku |= v
	}
	return ku, nil
}

func parseExtKeyUsage(names []string) ([]x509.ExtKeyUsage, error) {
	m := map[string]x509.ExtKeyUsage{
		"serverauth": x509.ExtKeyUsageServerAuth, "clientauth": x509.ExtKeyUsageClientAuth,
		"emailprotection": x509.ExtKeyUsageEmailProtection, "codesigning": x509.ExtKeyUsageCodeSigning,
		"ipsecendsystem": x509.ExtKeyUsageIPSECEndSystem, "ipsectunnel": x509.ExtKeyUsageIPSECTunnel,
		"ipsecuser": x509.ExtKeyUsageIPSECUser, "timestamping": x509.ExtKeyUsageTimeStamping,
		"ocspsigning": x509.ExtKeyUsageOCSPSigning,
	}
	var out []x509.ExtKeyUsage
	for _, n := range names {
		v, ok := m[strings.ToLower(n)]
		if !ok {
			return nil, fmt.Errorf("ext_key_usage %q is not known", n)
		}
		out = append(out, v)
	}
	return out, nil
}

func parseKeyTypes(names []string) (pki.KeyPolicy, error) {
	kp := pki.KeyPolicy{RSAMaxBits: 8192}
	for _, n := range names {
		switch strings.ToLower(n) {
		case "rsa2048", "rsa3072", "rsa4096":
			bits, _ := strconv.Atoi(n[3:])
			if kp.RSAMinBits == 0 || bits < kp.RSAMinBits {
				kp.RSAMinBits = bits
			}
		case "p256":
			kp.ECCurves = append(kp.ECCurves, "P-256")
		case "p384":
			kp.ECCurves = append(kp.ECCurves, "P-384")
		default:
			return kp, fmt.Errorf("key_types %q: want rsa2048, rsa3072, rsa4096 (the smallest sets the minimum), p256 or p384", n)
		}
	}
	if kp.RSAMinBits == 0 && len(kp.ECCurves) == 0 {
		return kp, fmt.Errorf("key_types is empty")
	}
	return kp, nil
}
