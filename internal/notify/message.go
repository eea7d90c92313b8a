package notify

import (
	"encoding/base64"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/scepter/scepter/internal/pki"
)

// timeLeft says how long until t, coarsely: "6 days", "20 hours", "45 minutes".
func timeLeft(now, t time.Time) string {
	d := t.Sub(now)
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case d >= 48*time.Hour:
		return plural(int64(d/(24*time.Hour)), "day")
	case d >= 2*time.Hour:
		return plural(int64(d/time.Hour), "hour")
	case d >= time.Minute:
		return plural(int64(d/time.Minute), "minute")
	}
	return "less than a minute"
}

// subjectInHeader is the most of a certificate's subject a mail's Subject
// header carries (in characters): a DN may run to thousands, and an ASCII
// header line is not folded, while RFC 5322 §2.1.1 bounds lines at 998.
// The body holds the whole subject.
const subjectInHeader = 200

// mailSubject is the Subject of an expiry mail.
func mailSubject(m Message) string {
	subject := []rune(oneLine(m.Certificate.Subject))
	if len(subject) > subjectInHeader {
		subject = append(subject[:subjectInHeader-1], '…')
	}
	return fmt.Sprintf("[scepter] Certificate %s expires in %s", string(subject), timeLeft(m.Time, m.Certificate.NotAfter))
}

// literalHeader returns a header value that mail readers show as s,
// character for character. The mail library encodes text that is not
// ASCII, but passes ASCII through as it is, and readers decode any RFC 2047
// encoded-word ("=?UTF-8?Q?...?=") in it: a device could put one in its
// certificate's subject and have the reader show characters the CA refuses
// in subjects (a bidirectional override, a line break) and any wording it
// likes. Text holding "=?" is therefore encoded whole (RFC 2047 §5), as
// encoded-words that decode to it exactly.
func literalHeader(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	// An encoded-word is at most 75 characters (RFC 2047 §2): the 12 of
	// "=?UTF-8?B?" and "?=" and 60 of base64, which carry 45 bytes.
	const chunk = 45
	var words []string
	for len(s) > 0 {
		n := min(chunk, len(s))
		for n < len(s) && !utf8.RuneStart(s[n]) {
			n-- // a character is not split between two words
		}
		words = append(words, "=?UTF-8?B?"+base64.StdEncoding.EncodeToString([]byte(s[:n]))+"?=")
		s = s[n:]
	}
	// The white space between adjacent encoded-words is no part of the
	// text (RFC 2047 §6.2); the library folds the header there.
	return strings.Join(words, " ")
}

// mailBody is the plain-text body of an expiry mail.
func mailBody(m Message) string {
	c := &m.Certificate
	var b strings.Builder
	fmt.Fprintf(&b, "The certificate below expires in %s, at %s.\n", timeLeft(m.Time, c.NotAfter), c.NotAfter.UTC().Format(time.RFC3339))
	b.WriteString("Renew it before then: a device renews with the certificate it has\n")
	b.WriteString("(SCEP RenewalReq, EST simplereenroll, `scepter renew`), or enrolls again.\n\n")
	row := func(k, v string) { fmt.Fprintf(&b, "%-12s %s\n", k+":", v) }
	row("Subject", oneLine(c.Subject))
	if len(c.SANs) > 0 {
		row("Names", oneLine(strings.Join(c.SANs, ", ")))
	}
	row("Serial", pki.ShownSerial(c.SerialHex))
	row("Issuer ID", c.IssuerID)
	row("Issuer", oneLine(c.Issuer))
	row("Profile", c.Profile)
	row("Not after", c.NotAfter.UTC().Format(time.RFC3339))
	row("Threshold", FormatThreshold(m.Threshold))
	b.WriteString("\nscepter sends one message per certificate and threshold, and none once the\n")
	b.WriteString("certificate is renewed or revoked. Notification ID: " + m.ID + "\n")
	return b.String()
}

// oneLine keeps a value from breaking a header or a row.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
