package console_test

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/console"
	"github.com/scepter/scepter/internal/keys"
)

// The dashboard's counts leave out the server's own certificates (as the
// metrics do) but the lists they link to hold them: each count says how
// many more of the server's own its list holds, so that the count and the
// list agree (the OCSP responder, always within 7 days of its end, made
// "2 expiring within 7 days" open a list of 3); the list marks them, and
// they stay in the inventory.
func TestDashboardCountsAgreeWithTheirLists(t *testing.T) {
	e := newEnv(t, console.Options{})
	ctx := context.Background()
	serverCert := func() {
		key, err := keys.Generate(keys.P256)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.pki.Service.IssueServerCertificate(ctx, key.Public(), []string{"console.test"}); err != nil {
			t.Fatal(err)
		}
	}
	// Two of the server's HTTPS certificates (90 days), one revoked; two
	// devices (a year), one revoked. 85 days on, the valid HTTPS
	// certificate expires within 7 days, the devices do not.
	serverCert()
	serverCert()
	devices := []string{"dash-1", "dash-2"}
	for _, cn := range devices {
		e.issue(cn)
	}
	b := e.as("auditor")
	list := b.get("/ui/certificates?protocol=internal")
	serials := regexp.MustCompile(`<code class="serial">([0-9a-f]+)</code>`).FindAllStringSubmatch(list.body, -1)
	if len(serials) != 2 {
		t.Fatalf("the server's own certificates in the inventory: %d, want 2\n%s", len(serials), list.body)
	}
	revokeSerial(t, e, serials[0][1])
	revokeSerial(t, e, e.record(e.issue("dash-3")).SerialHex)
	e.pki.Clock.Advance(85 * 24 * time.Hour)
	b = e.as("auditor") // the session ended meanwhile

	page := b.get("/ui/")
	expectStatus(t, "dashboard", page, http.StatusOK)
	expectBody(t, "dashboard", page, `id="own-note"`, "the server's own certificates")
	for _, id := range []string{"expiring-7", "expiring-30", "expiring-90", "status-valid", "status-revoked", "status-expired"} {
		link, count, own := countOf(t, page.body, id)
		res := b.get(link + "&limit=500")
		expectStatus(t, id, res, http.StatusOK)
		rows := strings.Count(res.body, `class="cert-link"`)
		marked := strings.Count(res.body, `class="badge badge-own"`)
		if rows != count+own || marked != own {
			t.Errorf("%s: the dashboard says %d and %d of the server's own; its list %s has %d, %d marked as the server's own", id, count, own, link, rows, marked)
		}
	}
	for id, want := range map[string][2]int{"expiring-7": {0, 1}, "status-valid": {2, 1}, "status-revoked": {1, 1}} {
		if _, count, own := countOf(t, page.body, id); count != want[0] || own != want[1] {
			t.Errorf("%s: %d and %d of the server's own, want %d and %d", id, count, own, want[0], want[1])
		}
	}
}

// countOf reads a dashboard count: its link, its number and how many of the
// server's own its list holds besides.
func countOf(t *testing.T, page, id string) (link string, count, own int) {
	t.Helper()
	end := "</a>" // a card is a link
	if strings.HasPrefix(id, "status-") {
		end = "</tr>" // a row holds its link
	}
	m := regexp.MustCompile(`id="` + id + `"[^>]*>.*?` + end).FindString(page)
	if m == "" {
		t.Fatalf("no %s on the dashboard", id)
	}
	href := regexp.MustCompile(`href="([^"]+)"`).FindStringSubmatch(m)
	n := regexp.MustCompile(`(?:class="card-n">|<td class="num">)(\d+)`).FindStringSubmatch(m)
	if href == nil || n == nil {
		t.Fatalf("%s: no link or number in %s", id, m)
	}
	count, _ = strconv.Atoi(n[1])
	if o := regexp.MustCompile(`\+(\d+) of the server's own`).FindStringSubmatch(m); o != nil {
		own, _ = strconv.Atoi(o[1])
	}
	return strings.ReplaceAll(href[1], "&amp;", "&"), count, own
}

// revokeSerial revokes a certificate of the active CA (superseded).
func revokeSerial(t *testing.T, e *env, serial string) {
	t.Helper()
	if _, err := e.ops.Revoke(context.Background(), auth.CLI("test"), serial, e.pki.Issuer().ID, "superseded"); err != nil {
		t.Fatalf("revoke %s: %v", serial, err)
	}
}

// TestDashboardCountsAgreeWithTheirNouns: a count of one is followed by
// its noun in the singular ("Activity over the last 1 days", r85 D8), and
// the period select names the period shown, one not among its choices too.
func TestDashboardCountsAgreeWithTheirNouns(t *testing.T) {
	e := newEnv(t, console.Options{})
	e.hold("waiting-1")
	b := e.as("auditor")
	page := b.get("/ui/?days=1")
	expectStatus(t, "?days=1", page, http.StatusOK)
	expectBody(t, "?days=1", page, "Activity over the last day</h2>", `<option value="1" selected>1 day</option>`,
		`<span class="card-l">pending approval</span>`)
	expectNotBody(t, "?days=1", page, "1 days", "last 1 day", "selected>7 days", `"card-l">pending approvals`)
	if n := strings.Count(page.body, " selected>"); n != 1 {
		t.Errorf("?days=1: %d options selected, want 1", n)
	}

	e.hold("waiting-2")
	page = b.get("/ui/?days=7")
	expectBody(t, "?days=7", page, "Activity over the last 7 days</h2>", `<option value="7" selected>7 days</option>`,
		`<span class="card-l">pending approvals</span>`)
	expectNotBody(t, "?days=7", page, `<option value="1"`)
	page = b.get("/ui/?days=45")
	expectBody(t, "?days=45", page, "Activity over the last 45 days</h2>", `<option value="45" selected>45 days</option>`)
	if i, j, k := strings.Index(page.body, `<option value="30">`), strings.Index(page.body, `<option value="45"`), strings.Index(page.body, `<option value="90">`); i < 0 || !(i < j && j < k) {
		t.Errorf("?days=45: the choices are not in order (30 at %d, 45 at %d, 90 at %d)", i, j, k)
	}
}
