package client

import (
	"net/url"
	"strings"
)

// RedactURL is raw with the password of its userinfo (user:password@)
// replaced, for whatever a client (the agent, the load tool) prints or logs: a
// configured url may carry credentials, and a status, an error or a log
// line must not show them. A URL
// that does not parse loses everything between "//" and the last "@"
// before its path.
func RedactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	i := strings.Index(raw, "//")
	if i < 0 {
		return raw
	}
	authority := raw[i+2:]
	if end := strings.IndexAny(authority, "/?#"); end >= 0 {
		authority = authority[:end]
	}
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		return raw[:i+2] + "xxxxx" + raw[i+2+at:]
	}
	return raw
}
