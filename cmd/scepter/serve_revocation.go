package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/crl"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/ocsp"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/postgres"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// revocationFlags configure where relying parties look and how fresh what
// they find is.
type revocationFlags struct {
	publicURL         string
	crlValidity       time.Duration
	ocspValidity      time.Duration
	responderValidity time.Duration
	// storeRestored acknowledges a store older than what this node
	// published (restored from a backup): the start is refused without it.
	storeRestored bool
}

func (f *revocationFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.publicURL, "public-url", "", "base URL relying parties reach this server at (CRL distribution point, OCSP and caIssuers URLs in every certificate issued); default http:// + --listen, with this machine's name for a wildcard address")
	fs.DurationVar(&f.crlValidity, "crl-validity", crl.DefaultValidity, fmt.Sprintf("a CRL's nextUpdate after its publication (at least %s); CRLs are replaced at half of it, and within seconds of a revocation", crl.MinValidity))
	fs.DurationVar(&f.ocspValidity, "ocsp-validity", ocsp.DefaultValidity, "an OCSP answer's nextUpdate after it is signed (never beyond its responder certificate's notAfter); answers are cached for half of it, or until a revocation")
	fs.DurationVar(&f.responderValidity, "ocsp-responder-validity", ocsp.DefaultDelegateValidity, "lifetime of the delegated OCSP responder certificates (id-pkix-ocsp-nocheck: keep it short)")
	fs.Var(&onceSwitch{on: &f.storeRestored, why: storeRestoredOnce}, "store-restored", "start although the store is older than the CRLs this node published (restored from a backup): the revocations made after the backup are missing from CRL and OCSP until made again with 'scepter certs revoke' (docs/deployment.md, Restoring)")
}

func (f *revocationFlags) check() error {
	switch {
	case f.crlValidity < crl.MinValidity:
		return usageError{fmt.Sprintf("--crl-validity %s: at least %s (a CRL is replaced at half of it, each time with a new number)",
			f.crlValidity, crl.MinValidity)}
	case f.ocspValidity < time.Minute:
		return usageError{"--ocsp-validity must be at least 1m"}
	case f.responderValidity < time.Hour:
		return usageError{"--ocsp-responder-validity must be at least 1h"}
	}
	// Before the data directory or a CA is made: a start refused for its
	// flags leaves nothing behind.
	if f.publicURL != "" {
		if _, err := parsePublicURL(f.publicURL); err != nil {
			return err
		}
	}
	return nil
}

// parsePublicURL reads --public-url: http or https, a host, an optional
// path, nothing else.
func parsePublicURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	// An empty query or fragment ("…?", "…#") parses as none, yet the
	// "?" would turn every path appended to the URL into a query.
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.ForceQuery ||
		u.Fragment != "" || strings.Contains(s, "#") || u.User != nil {
		return nil, usageError{fmt.Sprintf("--public-url %q: want http://HOST[:PORT][/PATH] (https works for OCSP but RFC 5280 relying parties fetch CRLs over http)", s)}
	}
	if err := checkPublicHost(u); err != nil {
		return nil, usageError{fmt.Sprintf("--public-url %q: %v", s, err)}
	}
	return u, nil
}

// checkPublicHost checks the host and port that go into every certificate's
// CRL and OCSP URLs: a port from 1 to 65535 when one is written, and an IP
// address or a host name as a certificate's DNS name must be (ASCII, an
// internationalised name in its xn-- form), without a wildcard.
func checkPublicHost(u *url.URL) error {
	if strings.HasSuffix(u.Host, ":") {
		return errors.New("the port is empty")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || p[0] == '0' {
			return fmt.Errorf("port %s: want 1 to 65535, without leading zeros", p)
		}
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		for _, seg := range strings.Split(p, "/") {
			if seg == "" || seg == "." || seg == ".." {
				return fmt.Errorf("path %q: no empty, . or .. segments (clients resolve them differently)", u.Path)
			}
		}
	}
	host := u.Hostname()
	if strings.Contains(host, "%") {
		return fmt.Errorf("host %q: an IPv6 zone names an interface of this machine, which relying parties do not share", host)
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	if strings.Contains(host, "*") {
		return fmt.Errorf("host %q: a URL names one host, no wildcard", host)
	}
	if err := ca.CheckDNSName(host); err != nil {
		// Its refusal of a name that is not ASCII says to use xn-- labels.
		return fmt.Errorf("host: %s", pki.ErrorMessage(err))
	}
	return nil
}

// publicURLFile keeps the public URL the server runs with in the data
// directory, so certificates the CLI issues (`requests approve`) point
// where the server's do.
const publicURLFile = "public-url"

// resolvePublicURL returns the base URL to put in certificates: the flag,
// or http:// + the listen address with the machine's name in place of a
// wildcard. It warns when the URL is loopback and the listener is not:
// nobody else could fetch what the certificates point to; and when it is
// https, which relying parties do not fetch CRLs over.
func (f *revocationFlags) resolvePublicURL(listen net.Addr, log *slog.Logger) (string, error) {
	if f.publicURL != "" {
		u, err := parsePublicURL(f.publicURL)
		if err != nil {
			return "", err
		}
		base := strings.TrimRight(u.String(), "/")
		if u.Scheme == "https" {
			log.Warn("--public-url is https: every certificate's CRL distribution point will be an https URL, which relying parties fetch CRLs from over http only (RFC 5280); give an http:// URL", "public_url", base)
		}
		if loopbackHost(u.Hostname()) && !loopbackListener(listen) {
			log.Warn("--public-url is a loopback address but the server listens on the network: devices cannot fetch the CRL and OCSP URLs it puts in certificates", "public_url", base)
		}
		return base, nil
	}
	host, port, err := net.SplitHostPort(listen.String())
	if err != nil {
		return "", err
	}
	if a, err := netip.ParseAddr(host); err == nil && a.IsUnspecified() {
		name, err := os.Hostname()
		if err != nil || name == "" {
			return "", fmt.Errorf("--public-url is not set and the machine's name is unknown (%v): set --public-url", err)
		}
		host = name
	}
	base := "http://" + net.JoinHostPort(host, port)
	if loopbackHost(host) && !loopbackListener(listen) {
		log.Warn("the public URL is a loopback address but the server listens on the network: set --public-url", "public_url", base)
	}
	return base, nil
}

func loopbackListener(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}

// savePublicURL records the public URL for CLI commands that issue.
func savePublicURL(dataDir, base string) error {
	return keys.WriteFileAtomic(filepath.Join(dataDir, publicURLFile), []byte(base+"\n"), 0o600)
}

// savedPublicURL is the public URL the server last ran with ("" if none).
func savedPublicURL(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, publicURLFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("public URL: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// revocation is the server's CRL publisher and OCSP responder.
type revocation struct {
	publisher *crl.Publisher
	responder *ocsp.Responder
	delegates *ocsp.Delegates
	// gate, when set, is the node's issuance gate (issuanceGate): the
	// responder certificates wait while it is closed.
	gate func() error
}

// storeRestoredOnce is why --store-restored is taken only on the command
// line (config.CommandLineOnly).
const storeRestoredOnce = "it acknowledges one restored store, and left in the environment or the config file it would let a later restore start unnoticed, its missing revocations served as good"

// onceSwitch is a boolean flag taken only on the command line.
type onceSwitch struct {
	on  *bool
	why string
}

func (o *onceSwitch) Set(v string) error {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return errors.New("parse error")
	}
	*o.on = b
	return nil
}

func (o *onceSwitch) String() string {
	if o == nil || o.on == nil {
		return "false"
	}
	return strconv.FormatBool(*o.on)
}

func (o *onceSwitch) Get() any                { return *o.on }
func (o *onceSwitch) IsBoolFlag() bool        { return true }
func (o *onceSwitch) CommandLineOnly() string { return o.why }

// newPublisher builds the CRL publisher (before the enrollment service,
// which hands its CRLs to SCEP GetCRL) and publishes the first CRLs. The
// highest CRL number published is kept per issuer in DATA/crl-numbers; a
// store behind it is refused without --store-restored.
func (f *revocationFlags) newPublisher(ctx context.Context, dataDir string, st store.Store, authority *ca.Authority, clock pki.Clock, log *slog.Logger) (*revocation, error) {
	r := &revocation{}
	r.publisher = crl.New(st, authority, clock, log, crl.Config{Validity: f.crlValidity, OnState: func(s map[string]int64) {
		if r.responder != nil {
			r.responder.SetRevocationState(s)
		}
	}, Numbers: crl.NewNumbers(filepath.Join(dataDir, crl.NumbersDir))})
	if err := f.checkStoreBehind(ctx, dataDir, r.publisher, st, clock, log); err != nil {
		return nil, err
	}
	if err := r.publisher.Update(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// refuseUnmigratedBehind refuses, before the store is migrated, a start
// that checkStoreBehind would refuse after: a store at an older schema
// (SQLite put back by 'store restore', which says an older scepter serves
// it as it is; a PostgreSQL database restored from a dump of one) whose
// newest CRL of an issuer or root is below the mark DATA/crl-numbers
// keeps. Migrated first and refused then, the store could no longer be
// opened by that older scepter, and the start changed it for nothing.
// Nothing is written: neither the migration nor the store.behind audit
// event, which the store's older schema may not take as this binary
// writes it; the refusal is logged at ERROR. With --store-restored the
// start goes on, migrates, and is audited as before.
func (f *revocationFlags) refuseUnmigratedBehind(ctx context.Context, storeURL, dataDir string, log *slog.Logger) error {
	if f.storeRestored {
		return nil
	}
	old, err := unmigratedStore(ctx, storeURL, dataDir)
	if err != nil || old == nil {
		// An error is Open's to report, as it would without this check.
		return nil
	}
	numbers := crl.NewNumbers(filepath.Join(dataDir, crl.NumbersDir))
	entries, err := os.ReadDir(numbers.Dir())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", numbers.Dir(), err)
	}
	var msgs []string
	for _, e := range entries {
		mark, err := numbers.Get(e.Name())
		if err != nil || mark == 0 {
			continue // not an issuer's mark: the publisher never reads it
		}
		stored := old.NewestCRLs[e.Name()]
		if stored >= mark {
			continue
		}
		msg := fmt.Sprintf("its newest CRL of issuer %s is number %d, but number %d was published with this data directory", e.Name()[:16], stored, mark)
		if stored == 0 {
			msg = fmt.Sprintf("it holds no CRL of issuer %s, but number %d was published with this data directory", e.Name()[:16], mark)
		}
		log.Error("the store is older than this data directory: "+msg, "issuer_id", e.Name(), "store_crl_number", stored,
			"published_crl_number", mark, "store_schema", old.SchemaVersion)
		msgs = append(msgs, msg)
	}
	if len(msgs) == 0 {
		return nil
	}
	return fmt.Errorf("the store is older than this data directory: %s. The store was restored from an older copy: revocations made after that copy are missing from it. "+
		"Refusing to start, and the store is left as it is, at schema version %d, which the older scepter it came from serves. "+
		"To serve it with this one, start with --store-restored (needed once: the next CRLs are numbered above those published), which migrates it to schema version %d, "+
		"then make those revocations again (docs/deployment.md, Restoring); otherwise start with the store this node used",
		strings.Join(msgs, "; "), old.SchemaVersion, old.Latest)
}

// unmigratedStore is what the store (storeURL's PostgreSQL database, or
// SQLite in dataDir) holds when its schema is older than this binary's,
// read without changing it; nil when it is current, new, or not a store
// this binary opens (Open says why).
func unmigratedStore(ctx context.Context, storeURL, dataDir string) (*postgres.Unmigrated, error) {
	switch {
	case storeURL == "":
		old, err := sqlite.Pending(ctx, filepath.Join(dataDir, "scepter.db"))
		if err != nil || old == nil {
			return nil, err
		}
		return &postgres.Unmigrated{SchemaVersion: old.SchemaVersion, Latest: old.Latest, NewestCRLs: old.NewestCRLs}, nil
	case isPostgresURL(storeURL):
		return postgres.Pending(ctx, storeURL)
	}
	return nil, nil
}

// checkStoreBehind says it loudly (log at ERROR, an audit event per issuer)
// when the store's newest CRL is older than one this node published: the
// store was restored from an older copy, and OCSP would answer good, and
// the CRL leave out, every certificate revoked after it. It refuses the
// start unless --store-restored acknowledges it; the first CRL published
// after is numbered above the mark, so the flag is needed once. The
// root's CRL, which no server signs, is held to the same rule: behind the
// mark 'scepter ca root crl' keeps, the start is refused, and acknowledged
// none is served until that command signs one above it.
func (f *revocationFlags) checkStoreBehind(ctx context.Context, dataDir string, p *crl.Publisher, st store.Store, clock pki.Clock, log *slog.Logger) error {
	behind, err := p.StoreBehind(ctx)
	if err != nil {
		return err
	}
	roots, err := p.RootsBehind(ctx)
	if err != nil {
		return err
	}
	if len(behind) == 0 && len(roots) == 0 {
		if f.storeRestored {
			log.Warn("--store-restored was given, but the store is not behind the CRLs this node published: it had nothing to acknowledge; leave it off the next start")
		}
		return nil
	}
	outcome, reason := "success", "acknowledged with --store-restored"
	if !f.storeRestored {
		outcome, reason = "failure", "start refused: --store-restored not given"
	}
	var events []pki.AuditEvent
	var msgs []string
	for _, b := range behind {
		msg := storeBehindMessage(b)
		msgs = append(msgs, msg)
		log.Error(msg, "issuer_id", b.Issuer.ID, "store_crl_number", b.Stored, "published_crl_number", b.Published,
			"store_restored", f.storeRestored)
		events = append(events, pki.AuditEvent{Time: clock.Now(), Type: pki.EventStoreBehind, Actor: "system", IssuerID: b.Issuer.ID,
			Subject: b.Issuer.Cert.Subject.String(), Outcome: outcome, Reason: reason, Detail: msg})
	}
	for _, r := range roots {
		msg := rootBehindMessage(r, dataDir)
		msgs = append(msgs, msg)
		log.Error(msg, "issuer_id", r.ID, "store_crl_number", r.Stored, "signed_crl_number", r.Signed, "store_restored", f.storeRestored)
		events = append(events, pki.AuditEvent{Time: clock.Now(), Type: pki.EventStoreBehind, Actor: "system", IssuerID: r.ID,
			Subject: r.Root.Subject.String(), Outcome: outcome, Reason: reason, Detail: msg})
	}
	if err := st.AppendAudit(ctx, events...); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if f.storeRestored {
		return nil
	}
	if len(behind) == 0 {
		return fmt.Errorf("%s. Refusing to start: relying parties would be given a root CRL older than one they may hold. "+
			"Sign the root's next CRL first, and start again; or, to start before that, start with --store-restored, "+
			"and no root CRL is served until it is signed", strings.Join(msgs, "; "))
	}
	return fmt.Errorf("%s. Refusing to start: certificates revoked after that copy would be served as good without a word. "+
		"If the store was restored on purpose, start with --store-restored (needed once: the next CRLs are numbered above those published), "+
		"then make those revocations again (docs/deployment.md, Restoring); otherwise start with the store this node used",
		strings.Join(msgs, "; "))
}

// rootBehindMessage says what a store behind the root CRLs signed with
// dataDir means, and what to run.
func rootBehindMessage(r crl.RootBehind, dataDir string) string {
	stored := fmt.Sprintf("its newest CRL of the root %s (issuer %s) is number %d", r.Root.Subject, r.ID[:16], r.Stored)
	if r.Stored == 0 {
		stored = fmt.Sprintf("it holds no CRL of the root %s (issuer %s)", r.Root.Subject, r.ID[:16])
	}
	return fmt.Sprintf("the store is older than this data directory: %s, but root CRL %d was signed with it. "+
		"The store was restored from an older copy: the issuing CAs the root revoked after that copy are missing from its root CRL, which is not served. "+
		"Sign the root's next CRL where the root key is: scepter ca root crl --data-dir %s --store-restored, listing them again with --revoke ISSUER-ID or --revoke-cert FILE and their --reason "+
		"(the root CRL relying parties last fetched lists them), and --root-key FILE when the root key is offline",
		stored, r.Signed, shellQuote(dataDir))
}

// storeBehindMessage says what a store behind this node's CRLs means.
func storeBehindMessage(b crl.StoreBehind) string {
	return fmt.Sprintf("the store is older than this data directory: its newest CRL of %s (issuer %s) is number %d, but this node published number %d. "+
		"The store was restored from an older copy: revocations made after that copy are missing from the CRL and OCSP and must be made again "+
		"('scepter certs revoke SERIAL --reason R', or '--cert FILE' for a certificate issued after the copy), and certificates issued after it are not in the inventory",
		b.Issuer.Cert.Subject, b.Issuer.ID[:16], b.Stored, b.Published)
}

// startResponder issues (or loads) the delegated responder certificates and
// builds the OCSP responder.
func (r *revocation) startResponder(ctx context.Context, f *revocationFlags, dataDir string, st store.Store, authority *ca.Authority,
	svc *enroll.Service, clock pki.Clock, log *slog.Logger) error {
	// The responder keys are in the CA's token when it has one.
	ocspDir := filepath.Join(dataDir, "ocsp")
	host, _ := os.Hostname() // names this node in the audit trail, as server.started does
	r.delegates = ocsp.NewDelegates(ocspDir, authority, svc, clock, log, f.responderValidity).
		WithKeys(authority.ResponderKeys(ocspDir)).WithWrapKey(authority.WrapKey).WithInventory(st).
		WithAudit(st, "system:"+host)
	if err := r.delegates.Refresh(ctx); err != nil {
		// Answers are signed by the CA itself meanwhile; retried every
		// ten minutes (see run).
		log.Error("OCSP responder certificates", "err", err)
	}
	r.responder = ocsp.New(st, authority, r.delegates.Signer, clock, log, ocsp.Config{Validity: f.ocspValidity,
		DelegateRevoked: func(string) { r.delegates.Kick() }})
	return r.publisher.Update(ctx) // hands the responder the revocation state
}

// run keeps CRLs and responder certificates fresh until ctx ends, in
// goroutines of background.
func (r *revocation) run(ctx context.Context, background *sync.WaitGroup, log *slog.Logger) {
	background.Go(func() { r.publisher.Run(ctx) })
	// Every minute, as the RA and HTTPS certificates (a delegate revoked
	// by the CLI or another node is replaced within one; otherwise the
	// look is one store read per issuer), and at once when the responder
	// finds a delegate revoked or its key gone from the token, or this
	// node revokes a certificate.
	gated := &gateWatch{gate: r.gate, log: log, what: "renewing the OCSP responder certificates"}
	background.Go(func() {
		everyOrWhen(ctx, time.Minute, r.delegates.Kicked(), func() {
			if gated.closed() {
				return // the CA signs answers meanwhile
			}
			if err := r.delegates.Refresh(ctx); err != nil {
				log.Error("OCSP responder certificates", "err", err)
			}
		})
	})
}

// issuersChanged is told that the CA's set of issuers changed (a next CA
// loaded, an old one gone): a new issuer gets its delegated responder and
// its first CRL now, not at the next periodic refresh, until which its
// OCSP answers would be signed by the CA itself.
func (r *revocation) issuersChanged() { r.Kick() }

// Kick asks for new CRLs and a look at the responder certificates now: a
// revocation made on this node (the API, the console) may have revoked a
// delegated responder, which is then replaced at once.
func (r *revocation) Kick() {
	r.delegates.Kick()
	r.publisher.Kick()
}

// configDigest is the SHA-256 of the effective configuration (every flag's
// value, secrets and paths to secrets left out, and the profiles), for the
// server.started audit event: a changed configuration shows as a changed
// digest.
func configDigest(fs *flag.FlagSet, profiles map[string]pki.Profile) (string, error) {
	values := map[string]string{}
	fs.VisitAll(func(fl *flag.Flag) {
		if secretFlag(fl.Name) {
			if fl.Value.String() != "" {
				values[fl.Name] = "(set)"
			}
			return
		}
		values[fl.Name] = fl.Value.String()
	})
	names := make([]string, 0, len(profiles))
	for n := range profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	type profileEntry struct {
		Name    string
		Profile pki.Profile
	}
	var ps []profileEntry
	for _, n := range names {
		p := profiles[n]
		p.Keys.Blocklist = nil // an interface; its size is in the flags
		ps = append(ps, profileEntry{n, p})
	}
	b, err := json.Marshal(struct {
		Flags    map[string]string
		Profiles []profileEntry
	}{values, ps})
	if err != nil {
		return "", fmt.Errorf("config digest: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// secretFlag: a flag whose value is, or names where to find, a secret.
func secretFlag(name string) bool {
	for _, s := range []string{"challenge", "password", "secret", "passphrase"} {
		if strings.Contains(name, s) && name != "challenge-profile" {
			return true
		}
	}
	return false
}
