package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/scepter/scepter/internal/notify"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// smtpPasswordEnv holds the SMTP password when no file is given. There is
// deliberately no flag (flags show in ps) and no config-file key.
const smtpPasswordEnv = "SCEPTER_SMTP_PASSWORD"

// notifyFlags are the expiry notification settings of `scepter serve`,
// shared with `scepter notify test` (docs/notifications.md).
type notifyFlags struct {
	interval          time.Duration
	smtpURL           string
	smtpPasswordFile  string
	smtpStartTLS      string
	from              string
	webhookURL        string
	webhookSecretFile string
	// observer, set by serve, is told of every send (metrics).
	observer notify.Observer
	// nodeDir, set by serve once it holds the data directory's lock, keeps
	// the ID that names this server in notification leases (nodeOwner).
	nodeDir string
}

// nodeIDFile holds, in the data directory, the random ID that names its
// server in notification leases.
const nodeIDFile = "notify-node-id"

// nodeOwner is the name a server on dataDir leases notifications under:
// its host and an ID made once and kept in the data directory. It stays
// the same across restarts, so that a server killed mid-send takes back
// its lease when it starts again (notify.Config.Owner), and the data
// directory's lock keeps two live servers from sharing it.
func nodeOwner(dataDir string) (string, error) {
	path := filepath.Join(dataDir, nodeIDFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		var id [8]byte
		_, _ = rand.Read(id[:])
		b = []byte(hex.EncodeToString(id[:]) + "\n")
		f, cerr := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if cerr != nil {
			return "", fmt.Errorf("node ID: %w", cerr)
		}
		_, werr := f.Write(b)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			os.Remove(path)
			return "", fmt.Errorf("node ID %s: %w", path, werr)
		}
	} else if err != nil {
		return "", fmt.Errorf("node ID: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if _, err := hex.DecodeString(id); err != nil || len(id) != 16 {
		return "", fmt.Errorf("node ID %s: not 16 hexadecimal digits: remove it, and a new one is made", path)
	}
	host, _ := os.Hostname()
	return host + "/" + id, nil
}

func (n *notifyFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&n.interval, "notify-interval", notify.DefaultInterval, "how often to look for certificates crossing a notify_before threshold (also once at start)")
	fs.StringVar(&n.smtpURL, "smtp-url", "", "mail server for expiry notifications: smtp://[USER@]HOST[:PORT] (STARTTLS when offered) or smtps://[USER@]HOST[:PORT]")
	fs.StringVar(&n.smtpPasswordFile, "smtp-password-file", "", "file holding the SMTP password for the URL's user (or "+smtpPasswordEnv+")")
	fs.StringVar(&n.smtpStartTLS, "smtp-starttls", "auto", "with smtp://: 'auto' uses STARTTLS when the server offers it, 'required' sends nothing without it")
	fs.StringVar(&n.from, "notify-from", "", "sender address of notification mails (required with --smtp-url)")
	fs.StringVar(&n.webhookURL, "notify-webhook-url", "", "URL that receives expiry notifications as JSON (docs/notifications.md)")
	fs.StringVar(&n.webhookSecretFile, "notify-webhook-secret-file", "", "file holding the HMAC key that signs notification webhook requests")
}

// mailer builds the SMTP channel from the flags; nil when --smtp-url is
// not set. Errors never carry the password.
func (n *notifyFlags) mailer(e env) (*notify.SMTP, error) {
	var requireTLS bool
	switch n.smtpStartTLS {
	case "", "auto": // "": notifyFlags not made by register (tests)
	case "required":
		requireTLS = true
	default:
		return nil, usageError{fmt.Sprintf("--smtp-starttls %q: want auto or required", n.smtpStartTLS)}
	}
	if n.smtpURL == "" {
		// A mail setting without the mail server: the operator expects
		// mail, and none is sent (refused, as the secret files are).
		switch {
		case n.from != "":
			return nil, usageError{"--notify-from needs --smtp-url"}
		case n.smtpPasswordFile != "":
			return nil, usageError{"--smtp-password-file needs --smtp-url"}
		case requireTLS:
			return nil, usageError{"--smtp-starttls required needs --smtp-url"}
		}
		if v, ok := e.lookupEnv(smtpPasswordEnv); ok && v != "" {
			return nil, usageError{smtpPasswordEnv + " needs --smtp-url"}
		}
		return nil, nil
	}
	if n.from == "" {
		return nil, usageError{"--smtp-url needs --notify-from, the sender address of notification mails"}
	}
	if err := refuseEnvAndFile(e, smtpPasswordEnv, "smtp-password-file", n.smtpPasswordFile); err != nil {
		return nil, err
	}
	password, _ := e.lookupEnv(smtpPasswordEnv)
	if n.smtpPasswordFile != "" {
		p, err := secretFromFile("--smtp-password-file", n.smtpPasswordFile)
		if err != nil {
			return nil, err
		}
		password = p
	}
	m, err := notify.NewSMTP(notify.SMTPConfig{URL: n.smtpURL, Password: password, From: n.from, RequireTLS: requireTLS})
	if errors.Is(err, notify.ErrSenderAddress) {
		// The sender is its own setting: refused by its name, as given
		// (namedAsGiven), not as the mail server's.
		return nil, usageError{fmt.Sprintf("--notify-from %q: %v", n.from, notify.ErrSenderAddress)}
	}
	if err != nil {
		return nil, usageError{"--smtp-url: " + err.Error()}
	}
	return m, nil
}

// channels builds the configured channels and warns about what in the
// setup exposes mail or leaves a profile's recipients without mail.
func (n *notifyFlags) channels(e env, profiles map[string]pki.Profile, log *slog.Logger) ([]notify.Channel, error) {
	var chans []notify.Channel
	m, err := n.mailer(e)
	if err != nil {
		return nil, err
	}
	var wantMail []string
	for name, p := range profiles {
		if len(p.NotifyBefore) > 0 && (len(p.NotifyTo) > 0 || p.NotifyOwner) {
			wantMail = append(wantMail, name)
		}
	}
	sort.Strings(wantMail)
	switch {
	case m == nil && len(wantMail) > 0:
		log.Warn("profiles set notify_to or notify_owner but --smtp-url is not set: no expiry mail is sent", "profiles", wantMail)
	case m != nil:
		if m.MayBeClear() && !loopbackHost(m.Host()) {
			log.Warn("--smtp-url is smtp:// to another host: mail goes in clear unless the server offers STARTTLS, and someone on the path can remove that offer; use smtps:// or --smtp-starttls required",
				"host", m.Host())
		}
		if len(wantMail) == 0 {
			log.Warn("--smtp-url is set but no profile sets notify_to or notify_owner: no expiry mail is sent")
		}
		chans = append(chans, m)
	}
	w, err := n.webhook()
	if err != nil {
		return nil, err
	}
	if w != nil {
		if u, err := url.Parse(n.webhookURL); err == nil && strings.EqualFold(u.Scheme, "http") && !loopbackHost(u.Hostname()) {
			log.Warn("--notify-webhook-url is plain http to another host: notifications cross the network in clear; use https", "host", u.Hostname())
		}
		if !w.Signed() {
			log.Warn("no --notify-webhook-secret-file: notification webhook requests are not signed (HMAC), so the receiver cannot tell them from forged ones")
		}
		chans = append(chans, w)
	}
	return chans, nil
}

// webhook builds the webhook channel from the flags, reading its secret
// file; nil when --notify-webhook-url is not set.
func (n *notifyFlags) webhook() (*notify.Webhook, error) {
	if n.webhookURL == "" && n.webhookSecretFile != "" {
		// The operator believes something is signed: nothing is sent.
		return nil, usageError{"--notify-webhook-secret-file needs --notify-webhook-url"}
	}
	if n.webhookURL == "" {
		return nil, nil
	}
	var secret []byte
	if n.webhookSecretFile != "" {
		s, err := secretFromFile("--notify-webhook-secret-file", n.webhookSecretFile)
		if err != nil {
			return nil, err
		}
		secret = []byte(s)
	}
	w, err := notify.NewWebhook(notify.WebhookConfig{URL: n.webhookURL, Secret: secret})
	if err != nil {
		return nil, usageError{"--notify-webhook-url: " + err.Error()}
	}
	return w, nil
}

// checkNotifier checks the notification settings and builds the channels
// (none when nothing is configured), reading their secret files: serve
// calls it before it creates anything, so that a typo leaves nothing
// behind.
func (n *notifyFlags) checkNotifier(e env, profiles map[string]pki.Profile, log *slog.Logger) ([]notify.Channel, error) {
	if n.interval <= 0 {
		return nil, usageError{"--notify-interval must be positive"}
	}
	return n.channels(e, profiles, log)
}

// startNotifier starts the expiry notification scheduler on the channels
// checkNotifier built, in a goroutine that runs until ctx ends or stop is
// called; stop waits for it, so the store may be closed afterwards. With
// no channel it starts nothing and says nothing.
func (n *notifyFlags) startNotifier(ctx context.Context, st store.Store, profiles map[string]pki.Profile, chans []notify.Channel, clock pki.Clock, log *slog.Logger) (stop func(), err error) {
	if len(chans) == 0 {
		return func() {}, nil
	}
	owner := ""
	if n.nodeDir != "" {
		if owner, err = nodeOwner(n.nodeDir); err != nil {
			// A name of this process alone: a lease it dies holding
			// waits to run out.
			log.Warn("expiry notifications: "+err.Error()+"; leasing under a name of this process alone", "data_dir", n.nodeDir)
		}
	}
	sched, err := notify.New(notify.Config{Store: st, Clock: clock, Log: log, Profiles: profiles, Channels: chans, Interval: n.interval,
		Observer: n.observer, Owner: owner})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, c := range chans {
		switch c := c.(type) {
		case *notify.SMTP:
			names = append(names, c.Display())
		case *notify.Webhook:
			names = append(names, c.Display())
		}
	}
	log.Info("expiry notifications on", "channels", strings.Join(names, " "), "interval", n.interval.String(), "node", sched.Owner())
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { sched.Run(ctx) })
	return func() { cancel(); wg.Wait() }, nil
}

const notifyUsage = "usage: scepter notify test [--to ADDRESS] [--smtp-url URL --notify-from ADDRESS ...] [--notify-webhook-url URL ...] (the notification settings of serve, from flags, environment or --config; --to with mail)"

func cmdNotify(ctx context.Context, e env, args []string) error {
	sub, err := subcommand(e, args, notifyUsage)
	if err != nil {
		return err
	}
	if sub == "test" {
		return notifyTest(ctx, e, args[1:])
	}
	return usageError{notifyUsage}
}

// notifyTest tests each notification channel serve's settings configure:
// one test mail to --to through the mail server, one test request (type
// "test", signed as notifications are) to the webhook. Every setting is
// checked before anything is sent; then each channel is tried and its
// outcome printed, and any failure makes it exit 1.
func notifyTest(ctx context.Context, e env, args []string) error {
	var sf storeFlags
	var nf notifyFlags
	var to string
	fs := newFlagSet(e, "notify test", "notify test [--to ADDRESS] [--smtp-url URL] [--notify-from ADDRESS] [--smtp-password-file FILE] [--notify-webhook-url URL] [--notify-webhook-secret-file FILE] [--config FILE]")
	sf.register(fs)
	nf.register(fs)
	fs.StringVar(&to, "to", "", "address to send the test mail to (required when a mail server is set, --smtp-url)")
	if err := parseFlags(fs, e, args, 0, sf.sections()); err != nil {
		return err
	}
	switch {
	case nf.smtpURL == "" && to != "":
		return usageError{"--to is for the test mail, but no mail server is set: set --smtp-url (or SCEPTER_SMTP_URL, or smtp_url in the --config file), or leave --to out to test the webhook alone"}
	case nf.smtpURL == "" && nf.webhookURL == "" && nf.webhookSecretFile == "":
		return usageError{"nothing to test: set --smtp-url (mail) or --notify-webhook-url (webhook), as for serve (or SCEPTER_SMTP_URL, SCEPTER_NOTIFY_WEBHOOK_URL, or smtp_url, notify_webhook_url in the --config file)"}
	case nf.smtpURL != "" && to == "":
		return usageError{"--to is required with --smtp-url: the address to send the test mail to"}
	}
	m, err := nf.mailer(e)
	if err != nil {
		return err
	}
	w, err := nf.webhook()
	if err != nil {
		return err
	}
	if m != nil {
		// A setting like the others: checked before the webhook is sent.
		if err := notify.CheckRecipient(to); err != nil {
			return usageError{"--to: " + err.Error()}
		}
	}
	var errs []error
	if m != nil {
		if err := notifyTestMail(ctx, m, to); err != nil {
			errs = append(errs, err)
		} else {
			fmt.Fprintf(e.stdout, "test message sent to %s through %s\n", to, m.Display())
		}
	}
	if w != nil {
		signed := "signed with --notify-webhook-secret-file"
		if !w.Signed() {
			signed = "unsigned: no --notify-webhook-secret-file, so the receiver cannot tell notifications from forged ones"
		}
		if status, err := w.SendTest(ctx, pki.SystemClock{}.Now()); err != nil {
			errs = append(errs, fmt.Errorf("test request not delivered (%s): %w", signed, err))
		} else {
			fmt.Fprintf(e.stdout, "test request delivered to %s: HTTP %d (%s)\n", w.Display(), status, signed)
		}
	}
	return errors.Join(errs...)
}

// notifyTestMail sends the test mail to to through m.
func notifyTestMail(ctx context.Context, m *notify.SMTP, to string) error {
	// As long as the server waits for one send: RFC 5321 gives the
	// answer to the end of DATA ten minutes.
	ctx, cancel := context.WithTimeout(ctx, m.SendBound())
	defer cancel()
	if err := m.SendTest(ctx, to, pki.SystemClock{}.Now()); err != nil {
		return fmt.Errorf("test message to %s not sent: %w", to, err)
	}
	return nil
}
