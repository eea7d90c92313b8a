package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/filetrust"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// scepter ca export-keys / import-keys: the CA's key material and
// certificates from one node's data directory to another's, in one file
// encrypted with a passphrase (argon2id, AES-256-GCM; see keys.SealPEM).

// keysPassphraseEnv holds the passphrase of a key export when no
// --passphrase-file is given.
const keysPassphraseEnv = "SCEPTER_KEYS_PASSPHRASE"

// keyExportPEMType is the PEM block type of an export file.
const keyExportPEMType = "SCEPTER CA KEYS"

// Audit event types of the key transfer.
const (
	eventCAKeysExported = "ca.keys_exported"
	eventCAKeysImported = "ca.keys_imported"
)

// minKeysPassphrase is the shortest passphrase an export accepts: the file
// may travel, and argon2id only slows guessing down.
const minKeysPassphrase = 12

// responderDir is the directory of the data directory that holds the OCSP
// responders' keys and certificates (see serve_revocation.go).
const responderDir = "ocsp"

const caExportKeysUsage = "ca export-keys --out FILE [--include-root] [--passphrase-file F] [--data-dir DIR]"
const caImportKeysUsage = "ca import-keys --in FILE [--passphrase-file F] [--data-dir DIR]"

// keysPassphrase reads the passphrase of a key export: the first line of
// file, or $SCEPTER_KEYS_PASSPHRASE.
func keysPassphrase(e env, file string) ([]byte, error) {
	if err := refuseEnvAndFile(e, keysPassphraseEnv, "passphrase-file", file); err != nil {
		return nil, err
	}
	if file != "" {
		return passphraseFromFile("--passphrase-file", file)
	}
	if v, ok := e.lookupEnv(keysPassphraseEnv); ok && v != "" {
		return []byte(v), nil
	}
	return nil, usageError{"the export is encrypted with a passphrase: give --passphrase-file FILE (its first line) or set " + keysPassphraseEnv}
}

func cmdCAExportKeys(ctx context.Context, e env, args []string) error {
	var sf storeFlags
	var out, passFile string
	var includeRoot bool
	fs := newFlagSet(e, "ca export-keys", caExportKeysUsage)
	sf.register(fs)
	fs.StringVar(&out, "out", "", "file to write (mode 0600; an existing file is refused)")
	fs.BoolVar(&includeRoot, "include-root", false, "also take DATA_DIR/ca/root.key (as it is, encrypted or not); by default the root key stays where it is")
	fs.StringVar(&passFile, "passphrase-file", "", "encrypt with the first line of this file (at least "+strconv.Itoa(minKeysPassphrase)+" characters; or "+keysPassphraseEnv+")")
	if err := parseFlags(fs, e, args, 0, sf.sections()); err != nil {
		return err
	}
	if out == "" {
		return usageError{"--out is required: scepter " + caExportKeysUsage}
	}
	pass, err := keysPassphrase(e, passFile)
	if err != nil {
		return err
	}
	defer clear(pass)
	if len(pass) < minKeysPassphrase {
		return usageError{fmt.Sprintf("the passphrase has %d characters; an export of CA keys needs at least %d", len(pass), minKeysPassphrase)}
	}
	x, err := ca.ExportKeys(sf.dataDir, ca.ExportKeysOptions{IncludeRoot: includeRoot, ExtraDirs: []string{responderDir}})
	switch {
	case errors.Is(err, ca.ErrNoCA):
		return fmt.Errorf("%w: pass the --data-dir of the node whose keys to export", err)
	case errors.Is(err, keys.ErrNotExportable):
		return fmt.Errorf("%w\nThe CA's keys are in a PKCS#11 token and never leave it. Other nodes use the same token: give them the same --pkcs11-… flags and a copy of %s (certificates and .pkcs11 reference files; no key material besides root.key, which you may leave out). See docs/hsm.md",
			err, filepath.Join(sf.dataDir, "ca"))
	case err != nil:
		return err
	}
	defer x.Clear()
	// The store first: an export of CA keys is recorded in its audit
	// trail, and one the command cannot record is not made.
	st, err := sf.openExistingStore(ctx)
	if err != nil {
		return storeForAudit("export-keys", &sf, err)
	}
	defer st.Close()
	left := dropRevokedResponders(ctx, st, x)
	for _, p := range left {
		fmt.Fprintf(e.stdout, "Left out %s: an OCSP responder whose certificate is revoked (the server destroys its key once it has replaced it).\n", printable(p))
	}
	plain, err := x.Marshal()
	if err != nil {
		return err
	}
	defer clear(plain)
	sealed, err := keys.SealPEM(rand.Reader, keyExportPEMType, plain, pass, map[string]string{
		"Root": x.Root, "Format": ca.KeyExportFormat, "Keys": strconv.Itoa(len(x.Keys())), "Files": strconv.Itoa(len(x.Files))})
	if err != nil {
		return err
	}
	if err := keys.WriteNewFile(out, sealed, 0o600); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	// Read back: an export that cannot be opened is no export.
	if back, _, err := keys.OpenPEM(sealed, keyExportPEMType, pass); err != nil {
		os.Remove(out)
		return fmt.Errorf("the export did not read back (%w); %s was removed", err, out)
	} else {
		clear(back)
	}
	detail := fmt.Sprintf("keys of root %s exported to %s: %d files, keys %v", x.Root, out, len(x.Files), x.Keys())
	auditTo(ctx, e, st, pki.AuditEvent{Type: eventCAKeysExported, Detail: detail})

	w := e.stdout
	fmt.Fprintf(w, "Exported the keys and certificates of the CA %s to %s (encrypted, mode 0600):\n", printable(x.Root), out)
	for _, k := range x.Keys() {
		fmt.Fprintf(w, "  %s\n", printable(k))
	}
	rootIn := slices.Contains(x.Keys(), "ca/"+ca.RootKeyFile)
	switch {
	case !includeRoot:
		fmt.Fprintln(w, "The root key is not in it (--include-root takes it).")
	case !rootIn:
		// Asked for, and not on this node (taken offline with ca root
		// export --remove): say so rather than let it seem included.
		fmt.Fprintf(e.stderr, "warning: --include-root, but this node has no root key (%s): the export holds none\n", filepath.Join(sf.dataDir, "ca", ca.RootKeyFile))
	}
	fmt.Fprintf(w, "On the other node: scepter ca import-keys --data-dir DIR --in %s%s\n", shellQuote(filepath.Base(out)), storeHint(&sf))
	if _, inside, err := insideDataDir(out, sf.dataDir); err == nil && inside {
		fmt.Fprintf(e.stderr, "%s is inside the data directory %s: move it off this server once copied.\n", out, sf.dataDir)
	}
	return nil
}

func cmdCAImportKeys(ctx context.Context, e env, args []string) error {
	var sf storeFlags
	var in, passFile string
	fs := newFlagSet(e, "ca import-keys", caImportKeysUsage)
	sf.register(fs)
	fs.StringVar(&in, "in", "", "file written by 'scepter ca export-keys'")
	fs.StringVar(&passFile, "passphrase-file", "", "its passphrase, the first line of this file (or "+keysPassphraseEnv+")")
	if err := parseFlags(fs, e, args, 0, sf.sections()); err != nil {
		return err
	}
	if in == "" {
		return usageError{"--in is required: scepter " + caImportKeysUsage}
	}
	pass, err := keysPassphrase(e, passFile)
	if err != nil {
		return err
	}
	defer clear(pass)
	sealed, err := filetrust.ReadRegular(in)
	if err != nil {
		return fmt.Errorf("--in: %w", err)
	}
	plain, headers, err := keys.OpenPEM(sealed, keyExportPEMType, pass)
	if errors.Is(err, keys.ErrWrongPassphrase) {
		return fmt.Errorf("%s: wrong passphrase, or the file was altered: %w", in, err)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	defer clear(plain)
	x, err := ca.ParseKeyExport(plain)
	if err != nil {
		return err
	}
	defer x.Clear()
	if headers["Root"] != x.Root {
		return fmt.Errorf("%s: its header names the root %s, its content %s", in, headers["Root"], x.Root)
	}
	st, err := sf.openExistingStore(ctx)
	switch {
	case err == nil:
		defer st.Close()
	case sf.store.url == "" && caServedFrom(sf.dataDir):
		// A server ran with this CA, on a store the command does not
		// find: its audit trail would miss the import.
		return storeForAudit("import-keys", &sf, err)
	default:
		st = nil // a node with no store yet: only expiry tells
	}
	for _, d := range dropGoneRetiredRAs(ctx, st, sf.dataDir, x) {
		fmt.Fprintf(e.stdout, "Left out %s: a retired RA whose certificate is revoked or expired, whose key this node destroyed.\n", d)
	}
	for _, p := range dropRevokedResponders(ctx, st, x) {
		fmt.Fprintf(e.stdout, "Left out %s: an OCSP responder whose certificate is revoked.\n", printable(p))
	}
	_, statErr := os.Stat(filepath.Join(sf.dataDir, "ca", ca.RootCertFile))
	joined := errors.Is(statErr, os.ErrNotExist)
	res, err := ca.ImportKeys(sf.dataDir, x)
	if errors.Is(err, ca.ErrDifferentCA) {
		return fmt.Errorf("%w (nothing was imported)", err)
	}
	if errors.Is(err, ca.ErrNextConflict) {
		if d, ok := discardedNextHere(ctx, st, sf.dataDir); ok {
			return fmt.Errorf("%s holds the next issuing CA %s, which the store records as discarded (at %s by %s); the export does not carry it (nothing was imported): "+
				"run 'scepter ca rollover --discard' on this node first (the same data directory and store), which removes its copy, then import again",
				filepath.Join(sf.dataDir, "ca", ca.NextDir), d.IssuerID, d.DiscardedAt.UTC().Format(time.RFC3339), printable(d.DiscardedBy))
		}
	}
	if err != nil {
		return err
	}
	if len(res.Written) > 0 {
		detail := fmt.Sprintf("keys of root %s imported from %s: %d files written, %d already there", x.Root, in, len(res.Written), len(res.Unchanged))
		if st == nil {
			fmt.Fprintf(e.stderr, "not recorded in the audit trail: %s has no store yet (no scepter.db, no --store); on PostgreSQL give import-keys the --config or --store the servers use\n", sf.dataDir)
		} else {
			auditTo(ctx, e, st, pki.AuditEvent{Type: eventCAKeysImported, Detail: detail})
		}
	}

	w := e.stdout
	if len(res.Kept) > 0 {
		fmt.Fprintf(w, "Kept this node's own OCSP responder files, which differ from the export's (each node makes its own): %s\n", strings.Join(res.Kept, ", "))
	}
	if len(res.Written) == 0 {
		fmt.Fprintf(w, "Nothing to do: %s already holds every file of the export of CA %s.\n", sf.dataDir, printable(x.Root))
		return nil
	}
	fmt.Fprintf(w, "Imported the CA %s into %s: %d files written, %d already there.\n", printable(x.Root), sf.dataDir, len(res.Written), len(res.Unchanged))
	fmt.Fprint(w, importedNote(sf.dataDir, joined, res.Written))
	return nil
}

// importedNote says what an import wrote (written: paths under dataDir, as
// ca.ImportResult has them) and when a server running on dataDir takes it
// up: a node that had no CA holds the CA itself, which no server runs on
// yet (serve refuses a data directory without the store's CA); otherwise a
// later issuing CA (a switch this node missed), a next one, a renewed SCEP
// RA, or other files of the CA, each taken up at the server's next CA
// reload. joined: dataDir held no CA before.
func importedNote(dataDir string, joined bool, written []string) string {
	has := func(match func(string) bool) bool { return slices.ContainsFunc(written, match) }
	is := func(name string) func(string) bool { return func(p string) bool { return p == "ca/"+name } }
	under := func(dir string) func(string) bool {
		return func(p string) bool { return strings.HasPrefix(p, "ca/"+dir+"/") }
	}
	next := has(under(ca.NextDir))
	start := "scepter serve --data-dir " + shellQuote(dataDir)
	if joined {
		what := "the CA itself"
		if next {
			what += " and its next issuing CA, to which the server switches at its switch time"
		}
		return fmt.Sprintf("This node had no CA: it now holds %s. Start the server on it: %s\n", what, start)
	}
	// reload: a running server does what it does from its next reload.
	reload := func(does string) string {
		return fmt.Sprintf("a server running on %s %s from its next CA reload (--ca-reload-interval)", dataDir, does)
	}
	var b strings.Builder
	switch {
	case has(is(ca.IssuingCertFile)):
		fmt.Fprintf(&b, "The current issuing CA, whose switch this node missed: %s.\n", reload("issues with it"))
	case has(is(ca.RACertFile)):
		fmt.Fprintf(&b, "A renewed SCEP RA: %s, and no longer answers 503 or fails /readyz for lack of it; the RA it replaces still decrypts the requests encrypted to it, from %s.\n",
			reload("serves it in GetCACert and decrypts with it"), filepath.Join("DATA", "ca", ca.RetiredRADir))
	}
	if next {
		fmt.Fprintf(&b, "A next issuing CA: %s, and switches to it at its switch time.\n", reload("announces it (GetNextCACert)"))
	}
	if b.Len() == 0 && has(func(p string) bool { return strings.HasPrefix(p, "ca/") }) {
		fmt.Fprintf(&b, "Other files of the CA (retired RAs, earlier issuing CAs): %s.\n", reload("uses them"))
	}
	fmt.Fprintf(&b, "A server not running there takes it all up when started: %s\n", start)
	return b.String()
}

// discardedNextHere returns the store's discard of the next issuing CA
// in dataDir/ca/next, when st (nil: none) records it as discarded: a
// copy left by a discard made on another node.
func discardedNextHere(ctx context.Context, st store.Store, dataDir string) (store.DiscardedCAGeneration, bool) {
	if st == nil {
		return store.DiscardedCAGeneration{}, false
	}
	list, err := st.DiscardedCAGenerations(ctx)
	if err != nil {
		return store.DiscardedCAGeneration{}, false
	}
	d, ok, err := discardedNextOnDisk(dataDir, list)
	return d, ok && err == nil
}

// storeForAudit is why cmd (export-keys, import-keys) refuses to run on
// a data directory whose store it cannot open (err): the transfer of CA
// keys goes into the audit trail or is not made. A store it does not
// find (no SQLite database, no --store) is the operator's to name: a
// node on PostgreSQL has its store = … in a config file or SCEPTER_STORE.
func storeForAudit(cmd string, sf *storeFlags, err error) error {
	if sf.store.url != "" {
		return fmt.Errorf("%s records the transfer of CA keys in the audit trail, and cannot open the store (nothing was done): %w", cmd, err)
	}
	if _, statErr := os.Stat(sf.dbPath()); statErr == nil {
		return fmt.Errorf("%s records the transfer of CA keys in the audit trail, and cannot open the store (nothing was done): %w", cmd, err)
	}
	return usageError{fmt.Sprintf("%s records the transfer of CA keys in the audit trail, and finds no store for %s (nothing was done): "+
		"give it the --config the server runs with (its store = …) or --store URL (or SCEPTER_STORE) when the store is PostgreSQL; %v", cmd, sf.dataDir, err)}
}

// storeHint is the flags naming sf's store for a command shown to run on
// another node: --config when one was given, else " --store URL" without
// its password, else nothing (SQLite in that node's data directory).
func storeHint(sf *storeFlags) string {
	switch {
	case sf.configFile != "":
		return " --config " + shellQuote(sf.configFile)
	case sf.store.url != "":
		return " --store " + shellQuote(sf.store.String())
	}
	return ""
}

// auditTo appends an event to st; a failure is said on stderr, and the
// command goes on (what it did is done).
func auditTo(ctx context.Context, e env, st store.Store, ev pki.AuditEvent) {
	ev.Time, ev.Actor, ev.Outcome = pki.SystemClock{}.Now(), cliActor(), "success"
	if err := st.AppendAudit(ctx, ev); err != nil {
		fmt.Fprintf(e.stderr, "not recorded in the audit trail: %v\n", err)
	}
}

// dropGoneRetiredRAs leaves out of x the retired RAs the node does not
// hold whose certificate has expired or, by the node's store st (nil: none
// yet), is revoked: the node destroyed their keys (a revoked retired RA's
// at once), and an export made before must not put them back, in the
// data directory or in the next export-keys. It returns what it left out.
func dropGoneRetiredRAs(ctx context.Context, st store.Store, dataDir string, x *ca.KeyExport) []string {
	now := pki.SystemClock{}.Now()
	return x.DropRetiredRAs(dataDir, func(c *x509.Certificate) bool {
		return !now.Before(c.NotAfter) || st != nil && revokedInStore(ctx, st, c)
	})
}

// dropRevokedResponders leaves out of x the OCSP responders whose
// certificate the node's store st (nil: none yet) records as revoked, with
// their keys: a server destroys such a key once it has replaced the
// responder, and an export must not carry it to other nodes meanwhile,
// nor an older one bring it back. It returns what it left out.
func dropRevokedResponders(ctx context.Context, st store.Store, x *ca.KeyExport) []string {
	if st == nil {
		return nil
	}
	return x.DropRevokedResponders(responderDir, func(c *x509.Certificate) bool { return revokedInStore(ctx, st, c) })
}

// revokedInStore: st records c, byte for byte, as revoked. A read error
// counts as not revoked: the import then brings the key, as before, and a
// running server destroys it at its next check.
func revokedInStore(ctx context.Context, st store.Store, c *x509.Certificate) bool {
	recs, err := st.CertificatesBySerial(ctx, c.SerialNumber.Text(16))
	if err != nil {
		return false
	}
	return slices.ContainsFunc(recs, func(r pki.Certificate) bool {
		return r.Status == pki.StatusRevoked && bytes.Equal(r.DER, c.Raw)
	})
}
