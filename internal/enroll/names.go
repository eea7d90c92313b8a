package enroll

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/pki"
)

// namePolicy is a profile's subject and SAN rules, compiled once.
type namePolicy struct {
	required []string
	// allowed are the subject attribute types a profile with subject rules
	// (fixed values, patterns or allowed types) accepts: required, fixed,
	// patterned or allowed; true for those that may repeat (subject_allowed).
	// nil: the profile has no such rules, and any attribute goes.
	allowed  map[string]bool
	fixed    []fixedAttr
	patterns map[string]*regexp.Regexp
	dns      []*regexp.Regexp
	email    []*regexp.Regexp
	uri      []*regexp.Regexp
	ips      []netip.Prefix
	needSAN  bool
	sans     SANSet // fixed values added to every certificate
	// serverAuth: the profile's certificates can serve TLS (serverAuth,
	// anyExtendedKeyUsage, or no EKU at all), so a one-label CN such as
	// "localhost" is a host name to a relying party too.
	serverAuth bool
}

// SANSet is a certificate's subject alternative names by type.
type SANSet struct {
	DNSNames       []string
	EmailAddresses []string
	IPAddresses    []net.IP
	URIs           []*url.URL
}

// with returns the union of a and b, each name once (as its key below
// compares it), a's order first: a request that names a host twice gets it
// once.
func (a SANSet) with(b SANSet) SANSet {
	return SANSet{
		DNSNames:       appendNew(appendNew(nil, a.DNSNames, dnsNameKey), b.DNSNames, dnsNameKey),
		EmailAddresses: appendNew(appendNew(nil, a.EmailAddresses, emailKey), b.EmailAddresses, emailKey),
		IPAddresses:    appendNew(appendNew(nil, a.IPAddresses, net.IP.String), b.IPAddresses, net.IP.String),
		URIs:           appendNew(appendNew(nil, a.URIs, uriKey), b.URIs, uriKey),
	}
}

// The keys by which subject alternative names compare: two names of a type
// are the same name when their keys are equal. Every comparison of names
// (challenge bindings, a manufacturer certificate's own names, renewals,
// a lost answer asked for again) goes through them.

// The keys names are compared by (see csr.DNSNameKey, EmailKey, URIKey).
var (
	dnsNameKey = csr.DNSNameKey
	emailKey   = csr.EmailKey
	uriKey     = csr.URIKey
)

// sanKey is the key of a name written "type:value" (formatSANs, a
// challenge's bound names): its type, and its value's key.
func sanKey(typed string) string {
	typ, v, _ := strings.Cut(typed, ":")
	switch typ {
	case "dns":
		v = dnsNameKey(v)
	case "email":
		v = emailKey(v)
	case "uri":
		if u, err := url.Parse(v); err == nil {
			v = uriKey(u)
		}
	}
	return typ + ":" + v
}

func appendNew[T any](dst, src []T, key func(T) string) []T {
	seen := map[string]bool{}
	for _, v := range dst {
		seen[key(v)] = true
	}
	for _, v := range src {
		if !seen[key(v)] {
			seen[key(v)] = true
			dst = append(dst, v)
		}
	}
	return dst
}

type fixedAttr struct {
	name  string
	oid   asn1.ObjectIdentifier
	value string
}

func compileNames(p pki.Profile) (*namePolicy, error) {
	np := &namePolicy{required: p.SubjectRequired, patterns: map[string]*regexp.Regexp{}, needSAN: p.RequireSAN,
		serverAuth: len(p.ExtKeyUsage) == 0 || slices.ContainsFunc(p.ExtKeyUsage, func(u x509.ExtKeyUsage) bool {
			return u == x509.ExtKeyUsageServerAuth || u == x509.ExtKeyUsageAny
		})}
	names := make([]string, 0, len(p.SubjectFixed))
	for n := range p.SubjectFixed {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		oid, ok := csr.AttributeOID(n)
		if !ok {
			return nil, fmt.Errorf("subject_fixed: unknown attribute %q", n)
		}
		np.fixed = append(np.fixed, fixedAttr{name: n, oid: oid, value: p.SubjectFixed[n]})
	}
	for n, re := range p.SubjectPatterns {
		c, err := regexp.Compile(re)
		if err != nil {
			return nil, fmt.Errorf("subject_patterns.%s: %w", n, err)
		}
		np.patterns[strings.ToUpper(n)] = c
	}
	if len(p.SubjectFixed) > 0 || len(p.SubjectPatterns) > 0 || len(p.SubjectAllowed) > 0 {
		np.allowed = map[string]bool{}
		for _, list := range [][]string{p.SubjectRequired, slices.Collect(maps.Keys(p.SubjectFixed)), slices.Collect(maps.Keys(p.SubjectPatterns))} {
			for _, a := range list {
				np.allowed[strings.ToUpper(a)] = false
			}
		}
		for _, a := range p.SubjectAllowed {
			np.allowed[strings.ToUpper(a)] = true
		}
	}
	var err error
	fixed, err := pki.ParseFixedSANs(p.SANFixed)
	if err != nil {
		return nil, err
	}
	np.sans = SANSet(fixed)
	if np.dns, err = compileAll(p.DNSPatterns); err != nil {
		return nil, fmt.Errorf("dns_patterns: %w", err)
	}
	if np.email, err = compileAll(p.EmailPatterns); err != nil {
		return nil, fmt.Errorf("email_patterns: %w", err)
	}
	if np.uri, err = compileAll(p.URIPatterns); err != nil {
		return nil, fmt.Errorf("uri_patterns: %w", err)
	}
	for _, r := range p.IPRanges {
		pr, err := netip.ParsePrefix(r)
		if err != nil {
			return nil, fmt.Errorf("ip_ranges: %w", err)
		}
		np.ips = append(np.ips, pr.Masked())
	}
	return np, nil
}

func compileAll(patterns []string) ([]*regexp.Regexp, error) {
	out := make([]*regexp.Regexp, 0, len(patterns))
	for _, re := range patterns {
		c, err := regexp.Compile(re)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// allowedBy: with no patterns anything valid goes; otherwise one must match.
func allowedBy(patterns []*regexp.Regexp, v string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, re := range patterns {
		if re.MatchString(v) {
			return true
		}
	}
	return false
}

// ErrMalformedRequest is wrapped in the refusal of a certificate request
// whose names are not valid DER: malformed input, not a policy refusal
// (EST answers 400, as for a CSR that does not parse).
var ErrMalformedRequest = errors.New("enroll: the certificate request is malformed")

// checkNames applies the profile's subject and SAN rules and sets the
// subject to issue (with fixed values in place of what the CSR said).
func (s *Service) checkNames(_ context.Context, st *State) error {
	np := s.names[st.Profile.Name]
	req := st.Req.CSR
	// crypto/x509 drops SANs of other types unread: refused rather than
	// issued a certificate with fewer names than asked.
	unissued, err := csr.UnissuedSANs(req)
	if err != nil {
		return pki.Wrap(pki.EBadRequest, fmt.Errorf("%w: %w", ErrMalformedRequest, err), "the request's subjectAltName extension is malformed")
	}
	if len(unissued) > 0 {
		return pki.Errorf(pki.EBadRequest, "the request asks for subject alternative names this CA does not issue as asked: %s (only DNS names, email addresses, URIs and IP addresses are issued, each as the request spells it)",
			strings.Join(unissued, ", "))
	}
	cns, err := np.checkSubject(st.Profile.Name, st.Req.Renewal, req.RawSubject)
	if err != nil {
		return err
	}
	asked := SANSet{DNSNames: req.DNSNames, EmailAddresses: req.EmailAddresses, IPAddresses: req.IPAddresses, URIs: req.URIs}
	if err := np.checkSANs(asked, cns); err != nil {
		return err
	}
	st.SANs = asked.with(np.sans)
	st.RawSubject = req.RawSubject
	if len(np.fixed) > 0 {
		raw, err := np.applyFixed(req.RawSubject)
		if err != nil {
			return pki.Errorf(pki.EBadRequest, "the subject cannot take the profile's fixed attributes: %v", err)
		}
		st.RawSubject = raw
	}
	return nil
}

// CheckBoundNames holds the identity a one-time challenge is to be bound
// to (rawSubject, DER, nil for none; names, "dns:…" and "email:…") to
// profile p's subject and SAN rules, as an enrollment carrying exactly
// that subject and those names is held to them, so that a challenge no
// enrollment could use is refused when it is made, not minted. Without a
// subject the subject rules wait for the enrollment, whose subject the
// challenge leaves open.
func CheckBoundNames(p pki.Profile, rawSubject []byte, names []string) error {
	np, err := compileNames(p)
	if err != nil {
		return fmt.Errorf("enroll: profile %q: %w", p.Name, err)
	}
	var cns []string
	if rawSubject != nil {
		if cns, err = np.checkSubject(p.Name, false, rawSubject); err != nil {
			return err
		}
	}
	var bound SANSet
	for _, n := range names {
		switch typ, v, _ := strings.Cut(n, ":"); typ {
		case "dns":
			bound.DNSNames = append(bound.DNSNames, v)
		case "email":
			bound.EmailAddresses = append(bound.EmailAddresses, v)
		default:
			return fmt.Errorf("enroll: bound name %q: want dns:NAME or email:ADDRESS", n)
		}
	}
	if err := np.checkSANs(bound, cns); err != nil {
		return err
	}
	// The issuer bounds the names it signs, the profile's fixed ones
	// with the request's, by max_sans: one that carries every bound name
	// must fit.
	return ca.CheckSANCount(p, len(bound.with(np.sans).all()))
}

// all lists every name in a, whatever its type.
func (a SANSet) all() []string {
	return formatSANs(a.DNSNames, a.EmailAddresses, a.IPAddresses, a.URIs)
}

// checkSubject holds a subject (DER) to the profile's subject rules
// (subject_required, subject_fixed, subject_patterns, subject_allowed)
// and returns its CNs. renewal says a renewal asks for it.
func (np *namePolicy) checkSubject(profile string, renewal bool, rawSubject []byte) ([]string, error) {
	// The subject read as the issuer reads it (csr.WalkName): encoding/asn1
	// would take an RDN with no attribute (SET {}), which RFC 5280 does not.
	// A value that is no text matches a pattern as "#" and its hex.
	values := map[string][]string{}
	var types []string // every attribute type, in order, once
	count := map[string]int{}
	if _, err := csr.WalkName(rawSubject, func(oid asn1.ObjectIdentifier, tag cbasn1.Tag, value []byte) error {
		name := attributeName(oid)
		if name != "" {
			text, ok := csr.AttributeText(tag, value)
			if !ok {
				text = "#" + hex.EncodeToString(value)
			}
			values[name] = append(values[name], text)
		} else {
			name = ca.AttributeName(oid)
		}
		if count[name]++; count[name] == 1 {
			types = append(types, name)
		}
		return nil
	}, nil); err != nil {
		return nil, pki.Wrap(pki.EBadRequest, ErrMalformedRequest, "the request's subject is not a valid name")
	}
	if err := np.checkSubjectTypes(profile, renewal, types, count); err != nil {
		return nil, err
	}
	for _, a := range np.required {
		if _, fixed := np.fixedValue(a); !fixed && len(values[a]) == 0 {
			return nil, pki.Errorf(pki.EBadRequest, "the subject must contain %s (subject_required)", a)
		}
	}
	for a, re := range np.patterns {
		for _, v := range values[a] {
			if !re.MatchString(v) {
				return nil, pki.Errorf(pki.EBadRequest, "subject %s %q is not allowed by the profile (subject_patterns.%s)", a, v, a)
			}
		}
	}
	return values["CN"], nil
}

// checkSANs holds the names a request asks for (sans, without the
// profile's fixed ones) and its subject's CNs (cns) to the profile's SAN
// rules.
func (np *namePolicy) checkSANs(sans SANSet, cns []string) error {
	// The profile's fixed names are its own, not the device's: a renewal
	// asks for them again (RFC 7030 §4.2.2 wants the same names), and they
	// need not match the patterns that bound what a device may ask for.
	// Patterns see a name as it is spelled and, failing that, with the
	// parts that compare in any case (RFC 5280 §7) in lower case, as the
	// CN is tried (checkCNAsHost): patterns are written in lower case, and
	// a Windows machine's DESKTOP-7.corp.example is the host they allow.
	for _, d := range sans.DNSNames {
		if !allowedBy(np.dns, d) && !allowedBy(np.dns, dnsNameKey(d)) && !slices.ContainsFunc(np.sans.DNSNames, func(f string) bool { return dnsNameKey(f) == dnsNameKey(d) }) {
			return pki.Errorf(pki.EBadRequest, "DNS name %q is not allowed by the profile (dns_patterns)", d)
		}
	}
	for _, e := range sans.EmailAddresses {
		if !np.otherAllowed(np.email, e) && !np.otherAllowed(np.email, emailKey(e)) && !slices.ContainsFunc(np.sans.EmailAddresses, func(f string) bool { return emailKey(f) == emailKey(e) }) {
			return pki.Errorf(pki.EBadRequest, "email address %q is not allowed by the profile (%s)", e, np.otherRule("email_patterns", "email address", len(np.email) > 0))
		}
	}
	for _, u := range sans.URIs {
		if !np.otherAllowed(np.uri, u.String()) && !np.otherAllowed(np.uri, uriKey(u)) && !slices.ContainsFunc(np.sans.URIs, func(f *url.URL) bool { return uriKey(f) == uriKey(u) }) {
			return pki.Errorf(pki.EBadRequest, "URI %q is not allowed by the profile (%s)", u.String(), np.otherRule("uri_patterns", "URI", len(np.uri) > 0))
		}
	}
	for _, ip := range sans.IPAddresses {
		if !np.ipAllowed(ip) && !slices.ContainsFunc(np.sans.IPAddresses, func(f net.IP) bool { return f.Equal(ip) }) {
			return pki.Errorf(pki.EBadRequest, "IP address %s is not allowed by the profile (%s)", ip, np.otherRule("ip_ranges", "IP address", len(np.ips) > 0))
		}
	}
	// A CN that reads as a host name or an IP address is one to relying
	// parties that fall back to it when the certificate has no DNS SAN:
	// OpenSSL's hostname check (X509_check_host, as nginx and HAProxy use
	// it) compares the name it is given, an IP literal included, with the
	// CN as a string; with a DNS SAN, RFC 6125 §6.4.4 has them ignore the
	// CN. So with DNS patterns or IP ranges, such a CN must pass them too,
	// or they are bypassed.
	if (len(np.dns) > 0 || len(np.ips) > 0) && len(sans.DNSNames) == 0 && len(np.sans.DNSNames) == 0 {
		for _, cn := range cns {
			if err := np.checkCNAsHost(cn); err != nil {
				return err
			}
		}
	}
	if np.needSAN && len(sans.DNSNames)+len(sans.EmailAddresses)+len(sans.IPAddresses)+len(sans.URIs) == 0 {
		return pki.Errorf(pki.EBadRequest, "the profile requires a subject alternative name (require_san)")
	}
	return nil
}

// otherRule names the rule that refused an email, URI or IP address
// (what): its own (rule) or, when the profile has none of those (own is
// false) but DNS patterns, those, which then leave no other name.
func (np *namePolicy) otherRule(rule, what string, own bool) string {
	if !own && len(np.dns) > 0 {
		return fmt.Sprintf("dns_patterns: a profile that names its hosts allows no %s that %s does not", what, rule)
	}
	return rule
}

// checkSubjectTypes holds the subject's attribute types (types, each
// once, in order; count, how many values each has) to a profile with
// subject rules: every type must be required, fixed, patterned or allowed
// (subject_allowed), and only an allowed one may come more than once. A
// fixed one is replaced by the profile's value, however often it comes.
// Two CNs would be read as the first by some relying parties and as the
// last by others (Go's pkix.Name), and an OU, DC or UID the operator never
// allowed may be what a VPN gateway or a directory authorizes by. A
// renewal is refused as a first enrollment is: the certificate it renews
// was issued before the profile refused the attribute.
func (np *namePolicy) checkSubjectTypes(profile string, renewal bool, types []string, count map[string]int) error {
	if np.allowed == nil {
		return nil
	}
	var unlisted, repeated []string
	for _, t := range types {
		repeatable, listed := np.allowed[t]
		_, fixed := np.fixedValue(t)
		switch {
		case fixed:
		case !listed:
			unlisted = append(unlisted, t)
		case count[t] > 1 && !repeatable:
			repeated = append(repeated, fmt.Sprintf("%d %s", count[t], t))
		}
	}
	var reasons []string
	if len(unlisted) > 0 {
		what := "attribute " + unlisted[0] + " is"
		if len(unlisted) > 1 {
			what = "attributes " + strings.Join(unlisted, ", ") + " are"
		}
		reasons = append(reasons, fmt.Sprintf("the subject %s not allowed by profile %q, whose subject may hold %s only (subject_required, subject_fixed, subject_patterns, subject_allowed)",
			what, profile, strings.Join(np.allowedTypes(), ", ")))
	}
	if len(repeated) > 0 {
		reasons = append(reasons, fmt.Sprintf("the subject has %s attributes: profile %q takes one of each (a type listed in subject_allowed may repeat)",
			strings.Join(repeated, ", "), profile))
	}
	if len(reasons) == 0 {
		return nil
	}
	msg := strings.Join(reasons, "; ")
	if renewal {
		msg += "; the certificate to renew has it, issued before the profile refused it: enroll anew with a subject the profile allows"
	}
	return pki.Errorf(pki.EBadRequest, "%s", msg)
}

// allowedTypes lists the subject attribute types np takes, sorted.
func (np *namePolicy) allowedTypes() []string {
	return slices.Sorted(maps.Keys(np.allowed))
}

// checkCNAsHost holds a CN to the profile's IP ranges when it reads as an
// IP address, and to its DNS patterns when it reads as a host name, as a
// relying party matching a host against the CN would take it.
func (np *namePolicy) checkCNAsHost(cn string) error {
	switch {
	case cnAsIP(cn) != nil:
		if !np.ipAllowed(cnAsIP(cn)) {
			return pki.Errorf(pki.EBadRequest, "subject CN %q reads as an IP address the profile does not allow (a relying party may match it as the host's name; list its range in ip_ranges, or put the name in an IP SAN)", cn)
		}
	case couldMatchIPv4(cn):
		return pki.Errorf(pki.EBadRequest, "subject CN %q reads as IPv4 addresses (a wildcard, or another spelling of an address), which a relying party may match as the host's name; put the address in an IP SAN", cn)
	case len(np.dns) > 0 && (looksLikeHostName(cn) || np.serverAuth && isOneLabelHostName(cn)) &&
		!allowedBy(np.dns, cn) && !allowedBy(np.dns, dnsNameKey(cn)):
		// Host names match without regard to case (OpenSSL's check as
		// DNS does): a Windows machine's DESKTOP-7.corp.example is the
		// host its patterns, written for DNS SANs in lower case, allow.
		return pki.Errorf(pki.EBadRequest, "subject CN %q reads as a host name the profile's DNS patterns do not allow", cn)
	}
	return nil
}

// cnAsIP: the IP address v reads as, if any (brackets, an IPv6 zone and a
// trailing dot aside), as a relying party given that address as the host
// would read it. An EUI-64 written as eight pairs of hex digits
// (00:12:4b:00:1c:a1:b2:c3, a Zigbee or Thread device's ID) parses as
// IPv6 too, but is a device's name: no relying party spells an address so.
func cnAsIP(v string) net.IP {
	v = strings.TrimSuffix(v, ".")
	if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
		v = v[1 : len(v)-1]
	}
	if isEUI64(v) {
		return nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return nil
	}
	return a.WithZone("").AsSlice()
}

// isEUI64: eight pairs of hex digits separated by colons.
func isEUI64(v string) bool {
	groups := strings.Split(v, ":")
	if len(groups) != 8 {
		return false
	}
	for _, g := range groups {
		if len(g) != 2 || strings.Trim(g, "0123456789abcdefABCDEF") != "" {
			return false
		}
	}
	return true
}

// couldMatchIPv4: two to four labels, each decimal or 0x-hex digits or
// holding a wildcard: OpenSSL's hostname check matches "*.9.9.9" against
// the host 10.9.9.9, and inet_aton reads "10.1" and "0x0a.1" as
// addresses. (One label of digits is left alone: devices use serial
// numbers as their CN.)
func couldMatchIPv4(v string) bool {
	labels := strings.Split(strings.TrimSuffix(v, "."), ".")
	if len(labels) < 2 || len(labels) > 4 {
		return false
	}
	for _, l := range labels {
		// A wildcard matches digits too: what is left must read as a
		// number, or be nothing ("*").
		if d := strings.ReplaceAll(l, "*", ""); l == "" || d != "" && !ca.IsNumberLabel(d) {
			return false
		}
	}
	return true
}

// looksLikeHostName: v could be taken for a DNS name: two or more labels
// of the characters a host name given to a TLS client can hold (letters,
// digits, hyphens, underscores, and wildcards anywhere, which OpenSSL
// matches in the CN as in a SAN), with or without a trailing dot, the
// last not all digits (no top-level domain is; "v1.2" is a version). A
// value with spaces, an @ or non-ASCII letters is no host a client
// connects to, and one label (a device ID, a GUID) is left alone, as
// devices use those.
func looksLikeHostName(v string) bool {
	v = strings.TrimSuffix(v, ".")
	labels := strings.Split(v, ".")
	if len(labels) < 2 || strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return false
	}
	for _, l := range labels {
		if l == "" {
			return false
		}
		for _, r := range l {
			if !(r == '-' || r == '_' || r == '*' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return false
			}
		}
	}
	return true
}

// isOneLabelHostName: one label of letters, digits and hyphens, not all
// digits ("localhost", "intranet", "wpad"): at a profile whose
// certificates serve TLS, OpenSSL's hostname check matches such a host
// against the CN. (A serial number of digits is left alone.)
func isOneLabelHostName(v string) bool {
	v = strings.TrimSuffix(v, ".")
	if v == "" || len(v) > 63 || strings.Trim(v, "0123456789") == "" {
		return false
	}
	for _, r := range v {
		if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// otherAllowed applies email or URI patterns: with none, any value,
// unless DNS patterns restrict the host names, as for IP addresses. A
// profile that names its hosts must name its other identities too: a URI
// such as Intune's tag:microsoft.com,…:sid:S-1-5-21-… maps the certificate
// to a Windows account (KB5014754), and an email to a mailbox.
func (np *namePolicy) otherAllowed(patterns []*regexp.Regexp, v string) bool {
	if len(patterns) == 0 {
		return len(np.dns) == 0
	}
	return allowedBy(patterns, v)
}

// ipAllowed: an address in one of the profile's ranges; with none, any
// address, unless DNS patterns restrict the host names.
func (np *namePolicy) ipAllowed(ip net.IP) bool {
	if len(np.ips) == 0 {
		return len(np.dns) == 0
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	a = a.Unmap()
	for _, pr := range np.ips {
		if pr.Contains(a) {
			return true
		}
	}
	return false
}

func (np *namePolicy) fixedValue(name string) (string, bool) {
	for _, f := range np.fixed {
		if f.name == name {
			return f.value, true
		}
	}
	return "", false
}

// applyFixed drops the CSR's values of fixed attributes and puts ours in,
// each as its own RDN, most significant first, and keeps every other
// attribute as the CSR encoded it: its bytes, whatever its value (the
// issuer's checks judge the values; re-encoding parsed values would change
// string types, and fail on values encoding/asn1 cannot marshal back).
func (np *namePolicy) applyFixed(rawSubject []byte) ([]byte, error) {
	in := cryptobyte.String(rawSubject)
	var rdns cryptobyte.String
	if !in.ReadASN1(&rdns, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, errors.New("the subject is not a DER Name")
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, f := range np.fixed {
			atv, err := asn1.Marshal(pkix.AttributeTypeAndValue{Type: f.oid, Value: f.value})
			if err != nil {
				b.SetError(err)
				return
			}
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(atv) })
		}
		for !rdns.Empty() {
			var set cryptobyte.String
			if !rdns.ReadASN1(&set, cbasn1.SET) {
				b.SetError(errors.New("an RDN is not a SET"))
				return
			}
			var kept [][]byte
			for !set.Empty() {
				var atv, body cryptobyte.String
				var oid asn1.ObjectIdentifier
				if !set.ReadASN1Element(&atv, cbasn1.SEQUENCE) {
					b.SetError(errors.New("an attribute is not a SEQUENCE"))
					return
				}
				if elem := atv; !elem.ReadASN1(&body, cbasn1.SEQUENCE) || !body.ReadASN1ObjectIdentifier(&oid) {
					b.SetError(errors.New("an attribute does not start with its type"))
					return
				}
				if _, fixed := np.fixedValue(attributeName(oid)); !fixed {
					kept = append(kept, atv)
				}
			}
			if len(kept) > 0 {
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					for _, atv := range kept {
						b.AddBytes(atv)
					}
				})
			}
		}
	})
	return b.Bytes()
}

func attributeName(oid asn1.ObjectIdentifier) string {
	for _, n := range []string{"CN", "O", "OU", "C", "L", "ST", "SERIALNUMBER", "DC", "UID", "EMAILADDRESS", "STREET", "POSTALCODE"} {
		if o, _ := csr.AttributeOID(n); o.Equal(oid) {
			return n
		}
	}
	return ""
}
