package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/cashare"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/ocsp"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

const caUsage = "usage: scepter ca rollover [--switch-at RFC3339 | --switch-in 720h] [--key-type TYPE] [--scep-ra MODE] [--root-key FILE] [--root-key-passphrase-file F] [--data-dir DIR]\n" +
	"       scepter ca rollover --discard [--pkcs11-…] [--data-dir DIR]\n" +
	"       scepter ca renew-ra [--validity 17520h] [--pkcs11-…] [--data-dir DIR]\n" +
	"       scepter ca show [--data-dir DIR]\n" +
	"       scepter ca root export --out FILE [--remove] [--passphrase-file F] [--root-key-passphrase-file F] [--data-dir DIR]\n" +
	"       scepter ca root crl [--revoke ISSUER-ID | --revoke-cert FILE]... [--reason REASON] [--validity 8760h] [--out FILE] [--root-key FILE] [--root-key-passphrase-file F] [--data-dir DIR]\n" +
	"       scepter ca export-keys --out FILE [--include-root] [--passphrase-file F] [--data-dir DIR]\n" +
	"       scepter ca import-keys --in FILE [--passphrase-file F] [--data-dir DIR]"

const caRootUsage = "usage: scepter ca root export --out FILE [--remove] [--passphrase-file F] [--root-key-passphrase-file F] [--data-dir DIR]\n" +
	"       scepter ca root crl [--revoke ISSUER-ID | --revoke-cert FILE]... [--reason REASON] [--validity 8760h] [--out FILE] [--root-key FILE] [--root-key-passphrase-file F] [--data-dir DIR]"

// rootKeyPassphraseEnv holds the passphrase of an encrypted root key, for
// commands that read it (not with --root-key-passphrase-file too).
const rootKeyPassphraseEnv = "SCEPTER_ROOT_KEY_PASSPHRASE"

// defaultSwitchIn is how far ahead a rollover switches when no time is
// given: long enough for clients that poll GetNextCACert to fetch it.
const defaultSwitchIn = 720 * time.Hour

// positiveDuration is a duration flag whose zero stands for "not given":
// its default is chosen later (ca rollover --switch-in, ca renew-ra
// --validity). Given as 0 or less, on the command line, in the environment
// or in the config file, it is refused, not taken silently for that
// default.
type positiveDuration time.Duration

func (d *positiveDuration) String() string { return time.Duration(*d).String() }

func (d *positiveDuration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%w; want a duration such as 90s, 15m or 24h (hours are the largest unit: 30 days is 720h)", err)
	}
	if v <= 0 {
		return errors.New("must be positive (leave the flag out for its default)")
	}
	*d = positiveDuration(v)
	return nil
}

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
	case "export-keys":
		return cmdCAExportKeys(ctx, e, args[1:])
	case "import-keys":
		return cmdCAImportKeys(ctx, e, args[1:])
	case "renew-ra":
		return cmdCARenewRA(ctx, e, args[1:])
	case "root":
		sub, err := subcommand(e, args[1:], caRootUsage)
		if err != nil {
			return err
		}
		switch sub {
		case "export":
			return cmdCARootExport(ctx, e, args[2:])
		case "crl":
			return cmdCARootCRL(ctx, e, args[2:])
		}
		return usageError{caRootUsage}
	}
	return usageError{caUsage}
}

func cmdCARollover(ctx context.Context, e env, args []string) error {
	var sf storeFlags
	var switchAtS, keyType, raMode, rootKeyFile, passFile string
	var switchIn positiveDuration
	var p11 pkcs11Flags
	var discard bool
	fs := newFlagSet(e, "ca rollover", "ca rollover [--switch-at RFC3339 | --switch-in 720h] [--key-type TYPE] [--scep-ra MODE] [--root-key FILE] [--root-key-passphrase-file F] [--pkcs11-…] | --discard")
	sf.register(fs)
	p11.register(fs)
	fs.StringVar(&rootKeyFile, "root-key", "", "the root CA key, when it is not in DATA_DIR/ca/root.key (taken offline with 'scepter ca root export --remove'); encrypted or not")
	fs.StringVar(&passFile, "root-key-passphrase-file", "", "file whose first line is the passphrase of an encrypted root key (or "+rootKeyPassphraseEnv+")")
	fs.StringVar(&switchAtS, "switch-at", "", "when the next CA becomes current, RFC 3339 (e.g. 2027-01-31T00:00:00Z)")
	fs.Var(&switchIn, "switch-in", "when the next CA becomes current, a `duration` from now (default 720h when --switch-at is not given)")
	fs.StringVar(&keyType, "key-type", "", "key type of the next issuing CA: p256, p384, rsa2048, rsa3072, rsa4096 (default: that of the current one)")
	fs.StringVar(&raMode, "scep-ra", "", "RA of the next CA: 'separate' or 'ca' (default: as the current one)")
	fs.BoolVar(&discard, "discard", false, "undo a rollover before its switch: remove the next CA from the store and DATA_DIR/ca/next (and its keys from the token given with --pkcs11-…)")
	if err := parseFlags(fs, e, args, 0, sf.sections()); err != nil {
		return err
	}
	if discard {
		if switchAtS != "" || switchIn != 0 || keyType != "" || raMode != "" || rootKeyFile != "" || passFile != "" {
			return usageError{"--discard takes no other rollover option"}
		}
		return discardRollover(ctx, e, sf, p11)
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
	case switchIn != 0:
		switchAt = now.Add(time.Duration(switchIn))
	default:
		switchAt = now.Add(defaultSwitchIn)
	}

	pass, err := rootKeyPassphrase(e, passFile)
	if err != nil {
		return err
	}
	defer clear(pass)

	// With a token, the next CA's keys are made in it.
	st, token, done, err := sf.openCAStore(ctx, p11)
	if err != nil {
		return err
	}
	defer done()
	// On a store that several nodes share, another node may have rolled
	// over already: its next CA is the one to bring here. The new one is
	// recorded at once, so that a rollover on another node is refused.
	host, _ := os.Hostname()
	// The next RA certificate's serial is reserved in the store before it
	// is signed, as every issuance's, and it is recorded below.
	iss, ra, err := cashare.Rollover(ctx, st, sf.dataDir, ca.RolloverOptions{KeyType: keyType, SwitchAt: switchAt, RAMode: raMode,
		RootKeyFile: rootKeyFile, RootKeyPassphrase: pass, Token: token, ReserveRA: raSerialReserve(st, clock),
		GenerateKey: e.generateKey}, clock, host+" "+cliActor())
	if errors.Is(err, ca.ErrNoCA) {
		return sf.noCA(err)
	}
	var optErr *ca.RolloverOptionError
	if errors.As(err, &optErr) {
		return rolloverOptionRefusal(optErr, switchAtS, switchIn, raMode, keyType)
	}
	if err != nil {
		return rootKeyHint(err)
	}
	a, _, err := loadCLICA(ctx, st, sf.dataDir, nil, clock)
	if err != nil {
		return err
	}
	cur, _ := a.Active(now)
	at, _ := a.SwitchAt()
	// The next RA certificate goes into the inventory now, as the first
	// start's does, not only at the servers' next CA reload: until then
	// OCSP would not know it, and a discard would not revoke it.
	if err := recordRAs(ctx, st, a, clock); err != nil {
		fmt.Fprintf(e.stderr, "warning: the next CA's SCEP RA certificate could not be recorded in the inventory (its serial is reserved; servers record it at their next CA reload): %v\n", err)
	}

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
	fmt.Fprintf(w, "  subject:     %s\n", printable(iss.Cert.Subject.String()))
	fmt.Fprintf(w, "  fingerprint: %s\n", ca.Fingerprint(iss.Cert))
	fmt.Fprintf(w, "  key type:    %s\n", keys.KeyTypeOf(iss.Cert.PublicKey))
	fmt.Fprintf(w, "  valid:       %s\n", validity(iss.Cert))
	fmt.Fprintf(w, "  RA:          %s\n", printable(raDesc))
	fmt.Fprintf(w, "  switch at:   %s\n", at.Format(time.RFC3339))
	if token != nil {
		fmt.Fprintf(w, "  keys:        in %s\n", token.Describe())
	}
	fmt.Fprintf(e.stderr, "Running servers announce the next CA once they reload it (a restart does); certificates of %s stay valid and revocable after the switch.\n", printable(cur.Cert.Subject.String()))
	return nil
}

// rolloverOptionRefusal is a rollover option out of range as a usage
// error (exit 2) naming the flag it came from, as every other value out
// of range is; the option left at its default is named as such.
func rolloverOptionRefusal(err *ca.RolloverOptionError, switchAtS string, switchIn positiveDuration, raMode, keyType string) error {
	msg := strings.TrimPrefix(err.Error(), "ca: ")
	switch err.Option {
	case "SwitchAt":
		switch {
		case switchAtS != "":
			return usageError{fmt.Sprintf("--switch-at %s: %s", switchAtS, msg)}
		case switchIn != 0:
			return usageError{fmt.Sprintf("--switch-in %s: %s", time.Duration(switchIn), msg)}
		}
		return usageError{fmt.Sprintf("%s (--switch-in defaults to %s; give --switch-at or a shorter --switch-in)", msg, defaultSwitchIn)}
	case "RAMode":
		switch {
		case raMode != "":
			return usageError{fmt.Sprintf("--scep-ra %s: %s", raMode, msg)}
		case keyType != "":
			return usageError{fmt.Sprintf("--key-type %s: %s (the current CA's RA mode is kept without --scep-ra)", keyType, msg)}
		}
	}
	return err
}

// discardRollover is ca rollover --discard. The next CA's keys in a
// PKCS#11 token are destroyed when the token is given (never one that
// another generation still names); without it, the output names them.
func discardRollover(ctx context.Context, e env, sf storeFlags, p11 pkcs11Flags) error {
	// The token is opened before anything is discarded: one given but
	// not reachable stops the command while it can still be run again.
	st, token, done, err := sf.openCAStore(ctx, p11)
	if err != nil {
		return err
	}
	defer done()
	// Read before the discard removes the references to them.
	tokenKeys, err := ca.NextTokenKeys(sf.dataDir)
	if err != nil {
		return err
	}
	fileKeys, err := ca.NextFileKeys(sf.dataDir)
	if err != nil {
		return err
	}
	now := pki.SystemClock{}.Now()
	d, err := cashare.Discard(ctx, st, sf.dataDir, now, cliActor())
	// Its key files are destroyed with DATA/ca/next (a removal that
	// failed half-way may have destroyed some): each gets its
	// key.destroyed event once it is gone, as its token keys do.
	fileKeysErr := recordKeyDestructions(ctx, st, discardedFileKeyRecords(sf.dataDir, d.IssuerID, fileKeys, err))
	if err != nil {
		return errors.Join(err, fileKeysErr)
	}
	where := "from the store and " + filepath.Join(sf.dataDir, "ca", ca.NextDir)
	switch {
	case !d.FromDisk:
		where = "from the store (this node did not hold it)"
	case d.Before:
		where = "from " + filepath.Join(sf.dataDir, "ca", ca.NextDir) + " (discarded from the store before, on another node)"
	case !d.FromStore:
		where = "from " + filepath.Join(sf.dataDir, "ca", ca.NextDir) + " (the store had not recorded it; it keeps the discard, so that no node records it later)"
	}
	fmt.Fprintf(e.stdout, "Next issuing CA %s (switch at %s) discarded %s.\n", d.IssuerID, d.SwitchAt.Format(time.RFC3339), where)
	if d.Cert != nil {
		// Clients that fetched it with GetNextCACert hold a CA certificate
		// of the root: listing it on the root's CRL takes this.
		fmt.Fprintf(e.stdout, "Its certificate, to list it on the root's CRL (save it, then 'scepter ca root crl --revoke-cert FILE --reason cessationOfOperation'):\n%s",
			pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d.Cert}))
	}
	// What the discarded CA issued before its switch (its RA and OCSP
	// responder certificates) must not stay valid in the inventory, and
	// this node's responder for it must not outlive it.
	revoked, revokeErr := cashare.RevokeIssuedBy(ctx, st, d.IssuerID, now, cliActor())
	if revoked > 0 {
		fmt.Fprintf(e.stdout, "Revoked in the inventory, reason cessationOfOperation, the %d certificate(s) it issued (its RA and OCSP responder certificates).\n", revoked)
	}
	removed, responderLeft, responderKeys, responderErr := ocsp.RemoveDelegate(filepath.Join(sf.dataDir, responderDir), token, d.IssuerID)
	auditErr := errors.Join(fileKeysErr, recordKeyDestructions(ctx, st, responderKeys))
	for _, r := range removed {
		fmt.Fprintf(e.stdout, "Removed its OCSP responder's %s.\n", r)
	}
	if len(responderLeft) > 0 {
		fmt.Fprintf(e.stdout, "Its OCSP responder's keys are still in the PKCS#11 token (no token was given, so they were not removed); remove them with the token's own tools:\n  %s\n",
			printableLines(strings.Join(responderLeft, "\n  ")))
	}
	fmt.Fprintln(e.stderr, "Running servers stop announcing it at their next reload, also those that hold it in their DATA/ca/next: the store keeps the discard, so none records it again or switches to it; they warn until 'scepter ca rollover --discard' is run there too, which removes their copies. A client that fetched it with GetNextCACert may still expect it until it fetches the CA again.")
	var keysErr error
	if d.FromDisk {
		var destroyed []pki.KeyDestruction
		destroyed, keysErr = discardTokenKeys(e, token, d.IssuerID, tokenKeys)
		auditErr = errors.Join(auditErr, recordKeyDestructions(ctx, st, destroyed))
	}
	return errors.Join(revokeErr, responderErr, keysErr, auditErr)
}

// recordKeyDestructions writes a key.destroyed event for each of ds,
// actor this command. A write that fails undoes no destruction: it is
// returned, so that the command fails and says which is missing.
func recordKeyDestructions(ctx context.Context, st store.Store, ds []pki.KeyDestruction) error {
	var errs []error
	for _, k := range ds {
		if err := st.AppendAudit(ctx, k.Event(pki.SystemClock{}.Now(), cliActor())); err != nil {
			errs = append(errs, fmt.Errorf("the %s key at %s was destroyed, but its %s audit event could not be written: %w", k.Role, k.Where, pki.EventKeyDestroyed, err))
		}
	}
	return errors.Join(errs...)
}

// discardedFileKeyRecords is, for the audit trail, what a discard of
// issuing CA issuerID (discardErr its error, nil when it succeeded) did to
// the key files of DATA/ca/next that ca.NextFileKeys listed before it:
// each destroyed, or not destroyed, left where a removal that failed
// half-way left it. Those it did not touch are in none.
func discardedFileKeyRecords(dataDir, issuerID string, listed []ca.NextFileKey, discardErr error) []pki.KeyDestruction {
	var out []pki.KeyDestruction
	for _, k := range ca.DiscardedFileKeys(dataDir, listed) {
		role := pki.KeyRoleIssuingCA
		if k.RA {
			role = pki.KeyRoleSCEPRA
		}
		r := pki.KeyDestruction{Role: role, IssuerID: issuerID, Where: k.Path, Public: k.Public}
		if k.Left != "" {
			r.Err = fmt.Errorf("not destroyed: removing the discarded CA failed (%v) and left it at %s", discardErr, k.Left)
		}
		out = append(out, r)
	}
	return out
}

// discardTokenKeys destroys the discarded generation's keys in the token
// (nil: none was given) and says what became of each: destroyed, kept
// because another generation names it, or left for the operator to
// remove. It returns, for the audit trail, each key of issuing CA
// issuerID it destroyed or failed to (not those gone already).
func discardTokenKeys(e env, token keys.Token, issuerID string, tokenKeys []ca.NextTokenKey) ([]pki.KeyDestruction, error) {
	var left []string
	for _, k := range tokenKeys {
		if k.InUse {
			fmt.Fprintf(e.stdout, "Key %s kept in the token: another generation of this CA uses it.\n", printable(k.Ref))
		} else if token == nil {
			left = append(left, k.Ref)
		}
	}
	if token == nil {
		if len(left) > 0 {
			fmt.Fprintf(e.stdout, "The discarded CA's keys are still in the PKCS#11 token (no token was given, so they were not removed); remove them with the token's own tools (a --discard given the token, --pkcs11-…, removes them itself):\n  %s\n",
				printableLines(strings.Join(left, "\n  ")))
		}
		return nil, nil
	}
	// The public key identifies each key in the audit trail; a reference
	// file that records none has it read from the token first.
	tokenKeys = slices.Clone(tokenKeys)
	for i, k := range tokenKeys {
		if k.Public == nil && !k.InUse {
			if key, err := token.OpenRef(k.Ref); err == nil {
				tokenKeys[i].Public = key.Public()
			}
		}
	}
	destroyed, gone, err := ca.DestroyDiscardedKeys(token, tokenKeys)
	records := discardedKeyRecords(issuerID, tokenKeys, destroyed, gone, err)
	for _, k := range destroyed {
		fmt.Fprintf(e.stdout, "Key %s removed from %s.\n", printable(k.Ref), printable(token.Describe()))
	}
	for _, k := range gone {
		fmt.Fprintf(e.stdout, "Key %s was no longer in %s (destroyed already, by a discard on another node sharing it).\n", printable(k.Ref), printable(token.Describe()))
	}
	if err != nil {
		return records, fmt.Errorf("the next CA was discarded, but not all of its keys could be removed from the token; remove the rest with the token's own tools: %w", err)
	}
	return records, nil
}

// discardedKeyRecords is what DestroyDiscardedKeys did to tokenKeys, for
// the audit trail: each key destroyed, and each that it could not destroy
// with its error (err, joined, names each by its URI). Keys in use or gone
// already were not destroyed here.
func discardedKeyRecords(issuerID string, tokenKeys, destroyed, gone []ca.NextTokenKey, err error) []pki.KeyDestruction {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else if err != nil {
		errs = []error{err}
	}
	has := func(ks []ca.NextTokenKey, k ca.NextTokenKey) bool {
		return slices.ContainsFunc(ks, func(x ca.NextTokenKey) bool { return x.RefFile == k.RefFile && x.Ref == k.Ref })
	}
	var out []pki.KeyDestruction
	for _, k := range tokenKeys {
		if k.InUse || has(gone, k) {
			continue
		}
		role := pki.KeyRoleIssuingCA
		if strings.HasPrefix(filepath.Base(k.RefFile), "ra.") {
			role = pki.KeyRoleSCEPRA
		}
		r := pki.KeyDestruction{Role: role, IssuerID: issuerID, Where: fmt.Sprintf("%s (%s)", k.RefFile, k.Ref), Public: k.Public}
		if !has(destroyed, k) {
			r.Err = errors.New("not destroyed")
			for _, e := range errs {
				if strings.Contains(e.Error(), k.Ref) {
					r.Err = e
				}
			}
		}
		out = append(out, r)
	}
	return out
}

func cmdCAShow(ctx context.Context, e env, args []string) error {
	var sf storeFlags
	fs := newFlagSet(e, "ca show", "ca show [--data-dir DIR]")
	sf.register(fs)
	if err := parseFlags(fs, e, args, 0, sf.sections()); err != nil {
		return err
	}
	clock := pki.SystemClock{}
	st, err := sf.openShowStore(ctx, e)
	if err != nil {
		return err
	}
	var discards discardLister // nil without a store (a nil store.Store converts to nil)
	if st != nil {
		defer st.Close()
		discards = st
	}
	a, discarded, err := loadCLICA(ctx, discards, sf.dataDir, nil, clock)
	if errors.Is(err, ca.ErrNoCA) {
		return sf.noCA(err)
	}
	if err != nil {
		return err
	}
	now := clock.Now()
	w := e.stdout
	cur, curRA := a.Active(now)
	fmt.Fprintln(w, "Root CA")
	showCert(w, a.Root, false)
	fmt.Fprintf(w, "  root key:    %s\n", rootKeyWhere(sf.dataDir))
	fmt.Fprintln(w, "\nCurrent issuing CA")
	showCert(w, cur.Cert, true)
	showRA(w, curRA)
	if a.KeysInToken() {
		fmt.Fprintf(w, "  keys:        in a PKCS#11 token (%s names them)\n", filepath.Join(sf.dataDir, "ca", "*"+keys.RefFileExt))
	}
	fmt.Fprint(w, "\nNext issuing CA")
	shown := map[string]bool{cur.ID: true}
	if next, nextRA, ok := a.Next(now); ok {
		at, _ := a.SwitchAt()
		fmt.Fprintf(w, " (becomes current at %s)\n", at.Format(time.RFC3339))
		showCert(w, next.Cert, true)
		showRA(w, nextRA)
		shown[next.ID] = true
	} else if discarded != nil {
		fmt.Fprintf(w, " (discarded in the store at %s by %s; run 'scepter ca rollover --discard' here: its files stay in %s, it never becomes current)\n",
			discarded.discard.DiscardedAt.UTC().Format(time.RFC3339), printable(discarded.discard.DiscardedBy), filepath.Join(sf.dataDir, "ca", ca.NextDir))
		showCert(w, discarded.issuer.Cert, true)
		shown[discarded.issuer.ID] = true
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

// rootKeyWhere says where the root key is, for ca show.
func rootKeyWhere(dataDir string) string {
	info, err := ca.RootKeyStatus(dataDir)
	switch {
	case err != nil:
		return fmt.Sprintf("in %s (not a readable key file: %v)", info.Path, err)
	case !info.Present:
		return "not on this server (scepter ca rollover --root-key FILE takes it)"
	case info.Encrypted:
		return fmt.Sprintf("in %s (encrypted)", info.Path)
	}
	return fmt.Sprintf("in %s (not encrypted; 'scepter ca root export --out FILE --remove' takes it offline)", info.Path)
}

func cmdCARootExport(ctx context.Context, e env, args []string) error {
	var sf storeFlags
	var out, newPassFile, passFile string
	var remove bool
	fs := newFlagSet(e, "ca root export", "ca root export --out FILE [--remove] [--passphrase-file F] [--root-key-passphrase-file F]")
	sf.register(fs)
	fs.StringVar(&out, "out", "", "file to write the root CA key to (mode 0600; an existing file is refused), e.g. on removable media")
	fs.BoolVar(&remove, "remove", false, "remove DATA_DIR/ca/root.key once the copy is written and checked; the server keeps running without it")
	fs.StringVar(&newPassFile, "passphrase-file", "", "encrypt the copy with the first line of this file (default: copy root.key as it is)")
	fs.StringVar(&passFile, "root-key-passphrase-file", "", "file whose first line is the passphrase of an encrypted root.key (or "+rootKeyPassphraseEnv+")")
	if err := parseFlags(fs, e, args, 0, sf.sections()); err != nil {
		return err
	}
	if out == "" {
		return usageError{"--out is required: " + caRootUsage}
	}
	if remove {
		// The point of --remove is that the root key leaves the server;
		// a copy in its data directory would stay on it, unencrypted
		// maybe, while ca show says the key is gone.
		if real, inside, err := insideDataDir(out, sf.dataDir); err == nil && inside {
			return usageError{fmt.Sprintf("--out %s is inside the data directory %s (as %s): with --remove the root key must leave this server; write it to offline media", out, sf.dataDir, real)}
		}
	}
	pass, err := rootKeyPassphrase(e, passFile)
	if err != nil {
		return err
	}
	defer clear(pass)
	var newPass []byte
	if newPassFile != "" {
		if newPass, err = passphraseFromFile("--passphrase-file", newPassFile); err != nil {
			return err
		}
		defer clear(newPass)
		if len(newPass) < minKeysPassphrase {
			// The root key is the CA's most valuable secret: no weaker
			// than an export of the issuing keys.
			return usageError{fmt.Sprintf("the passphrase has %d characters; the root key's needs at least %d", len(newPass), minKeysPassphrase)}
		}
	}
	// The store first: the export is audited.
	st, err := sf.openExistingStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	src := filepath.Join(sf.dataDir, "ca", ca.RootKeyFile)
	encrypted, err := ca.ExportRootKey(sf.dataDir, out, ca.ExportRootKeyOptions{Passphrase: pass, NewPassphrase: newPass, Remove: remove})
	switch {
	case errors.Is(err, ca.ErrNoCA):
		return sf.noCA(err)
	case errors.Is(err, ca.ErrRootKeyMissing):
		return fmt.Errorf("%w: it may have been exported and removed already ('scepter ca show' says where the root key is)", err)
	case err != nil:
		return rootKeyHint(err)
	}
	how := "not encrypted"
	if encrypted {
		how = "encrypted"
	}
	detail := fmt.Sprintf("root key copied to %s (%s)", out, how)
	if remove {
		detail += "; " + src + " removed"
	}
	roots, lerr := keys.LoadCertFile(filepath.Join(sf.dataDir, "ca", ca.RootCertFile))
	ev := pki.AuditEvent{Time: pki.SystemClock{}.Now(), Type: pki.EventCARootKeyExported, Actor: cliActor(), Outcome: "success", Detail: detail}
	if lerr == nil {
		ev.Subject = roots[0].Subject.String()
		ev.Detail += "; root " + ca.Fingerprint(roots[0])
	}
	if err := st.AppendAudit(ctx, ev); err != nil {
		return fmt.Errorf("the root key was exported, but its audit event could not be written: %w", err)
	}

	w := e.stdout
	fmt.Fprintf(w, "Root CA key written to %s (%s, mode 0600) and checked against %s.\n", out, how, ca.RootCertFile)
	if remove {
		fmt.Fprintf(w, "Removed %s: the root key is no longer on this server. The server keeps running;\n", src)
		// An encrypted copy needs its passphrase too, or the command
		// suggested here fails.
		passHint := ""
		if encrypted {
			passHint = " --root-key-passphrase-file F (or " + rootKeyPassphraseEnv + ")"
		}
		fmt.Fprintf(w, "a rollover needs the copy: scepter ca rollover --data-dir %s --root-key %s%s\n", shellQuote(sf.dataDir), shellQuote(out), passHint)
	}
	if !encrypted {
		fmt.Fprintf(e.stderr, "%s is not encrypted: keep it on offline media, or export again with --passphrase-file.\n", out)
	}
	if _, inside, err := insideDataDir(out, sf.dataDir); err == nil && inside {
		fmt.Fprintf(e.stderr, "%s is inside the data directory %s: move it off this server.\n", out, sf.dataDir)
	}
	return nil
}

// rootKeyPassphrase is the passphrase of an encrypted root key: the first
// line of file, or SCEPTER_ROOT_KEY_PASSPHRASE; nil when neither is set.
func rootKeyPassphrase(e env, file string) ([]byte, error) {
	if err := refuseEnvAndFile(e, rootKeyPassphraseEnv, "root-key-passphrase-file", file); err != nil {
		return nil, err
	}
	if file != "" {
		return passphraseFromFile("--root-key-passphrase-file", file)
	}
	if v, ok := e.lookupEnv(rootKeyPassphraseEnv); ok {
		return []byte(v), nil
	}
	return nil, nil
}

// rootKeyHint adds to a root key error the flags that fix it.
func rootKeyHint(err error) error {
	switch {
	case errors.Is(err, ca.ErrRootKeyEncrypted):
		return fmt.Errorf("%w: give its passphrase with --root-key-passphrase-file FILE or the environment variable %s", err, rootKeyPassphraseEnv)
	case errors.Is(err, ca.ErrRootKeyMissing):
		return fmt.Errorf("%w: give the root key with --root-key FILE (and --root-key-passphrase-file FILE or %s when it is encrypted)", err, rootKeyPassphraseEnv)
	case errors.Is(err, keys.ErrWrongPassphrase):
		return fmt.Errorf("%w: check --root-key-passphrase-file or %s", err, rootKeyPassphraseEnv)
	}
	return err
}

// rootKeyPassphrase reads the passphrase of a new CA's root key when one
// is created: --root-key-passphrase-file, or else SCEPTER_ROOT_KEY_PASSPHRASE
// as ca rollover and ca root export read it (nil without either; both are
// refused by readInputs). An operator who set only the variable got an
// unencrypted root.key.
func (f *serveFlags) rootKeyPassphrase(e env) func() ([]byte, error) {
	if f.rootKeyPassphraseFile != "" {
		return func() ([]byte, error) { return keys.ReadPassphraseFile(f.rootKeyPassphraseFile) }
	}
	if v, ok := e.lookupEnv(rootKeyPassphraseEnv); ok && v != "" {
		return func() ([]byte, error) { return []byte(v), nil }
	}
	return nil
}

// rootKeyNotice tells where the root key is at a server start: a warning
// in the log on every start while an unencrypted root.key is on the
// server (serve never needs it), and for a CA just created a line of the
// start-up output.
func (f *serveFlags) rootKeyNotice(created bool, log *slog.Logger) []string {
	if !created && f.rootKeyPassphraseFile != "" {
		log.Info("--root-key-passphrase-file ignored: the CA exists, and its root.key stays as it is ('scepter ca root export --passphrase-file' writes an encrypted copy)")
	}
	info, err := ca.RootKeyStatus(f.dataDir)
	if err != nil {
		log.Warn("the root CA key file is not a readable key", "path", info.Path, "err", err)
		return nil
	}
	if info.Present && !info.Encrypted {
		log.Warn("the root CA key is on this server, not encrypted; serve never uses it: take it offline with 'scepter ca root export --out FILE --remove'", "path", info.Path)
	}
	if !created || !info.Present {
		return nil
	}
	how := "not encrypted"
	if info.Encrypted {
		how = "encrypted"
	}
	return []string{fmt.Sprintf("Root CA key:         %s (%s); take it offline: scepter ca root export --data-dir %s --out FILE --remove", info.Path, how, shellQuote(f.dataDir))}
}

func showCert(w io.Writer, c *x509.Certificate, withID bool) {
	fmt.Fprintf(w, "  subject:     %s\n", printable(c.Subject.String()))
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
	fmt.Fprintf(w, "  RA:          %s (%s, valid %s)\n", printable(ra.Cert.Subject.String()), ca.Fingerprint(ra.Cert), validity(ra.Cert))
}

func validity(c *x509.Certificate) string {
	return c.NotBefore.UTC().Format(time.RFC3339) + " to " + c.NotAfter.UTC().Format(time.RFC3339)
}
