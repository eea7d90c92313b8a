package agent

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
)

// RevokedRetry is how long the agent waits before it asks again for the
// renewal of a certificate the server refused as revoked or on hold: no
// renewal it signs is accepted until someone acts (enrolls again, lifts
// the hold), so asking at retry_max's pace only fills the log.
const RevokedRetry = 24 * time.Hour

// refusedName is the file, in a certificate's state directory, that
// records that the server refused to renew the certificate in place as
// revoked or on hold, for `agent status`, which asks no server.
const refusedName = "renewal-refused"

// errRevoked: the server refused the renewal because the certificate in
// place is revoked, or on hold (certificateHold).
type errRevoked struct {
	hold   bool
	serial string
	err    error // the server's refusal
}

func (e *errRevoked) Unwrap() error { return e.err }

func (e *errRevoked) Error() string {
	return fmt.Sprintf("the server refuses to renew the certificate in place (serial %s): %s (%v); %s; the agent asks again only every %s",
		e.serial, e.what(), e.err, e.advice(), human(RevokedRetry))
}

func (e *errRevoked) what() string {
	if e.hold {
		return "it is on hold (certificateHold)"
	}
	return "it is revoked"
}

func (e *errRevoked) advice() string {
	if e.hold {
		return "ask the CA's operator to lift the hold (scepter certs unhold " + e.serial + "), then the agent renews it; or enroll again (scepter enroll or scepter est enroll) to the same paths"
	}
	return "no renewal it signs will be accepted: enroll again (scepter enroll or scepter est enroll) to the same paths (once they are links, as docs/agent.md says under \"To replace the files by hand\"), and the agent renews the new certificate"
}

// revokedRefusal is err as an *errRevoked when the server refused the
// renewal of cert because cert is revoked or on hold: SCEP badCertId, EST
// 401, saying so (scepter's server words every such refusal "… is
// revoked" or "… is on hold"). nil for any other answer.
func revokedRefusal(err error, cert *x509.Certificate) *errRevoked {
	var text string
	var fe *client.FailureError
	var he *client.HTTPError
	switch {
	case errors.As(err, &fe) && fe.FailInfo == scep.BadCertID:
		text = fe.Text
	case errors.As(err, &he) && he.Status == http.StatusUnauthorized:
		text = he.Reason
	default:
		return nil
	}
	r := &errRevoked{serial: pki.SerialText(cert.SerialNumber), err: err}
	switch {
	case strings.Contains(text, "is on hold"):
		r.hold = true
	case strings.Contains(text, "is revoked"):
	default:
		return nil
	}
	return r
}

// refusedRecord is what the record of a revoked refusal says.
type refusedRecord struct {
	fingerprint string // of the certificate refused
	hold        bool
	at          time.Time
	reason      string // the refusal as the agent logged it
}

// saveRefused records the refusal r of the certificate in place.
func (l *layout) saveRefused(cert *x509.Certificate, r *errRevoked, at time.Time) error {
	data := "fingerprint " + strconv.Quote(client.Fingerprint(cert)) + "\nhold " + strconv.FormatBool(r.hold) +
		"\nat " + strconv.Quote(at.UTC().Format(time.RFC3339)) + "\nreason " + strconv.Quote(r.err.Error()) + "\n"
	return l.writeFile(filepath.Join(l.state, refusedName), []byte(data), 0o600, "")
}

// clearRefused removes the record: the certificate it names is no longer
// in place, or the server answered its renewal otherwise.
func (l *layout) clearRefused() {
	if err := os.Remove(filepath.Join(l.state, refusedName)); err == nil {
		syncDir(l.state)
	} else if !errors.Is(err, fs.ErrNotExist) {
		l.warnf("could not remove the record of a renewal refused as revoked", "file", filepath.Join(l.state, refusedName), "err", err)
	}
}

// refused is the record of a revoked refusal of cert, the certificate in
// place; ok false when there is none for it.
func (l *layout) refused(cert *x509.Certificate) (r refusedRecord, ok bool) {
	data, err := os.ReadFile(filepath.Join(l.state, refusedName))
	if err != nil {
		return r, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "fingerprint":
			r.fingerprint, _ = strconv.Unquote(v)
		case "hold":
			r.hold = v == "true"
		case "at":
			s, _ := strconv.Unquote(v)
			r.at, _ = time.Parse(time.RFC3339, s)
		case "reason":
			r.reason, _ = strconv.Unquote(v)
		}
	}
	return r, r.fingerprint != "" && r.fingerprint == client.Fingerprint(cert)
}

// problem is what `agent status` says of the record.
func (r refusedRecord) problem(serial string, now time.Time) string {
	e := &errRevoked{hold: r.hold, serial: serial}
	when := "at a renewal"
	if !r.at.IsZero() {
		when = r.at.UTC().Format("2006-01-02 15:04:05Z") + " (" + ago(now.Sub(r.at)) + ")"
	}
	return fmt.Sprintf("the server refused to renew the certificate in place %s: %s; %s", when, e.what(), e.advice())
}
