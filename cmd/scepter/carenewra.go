package main

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/cashare"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// raAutoRenew is how long before the SCEP RA certificate's end a server
// on SQLite renews it by itself.
const raAutoRenew = 30 * 24 * time.Hour

// cmdCARenewRA is `scepter ca renew-ra`: a new SCEP RA key and certificate
// from the current issuing CA, beside a running server, which takes it
// into service at its next CA reload; the old RA keeps decrypting the
// requests encrypted to it until its certificate expires.
func cmdCARenewRA(ctx context.Context, e env, args []string) error {
	var sf storeFlags
	var p11 pkcs11Flags
	var raValidity positiveDuration
	fs := newFlagSet(e, "ca renew-ra", "ca renew-ra [--validity 17520h] [--pkcs11-…]")
	sf.register(fs)
	p11.register(fs)
	fs.Var(&raValidity, "validity", "validity of the new RA certificate, a `duration`, cut at the issuing CA's end (default 2 years)")
	if err := parseFlags(fs, e, args, 0, sf.sections()); err != nil {
		return err
	}
	st, token, done, err := sf.openCAStore(ctx, p11)
	if err != nil {
		return err
	}
	defer done()
	host, _ := os.Hostname()
	clock := pki.SystemClock{}
	old, renewed, err := renewRA(ctx, st, sf.dataDir, ca.RenewRAOptions{Validity: time.Duration(raValidity), Token: token, GenerateKey: e.generateKey}, clock, host+" "+cliActor(), nil)
	switch {
	case errors.Is(err, ca.ErrNoCA):
		return sf.noCA(err)
	case errors.Is(err, ca.ErrRAIsCA):
		return fmt.Errorf("%w; nothing to renew (the RA's certificate is the issuing CA's: scepter ca rollover makes a new one)", err)
	case err != nil:
		return err
	}
	w := e.stdout
	fmt.Fprintln(w, "SCEP RA renewed (GetCACert serves the new one once the server reloads the CA, within its --ca-reload-interval):")
	fmt.Fprintf(w, "  subject:     %s\n", printable(renewed.Cert.Subject.String()))
	fmt.Fprintf(w, "  serial:      %s\n", pki.SerialText(renewed.Cert.SerialNumber))
	fmt.Fprintf(w, "  fingerprint: %s\n", ca.Fingerprint(renewed.Cert))
	fmt.Fprintf(w, "  valid:       %s\n", validity(renewed.Cert))
	if token != nil {
		fmt.Fprintf(w, "  key:         in %s\n", printable(token.Describe()))
	}
	fmt.Fprintf(w, "  replaces:    %s, which still decrypts requests encrypted to it until %s\n",
		pki.SerialText(old.Cert.SerialNumber), old.Cert.NotAfter.UTC().Format(time.RFC3339))
	if sf.store.url != "" {
		fmt.Fprintln(e.stderr, otherNodesRAHint)
	}
	return nil
}

// errRARenewedElsewhere: `ca renew-ra` on a node that lacks the RA
// another node renewed.
var errRARenewedElsewhere = errors.New("the SCEP RA was renewed on another node")

// otherNodesRAHint tells how the new RA reaches other nodes on a shared
// store. With keys in a token, ra.pkcs11 goes before ra.crt, as the docs
// and the server's own warning say: a node never sees a certificate
// whose key it lacks.
const otherNodesRAHint = "Other nodes on this store: bring the new RA there with 'scepter ca export-keys' here and 'scepter ca import-keys' there " +
	"(with keys in a token, copy DATA/ca/ra.pkcs11, then ra.crt, and DATA/ca/retired-ra/), or they keep serving the old one."

// renewRA renews the SCEP RA in dataDir (ca.RenewRA), its serial reserved
// in st before the issuing CA signs it (unless opts reserves it
// otherwise), records the new certificate in the inventory and audits the
// renewal, actor naming who renewed it. recorder puts the RA certificates
// of the CA into the inventory (a server's enroll.Service, which has
// reloaded the CA); nil makes one over st from the CA as it is now on
// disk.
//
// On a store that several nodes share, it holds the store's lock of CA
// changes (cashare.LockCAChanges, as `ca rollover` does) from before it
// looks in the store until the new RA's audit event is written, and
// refuses (errRARenewedElsewhere, nothing made) when the store records an
// RA renewed on another node that dataDir lacks: a renewal here would make
// a second new RA that nodes disagree about, and leave the first one
// valid and unused. Of two renewals at once on two nodes, the second
// waits for the first and is refused so.
func renewRA(ctx context.Context, st store.Store, dataDir string, opts ca.RenewRAOptions, clock pki.Clock, actor string,
	recorder func(context.Context) error) (old, renewed *pki.RA, err error) {
	if opts.ReserveRA == nil {
		opts.ReserveRA = raSerialReserve(st, clock)
	}
	unlock, err := cashare.LockCAChanges(ctx, st)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	caDir := filepath.Join(dataDir, "ca")
	opts.Check = func(a *ca.Authority, now time.Time) error {
		lacked, err := renewedRAsLacked(ctx, st, a, caDir, now)
		if err != nil {
			return fmt.Errorf("looking in the store for an RA renewed on another node: %w; nothing was renewed", err)
		}
		if len(lacked) == 0 || lacked[0].onDisk {
			return nil
		}
		l := lacked[0]
		return fmt.Errorf("%w: the store records SCEP RA certificate %s, renewed at %s by %s, which this node lacks; "+
			"bring it here instead of making another (%s), then run this again if it is still needed; nothing was renewed",
			errRARenewedElsewhere, pki.SerialText(l.cert.SerialNumber), l.at.UTC().Format(time.RFC3339), l.by, howToBringRA(a))
	}
	old, renewed, err = ca.RenewRA(dataDir, opts, clock)
	if err != nil {
		return nil, nil, err
	}
	if recorder == nil {
		a, err := ca.LoadWithToken(dataDir, opts.Token, clock)
		if err != nil {
			return nil, nil, fmt.Errorf("the RA was renewed, but the CA could not be loaded to record it (the server records it at its next CA reload): %w", err)
		}
		recorder = func(ctx context.Context) error { return recordRAs(ctx, st, a, clock) }
	}
	if err := recorder(ctx); err != nil {
		return nil, nil, fmt.Errorf("the RA was renewed, but could not be recorded in the inventory (the server records it at its next CA reload): %w", err)
	}
	// The store's IssuerID: the hex SHA-256 of the issuing CA's DER.
	issuerSum := sha256.Sum256(renewed.Chain[1].Raw)
	ev := pki.AuditEvent{Time: clock.Now(), Type: pki.EventRenewed, Actor: actor, Profile: enroll.RAProfileName,
		SerialHex: renewed.Cert.SerialNumber.Text(16), IssuerID: hex.EncodeToString(issuerSum[:]), Subject: renewed.Cert.Subject.String(), Outcome: "success",
		Detail: fmt.Sprintf("SCEP RA certificate renewed with a new key, valid until %s; it replaces the RA certificate %s, whose key decrypts requests encrypted to it until %s",
			renewed.Cert.NotAfter.UTC().Format(time.RFC3339), pki.SerialText(old.Cert.SerialNumber), old.Cert.NotAfter.UTC().Format(time.RFC3339))}
	if err := st.AppendAudit(ctx, ev); err != nil {
		return nil, nil, fmt.Errorf("the RA was renewed, but its audit event could not be written: %w", err)
	}
	return old, renewed, nil
}

// autoRenewRA is serve's renewal of its SCEP RA (raRenewalDue): the
// running server reloads the CA at once, so that GetCACert serves the new
// RA, and records it. A failure is logged; the expiry warning that
// follows says what to do, and the next day's check tries again.
// generateKey makes the new RA key (nil: keys.Generate; env.generateKey).
func autoRenewRA(ctx context.Context, st store.Store, authority *ca.Authority, svc *enroll.Service, dataDir string, token keys.Token, generateKey func(keyType string) (crypto.Signer, error), clock pki.Clock, actor string, log *slog.Logger) {
	_, ra := authority.Active(clock.Now())
	log.Info("the SCEP RA certificate ends soon; renewing it", "serial", pki.SerialText(ra.Cert.SerialNumber), "not_after", ra.Cert.NotAfter.UTC().Format(time.RFC3339))
	record := func(ctx context.Context) error {
		if err := authority.Reload(clock.Now()); err != nil {
			return fmt.Errorf("reloading the CA: %w", err)
		}
		return svc.RecordRACertificates(ctx)
	}
	old, renewed, err := renewRA(ctx, st, dataDir, ca.RenewRAOptions{Token: token, GenerateKey: generateKey}, clock, actor, record)
	if err != nil {
		log.Error("renewing the SCEP RA certificate", "err", err)
		return
	}
	log.Warn("the SCEP RA was renewed with a new key and certificate; GetCACert serves it, and the old RA decrypts requests encrypted to it until it expires",
		"serial", pki.SerialText(renewed.Cert.SerialNumber), "not_after", renewed.Cert.NotAfter.UTC().Format(time.RFC3339),
		"old_serial", pki.SerialText(old.Cert.SerialNumber), "old_not_after", old.Cert.NotAfter.UTC().Format(time.RFC3339))
}

// recordRAs puts the SCEP RA certificates of a, a CA a command loaded,
// into the inventory of st that are not there yet
// (enroll.Service.RecordRACertificates, as a server's start and reloads
// do).
func recordRAs(ctx context.Context, st store.Store, a *ca.Authority, clock pki.Clock) error {
	svc, err := enroll.New(st, a, clock, nil, enroll.Config{})
	if err != nil {
		return err
	}
	return svc.RecordRACertificates(ctx)
}
