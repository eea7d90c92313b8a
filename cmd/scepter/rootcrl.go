package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/cashare"
	"github.com/scepter/scepter/internal/crl"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

const caRootCRLUsage = "usage: scepter ca root crl [--revoke ISSUER-ID | --revoke-cert FILE]... [--reason REASON] [--validity 8760h] [--out FILE] [--store-restored] [--root-key FILE] [--root-key-passphrase-file F] [--data-dir DIR]"

// rootCRLsKept is how many older root CRLs the store keeps.
const rootCRLsKept = 10

// revokeList collects --revoke, which may be given more than once.
type revokeList []string

func (l *revokeList) String() string { return strings.Join(*l, ",") }
func (l *revokeList) Set(s string) error {
	*l = append(*l, strings.ToLower(strings.TrimSpace(s)))
	return nil
}

// fileList collects a file flag that may be given more than once.
type fileList []string

func (l *fileList) String() string { return strings.Join(*l, ",") }
func (l *fileList) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// cmdCARootCRL signs the root's next CRL with the root key, where the root
// key is (as ca rollover is run), and stores it: every node serves it at
// /crl/ROOT-ID.crl. It carries the previous root CRL's entries on, and
// with --revoke (or --revoke-cert, for one the store no longer records)
// adds issuing CA certificates of this root that are no longer in use.
func cmdCARootCRL(ctx context.Context, e env, args []string) error {
	var sf storeFlags
	var rootKeyFile, passFile, reasonS, out string
	var storeRestored bool
	var revoke revokeList
	var revokeCerts fileList
	validity := crl.DefaultRootValidity
	fs := newFlagSet(e, "ca root crl", strings.TrimPrefix(caRootCRLUsage, "usage: scepter "))
	sf.register(fs)
	fs.StringVar(&rootKeyFile, "root-key", "", "the root CA key, when it is not in DATA_DIR/ca/root.key (taken offline with 'scepter ca root export --remove'); encrypted or not")
	fs.StringVar(&passFile, "root-key-passphrase-file", "", "file whose first line is the passphrase of an encrypted root key (or "+rootKeyPassphraseEnv+")")
	fs.Var(&revoke, "revoke", "an issuing CA of this root to list as revoked, by its issuer ID (the hex SHA-256 of its certificate, as in its CRL URL) or a prefix of it of at least 8 digits naming one CA; not the current or a scheduled next one; may be repeated")
	fs.Var(&revokeCerts, "revoke-cert", "an issuing CA of this root to list as revoked, by its certificate `FILE` (PEM or DER): for one the store no longer records, such as a next CA discarded after GetNextCACert handed it out; not the current or a scheduled next one; may be repeated")
	fs.StringVar(&reasonS, "reason", "", "the revocation reason of --revoke and --revoke-cert: "+rootCRLReasons+" (required with them)")
	fs.DurationVar(&validity, "validity", validity, "the CRL's nextUpdate after now, from 1h to 8760h (cut at the root's end); sign the next one before then")
	fs.StringVar(&out, "out", "", "also write the CRL (DER) to this file, for relying parties given it by hand")
	fs.Var(&onceSwitch{on: &storeRestored, why: storeRestoredOnce}, "store-restored", "sign although the store's newest root CRL is older than one signed with this data directory (the store was restored from a backup): "+
		"the CAs revoked after the backup are missing from it, so list them again in this run with --revoke or --revoke-cert")
	if err := parseFlags(fs, e, args, 0, sf.sections()); err != nil {
		return err
	}
	if validity <= 0 {
		return usageError{"--validity must be positive"}
	}
	if validity < crl.MinRootValidity {
		return usageError{fmt.Sprintf("--validity %s: at least %s: relying parties would reject it as expired before it reached them", validity, crl.MinRootValidity)}
	}
	if validity > crl.DefaultRootValidity {
		// CA/B Forum BR §4.9.7: a CRL about CA certificates is due at
		// least every twelve months.
		return usageError{fmt.Sprintf("--validity %s: at most %s (a year)", validity, crl.DefaultRootValidity)}
	}
	var reason int
	revoking := len(revoke) > 0 || len(revokeCerts) > 0
	switch {
	case !revoking && reasonS != "":
		return usageError{"--reason goes with --revoke or --revoke-cert"}
	case revoking && reasonS == "":
		return usageError{"--revoke and --revoke-cert need --reason (cACompromise when the issuing CA's key is compromised, cessationOfOperation or superseded otherwise)"}
	case revoking:
		var err error
		if reason, err = admin.ParseReason(reasonS); err != nil {
			// Not admin's list, which offers certificateHold.
			return usageError{fmt.Sprintf("--reason %s: want one of %s", printable(reasonS), rootCRLReasons)}
		}
		if reason == admin.ReasonCertificateHold {
			return usageError{"--reason certificateHold: a root CRL lists an issuing CA for good"}
		}
	}
	if out != "" {
		if err := checkRootCRLOut(out, sf.dataDir); err != nil {
			return err
		}
	}
	pass, err := rootKeyPassphrase(e, passFile)
	if err != nil {
		return err
	}
	defer clear(pass)
	st, err := sf.openExistingStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	root, err := ca.RootIssuer(sf.dataDir, rootKeyFile, pass)
	if errors.Is(err, ca.ErrNoCA) {
		return sf.noCA(err)
	}
	if err != nil {
		return rootKeyHint(err)
	}
	now := pki.SystemClock{}.Now()

	var add []crl.RootRevocation
	if revoking {
		certs, err := readRevokeCerts(revokeCerts, root.Cert)
		if err != nil {
			return err
		}
		if add, err = rootRevocations(ctx, st, sf.dataDir, root.Cert, revoke, certs, reason, now); err != nil {
			return err
		}
	}
	prev, err := st.LatestCRL(ctx, root.ID)
	if errors.Is(err, store.ErrNotFound) {
		prev, err = nil, nil
	}
	if err != nil {
		return fmt.Errorf("reading the root's newest CRL: %w", err)
	}
	// The highest root CRL number signed with this data directory is kept
	// in it, as a node keeps its issuing CAs': a store restored from an
	// older copy would otherwise have its number given again, and lose
	// without a word the CAs revoked after the copy.
	numbers := crl.NewNumbers(filepath.Join(sf.dataDir, crl.NumbersDir))
	mark, err := numbers.Get(root.ID)
	if err != nil {
		return err
	}
	stored := int64(0)
	if prev != nil {
		stored = prev.Number
	}
	if stored < mark && !storeRestored {
		return fmt.Errorf("the store's newest root CRL is number %d, but root CRL %d was signed with this data directory (%s): "+
			"the store was restored from an older copy, and the issuing CAs revoked after it are missing from it. "+
			"Run this again with --store-restored, listing those CAs again with --revoke ISSUER-ID or --revoke-cert FILE and their --reason "+
			"(the root CRL relying parties last fetched lists them: openssl crl -inform DER -in root.crl -noout -text); the CRL is numbered above %d",
			stored, mark, numbers.Dir(), mark)
	}
	signed, entries, listings, err := crl.SignRootCRLAbove(root, prev, mark, add, now, validity)
	if errors.Is(err, crl.ErrReasonDowngrade) {
		return usageError{fmt.Sprintf("--reason %s: %v", reasonS, err)}
	}
	if err != nil {
		return err
	}
	if err := st.PutCRL(ctx, *signed, rootCRLsKept); errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("another root CRL was stored meanwhile; run the command again: %w", err)
	} else if err != nil {
		return fmt.Errorf("storing the root CRL: %w", err)
	}
	if err := numbers.Put(root.ID, signed.Number); err != nil {
		return fmt.Errorf("root CRL %d was stored, but its number could not be kept; write %d into %s before signing the next: %w",
			signed.Number, signed.Number, filepath.Join(numbers.Dir(), root.ID), err)
	}
	detail := fmt.Sprintf("root CRL %d signed: nextUpdate %s, %d entries", signed.Number, signed.NextUpdate.UTC().Format(time.RFC3339), len(entries))
	for _, l := range listings {
		detail += fmt.Sprintf("; issuing CA %s (%s) %s", issuerIDOf(l.Cert), l.Cert.Subject, describeListing(l))
	}
	ev := pki.AuditEvent{Time: now, Type: pki.EventCARootCRLSigned, Actor: cliActor(), IssuerID: root.ID,
		Subject: root.Cert.Subject.String(), Outcome: "success", Detail: detail}
	if len(add) > 0 {
		ev.Reason = admin.ReasonName(reason)
	}
	if err := st.AppendAudit(ctx, ev); err != nil {
		return fmt.Errorf("the root CRL was stored, but its audit event could not be written: %w", err)
	}
	if out != "" {
		if err := keys.WriteFileAtomic(out, signed.DER, 0o644); err != nil {
			return fmt.Errorf("the root CRL was stored, but --out: %w", err)
		}
	}

	w := e.stdout
	fmt.Fprintf(w, "Root CRL %d signed by %s and stored:\n", signed.Number, printable(root.Cert.Subject.String()))
	fmt.Fprintf(w, "  thisUpdate:  %s\n", signed.ThisUpdate.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "  nextUpdate:  %s (sign the next one before then)\n", signed.NextUpdate.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "  entries:     %d\n", len(entries))
	for _, l := range listings {
		fmt.Fprintf(w, "  revoked:     issuing CA %s (%s) %s\n", issuerIDOf(l.Cert), printable(l.Cert.Subject.String()), describeListing(l))
	}
	where := "/crl/" + root.ID + ".crl"
	if base, err := savedPublicURL(sf.dataDir); err == nil && base != "" {
		where = base + where
	}
	fmt.Fprintf(w, "Every node serves it at %s within 10 seconds.\n", where)
	if out != "" {
		fmt.Fprintf(w, "Written to %s (DER).\n", out)
	}
	return nil
}

// revokeCert is a --revoke-cert: the certificate in a file.
type revokeCert struct {
	file string
	cert *x509.Certificate
}

// readRevokeCerts reads the issuing CA certificate of each --revoke-cert
// file. A file may hold a chain (the CA with its RA, or with the root):
// its one CA certificate that root signed, other than root, is taken; a
// file with none or several such is refused, as it does not say which to
// list.
func readRevokeCerts(files []string, root *x509.Certificate) ([]revokeCert, error) {
	var out []revokeCert
	for _, f := range files {
		certs, err := keys.LoadCertFile(f)
		if err != nil {
			return nil, fmt.Errorf("--revoke-cert %s: %w", f, err)
		}
		if len(certs) > 1 {
			certs = slices.DeleteFunc(certs, func(c *x509.Certificate) bool {
				return !c.IsCA || c.Equal(root) || c.CheckSignatureFrom(root) != nil
			})
			if len(certs) != 1 {
				return nil, usageError{fmt.Sprintf("--revoke-cert %s: holds %d CA certificates signed by this root besides the root; give a file with the one issuing CA certificate to list", f, len(certs))}
			}
		}
		out = append(out, revokeCert{file: f, cert: certs[0]})
	}
	return out, nil
}

// rootRevocations checks what --revoke and --revoke-cert name and returns
// it to list, each CA once. A --revoke issuer ID must be among the issuing
// CAs the store records (every node's, every generation). A --revoke-cert
// certificate may be one the store no longer records (a discarded next
// CA): it must be an issuing CA certificate, not the root itself. Both
// must be signed by the root and no longer in use: revoking the current
// or a scheduled next issuing CA would leave the server issuing
// certificates that no longer verify, so that one must be rolled over (or
// discarded) first.
func rootRevocations(ctx context.Context, st store.Store, dataDir string, root *x509.Certificate, ids []string, certs []revokeCert,
	reason int, now time.Time) ([]crl.RootRevocation, error) {
	gens, err := st.CAGenerations(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the store's issuing CAs: %w", err)
	}
	current := cashare.Current(gens, now)
	// An ID or a unique prefix of one, as certs revoke --issuer and the
	// API take it: resolved to the whole ID, which the listing prints.
	known := make([]string, len(gens))
	for i, g := range gens {
		known[i] = g.IssuerID
	}
	var full []string
	for _, id := range ids {
		// At least 8 digits, as a profile's issuer pin: listing a CA on
		// the root CRL is not undone, and "1" is one keystroke from "2".
		if len(id) < 8 {
			return nil, usageError{fmt.Sprintf("--revoke %s: give at least 8 hex digits of the issuing CA's ID ('scepter ca show' prints it)", printable(id))}
		}
		match, err := enroll.MatchIssuerID(known, id)
		if errors.Is(err, enroll.ErrNoSuchIssuer) {
			return nil, usageError{fmt.Sprintf("--revoke %s: no issuing CA with this ID in the store ('scepter ca show' lists them; the ID is the hex SHA-256 of the certificate; "+
				"one the store no longer records, such as a discarded next CA, is listed with --revoke-cert FILE)", printable(id))}
		}
		if err != nil {
			return nil, usageError{fmt.Sprintf("--revoke %s: %s", printable(id), printable(err.Error()))}
		}
		full = append(full, match)
	}
	var add []crl.RootRevocation
	listed := map[string]bool{}
	for _, id := range slices.Compact(slices.Sorted(slices.Values(full))) {
		i := slices.IndexFunc(gens, func(g store.CAGeneration) bool { return g.IssuerID == id })
		cert, err := x509.ParseCertificate(gens[i].IssuerDER)
		if err != nil {
			return nil, fmt.Errorf("--revoke %s: the stored certificate: %w", id, err)
		}
		if err := checkRootRevocable("--revoke "+id, cert, root, &gens[i], current, now); err != nil {
			return nil, err
		}
		listed[id] = true
		add = append(add, crl.RootRevocation{Cert: cert, RevokedAt: now, Reason: reason})
	}
	for _, rc := range certs {
		what, cert, id := "--revoke-cert "+rc.file, rc.cert, issuerIDOf(rc.cert)
		if listed[id] {
			continue
		}
		if cert.Equal(root) || pki.SamePublicKey(cert.PublicKey, root.PublicKey) {
			return nil, usageError{fmt.Sprintf("%s: %s is the root CA itself; its CRL lists only the issuing CAs it signed", what, printable(cert.Subject.String()))}
		}
		if !cert.BasicConstraintsValid || !cert.IsCA {
			return nil, usageError{fmt.Sprintf("%s: %s is not a CA certificate; the root CRL lists issuing CAs (an end-entity certificate is revoked with 'scepter certs revoke')", what, printable(cert.Subject.String()))}
		}
		var gen *store.CAGeneration
		if i := slices.IndexFunc(gens, func(g store.CAGeneration) bool { return g.IssuerID == id }); i >= 0 {
			gen = &gens[i]
		}
		if err := checkRootRevocable(what, cert, root, gen, current, now); err != nil {
			return nil, err
		}
		if gen == nil {
			// Not recorded: the store cannot say it is unused unless it
			// records the CA in use, and this node may still hold it as
			// its next one.
			if current == nil {
				return nil, usageError{fmt.Sprintf("%s: the store records no issuing CA, so it cannot tell whether %s is in use; run 'scepter serve' with this store once (it records its CA there), then this again", what, printable(cert.Subject.String()))}
			}
			nextID, at, ok, err := ca.NextOnDisk(dataDir)
			if err != nil {
				return nil, fmt.Errorf("reading this node's next CA: %w", err)
			}
			if ok && nextID == id {
				return nil, usageError{fmt.Sprintf("%s: %s is this node's next CA in %s, switching at %s; discard it first ('scepter ca rollover --discard')",
					what, printable(cert.Subject.String()), filepath.Join(dataDir, "ca", ca.NextDir), at.UTC().Format(time.RFC3339))}
			}
		}
		listed[id] = true
		add = append(add, crl.RootRevocation{Cert: cert, RevokedAt: now, Reason: reason})
	}
	return add, nil
}

// checkRootRevocable refuses to list cert (named by what, for the error)
// unless root signed it and, when the store records it (gen), it is
// neither the current issuing CA nor a scheduled next one.
func checkRootRevocable(what string, cert, root *x509.Certificate, gen, current *store.CAGeneration, now time.Time) error {
	if err := cert.CheckSignatureFrom(root); err != nil {
		return usageError{fmt.Sprintf("%s: %s is not signed by this root (%s)", what, printable(cert.Subject.String()), printable(root.Subject.String()))}
	}
	switch {
	case gen == nil:
	case current != nil && gen.IssuerID == current.IssuerID:
		return usageError{fmt.Sprintf("%s: %s is the current issuing CA; roll it over first ('scepter ca rollover --switch-in 1m'), then revoke it once the next one is current", what, printable(cert.Subject.String()))}
	case gen.SwitchAt.After(now):
		return usageError{fmt.Sprintf("%s: %s is scheduled to become current at %s; discard it first ('scepter ca rollover --discard')", what, printable(cert.Subject.String()), gen.SwitchAt.UTC().Format(time.RFC3339))}
	}
	return nil
}

// describeListing says how the new root CRL lists a --revoke: what it
// lists (reason and date) and whether that changed, as a CA listed before
// keeps its revocation date.
func describeListing(l crl.RootListing) string {
	reason := admin.ReasonName(l.Entry.Reason)
	since := l.Entry.RevokedAt.UTC().Format(time.RFC3339)
	switch {
	case l.ReasonChanged():
		return fmt.Sprintf("reason changed from %s to %s, revoked since %s", admin.ReasonName(l.PrevReason), reason, since)
	case l.Listed:
		return fmt.Sprintf("listed already: %s, revoked since %s", reason, since)
	}
	return fmt.Sprintf("listed: %s, revoked since %s", reason, since)
}

// issuerIDOf is the issuer ID of a CA certificate: the hex SHA-256 of its
// DER, as in its CRL and caIssuers URLs.
func issuerIDOf(c *x509.Certificate) string {
	return strings.TrimPrefix(ca.Fingerprint(c), "sha256:")
}

// rootCRLWarning says, once a root CRL has been signed, when the newest
// one ends within expiryWarning (or has ended), and what to do: a relying
// party that checks it refuses every certificate of the chain after its
// nextUpdate. Nothing while none was signed, or when the store cannot
// be read (the store's own check reports that).
func rootCRLWarning(ctx context.Context, st interface {
	LatestCRL(context.Context, string) (*store.CRL, error)
}, a *ca.Authority, now time.Time) string {
	c, err := st.LatestCRL(ctx, issuerIDOf(a.Root))
	if err != nil || c.NextUpdate.Sub(now) > expiryWarning {
		return ""
	}
	when := "ended on " + c.NextUpdate.UTC().Format(time.RFC3339)
	if now.Before(c.NextUpdate) {
		when = fmt.Sprintf("ends on %s, %s", c.NextUpdate.UTC().Format(time.RFC3339), timeLeft(c.NextUpdate.Sub(now)))
	}
	return fmt.Sprintf("the root CRL %d %s: relying parties that check it refuse every certificate of this CA after that; "+
		"sign the next one where the root key is: scepter ca root crl --root-key FILE", c.Number, when)
}

// rootCRLReasons are the reasons a root CRL lists an issuing CA with
// (RFC 5280 §5.3.1, certificateHold and removeFromCRL aside: a root CRL
// lists a CA for good).
const rootCRLReasons = "cACompromise, keyCompromise, aACompromise, superseded, cessationOfOperation, affiliationChanged, privilegeWithdrawn, unspecified"

// checkRootCRLOut refuses, before anything is signed, an --out the CRL
// must not replace: one inside the data directory (symbolic links
// followed), where a slip of the path would put the CRL over root.key or
// root.crt, and an existing file that holds no CRL, DER or PEM (a key, a
// certificate, anything else given by mistake). An earlier root CRL is
// replaced, as signing the next one each year means.
func checkRootCRLOut(out, dataDir string) error {
	real, inside, err := checkOutPath(out, dataDir)
	if err != nil {
		return err
	}
	if inside {
		return usageError{fmt.Sprintf("--out %s is inside the data directory %s (as %s), where the CRL could replace the CA's own files: "+
			"name a file outside it (every node serves the CRL at its URL anyway)", out, dataDir, real)}
	}
	// --out itself, not where a link leads: the CRL is written only in
	// place of a regular file (keys.WriteFileAtomic refuses a link), so a
	// link is refused here, before anything is signed.
	fi, err := os.Lstat(out)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("--out %s: %w", out, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return usageError{fmt.Sprintf("--out %s is a symbolic link (to %s): name the file itself", out, real)}
	case fi.IsDir():
		return usageError{fmt.Sprintf("--out %s is a directory: name a file", out)}
	case !fi.Mode().IsRegular():
		return usageError{fmt.Sprintf("--out %s is not a regular file (%s)", out, fi.Mode().Type())}
	}
	b, err := os.ReadFile(real)
	if err != nil {
		return fmt.Errorf("--out %s: %w", out, err)
	}
	if !holdsCRL(b) {
		return usageError{fmt.Sprintf("--out %s exists and holds no CRL: it is not replaced; name another file, or remove this one first if it is yours to lose", out)}
	}
	return nil
}

// holdsCRL reports whether b is a CRL, DER or PEM ("X509 CRL").
func holdsCRL(b []byte) bool {
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "X509 CRL" {
			return false
		}
		b = blk.Bytes
	}
	_, err := x509.ParseRevocationList(b)
	return err == nil
}
