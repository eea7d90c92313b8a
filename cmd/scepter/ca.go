package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

const caUsage = "usage: scepter ca rollover [--switch-at RFC3339 | --switch-in 720h] [--key-type TYPE] [--scep-ra MODE] [--data-dir DIR]\n       scepter ca show [--data-dir DIR]"

// defaultSwitchIn is how far ahead a rollover switches when no time is
// given: long enough for clients that poll GetNextCACert to fetch it.
const defaultSwitchIn = 720 * time.Hour

// cmdCA manages the CA: ca rollover, ca show (issue 4).
func cmdCA(ctx context.Context, e env, args []string) error {
	sub, err := subcommand(e, args, caUsage)
	if err != nil {
		return err
	}
	switch sub {
	case "rollover":
		return cmdCARollover(ctx, e, args[1:])
	case "show":
		return cmdCAShow(ctx, e, args[1:])
	}
	return usageError{caUsage}
}

func cmdCARollover(ctx context.Context, e env, args []string) error {
	var sf storeFlags
	var switchAtS, keyType, raMode string
	var switchIn time.Duration
	fs := newFlagSet(e, "ca rollover", "ca rollover [--switch-at RFC3339 | --switch-in 720h] [--key-type TYPE] [--scep-ra MODE]")
	sf.register(fs)
	fs.StringVar(&switchAtS, "switch-at", "", "when the next CA becomes current, RFC 3339 (e.g. 2027-01-31T00:00:00Z)")
	fs.DurationVar(&switchIn, "switch-in", 0, "when the next CA becomes current, from now (default 720h when --switch-at is not given)")
	fs.StringVar(&keyType, "key-type", "", "key type of the next issuing CA: p256, p384, rsa2048, rsa3072, rsa4096 (default: that of the current one)")
	fs.StringVar(&raMode, "scep-ra", "", "RA of the next CA: 'separate' or 'ca' (default: as the current one)")
	if err := parseFlags(fs, e, args, 0, sf.sections()); err != nil {
		return err
	}
	if keyType != "" && !keys.ValidKeyType(keyType) {
		return usageError{fmt.Sprintf("--key-type %q: want p256, p384, rsa2048, rsa3072 or rsa4096", keyType)}
	}
	if raMode != "" && raMode != ca.RAModeSeparate && raMode != ca.RAModeCA {
		return usageError{fmt.Sprintf("--scep-ra %q: want separate or ca", raMode)}
	}
	clock := pki.SystemClock{}
	now := clock.Now()
	var switchAt time.Time
	switch {
	case switchAtS != "" && switchIn != 0:
		return usageError{"--switch-at and --switch-in exclude each other"}
	case switchAtS != "":
		t, err := time.Parse(time.RFC3339, switchAtS)
		if err != nil {
			return usageError{fmt.Sprintf("--switch-at %q: want an RFC 3339 time such as 2027-01-31T00:00:00Z", switchAtS)}
		}
		switchAt = t
	case switchIn < 0:
		return usageError{"--switch-in must be positive"}
	case switchIn > 0:
		switchAt = now.Add(switchIn)
	default:
		switchAt = now.Add(defaultSwitchIn)
	}

	// The store first: a rollover is audited, and a data directory without
	// a database is not one a server uses.
	st, err := sf.openExistingStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	iss, ra, err := ca.Rollover(sf.dataDir, ca.RolloverOptions{KeyType: keyType, SwitchAt: switchAt, RAMode: raMode}, clock)
	if errors.Is(err, ca.ErrNoCA) {
		return fmt.Errorf("%w: run 'scepter serve --data-dir %s' first, or pass the --data-dir the server uses", err, sf.dataDir)
	}
	if err != nil {
		return err
	}
	a, err := ca.Load(sf.dataDir, clock)
	if err != nil {
		return err
	}
	cur, _ := a.Active(now)
	at, _ := a.SwitchAt()

	raDesc := "the issuing CA itself (RA mode ca)"
	if !ra.IsCA {
		raDesc = fmt.Sprintf("%s (%s)", ra.Cert.Subject, ca.Fingerprint(ra.Cert))
	}
	err = st.AppendAudit(ctx, pki.AuditEvent{
		Time: now, Type: pki.EventCARollover, Actor: cliActor(), IssuerID: iss.ID, Subject: iss.Cert.Subject.String(), Outcome: "success",
		Detail: fmt.Sprintf("next issuing CA %s (%s, %s), RA %s, switch at %s; replaces issuing CA %s (%s)",
			iss.Cert.Subject, ca.Fingerprint(iss.Cert), keys.KeyTypeOf(iss.Cert.PublicKey), raDesc, at.Format(time.RFC3339),
			cur.Cert.Subject, ca.Fingerprint(cur.Cert)),
	})
	if err != nil {
		return fmt.Errorf("the next CA was created, but its audit event could not be written: %w", err)
	}

	w := e.stdout
	fmt.Fprintln(w, "Next issuing CA created (GetNextCACert serves it until the switch):")
	fmt.Fprintf(w, "  subject:     %s\n", iss.Cert.Subject)
	fmt.Fprintf(w, "  fingerprint: %s\n", ca.Fingerprint(iss.Cert))
	fmt.Fprintf(w, "  key type:    %s\n", keys.KeyTypeOf(iss.Cert.PublicKey))
	fmt.Fprintf(w, "  valid:       %s\n", validity(iss.Cert))
	fmt.Fprintf(w, "  RA:          %s\n", raDesc)
	fmt.Fprintf(w, "  switch at:   %s\n", at.Format(time.RFC3339))
	fmt.Fprintf(e.stderr, "Running servers announce the next CA once they reload it (a restart does); certificates of %s stay valid and revocable after the switch.\n", cur.Cert.Subject)
	return nil
}

func cmdCAShow(_ context.Context, e env, args []string) error {
	var sf storeFlags
	fs := newFlagSet(e, "ca show", "ca show [--data-dir DIR]")
	sf.register(fs)
	if err := parseFlags(fs, e, args, 0, sf.sections()); err != nil {
		return err
	}
	clock := pki.SystemClock{}
	a, err := ca.Load(sf.dataDir, clock)
	if errors.Is(err, ca.ErrNoCA) {
		return fmt.Errorf("%w: run 'scepter serve --data-dir %s' first, or pass the --data-dir the server uses", err, sf.dataDir)
	}
	if err != nil {
		return err
	}
	now := clock.Now()
	w := e.stdout
	cur, curRA := a.Active(now)
	fmt.Fprintln(w, "Root CA")
	showCert(w, a.Root, false)
	fmt.Fprintln(w, "\nCurrent issuing CA")
	showCert(w, cur.Cert, true)
	showRA(w, curRA)
	fmt.Fprint(w, "\nNext issuing CA")
	shown := map[string]bool{cur.ID: true}
	if next, nextRA, ok := a.Next(now); ok {
		at, _ := a.SwitchAt()
		fmt.Fprintf(w, " (becomes current at %s)\n", at.Format(time.RFC3339))
		showCert(w, next.Cert, true)
		showRA(w, nextRA)
		shown[next.ID] = true
	} else {
		fmt.Fprintln(w, "\n  none (scepter ca rollover creates one)")
	}
	fmt.Fprintln(w, "\nPrevious issuing CAs")
	n := 0
	for _, i := range a.Issuers() {
		if shown[i.ID] {
			continue
		}
		if n > 0 {
			fmt.Fprintln(w)
		}
		showCert(w, i.Cert, true)
		n++
	}
	if n == 0 {
		fmt.Fprintln(w, "  none")
	}
	return nil
}

func showCert(w io.Writer, c *x509.Certificate, withID bool) {
	fmt.Fprintf(w, "  subject:     %s\n", c.Subject)
	fmt.Fprintf(w, "  fingerprint: %s\n", ca.Fingerprint(c))
	if withID {
		// The issuer ID of the store and of profiles' issuer setting.
		sum := ca.Fingerprint(c)
		fmt.Fprintf(w, "  issuer id:   %s\n", sum[len("sha256:"):])
	}
	fmt.Fprintf(w, "  key type:    %s\n", keys.KeyTypeOf(c.PublicKey))
	fmt.Fprintf(w, "  valid:       %s\n", validity(c))
}

func showRA(w io.Writer, ra *pki.RA) {
	if ra.IsCA {
		fmt.Fprintln(w, "  RA:          the issuing CA itself (RA mode ca)")
		return
	}
	fmt.Fprintf(w, "  RA:          %s (%s, valid %s)\n", ra.Cert.Subject, ca.Fingerprint(ra.Cert), validity(ra.Cert))
}

func validity(c *x509.Certificate) string {
	return c.NotBefore.UTC().Format(time.RFC3339) + " to " + c.NotAfter.UTC().Format(time.RFC3339)
}
