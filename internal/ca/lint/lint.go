// Package lint checks certificates before the CA key signs them (boulder's
// lint-before-sign). It wraps zlint v3, filtered to the lints that fit a
// private device PKI.
//
// # Which lints run
//
// Only lints whose source is RFC 5280 (lint.RFC5280, 124 certificate lints in
// zlint v3.7.3) are kept, plus three small RFC sets that check what our
// profiles promise: RFC 3279 (key usages allowed for RSA keys, 3 lints),
// RFC 8813 (no keyEncipherment/dataEncipherment on ECDSA keys, 1 lint) and
// RFC 5891 (internationalized DNS names in NFC, 1 lint). The CA/Browser
// Forum, Mozilla, Apple, Chrome, ETSI and community sets are rules for the
// public web PKI and fail on ordinary device certificates (no SAN, long
// validity, internal names), besides costing about 50 times more CPU; RFC 6962
// (CT precertificates) and RFC 6960 (OCSP) do not apply to what we sign here.
//
// From the RFC 5280 set we leave out:
//
//   - every lint whose name starts with "w_" or "n_": they can only report a
//     Warn or Notice, which Check ignores, so running them is wasted time;
//   - e_rfc_dnsname_hyphen_in_sld and e_rfc_dnsname_underscore_in_sld: they
//     split a DNS name at its "second-level domain" with the Public Suffix
//     List, which has no meaning for the internal names of a private PKI
//     (printer01.corp, nas.home.arpa, host.internal): the same label passes or
//     fails depending on where the public list happens to put a boundary.
//     The issuer checks the syntax of every DNS label uniformly instead.
//
// And one lint runs as our own code instead of zlint's (Replaced):
// e_subject_dn_not_printable_characters reads every subject value as UTF-8
// whatever its string type, so it refused every BMPString (UTF-16, which
// Windows and some devices put in their requests: "dev" is 00 64 00 65
// 00 76, three NULs to it). Check runs the same test, no C0 or C1 control
// character in any subject value, on each value decoded by its type.
//
// The excluded names are in Excluded and Replaced, the resulting set in
// Names.
package lint

import (
	"encoding/asn1"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode/utf16"

	zx509 "github.com/zmap/zcrypto/x509"
	zlint "github.com/zmap/zlint/v3/lint"
	_ "github.com/zmap/zlint/v3/lints/rfc" // registers the RFC lints (and only those)
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/scepter/scepter/internal/csr"
)

// Excluded names the RFC 5280 error lints that are not run, and why.
var Excluded = map[string]string{
	"e_rfc_dnsname_hyphen_in_sld":     "second-level domain taken from the Public Suffix List, meaningless for internal names",
	"e_rfc_dnsname_underscore_in_sld": "second-level domain taken from the Public Suffix List, meaningless for internal names",
}

// Replaced names the zlint lints that Check runs as its own code, and why.
var Replaced = map[string]string{
	subjectControlsLint: "reads every subject value as UTF-8, so refuses every BMPString; Check decodes each value by its type",
}

// subjectControlsLint is e_subject_dn_not_printable_characters, run on
// decoded values (subjectControls).
const subjectControlsLint = "e_subject_dn_not_printable_characters"

// registry is filtered once per process; every Linter shares it (a Registry
// is read-only once built).
var registry = sync.OnceValues(func() (zlint.Registry, error) {
	global := zlint.GlobalRegistry()
	var exclude []string
	for _, name := range global.Names() {
		_, replaced := Replaced[name]
		if _, ok := Excluded[name]; ok || replaced || strings.HasPrefix(name, "w_") || strings.HasPrefix(name, "n_") {
			exclude = append(exclude, name)
		}
	}
	r, err := global.Filter(zlint.FilterOptions{
		IncludeSources: zlint.SourceList{zlint.RFC5280, zlint.RFC3279, zlint.RFC8813, zlint.RFC5891},
		ExcludeNames:   exclude,
	})
	if err != nil {
		return nil, err
	}
	lints := r.CertificateLints().Lints()
	if len(lints) == 0 {
		return nil, errors.New("no RFC 5280 certificate lints registered")
	}
	return r, nil
})

// Linter runs the chosen zlint lints on DER certificates. It is safe for
// concurrent use.
type Linter struct {
	reg   zlint.Registry
	lints []*zlint.CertificateLint
	cfg   zlint.Configuration
	// ready holds, by the index of lints, an instance made and configured
	// once, for the lints whose instances hold nothing (every RFC lint of
	// zlint v3 today). zlint's Execute makes and configures a new instance
	// of every lint for every certificate: a sixth of Check's time went
	// to that. A lint whose instance has fields might keep state between
	// certificates, so it gets no entry and runs through zlint's Execute.
	ready []zlint.LintInterface
}

// New returns a Linter over the lint set built once per process.
func New() (*Linter, error) {
	r, err := registry()
	if err != nil {
		return nil, fmt.Errorf("lint: building the zlint registry: %w", err)
	}
	l := &Linter{reg: r, lints: r.CertificateLints().Lints(), cfg: r.GetConfiguration()}
	l.ready = make([]zlint.LintInterface, len(l.lints))
	for i, c := range l.lints {
		if !reusable(c) {
			continue
		}
		inst := c.Lint()
		if err := l.cfg.MaybeConfigure(inst, c.Name); err != nil {
			return nil, fmt.Errorf("lint: configuring %s: %w", c.Name, err)
		}
		l.ready[i] = inst
	}
	return l, nil
}

// reusable reports whether one instance of c can check every certificate,
// from every goroutine: its instances hold nothing, and zlint's Execute
// does nothing for it besides CheckApplies, CheckEffective and Execute
// (its framework filter is for the CA/Browser Forum's sources only).
func reusable(c *zlint.CertificateLint) bool {
	switch c.Source {
	case zlint.CABFBaselineRequirements, zlint.CABFSMIMEBaselineRequirements, zlint.CABFCSBaselineRequirements:
		return false
	}
	t := reflect.TypeOf(c.Lint())
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Size() == 0
}

// run is zlint's CertificateLint.Execute for lint i, with its ready
// instance when it has one.
func (l *Linter) run(i int, c *zx509.Certificate) (res *zlint.LintResult) {
	ln, inst := l.lints[i], l.ready[i]
	if inst == nil {
		return ln.Execute(c, l.cfg)
	}
	defer func() {
		if err := recover(); err != nil {
			// As zlint's Execute: a lint that panics fails the certificate.
			res = &zlint.LintResult{Status: zlint.Fatal, Details: fmt.Sprintf("'%s' panicked. Error: %v", ln.Name, err)}
		}
	}()
	if !inst.CheckApplies(c) || !ln.CheckEffective(c) {
		return nil
	}
	return inst.Execute(c)
}

// Names returns the names of the lints Check runs, sorted.
func (l *Linter) Names() []string {
	names := make([]string, 0, len(l.lints)+len(Replaced))
	for _, c := range l.lints {
		names = append(names, c.Name)
	}
	for name := range Replaced {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Failure lists the lints a certificate failed (Error or Fatal results).
type Failure struct {
	Lints   []string          // sorted lint names
	Details map[string]string // lint name -> zlint's detail text, when it gave one
}

func (f *Failure) Error() string {
	var b strings.Builder
	b.WriteString("lint: certificate failed ")
	for i, name := range f.Lints {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(name)
		if d := f.Details[name]; d != "" {
			b.WriteString(" (")
			b.WriteString(d)
			b.WriteString(")")
		}
	}
	return b.String()
}

// Check parses der and runs the lints on it. It returns nil when no lint
// reports Error or Fatal (warnings are ignored), a *Failure naming the failed
// lints otherwise, or a parse error.
func (l *Linter) Check(der []byte) error {
	c, err := zx509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("lint: parsing certificate: %w", err)
	}
	var f *Failure
	fail := func(name, details string) {
		if f == nil {
			f = &Failure{Details: map[string]string{}}
		}
		f.Lints = append(f.Lints, name)
		if details != "" {
			f.Details[name] = details
		}
	}
	for i, ln := range l.lints {
		res := l.run(i, c)
		if res == nil || (res.Status != zlint.Error && res.Status != zlint.Fatal) {
			continue
		}
		fail(ln.Name, res.Details)
	}
	if err := subjectControls(c.RawSubject); err != nil {
		fail(subjectControlsLint, err.Error())
	}
	if f != nil {
		slices.Sort(f.Lints)
		return f
	}
	return nil
}

// subjectControls is zlint's e_subject_dn_not_printable_characters (no
// rune below U+0020, none in U+007F–U+009F) on each subject value decoded
// by its string type: a BMPString as UTF-16 big-endian, less the NUL
// terminator some Windows requests end it with (Go's parser drops it too),
// and every other type as zlint reads it, its bytes as UTF-8.
func subjectControls(rawSubject []byte) error {
	_, err := csr.WalkName(rawSubject, func(oid asn1.ObjectIdentifier, tag cbasn1.Tag, value []byte) error {
		s := string(value)
		if tag == cbasn1.Tag(asn1.TagBMPString) {
			s = decodeBMP(value)
		}
		for _, r := range s {
			if r < 0x20 || 0x7f <= r && r <= 0x9f {
				return fmt.Errorf("the subject attribute %s holds the control character %U", oid, r)
			}
		}
		return nil
	}, nil)
	return err
}

// decodeBMP reads a BMPString's UTF-16 code units (an odd last byte, which
// the issuer refuses before it signs, is left out).
func decodeBMP(v []byte) string {
	u := make([]uint16, len(v)/2)
	for i := range u {
		u[i] = uint16(v[2*i])<<8 | uint16(v[2*i+1])
	}
	if n := len(u); n > 0 && u[n-1] == 0 {
		u = u[:n-1]
	}
	return string(utf16.Decode(u))
}
