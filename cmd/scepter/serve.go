package main

import (
	"context"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/credential"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/est/estserver"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/ndes"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep/scepserver"
	"github.com/scepter/scepter/internal/server"
	"github.com/scepter/scepter/internal/store/sqlite"
	"github.com/scepter/scepter/internal/webhook"
)

type serveFlags struct {
	storeFlags
	listen           string
	challenge        string
	challengeFile    string
	caKeyType        string
	scepRA           string
	allowInsecureDES bool
	maxClockSkew     time.Duration
	logLevel         string
	logFormat        string

	webhookURL        string
	webhookSecretFile string
	webhookTimeout    time.Duration

	ndesUser         string
	ndesPassword     string
	ndesPasswordFile string
	ndesProfile      string
	ndesTTL          time.Duration

	caReload time.Duration

	estListen       string
	estServerNames  nameList
	tlsCert         string
	tlsKey          string
	tlsMinVersion   string
	tlsMaxVersion   string
	estClientCAFile string
	estRetryAfter   time.Duration
}

// nameList is a comma-separated list flag whose default is replaced, not
// extended, by the first value given.
type nameList struct {
	names []string
	set   bool
}

func (l *nameList) String() string { return strings.Join(l.names, ",") }

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
	fs.StringVar(&f.caKeyType, "ca-key-type", "p256", "key type of a new CA: p256, p384, rsa2048, rsa3072, rsa4096")
	fs.StringVar(&f.scepRA, "scep-ra", "separate", "SCEP RA: 'separate' (an RSA-2048 RA certificate) or 'ca' (the issuing CA itself; RSA CAs only)")
	fs.BoolVar(&f.allowInsecureDES, "allow-insecure-des", false, "accept single-DES request envelopes from legacy clients (RFC 8894 forbids it; replies use DES3)")
	fs.DurationVar(&f.maxClockSkew, "max-clock-skew", scepserver.DefaultMaxClockSkew, "largest accepted difference between a request's signingTime and the server clock")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.webhookURL, "webhook-url", "", "challenge webhook for profiles with challenge = \"webhook\" (see docs/webhook.md)")
	fs.StringVar(&f.webhookSecretFile, "webhook-secret-file", "", "file holding the HMAC key that signs webhook requests")
	fs.DurationVar(&f.webhookTimeout, "webhook-timeout", 5*time.Second, "how long to wait for the webhook's answer")
	fs.StringVar(&f.ndesUser, "ndes-user", "", "user name for the NDES-compatible password page /certsrv/mscep_admin/ (off when empty)")
	fs.StringVar(&f.ndesPassword, "ndes-password", "", "its password (prefer SCEPTER_NDES_PASSWORD or --ndes-password-file)")
	fs.StringVar(&f.ndesPasswordFile, "ndes-password-file", "", "file holding the NDES page password")
	fs.StringVar(&f.ndesProfile, "ndes-profile", "", "profile the NDES page's one-time passwords are bound to (default: any)")
	fs.DurationVar(&f.ndesTTL, "ndes-ttl", 60*time.Minute, "lifetime of one-time passwords from the NDES page")
	fs.DurationVar(&f.caReload, "ca-reload-interval", 30*time.Second, "how often to look for a next CA made by 'scepter ca rollover'")
	fs.StringVar(&f.estListen, "est-listen", "127.0.0.1:8443", "address of the HTTPS listener (EST, and SCEP over HTTPS); 'off' to disable")
	f.estServerNames = nameList{names: []string{"localhost", "127.0.0.1"}}
	fs.Var(&f.estServerNames, "est-server-name", "names (DNS or IP, comma-separated) of the HTTPS certificate our CA issues")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "HTTPS certificate chain (PEM) to use instead of one our CA issues")
	fs.StringVar(&f.tlsKey, "tls-key", "", "its private key (PEM)")
	fs.StringVar(&f.tlsMinVersion, "tls-min-version", "1.2", "lowest TLS version of the HTTPS listener: 1.2 or 1.3")
	fs.StringVar(&f.tlsMaxVersion, "tls-max-version", "1.3", "highest TLS version of the HTTPS listener: 1.2 or 1.3")
	fs.StringVar(&f.estClientCAFile, "est-client-ca-file", "", "PEM bundle of manufacturer CAs whose client certificates (IDevIDs) may enroll at profiles with est_manufacturer_auth")
	fs.DurationVar(&f.estRetryAfter, "est-retry-after", estserver.DefaultRetryAfter, "how long EST clients are told to wait (Retry-After) while a request awaits approval")
	return fs, f
}

func cmdServe(ctx context.Context, e env, args []string) error {
	fs, f := newServeFlags(e)
	if err := parseFlags(fs, e, args, 0, f.sections()); err != nil {
		return err
	}
	if !keys.ValidKeyType(f.caKeyType) {
		return usageError{fmt.Sprintf("--ca-key-type %q: want p256, p384, rsa2048, rsa3072 or rsa4096", f.caKeyType)}
	}
	if f.scepRA != "separate" && f.scepRA != "ca" {
		return usageError{fmt.Sprintf("--scep-ra %q: want separate or ca", f.scepRA)}
	}
	log, err := newLogger(e, f.logLevel, f.logFormat)
	if err != nil {
		return usageError{err.Error()}
	}
	if f.allowInsecureDES {
		log.Warn("--allow-insecure-des is set: single-DES request envelopes are accepted; RFC 8894 forbids this, use it only for legacy clients")
	}
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	clock := pki.SystemClock{}
	initOpts := ca.InitOptions{KeyType: f.caKeyType, RAMode: f.scepRA}
	authority, created, err := ca.LoadOrCreate(f.dataDir, initOpts, clock)
	if err != nil {
		return err
	}
	for _, msg := range authority.IgnoredOptions(initOpts) {
		log.Info("existing CA kept: " + msg)
	}
	st, err := sqlite.Open(ctx, f.dbPath())
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer st.Close()
	if created {
		err := st.AppendAudit(ctx, pki.AuditEvent{Time: clock.Now(), Type: pki.EventCAInitialized, Actor: "system", Outcome: "success",
			Detail: fmt.Sprintf("root %s, issuing CA %s, RA %s", authority.RootFingerprint(), authority.Issuer.Cert.Subject, authority.RA.Cert.Subject)})
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
	}
	challenge, generated, err := f.resolveChallenge()
	if err != nil {
		return err
	}
	profiles, err := f.profileSet()
	if err != nil {
		return err
	}
	cfg := enroll.Config{StaticChallenge: challenge, Profiles: profiles, DefaultProfile: f.defaultProfile}
	if cfg.Webhook, err = f.webhook(profiles); err != nil {
		return err
	}
	if cfg.ManufacturerRoots, err = f.manufacturerRoots(profiles); err != nil {
		return err
	}
	svc, err := enroll.New(st, authority, clock, log, cfg)
	if err != nil {
		return err
	}
	scepHandler, err := scepserver.New(svc, clock, log, scepserver.Options{AllowInsecureDES: f.allowInsecureDES, MaxClockSkew: f.maxClockSkew})
	if err != nil {
		return err
	}
	handlers := server.Handlers{SCEP: scepHandler}
	adm := admin.New(st, clock, log, profiles)
	if handlers.NDES, err = f.ndes(svc, adm, authority, log); err != nil {
		return err
	}
	var tlsCert *server.Certificate
	var tlsCertIssued bool
	if f.estRetryAfter < time.Second {
		return usageError{"--est-retry-after must be at least 1s (Retry-After counts whole seconds)"}
	}
	if f.estListen != "off" {
		handlers.EST = estserver.New(svc, log, estserver.Options{RetryAfter: f.estRetryAfter})
		if tlsCert, tlsCertIssued, err = f.tlsCertificate(ctx, svc, clock, log); err != nil {
			return err
		}
	}
	plainMux, err := server.PlainMux(handlers)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	servers := []*http.Server{newHTTPServer(plainMux, log)}
	listeners := []net.Listener{ln}
	base := "http://" + ln.Addr().String()
	lines := []string{
		"scepter " + version + " listening on " + ln.Addr().String(),
		"SCEP URL:            " + base + "/scep",
	}
	if tlsCert != nil {
		tlsMux, err := server.TLSMux(handlers)
		if err != nil {
			ln.Close()
			return err
		}
		tlsLn, tlsSrv, err := f.listenTLS(tlsMux, tlsCert, log)
		if err != nil {
			ln.Close()
			return err
		}
		servers, listeners = append(servers, tlsSrv), append(listeners, tlsLn)
		lines = append(lines, "EST URL:             https://"+tlsLn.Addr().String()+"/.well-known/est")
		leaf := tlsCert.Leaf()
		how := "configured"
		if f.tlsCert == "" {
			how = "issued by this CA, renewed automatically"
			if tlsCertIssued {
				how = "newly " + how
			}
		}
		lines = append(lines, fmt.Sprintf("HTTPS certificate:   %s, valid until %s (%s)", strings.Join(certNames(leaf), ", "),
			leaf.NotAfter.UTC().Format(time.RFC3339), how))
	}
	lines = append(lines,
		"Root CA fingerprint: "+authority.RootFingerprint(),
		"Data directory:      "+f.dataDir)
	if created {
		lines = append(lines, fmt.Sprintf("Created a new CA (%s) in %s", f.caKeyType, filepath.Join(f.dataDir, "ca")))
	}
	if generated != "" {
		lines = append(lines, "Challenge password:  "+challenge+" (generated, saved in "+generated+")")
	}
	fmt.Fprint(e.stdout, joinLines(lines...))

	go every(ctx, time.Hour, func() {
		if err := st.PurgeExpired(ctx, clock.Now()); err != nil {
			log.Warn("purge expired nonces and requests", "err", err)
		}
	})
	go every(ctx, f.caReload, func() { reloadCA(authority, clock, log) })
	if tlsCert != nil {
		go every(ctx, time.Hour, func() {
			if err := tlsCert.RenewIfDue(ctx); err != nil {
				log.Error("renewing the HTTPS certificate", "err", err)
			}
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

// newHTTPServer is one listener's server, with bounded reads and headers.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		// Room for certmonger's GET PKIOperation query strings (RSA-4096
		// requests exceed 6 KB), bounded all the same.
		MaxHeaderBytes: 128 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// tlsCertificate is the HTTPS listener's certificate: the configured pair,
// or one our CA issues (DATA/tls) and renews.
func (f *serveFlags) tlsCertificate(ctx context.Context, svc *enroll.Service, clock pki.Clock, log *slog.Logger) (*server.Certificate, bool, error) {
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return nil, false, usageError{"--tls-cert and --tls-key go together"}
	}
	if f.tlsCert != "" {
		c, err := server.StaticCertificate(f.tlsCert, f.tlsKey)
		return c, false, err
	}
	if len(f.estServerNames.names) == 0 {
		return nil, false, usageError{"--est-server-name needs at least one name"}
	}
	return server.ManagedCertificate(ctx, filepath.Join(f.dataDir, "tls"), f.estServerNames.names, svc, clock, log)
}

// listenTLS opens the HTTPS listener.
func (f *serveFlags) listenTLS(h http.Handler, cert *server.Certificate, log *slog.Logger) (net.Listener, *http.Server, error) {
	minV, err := server.ParseTLSVersion(f.tlsMinVersion)
	if err != nil {
		return nil, nil, usageError{"--tls-min-version: " + err.Error()}
	}
	maxV, err := server.ParseTLSVersion(f.tlsMaxVersion)
	if err != nil || maxV < minV {
		return nil, nil, usageError{fmt.Sprintf("--tls-max-version %q: want 1.2 or 1.3, not below --tls-min-version", f.tlsMaxVersion)}
	}
	ln, err := net.Listen("tcp", f.estListen)
	if err != nil {
		return nil, nil, fmt.Errorf("listen (HTTPS): %w", err)
	}
	srv := newHTTPServer(h, log)
	srv.TLSConfig = server.TLSConfig(cert.GetCertificate, minV, maxV)
	return tls.NewListener(ln, srv.TLSConfig), srv, nil
}

// manufacturerRoots reads --est-client-ca-file, which profiles with
// est_manufacturer_auth need.
func (f *serveFlags) manufacturerRoots(profiles map[string]pki.Profile) (*x509.CertPool, error) {
	var needed []string
	for name, p := range profiles {
		if p.ManufacturerAuth {
			needed = append(needed, name)
		}
	}
	if f.estClientCAFile == "" {
		if len(needed) > 0 {
			return nil, usageError{fmt.Sprintf("profiles %v accept manufacturer certificates: set --est-client-ca-file", needed)}
		}
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

// certNames lists a certificate's DNS and IP names.
func certNames(c *x509.Certificate) []string {
	names := append([]string{}, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	return names
}

// webhook builds the challenge webhook when one is configured, and refuses
// to start when a profile needs one that is not.
func (f *serveFlags) webhook(profiles map[string]pki.Profile) (enroll.ChallengeVerifier, error) {
	var needed []string
	for name, p := range profiles {
		if p.ChallengeMode == enroll.ChallengeWebhook {
			needed = append(needed, name)
		}
	}
	if f.webhookURL == "" {
		if len(needed) > 0 {
			return nil, usageError{fmt.Sprintf("profiles %v use the webhook challenge: set --webhook-url", needed)}
		}
		return nil, nil
	}
	var secret []byte
	if f.webhookSecretFile != "" {
		b, err := os.ReadFile(f.webhookSecretFile)
		if err != nil {
			return nil, fmt.Errorf("webhook secret: %w", err)
		}
		secret = []byte(strings.TrimSpace(string(b)))
	}
	return webhook.New(webhook.Config{URL: f.webhookURL, Secret: secret, Timeout: f.webhookTimeout})
}

// ndes builds the NDES-compatible one-time password page when a user is
// set (a nil Router otherwise).
func (f *serveFlags) ndes(svc *enroll.Service, adm *admin.Service, authority *ca.Authority, log *slog.Logger) (server.Router, error) {
	if f.ndesUser == "" {
		return nil, nil
	}
	password := f.ndesPassword
	if f.ndesPasswordFile != "" {
		b, err := os.ReadFile(f.ndesPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("NDES password: %w", err)
		}
		password = strings.TrimSpace(string(b))
	}
	if password == "" {
		return nil, usageError{"--ndes-user needs --ndes-password-file or SCEPTER_NDES_PASSWORD"}
	}
	if f.ndesProfile != "" {
		if _, ok := svc.Profile(f.ndesProfile); !ok {
			return nil, usageError{fmt.Sprintf("--ndes-profile %q is not a configured profile", f.ndesProfile)}
		}
	}
	issuer, _ := authority.Active(pki.SystemClock{}.Now())
	h, err := ndes.New(adm, ndes.Config{Username: f.ndesUser, Password: password, TTL: f.ndesTTL, Profile: f.ndesProfile,
		CAThumbprint: sha1Hex(issuer.Cert.Raw)}, log)
	if err != nil {
		return nil, err
	}
	return h, nil
}

func sha1Hex(b []byte) string {
	sum := sha1.Sum(b)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// resolveChallenge picks the static challenge: the flag or environment,
// a file, or one generated on the first start and kept in the data dir.
// It returns the path of the generated file when that is the source.
func (f *serveFlags) resolveChallenge() (challenge, generatedPath string, err error) {
	if f.challenge != "" {
		return f.challenge, "", nil
	}
	if f.challengeFile != "" {
		b, err := os.ReadFile(f.challengeFile)
		if err != nil {
			return "", "", fmt.Errorf("challenge file: %w", err)
		}
		c := strings.TrimSpace(string(b))
		if c == "" {
			return "", "", fmt.Errorf("challenge file %s is empty", f.challengeFile)
		}
		return c, "", nil
	}
	path := filepath.Join(f.dataDir, challengeFileName)
	b, err := os.ReadFile(path)
	switch {
	case err == nil && strings.TrimSpace(string(b)) != "":
		return strings.TrimSpace(string(b)), path, nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return "", "", fmt.Errorf("challenge file: %w", err)
	}
	c, err := credential.RandomToken(20)
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(path, []byte(c+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("save generated challenge: %w", err)
	}
	return c, path, nil
}

// every runs fn every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, fn func()) {
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
			fn()
		}
	}
}

// reloadCA picks up a next CA that `scepter ca rollover` created while the
// server runs, and promotes it on disk once its switch time has come, so
// GetNextCACert and the switch need no restart.
func reloadCA(authority *ca.Authority, clock pki.Clock, log *slog.Logger) {
	_, had := authority.SwitchAt()
	if err := authority.Reload(clock.Now()); err != nil {
		log.Warn("reload CA", "err", err)
		return
	}
	if at, has := authority.SwitchAt(); has && !had {
		if issuer, _, ok := authority.Next(clock.Now()); ok {
			log.Info("next issuing CA loaded", "subject", issuer.Cert.Subject.String(), "switch_at", at.Format(time.RFC3339))
		}
	}
}

func newLogger(e env, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(e.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(e.stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
