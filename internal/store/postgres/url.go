package postgres

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// ErrInvalidURL marks a URL Open refuses before connecting: a
// configuration error no retry mends.
var ErrInvalidURL = errors.New("invalid URL")

// checkUserinfo refuses a URL whose user name and password could be read
// in more than one way: the one '@' it takes is the one that ends them,
// before the host. The driver (pgx, which reads URLs as libpq does) ends
// the userinfo at the first '@' before the first '/', net/url at the last
// '@' before the first '/', '?' or '#', and the user may have meant any
// '@' of the URL, a raw '/' or '?' in the password putting the one they
// meant after it. A raw '@' in a password (postgres://u:Pa@ss@host/db)
// gives the driver the host "ss@host", and one after a raw '/'
// (postgres://u:Pa@ss/word@host/db) the host "ss", which it sends to DNS
// and prints in its error with the rest as a database name. So a second
// '@' before the first '/', or any '@' after it (in a database name or a
// query value, where %40 writes it), is refused rather than guessed at.
// Its message shows no part of the URL.
func checkUserinfo(raw string) error {
	rest, ok := cutScheme(raw)
	if !ok {
		return nil
	}
	head, tail, _ := strings.Cut(rest, "/")
	at := strings.IndexByte(head, '@')
	if at >= 0 && strings.Contains(head[at+1:], "@") {
		return fmt.Errorf("%w: the user name or password holds a raw '@', which the PostgreSQL driver would take for the end of the password (and print the rest as the host name): write '@' as %%40 there (postgres://USER:PASS%%40WORD@HOST/DATABASE)", ErrInvalidURL)
	}
	if strings.Contains(tail, "@") {
		return fmt.Errorf("%w: an '@' comes after the first '/', where the PostgreSQL driver does not take it for the end of a user name and password (a raw '/' in them ends the host part there, and the driver would send what follows the first '@' to DNS as a host name): %s, and write '@' in a database name or a query value as %%40 (postgres://USER:PASS%%2FWORD@HOST:5432/DATABASE)", ErrInvalidURL, reservedHint)
	}
	if at >= 0 && strings.ContainsAny(head[:at], "?#") {
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

// reservedHint tells how to write the characters the URL syntax reserves
// in a user name or password.
const reservedHint = "percent-encode reserved characters in the user name and password (/ as %2F, : as %3A, @ as %40, ? as %3F, # as %23, % as %25)"

// cutScheme is raw after "postgres://" or "postgresql://", and whether it
// has either prefix (pgx parses key=value strings otherwise).
func cutScheme(raw string) (string, bool) {
	if rest, ok := strings.CutPrefix(raw, "postgresql://"); ok {
		return rest, true
	}
	return strings.CutPrefix(raw, "postgres://")
}

// parseFailure is why the driver could not parse raw, wrapping
// ErrInvalidURL, without any part of raw: for a port it names the range
// (the driver says only "invalid port", or fails first on a later part),
// otherwise the driver's reason (parseError), without the part of the URL
// it quotes when the URL may hold a password (unquoted): pgx quotes the
// raw text of the part it could not decode, which a raw '/', '?', '#' or
// '&' in a password makes a piece of the password.
func parseFailure(raw string, err error) error {
	if head, at := driverUserinfo(raw); head != "" {
		netloc, _, _ := strings.Cut(head[at+1:], "?")
		if _, bad := firstBadPort(netloc); bad {
			msg := "a port in the URL is not a number from 1 to 65535 (postgres://USER:PASSWORD@HOST:5432/DATABASE, or HOST1:5432,HOST2:5433 for several hosts)"
			if at < 0 {
				// No '@' before the first '/': the "port" may be
				// a password cut short by a raw '/'.
				msg += "; if what stands there is part of a password, " + reservedHint
			}
			return fmt.Errorf("%w: %s", ErrInvalidURL, msg)
		}
	}
	reason := parseError(err).Error()
	hidden := false
	if mayHoldPassword(raw) {
		reason, hidden = unquoted(reason)
	}
	if hidden || strings.Contains(reason, "percent-encoded") {
		// pgx names a password it could not decode without quoting it,
		// so a URL may be refused for a password even without a quote.
		reason += "; " + reservedHint
	}
	return fmt.Errorf("%w: %s", ErrInvalidURL, reason)
}

// mayHoldPassword reports whether raw may hold a password: it has an '@'
// (a user name and password may stand before it) or names a password
// parameter (password=, sslpassword=, percent-encoded or not).
func mayHoldPassword(raw string) bool {
	return strings.Contains(raw, "@") || strings.Contains(strings.ToLower(lenientUnescape(raw)), "pass")
}

// unquoted is msg, a driver's reason, cut at its first quote, which opens
// the part of the connection string the driver quotes (a piece of the
// password, when the password holds what ends a part of the URL), saying
// so, and whether it cut. The text after that quote is dropped too: the
// quoted part may itself hold a quote.
func unquoted(msg string) (string, bool) {
	i := strings.IndexAny(msg, "\"`")
	if i < 0 {
		return msg, false
	}
	return strings.TrimRight(msg[:i], " :") + " (the part of the URL the driver names is not shown, as the URL may hold a password)", true
}

// firstBadPort is the first port of a driver's host list (host[:port],
// comma-separated, IPv6 addresses in brackets) that is no number from 1 to
// 65535, and whether there is one. An empty port is the default, and one
// percent-encoded is left to the driver.
func firstBadPort(netloc string) (port string, bad bool) {
	for _, hostPort := range strings.Split(netloc, ",") {
		if strings.HasPrefix(hostPort, "[") {
			end := strings.IndexByte(hostPort, ']')
			if end < 0 {
				continue // the driver names this itself
			}
			hostPort = hostPort[end+1:]
		}
		_, p, ok := strings.Cut(hostPort, ":")
		p = strings.Trim(p, " ")
		if !ok || p == "" || strings.Contains(p, "%") {
			continue
		}
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return p, true
		}
	}
	return "", false
}

// openLabel is how Open's errors name the store: "postgres: open" and the
// redacted URL, or alone when Redact could show nothing of it (its
// "postgres" would read "postgres: open postgres").
func openLabel(name string) string {
	if name == "postgres" {
		return "postgres: open"
	}
	return "postgres: open " + name
}

// driverUserinfo is the part of a postgres:// URL before its first '/'
// (after the scheme) and the index in it of the first '@', which ends the
// userinfo for the driver; -1 when there is none, or raw is no such URL
// (pgx parses key=value strings itself).
func driverUserinfo(raw string) (head string, at int) {
	rest, ok := cutScheme(raw)
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
	}
	// The query as the driver and net/url split it, by hand: url.ParseQuery
	// drops a pair it cannot decode (password=top%zz), which the driver
	// still reads.
	qWhole, qPartial := querySecrets(raw)
	whole = append(whole, qWhole...)
	partial = append(partial, qPartial...)
	whole = append(whole, keywordSecrets(raw)...)
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
			if d := lenientUnescape(w); d != w {
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

// isPasswordKey reports whether a query or keyword/value key names a
// password (password, libpq's sslpassword for the client key), however it
// is percent-encoded, or cannot be decoded at all (the driver refuses it,
// and what it stands for cannot be told).
func isPasswordKey(key string) bool {
	if _, err := url.QueryUnescape(key); err != nil {
		return true
	}
	return strings.Contains(strings.ToLower(lenientUnescape(key)), "password")
}

// redactQuery is a URL's raw query with the value of every password
// parameter (isPasswordKey) replaced by "xxxxx", and every part without
// '=' (which the driver refuses; it may be the rest of a password that
// holds a raw '&') by "xxxxx" alone. Split on '&' by hand, as the driver
// does, and kept in its order and encoding otherwise: whatever the
// encoding of a value, no password shows.
func redactQuery(rawQuery string) string {
	if rawQuery == "" {
		return ""
	}
	pairs := strings.Split(rawQuery, "&")
	for i, pair := range pairs {
		key, _, hasValue := strings.Cut(pair, "=")
		switch {
		case !hasValue && pair != "":
			pairs[i] = "xxxxx"
		case hasValue && isPasswordKey(key):
			pairs[i] = key + "=xxxxx"
		}
	}
	return strings.Join(pairs, "&")
}

// querySecrets is the password parameters' values of a postgres:// URL's
// query (after its first '?'), split as redactQuery splits it, and the
// parts without '=' (a password's rest after a raw '&'), as partial
// secrets.
func querySecrets(raw string) (whole, partial []string) {
	rest, ok := cutScheme(raw)
	if !ok {
		return nil, nil
	}
	_, query, ok := strings.Cut(rest, "?")
	if !ok {
		return nil, nil
	}
	for _, pair := range strings.Split(query, "&") {
		key, value, hasValue := strings.Cut(pair, "=")
		switch {
		case !hasValue:
			partial = append(partial, pair)
		case isPasswordKey(key):
			whole = append(whole, value)
		}
	}
	return whole, partial
}

// keywordValuePassword matches a password of a libpq keyword/value
// connection string (password=secret, password = 'se cret').
var keywordValuePassword = regexp.MustCompile(`(?i)password\s*=\s*('(?:[^'\\]|\\.)*'?|\S+)`)

// keywordSecrets is the passwords of a keyword/value connection string
// (what pgx takes when raw is no postgres:// URL), quoted and unquoted.
func keywordSecrets(raw string) []string {
	if _, ok := cutScheme(raw); ok {
		return nil
	}
	var out []string
	for _, m := range keywordValuePassword.FindAllStringSubmatch(raw, -1) {
		v := m[1]
		out = append(out, v)
		if u := strings.Trim(v, "'"); u != v {
			out = append(out, u, strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(u))
		}
	}
	return out
}

// lenientUnescape decodes every valid %XX of s and leaves the rest as it
// is, as a reader that goes on past a bad escape would.
func lenientUnescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b.WriteByte(byte(v))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
