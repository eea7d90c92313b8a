package main

import (
	"context"
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

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite"
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
	fs.DurationVar(&f.maxClockSkew, "max-clock-skew", scep.DefaultMaxClockSkew, "largest accepted difference between a request's signingTime and the server clock")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	return fs, f
}

func cmdServe(ctx context.Context, e env, args []string) error {
	fs, f := newServeFlags(e)
	if err := parseFlags(fs, e, args, 0); err != nil {
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
	svc, err := enroll.New(st, authority, clock, log, enroll.Config{StaticChallenge: challenge})
	if err != nil {
		return err
	}
	handler, err := scep.New(svc, scep.RA{Cert: authority.RA.Cert, Key: authority.RA.Key, Chain: authority.RA.Chain},
		authority.Issuer.Chain, st, clock, log, scep.Options{AllowInsecureDES: f.allowInsecureDES, MaxClockSkew: f.maxClockSkew})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	for _, path := range scep.Paths {
		mux.Handle(path, handler)
	}

	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		// Room for certmonger's GET PKIOperation query strings (RSA-4096
		// requests exceed 6 KB), bounded all the same.
		MaxHeaderBytes: 128 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	base := "http://" + ln.Addr().String()
	lines := []string{
		"scepter " + version + " listening on " + ln.Addr().String(),
		"SCEP URL:            " + base + "/scep",
		"Root CA fingerprint: " + authority.RootFingerprint(),
		"Data directory:      " + f.dataDir,
	}
	if created {
		lines = append(lines, fmt.Sprintf("Created a new CA (%s) in %s", f.caKeyType, filepath.Join(f.dataDir, "ca")))
	}
	if generated != "" {
		lines = append(lines, "Challenge password:  "+challenge+" (generated, saved in "+generated+")")
	}
	fmt.Fprint(e.stdout, joinLines(lines...))

	go purgeLoop(ctx, st, clock, log)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
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
	c, err := enroll.NewStaticChallenge()
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(path, []byte(c+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("save generated challenge: %w", err)
	}
	return c, path, nil
}

func purgeLoop(ctx context.Context, st store.Store, clock pki.Clock, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := st.PurgeExpired(ctx, clock.Now()); err != nil {
				log.Warn("purge expired nonces", "err", err)
			}
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
