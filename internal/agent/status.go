package agent

import (
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/pki"
)

// CertStatus is what `scepter agent status` shows of one certificate.
type CertStatus struct {
	Config *Certificate
	// Cert is the certificate in place; nil with Problem.
	Cert *x509.Certificate
	// Problem: a file is missing or unreadable, the key and the
	// certificate do not match, others may write their directory, or the
	// certificate is self-signed (not the pinned CA's).
	Problem error
	// RenewAt is the certificate's renewal point.
	RenewAt time.Time
	// Linked: key_path and cert_path are links through the agent's
	// generations (false: regular files, moved into them at the first
	// renewal).
	Linked bool
	// ParkedStart is the start of a renewal waiting for it (zero when
	// none), kept in ParkedPath.
	ParkedStart time.Time
	ParkedPath  string
	// Warning is what the layout costs the files' readers (see
	// certsBehindKeyDir); "" when nothing.
	Warning string
	// PostRenewSince is when the certificate in place was switched in
	// while its post_renew command has not yet run to success (zero when
	// none is owed): the service it reloads still uses the one before.
	// PostRenewRunning is the process group of the command running now
	// (0 when none).
	PostRenewSince   time.Time
	PostRenewRunning int
	// Refused says that the server refused to renew the certificate in
	// place as revoked or on hold, and what to do ("" when it did not, as
	// far as the agent's last renewal attempt learned).
	Refused string
}

// Expired: the certificate in place has expired, which no renewal signed
// by it can mend (the server refuses a renewal by an expired
// certificate): the operator must enroll again.
func (s CertStatus) Expired(now time.Time) bool {
	return s.Cert != nil && !now.Before(s.Cert.NotAfter)
}

// Failing is what makes `agent status` exit 1 for this certificate: a
// problem with its files, an expired certificate, a renewal the server
// refused as revoked or on hold, or a post_renew owed and not running.
func (s CertStatus) Failing(now time.Time) bool {
	return s.Problem != nil || s.Expired(now) || s.Refused != "" || (!s.PostRenewSince.IsZero() && s.PostRenewRunning == 0)
}

// Status reads each certificate's files; it changes nothing and takes no
// lock.
func (a *Agent) Status() []CertStatus {
	var out []CertStatus
	for i := range a.Config.Certificates {
		c := &a.Config.Certificates[i]
		l := newLayout(c, nil)
		s := CertStatus{Config: c}
		p, err := readPair(l)
		if lerr := l.checkLinks(); lerr != nil {
			err = lerr
		} else if derr := l.checkDirs(); derr != nil {
			err = derr
		} else if serr := l.checkStateDir(); serr != nil {
			err = serr
		} else if berr := l.checkBinding(); berr != nil {
			err = berr
		} else if oerr := l.checkOutputDirs(); oerr != nil {
			err = oerr
		} else if werr := l.checkWritable(); werr != nil {
			err = werr
		} else if err == nil && l.chainMissing() {
			err = fmt.Errorf("chain_path %s is missing, though the certificate in place has a chain (%s): an install stopped half-way; the agent's next run links it (it needs write access to %s)",
				c.ChainPath, filepath.Join(l.state, currentName, "chain.pem"), filepath.Dir(c.ChainPath))
		} else if err == nil {
			err = statusInPlace(l, p, c, a.now())
		}
		s.Warning = l.certsBehindKeyDir()
		if err != nil {
			s.Problem = err
		} else {
			s.Cert, s.RenewAt = p.cert, RenewalPoint(p.cert, c.RenewBefore)
			s.Linked = l.combined() || (l.isOurLink(l.key, "key.pem") && l.isOurLink(l.cert, "cert.pem"))
			if r, ok := l.refused(p.cert); ok {
				s.Refused = r.problem(pki.SerialText(p.cert.SerialNumber), a.now())
			}
			if pk := l.peekPark(c, p.cert); pk != nil {
				s.ParkedStart, s.ParkedPath = pk.cert.NotBefore, filepath.Join(l.state, parkedPEM)
			}
			if l.markerFingerprint() == client.Fingerprint(p.cert) {
				if fi, err := os.Stat(filepath.Join(l.state, markerName)); err == nil {
					s.PostRenewSince = fi.ModTime()
				}
				if r, ok := l.readRunning(); ok && processAlive(r.pid, r.identity) {
					s.PostRenewRunning = r.pid
				}
			}
		}
		out = append(out, s)
	}
	return out
}

// WriteStatus prints statuses for people, as of now.
func WriteStatus(w io.Writer, statuses []CertStatus, now time.Time) error {
	const layout = "2006-01-02 15:04:05Z"
	for i, s := range statuses {
		if i > 0 {
			fmt.Fprintln(w)
		}
		c := s.Config
		fmt.Fprintf(w, "%s (%s, %s)\n", c.Name, c.Protocol, client.RedactURL(c.URL))
		if s.Problem != nil {
			fmt.Fprintf(w, "  problem:       %v\n", s.Problem)
		} else {
			fmt.Fprintf(w, "  subject:       %s\n", s.Cert.Subject)
			fmt.Fprintf(w, "  serial:        %s\n", pki.SerialText(s.Cert.SerialNumber))
			fmt.Fprintf(w, "  expires:       %s (%s)\n", s.Cert.NotAfter.UTC().Format(layout), relative(s.Cert.NotAfter.Sub(now), "expired"))
			if !s.ParkedStart.IsZero() {
				// Renewed already: the renewal point of the one in place
				// has passed, and nothing is due but the install.
				fmt.Fprintf(w, "  next renewal:  renewed; the new certificate waits for its start at %s (%s) (%s)\n",
					s.ParkedStart.UTC().Format(layout), relative(s.ParkedStart.Sub(now), "now"), s.ParkedPath)
			} else {
				fmt.Fprintf(w, "  next renewal:  %s (%s)\n", s.RenewAt.UTC().Format(layout), relative(s.RenewAt.Sub(now), "due now"))
			}
			if s.Refused != "" {
				fmt.Fprintf(w, "  problem:       %s\n", s.Refused)
			}
			if s.Expired(now) {
				fmt.Fprintf(w, "  problem:       the certificate has expired: a renewal it signs is refused; enroll again (scepter enroll or scepter est enroll) to the same paths\n")
			}
			switch {
			case !s.PostRenewSince.IsZero() && s.PostRenewRunning != 0:
				fmt.Fprintf(w, "  post_renew:    running (process group %d) for the certificate in place\n", s.PostRenewRunning)
			case !s.PostRenewSince.IsZero():
				fmt.Fprintf(w, "  problem:       post_renew has not run to success for the certificate in place, installed %s (%s): what it reloads still uses the one before; the agent's next run runs it again (its log says why it failed)\n",
					s.PostRenewSince.UTC().Format(layout), ago(now.Sub(s.PostRenewSince)))
			}
			if !s.RenewAt.After(s.Cert.NotBefore) {
				fmt.Fprintf(w, "  warning:       renew_before is not shorter than the certificate's lifetime: it is always due\n")
			}
		}
		if c.Combined() {
			fmt.Fprintf(w, "  key and cert:  %s\n", c.KeyPath)
		} else {
			fmt.Fprintf(w, "  key:           %s\n", c.KeyPath)
			fmt.Fprintf(w, "  certificate:   %s\n", c.CertPath)
		}
		if c.ChainPath != "" && c.ChainPath != c.CertPath {
			fmt.Fprintf(w, "  chain:         %s\n", c.ChainPath)
		}
		if s.Warning != "" {
			fmt.Fprintf(w, "  warning:       %s\n", s.Warning)
		}
		if s.Problem == nil && !s.Linked {
			fmt.Fprintf(w, "  layout:        regular files; the first renewal moves them into %s\n", newLayout(c, nil).state)
		}
	}
	return nil
}

// relative says "in 3d4h", or "<past> 2h ago" for a time gone by.
func relative(d time.Duration, past string) string {
	if d <= 0 {
		if -d < time.Minute {
			return past
		}
		return past + ", " + human(-d) + " ago"
	}
	return "in " + human(d)
}

// ago says when a moment gone by was, d before now: "just now", or "2m
// ago". A moment ahead (the clock set back since) is "in 2m".
func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "in " + human(-d)
	case d < time.Minute:
		return "just now"
	}
	return human(d) + " ago"
}

func human(d time.Duration) string {
	if secs := (d + time.Second - 1) / time.Second; secs < 60 {
		// Rounded to minutes it would read "0m", as if now.
		return fmt.Sprintf("%ds", secs)
	}
	d = d.Round(time.Minute)
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	h := d / time.Hour
	m := (d - h*time.Hour) / time.Minute
	switch {
	case days > 0:
		return fmt.Sprintf("%dd%dh", days, h)
	case h > 0:
		return fmt.Sprintf("%dh%02dm", h, m)
	}
	return fmt.Sprintf("%dm", m)
}
