package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/audit"
	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/cashare"
	"github.com/scepter/scepter/internal/credential"
	"github.com/scepter/scepter/internal/crl"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/est/estserver"
	"github.com/scepter/scepter/internal/health"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/loglimit"
	"github.com/scepter/scepter/internal/metrics"
	"github.com/scepter/scepter/internal/ndes"
	"github.com/scepter/scepter/internal/notify"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep/scepserver"
	"github.com/scepter/scepter/internal/server"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite"
	"github.com/scepter/scepter/internal/webhook"
)

type serveFlags struct {
	storeFlags
	listen           string
	challenge        string
	challengeFile    string
	challengeProfile string
	caKeyType        string
	scepRA           string
	allowInsecureDES bool
	maxClockSkew     time.Duration
	logLevel         string
	logFormat        string

	webhookURL        string
	webhookSecretFile string
	webhookTimeout    time.Duration

	notify notifyFlags // expiry notifications (notify.go)

	ndesUser         string
	ndesPassword     string
	ndesPasswordFile string
	ndesProfile      string
	ndesTTL          time.Duration
	ndesTTLGiven     bool // on the command line, in the environment or the config file

	caReload time.Duration

	// Read only when a CA is created: root.key is then encrypted.
	rootKeyPassphraseFile string

	estListen       string
	estServerNames  nameList
	tlsCert         string
	tlsKey          string
	tlsMinVersion   string
	tlsMaxVersion   string
	estClientCAFile string
	estRetryAfter   time.Duration
	weakKeysFiles   nameList

	// Bounds on unauthenticated work, per listener (see server.Limits).
	maxConns          int
	maxInflight       int
	maxQueued         int
	queueWait         time.Duration
	rateLimit         float64
	rateBurst         int
	trustedProxy      string
	readHeaderTimeout time.Duration

	revocation revocationFlags

	pkcs11 pkcs11Flags // the HSM holding the CA keys (pkcs11.go)

	pprof pprofFlags      // profiling endpoints on loopback (pprof.go)
	rsa   rsaBackendFlags // who does RSA operations (rsabackend.go)
}

// nameList is a comma-separated list flag whose default is replaced, not
// extended, by the first value given.
type nameList struct {
	names []string
	set   bool
}

func (l *nameList) String() string { return strings.Join(l.names, ",") }

// IsListFlag lets the config file give it as a TOML array.
func (l *nameList) IsListFlag() bool { return true }

func (l *nameList) Set(v string) error {
	if !l.set {
		l.names, l.set = nil, true
	}
	for _, n := range strings.Split(v, ",") {
		if n = strings.TrimSpace(n); n != "" {
			l.names = append(l.names, n)
		}
	}
	return nil
}

// challengeFileName is where a generated static challenge is kept.
const challengeFileName = "challenge.txt"

func newServeFlags(e env) (*flag.FlagSet, *serveFlags) {
	f := &serveFlags{}
	fs := newFlagSet(e, "serve", "serve [flags]")
	f.register(fs)
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address to listen on for SCEP (HTTP)")
	fs.StringVar(&f.challenge, "challenge", "", "static challenge password (prefer --challenge-file or SCEPTER_CHALLENGE: flags show in ps)")
	fs.StringVar(&f.challengeFile, "challenge-file", "", "file holding the static challenge password")
	fs.StringVar(&f.challengeProfile, "challenge-profile", "", "the one profile the static challenge is valid at (default: --default-profile)")
	fs.StringVar(&f.caKeyType, "ca-key-type", "p256", "key type of a new CA: p256, p384, rsa2048, rsa3072, rsa4096")
	fs.StringVar(&f.rootKeyPassphraseFile, "root-key-passphrase-file", "", "when a new CA is created, encrypt its root.key with the first line of this file, or else with "+rootKeyPassphraseEnv+" (ignored for an existing CA: serve never uses the root key; ca rollover and ca root export take their own --root-key-passphrase-file)")
	fs.StringVar(&f.scepRA, "scep-ra", "separate", "SCEP RA: 'separate' (an RSA-2048 RA certificate) or 'ca' (the issuing CA itself; RSA CAs only)")
	fs.BoolVar(&f.allowInsecureDES, "allow-insecure-des", false, "accept single-DES request envelopes from legacy clients (RFC 8894 forbids it; replies use DES3)")
	fs.DurationVar(&f.maxClockSkew, "max-clock-skew", scepserver.DefaultMaxClockSkew, "largest accepted difference between a request's signingTime and the server clock, at most 720h (each nonce is kept for twice it)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.webhookURL, "webhook-url", "", "challenge webhook for profiles with challenge = \"webhook\" (see docs/webhook.md)")
	fs.StringVar(&f.webhookSecretFile, "webhook-secret-file", "", "file holding the HMAC key that signs webhook requests")
	fs.DurationVar(&f.webhookTimeout, "webhook-timeout", 5*time.Second, "how long to wait for the webhook's answer")
	f.notify.register(fs)
	fs.StringVar(&f.ndesUser, "ndes-user", "", "user name for the NDES-compatible password page /certsrv/mscep_admin/ (off when empty)")
	fs.StringVar(&f.ndesPassword, "ndes-password", "", "its password (prefer SCEPTER_NDES_PASSWORD or --ndes-password-file)")
	fs.StringVar(&f.ndesPasswordFile, "ndes-password-file", "", "file holding the NDES page password")
	fs.StringVar(&f.ndesProfile, "ndes-profile", "", "profile the NDES page's one-time passwords are bound to (default: the default profile)")
	fs.DurationVar(&f.ndesTTL, "ndes-ttl", 60*time.Minute, "lifetime of one-time passwords from the NDES page, from 1m to 720h")
	fs.DurationVar(&f.caReload, "ca-reload-interval", 30*time.Second, "how often to look for a next CA made by 'scepter ca rollover', and read the issuing CAs the root's CRL revokes")
	fs.StringVar(&f.estListen, "est-listen", "127.0.0.1:8443", "address of the HTTPS listener (EST, and SCEP over HTTPS); 'off' to disable")
	f.estServerNames = nameList{names: []string{"localhost", "127.0.0.1"}}
	fs.Var(&f.estServerNames, "est-server-name", "names (DNS or IP, comma-separated) of the HTTPS certificate our CA issues; the default also takes the host of --est-listen, unless it is a wildcard (names given replace it all)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "HTTPS certificate chain (PEM) to use instead of one our CA issues")
	fs.StringVar(&f.tlsKey, "tls-key", "", "its private key (PEM)")
	fs.StringVar(&f.tlsMinVersion, "tls-min-version", "1.2", "lowest TLS version of the HTTPS listener: 1.2 or 1.3")
	fs.StringVar(&f.tlsMaxVersion, "tls-max-version", "1.3", "highest TLS version of the HTTPS listener: 1.2 or 1.3")
	fs.Var(&f.weakKeysFiles, "weak-keys-file", "RSA weak-key blocklists to refuse beyond the built-in ones (openssl-blacklist lines or boulder's JSON; comma-separated), e.g. the complete Debian CVE-2008-0166 lists")
	fs.StringVar(&f.estClientCAFile, "est-client-ca-file", "", "PEM bundle of manufacturer CAs whose client certificates (IDevIDs) may enroll at profiles with est_manufacturer_auth")
	fs.DurationVar(&f.estRetryAfter, "est-retry-after", estserver.DefaultRetryAfter, "how long EST clients are told to wait (Retry-After) while a request awaits approval")
	fs.IntVar(&f.maxConns, "max-conns", server.DefaultMaxConns, "open connections per listener; when full, a new one replaces one silent for 1s, without a complete request for 2s, or idle between requests for 250ms; when none may go, the next response closes its connection (Connection: close)")
	fs.IntVar(&f.maxInflight, "max-inflight", server.DefaultMaxInflight, "requests handled at once per listener; beyond it they wait (--max-queued, --queue-wait), then 503 with Retry-After")
	fs.IntVar(&f.maxQueued, "max-queued", server.DefaultMaxQueued, "requests per listener that may wait for one of --max-inflight, first come first served; beyond it: 503 with Retry-After at once; 0: no waiting")
	fs.DurationVar(&f.queueWait, "queue-wait", server.DefaultQueueWait, "how long a request waits for one of --max-inflight before 503 with Retry-After")
	fs.Float64Var(&f.rateLimit, "rate-limit", server.DefaultRateLimit, "requests per second per client address (token bucket, per node); beyond it: 429 with Retry-After; 0 disables")
	fs.IntVar(&f.rateBurst, "rate-burst", server.DefaultRateBurst, "burst of --rate-limit: requests a client address may send at once")
	fs.StringVar(&f.trustedProxy, "trusted-proxy", "", "reverse proxies (CIDRs or addresses, comma-separated) whose X-Forwarded-For names the client; by default only the TCP peer counts")
	fs.DurationVar(&f.readHeaderTimeout, "read-header-timeout", 10*time.Second, "time a client has to send its request headers, and on HTTPS to finish the TLS handshake")
	f.revocation.register(fs)
	f.pkcs11.register(fs)
	f.pprof.register(fs)
	f.rsa.register(fs)
	return fs, f
}

func cmdServe(ctx context.Context, e env, args []string) error {
	fs, f := newServeFlags(e)
	if err := parseFlags(fs, e, args, 0, f.sections()); err != nil {
		return err
	}
	f.ndesTTLGiven = settingGiven(fs, e, "ndes-ttl")
	if !keys.ValidKeyType(f.caKeyType) {
		return usageError{fmt.Sprintf("--ca-key-type %q: want p256, p384, rsa2048, rsa3072 or rsa4096", f.caKeyType)}
	}
	if f.scepRA != "separate" && f.scepRA != "ca" {
		return usageError{fmt.Sprintf("--scep-ra %q: want separate or ca", f.scepRA)}
	}
	if err := f.rsa.check(); err != nil {
		return err
	}
	if err := f.pprof.check(); err != nil {
		return err
	}
	if err := f.checkListenersAndIntervals(); err != nil {
		return err
	}
	log, err := newLogger(e, f.logLevel, f.logFormat)
	if err != nil {
		return usageError{err.Error()}
	}
	// Before any key or secret is read: a core file of serve would hold
	// them all.
	if err := stopCoreDumps(); err != nil {
		log.Warn("could not turn core dumps off (PR_SET_DUMPABLE): a crash may write the CA's keys to a core file", "err", err)
	}
	for flag, addr := range map[string]string{"--listen": f.listen, "--est-listen": f.estListen} {
		if host, _, _ := net.SplitHostPort(addr); addr != "off" && (host == "" || net.ParseIP(host).IsUnspecified()) {
			log.Warn("listening on every interface: devices and anyone else on the network can reach it; give a host to listen on one", "flag", flag, "address", addr)
		}
		if _, port, _ := net.SplitHostPort(addr); port == "0" && flag == "--listen" && f.revocation.publicURL == "" {
			log.Warn("--listen has port 0: a random port, which the CRL and OCSP URLs in every certificate name and the next start changes; give a port, or --public-url", "address", addr)
		}
	}
	tuneGC(e, log)
	if err := f.revocation.check(); err != nil {
		return err
	}
	// The profiles and what they need are checked before the data
	// directory, the store or the CA is touched: a refused configuration
	// leaves nothing behind (no CA, no CRL) to be confused with a start.
	profiles, err := f.checkProfiles()
	if err != nil {
		return err
	}
	// So are the settings that files and URLs give (the static challenge,
	// the NDES password, the webhooks, notifications, TLS): a typo in one
	// would otherwise be found only after a new CA was made.
	in, err := f.readInputs(e, profiles, log)
	if err != nil {
		return err
	}
	// And the request limits and the PKCS#11 settings.
	clock := pki.SystemClock{}
	guard, err := f.guard(clock, log)
	if err != nil {
		return err
	}
	// A malformed PKCS#11 setting is a usage error before anything is
	// opened or created.
	if f.pkcs11.given() {
		if _, err := f.pkcs11.config(); err != nil {
			return err
		}
	}
	ignoreHangUp(ctx, log, "logs go to stdout and stderr, and the CA is reloaded every --ca-reload-interval; stop the server with SIGTERM")
	if f.allowInsecureDES {
		log.Warn("--allow-insecure-des is set: single-DES request envelopes are accepted; RFC 8894 forbids this, use it only for legacy clients")
	}
	if err := makeDataDir(f.dataDir); err != nil {
		return err
	}
	if err := secureDataDir(f.dataDir, log); err != nil {
		return err
	}
	unlockDataDir, err := lockDataDir(f.dataDir)
	if errors.Is(err, errNoLocks) {
		log.Warn(err.Error(), "data_dir", f.dataDir)
	} else if err != nil {
		return err
	} else {
		// Held alone: its ID names this server's notification leases.
		f.notify.nodeDir = f.dataDir
	}
	defer unlockDataDir()
	// The sockets open before anything is made: a port taken stops a
	// first start before it creates a CA and a challenge whose banner it
	// would never print.
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	var tlsLn net.Listener
	if f.estListen != "off" {
		if tlsLn, err = net.Listen("tcp", f.estListen); err != nil {
			return fmt.Errorf("listen (HTTPS): %w", err)
		}
		defer tlsLn.Close()
	}
	// Before the store is made: a token that is away, refuses its PIN or
	// is no PKCS#11 library stops the start before it leaves a new
	// database behind (r72).
	token, err := f.pkcs11.open()
	if err != nil {
		return err
	}
	if token != nil {
		defer token.Close()
		log.Info("PKCS#11 token opened", "token", token.Describe())
	}
	// Before the store is made: a pin cannot name a CA not made yet.
	if err := checkIssuerPins(profiles, nil, time.Time{}, filepath.Join(f.dataDir, "ca")); err != nil {
		return err
	}
	if err := refuseLostSQLite(f.store.url, f.dataDir); err != nil {
		return err
	}
	// Before migrating: a start refused for a store behind this node's
	// CRLs leaves it at the schema the older scepter it came from serves.
	if err := f.revocation.refuseUnmigratedBehind(ctx, f.store.url, f.dataDir, log); err != nil {
		return err
	}
	db, err := openServerStore(ctx, f.store.url, f.dataDir, log, e.newSQLite)
	if err != nil {
		return err
	}
	defer db.Close()
	log.Info("store opened", "store", f.storeName())
	// On a store that records a CA, this node serves that CA or none: it
	// never creates a second one. On a shared store that records none,
	// nodes starting together take turns until the first has recorded
	// its CA (unlockCASetup, after caSync.Sync below).
	caRecorded, unlockCASetup, err := cashare.Begin(ctx, db, f.dataDir)
	if err != nil {
		return err
	}
	defer unlockCASetup()
	// After Begin: on an empty store, a node that started at the same
	// moment writes its first records and the head while this one waits,
	// and a look between the two reads would take them for a trail whose
	// head was removed.
	if err := audit.HeadIntact(ctx, db); err != nil {
		return err
	}
	// An edited record is said at once, not months later at an audit; the
	// server still starts (a fleet would stop issuing over one old record).
	if p, err := audit.CheckTail(ctx, db, audit.TailChecked); err != nil {
		return err
	} else if p != nil {
		log.Error("the audit trail's newest records do not verify: run 'scepter audit verify'", "record", p.ID, "problem", p.Error())
	}
	if f.store.url != "" && !caRecorded {
		if err := refuseAbandonedSQLite(ctx, f.dataDir); err != nil {
			return err
		}
	}
	wrapKey, err := f.rsa.wrapKey(log)
	if err != nil {
		return err
	}
	// A new CA's RA certificate has its serial reserved in the store
	// before it is signed, as every issuance's; RecordRACertificates
	// records it below.
	initOpts := ca.InitOptions{KeyType: f.caKeyType, RAMode: f.scepRA, RootKeyPassphrase: f.rootKeyPassphrase(e), Token: token, WrapKey: wrapKey,
		ReserveRA: raSerialReserve(db, clock), GenerateKey: e.generateKey}
	// A next CA discarded on another node is not promoted by this first
	// load either, though its switch time passed while this node was
	// stopped (its keys may be destroyed).
	discarded, err := db.DiscardedCAGenerations(ctx)
	if err != nil {
		return fmt.Errorf("reading the discarded CA generations in the store: %w", err)
	}
	for _, d := range discarded {
		initOpts.DiscardedNext = append(initOpts.DiscardedNext, d.IssuerID)
	}
	// That load leaves such a copy aside without the Syncer noticing: the
	// warning the discard promised is given here, at every start.
	if d, ok, err := discardedNextOnDisk(f.dataDir, discarded); err != nil {
		log.Warn("reading this node's next issuing CA", "dir", filepath.Join(f.dataDir, "ca", ca.NextDir), "error", err)
	} else if ok {
		log.Warn(discardedNextWarning(d), "issuer", d.IssuerID)
	}
	authority, created, err := ca.LoadOrCreate(f.dataDir, initOpts, clock)
	if err != nil {
		return err
	}
	if err := checkIssuerPins(profiles, authority, clock.Now(), ""); err != nil {
		return err
	}
	if token != nil && !authority.KeysInToken() {
		log.Warn("a PKCS#11 token was given, but the CA's keys are files in the data directory: they stay files (the token holds the next CA's keys only after a rollover made with it)",
			"token", token.Describe(), "dir", filepath.Join(f.dataDir, "ca"))
	}
	// A flag left at its default asked for nothing: an RSA CA in RA mode
	// ca must not be told at every start that p256 and separate were
	// ignored.
	asked := initOpts
	if f.caKeyType == keys.P256 {
		asked.KeyType = ""
	}
	if f.scepRA == ca.RAModeSeparate {
		asked.RAMode = ""
	}
	for _, msg := range authority.IgnoredOptions(asked) {
		log.Info("existing CA kept: " + msg)
	}
	rootKeyLines := f.rootKeyNotice(created, log)
	// Every part of the server reaches the store through the metrics' error
	// counter; /metrics also counts the inventory at scrape time.
	m := metrics.New(metrics.Options{Clock: clock, Log: log})
	st := m.Store(db)
	if err := m.Inventory(st); err != nil {
		return err
	}
	if err := m.Limits(guard.Stats); err != nil {
		return err
	}
	if created {
		err := st.AppendAudit(ctx, pki.AuditEvent{Time: clock.Now(), Type: pki.EventCAInitialized, Actor: "system", Outcome: "success",
			Detail: fmt.Sprintf("root %s, issuing CA %s, RA %s", authority.RootFingerprint(), authority.Issuer.Cert.Subject, authority.RA.Cert.Subject)})
		if err != nil {
			// Not left for the next start to take up as a CA the store
			// never saw made (r78).
			return ca.DiscardCreated(f.dataDir, initOpts, fmt.Errorf("audit: %w", err))
		}
	}
	host, _ := os.Hostname()
	caSync := &cashare.Syncer{Store: st, Authority: authority, Clock: clock, Node: host + " " + f.listen, Log: log}
	if err := caSync.Sync(ctx); err != nil {
		return err
	}
	unlockCASetup()
	// A node joining a CA that a shared store records does not make up a
	// static challenge of its own: devices behind a load balancer would
	// get another node's. The operator passes the same --challenge to
	// every node, or uses one-time challenges, which the store shares.
	challenge, generated, challengeCreated, err := f.resolveChallenge(in.challenge, f.store.url != "" && caRecorded && !created)
	if err != nil {
		return err
	}
	f.notify.observer = m
	stopNotify, err := f.notify.startNotifier(ctx, st, profiles, in.notifyChannels, clock, log)
	if err != nil {
		return err
	}
	defer stopNotify()
	// The loops that run beside the listeners (CRLs, responder
	// certificates, the schema watch, the CA's upkeep) end before the
	// store, the token and the notifier close, and before serve returns:
	// none writes in the data directory after that. A loop stuck past
	// backgroundGrace (a token that stopped answering) is logged and left.
	bgCtx, stopBackground := context.WithCancel(ctx)
	var background sync.WaitGroup
	defer func() { stopBackground(); waitBackground(&background, backgroundGrace, log) }()
	// The public URL that goes into every certificate names the plain
	// listener's port.
	publicURL, err := f.revocation.resolvePublicURL(ln.Addr(), log)
	if err != nil {
		return err
	}
	if err := savePublicURL(f.dataDir, publicURL); err != nil {
		return err
	}
	rev, err := f.revocation.newPublisher(ctx, f.dataDir, st, authority, clock, log)
	if err != nil {
		return err
	}
	cfg := enroll.Config{StaticChallenge: challenge, StaticChallengeProfile: f.challengeProfile, Profiles: profiles, DefaultProfile: f.defaultProfile,
		PublicURL: publicURL, CRLs: rev.publisher, Observer: m, IssuerReady: caSync.Ready, Webhook: in.webhook, ManufacturerRoots: in.manufacturerRoots,
		IssuanceGate: issuanceGate(db)}
	if in.weakKeys != nil {
		cfg.WeakKeys = in.weakKeys
	}
	// The responder and HTTPS certificates are made below, by svc; no
	// enrollment is served before they are.
	var tlsCert *server.Certificate
	cfg.ServerKeys = func() []enroll.ServerKey { return serverRoleKeys(authority, rev.delegates, tlsCert) }
	svc, err := enroll.New(st, authority, clock, log, cfg)
	if err != nil {
		return err
	}
	// An issuing CA the root revoked while the server was stopped
	// authenticates nothing from the first request on.
	applyRootCRL(ctx, st, authority, log)
	forEachPin(profiles, func(name string, p pki.Profile) error {
		if iss, err := enroll.PinnedIssuer(authority.Issuers(), p); err == nil && slices.Contains(authority.RevokedIssuers(), iss.ID) {
			log.Warn("a profile is pinned to an issuing CA the root's CRL revokes: its enrollments are answered unavailable; pin another, or remove the pin", "profile", name, "issuer_id", iss.ID)
		}
		return nil
	})
	raRecords := newRARecorder(svc.RecordRACertificates, log)
	raRecords.run(ctx)
	raKeeper := newRAKeeper(svc, authority, f.dataDir, clock, log, host+" "+f.listen)
	// The revoked RA of a next CA discarded on any node is not replaced.
	raKeeper.discards = st
	// A node refused issuance signs no new RA either.
	raKeeper.gate = cfg.IssuanceGate
	// Its serial reserved before the CA signs it, as every issuance's.
	authority.SetRAReserve(raSerialReserve(st, clock))
	raKeeper.check(ctx) // a revocation made while the server was stopped
	scepOpts := scepserver.Options{AllowInsecureDES: f.allowInsecureDES, MaxClockSkew: f.maxClockSkew}
	if f.ndesUser != "" {
		// NDES's SCEP path serves the profile its page's passwords are
		// bound to.
		scepOpts.NDESProfile = f.ndesProfile
	}
	scepHandler, err := scepserver.New(scepService{Service: svc, ras: raKeeper, lackedNext: caSync.LackedNextRA, clock: clock}, clock, log, scepOpts)
	if err != nil {
		return err
	}
	if err := rev.startResponder(ctx, &f.revocation, f.dataDir, st, authority, svc, clock, log); err != nil {
		return err
	}
	if err := m.OCSP(rev.responder); err != nil {
		return err
	}
	checks := append([]health.Check{health.Store(st), health.AuditTrail(st), health.IssuerKey(authority, clock), health.RAKey(authority, clock, raKeeper),
		health.Check{Name: "CA", Run: caSync.Ready}, rev.publisher.ReadinessCheck()}, startSchemaWatch(bgCtx, &background, db, log)...)
	handlers := server.Handlers{SCEP: scepHandler, CRL: crl.NewHandler(rev.publisher, authority), OCSP: rev.responder, Metrics: m,
		Health: health.New(health.Options{Clock: clock, Log: log}, checks...)}
	adm := admin.New(st, clock, log, profiles, f.defaultProfile)
	if handlers.NDES, err = f.ndes(svc, adm, st, authority, in.ndesPassword, log); err != nil {
		return err
	}
	var tlsCertIssued bool
	if f.estListen != "off" {
		handlers.EST = estserver.New(estService{Service: svc, lackedNext: caSync.LackedNextCA, clock: clock}, log, estserver.Options{RetryAfter: f.estRetryAfter})
		if tlsCert, tlsCertIssued, err = f.tlsCertificate(ctx, in.tlsCert, svc, "system:"+host, clock, log); err != nil {
			return err
		}
	}
	// The responder and HTTPS certificates loaded from the data directory
	// may be missing from a restored store, as the RAs may: recorded
	// before the first request, and again at every CA reload.
	var managedTLS *server.Certificate
	if in.tlsCert == nil {
		managedTLS = tlsCert
	}
	ownRecords := newOwnCertRecorder(func(ctx context.Context) error {
		return recordServerCertificates(ctx, svc, authority, rev.delegates, managedTLS)
	}, log)
	ownRecords.run(ctx)
	var web *webAdmin
	if tlsCert != nil {
		if web, err = f.newWebAdmin(ctx, st, adm, svc, authority, rev, clock, log); err != nil {
			return err
		}
		handlers.API, handlers.Console = web.api, web.console
	}
	// The plain listener's refusal of the NDES page names the HTTPS port.
	if tlsCert != nil {
		_, handlers.HTTPSPort, _ = net.SplitHostPort(tlsLn.Addr().String())
		handlers.HTTPSHost = server.ListenerHost(tlsLn.Addr())
		handlers.HTTPSNames = reachingNames(ctx, f.httpsNames(tlsCert), handlers.HTTPSHost)
	}
	closeListeners := func() {
		ln.Close()
		if tlsLn != nil {
			tlsLn.Close()
		}
	}
	plainMux, err := server.PlainMux(handlers)
	if err != nil {
		closeListeners()
		return err
	}
	plainSrv := newHTTPServer(m.Instrument("http", plainMux), f.readHeaderTimeout, log)
	servers := []*http.Server{plainSrv}
	// Every listener's connections and requests are bounded by the guard.
	listeners := []net.Listener{guard.Protect(plainSrv, ln)}
	base := "http://" + ln.Addr().String()
	lines := []string{
		"scepter " + version + " listening on " + ln.Addr().String(),
		"SCEP URL:            " + base + "/scep",
	}
	if tlsCert != nil {
		tlsMux, err := server.TLSMux(handlers)
		if err != nil {
			closeListeners()
			return err
		}
		tlsSrv := f.tlsServer(m.Instrument("https", tlsMux), tlsCert, in.tlsMinVersion, in.tlsMaxVersion, log)
		// TLS over the bounded listener: handshakes count as connections.
		servers = append(servers, tlsSrv)
		listeners = append(listeners, tls.NewListener(guard.Protect(tlsSrv, tlsLn), tlsSrv.TLSConfig))
		lines = append(lines, "EST URL:             https://"+tlsLn.Addr().String()+"/.well-known/est")
		_, toJournal := e.lookupEnv("JOURNAL_STREAM")
		lines = append(lines, web.lines("https://"+tlsLn.Addr().String(), toJournal)...)
		leaf := tlsCert.Leaf()
		how := "configured"
		if f.tlsCert == "" {
			how = "issued by this CA, renewed automatically"
			if tlsCertIssued {
				how = "newly " + how
			}
		}
		lines = append(lines, fmt.Sprintf("HTTPS certificate:   %s, valid until %s (%s)", bannerCertNames(leaf),
			leaf.NotAfter.UTC().Format(time.RFC3339), how))
	} else {
		lines = append(lines, consoleOffLine)
	}
	if f.ndesUser != "" {
		lines = append(lines, ndesPageLine(base, tlsCert != nil, tlsLn, f.ndesUser, cmp.Or(f.ndesProfile, f.defaultProfile)))
	}
	issuer, _ := authority.Active(clock.Now())
	lines = append(lines,
		"CRL:                 "+enroll.CRLURL(publicURL, issuer.ID),
		"OCSP:                "+enroll.OCSPURL(publicURL),
		"Root CA fingerprint: "+authority.RootFingerprint(),
		"Data directory:      "+f.dataDir,
		"Store:               "+f.storeName())
	if created {
		lines = append(lines, fmt.Sprintf("Created a new CA (%s) in %s", f.caKeyType, filepath.Join(f.dataDir, "ca")))
	}
	if token != nil {
		lines = append(lines, "CA keys:             "+caKeysWhere(token.Describe(), authority.KeysInToken(), filepath.Join(f.dataDir, "ca")))
	}
	lines = append(lines, rootKeyLines...)
	staticProfile := f.challengeProfile
	if staticProfile == "" {
		staticProfile = f.defaultProfile
	}
	staticScope := staticChallengeScope(profiles, staticProfile)
	if challenge != "" && generated == "" && strings.Contains(staticScope, "nowhere") {
		log.Warn("the static challenge (--challenge, --challenge-file or SCEPTER_CHALLENGE) is " + staticScope)
	}
	if w := staticOnlyElsewhere(profiles, staticProfile); w != "" {
		log.Warn(w)
	}
	if w := keygenHeldForApproval(profiles); w != "" {
		log.Warn(w)
	}
	if w := thresholdsNotUnderValidity(profiles); w != "" && len(in.notifyChannels) > 0 {
		log.Warn(w)
	}
	_, toJournal := e.lookupEnv("JOURNAL_STREAM")
	line, warning := challengeBanner(challengeState{challenge: challenge, generated: generated, created: challengeCreated,
		scope: staticScope, toJournal: toJournal, sharedStore: f.store.url != ""})
	if warning != "" {
		log.Warn(warning, "file", generated)
	}
	if line != "" {
		lines = append(lines, line)
	}
	// Before the start is recorded: a start that fails here did not happen.
	pprofLines, stopPprof, err := f.pprof.start(log)
	if err != nil {
		closeListeners()
		return err
	}
	defer stopPprof()
	if err := recordStart(ctx, st, thisBuild, fs, profiles, clock, ln, tlsLn, publicURL, f.storeName()); err != nil {
		return err
	}
	lines = append(lines, pprofLines...)
	// Certificate names and a token's label are not ours to trust.
	fmt.Fprint(e.stdout, printableLines(joinLines(lines...)))

	background.Go(func() {
		purgeSchedule(bgCtx, time.After, func() {
			if err := st.PurgeExpired(bgCtx, clock.Now()); err != nil {
				log.Warn("purge expired nonces and requests", "err", err)
			}
		})
	})
	background.Go(func() {
		for {
			// Also just after a switch the store schedules: a node that
			// lacks the next CA's keys stops being ready then, not up
			// to an interval later.
			select {
			case <-bgCtx.Done():
				return
			case <-time.After(caSync.NextCheck(clock.Now(), f.caReload)):
			}
			reloadCA(authority, clock, log, rev.issuersChanged)
			applyRootCRL(bgCtx, st, authority, log)
			raRecords.run(bgCtx) // a gated node's refusal said once per RA
			ownRecords.run(bgCtx)
			// Sync logs what stops this node from serving as the
			// store's CA and keeps it for /readyz; a store error is only
			// logged.
			if err := caSync.Sync(bgCtx); err != nil && caSync.Ready(bgCtx) == nil {
				log.Warn("comparing the CA with the store", "err", err)
			}
		}
	})
	rev.gate = cfg.IssuanceGate // as the RA keeper's
	rev.run(bgCtx, &background, log)
	// The CA's own certificates, a while before they expire: at start and
	// once a day.
	// The SCEP RA is renewed first, on SQLite, when it is due; the root's
	// CRL is warned about too, once one was signed by hand.
	sharedStore := f.store.url != ""
	maintainCA := func() {
		if raRenewalDue(authority, clock.Now(), sharedStore) {
			autoRenewRA(bgCtx, st, authority, svc, f.dataDir, token, e.generateKey, clock, "system:"+host+" "+f.listen, log)
		}
		warnCAExpiry(authority, f.dataDir, clock.Now(), sharedStore, log)
		if w := rootCRLWarning(bgCtx, st, authority, clock.Now()); w != "" {
			log.Warn(w)
		}
	}
	maintainCA()
	background.Go(func() { every(bgCtx, 24*time.Hour, maintainCA) })
	// Every minute, as the HTTPS certificate: a revoked RA is replaced.
	background.Go(func() { every(bgCtx, time.Minute, func() { raKeeper.check(bgCtx) }) })
	if web != nil {
		// Sends of API tokens over plain HTTP that the once-a-minute
		// record held back are recorded soon after their minute ends.
		background.Go(func() { every(bgCtx, 10*time.Second, func() { web.auth.FlushHeldClear(bgCtx) }) })
	}
	if tlsCert != nil {
		// Every minute: a revoked certificate (its key leaked) is replaced
		// within one; otherwise the look is one store read.
		gated := &gateWatch{gate: cfg.IssuanceGate, log: log, what: "renewing the HTTPS certificate"}
		background.Go(func() {
			every(bgCtx, time.Minute, func() {
				if gated.closed() {
					return // the certificate in use serves meanwhile
				}
				if err := tlsCert.RenewIfDue(bgCtx); err != nil {
					log.Error("renewing the HTTPS certificate", "err", err)
				}
			})
		})
	}
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { errc <- srv.Serve(listeners[i]) }()
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for _, srv := range servers {
		if err := srv.Shutdown(shutdownCtx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// recordStart puts the node's start in the audit trail, with its build
// (the commit, when the toolchain stamped one) and a digest of its
// effective configuration (secrets left out). A server that cannot write
// its audit trail does not serve.
func recordStart(ctx context.Context, st interface {
	AppendAudit(context.Context, ...pki.AuditEvent) error
}, build buildStamp, fs *flag.FlagSet, profiles map[string]pki.Profile, clock pki.Clock, ln, tlsLn net.Listener, publicURL, storeName string) error {
	digest, err := configDigest(fs, profiles)
	if err != nil {
		return err
	}
	https := ""
	if tlsLn != nil {
		https = tlsLn.Addr().String()
	}
	fields := map[string]string{"version": build.version, "listen": ln.Addr().String(), "https": https,
		"public_url": publicURL, "store": storeName, "config_sha256": digest}
	if build.revision != "" {
		fields["vcs_revision"], fields["vcs_modified"] = build.revision, build.modified
	}
	detail, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	err = st.AppendAudit(ctx, pki.AuditEvent{Time: clock.Now(), Type: pki.EventServerStarted, Actor: "system:" + host,
		Outcome: "success", Detail: string(detail)})
	if err != nil {
		return fmt.Errorf("audit: recording the start: %w", err)
	}
	return nil
}

// readTimeout bounds reading a whole request, body included.
const readTimeout = 30 * time.Second

// maxQueueWait bounds --queue-wait well inside the write timeout, which
// runs from the request's start, so that a request that waited still has
// time to be handled and answered.
const maxQueueWait = 20 * time.Second

// newHTTPServer is one listener's server, with bounded reads and headers.
func newHTTPServer(h http.Handler, readHeaderTimeout time.Duration, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler: h,
		// Also bounds the TLS handshake: Go's server gives it the
		// smallest of these timeouts.
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		// Room for certmonger's GET PKIOperation query strings (RSA-4096
		// requests exceed 6 KB), bounded all the same.
		MaxHeaderBytes: 128 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// tlsCertificate is the HTTPS listener's certificate: the configured pair
// (static, read by readInputs), or one our CA issues (DATA/tls) and renews,
// revoking the one it replaces as actor (this node).
func (f *serveFlags) tlsCertificate(ctx context.Context, static *server.Certificate, svc *enroll.Service, actor string, clock pki.Clock, log *slog.Logger) (*server.Certificate, bool, error) {
	if static != nil {
		return static, false, nil
	}
	return server.ManagedCertificate(ctx, filepath.Join(f.dataDir, "tls"), f.serverNames(), svc, actor, clock, log)
}

// serverNames are the names of the HTTPS certificate our CA issues:
// --est-server-name's, or by default localhost, 127.0.0.1 and the host
// --est-listen names when it is neither a wildcard nor one of those (a
// server listening on [::1] or 192.0.2.7 is reached by that address, and
// its certificate must say so).
func (f *serveFlags) serverNames() []string {
	names := f.estServerNames.names
	if f.estServerNames.set {
		return names
	}
	host, _, err := net.SplitHostPort(f.estListen)
	if err != nil || host == "" || slices.Contains(names, host) {
		return names
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return names
	}
	return append(slices.Clone(names), host)
}

// tlsServer is the HTTPS listener's server, with its TLS configuration.
func (f *serveFlags) tlsServer(h http.Handler, cert *server.Certificate, minVersion, maxVersion uint16, log *slog.Logger) *http.Server {
	srv := newHTTPServer(h, f.readHeaderTimeout, log)
	srv.TLSConfig = server.TLSConfig(cert.GetCertificate, minVersion, maxVersion)
	return srv
}

// guard bounds the unauthenticated work of every listener: open
// connections, requests in flight, requests per client address.
// checkListenersAndIntervals refuses addresses and intervals that would
// start a server nobody meant: an empty address listens on a random port
// of every interface (--listen= or listen = "" does that); a CA
// reload interval of 0 spins a core;
// a clock skew of 0 or less was silently the widest one.
func (f *serveFlags) checkListenersAndIntervals() error {
	for flag, addr := range map[string]string{"--listen": f.listen, "--est-listen": f.estListen} {
		if flag == "--est-listen" && addr == "off" {
			continue
		}
		_, port, err := net.SplitHostPort(addr)
		if err != nil || port == "" {
			return usageError{fmt.Sprintf("%s %q: want HOST:PORT, e.g. 127.0.0.1:8080 or 0.0.0.0:8080", flag, addr)}
		}
		if _, err := net.LookupPort("tcp", port); err != nil {
			return usageError{fmt.Sprintf("%s %q: want a port from 1 to 65535", flag, addr)}
		}
	}
	switch {
	case f.caReload < 100*time.Millisecond:
		return usageError{fmt.Sprintf("--ca-reload-interval %s: want at least 100ms (default 30s)", f.caReload)}
	case f.maxClockSkew <= 0 || f.maxClockSkew > scepserver.MaxClockSkewLimit:
		return usageError{fmt.Sprintf("--max-clock-skew %s: want a positive duration of at most %s (default %s)", f.maxClockSkew, scepserver.MaxClockSkewLimit, scepserver.DefaultMaxClockSkew)}
	case math.IsNaN(f.rateLimit) || math.IsInf(f.rateLimit, 0):
		return usageError{fmt.Sprintf("--rate-limit %v: want a number of requests per second (0 disables it)", f.rateLimit)}
	}
	return nil
}

func (f *serveFlags) guard(clock pki.Clock, log *slog.Logger) (*server.Guard, error) {
	switch {
	case f.maxConns < 1:
		return nil, usageError{"--max-conns must be at least 1"}
	case f.maxInflight < 1:
		return nil, usageError{"--max-inflight must be at least 1"}
	case f.maxQueued < 0:
		return nil, usageError{"--max-queued must not be negative (0: no waiting)"}
	case f.queueWait < 0 || f.queueWait > maxQueueWait:
		return nil, usageError{fmt.Sprintf("--queue-wait must be from 0 to %s", maxQueueWait)}
	case f.rateLimit < 0:
		return nil, usageError{"--rate-limit must not be negative (0 disables it)"}
	case f.rateLimit > 0 && f.rateBurst < 1:
		return nil, usageError{"--rate-burst must be at least 1"}
	case f.readHeaderTimeout <= 0 || f.readHeaderTimeout > readTimeout:
		return nil, usageError{fmt.Sprintf("--read-header-timeout must be more than 0 and at most %s", readTimeout)}
	}
	proxies, err := server.ParsePrefixes(f.trustedProxy)
	if err != nil {
		return nil, usageError{"--trusted-proxy: " + err.Error()}
	}
	for _, p := range proxies {
		if p.Bits() == 0 {
			log.Warn("--trusted-proxy trusts every address: any client can name itself in X-Forwarded-For and escape its rate limit and lockouts; name the proxies", "prefix", p.String())
		}
	}
	return server.NewGuard(server.Limits{MaxConns: f.maxConns, MaxInflight: f.maxInflight, MaxQueued: f.maxQueued,
		QueueWait: f.queueWait, MonitoringPaths: append(health.Paths(), metrics.Path), RateLimit: f.rateLimit, RateBurst: f.rateBurst, TrustedProxies: proxies}, clock, log)
}

// checkIssuerPins refuses a profile whose issuer key names no issuing CA
// of a that it may pin at now (enroll.PinnableIssuers), or more than one;
// one that names the next CA, scheduled, is told it issues nothing before
// its switch. With caDir set (and a nil), before the CA is loaded, it
// refuses any pin when caDir holds no CA yet, rather than create one that
// the pin cannot name.
func checkIssuerPins(profiles map[string]pki.Profile, a *ca.Authority, now time.Time, caDir string) error {
	return forEachPin(profiles, func(name string, p pki.Profile) error {
		if caDir != "" {
			if _, err := os.Stat(filepath.Join(caDir, ca.RootCertFile)); errors.Is(err, fs.ErrNotExist) {
				return usageError{fmt.Sprintf("profile %q pins issuer %q, but %s holds no CA yet: a pin names an issuing CA that exists ('scepter ca show' lists them); start without it first, or import the CA's keys ('scepter ca import-keys')", name, p.Issuer, caDir)}
			}
			return nil
		}
		pinnable := enroll.PinnableIssuers(a, now)
		_, err := enroll.PinnedIssuer(pinnable, p)
		if err == nil {
			return nil
		}
		if next, _, scheduled := a.Next(now); scheduled {
			if _, nerr := enroll.MatchIssuerID([]string{next.ID}, p.Issuer); nerr == nil {
				at, _ := a.SwitchAt()
				ids := make([]string, len(pinnable))
				for i, iss := range pinnable {
					ids[i] = iss.ID
				}
				return usageError{fmt.Sprintf("profile %q: issuer %q names the next issuing CA %s, which issues nothing before its switch at %s (a discard may still undo it): "+
					"leave the pin out until then (from the switch, a profile without one issues from it), and pin it after the switch; or pin an issuing CA that issues now (%s; 'scepter ca show' lists them)",
					name, p.Issuer, next.ID, at.UTC().Format(time.RFC3339), strings.Join(ids, ", "))}
			}
		}
		return usageError{err.Error()}
	})
}

// forEachPin calls fn for each profile that pins an issuer, in name order,
// until fn returns an error, which it returns.
func forEachPin(profiles map[string]pki.Profile, fn func(name string, p pki.Profile) error) error {
	for _, name := range slices.Sorted(maps.Keys(profiles)) {
		if p := profiles[name]; p.Issuer != "" {
			if err := fn(name, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkProfiles returns the configured profiles, refusing a
// --challenge-profile or --ndes-profile that names none and a profile
// that needs a setting not given (--webhook-url, --est-client-ca-file). It
// reads no file and opens nothing, so that cmdServe can call it first.
func (f *serveFlags) checkProfiles() (map[string]pki.Profile, error) {
	profiles, err := f.profileSet()
	if err != nil {
		return nil, err
	}
	// What needs no CA, before a first start makes one.
	for _, name := range slices.Sorted(maps.Keys(profiles)) {
		if err := ca.CheckProfileSettings(profiles[name]); err != nil {
			return nil, usageError{strings.TrimPrefix(err.Error(), "ca: ")}
		}
	}
	if f.challengeProfile != "" {
		if _, ok := profiles[f.challengeProfile]; !ok {
			return nil, usageError{fmt.Sprintf("--challenge-profile %q is not a configured profile", f.challengeProfile)}
		}
	}
	if f.ndesUser != "" {
		p, ok := profiles[cmp.Or(f.ndesProfile, f.defaultProfile)]
		if !ok {
			return nil, usageError{fmt.Sprintf("--ndes-profile %q is not a configured profile", f.ndesProfile)}
		}
		// The page's passwords are one-time challenges.
		if err := admin.TakesOneTimeChallenges(p); err != nil {
			return nil, usageError{"--ndes-user: " + pki.ErrorMessage(err) + "; choose another with --ndes-profile"}
		}
	}
	if f.webhookURL == "" {
		if needed := profilesWhere(profiles, func(p pki.Profile) bool { return p.ChallengeMode == enroll.ChallengeWebhook }); len(needed) > 0 {
			return nil, usageError{fmt.Sprintf("profiles %v use the webhook challenge: set --webhook-url", needed)}
		}
	}
	if f.estClientCAFile == "" {
		if needed := profilesWhere(profiles, func(p pki.Profile) bool { return p.ManufacturerAuth }); len(needed) > 0 {
			return nil, usageError{fmt.Sprintf("profiles %v accept manufacturer certificates: set --est-client-ca-file", needed)}
		}
	}
	return profiles, nil
}

// profilesWhere names the profiles for which match holds, sorted so that
// a message naming them reads the same at every start.
func profilesWhere(profiles map[string]pki.Profile, match func(pki.Profile) bool) []string {
	var names []string
	for name, p := range profiles {
		if match(p) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// serveInputs are what serve reads from files and checks beyond the
// flags themselves, before it creates the data directory, the store or
// the CA (readInputs).
type serveInputs struct {
	challenge         string // the static challenge given; "" for the data directory's
	ndesPassword      string
	webhook           enroll.ChallengeVerifier
	manufacturerRoots *x509.CertPool
	weakKeys          *ca.WeakKeyFile
	notifyChannels    []notify.Channel
	// tlsCert is --tls-cert and --tls-key (nil: our CA issues one).
	tlsCert                      *server.Certificate
	tlsMinVersion, tlsMaxVersion uint16
}

// readInputs reads and checks every file and setting that cmdServe would
// otherwise meet only after creating the CA: a refused start then leaves
// no CA behind, which the next start would take for its own. It creates
// and writes nothing.
func (f *serveFlags) readInputs(e env, profiles map[string]pki.Profile, log *slog.Logger) (*serveInputs, error) {
	in := &serveInputs{}
	var err error
	if in.challenge, err = f.givenChallenge(); err != nil {
		return nil, err
	}
	if in.ndesPassword, err = f.ndesSecret(); err != nil {
		return nil, err
	}
	if err := refuseEnvAndFile(e, rootKeyPassphraseEnv, "root-key-passphrase-file", f.rootKeyPassphraseFile); err != nil {
		return nil, err
	}
	if in.webhook, err = f.webhook(log); err != nil {
		return nil, err
	}
	if in.manufacturerRoots, err = f.manufacturerRoots(); err != nil {
		return nil, err
	}
	if len(f.weakKeysFiles.names) > 0 {
		if in.weakKeys, err = ca.LoadWeakKeyFile(f.weakKeysFiles.names...); err != nil {
			return nil, fmt.Errorf("--weak-keys-file: %w", err)
		}
		log.Info("weak-key blocklist loaded", "entries", in.weakKeys.Len())
	}
	if in.notifyChannels, err = f.notify.checkNotifier(e, profiles, log); err != nil {
		return nil, err
	}
	if f.estRetryAfter < time.Second {
		return nil, usageError{"--est-retry-after must be at least 1s (Retry-After counts whole seconds)"}
	}
	if f.estListen == "off" {
		return in, nil
	}
	if in.tlsMinVersion, err = server.ParseTLSVersion(f.tlsMinVersion); err != nil {
		return nil, usageError{"--tls-min-version: " + err.Error()}
	}
	if in.tlsMaxVersion, err = server.ParseTLSVersion(f.tlsMaxVersion); err != nil || in.tlsMaxVersion < in.tlsMinVersion {
		return nil, usageError{fmt.Sprintf("--tls-max-version %q: want 1.2 or 1.3, not below --tls-min-version", f.tlsMaxVersion)}
	}
	switch {
	case (f.tlsCert == "") != (f.tlsKey == ""):
		return nil, usageError{"--tls-cert and --tls-key go together"}
	case f.tlsCert != "":
		if in.tlsCert, err = server.StaticCertificate(f.tlsCert, f.tlsKey); err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		if leaf := in.tlsCert.Leaf(); len(certNames(leaf)) == 0 {
			// A warning, not a refusal: SCEP on the plain listener and
			// clients that still read the Common Name work; browsers, Go
			// and scepter's own clients refuse it, and the cause is not
			// plain from their error.
			log.Warn("--tls-cert has no subjectAltName (DNS or IP name): browsers and most TLS clients, scepter's own included, refuse it (\"relies on legacy Common Name field\"); issue it with a subjectAltName naming the host clients connect to",
				"file", f.tlsCert, "subject", leaf.Subject.String())
		}
	case len(f.estServerNames.names) == 0:
		return nil, usageError{"--est-server-name needs at least one name"}
	}
	if f.tlsCert == "" {
		// Checked before any CA is made: the HTTPS certificate is issued
		// for these names once the CA exists.
		for _, n := range f.estServerNames.names {
			if net.ParseIP(n) == nil {
				if err := ca.CheckDNSName(n); err != nil {
					return nil, usageError{fmt.Sprintf("--est-server-name %q: %s", n, pki.ErrorMessage(err))}
				}
			}
		}
	}
	return in, nil
}

// manufacturerRoots reads --est-client-ca-file, which profiles with
// est_manufacturer_auth need (checkProfiles refuses a start without it).
func (f *serveFlags) manufacturerRoots() (*x509.CertPool, error) {
	if f.estClientCAFile == "" {
		return nil, nil
	}
	certs, err := keys.LoadCertFile(f.estClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("--est-client-ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// bannerCertNames is what the banner names a certificate by: its DNS and
// IP names, or, when it has none, its subject and that it has none.
func bannerCertNames(c *x509.Certificate) string {
	if names := certNames(c); len(names) > 0 {
		return strings.Join(names, ", ")
	}
	return printable(c.Subject.String()) + " (no subjectAltName: most clients refuse it)"
}

// certNames lists a certificate's DNS and IP names.
func certNames(c *x509.Certificate) []string {
	names := append([]string{}, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	return names
}

// webhook builds the challenge webhook when one is configured (a profile
// that needs one without it is refused by checkProfiles). It warns about a
// configuration that exposes the challenges it sends.
func (f *serveFlags) webhook(log *slog.Logger) (enroll.ChallengeVerifier, error) {
	if f.webhookTimeout <= 0 {
		// The flag defaults to 5s (webhook.DefaultTimeout): a 0 is the
		// operator's, and no wait at all is nothing to run with. Refused
		// with or without --webhook-url, as any value out of range.
		return nil, usageError{fmt.Sprintf("--webhook-timeout %s: want a duration above 0s (default %s)", f.webhookTimeout, webhook.DefaultTimeout)}
	}
	if f.webhookURL == "" {
		if f.webhookSecretFile != "" {
			// The operator believes something is signed: nothing is sent.
			return nil, usageError{"--webhook-secret-file needs --webhook-url"}
		}
		return nil, nil
	}
	var secret []byte
	if f.webhookSecretFile != "" {
		s, err := secretFromFile("--webhook-secret-file", f.webhookSecretFile)
		if err != nil {
			return nil, err
		}
		secret = []byte(s)
	}
	v, err := webhook.New(webhook.Config{URL: f.webhookURL, Secret: secret, Timeout: f.webhookTimeout})
	if err != nil {
		return nil, err
	}
	warnWebhook(log, f.webhookURL, len(secret) > 0)
	return v, nil
}

// warnWebhook logs what in a webhook configuration exposes the challenges
// it sends: plain http to another host (anyone on the path reads them) and
// no HMAC secret (the receiver cannot tell our requests from forged ones).
// It names only the host: a URL's query or user information may hold a
// secret.
func warnWebhook(log *slog.Logger, rawURL string, signed bool) {
	if u, err := url.Parse(rawURL); err == nil && strings.EqualFold(u.Scheme, "http") && !loopbackHost(u.Hostname()) {
		log.Warn("--webhook-url is plain http to another host: the challenges it sends cross the network in clear; use https", "host", u.Hostname())
	}
	if !signed {
		log.Warn("no --webhook-secret-file: webhook requests are not signed (HMAC), so the receiver cannot tell them from forged ones")
	}
}

// loopbackHost reports whether a URL host is this machine: localhost or a
// loopback address. Other names are not resolved.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// ndesSecret returns the NDES page's password ("" when the page is off),
// refusing a page that would have none and a user name or lifetime that
// ndes.New refuses.
func (f *serveFlags) ndesSecret() (string, error) {
	if f.ndesUser == "" {
		// The page is off: a setting of it given without the user would
		// be dropped without a word, and mscep.dll would serve the default
		// profile rather than the one --ndes-profile names.
		var set []string
		for _, s := range []struct {
			name string
			set  bool
		}{
			{"--ndes-password", f.ndesPassword != ""}, {"--ndes-password-file", f.ndesPasswordFile != ""},
			{"--ndes-profile", f.ndesProfile != ""}, {"--ndes-ttl", f.ndesTTLGiven},
		} {
			if s.set {
				set = append(set, s.name)
			}
		}
		if len(set) > 0 {
			what := "it"
			if len(set) > 1 {
				what = "them"
			}
			return "", usageError{fmt.Sprintf("%s given (on the command line, in the environment or the config file), but the NDES page is off: --ndes-user turns it on; give it too, or leave %s out",
				strings.Join(set, " and "), what)}
		}
		return "", nil
	}
	if strings.Contains(f.ndesUser, ":") {
		return "", usageError{"--ndes-user must not contain ':' (HTTP Basic cannot carry it)"}
	}
	// The flag defaults to 60m (ndes.DefaultTTL), so a 0 is the
	// operator's: out of range like any other.
	if f.ndesTTL < ndes.MinTTL || f.ndesTTL > ndes.MaxTTL {
		return "", usageError{fmt.Sprintf("--ndes-ttl %s: want from %s to %s", f.ndesTTL, ndes.MinTTL, ndes.MaxTTL)}
	}
	password, err := secretFlagOrFile("ndes-password", f.ndesPassword, "ndes-password-file", f.ndesPasswordFile, secretFromFile)
	if err != nil {
		return "", err
	}
	if password == "" {
		return "", usageError{"--ndes-user needs --ndes-password-file or SCEPTER_NDES_PASSWORD"}
	}
	return password, nil
}

// ndes builds the NDES-compatible one-time password page when a user is
// set (a nil Router otherwise), with the password ndesSecret read; its
// refused logins go to auditLog's trail.
func (f *serveFlags) ndes(svc *enroll.Service, adm *admin.Service, auditLog ndes.AuditLog, authority *ca.Authority, password string, log *slog.Logger) (server.Router, error) {
	if f.ndesUser == "" {
		return nil, nil
	}
	profiles, defaultProfile := svc.Profiles()
	ndesProfile := cmp.Or(f.ndesProfile, defaultProfile)
	p, ok := profiles[ndesProfile]
	if !ok {
		return nil, usageError{fmt.Sprintf("--ndes-profile %q is not a configured profile", f.ndesProfile)}
	}
	// The page's passwords are one-time challenges: a profile that takes
	// none would refuse every one of them.
	if err := admin.TakesOneTimeChallenges(p); err != nil {
		return nil, usageError{"--ndes-user: " + pki.ErrorMessage(err) + "; choose another with --ndes-profile"}
	}
	// The page shows the thumbprint of the CA that GetCACert sends for the
	// profile, asked on every request: it follows a rollover's switch.
	caCert := func() *x509.Certificate {
		certs, err := svc.CACerts(ndesProfile)
		if err != nil || len(certs) == 0 {
			issuer, _ := authority.Active(pki.SystemClock{}.Now())
			return issuer.Cert
		}
		return certs[0]
	}
	h, err := ndes.New(adm, ndes.Config{Username: f.ndesUser, Password: password, TTL: f.ndesTTL, Profile: f.ndesProfile,
		CACert: caCert, Audit: auditLog}, log)
	if err != nil {
		return nil, err
	}
	return h, nil
}

// staticChallengeScope says where the static challenge is accepted: at its
// one profile, unless that profile takes only one-time challenges or the
// webhook, and then nowhere.
func staticChallengeScope(profiles map[string]pki.Profile, name string) string {
	if p, ok := profiles[name]; ok && (p.ChallengeMode == enroll.ChallengeOneTime || p.ChallengeMode == enroll.ChallengeWebhook) {
		return fmt.Sprintf("static, but accepted nowhere: profile %s takes %s challenges only (challenge = %q); give --challenge-profile a profile with challenge = \"static\" or \"any\", or mint one-time challenges", name, p.ChallengeMode, p.ChallengeMode)
	}
	return "static, valid at profile " + name + " only"
}

// staticOnlyElsewhere warns of profiles that take the static challenge
// only (challenge = "static") while it is valid at another profile: no
// SCEP device can enroll there (they take no one-time challenges either),
// only EST users bound to no profile. "" when there is none.
func staticOnlyElsewhere(profiles map[string]pki.Profile, staticProfile string) string {
	names := profilesWhere(profiles, func(p pki.Profile) bool {
		return p.ChallengeMode == enroll.ChallengeStatic && p.Name != staticProfile
	})
	if len(names) == 0 {
		return ""
	}
	return fmt.Sprintf("profiles %v take the static challenge only (challenge = \"static\"), but it is valid at profile %s only "+
		"(--challenge-profile): no SCEP device can enroll at them, only EST users bound to no profile; "+
		"give --challenge-profile one of them, or set challenge = \"onetime\" or \"any\" there", names, staticProfile)
}

// keygenHeldForApproval warns of profiles that allow EST serverkeygen and
// hold requests for approval: every serverkeygen there is refused (a key
// the server made cannot wait for an operator), which the operator should
// learn at start, not from devices. "" when there is none.
func keygenHeldForApproval(profiles map[string]pki.Profile) string {
	names := profilesWhere(profiles, func(p pki.Profile) bool { return p.ServerKeyGen && p.RequireApproval })
	if len(names) == 0 {
		return ""
	}
	return fmt.Sprintf("profiles %v allow EST serverkeygen (est_server_keygen = true) but hold requests for approval (approval = true): "+
		"every serverkeygen there is refused, as a key the server made cannot wait for an operator; drop one of the two", names)
}

// thresholdsNotUnderValidity warns of profiles whose validity is not
// longer than some of their notify_before thresholds: those are crossed
// at issuance, so they are never sent for certificates issued there
// (docs/notifications.md), which the operator should learn at start. ""
// when there is none.
func thresholdsNotUnderValidity(profiles map[string]pki.Profile) string {
	var parts []string
	for _, name := range profilesWhere(profiles, func(pki.Profile) bool { return true }) {
		p := profiles[name]
		var over []string
		for _, t := range p.NotifyBefore {
			if t >= p.Validity {
				over = append(over, notify.FormatThreshold(t))
			}
		}
		if len(over) > 0 {
			parts = append(parts, fmt.Sprintf("profile %s (validity %s): %s", name, notify.FormatThreshold(p.Validity), strings.Join(over, ", ")))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "expiry notification thresholds not shorter than their profile's validity are never sent (a certificate would be expiring " +
		"from its issuance): " + strings.Join(parts, "; ") + "; give notify_before thresholds shorter than validity"
}

// challengeState is what the start-up banner says about the static
// challenge.
type challengeState struct {
	challenge string
	// generated is the file of a challenge this node generated ("" when it
	// came from --challenge, --challenge-file or the environment); created
	// says it was generated at this start.
	generated string
	created   bool
	scope     string // staticChallengeScope
	// toJournal: under systemd the banner goes to the journal, which keeps
	// it and which more people read than the data directory, so a
	// generated secret is named by its file only.
	toJournal bool
	// sharedStore: several nodes may serve this store (PostgreSQL).
	sharedStore bool
}

// challengeBanner returns the banner's line about the static challenge
// ("" when there is nothing to say) and a warning to log ("" for none).
// A challenge generated on a shared store is this node's alone: a node
// that joins the store's CA generates none, so behind a load balancer the
// requests that reach another node would fail.
func challengeBanner(c challengeState) (line, warning string) {
	scope := c.scope
	if c.sharedStore && c.generated != "" && !strings.Contains(scope, "nowhere") {
		warning = "the generated static challenge holds on this node only: other nodes on this store have none; " +
			"every node needs the same --challenge (copy this file and pass it as --challenge-file, or SCEPTER_CHALLENGE), or mint one-time challenges, which the store shares"
		scope += "; on this node only: every node on this store needs the same --challenge, such as a copy of this file as --challenge-file"
	}
	switch {
	case c.created && c.toJournal:
		line = "Challenge password:  generated, saved in " + c.generated + " (not shown: this output goes to the journal; " + scope + ")"
	case c.created:
		// Shown this once: it is a shared secret.
		line = "Challenge password:  " + c.challenge + " (generated, saved in " + c.generated + "; " + scope + ")"
	case c.generated != "":
		line = "Challenge password:  in " + c.generated + " (" + scope + ")"
	case c.challenge == "":
		line = "Challenge password:  none static (this node joined the CA recorded in the store: give every node the same --challenge-file, or mint one-time challenges)"
	}
	return line, warning
}

// givenChallenge is the static challenge the operator gave: the flag or
// environment, or --challenge-file ("" when neither is set; both is a
// usage error).
func (f *serveFlags) givenChallenge() (string, error) {
	return secretFlagOrFile("challenge", f.challenge, "challenge-file", f.challengeFile, secretFromFile)
}

// resolveChallenge picks the static challenge: the one given (see
// givenChallenge), or one generated on the first start and kept in the
// data dir. It returns the path of the generated file when that is the
// source, and whether it was generated just now (the only time it is
// printed).
func (f *serveFlags) resolveChallenge(given string, joined bool) (challenge, generatedPath string, created bool, err error) {
	if given != "" {
		return given, "", false, nil
	}
	path := filepath.Join(f.dataDir, challengeFileName)
	b, err := os.ReadFile(path)
	switch {
	case err == nil && strings.TrimSpace(string(b)) != "":
		return strings.TrimSpace(string(b)), path, false, nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return "", "", false, fmt.Errorf("challenge file: %w", err)
	case joined:
		return "", "", false, nil
	}
	c, err := credential.RandomToken(20)
	if err != nil {
		return "", "", false, err
	}
	if err := writeSecretFile(path, []byte(c+"\n")); err != nil {
		return "", "", false, fmt.Errorf("save generated challenge: %w", err)
	}
	return c, path, true, nil
}

// backgroundGrace bounds how long serve waits, once stopping, for its
// background loops to end.
const backgroundGrace = 10 * time.Second

// waitBackground waits for background's goroutines, at most grace.
func waitBackground(background *sync.WaitGroup, grace time.Duration, log *slog.Logger) {
	done := make(chan struct{})
	go func() { background.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		log.Warn("stopping with background work (CRLs, responder certificates, the CA's upkeep) still running", "waited", grace)
	}
}

// firstPurgeDelay is how long after start the first purge of expired
// nonces and requests runs: once the listeners serve, off the start's
// busy moment. purgeInterval is the wait between purges after it.
const (
	firstPurgeDelay = time.Minute
	purgeInterval   = time.Hour
)

// purgeSchedule runs purge firstPurgeDelay after start, then every
// purgeInterval, until ctx ends. Hourly only, a server restarted more
// often than that never purged. after is time.After (a test's own
// channels).
func purgeSchedule(ctx context.Context, after func(time.Duration) <-chan time.Time, purge func()) {
	wait := firstPurgeDelay
	for {
		select {
		case <-ctx.Done():
			return
		case <-after(wait):
		}
		purge()
		wait = purgeInterval
	}
}

// every runs fn every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, fn func()) {
	everyOrWhen(ctx, interval, nil, fn)
}

// everyOrWhen runs fn every interval, and at once when wake is readable
// (nil: never), until ctx ends.
func everyOrWhen(ctx context.Context, interval time.Duration, wake <-chan struct{}, fn func()) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
		fn()
	}
}

// reloadCA picks up a next CA that `scepter ca rollover` created while the
// server runs, and promotes it on disk once its switch time has come, so
// GetNextCACert and the switch need no restart. issuersChanged runs when
// the set of issuers is no longer the same. It logs each change of the next
// CA: one that goes away before its switch (discarded), and one loaded,
// also when a discard and a new rollover both came since the last reload,
// so that the log never names a discarded CA as the next one.
func reloadCA(authority *ca.Authority, clock pki.Clock, log *slog.Logger, issuersChanged func()) {
	beforeNext, beforeAt, had := scheduledNext(authority, clock.Now())
	before := issuerIDs(authority)
	if err := authority.Reload(clock.Now()); err != nil {
		log.Warn("reload CA", "err", err)
		return
	}
	if !slices.Equal(before, issuerIDs(authority)) {
		issuersChanged()
	}
	now := clock.Now()
	afterNext, afterAt, has := scheduledNext(authority, now)
	same := had && has && afterNext.ID == beforeNext.ID && afterAt.Equal(beforeAt)
	if same {
		return
	}
	// Gone without becoming current: discarded (at its switch, the next
	// CA goes away by becoming the active one, which cashare logs).
	if active, _ := authority.Active(now); had && active.ID != beforeNext.ID && (!has || afterNext.ID != beforeNext.ID) {
		log.Info("next issuing CA discarded: it is no longer served and this node will not switch to it",
			"subject", beforeNext.Cert.Subject.String(), "switch_at", beforeAt.UTC().Format(time.RFC3339))
	}
	if has && now.Before(afterAt) {
		log.Info("next issuing CA loaded", "subject", afterNext.Cert.Subject.String(), "switch_at", afterAt.UTC().Format(time.RFC3339))
	}
}

// scheduledNext is the authority's next issuing CA and its switch time,
// also once that time has passed but no reload has promoted it yet (Active
// serves it then); ok is false when there is none.
func scheduledNext(authority *ca.Authority, now time.Time) (next *ca.Issuer, at time.Time, ok bool) {
	if at, ok = authority.SwitchAt(); !ok {
		return nil, time.Time{}, false
	}
	if next, _, ok := authority.Next(now); ok {
		return next, at, true
	}
	next, _ = authority.Active(now)
	return next, at, true
}

// applyRootCRL has the authority refuse what the issuing CAs on the
// root's stored CRL issued, and their RAs (crl.ApplyRootCRL): run at start
// and with every CA reload, so that `scepter ca root crl --revoke` takes
// effect on every node within the reload interval.
func applyRootCRL(ctx context.Context, st store.Store, authority *ca.Authority, log *slog.Logger) {
	added, err := crl.ApplyRootCRL(ctx, st, authority)
	if err != nil {
		log.Warn("reading the issuing CAs the root revoked", "err", err)
		return
	}
	for _, id := range added {
		log.Warn("the root CRL lists this issuing CA as revoked: its certificates authenticate nothing more and its SCEP RA decrypts no more requests", "issuer_id", id)
	}
}

// issuerIDs are the IDs of the authority's issuers, sorted.
func issuerIDs(authority *ca.Authority) []string {
	var ids []string
	for _, i := range authority.Issuers() {
		ids = append(ids, i.ID)
	}
	slices.Sort(ids)
	return ids
}

func newLogger(e env, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		// slog's own words ("unknown name") do not say what to give.
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch format {
	case "text":
		h = slog.NewTextHandler(e.stderr, opts)
	case "json":
		h = slog.NewJSONHandler(e.stderr, opts)
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
	// A store outage fails every request alike: an error line for each
	// would flood the log, perhaps on the very disk that is full.
	return slog.New(loglimit.New(h, 0, 0)), nil
}

// ignoreHangUp keeps SIGHUP from killing the server or the agent (its
// default), as a logrotate postrotate `kill -HUP` would: there is nothing
// to reopen (logs go to stdout and stderr), and each rereads what it uses
// by itself. why is logged at each SIGHUP.
func ignoreHangUp(ctx context.Context, log *slog.Logger, why string) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-hup:
				log.Info("SIGHUP ignored: " + why)
			case <-ctx.Done():
				return
			}
		}
	}()
}

// refuseLostSQLite refuses to start SQLite on a data directory a server
// has run on (it wrote its public URL there) that holds a CA but no
// database: the inventory is gone (removed, or not restored with the keys),
// and starting on a new empty one would make every revoked certificate
// unknown to OCSP and start the CRL's number again at 1. A data directory
// that only received keys (ca import-keys) starts as before.
func refuseLostSQLite(storeURL, dataDir string) error {
	if storeURL != "" {
		return nil
	}
	path := filepath.Join(dataDir, "scepter.db")
	if !caServedFrom(dataDir) {
		return nil
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return fmt.Errorf("%s holds a CA a server ran with, but no database (%s): the inventory of what it issued is missing, and starting on an empty one would make its revoked certificates unknown to OCSP and start its CRL numbers again. "+
		"If this node's store is PostgreSQL, pass its --store; otherwise restore scepter.db from a backup (docs/deployment.md), or, to start over with an empty inventory anyway, create an empty file there first (touch %s)", dataDir, path, shellQuote(path))
}

// refuseAbandonedSQLite refuses to start a data directory on an empty
// PostgreSQL store while its SQLite database holds certificates: the
// inventory would be left behind without a word, its revoked certificates
// unknown to OCSP and missing from a CRL whose number starts again at 1.
func refuseAbandonedSQLite(ctx context.Context, dataDir string) error {
	path := filepath.Join(dataDir, "scepter.db")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	old, err := sqlite.Open(ctx, path)
	if err != nil {
		return fmt.Errorf("reading %s, which this data directory used before --store: %w", path, err)
	}
	defer old.Close()
	certs, _, err := old.ListCertificates(ctx, store.CertFilter{Limit: 1})
	if err != nil {
		return fmt.Errorf("reading %s, which this data directory used before --store: %w", path, err)
	}
	if len(certs) > 0 {
		return fmt.Errorf("%s holds the certificates this CA issued, and the PostgreSQL store is empty: starting on it would lose them "+
			"(revoked certificates would become unknown to OCSP and leave the CRL, whose number would start again). "+
			"There is no migration of an SQLite inventory to PostgreSQL yet; to start over with an empty inventory anyway, move %s away first and start with --store-restored (the CRLs then go on above the numbers published)", path, path)
	}
	return nil
}

// caKeysWhere is the banner's line on where the CA's keys are when a
// PKCS#11 token was given: it may hold them, or the data directory's
// files may (a node copied from one with key files), which the token
// does not replace.
func caKeysWhere(token string, inToken bool, caDir string) string {
	if inToken {
		return "in " + token
	}
	return "files in " + caDir + " (not in " + token + ", which was given)"
}

// ndesPageLine is the banner's line for the NDES password page: where an
// MDM's "NDES admin URL" points, for which user and profile. Without an
// HTTPS listener the page answers loopback clients alone (its credentials
// and passwords must not cross the network in clear), so the line says so.
func ndesPageLine(plainBase string, https bool, tlsLn net.Listener, user, profile string) string {
	const path = "/certsrv/mscep_admin/"
	if https {
		return fmt.Sprintf("NDES page:           https://%s%s (user %s; its passwords enroll at profile %s)", tlsLn.Addr(), path, printable(user), profile)
	}
	return fmt.Sprintf("NDES page:           %s%s (loopback clients only: --est-listen is off; user %s; its passwords enroll at profile %s)", plainBase, path, printable(user), profile)
}
