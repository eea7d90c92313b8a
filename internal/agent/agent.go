// Package agent is `scepter agent`, the device side of renewal: it keeps
// certificates on a machine fresh by renewing each one, over SCEP
// (RenewalReq) or EST (simplereenroll), when it reaches its renewal point,
// installs the new key and certificate so that a crash at any instant
// leaves a matching pair on disk (see install.go and docs/agent.md), and
// runs a command after each renewal. Time comes from an injected clock.
package agent

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// Agent keeps the configured certificates renewed.
type Agent struct {
	Config *Config
	// Clock decides what is due; nil is pki.SystemClock.
	Clock pki.Clock
	Log   *slog.Logger
	// Sleep waits d, or less when ctx ends (then it returns ctx's error);
	// nil is a real timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Jitter returns a number in [0, 1) that spreads retries; nil is
	// math/rand.
	Jitter func() float64
	// Renewers by protocol ("scep", "est"); a missing one is SCEPRenewer
	// or ESTRenewer.
	Renewers map[string]Renewer
	// Shell runs post_renew commands as Shell -c COMMAND; "" is /bin/sh.
	Shell string

	// hook is the installer's test hook (see layout.hook).
	hook func(step string) error
	// rechecks are the next questions about revocation while renewals
	// are parked, by certificate name (see parked.go). An Agent runs
	// one check at a time.
	rechecks map[string]*recheck
	// verifiedInPlace is, by certificate name, the SHA-256 of the
	// certificate in place last found to chain to the pinned CA
	// (checkInPlace).
	verifiedInPlace map[string][sha256.Size]byte
}

func (a *Agent) now() time.Time {
	if a.Clock == nil {
		return pki.SystemClock{}.Now()
	}
	return a.Clock.Now()
}

func (a *Agent) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}

func (a *Agent) sleep(ctx context.Context, d time.Duration) error {
	if a.Sleep != nil {
		return a.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (a *Agent) jitter() float64 {
	if a.Jitter != nil {
		return a.Jitter()
	}
	return rand.Float64()
}

func (a *Agent) backoff(failures int) time.Duration {
	return Backoff(failures, a.Config.RetryInitial, a.Config.RetryMax, a.jitter())
}

// retryWait is the wait before the next attempt after failures: the
// backoff, but at least what the server asked for (Retry-After on a 503 or
// 429, RFC 9110 §10.2.3; an EST 202's, RFC 7030 §4.2.3), capped at
// retry_max.
func (a *Agent) retryWait(failures int, o outcome) time.Duration {
	return max(a.backoff(failures), min(o.retryAfter, a.Config.RetryMax))
}

func (a *Agent) renewer(protocol string) Renewer {
	if r, ok := a.Renewers[protocol]; ok && r != nil {
		return r
	}
	if protocol == ProtocolEST {
		return ESTRenewer{}
	}
	return SCEPRenewer{}
}

// outcome is what one look at a certificate found and did.
type outcome struct {
	// point is the renewal point of the certificate now in place (zero
	// when it could not be read).
	point time.Time
	// due: the renewal point has passed (before any renewal).
	due bool
	// renewed is the new certificate, when one was installed.
	renewed *x509.Certificate
	// err is what went wrong apart from the post_renew command: the
	// renewal, the files.
	err error
	// retry: err is the renewal's (the server, the network), worth
	// another attempt soon.
	retry bool
	// retryAfter is the wait the server asked for (Retry-After on a 503
	// or 429, an EST 202), zero when none.
	retryAfter time.Duration
	// postRan: the post_renew command ran (a pending one, or this
	// renewal's), and postErr is its failure. Kept apart from err: the
	// command's retries back off on their own, and a command that keeps
	// failing must not hold back the renewals.
	postRan bool
	postErr error
}

// failure is the check's error for a report: err, or else the post_renew
// command's.
func (o outcome) failure() error {
	if o.err != nil {
		return o.err
	}
	return o.postFailure()
}

// postFailure is the post_renew command's failure, said of the renewal
// when this check made one.
func (o outcome) postFailure() error {
	if o.postErr != nil && o.renewed != nil {
		return fmt.Errorf("renewed, but %w", o.postErr)
	}
	return o.postErr
}

// checkOpts is what one check may do besides looking.
type checkOpts struct {
	// renew: renew the certificate if it is due (the renewal's backoff
	// has passed).
	renew bool
	// rerunPost: run a pending post_renew command (its own backoff has
	// passed). A renewal's own command runs whatever this says.
	rerunPost bool
}

// doAll lets a check do everything (--once).
var doAll = checkOpts{renew: true, rerunPost: true}

// check looks at one certificate: it finishes what an interrupted run
// left (its pending post_renew command when opts.rerunPost), reads the
// pair, and renews it when it is due and opts.renew.
func (a *Agent) check(ctx context.Context, c *Certificate, opts checkOpts) (o outcome) {
	log := a.log().With("cert", c.Name)
	l := newLayout(c, a.hook)
	l.warn = log.Warn
	if err := l.checkLinks(); err != nil {
		// Before the state directory is made: nothing is touched.
		return outcome{err: err}
	}
	if err := l.checkDirs(); err != nil {
		return outcome{err: err}
	}
	if err := l.checkBinding(); err != nil {
		// Another configuration's state directory: nothing is touched.
		return outcome{err: err}
	}
	err := l.stateDir()
	var unlock func()
	if err == nil {
		unlock, err = l.lock()
	}
	if err == nil {
		if err = l.bind(); err != nil {
			unlock()
			return outcome{err: err}
		}
	}
	if errors.Is(err, errLocked) {
		return outcome{err: err, retry: true}
	}
	if unsafe := new(errUnsafeState); errors.As(err, &unsafe) {
		// Refused whether due or not: the pair the paths show may be
		// someone else's already.
		return outcome{err: err}
	}
	if err != nil {
		// The state directory cannot be made or locked (a user who may
		// read the files and not write beside them): a certificate that
		// is not due can still be looked at; one that is, cannot be
		// renewed.
		o = outcome{err: fmt.Errorf("state directory %s: %w", l.state, err)}
		attempt, cancel := a.attempt(ctx)
		defer cancel()
		if p, perr := readPair(l); perr != nil {
			o.err = perr
		} else if perr := a.checkInPlace(attempt, c, l, p, log); perr != nil && !errors.As(perr, new(*caFetchStalled)) {
			o.err = perr
		} else if o.point = RenewalPoint(p.cert, c.RenewBefore); a.now().Before(o.point) {
			log.Info("not due for renewal", "serial", pki.SerialText(p.cert.SerialNumber), "not_after", p.cert.NotAfter.UTC(), "renew_at", o.point.UTC())
			return outcome{point: o.point}
		} else {
			o.due = true
		}
		return o
	}
	defer unlock()
	pending, err := l.recover()
	if err != nil {
		return outcome{err: fmt.Errorf("cleaning up after an interrupted run: %w", err)}
	}
	if pending && opts.rerunPost {
		fp := l.markerFingerprint()
		ended, err := a.awaitEarlierPostRenew(ctx, c, l, log)
		switch {
		case err != nil:
		case ended != "" && ended == fp:
			// Seen to end: it ran to its end, and its exit status went
			// with the run that started it.
			log.Info("the post_renew command an earlier run started for this renewal ran on after that run ended, and has ended now; not running it again (its exit status is not known: see what the command did)")
		default:
			log.Warn("a renewal was installed and its post_renew command has not run, or failed; running it now")
			err = a.postRenew(ctx, c, l, fp, log)
		}
		if err == nil {
			if cerr := l.clearMarker(); cerr != nil {
				log.Error("could not remove the post_renew marker", "err", cerr)
			}
		}
		// On failure the marker stays, and the command runs again after
		// its backoff. But a command that keeps failing (a service
		// stopped, a reload removed) must not keep the certificate from
		// being renewed until it expires: the check goes on, and the
		// failure is reported unless a renewal's own command succeeds.
		defer func() {
			if !o.postRan {
				o.postRan, o.postErr = true, err
			}
		}()
	}
	if done, err := l.completeLinks(); err != nil {
		// The certificate in place lacks its chain file: not a success,
		// and no reason to renew it again.
		return outcome{err: err}
	} else if done {
		log.Warn("chain_path was missing, as an install that stopped half-way leaves it; linked it to the chain of the certificate in place", "chain_path", c.ChainPath)
	}
	p, err := readPair(l)
	if err != nil {
		return outcome{err: err}
	}
	attempt, cancel := a.attempt(ctx)
	defer cancel()
	stalled := a.checkInPlace(attempt, c, l, p, log)
	if stalled != nil && !errors.As(stalled, new(*caFetchStalled)) {
		return outcome{err: stalled}
	}
	if k := l.pendingKey(); k != nil && pki.SamePublicKey(k.Public(), p.cert.PublicKey) {
		// The renewal it was kept for is in place (a run stopped after
		// the switch and before it was cleared).
		l.clearPendingKey()
	}
	if _, ok := l.refused(p.cert); !ok {
		// A record of a refusal of a certificate no longer in place.
		l.clearRefused()
	}
	if pk := l.loadPark(c, p.cert); pk != nil {
		return a.checkParked(ctx, c, l, p, pk, log)
	}
	now := a.now()
	point := RenewalPoint(p.cert, c.RenewBefore)
	o = outcome{point: point}
	attrs := []any{"serial", pki.SerialText(p.cert.SerialNumber), "not_after", p.cert.NotAfter.UTC(), "renew_at", point.UTC()}
	if rc, ok := a.renewer(c.Protocol).(renewableChecker); ok {
		if err := rc.Renewable(c, p.cert.PublicKey); err != nil {
			// Say it now, not at the renewal point when it is too late.
			o.err = err
			return o
		}
	}
	if now.Before(point) {
		log.Info("not due for renewal", attrs...)
		return o
	}
	o.due = true
	if !opts.renew {
		return o
	}
	if err := l.probeOutputDirs(); err != nil {
		// Not worth a retry: it takes the operator.
		o.err = fmt.Errorf("%w (nothing was asked of the server)", err)
		return o
	}
	if now.After(p.cert.NotAfter) {
		log.Warn("the certificate has expired; asking for its renewal anyway (a server may allow a grace period)", attrs...)
	}
	if stalled == nil {
		// After a stalled fetch renewBounded asks nothing: no "renewing".
		log.Info("renewing", append(attrs, "protocol", c.Protocol, "url", client.RedactURL(c.URL), "rekey", c.Rekey)...)
	}
	r, err := a.renewBounded(ctx, attempt, c, l, p, stalled, log)
	if rv := revokedRefusal(err, p.cert); rv != nil {
		// Final until someone acts: not retried at the normal pace, and
		// recorded for `agent status`, which asks no server.
		if serr := l.saveRefused(p.cert, rv, now); serr != nil {
			log.Warn("could not record that the renewal was refused as revoked; agent status will not show it", "err", serr)
		}
		o.err = rv
		return o
	}
	if err == nil || finalRefusal(err) {
		// The server answered otherwise: a hold lifted, say.
		l.clearRefused()
	}
	if err != nil {
		var local *localError
		o.err, o.retry, o.retryAfter = err, !errors.As(err, &local), client.RetryAfter(err)
		return o
	}
	if r.installed == nil {
		// Parked: the certificate in place stays until the new one
		// starts (or the old one expires); look again then.
		return outcome{point: r.wake}
	}
	o.renewed, o.point = r.installed, RenewalPoint(r.installed, c.RenewBefore)
	// In place but incomplete: a failure, not retried (it would ask for
	// yet another certificate).
	o.err = r.incomplete
	return a.afterInstall(ctx, c, l, o, log)
}

// afterInstall runs post_renew after a new certificate was installed.
func (a *Agent) afterInstall(ctx context.Context, c *Certificate, l *layout, o outcome, log *slog.Logger) outcome {
	if c.PostRenew != "" {
		o.postRan = true
		if o.postErr = a.postRenew(ctx, c, l, client.Fingerprint(o.renewed), log); o.postErr != nil {
			// Renewed, and the service still runs with the old
			// certificate: a failure to report (--once exits 1), and the
			// marker stays so that the command runs again.
			return o
		}
		if err := l.clearMarker(); err != nil {
			log.Error("could not remove the post_renew marker; the command will run again at the next start", "err", err)
		}
	}
	return o
}

// renewTimeout is Config.RenewTimeout, or its default in a Config made
// without ParseConfig.
func (a *Agent) renewTimeout() time.Duration {
	if a.Config.RenewTimeout > 0 {
		return a.Config.RenewTimeout
	}
	return DefaultRenewTimeout
}

// attempt is the context of one attempt's exchanges with the server: the
// check that the certificate in place is the pinned CA's (its CA
// certificates fetched) shares renew_timeout with the renewal after it,
// so that a server that never answers costs one renew_timeout, not two.
// A post_renew command has a timeout of its own and is not under it.
func (a *Agent) attempt(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, a.renewTimeout())
}

// renewBounded is renew under the attempt's deadline (renew_timeout,
// counted from the start of the check): the certificates are renewed one
// after another, and a server that accepts the connection and never
// answers would otherwise hold every certificate after this one for as
// long as the client's own timeouts allow, once per exchange. The deadline
// runs on the real clock, as the network does. ctx is the agent's own,
// attempt the one with the deadline. stalled, when set, is the CA
// certificates fetch that used the whole deadline: the attempt fails
// naming it, not the renewal's first connection.
func (a *Agent) renewBounded(ctx, attempt context.Context, c *Certificate, l *layout, p *pair, stalled error, log *slog.Logger) (*renewal, error) {
	if stalled != nil && ctx.Err() == nil {
		return nil, fmt.Errorf("the renewal attempt timed out after %s (renew_timeout): %w", a.renewTimeout(), stalled)
	}
	r, err := a.renew(attempt, c, l, p, log)
	if err != nil && ctx.Err() == nil && errors.Is(attempt.Err(), context.DeadlineExceeded) {
		return nil, fmt.Errorf("the renewal attempt timed out after %s (renew_timeout): %w", a.renewTimeout(), err)
	}
	return r, err
}

// renewal is what a successful renewal did: installed the new certificate,
// or parked it until wake (see parked.go).
type renewal struct {
	installed *x509.Certificate
	wake      time.Time
	// incomplete: installed is in place, and the install failed after
	// it switched it in (an *errIncomplete).
	incomplete error
}

// renew asks for the new certificate, checks it and installs it, or parks
// it when it starts well after this clock and the one in place is still
// good.
func (a *Agent) renew(ctx context.Context, c *Certificate, l *layout, p *pair, log *slog.Logger) (*renewal, error) {
	key := p.key
	usedPending := false
	// held: what the record of the kept key's request says of a hold.
	held := holdNotSaid
	// recorded: the record that the request with the key may have left
	// is there (none is kept without rekey).
	recorded := !c.Rekey
	if c.Rekey {
		kt := c.KeyType
		if kt == "" {
			kt = keys.KeyTypeOf(p.cert.PublicKey)
		}
		k := l.pendingKey()
		if k != nil && keys.KeyTypeOf(k.Public()) == kt {
			switch sent, ok := l.pendingSent(); {
			case !ok:
				// Kept by an attempt that failed before its request
				// left: nothing is held or issued for it.
				key = k
			case sent.protocol != "" && (sent.protocol != c.Protocol || sent.url != c.URL):
				// Its request (held, or issued and its answer lost) is
				// on another server, which this one knows nothing of.
				log.Info("not asking with the key of an earlier request: that request went to another server than the one configured now; asking with a new key",
					"earlier_protocol", sent.protocol, "earlier_url", client.RedactURL(sent.url))
				l.clearPendingKey()
				k = nil
			default:
				log.Info("asking again with the key of an earlier request" + keptBecause(sent.held))
				key, usedPending, recorded, held = k, true, sent.protocol != "", sent.held
			}
		} else {
			k = nil
		}
		if k == nil {
			var err error
			if key, err = keys.Generate(kt); err != nil {
				return nil, err
			}
			// Kept before the server is asked: if its answer is lost (a
			// full disk, a crash, the network), the next attempt asks
			// with the same key and is given the certificate already
			// issued for it, even when that renewal revoked the old one.
			// And a disk that cannot take the key stops the renewal
			// before anything is issued.
			if err := l.savePendingKey(key); err != nil {
				return nil, fmt.Errorf("keeping the new key before asking for its certificate: %w", err)
			}
		}
	}
	// The record that the request with the kept key may have left is
	// written just before it does: a crash after that finds the key, and
	// the record, again.
	sending := func() error {
		if recorded {
			return nil
		}
		if err := l.savePendingSent(c.Protocol, c.URL, notHeld); err != nil {
			return fmt.Errorf("recording that the request with the new key is sent: %w", err)
		}
		recorded = true
		return nil
	}
	res, err := a.renewer(c.Protocol).Renew(ctx, RenewRequest{Config: c, Old: p.cert, OldChain: p.extra, OldKey: p.key, Key: key, Now: a.now,
		Warnf: func(format string, args ...any) { log.Warn(fmt.Sprintf(format, args...)) }, Sending: sending})
	if err != nil {
		switch {
		case !c.Rekey:
		case finalRefusal(err):
			// Refused (the held request rejected, the key refused): the
			// key would only be refused again. The next attempt asks anew.
			l.clearPendingKey()
			if usedPending {
				log.Warn("the server refused the request; the next attempt makes a new request with a new key", "err", err)
			}
		default:
			a.sayKeyKept(c, l, err, recorded, held, log)
		}
		return nil, err
	}
	// Up to maxStartAhead ahead, VerifyIssued takes the start as this
	// clock's drift (and warns). Further ahead, the certificate is checked
	// (our key, chaining to the pinned CA) as of its start, and then
	// installed or parked below.
	verifyAt := a.now()
	ahead := res.Cert.NotBefore.Sub(verifyAt)
	if ahead > maxStartAhead {
		verifyAt = res.Cert.NotBefore
	}
	chain, err := client.VerifyIssued(res.Cert, key.Public(), res.CACerts, c.CAFingerprint, verifyAt,
		func(format string, args ...any) { log.Warn(fmt.Sprintf(format, args...)) })
	if err != nil {
		return nil, err
	}
	// A renewal keeps the subject (RFC 7030 §4.2.2; our server refuses
	// one that does not): a certificate for another name is not this
	// certificate's renewal, whoever signed it. So do its alternative
	// names: a TLS service reloaded with one that lost its DNS name fails
	// every client's host name check.
	inPlace := csr.Template{RawSubject: p.cert.RawSubject, DNSNames: p.cert.DNSNames,
		EmailAddresses: p.cert.EmailAddresses, IPAddresses: p.cert.IPAddresses, URIs: p.cert.URIs}
	if change := client.NameChange(res.Cert, inPlace); change != "" {
		return nil, fmt.Errorf("the renewed certificate names other than the one in place (%s): not installed", change)
	}
	if ahead > maxStartAhead {
		// Either this machine's clock is behind (the new certificate is
		// good, and the server may have revoked the one in place as
		// superseded) or the server's is ahead (relying parties refuse the
		// new one until its start, and the one in place is good). Only
		// when the one in place is of no use any more is the new one
		// installed before its start.
		attrs := []any{"serial", pki.SerialText(res.Cert.SerialNumber), "not_before", res.Cert.NotBefore.UTC(), "ahead", ahead.Round(time.Second)}
		// The first recheck comes within minutes whatever this answer's
		// nextUpdate: it may predate the revocation this renewal made.
		why, knowable, nextUpdate := a.replaceNow(ctx, c, p.cert, chain, p.extra, log)
		if why != "" {
			log.Warn("the renewed certificate is valid only from its not_before, after this machine's clock, which is behind the server's (set it right, with NTP say); installing it now: "+why, attrs...)
		} else {
			if err := l.savePark(key, res.Cert, chain); err != nil {
				return nil, fmt.Errorf("keeping the renewed certificate until its start: %w", err)
			}
			wake := parkedWake(p.cert, res.Cert, knowable, a.noteAsked(c.Name, res.Cert, a.now(), nextUpdate, knowable, true))
			// No promise of an earlier install on revocation that the
			// agent has no way to learn.
			earlier := "(or earlier, if the one in place expires or is revoked)"
			if !knowable {
				earlier = "(or earlier, if the one in place expires; whether it is revoked cannot be learned)"
			}
			log.Warn("the renewed certificate is valid only from its not_before, after this machine's clock: either this machine's clock is behind (set it right, with NTP say) or the server's is ahead; "+
				"the certificate in place stays, and the new one is installed at its not_before "+earlier,
				append(attrs, "parked", filepath.Join(l.state, parkedPEM), "install_at", minTime(res.Cert.NotBefore, p.cert.NotAfter).UTC(), "look_again_at", wake.UTC())...)
			return &renewal{wake: wake}, nil
		}
	}
	if err := a.installNew(c, l, key, res.Cert, chain, log); err != nil {
		var inc *errIncomplete
		if !errors.As(err, &inc) {
			return nil, err
		}
		return &renewal{installed: res.Cert, incomplete: err}, nil
	}
	return &renewal{installed: res.Cert}, nil
}

// keptBecause completes "asking again with the key of an earlier
// request" with why that key was kept, as the record of its request says
// (held): a request held for approval only once the server held it, and
// an older build's record, which does not say, in words that cover both.
func keptBecause(held sentHold) string {
	switch held {
	case heldForApproval:
		return ", which was held for approval"
	case notHeld:
		return ", kept by an attempt that got no certificate installed (its answer was lost or unusable, or the server said to try again later)"
	}
	return " (held for approval, or whose answer never got installed)"
}

// sayKeyKept says, after a renewal that failed and left its new key kept
// (err: not a final refusal), where the key is and that the next attempt
// asks with it. A request the server held for approval is recorded as
// held (sent: its record is there), so that the next attempt's words say
// so; a hold recorded before stays, whatever this answer.
func (a *Agent) sayKeyKept(c *Certificate, l *layout, err error, sent bool, held sentHold, log *slog.Logger) {
	at := filepath.Join(l.state, pendingKeyPEM)
	var pe *client.PendingError
	if errors.As(err, &pe) && sent {
		if held != heldForApproval {
			if serr := l.savePendingSent(c.Protocol, c.URL, heldForApproval); serr != nil {
				log.Warn("could not record that the request was held for approval; the next attempt asks about it all the same", "err", serr)
			}
		}
		held = heldForApproval
	}
	if held == heldForApproval {
		log.Info("the request is held for approval; its new key is kept, and the next attempt asks about it with that key", "key", at)
		return
	}
	log.Info("the new key made for this renewal is kept; the next attempt asks with it", "key", at)
}

// installNew installs a checked renewal and forgets the key kept for it.
func (a *Agent) installNew(c *Certificate, l *layout, key crypto.Signer, cert *x509.Certificate, chain []*x509.Certificate, log *slog.Logger) error {
	log.Info("installing the new key and certificate", "serial", pki.SerialText(cert.SerialNumber), "not_after", cert.NotAfter.UTC())
	err := l.install(key, cert, chain, c.PostRenew != "")
	var inc *errIncomplete
	if err != nil && !errors.As(err, &inc) {
		return fmt.Errorf("installing the renewed certificate: %w", err)
	}
	// In place, completely or not: the kept key and parked renewal are
	// done with.
	l.clearPendingKey()
	l.clearPark()
	a.forgetRecheck(c.Name)
	log.Info("renewed", "serial", pki.SerialText(cert.SerialNumber), "not_after", cert.NotAfter.UTC(),
		"renew_at", RenewalPoint(cert, c.RenewBefore).UTC(), "key_path", c.KeyPath, "cert_path", c.CertPath)
	return err // nil, or an *errIncomplete
}

// checkParked installs a parked renewal once this clock reaches its start,
// or before when the certificate in place has expired or is revoked;
// otherwise the certificate in place stays, and the agent looks again at
// the parked one's start (or the old one's expiry).
func (a *Agent) checkParked(ctx context.Context, c *Certificate, l *layout, p *pair, pk *parked, log *slog.Logger) outcome {
	attrs := []any{"serial", pki.SerialText(pk.cert.SerialNumber), "not_before", pk.cert.NotBefore.UTC(), "in_place_not_after", p.cert.NotAfter.UTC()}
	now := a.now()
	why := ""
	switch {
	case !now.Before(pk.cert.NotBefore):
		why = "its start has come"
	case !now.Before(p.cert.NotAfter):
		why = whyExpired
	default:
		// Asked only when a recheck is due: the periodic checks of the
		// long-running agent come in between.
		knowable, recheckAt := true, time.Time{}
		if a.recheckDue(c.Name, pk.cert, now) {
			var nextUpdate time.Time
			if why, knowable, nextUpdate = a.replaceNow(ctx, c, p.cert, pk.chain, p.extra, log); why == "" {
				recheckAt = a.noteAsked(c.Name, pk.cert, now, nextUpdate, knowable, false)
			}
		} else {
			r := a.rechecks[c.Name]
			knowable, recheckAt = r.knowable, r.next
		}
		if why == "" {
			wake := parkedWake(p.cert, pk.cert, knowable, recheckAt)
			log.Info("a renewed certificate waits for its start; the certificate in place stays until then",
				append(attrs, "install_at", minTime(pk.cert.NotBefore, p.cert.NotAfter).UTC(), "look_again_at", wake.UTC())...)
			return outcome{point: wake}
		}
	}
	log.Info("installing the renewed certificate kept until its start: "+why, attrs...)
	err := a.installNew(c, l, pk.key, pk.cert, pk.chain, log)
	var inc *errIncomplete
	if err != nil && !errors.As(err, &inc) {
		return outcome{err: err, retry: true, point: RenewalPoint(p.cert, c.RenewBefore)}
	}
	return a.afterInstall(ctx, c, l, outcome{renewed: pk.cert, point: RenewalPoint(pk.cert, c.RenewBefore), err: err}, log)
}

// maxOutput bounds what is kept (and logged) of a post_renew command's output.
const maxOutput = 8 << 10

// postRenew runs the certificate's post_renew command for the
// certificate whose fingerprint is forCert; a failure is logged, and the
// renewal stands. A shutdown of the agent does not cut the command short;
// its timeout does (the whole process group). A command an earlier run
// started and that still runs is waited for first: two never run at once.
// While it runs, the state directory names it (post-renew-running), for a
// run that starts after this one was killed.
func (a *Agent) postRenew(ctx context.Context, c *Certificate, l *layout, forCert string, log *slog.Logger) error {
	if c.PostRenew == "" {
		return nil
	}
	if _, err := a.awaitEarlierPostRenew(ctx, c, l, log); err != nil {
		log.Error("post_renew command not run", "command", c.PostRenew, "err", err)
		return err
	}
	shell := a.Shell
	if shell == "" {
		shell = "/bin/sh"
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.PostRenewTimeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, shell, "-c", c.PostRenew)
	cmd.Dir = a.Config.Dir
	cmd.Env = append(os.Environ(), "SCEPTER_AGENT_NAME="+c.Name, "SCEPTER_AGENT_KEY="+c.KeyPath, "SCEPTER_AGENT_CERT="+c.CertPath)
	out := &limitedBuffer{max: maxOutput}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 2 * time.Second
	ownProcessGroup(cmd)
	err := cmd.Start()
	if err == nil {
		if serr := l.saveRunning(running{pid: cmd.Process.Pid, identity: processIdentity(cmd.Process.Pid), forCert: forCert}); serr != nil {
			log.Warn("could not record the post_renew command that runs; were the agent killed while it runs, the next run could start it again beside it", "err", serr)
		}
		err = cmd.Wait()
		l.clearRunning()
	}
	attrs := []any{"command", c.PostRenew, "output", out.String()}
	switch {
	case cctx.Err() == context.DeadlineExceeded:
		err = fmt.Errorf("timed out after %s: %w", c.PostRenewTimeout, err)
	case errors.Is(err, exec.ErrWaitDelay):
		// The command succeeded; something it started in the background
		// (a daemon's reload) kept its output open.
		log.Info("post_renew command ran; a process it started still holds its output", attrs...)
		return nil
	}
	if err != nil {
		log.Error("post_renew command failed; the renewed certificate stays in place, and the command runs again later", append(attrs, "err", err)...)
		return fmt.Errorf("post_renew: %w", err)
	}
	log.Info("post_renew command ran", attrs...)
	return nil
}

type limitedBuffer struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	max       int
	truncated bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room < len(p) {
		b.buf.Write(p[:max(room, 0)])
		b.truncated = true
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := strings.TrimRight(b.buf.String(), "\n")
	if b.truncated {
		s += " […]"
	}
	return s
}

// RunOnce renews every certificate that is due, trying each up to
// Config.OnceAttempts times with backoff, and returns an error naming the
// certificates that failed (a due renewal that did not succeed, or files
// that cannot be read).
func (a *Agent) RunOnce(ctx context.Context) error {
	var failed []string
	for i := range a.Config.Certificates {
		c := &a.Config.Certificates[i]
		log := a.log().With("cert", c.Name)
		for attempt := 1; ; attempt++ {
			o := a.check(ctx, c, doAll)
			// The next run renews it again; say so now.
			a.warnIfLoop(c, o, a.now(), true, log)
			err := o.failure()
			if err == nil {
				break
			}
			if errors.Is(err, errLocked) {
				log.Warn("skipped: " + err.Error())
				break
			}
			if o.err == nil || !o.retry || attempt >= a.Config.OnceAttempts || ctx.Err() != nil {
				log.Error("failed", "err", err, "attempts", attempt)
				failed = append(failed, c.Name)
				break
			}
			wait := a.retryWait(attempt, o)
			log.Warn("renewal failed; trying again", "err", err, "attempt", attempt, "of", a.Config.OnceAttempts, "retry_in", wait.Round(time.Second))
			if err := a.sleep(ctx, wait); err != nil {
				failed = append(failed, c.Name)
				break
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d certificates failed: %s (see the log)", len(failed), len(a.Config.Certificates), strings.Join(failed, ", "))
	}
	return nil
}

// certState is what the long-running agent remembers of a certificate.
type certState struct {
	point    time.Time // renewal point of the certificate in place
	hold     time.Time // no renewal attempt before this (backoff)
	checked  time.Time // last look at the files
	failures int       // consecutive failures, not counting post_renew's
	// The pending post_renew command's own backoff: it is not run again
	// before postHold, and a failure of it leaves hold alone.
	postHold     time.Time
	postFailures int // consecutive failures of the command
}

// Run keeps the certificates renewed until ctx ends (SIGTERM, SIGINT),
// sleeping until the next renewal point, retry or periodic check; it
// returns nil when stopped.
func (a *Agent) Run(ctx context.Context) error {
	certs := a.Config.Certificates
	st := make([]certState, len(certs))
	a.log().Info("agent started", "certificates", len(certs), "config", a.Config.Path)
	for {
		now := a.now()
		for i := range certs {
			s := &st[i]
			if now.Before(s.checked) {
				// The clock was set back (a device clock corrected by
				// NTP): the next check and a retry's backoff, counted
				// from the old time, lie as far ahead as it went back,
				// and the agent would sleep that long. Look again now,
				// and retry no later than retry_max from now.
				a.log().Warn("the clock went back; checking again", "cert", certs[i].Name,
					"by", s.checked.Sub(now).Round(time.Second))
				s.checked = time.Time{}
				s.hold = minTime(s.hold, now.Add(a.Config.RetryMax))
				s.postHold = minTime(s.postHold, now.Add(a.Config.RetryMax))
			}
			if !a.shouldCheck(s, now) {
				continue
			}
			o := a.check(ctx, &certs[i], checkOpts{renew: !now.Before(s.hold), rerunPost: !now.Before(s.postHold)})
			if ctx.Err() != nil {
				a.log().Info("agent stopping")
				return nil
			}
			a.update(&certs[i], s, o, now)
		}
		wake := a.nextWake(st, now)
		a.log().Info("sleeping", "until", wake.UTC(), "for", wake.Sub(now).Round(time.Second))
		if err := a.sleep(ctx, wake.Sub(now)); err != nil {
			a.log().Info("agent stopping")
			return nil
		}
	}
}

func (a *Agent) shouldCheck(s *certState, now time.Time) bool {
	switch {
	case s.checked.IsZero() || now.Sub(s.checked) >= a.Config.CheckInterval:
		return true
	case postRetryDue(s, now):
		return true
	case now.Before(s.hold):
		return false
	}
	return s.point.IsZero() || !now.Before(s.point)
}

// postRetryDue: the post_renew command's retry time came after the last
// check (and so it has not been rerun since). A postHold left from a
// command that no longer is pending is past at the next check and so
// wakes no one again.
func postRetryDue(s *certState, now time.Time) bool {
	return s.postHold.After(s.checked) && !now.Before(s.postHold)
}

func (a *Agent) update(c *Certificate, s *certState, o outcome, now time.Time) {
	log := a.log().With("cert", c.Name)
	s.checked, s.point = now, o.point
	switch {
	case o.postErr != nil:
		s.postFailures++
		wait := a.backoff(s.postFailures)
		s.postHold = now.Add(wait)
		log.Error("failed", "err", o.postFailure(), "failures", s.postFailures, "retry_in", wait.Round(time.Second))
	case o.postRan:
		s.postFailures, s.postHold = 0, time.Time{}
	}
	switch {
	case o.err != nil:
		s.failures++
		wait := a.retryWait(s.failures, o)
		if errors.As(o.err, new(*errRevoked)) {
			// Nothing changes until someone acts on it.
			wait = RevokedRetry
		}
		s.hold = now.Add(wait)
		if errors.Is(o.err, errLocked) {
			log.Warn("skipped: "+o.err.Error(), "retry_in", wait.Round(time.Second))
		} else {
			log.Error("failed", "err", o.err, "failures", s.failures, "retry_in", wait.Round(time.Second))
		}
	case o.renewed != nil:
		s.failures = 0
		if wait, soon := a.warnIfLoop(c, o, now, false, log); soon {
			// Renewing again at once, or a second later, would loop.
			s.hold = now.Add(wait)
		}
	case !o.due:
		s.failures = 0
	}
}

// warnIfLoop warns when the certificate o renewed is due again at once or
// nearly (see LoopHold) and says how long to wait before the next renewal.
// A --once run (once) keeps no state to hold it by: its warning says that
// every run will renew it (r80: it promised a hold the next run did not
// know of).
func (a *Agent) warnIfLoop(c *Certificate, o outcome, now time.Time, once bool, log *slog.Logger) (time.Duration, bool) {
	if o.renewed == nil {
		return 0, false
	}
	wait, soon := LoopHold(o.renewed, o.point, now, a.Config.RetryMax)
	switch {
	case soon && once:
		log.Warn("the renewed certificate is already due for renewal, or nearly (renew_before close to or longer than its lifetime?): every --once run will renew it again; set renew_before well below the lifetime",
			"renew_before", c.RenewBefore, "renew_at", o.point.UTC(), "not_after", o.renewed.NotAfter.UTC())
	case soon:
		// The server issues a lifetime not much longer than renew_before
		// (or shorter), or the clocks disagree.
		log.Warn("the renewed certificate is already due for renewal, or nearly (renew_before close to or longer than its lifetime?): it is not renewed again before next_attempt; set renew_before well below the lifetime",
			"renew_before", c.RenewBefore, "renew_at", o.point.UTC(), "not_after", o.renewed.NotAfter.UTC(), "next_attempt", now.Add(wait).UTC())
	}
	return wait, soon
}

// nextWake is the earliest renewal point, retry or periodic check.
func (a *Agent) nextWake(st []certState, now time.Time) time.Time {
	var wake time.Time
	for _, s := range st {
		t := s.checked.Add(a.Config.CheckInterval)
		if !s.point.IsZero() && s.point.After(s.hold) {
			t = minTime(t, s.point)
		} else if !s.hold.IsZero() {
			t = minTime(t, s.hold)
		}
		if s.postHold.After(s.checked) {
			t = minTime(t, s.postHold)
		}
		if wake.IsZero() || t.Before(wake) {
			wake = t
		}
	}
	if !wake.After(now) {
		wake = now.Add(time.Second)
	}
	return wake
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// finalRefusal: the server answered the request with a refusal that asking
// again with the same request will not change (a SCEP FAILURE, an EST
// 4xx), not a pending request or an outage.
func finalRefusal(err error) bool {
	var fe *client.FailureError
	var he *client.HTTPError
	return errors.As(err, &fe) || errors.As(err, &he) && he.Status >= 400 && he.Status < 500 && he.Status != 429
}
