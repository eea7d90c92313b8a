package est

import (
	"errors"
	"net/url"
	"strings"
)

// Why ParseClientURL refuses a URL; callers add the URL and their own
// advice (which flags carry credentials, say) with %w.
var (
	ErrURLScheme = errors.New("want https://HOST[:PORT][/LABEL] (/.well-known/est/LABEL also)")
	// ErrURLCredentials: user info is neither sent nor shown, so it would
	// be dropped without a word and the request refused for credentials
	// thought given.
	ErrURLCredentials = errors.New("an EST URL carries no credentials")
	// ErrURLQuery: EST's operations are whole paths (RFC 7030 §3.2.2), so a
	// query or fragment would be dropped without a word, and with it
	// whatever was meant by it (a label, a tenant).
	ErrURLQuery = errors.New("an EST URL has no query or fragment, which EST's paths do not take (RFC 7030 §3.2.2): give a label as the last path segment, https://HOST/.well-known/est/LABEL")
	ErrURLLabel = errors.New("an EST label is one path segment, after the host or after /.well-known/est/")
)

// ParseClientURL splits the URL a client is given for an EST server,
// https://HOST[:PORT][/LABEL] or https://HOST[:PORT]/.well-known/est[/LABEL],
// into its host (with the port, if any) and label ("" for none). It
// refuses, with one of the ErrURL errors, anything of the URL that the
// requests would not carry: user info, a query or a fragment (an empty
// "?" or "#" too).
func ParseClientURL(raw string) (host, label string, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", "", ErrURLScheme
	}
	if u.User != nil {
		return "", "", ErrURLCredentials
	}
	// url.Parse keeps no mark of an empty fragment ("…/LABEL#"); a "#"
	// has no other place in a URL (user info has it escaped).
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#") {
		return "", "", ErrURLQuery
	}
	label = strings.Trim(u.Path, "/")
	// Only a whole ".well-known/est" segment is the prefix: a path such as
	// /.well-known/estx is a typo, not label "x".
	if wellKnown := strings.Trim(PathPrefix, "/"); label == wellKnown {
		label = ""
	} else if rest, ok := strings.CutPrefix(label, wellKnown+"/"); ok {
		label = strings.Trim(rest, "/")
	}
	if strings.Contains(label, "/") {
		return "", "", ErrURLLabel
	}
	return u.Host, label, nil
}
