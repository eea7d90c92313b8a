package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

func cmdCerts(ctx context.Context, e env, args []string) error {
	sub, err := subcommand(e, args, "usage: scepter certs list [--status valid|expired|revoked] [--profile P] [--expiring-within 30d] [--renewed false|true] [--json] | certs show SERIAL | certs revoke SERIAL|--cert FILE [--reason R] | certs unhold SERIAL")
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		return certsList(ctx, e, args[1:])
	case "show":
		return certsShow(ctx, e, args[1:])
	case "revoke", "unhold":
		return certsRevoke(ctx, e, sub, args[1:])
	}
	return usageError{fmt.Sprintf("unknown certs command %q: want list, show, revoke or unhold", args[0])}
}

// certsRevoke revokes a certificate, or lifts a certificateHold, beside a
// running server (which publishes the new CRL and drops cached OCSP
// answers within a second or two). `revoke --cert FILE` takes the
// certificate itself, and records it first when the inventory lacks it
// (a store restored from an older copy).
func certsRevoke(ctx context.Context, e env, sub string, args []string) error {
	var sf storeFlags
	var reason, issuer, certFile string
	usage := "certs unhold SERIAL [--issuer ID]"
	if sub == "revoke" {
		usage = "certs revoke SERIAL|--cert FILE [--reason " + strings.Join(admin.ReasonNames(), "|") + "] [--issuer ID]"
	}
	fs := newFlagSet(e, "certs "+sub, usage)
	sf.register(fs)
	if sub == "revoke" {
		fs.StringVar(&reason, "reason", "unspecified", "RFC 5280 revocation reason: "+strings.Join(admin.ReasonNames(), ", ")+", or its code")
		fs.StringVar(&certFile, "cert", "", "the certificate to revoke (PEM or DER) instead of its serial; one this CA issued that the inventory lacks (a store restored from an older backup) is recorded first")
	}
	fs.StringVar(&issuer, "issuer", "", "issuer ID (or a prefix of it), when more than one CA used the serial")
	if err := parseFlags(fs, e, args, 1, sf.sections()); err != nil {
		return err
	}
	switch {
	case certFile != "" && (fs.NArg() != 0 || issuer != ""):
		return usageError{"--cert names the certificate: give no SERIAL and no --issuer with it"}
	case certFile == "" && fs.NArg() != 1:
		return usageError{"usage: scepter " + usage}
	}
	code, err := admin.ParseReason(reason)
	if err != nil {
		return usageError{pki.ErrorMessage(err)}
	}
	serial := fs.Arg(0)
	if certFile == "" {
		if _, err := admin.NormalizeSerial(serial); err != nil {
			return usageError{pki.ErrorMessage(err)}
		}
	}
	svc, st, err := sf.adminService(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if certFile != "" {
		var recorded bool
		issuer, serial, recorded, err = recordForRevocation(ctx, &sf, st, certFile, cliActor())
		if err != nil {
			return err
		}
		if recorded {
			fmt.Fprintf(e.stdout, "recorded %s in the inventory (profile %s): this CA issued it, the store lacked it\n", pki.ShownSerial(serial), pki.ProfileImported)
		}
	}
	var r admin.Revocation
	if sub == "revoke" {
		r, err = svc.Revoke(ctx, serial, issuer, code, cliActor())
	} else {
		r, err = svc.Unhold(ctx, serial, issuer, cliActor())
	}
	if err != nil {
		return serviceError(err)
	}
	c := r.Certificate
	switch {
	case sub == "unhold" && r.Changed && !c.NotAfter.After(pki.SystemClock{}.Now()):
		// No longer on hold, but not valid either (r134).
		fmt.Fprintf(e.stdout, "hold lifted: %s (%s) is no longer on hold; it expired at %s, so relying parties still refuse it\n",
			printable(pki.ShownSerial(c.SerialHex)), printable(c.Subject), c.NotAfter.UTC().Format(time.RFC3339))
	case sub == "unhold" && r.Changed:
		fmt.Fprintf(e.stdout, "hold lifted: %s (%s) is valid again\n", printable(pki.ShownSerial(c.SerialHex)), printable(c.Subject))
	case sub == "unhold":
		fmt.Fprintf(e.stdout, "%s (%s) is not on hold; nothing to do\n", printable(pki.ShownSerial(c.SerialHex)), printable(c.Subject))
	case r.Changed:
		fmt.Fprintf(e.stdout, "revoked %s (%s) at %s, reason %s\n", printable(pki.ShownSerial(c.SerialHex)), printable(c.Subject),
			c.RevokedAt.UTC().Format(time.RFC3339), admin.ReasonName(c.RevokeReason))
		// A compromised key's other certificates went with it (BR
		// §4.9.1.1): each is named, so that nobody is surprised by them.
		for _, o := range r.AlsoRevoked {
			fmt.Fprintf(e.stdout, "also revoked %s (issuer %s), reason keyCompromise: it has the same key\n",
				printable(pki.ShownSerial(o.SerialHex)), printable(o.IssuerID))
		}
	case c.RevokeReason != code:
		// Not applied: a script must not take this for a revocation with
		// the reason it asked for.
		return fmt.Errorf("%s (%s) is already revoked at %s, reason %s; the reason stays: only a certificateHold can be given another reason, and any other reason raised to keyCompromise",
			printable(pki.ShownSerial(c.SerialHex)), printable(c.Subject), c.RevokedAt.UTC().Format(time.RFC3339), admin.ReasonName(c.RevokeReason))
	default:
		fmt.Fprintf(e.stdout, "already revoked: %s (%s) at %s, reason %s\n", printable(pki.ShownSerial(c.SerialHex)), printable(c.Subject),
			c.RevokedAt.UTC().Format(time.RFC3339), admin.ReasonName(c.RevokeReason))
	}
	return nil
}

// certJSON is the stable JSON shape of `certs list --json`.
type certJSON struct {
	Serial        string    `json:"serial"`
	IssuerID      string    `json:"issuer_id"`
	Subject       string    `json:"subject"`
	Issuer        string    `json:"issuer"`
	SANs          []string  `json:"sans"`
	NotBefore     time.Time `json:"not_before"`
	NotAfter      time.Time `json:"not_after"`
	Status        string    `json:"status"`
	Profile       string    `json:"profile"`
	Protocol      string    `json:"protocol"`
	KeyType       string    `json:"key_type"`
	RequesterAddr string    `json:"requester_addr,omitempty"`
	TransactionID string    `json:"transaction_id,omitempty"`
	RenewedFrom   string    `json:"renewed_from,omitempty"` // "issuerID:serial" of the certificate this one renewed
	// RenewedBy is "issuerID:serial" of the newest certificate that
	// renewed this one (certs list only).
	RenewedBy string    `json:"renewed_by,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// Set for revoked certificates only.
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
	RevokeReason string     `json:"revoke_reason,omitempty"`
	RevokedBy    string     `json:"revoked_by,omitempty"`
}

// displayStatus derives "expired" from the clock; the store keeps only
// valid/revoked.
func displayStatus(c *pki.Certificate, now time.Time) string {
	if c.Status == pki.StatusValid && c.Expired(now) {
		return "expired"
	}
	return string(c.Status)
}

func certsList(ctx context.Context, e env, args []string) error {
	var sf storeFlags
	var within durationDays
	var asJSON bool
	var profile, status, renewed string
	fs := newFlagSet(e, "certs list", "certs list [--status valid|expired|revoked] [--profile P] [--expiring-within 30d] [--renewed false|true] [--json]")
	sf.register(fs)
	fs.Var(&within, "expiring-within", "only certificates that expire within this time (e.g. 30d, 12h), not yet expired; valid ones unless --status revoked is given")
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	fs.StringVar(&profile, "profile", "", "only this profile")
	fs.StringVar(&status, "status", "", "only this status: valid (not expired), expired or revoked")
	fs.StringVar(&renewed, "renewed", "", "false: leave out the certificates a renewal replaced (with --expiring-within, those still to renew); true: only those")
	if err := parseFlags(fs, e, args, 0, sf.sections()); err != nil {
		return err
	}
	zeroWithin := false
	fs.Visit(func(fl *flag.Flag) { zeroWithin = zeroWithin || fl.Name == "expiring-within" && within == 0 })
	if zeroWithin {
		// It would list every certificate, as if no filter were given.
		return usageError{"--expiring-within 0: want a positive time, such as 30d or 12h"}
	}
	// The statuses are those the list shows, the API and /metrics know:
	// "expired" is valid past NotAfter, and "valid" is not expired.
	now := time.Now().UTC()
	f := store.CertFilter{Profile: profile, Limit: 1000}
	switch status {
	case "":
	case "valid":
		f.Status, f.NotAfterAfter = pki.StatusValid, now
	case "expired":
		if within > 0 {
			return usageError{"--status expired and --expiring-within exclude each other"}
		}
		f.Status, f.NotAfterBefore = pki.StatusValid, now
	case "revoked":
		f.Status = pki.StatusRevoked
	default:
		// A misspelt status would list nothing, and look like an answer.
		return usageError{fmt.Sprintf("--status %q: want valid, expired or revoked", status)}
	}
	switch store.RenewedFilter(renewed) {
	case store.RenewedAny, store.RenewedYes, store.RenewedNo:
		f.Renewed = store.RenewedFilter(renewed)
	default:
		// A misspelt value would list every certificate, as if no filter
		// were given.
		return usageError{fmt.Sprintf("--renewed %q: want false (leave out the certificates a renewal replaced) or true (only those)", renewed)}
	}
	if within > 0 {
		if status == "" {
			// Those still to renew, as /metrics and the console count
			// them: a revoked certificate needs no renewal.
			f.Status = pki.StatusValid
		}
		f.NotAfterBefore = now.Add(time.Duration(within))
		f.NotAfterAfter = now
	}
	st, err := sf.openExistingStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	out := []certJSON{}
	for {
		page, next, err := st.ListCertificates(ctx, f)
		if err != nil {
			return err
		}
		for i := range page {
			c := &page[i]
			out = append(out, certJSON{
				Serial: c.SerialHex, IssuerID: c.IssuerID, Subject: c.Subject, Issuer: c.Issuer, SANs: nonNil(c.SANs),
				NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(), Status: displayStatus(c, now), Profile: c.Profile,
				Protocol: string(c.Protocol), KeyType: c.KeyType, RequesterAddr: c.RequesterAddr, TransactionID: c.TransactionID,
				RenewedFrom: c.RenewedFrom, RenewedBy: c.RenewedBy, CreatedAt: c.CreatedAt.UTC(),
			})
			if c.Status == pki.StatusRevoked {
				at := c.RevokedAt.UTC()
				j := &out[len(out)-1]
				j.RevokedAt, j.RevokeReason, j.RevokedBy = &at, admin.ReasonName(c.RevokeReason), c.RevokedBy
			}
		}
		if next == "" {
			break
		}
		f.Cursor = next
	}
	if len(out) == 0 && profile != "" {
		if err := checkListedProfile(ctx, st, &sf, profile); err != nil {
			return err
		}
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERIAL\tSTATUS\tNOT AFTER\tPROFILE\tRENEWED BY\tSUBJECT")
	for _, c := range out {
		// The newest renewal's serial, "-" for none: a renewed
		// certificate is told from one still to renew at a glance.
		renewedBy := "-"
		if _, serial, ok := strings.Cut(c.RenewedBy, ":"); ok {
			renewedBy = pki.ShownSerial(serial)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", printable(pki.ShownSerial(c.Serial)), printable(c.Status), c.NotAfter.Format("2006-01-02"),
			printable(c.Profile), printable(renewedBy), printable(c.Subject))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "%d certificate(s)\n", len(out))
	return nil
}

// checkListedProfile tells an empty list for --profile NAME from a name
// that means nothing: a misspelt profile would list nothing, and look like
// an answer. The CLI knows the profiles of the config file it is given
// (not necessarily the server's), so a name is accepted when that file
// configures it or when any certificate in the store was issued under it
// (a profile since removed, or the CLI run without the server's config).
func checkListedProfile(ctx context.Context, st store.Store, sf *storeFlags, profile string) error {
	configured := map[string]bool{"default": true}
	for name := range sf.profiles {
		configured[name] = true
	}
	if configured[profile] {
		return nil
	}
	issued, _, err := st.ListCertificates(ctx, store.CertFilter{Profile: profile, Limit: 1})
	if err != nil {
		return err
	}
	if len(issued) > 0 {
		return nil
	}
	where := "without --config, only the built-in default"
	if sf.configFile != "" {
		where = "in " + sf.configFile
	}
	return usageError{fmt.Sprintf("--profile %q: no certificate in the store was issued under it, and it is not a configured profile (configured %s: %s)",
		profile, where, strings.Join(slices.Sorted(maps.Keys(configured)), ", "))}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func certsShow(ctx context.Context, e env, args []string) error {
	var sf storeFlags
	fs := newFlagSet(e, "certs show", "certs show SERIAL")
	sf.register(fs)
	if err := parseFlags(fs, e, args, 1, sf.sections()); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"usage: scepter certs show SERIAL (hex, as in certs list)"}
	}
	serial, err := admin.NormalizeSerial(fs.Arg(0))
	if err != nil {
		return usageError{pki.ErrorMessage(err)}
	}
	st, err := sf.openExistingStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	recs, err := st.CertificatesBySerial(ctx, serial)
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		return fmt.Errorf("no certificate with serial %s", pki.ShownSerial(serial))
	}
	now := time.Now().UTC()
	for i := range recs {
		r := &recs[i]
		cert, err := x509.ParseCertificate(r.DER)
		if err != nil {
			return fmt.Errorf("stored certificate %s: %w", pki.ShownSerial(serial), err)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, printable(v)) }
		row("Serial", pki.ShownSerial(r.SerialHex))
		row("Status", displayStatus(r, now))
		row("Subject", r.Subject)
		row("Issuer", r.Issuer)
		row("Not before", r.NotBefore.UTC().Format(time.RFC3339))
		row("Not after", r.NotAfter.UTC().Format(time.RFC3339))
		row("SANs", strings.Join(r.SANs, ", "))
		row("Key", r.KeyType)
		row("Key usage", keyUsageString(cert.KeyUsage))
		row("Ext key usage", extKeyUsageString(cert.ExtKeyUsage))
		row("Profile", r.Profile)
		row("Protocol", string(r.Protocol))
		row("Requester", r.RequesterAddr)
		row("Transaction ID", r.TransactionID)
		if r.RenewedFrom != "" {
			row("Renews", pki.ShownRenewedFrom(r.RenewedFrom))
		}
		row("Recorded", r.CreatedAt.UTC().Format(time.RFC3339))
		if r.Status == pki.StatusRevoked {
			row("Revoked", r.RevokedAt.UTC().Format(time.RFC3339)+", "+admin.ReasonName(r.RevokeReason)+" (by "+r.RevokedBy+")")
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if err := pem.Encode(e.stdout, &pem.Block{Type: "CERTIFICATE", Bytes: r.DER}); err != nil {
			return err
		}
	}
	return nil
}

func keyUsageString(ku x509.KeyUsage) string {
	names := []struct {
		bit  x509.KeyUsage
		name string
	}{
		{x509.KeyUsageDigitalSignature, "digitalSignature"}, {x509.KeyUsageContentCommitment, "contentCommitment"},
		{x509.KeyUsageKeyEncipherment, "keyEncipherment"}, {x509.KeyUsageDataEncipherment, "dataEncipherment"},
		{x509.KeyUsageKeyAgreement, "keyAgreement"}, {x509.KeyUsageCertSign, "keyCertSign"}, {x509.KeyUsageCRLSign, "cRLSign"},
	}
	var out []string
	for _, n := range names {
		if ku&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	return strings.Join(out, ", ")
}

func extKeyUsageString(ekus []x509.ExtKeyUsage) string {
	names := map[x509.ExtKeyUsage]string{
		x509.ExtKeyUsageServerAuth: "serverAuth", x509.ExtKeyUsageClientAuth: "clientAuth",
		x509.ExtKeyUsageEmailProtection: "emailProtection", x509.ExtKeyUsageCodeSigning: "codeSigning",
		x509.ExtKeyUsageIPSECEndSystem: "ipsecEndSystem", x509.ExtKeyUsageIPSECUser: "ipsecUser",
	}
	var out []string
	for _, u := range ekus {
		if n, ok := names[u]; ok {
			out = append(out, n)
		} else {
			out = append(out, fmt.Sprintf("eku(%d)", u))
		}
	}
	return strings.Join(out, ", ")
}

// durationDays is a time.Duration flag that also takes days ("30d").
type durationDays time.Duration

func (d *durationDays) String() string { return time.Duration(*d).String() }
func (d *durationDays) Set(s string) error {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > maxDurationDays {
			return fmt.Errorf("bad duration %q: want 0 to %dd", s, maxDurationDays)
		}
		*d = durationDays(time.Duration(days) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if v < 0 || v > maxDurationDays*24*time.Hour {
		return fmt.Errorf("bad duration %q: want 0 to %dd", s, maxDurationDays)
	}
	*d = durationDays(v)
	return nil
}

// maxDurationDays bounds a durationDays (a century): a time.Duration
// overflows at about 106,751 days.
const maxDurationDays = 36500
