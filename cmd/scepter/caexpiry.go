package main

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"time"

	"github.com/scepter/scepter/internal/ca"
)

// expiryWarning is how long before the root, the issuing CA or the SCEP RA
// certificate expires the server starts warning, once at start and once a
// day: enough for a rollover and for devices to renew under the new CA.
const expiryWarning = 90 * 24 * time.Hour

// caExpiryWarnings says, for each of the CA's own certificates in use at
// now that expires within expiryWarning (or has), when, and what to do. A
// next issuing CA already scheduled silences the issuing CA's warning.
// sharedStore (PostgreSQL) changes the SCEP RA's advice: the server renews
// it by itself only on SQLite (see raRenewalDue).
func caExpiryWarnings(a *ca.Authority, dataDir string, now time.Time, sharedStore bool) []string {
	var out []string
	soon := func(c *x509.Certificate) (string, bool) {
		if c == nil || c.NotAfter.Sub(now) > expiryWarning {
			return "", false
		}
		if !now.Before(c.NotAfter) {
			return "expired on " + c.NotAfter.UTC().Format(time.RFC3339), true
		}
		return fmt.Sprintf("expires on %s, %s", c.NotAfter.UTC().Format(time.RFC3339), timeLeft(c.NotAfter.Sub(now))), true
	}
	issuer, ra := a.Active(now)
	_, _, nextScheduled := a.Next(now)
	switchAt, _ := a.SwitchAt()
	if when, ok := soon(a.Root); ok {
		out = append(out, "the root CA certificate "+when+": every certificate of this CA stops verifying then; plan a new CA and move devices to it")
	}
	if issuer != nil && !nextScheduled {
		if when, ok := soon(issuer.Cert); ok {
			out = append(out, "the issuing CA certificate "+when+"; roll it over before then: scepter ca rollover --switch-at TIME (certificates are cut short to its end meanwhile)")
		}
	}
	if ra != nil && !ra.IsCA {
		when, ok := soon(ra.Cert)
		switch {
		case !ok:
		case nextScheduled && switchAt.Before(ra.Cert.NotAfter):
			// The next CA, scheduled before the RA's end, has an RA of
			// its own.
		case issuer != nil && issuer.Cert.NotAfter.Sub(now) <= expiryWarning:
			// A new RA certificate would end with the issuing CA: only a
			// rollover helps.
			out = append(out, fmt.Sprintf("the SCEP RA certificate %s; SCEP clients cannot encrypt to it after that, and a new one would end with the issuing CA on %s: roll the issuing CA over (scepter ca rollover --switch-at TIME), which makes a new RA with it",
				when, issuer.Cert.NotAfter.UTC().Format(time.RFC3339)))
		case sharedStore:
			// Keys never go into the store: the nodes cannot agree on a
			// new RA key by themselves.
			out = append(out, fmt.Sprintf("the SCEP RA certificate %s; SCEP clients cannot encrypt to it after that: renew it on one node with 'scepter ca renew-ra --data-dir %s --store URL' (with the --pkcs11-… flags when the CA's keys are in a token), "+
				"then bring the new RA to every other node with 'scepter ca export-keys' there and 'scepter ca import-keys' on each (keys in a token: copy ca/ra.pkcs11, then ca/ra.crt, and ca/retired-ra/); "+
				"the nodes keep decrypting with the old RA until it expires, so clients that cached it still enroll",
				when, shellQuote(dataDir)))
		default:
			out = append(out, fmt.Sprintf("the SCEP RA certificate %s; SCEP clients cannot encrypt to it after that: the server renews it by itself from %d days before its end, or now with 'scepter ca renew-ra --data-dir %s'; "+
				"the old RA keeps decrypting until it expires, so clients that cached it still enroll",
				when, int(raAutoRenew.Hours()/24), shellQuote(dataDir)))
		}
	}
	return out
}

// raRenewalDue says whether serve renews the SCEP RA by itself at now: a
// separate RA certificate within raAutoRenew of its end, that no scheduled
// rollover's RA replaces before then, under an issuing CA that outlives
// the warning window (otherwise a new RA would end with it soon after, and
// the warning says to roll the issuing CA over). Only on SQLite
// (sharedStore false), where serve.lock guarantees one node per data
// directory: nodes sharing a PostgreSQL store each hold the keys, which
// never go into the store, so they could not agree on a new one.
func raRenewalDue(a *ca.Authority, now time.Time, sharedStore bool) bool {
	if sharedStore {
		return false
	}
	issuer, ra := a.Active(now)
	if issuer == nil || ra == nil || ra.IsCA || ra.Cert.NotAfter.Sub(now) > raAutoRenew {
		return false
	}
	if _, _, nextScheduled := a.Next(now); nextScheduled {
		if switchAt, _ := a.SwitchAt(); switchAt.Before(ra.Cert.NotAfter) {
			return false
		}
	}
	return issuer.Cert.NotAfter.Sub(now) > expiryWarning
}

// timeLeft says how long is left, in days, or in hours or minutes on the
// last two days (a warning of "in 0 days" says nothing).
func timeLeft(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("in %d days", int(d.Hours()/24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("in %d hours", int(d.Hours()))
	case d >= 2*time.Minute:
		return fmt.Sprintf("in %d minutes", int(d.Minutes()))
	}
	return "in a minute or less"
}

// warnCAExpiry logs caExpiryWarnings.
func warnCAExpiry(a *ca.Authority, dataDir string, now time.Time, sharedStore bool, log *slog.Logger) {
	for _, w := range caExpiryWarnings(a, dataDir, now, sharedStore) {
		log.Warn(w)
	}
}
