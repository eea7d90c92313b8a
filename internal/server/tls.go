package server

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// TLSConfig is the HTTPS listener's configuration: TLS 1.2 and 1.3 only,
// forward-secret AEAD suites, client certificates requested but verified by
// the application (so an unknown or expired one gets an HTTP answer with a
// reason, not a handshake alert; the handshake still proves the client
// holds its key), and no dynamic record sizing (strongSwan's EST client
// wants a reply in one read). min and max are tls.VersionTLS12 or 13; zero
// means 1.2 and 1.3.
func TLSConfig(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), min, max uint16) *tls.Config {
	if min == 0 {
		min = tls.VersionTLS12
	}
	if max == 0 {
		max = tls.VersionTLS13
	}
	return &tls.Config{
		MinVersion: min,
		MaxVersion: max,
		CipherSuites: []uint16{ // TLS 1.2; TLS 1.3 suites are not configurable and all good
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		GetCertificate:              getCert,
		ClientAuth:                  tls.RequestClientCert,
		DynamicRecordSizingDisabled: true,
		// HTTP/1.0 too: a client that offers only it (curl -0) would
		// otherwise get a handshake alert, not an answer.
		NextProtos: []string{"http/1.1", "http/1.0"},
	}
}

// ParseTLSVersion reads "1.2" or "1.3".
func ParseTLSVersion(s string) (uint16, error) {
	switch s {
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("TLS version %q: want 1.2 or 1.3", s)
}

// ServerCertIssuer issues the listener's certificate; *enroll.Service is one.
type ServerCertIssuer interface {
	IssueServerCertificate(ctx context.Context, key crypto.PublicKey, names []string) (*x509.Certificate, []*x509.Certificate, error)
	IssuedHere(cert *x509.Certificate) bool
	// IssuedByActive reports whether cert was issued by the issuing CA in
	// charge now (not by one a rollover switched away from).
	IssuedByActive(cert *x509.Certificate) bool
	RevokedHere(ctx context.Context, cert *x509.Certificate) bool
	// RetireServerCertificate revokes old (superseded by replacement)
	// unless it is revoked already or not in the inventory, and records
	// key, the overwritten one (nil: there was none), as destroyed, by
	// actor. revoked says whether old was revoked now.
	RetireServerCertificate(ctx context.Context, old, replacement *x509.Certificate, key *pki.KeyDestruction, actor string) (revoked bool, err error)
}

// Files of a certificate our CA issues for the listener, in its directory.
const (
	ServerKeyFile  = "server.key"
	ServerCertFile = "server.crt" // leaf first, then its chain
)

// Certificate is the HTTPS listener's certificate: a configured pair, or
// one our CA issues on the first start and replaces before it expires.
// Safe for concurrent use; GetCertificate always serves the newest.
type Certificate struct {
	current atomic.Pointer[tls.Certificate]
	// Managed only:
	dir    string
	names  []string
	issuer ServerCertIssuer
	actor  string // who the audit events of a replacement name
	clock  pki.Clock
	log    *slog.Logger
}

// StaticCertificate loads a configured certificate (chain in certFile) and
// key; it is never replaced.
func StaticCertificate(certFile, keyFile string) (*Certificate, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	c := &Certificate{}
	c.current.Store(&pair)
	return c, nil
}

// ManagedCertificate loads the listener certificate kept in dir, or issues
// one from our CA when there is none, it is not ours, it does not name
// exactly names, or it is due for renewal; one issued by an issuing CA no
// longer in charge (a rollover switched since) is replaced too, but kept
// when that fails. A certificate it replaces is
// retired (see retire), with actor ("system:<node>"; "" is "system") as
// the audit events' actor.
func ManagedCertificate(ctx context.Context, dir string, names []string, issuer ServerCertIssuer, actor string, clock pki.Clock, log *slog.Logger) (*Certificate, bool, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if actor == "" {
		actor = "system"
	}
	c := &Certificate{dir: dir, names: serverNames(names), issuer: issuer, actor: actor, clock: clock, log: log}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("TLS certificate directory: %w", err)
	}
	certFile := filepath.Join(dir, ServerCertFile)
	pair, err := tls.LoadX509KeyPair(certFile, filepath.Join(dir, ServerKeyFile))
	var old *x509.Certificate // the certificate this replaces, if any
	switch {
	case err == nil && c.usable(ctx, pair.Leaf):
		c.current.Store(&pair)
		if c.issuer.IssuedByActive(pair.Leaf) {
			return c, false, nil
		}
		// Issued before a CA switch: replaced from the CA in charge, and
		// served meanwhile, so that a start never fails for it.
		if err := c.followSwitch(ctx, pair.Leaf); err != nil {
			log.Warn("the HTTPS certificate is kept for now; it is tried again every minute", "err", err)
			return c, false, nil
		}
		return c, true, nil
	case err == nil:
		old = pair.Leaf
	default:
		if !errors.Is(err, fs.ErrNotExist) {
			log.Warn("the HTTPS certificate on disk cannot be used; issuing a new one", "dir", dir, "err", err)
		}
		// Its key missing or not its own: the certificate is replaced
		// all the same.
		if certs, err := keys.LoadCertFile(certFile); err == nil && len(certs) > 0 {
			old = certs[0]
		}
	}
	if err := c.issue(ctx, old); err != nil {
		return nil, false, err
	}
	return c, true, nil
}

// usable: ours, valid now, naming exactly the configured names, not yet
// due for renewal, and not revoked.
func (c *Certificate) usable(ctx context.Context, leaf *x509.Certificate) bool {
	if leaf == nil || !c.issuer.IssuedHere(leaf) || !c.clock.Now().Before(RenewAt(leaf)) {
		return false
	}
	if c.issuer.RevokedHere(ctx, leaf) {
		c.log.Warn("the HTTPS certificate is revoked; issuing a new one with a new key", "serial", pki.SerialText(leaf.SerialNumber))
		return false
	}
	var have []string
	have = append(have, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		have = append(have, ip.String())
	}
	want := slices.Clone(c.names)
	slices.Sort(have)
	slices.Sort(want)
	return slices.Equal(have, want)
}

// serverNames are the names as the certificate carries them: DNS names in
// lower case, IP addresses in their canonical form, each once, in the
// order given. The issuer is asked for these, and a certificate on disk is
// compared with them.
func serverNames(names []string) []string {
	var out []string
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			n = ip.String()
		}
		if n = strings.ToLower(n); !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// RenewAt is when a managed certificate is replaced: after two thirds of
// its lifetime.
func RenewAt(c *x509.Certificate) time.Time {
	return c.NotAfter.Add(-c.NotAfter.Sub(c.NotBefore) / 3)
}

// issue makes a new key, has our CA certify it, writes both (key first,
// each atomically) and starts serving the pair; then it retires old, the
// certificate replaced (nil: none), and the key overwritten.
func (c *Certificate) issue(ctx context.Context, old *x509.Certificate) error {
	keyFile := filepath.Join(c.dir, ServerKeyFile)
	overwritten := c.keyOnDisk(keyFile)
	key, err := keys.Generate(keys.P256)
	if err != nil {
		return err
	}
	// The new key and the certificate are written beside the pair in use
	// first, and put in its place only once both are kept: a directory
	// that cannot be written (a full disk, a read-only mount) stops the
	// renewal before a certificate is issued, not after, which left a
	// valid certificate for a key thrown away at every try (r80).
	newKey, newCert := filepath.Join(c.dir, "."+ServerKeyFile+".new"), filepath.Join(c.dir, "."+ServerCertFile+".new")
	defer os.Remove(newKey)
	defer os.Remove(newCert)
	if err := keys.WriteKeyFile(newKey, key); err != nil {
		return fmt.Errorf("keeping a new HTTPS key (no certificate was issued for it): %w", err)
	}
	leaf, chain, err := c.issuer.IssueServerCertificate(ctx, key.Public(), c.names)
	if err != nil {
		return fmt.Errorf("issuing the HTTPS certificate: %w", err)
	}
	// The chain file without the root: clients have the root, and TLS
	// sends what is not a trust anchor.
	certs := []*x509.Certificate{leaf}
	for _, ca := range chain {
		if ca.CheckSignatureFrom(ca) != nil {
			certs = append(certs, ca)
		}
	}
	err = keys.WriteCertFile(newCert, certs...)
	if err == nil {
		err = os.Rename(newKey, keyFile)
	}
	if err == nil {
		err = os.Rename(newCert, filepath.Join(c.dir, ServerCertFile))
	}
	if err != nil {
		serial := pki.SerialText(leaf.SerialNumber)
		c.log.Error("the HTTPS certificate just issued could not be kept with its key; revoke it: 'scepter certs revoke "+serial+" --reason cessationOfOperation'",
			"serial", serial, "err", err)
		return fmt.Errorf("keeping the HTTPS certificate %s: %w", serial, err)
	}
	pair := &tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, cert := range certs {
		pair.Certificate = append(pair.Certificate, cert.Raw)
	}
	c.current.Store(pair)
	c.log.Info("HTTPS certificate issued", "serial", pki.SerialText(leaf.SerialNumber), "names", strings.Join(c.names, ","),
		"not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	c.retire(ctx, old, leaf, overwritten)
	return nil
}

// keyOnDisk describes the key in keyFile, which issue is about to
// overwrite, for the audit trail; nil when there is none. One that cannot
// be read is still a key file destroyed, its public half unknown.
func (c *Certificate) keyOnDisk(keyFile string) *pki.KeyDestruction {
	if _, err := os.Lstat(keyFile); err != nil {
		return nil
	}
	d := &pki.KeyDestruction{Role: pki.KeyRoleHTTPSServer, Where: keyFile}
	if key, err := keys.LoadKeyFile(keyFile); err == nil {
		d.Public = key.Public()
	}
	return d
}

// retire has the issuer revoke old, the certificate next replaced, as
// superseded (the key it certified is gone), and record key's destruction,
// as the OCSP responder's replacement does; so the inventory, OCSP and the
// CRL never show as valid a certificate whose key no longer exists. Only
// this node's own certificate is retired: each node has its own. next
// stands whatever fails here; a failure is logged with what to do.
func (c *Certificate) retire(ctx context.Context, old, next *x509.Certificate, key *pki.KeyDestruction) {
	if old == nil && key == nil {
		return
	}
	// Recorded even when the server is stopping: the key is gone.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	revoked, err := c.issuer.RetireServerCertificate(ctx, old, next, key, c.actor)
	serial := ""
	if old != nil {
		serial = pki.SerialText(old.SerialNumber)
	}
	if revoked {
		c.log.Info("the replaced HTTPS certificate is revoked (superseded): its key is gone", "serial", serial,
			"replaced_by", pki.SerialText(next.SerialNumber))
	}
	if err != nil {
		msg := "the replaced HTTPS certificate could not be retired: its revocation or its key's destruction is not recorded"
		if serial != "" && !revoked {
			msg += "; if 'scepter certs show " + serial + "' says valid, revoke it with 'scepter certs revoke " + serial + " --reason superseded'"
		}
		c.log.Error(msg, "serial", serial, "replaced_by", pki.SerialText(next.SerialNumber), "err", err)
	}
}

// RenewIfDue replaces a managed certificate once it is due or revoked, or
// once the issuing CA in charge is another than the one that issued it (a
// configured one is left alone). The old one is served until the new one
// is in place.
func (c *Certificate) RenewIfDue(ctx context.Context) error {
	if c.issuer == nil {
		return nil
	}
	leaf := c.Leaf()
	if leaf != nil && c.usable(ctx, leaf) {
		if c.issuer.IssuedByActive(leaf) {
			return nil
		}
		return c.followSwitch(ctx, leaf)
	}
	return c.issue(ctx, leaf)
}

// followSwitch replaces leaf, issued by an issuing CA that a rollover
// switched away from, with one of the CA in charge: a client pinning
// that CA (which 'scepter ca show' lists as current) could not reach
// the listener otherwise until leaf's own renewal, up to 60 days later.
// leaf is retired as a renewal's is. Each node replaces its own once its
// authority has the switch; one that has not keeps serving its own.
func (c *Certificate) followSwitch(ctx context.Context, leaf *x509.Certificate) error {
	c.log.Info("the HTTPS certificate was issued by an issuing CA no longer in charge; replacing it with one of the CA in charge",
		"serial", pki.SerialText(leaf.SerialNumber), "issuer", leaf.Issuer.String())
	if err := c.issue(ctx, leaf); err != nil {
		return fmt.Errorf("replacing the HTTPS certificate of an earlier issuing CA: %w", err)
	}
	return nil
}

// Leaf is the certificate being served.
func (c *Certificate) Leaf() *x509.Certificate {
	p := c.current.Load()
	if p.Leaf != nil {
		return p.Leaf
	}
	leaf, err := x509.ParseCertificate(p.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}

// GetCertificate serves the current pair (tls.Config.GetCertificate).
func (c *Certificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.current.Load(), nil
}
