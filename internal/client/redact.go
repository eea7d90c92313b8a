package client

import (
	"net/url"
	"strings"
)

// RedactURL is raw with the password of its userinfo (user:password@)
// replaced, for whatever a client (the agent, the load tool) prints or logs: a
// configured url may carry credentials, and a status, an error or a log
// line must not show them. A URL in which net/url finds no user info but
// which holds an "@" (it does not parse, or a raw "/", "?" or "#" in the
// password moved the "@" into the path, query or fragment:
// "https://u:Secr3t#1@host/", "https://u:123/x@host/") loses everything
// between "//" and its last "@": more than the password, perhaps, never
// less.
func RedactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && (u.User != nil || !strings.Contains(raw, "@")) {
		shown := u.Redacted()
		if strings.HasSuffix(raw, "#") && !strings.HasSuffix(shown, "#") {
			// An empty fragment leaves no mark in u: shown as given, so
			// that a refusal of it quotes what it refuses.
			shown += "#"
		}
		return shown
	}
	i := strings.Index(raw, "//")
	if i < 0 {
		return raw
	}
	if at := strings.LastIndex(raw[i+2:], "@"); at >= 0 {
		return raw[:i+2] + "xxxxx" + raw[i+2+at:]
	}
	return raw
}
