package postgres

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// ErrInvalidURL marks a URL Open refuses before connecting: a
// configuration error no retry mends.
var ErrInvalidURL = errors.New("invalid URL")

// checkUserinfo refuses a URL whose user name and password the driver
// (pgx, which reads URLs as libpq does) and Redact (net/url) would find in
// different places. pgx ends the userinfo at the first '@' before the
// first '/', net/url at the last '@' before the first '/', '?' or '#'. A
// raw '@' in a password (postgres://u:Pa@ss@host/db) therefore gives the
// driver the host "ss@host", which its connection error prints, while
// Redact has masked the whole password as the user meant it. Its message
// shows no part of the URL.
func checkUserinfo(raw string) error {
	head, at := driverUserinfo(raw)
	if at < 0 {
		return nil
	}
	if strings.Contains(head[at+1:], "@") {
		return fmt.Errorf("%w: the user name or password holds a raw '@', which the PostgreSQL driver would take for the end of the password (and print the rest as the host name): write '@' as %%40 there (postgres://USER:PASS%%40WORD@HOST/DATABASE)", ErrInvalidURL)
	}
	if strings.ContainsAny(head[:at], "?#") {
		// With a raw '?' or '#' before it, the '@' ends the userinfo for
		// the driver only: net/url, when it can read the URL at all, puts
		// it in the query (postgres://host:5432?password=Pa@ss). When
		// net/url cannot, Redact shows nothing of the URL, and the two
		// cannot disagree.
		if _, err := url.Parse(raw); err == nil {
			return fmt.Errorf("%w: a '@' follows a raw '?' or '#' before the database name, which the PostgreSQL driver reads as the end of a user name and password and other readers of the URL as part of its query: write '?' as %%3F and '#' as %%23 in a password, and '@' as %%40 in a query value", ErrInvalidURL)
		}
	}
	return nil
}

// driverUserinfo is the part of a postgres:// URL before its first '/'
// (after the scheme) and the index in it of the first '@', which ends the
// userinfo for the driver; -1 when there is none, or raw is no such URL
// (pgx parses key=value strings itself).
func driverUserinfo(raw string) (head string, at int) {
	rest, ok := strings.CutPrefix(raw, "postgresql://")
	if !ok {
		rest, ok = strings.CutPrefix(raw, "postgres://")
	}
	if !ok {
		return "", -1
	}
	head, _, _ = strings.Cut(rest, "/")
	return head, strings.IndexByte(head, '@')
}

// minSecretPart is the shortest part of a password (split at '@' and ':')
// that scrubSecrets masks: shorter ones would mask common words of the
// driver's messages and reveal next to nothing.
const minSecretPart = 4

// urlSecrets is every password raw holds as the driver or net/url reads
// it (userinfo and password-like query parameters), raw and decoded, and
// their parts of at least minSecretPart bytes between '@' and ':', longest
// first.
func urlSecrets(raw string) []string {
	var whole, partial []string
	var driverPass string
	if head, at := driverUserinfo(raw); at >= 0 {
		_, driverPass, _ = strings.Cut(head[:at], ":")
	}
	if u, err := url.Parse(raw); err != nil {
		// Only the driver's reading is left (a raw '?' in the password,
		// say).
		whole = append(whole, driverPass)
	} else {
		// Where net/url reads the URL differently, the driver's password
		// is a part of the real one, masked as a part.
		partial = append(partial, driverPass)
		if pass, ok := u.User.Password(); ok {
			whole = append(whole, pass)
		}
		if q, err := url.ParseQuery(u.RawQuery); err == nil {
			for k, vs := range q {
				if strings.Contains(strings.ToLower(k), "password") {
					whole = append(whole, vs...)
				}
			}
		}
	}
	seen := map[string]bool{}
	var secrets []string
	add := func(s string, min int) {
		if s != "" && len(s) >= min && !seen[s] {
			seen[s] = true
			secrets = append(secrets, s)
		}
	}
	for _, list := range []struct {
		secrets []string
		min     int
	}{{whole, 1}, {partial, minSecretPart}} {
		for _, w := range list.secrets {
			forms := []string{w}
			if d, err := url.PathUnescape(w); err == nil {
				forms = append(forms, d)
			}
			for _, f := range forms {
				add(f, list.min)
				for _, part := range strings.FieldsFunc(f, func(r rune) bool { return r == '@' || r == ':' }) {
					add(part, minSecretPart)
				}
			}
		}
	}
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	return secrets
}

// scrubbedError is an error whose text had secrets masked; errors.Is and
// errors.As still see what it wraps.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// scrubSecrets masks in err's text every password of raw and each part of
// it (urlSecrets): a second guard behind checkUserinfo, for any other way
// the driver's own error text (which Redact does not reach) could carry
// what it took for a host, a user or a database name.
func scrubSecrets(err error, raw string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	scrubbed := msg
	for _, s := range urlSecrets(raw) {
		scrubbed = strings.ReplaceAll(scrubbed, s, "xxxxx")
	}
	if scrubbed == msg {
		return err
	}
	return &scrubbedError{msg: scrubbed, err: err}
}
