package pki

import (
	"crypto/x509"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"strings"
	"time"
)

// KeyPolicy lists the subject key types a profile accepts.
type KeyPolicy struct {
	RSAMinBits int      // 0 means RSA is not allowed
	RSAMaxBits int      // upper bound against resource abuse
	ECCurves   []string // "P-256", "P-384"
	// Blocklist, when set, refuses RSA moduli an operator listed (a
	// complete Debian weak-key list, say) on top of the built-in checks.
	Blocklist KeyBlocklist
}

// KeyBlocklist tells whether an RSA modulus is known to be compromised.
type KeyBlocklist interface {
	Blocked(n *big.Int) bool
}

// DefaultKeyPolicy: RSA 2048..8192 and the NIST curves P-256/P-384.
var DefaultKeyPolicy = KeyPolicy{RSAMinBits: 2048, RSAMaxBits: 8192, ECCurves: []string{"P-256", "P-384"}}

// Profile is the server-side rule set that decides what goes into a
// certificate. CSR values are only inputs to it.
type Profile struct {
	Name        string
	Validity    time.Duration
	Backdate    time.Duration // NotBefore = now - Backdate, for clock skew on devices
	KeyUsage    x509.KeyUsage
	ExtKeyUsage []x509.ExtKeyUsage
	Keys        KeyPolicy
	// AllowLegacySignatures accepts certificate requests signed with SHA-1
	// (sha1WithRSAEncryption, ecdsa-with-SHA1), for old clients that can do
	// no better. Off by default: such requests are refused with badAlg. MD5
	// and DSA signatures are refused even then (they cannot be verified).
	AllowLegacySignatures bool
	// ChallengeMode is "static", "onetime", "any" (static or one-time) or
	// "webhook" (an external service decides).
	ChallengeMode string
	MaxSANs       int
	// CRLURLs and OCSPURLs go into every certificate (CDP and AIA) once set.
	// Nil leaves them to the server (its URLs under the public URL); an
	// empty list (crl_urls = []) means none: keep the two apart.
	CRLURLs  []string
	OCSPURLs []string
	// IssuerURLs go into AIA caIssuers; nil and empty as above.
	IssuerURLs []string

	// Names: what the certificate's subject and SANs may be.
	SubjectRequired []string          // attribute types that must be present ("CN", "O", …)
	SubjectFixed    map[string]string // attribute type -> value set by us, whatever the CSR says
	SubjectPatterns map[string]string // attribute type -> regexp the CSR's value must match
	// SubjectAllowed are attribute types the subject may carry with any
	// value, and more than once. A profile with SubjectFixed,
	// SubjectPatterns or SubjectAllowed refuses every attribute type none
	// of the four lists, and a second value of one not in SubjectAllowed.
	SubjectAllowed []string
	DNSPatterns    []string // regexps every DNS SAN must match (none: any valid name)
	EmailPatterns  []string // regexps every email SAN must match
	URIPatterns    []string // regexps every URI SAN must match (e.g. Intune's tag:microsoft.com,2022-09-14:sid:…)
	// IPRanges are CIDR prefixes every IP SAN must fall in. None: any
	// address, unless DNSPatterns restrict host names, which then leave
	// no address (a profile that names its hosts must name its addresses).
	IPRanges   []string
	RequireSAN bool
	// SANFixed are added to every certificate ("dns:…", "email:…", "ip:…",
	// "uri:…"), whatever the CSR asks.
	SANFixed []string

	// RequireApproval holds requests for an operator: the client gets
	// PENDING and polls until someone approves or rejects.
	RequireApproval bool
	// RequestRetention is how long a held request and its outcome are kept
	// for CertPoll.
	RequestRetention time.Duration

	// Renewal (RenewalReq, or PKCSReq signed by a certificate we issued).
	// RenewalWindow is the part of the lifetime, counted back from NotAfter,
	// in which renewal is allowed (default: the last third). RenewalWindowFixed,
	// when set, is a fixed duration before NotAfter instead.
	RenewalWindow      float64
	RenewalWindowFixed time.Duration
	RenewalGrace       time.Duration // how long after expiry a renewal is still accepted
	AllowKeyReuse      bool          // the renewed certificate may keep the old key
	AllowNameChange    bool          // the renewed certificate may change subject and SANs
	RevokeSuperseded   bool          // revoke the old certificate (superseded) on renewal

	// Issuer pins the issuing CA by IssuerID (prefix); "" is the active one.
	Issuer string
	// IncludeCACert puts the issuing CA chain into the CertRep beside the
	// certificate (Cisco wants it, Juniper refuses it).
	IncludeCACert bool

	// RequireChannelBinding (EST) refuses a request over TLS whose CSR does
	// not carry the TLS session's channel binding (tls-unique on TLS 1.2,
	// tls-exporter on TLS 1.3) in its challengePassword: RFC 7030 §3.5
	// proof-of-possession linking. A binding that is present is always
	// checked, required or not.
	RequireChannelBinding bool
	// ManufacturerAuth (EST) lets a TLS client certificate from the
	// configured manufacturer CAs (an IDevID) authenticate a first
	// enrollment at this profile.
	ManufacturerAuth bool
	// ManufacturerSameSubject binds such an enrollment to the device: the
	// request must ask for the IDevID's own subject (compared RDN by RDN).
	// Without it an IDevID buys a certificate for any name the profile
	// allows.
	ManufacturerSameSubject bool
	// ServerKeyGen (EST) allows /serverkeygen: the server makes the key.
	ServerKeyGen bool
	// OCSPNoCheck adds id-pkix-ocsp-nocheck: only the server's own
	// delegated OCSP responder certificates have it (not configurable).
	OCSPNoCheck bool

	// Expiry notifications. NotifyBefore lists the thresholds before
	// NotAfter at which one notification per certificate and threshold is
	// sent (empty: none); NotifyTo the mail recipients; NotifyOwner adds
	// the certificate's email SANs to them.
	NotifyBefore []time.Duration
	NotifyTo     []string
	NotifyOwner  bool
}

// RenewalOpens returns when renewal opens for a certificate valid from
// notBefore to notAfter under this profile.
func (p Profile) RenewalOpens(notBefore, notAfter time.Time) time.Time {
	if p.RenewalWindowFixed > 0 {
		return notAfter.Add(-p.RenewalWindowFixed)
	}
	w := p.RenewalWindow
	if w <= 0 || w > 1 {
		w = 1.0 / 3
	}
	life := notAfter.Sub(notBefore)
	return notAfter.Add(-time.Duration(float64(life) * w))
}

// DefaultProfile is what a zero-config server issues: one-year device
// certificates for TLS client authentication. RFC 5280 §4.2.1.12 allows only
// digitalSignature and/or keyAgreement beside clientAuth, so no
// keyEncipherment (the pre-issuance lint holds us to that).
func DefaultProfile() Profile {
	return Profile{
		Name:          "default",
		Validity:      365 * 24 * time.Hour,
		Backdate:      5 * time.Minute,
		KeyUsage:      x509.KeyUsageDigitalSignature,
		ExtKeyUsage:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		Keys:          DefaultKeyPolicy,
		ChallengeMode: "any",
		MaxSANs:       32,

		RequestRetention: 7 * 24 * time.Hour,
		RenewalWindow:    1.0 / 3,
		AllowKeyReuse:    true,

		NotifyBefore: []time.Duration{30 * 24 * time.Hour, 7 * 24 * time.Hour, 24 * time.Hour},
	}
}

// FixedSANs are a profile's SANFixed values, by type.
type FixedSANs struct {
	DNSNames       []string
	EmailAddresses []string
	IPAddresses    []net.IP
	URIs           []*url.URL
}

// ParseFixedSANs reads SANFixed values ("dns:…", "email:…", "ip:…",
// "uri:…"): the one reading that the issuer's profile check and the
// enrollment service's name policy share.
func ParseFixedSANs(values []string) (FixedSANs, error) {
	var set FixedSANs
	for _, v := range values {
		typ, val, _ := strings.Cut(v, ":")
		switch typ {
		case "dns":
			set.DNSNames = append(set.DNSNames, val)
		case "email":
			set.EmailAddresses = append(set.EmailAddresses, val)
		case "ip":
			ip := net.ParseIP(val)
			if ip == nil {
				return set, fmt.Errorf("san_fixed %q: not an IP address", v)
			}
			set.IPAddresses = append(set.IPAddresses, ip)
		case "uri":
			u, err := url.Parse(val)
			if err != nil {
				return set, fmt.Errorf("san_fixed %q: %w", v, err)
			}
			set.URIs = append(set.URIs, u)
		default:
			return set, fmt.Errorf("san_fixed %q: unknown type", v)
		}
	}
	return set, nil
}
