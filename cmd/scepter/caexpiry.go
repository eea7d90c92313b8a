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
		return fmt.Sprintf("expires on %s, in %d days", c.NotAfter.UTC().Format(time.RFC3339), int(c.NotAfter.Sub(now).Hours()/24)), true
	}
	issuer, ra := a.Active(now)
	_, _, nextScheduled := a.Next(now)
	if when, ok := soon(a.Root); ok {
		out = append(out, "the root CA certificate "+when+": every certificate of this CA stops verifying then; plan a new CA and move devices to it")
	}
	if issuer != nil && !nextScheduled {
		if when, ok := soon(issuer.Cert); ok {
			out = append(out, "the issuing CA certificate "+when+"; roll it over before then: scepter ca rollover --switch-at TIME (certificates are cut short to its end meanwhile)")
		}
	}
	if ra != nil && !ra.IsCA {
		if when, ok := soon(ra.Cert); ok {
			dir := filepath.Join(dataDir, "ca")
			out = append(out, fmt.Sprintf("the SCEP RA certificate %s; SCEP clients cannot encrypt to it after that: stop the server, remove %s and %s, and start it again to have a new one issued",
				when, filepath.Join(dir, ca.RACertFile), filepath.Join(dir, ca.RAKeyFile)))
		}
	}
	return out
}

// warnCAExpiry logs caExpiryWarnings.
func warnCAExpiry(a *ca.Authority, dataDir string, now time.Time, log *slog.Logger) {
	for _, w := range caExpiryWarnings(a, dataDir, now) {
		log.Warn(w)
	}
}
