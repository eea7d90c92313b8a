package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Flash messages: the confirmation a page shows after an action (revoked,
// approved, …) rides in a short-lived cookie set with the redirect, not in
// the URL, so that a link (…?done=revoked) cannot make the console confirm
// what never happened. Each entry names the action and the page it is
// for, with a MAC keyed by the session's secret (which only the session
// cookie holds, HttpOnly): another session's, another page's or a forged
// one shows nothing. Each page has a cookie of its own, so that a page
// loaded in another tab before the redirect is followed neither shows nor
// clears it, and two tabs that act at once on two pages each get their
// banner; the page it is for shows it and clears it, so it shows once.
const (
	flashCookiePrefix = "scepter_flash_"
	// flashTTL bounds how long a flash waits for its page: the browser
	// follows the redirect at once.
	flashTTL = 2 * time.Minute
	// flashMaxEntries bounds one page's cookie (about 70 bytes an entry,
	// far below the 4 KiB a browser keeps of a cookie): more actions than
	// that, in as many tabs, on one page within flashTTL keep the newest.
	flashMaxEntries = 4
	// flashSeparator separates the entries of a page's cookie: a byte
	// that a cookie value may hold and that no entry does.
	flashSeparator = "|"
)

// flashCookieName is the cookie that carries page's flash: a digest of the
// page, for a cookie name is a token and a page's path need not be one.
func flashCookieName(page string) string {
	sum := sha256.Sum256([]byte(page))
	return flashCookiePrefix + hex.EncodeToString(sum[:8])
}

// doneMessages are the confirmations of a flash, fixed texts: nothing of
// the request is echoed.
var doneMessages = map[string]string{
	"revoked":        "The certificate is revoked. The CRL and OCSP answers follow.",
	"held":           "The certificate is on hold: relying parties refuse it until the hold is lifted. The CRL and OCSP answers follow.",
	"unheld":         "The hold is lifted: the certificate is valid again.",
	"unheld_expired": "The hold is lifted, but the certificate has expired: relying parties still refuse it.",
	"approved":       "The request is approved and its certificate issued: the device collects it at its next poll.",
	"rejected":       "The request is rejected; the device is told so at its next poll.",
	"deleted":        "The challenge is deleted.",
}

// alsoRevokedMessage confirms a revocation for keyCompromise that took n
// other certificates of the same key along.
func alsoRevokedMessage(n int) string {
	others := "1 other certificate"
	if n > 1 {
		others = strconv.Itoa(n) + " other certificates"
	}
	return "The certificate is revoked, and with it " + others +
		" of the same key, for keyCompromise (see the audit log). The CRL and OCSP answers follow."
}

// flashMAC authenticates a flash's payload for one page of one session.
func flashMAC(secret, page, payload string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("scepter console flash\x00" + page + "\x00" + payload))
	return m.Sum(nil)
}

// redirectWithFlash sends the browser to target (a console path, with or
// without a query) and has the page there confirm the action done (a key
// of doneMessages); also counts the other certificates a revocation took
// along. A confirmation for the same page that another tab has yet to
// show stays beside it.
func (h *Handler) redirectWithFlash(w http.ResponseWriter, r *http.Request, rq *req, target, done string, also int) {
	page, _, _ := strings.Cut(target, "?")
	now := h.ops.Now()
	name := flashCookieName(page)
	var entries []string
	for _, e := range h.readFlash(r, rq, name, page) {
		entries = append(entries, e.raw)
	}
	payload := done + "." + strconv.Itoa(also) + "." + strconv.FormatInt(now.Unix(), 10)
	entries = append(entries, payload+"."+base64.RawURLEncoding.EncodeToString(flashMAC(rq.secret, page, payload)))
	if len(entries) > flashMaxEntries {
		entries = entries[len(entries)-flashMaxEntries:]
	}
	http.SetCookie(w, h.cookie(name, strings.Join(entries, flashSeparator), now.Add(flashTTL), int(flashTTL/time.Second)))
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// takeFlash returns the confirmations the flash cookie of this page holds
// for this session ("" for none, or none that is), and clears that cookie:
// a flash shows once. Other pages' cookies it leaves alone: their tabs
// have yet to show them.
func (h *Handler) takeFlash(w http.ResponseWriter, r *http.Request, rq *req) string {
	name := flashCookieName(r.URL.Path)
	if _, err := r.Cookie(name); err != nil {
		return ""
	}
	h.clearCookie(w, name)
	// In the order done, each text once, at its last place: after a hold,
	// an unhold and a hold again the banner ends with the hold, the state
	// the certificate is in.
	var shown []string
	for _, e := range h.readFlash(r, rq, name, r.URL.Path) {
		shown = append(slices.DeleteFunc(shown, func(m string) bool { return m == e.message }), e.message)
	}
	return strings.Join(shown, " ")
}

// flashEntry is one confirmation of a page's flash cookie.
type flashEntry struct {
	raw, message string
}

// readFlash returns the entries of the cookie name that are for page, in
// this session, and not stale; it skips the others.
func (h *Handler) readFlash(r *http.Request, rq *req, name, page string) []flashEntry {
	c, err := r.Cookie(name)
	if err != nil {
		return nil
	}
	var entries []flashEntry
	for _, raw := range strings.Split(c.Value, flashSeparator) {
		if msg := h.flashMessage(rq, page, raw); msg != "" {
			entries = append(entries, flashEntry{raw: raw, message: msg})
		}
	}
	return entries
}

// flashMessage is the confirmation one entry holds, or "" when it is not
// this page's, not this session's, stale or forged.
func (h *Handler) flashMessage(rq *req, page, raw string) string {
	i := strings.LastIndexByte(raw, '.')
	if i < 0 {
		return ""
	}
	payload := raw[:i]
	mac, err := base64.RawURLEncoding.DecodeString(raw[i+1:])
	if err != nil || !hmac.Equal(mac, flashMAC(rq.secret, page, payload)) {
		return ""
	}
	parts := strings.Split(payload, ".")
	if len(parts) != 3 {
		return ""
	}
	also, err1 := strconv.Atoi(parts[1])
	at, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return ""
	}
	if age := h.ops.Now().Sub(time.Unix(at, 0)); age < -time.Minute || age > flashTTL {
		return ""
	}
	if parts[0] == "revoked" && also > 0 {
		return alsoRevokedMessage(also)
	}
	return doneMessages[parts[0]]
}
