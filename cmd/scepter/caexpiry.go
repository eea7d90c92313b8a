package main

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"path/filepath"
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
func caExpiryWarnings(a *ca.Authority, dataDir string, now time.Time) []string {
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
		default:
			dir := filepath.Join(dataDir, "ca")
			out = append(out, fmt.Sprintf("the SCEP RA certificate %s; SCEP clients cannot encrypt to it after that: stop the server, remove %s and %s, and start it again to have a new one issued",
				when, filepath.Join(dir, ca.RACertFile), filepath.Join(dir, ca.RAKeyFile)))
		}
	}
	return out
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
func warnCAExpiry(a *ca.Authority, dataDir string, now time.Time, log *slog.Logger) {
	for _, w := range caExpiryWarnings(a, dataDir, now) {
		log.Warn(w)
	}
}
