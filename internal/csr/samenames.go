package csr

import (
	"crypto/x509"
	"net"
	"net/url"
	"slices"
	"strings"
)

// AltNames are the subject alternative names scepter issues: DNS names,
// email addresses, IP addresses and URIs.
type AltNames struct {
	DNSNames       []string
	EmailAddresses []string
	IPAddresses    []net.IP
	URIs           []*url.URL
}

// AltNamesOf returns a certificate's alternative names.
func AltNamesOf(c *x509.Certificate) AltNames {
	return AltNames{DNSNames: c.DNSNames, EmailAddresses: c.EmailAddresses, IPAddresses: c.IPAddresses, URIs: c.URIs}
}

// AltNamesOfRequest returns a request's alternative names.
func AltNamesOfRequest(r *x509.CertificateRequest) AltNames {
	return AltNames{DNSNames: r.DNSNames, EmailAddresses: r.EmailAddresses, IPAddresses: r.IPAddresses, URIs: r.URIs}
}

// SameAltNames: a and b name the same, in any order, each name compared
// by its type's key (DNSNameKey, EmailKey, URIKey, an IP address by its
// value).
func SameAltNames(a, b AltNames) bool {
	return sameKeys(a.DNSNames, b.DNSNames, DNSNameKey) && sameKeys(a.EmailAddresses, b.EmailAddresses, EmailKey) &&
		sameKeys(a.IPAddresses, b.IPAddresses, net.IP.String) && sameKeys(a.URIs, b.URIs, URIKey)
}

func sameKeys[T any](a, b []T, key func(T) string) bool {
	return slices.Equal(NameKeys(a, key), NameKeys(b, key))
}

// NameKeys are the keys of names (DNSNameKey, EmailKey, URIKey,
// net.IP.String), sorted, each once: the set two lists of names are
// compared as.
func NameKeys[T any](names []T, key func(T) string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, key(n))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// DNSNameKey: a DNS name is case-insensitive (RFC 4343; RFC 5280 §7.2).
func DNSNameKey(name string) string { return strings.ToLower(name) }

// EmailKey: an email address's domain is case-insensitive, its local part
// is not (RFC 5280 §7.5): Alice@example.com and Alice@EXAMPLE.com are one
// mailbox, alice@example.com may be another.
func EmailKey(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	return addr[:at+1] + strings.ToLower(addr[at+1:])
}

// URIKey: a URI's scheme and host are case-insensitive, the rest (its
// path, a SPIFFE ID's workload, an opaque tag:) is not (RFC 3986
// §6.2.2.1; RFC 5280 §7.4).
func URIKey(u *url.URL) string {
	c := *u
	c.Scheme, c.Host = strings.ToLower(c.Scheme), strings.ToLower(c.Host)
	return c.String()
}
