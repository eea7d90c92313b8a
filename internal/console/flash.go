package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Flash messages: the confirmation a page shows after an action (revoked,
// approved, …) rides in a short-lived cookie set with the redirect, not in
// the URL, so that a link (…?done=revoked) cannot make the console confirm
// what never happened. The cookie names the action and the page it is
// for, with a MAC keyed by the session's secret (which only the session
// cookie holds, HttpOnly): another session's, another page's or a forged
// one shows nothing. The page that shows it clears it, so it shows once.
const (
	flashCookie = "scepter_flash"
	// flashTTL bounds how long a flash waits for its page: the browser
	// follows the redirect at once.
	flashTTL = 2 * time.Minute
)

// doneMessages are the confirmations of a flash, fixed texts: nothing of
// the request is echoed.
var doneMessages = map[string]string{
	"revoked":  "The certificate is revoked. The CRL and OCSP answers follow.",
	"held":     "The certificate is on hold: relying parties refuse it until the hold is lifted. The CRL and OCSP answers follow.",
	"unheld":   "The hold is lifted: the certificate is valid again.",
	"approved": "The request is approved and its certificate issued: the device collects it at its next poll.",
	"rejected": "The request is rejected; the device is told so at its next poll.",
	"deleted":  "The challenge is deleted.",
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
// along.
func (h *Handler) redirectWithFlash(w http.ResponseWriter, r *http.Request, rq *req, target, done string, also int) {
	page, _, _ := strings.Cut(target, "?")
	now := h.ops.Now()
	payload := done + "." + strconv.Itoa(also) + "." + strconv.FormatInt(now.Unix(), 10)
	value := payload + "." + base64.RawURLEncoding.EncodeToString(flashMAC(rq.secret, page, payload))
	http.SetCookie(w, h.cookie(flashCookie, value, now.Add(flashTTL), int(flashTTL/time.Second)))
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// takeFlash returns the confirmation a flash cookie holds for this page
// and session ("" for none, or one that is not), and clears the cookie:
// a flash shows once.
func (h *Handler) takeFlash(w http.ResponseWriter, r *http.Request, rq *req) string {
	c, err := r.Cookie(flashCookie)
	if err != nil {
		return ""
	}
	h.clearCookie(w, flashCookie)
	i := strings.LastIndexByte(c.Value, '.')
	if i < 0 {
		return ""
	}
	payload := c.Value[:i]
	mac, err := base64.RawURLEncoding.DecodeString(c.Value[i+1:])
	if err != nil || !hmac.Equal(mac, flashMAC(rq.secret, r.URL.Path, payload)) {
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
