package console

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/printable"
)

// funcs are the template functions. None returns template.HTML: every
// value a template prints is escaped.
var funcs = template.FuncMap{
	// printable is for every text someone else wrote: a subject or SAN
	// (a refused request's is stored as the unauthenticated requester
	// sent it), an audit reason or detail, an actor, an address. HTML
	// escaping keeps markup out but not a bidi override or a zero-width
	// space, which make "CN=printer-7 \u202enimda\u202c" read as
	// "CN=printer-7 admin": those come out as Go escapes, as in the CLI.
	"printable": printable.String,
	// serial shows a stored serial (SerialHex) in whole bytes, as openssl
	// prints it; links keep the stored form, and either is looked up.
	"serial":     pki.ShownSerial,
	"when":       fmtTime,
	"day":        fmtDay,
	"iso":        isoTime,
	"clock":      func(t time.Time) string { return t.UTC().Format("15:04:05 UTC") },
	"rel":        relTime,
	"reason":     admin.ReasonName,
	"join":       strings.Join,
	"short":      short,
	"status":     certStatus,
	"certURL":    certURL,
	"renewalURL": renewalURL,
	"duration":   fmtDuration,
	"itoa":       itoa,
	"plural":     plural,
	"slug":       func(s string) string { return strings.ReplaceAll(strings.ToLower(s), " ", "-") },
	"list":       func(s ...string) []string { return s },
	"addf":       func(a, b float64) float64 { return a + b },
	"subf":       func(a, b float64) float64 { return a - b },
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func fmtDay(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02")
}

func isoTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// relTime says how far t is from now, roughly ("in 3 days", "5 hours ago").
func relTime(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := t.Sub(now)
	future := d >= 0
	if !future {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		return "now"
	case d < time.Hour:
		s = pki.Plural(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		s = pki.Plural(int(d/time.Hour), "hour")
	case d < 730*24*time.Hour:
		s = pki.Plural(int(d/(24*time.Hour)), "day")
	default:
		s = pki.Plural(int(d/(365*24*time.Hour)), "year")
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

// fmtDuration writes a duration in days or hours when it is whole ones.
func fmtDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "—"
	case d%(24*time.Hour) == 0:
		return pki.Plural(int(d/(24*time.Hour)), "day")
	case d%time.Hour == 0:
		return pki.Plural(int(d/time.Hour), "hour")
	}
	return d.String()
}

// short abbreviates a long identifier (an issuer ID) for a table.
func short(s string) string {
	if len(s) <= 16 {
		return s
	}
	return s[:16] + "…"
}

// certStatus is a record's status as people see it: valid, revoked, on
// hold, or expired.
func certStatus(c pki.Certificate, now time.Time) string {
	switch {
	case c.Status == pki.StatusRevoked && c.RevokeReason == admin.ReasonCertificateHold:
		return "on hold"
	case c.Status == pki.StatusRevoked:
		return "revoked"
	case c.Expired(now):
		return "expired"
	}
	return string(c.Status)
}

// certURL is the page of one certificate.
func certURL(c pki.Certificate) string {
	return Prefix + "certificates/" + url.PathEscape(c.SerialHex) + "?" + url.Values{"issuer": {c.IssuerID}}.Encode()
}

// renewalURL is the page of the newest certificate that renews c, "" when
// none does (or the list that gave c does not say).
func renewalURL(c pki.Certificate) string {
	issuer, serial, ok := strings.Cut(c.RenewedBy, ":")
	if !ok {
		return ""
	}
	return certURL(pki.Certificate{IssuerID: issuer, SerialHex: serial})
}

// fingerprint is "sha256:HEX" of a certificate, as the CLI prints it.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// keyDesc describes a public key ("RSA 2048 bits", "ECDSA P-256").
func keyDesc(pub any) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d bits", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

var keyUsageNames = []struct {
	bit  x509.KeyUsage
	name string
}{
	{x509.KeyUsageDigitalSignature, "digitalSignature"},
	{x509.KeyUsageContentCommitment, "contentCommitment"},
	{x509.KeyUsageKeyEncipherment, "keyEncipherment"},
	{x509.KeyUsageDataEncipherment, "dataEncipherment"},
	{x509.KeyUsageKeyAgreement, "keyAgreement"},
	{x509.KeyUsageCertSign, "keyCertSign"},
	{x509.KeyUsageCRLSign, "cRLSign"},
	{x509.KeyUsageEncipherOnly, "encipherOnly"},
	{x509.KeyUsageDecipherOnly, "decipherOnly"},
}

func keyUsages(ku x509.KeyUsage) []string {
	var out []string
	for _, k := range keyUsageNames {
		if ku&k.bit != 0 {
			out = append(out, k.name)
		}
	}
	return out
}

var extKeyUsageNames = map[x509.ExtKeyUsage]string{
	x509.ExtKeyUsageAny:                        "any",
	x509.ExtKeyUsageServerAuth:                 "serverAuth",
	x509.ExtKeyUsageClientAuth:                 "clientAuth",
	x509.ExtKeyUsageCodeSigning:                "codeSigning",
	x509.ExtKeyUsageEmailProtection:            "emailProtection",
	x509.ExtKeyUsageIPSECEndSystem:             "ipsecEndSystem",
	x509.ExtKeyUsageIPSECTunnel:                "ipsecTunnel",
	x509.ExtKeyUsageIPSECUser:                  "ipsecUser",
	x509.ExtKeyUsageTimeStamping:               "timeStamping",
	x509.ExtKeyUsageOCSPSigning:                "OCSPSigning",
	x509.ExtKeyUsageMicrosoftServerGatedCrypto: "msSGC",
	x509.ExtKeyUsageNetscapeServerGatedCrypto:  "nsSGC",
}

func extKeyUsages(ekus []x509.ExtKeyUsage, unknown []asn1.ObjectIdentifier) []string {
	var out []string
	for _, e := range ekus {
		if n, ok := extKeyUsageNames[e]; ok {
			out = append(out, n)
		} else {
			out = append(out, fmt.Sprintf("EKU %d", e))
		}
	}
	for _, oid := range unknown {
		out = append(out, oid.String())
	}
	return out
}

// sans lists a certificate's subject alternative names, each with its kind.
func sans(c *x509.Certificate) []string {
	var out []string
	for _, d := range c.DNSNames {
		out = append(out, "DNS: "+d)
	}
	for _, ip := range c.IPAddresses {
		out = append(out, "IP: "+ip.String())
	}
	for _, e := range c.EmailAddresses {
		out = append(out, "email: "+e)
	}
	for _, u := range c.URIs {
		out = append(out, "URI: "+u.String())
	}
	return out
}

// certInfo is the decoded view of one certificate.
type certInfo struct {
	Subject, Issuer, Serial      string
	NotBefore, NotAfter          time.Time
	SANs                         []string
	Key, SignatureAlgorithm      string
	KeyUsage, ExtKeyUsage        []string
	CRLs, OCSP, CAIssuers        []string
	SubjectKeyID, AuthorityKeyID string
	IsCA, BasicConstraintsValid  bool
	Fingerprint                  string
	SerialColons, SubjectCN      string
	PathLen                      string
}

func decode(c *x509.Certificate) certInfo {
	ci := certInfo{
		Subject: dnString(c.RawSubject), Issuer: dnString(c.RawIssuer), Serial: pki.SerialText(c.SerialNumber),
		NotBefore: c.NotBefore, NotAfter: c.NotAfter, SANs: sans(c), Key: keyDesc(c.PublicKey),
		SignatureAlgorithm: c.SignatureAlgorithm.String(), KeyUsage: keyUsages(c.KeyUsage),
		ExtKeyUsage: extKeyUsages(c.ExtKeyUsage, c.UnknownExtKeyUsage), CRLs: c.CRLDistributionPoints,
		OCSP: c.OCSPServer, CAIssuers: c.IssuingCertificateURL, IsCA: c.IsCA, Fingerprint: fingerprint(c.Raw),
		SubjectCN: c.Subject.CommonName, BasicConstraintsValid: c.BasicConstraintsValid,
	}
	if len(c.SubjectKeyId) > 0 {
		ci.SubjectKeyID = colons(c.SubjectKeyId)
	}
	if len(c.AuthorityKeyId) > 0 {
		ci.AuthorityKeyID = colons(c.AuthorityKeyId)
	}
	if c.IsCA && (c.MaxPathLen > 0 || c.MaxPathLenZero) {
		ci.PathLen = strconv.Itoa(c.MaxPathLen)
	}
	ci.SerialColons = colons(c.SerialNumber.Bytes())
	return ci
}

func colons(b []byte) string {
	h := hex.EncodeToString(b)
	var sb strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			sb.WriteByte(':')
		}
		sb.WriteString(h[i : i+2])
	}
	return sb.String()
}

// dnString turns a DER Name (a certificate's, a challenge's bound subject) into RFC 4514
// text.
func dnString(der []byte) string {
	if len(der) == 0 {
		return ""
	}
	var rdn pkix.RDNSequence
	if rest, err := asn1.Unmarshal(der, &rdn); err != nil || len(rest) > 0 {
		return "(unreadable name)"
	}
	// Not pkix.Name: it keeps one value per known attribute type (CN=a+CN=b
	// would read as CN=b) and reorders the attributes.
	return csr.NameString(der)
}

// parseDay reads a date (2006-01-02) or a time (RFC 3339, or
// 2006-01-02T15:04 as a datetime-local field sends it, in UTC), from 1970
// to 9999: the store reads year 1 (the zero time) as no bound.
func parseDay(field, s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{"2006-01-02", time.RFC3339, "2006-01-02T15:04", "2006-01-02T15:04:05"} {
		t, err := time.Parse(layout, s)
		if err != nil {
			continue
		}
		if t = t.UTC(); t.Year() < 1970 || t.Year() > 9999 {
			return time.Time{}, refusef("%s %q: want a date from 1970 to 9999", field, clip(s))
		}
		return t, nil
	}
	if fiveDigitYearRE.MatchString(s) {
		// Well formed but for the year's width (10000-01-01): the year is
		// what is wrong, not the format.
		return time.Time{}, refusef("%s %q: want a date from 1970 to 9999", field, clip(s))
	}
	return time.Time{}, refusef("%s %q: want a date (2006-01-02) or a time (2006-01-02T15:04, UTC)", field, clip(s))
}

// fiveDigitYearRE is a date whose year has more than four digits.
var fiveDigitYearRE = regexp.MustCompile(`^[0-9]{5,}-[0-9]{2}-[0-9]{2}([T ]|$)`)

// isDateOnly reports whether s is a date without a time.
func isDateOnly(s string) bool {
	_, err := time.Parse("2006-01-02", strings.TrimSpace(s))
	return err == nil
}

// orderRefusal refuses a range whose start (from, as typed in the field
// labelled fromLabel) is not before its end (until): as the rule is, "not
// after" when until is a date, which includes its day (from and until the
// same day is a day's range), "before" when it is a time, which the range
// ends at.
func orderRefusal(fromLabel, from, untilLabel, until string) error {
	rule := "must be before"
	if isDateOnly(until) {
		rule = "must not be after"
	}
	return refusef("%s (%s) %s %s (%s): give an earlier %s or a later %s", fromLabel, clip(strings.TrimSpace(from)), rule,
		untilLabel, clip(strings.TrimSpace(until)), fromLabel, untilLabel)
}

// decimal reads a number of a query parameter or a form field: decimal
// digits only, as the console's own links and selects write one. A sign,
// white space or a 0x prefix (+5, " 5", 0x5) is no number of the console's,
// refused as "abc" is, not read leniently as strconv.Atoi reads "+5".
func decimal(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// parseLimit reads a page size: def when empty, 1 to max.
func parseLimit(s string, def, maxN int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, ok := decimal(s)
	if !ok || n < 1 || n > int64(maxN) {
		return 0, refusef("limit %q: want a number from 1 to %d", clip(s), maxN)
	}
	return int(n), nil
}

// parseTTL reads a challenge lifetime: a Go duration ("90m", "24h") or a
// number of days ("7d"), as the API reads it. Its range is checked apart
// (admin.CheckChallengeTTL), refused with ttlRefusal too.
func parseTTL(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, refusef("enter a lifetime, like 60m, 24h or 7d")
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		// Bounded so that the hours cannot overflow; the range is ops's.
		n, ok := decimal(days)
		if !ok || n > 36500 {
			return 0, ttlRefusal(s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, ttlRefusal(s)
	}
	return d, nil
}

// ttlRefusal refuses a challenge lifetime the console cannot read or
// reads out of range, naming the value either way.
func ttlRefusal(s string) error {
	return refusef("lifetime %q: want a lifetime %s, like 60m, 24h or 7d", clip(strings.TrimSpace(s)), admin.ChallengeTTLRange())
}

// fields splits a list typed by a person (commas, spaces or lines).
func fields(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' || r == ';' })
}

// clip shortens what a person typed before it is quoted in a message, at
// a character boundary: half a character would be quoted as \xc3.
func clip(s string) string {
	if len(s) <= 80 {
		return s
	}
	cut := 80
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func itoa(n int) string { return strconv.Itoa(n) }

// plural is the noun of a count: one for 1, many for any other ("1 day",
// "7 days", "0 records"). n is any integer a page holds (int, int64).
func plural(n any, one, many string) string {
	switch v := n.(type) {
	case int:
		if v == 1 {
			return one
		}
	case int64:
		if v == 1 {
			return one
		}
	}
	return many
}
