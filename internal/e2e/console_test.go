package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// The console end to end: a real headless Chromium (Debian's `chromium`,
// driven over the DevTools protocol by chromedp) against the real binary's
// HTTPS listener. It logs in with the generated admin password, finds a
// certificate by CN, revokes it with a reason and a confirmation, approves
// a held SCEP request while `scepter enroll` polls, makes a challenge and
// enrolls with it, logs out, and sees the login lock after wrong passwords.
// Every step leaves a screenshot in $SCEPTER_TEST_ARTIFACTS (or
// $TMPDIR/scepter-artifacts).

const consoleConfig = `
[profiles.approval]
approval = true

# Renewal at any time, for a renewed certificate in the inventory (the
# static challenge is valid at the default profile only).
[profiles.default]
renewal_window = "100%"
`

// browserStep bounds every browser action, browserLife the browser.
const (
	browserStep = 20 * time.Second
	browserLife = 3 * time.Minute
)

type consoleBrowser struct {
	t         *testing.T
	ctx       context.Context
	base      string // https://127.0.0.1:PORT
	artifacts string
	shot      int
}

// artifactsDir is where screenshots go.
func artifactsDir(t *testing.T) string {
	dir := os.Getenv("SCEPTER_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "scepter-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// spkiHashes are the base64 SHA-256 hashes of the public keys of the
// server's HTTPS certificate and its chain: Chromium ignores certificate
// errors for these keys only (the chain ends at our test root).
func spkiHashes(t *testing.T, certFile string) string {
	var hashes []string
	for _, c := range readCerts(t, certFile) {
		sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
		hashes = append(hashes, base64.StdEncoding.EncodeToString(sum[:]))
	}
	return strings.Join(hashes, ",")
}

// newConsoleBrowser starts headless Chromium with a temporary profile.
func newConsoleBrowser(t *testing.T, chromium, base, spki string) *consoleBrowser {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		// Our server's self-signed chain, trusted by its keys alone: this
		// browser talks to nothing but 127.0.0.1 in this test.
		chromedp.Flag("ignore-certificate-errors-spki-list", spki),
		chromedp.Flag("disable-gpu", true),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	// The browser lives at most browserLife; each action is bounded too.
	life, cancelLife := context.WithTimeout(context.Background(), browserLife)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(life, opts...)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		cancelLife()
	})
	// The first action starts the browser, which lives as long as the
	// context it ran with: the tab's own, not a shorter one.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx, chromedp.Navigate("about:blank")) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start chromium: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("chromium did not start within 30 s")
	}
	return &consoleBrowser{t: t, ctx: ctx, base: base, artifacts: artifactsDir(t)}
}

// do runs steps with a timeout, failing the test with what the page shows.
func (b *consoleBrowser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.fail(what, err)
	}
}

func (b *consoleBrowser) fail(what string, err error) {
	b.t.Helper()
	b.screenshot("failed-" + strings.ReplaceAll(what, " ", "-"))
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	b.t.Fatalf("%s: %v\nat %s:\n%s", what, err, loc, body)
}

// text reads the text of the element a CSS selector finds.
func (b *consoleBrowser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.fail("read "+sel, err)
	}
	return strings.TrimSpace(s)
}

// eval evaluates a JavaScript expression in the page.
func (b *consoleBrowser) eval(expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.fail("evaluate "+expr, err)
	}
	return s
}

// open navigates to a console path and waits for an element.
func (b *consoleBrowser) open(path, waitFor string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS(waitFor)))
}

// submit clicks a button and waits for the page it leads to to load.
func (b *consoleBrowser) submit(what, button string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(button)))); err != nil {
		b.fail(what, err)
	}
}

// screenshot saves the whole page as a PNG and logs where.
func (b *consoleBrowser) screenshot(name string) {
	b.t.Helper()
	b.shot++
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(b.artifacts, fmt.Sprintf("console-%02d-%s.png", b.shot, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	b.t.Logf("screenshot: %s", path)
}

// login fills in the login form and submits it.
func (b *consoleBrowser) login(user, password string) {
	b.t.Helper()
	b.do("fill in the login form", chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SetValue(chromedp.ID("username"), user), chromedp.SetValue(chromedp.ID("password"), password))
	b.submit("log in as "+user, "#login-submit")
}

func TestConsole(t *testing.T) {
	t.Parallel()
	chromium := need(t, "chromium")[0]
	began := time.Now()
	e := startEST(t, estOpts{config: consoleConfig, challenge: "console-static-secret"})
	pw, err := os.ReadFile(filepath.Join(e.DataDir, "admin-password.txt"))
	if err != nil {
		t.Fatalf("the first start saved no admin password: %v", err)
	}
	password := strings.TrimSpace(string(pw))
	if !strings.Contains(e.Output(), "Console login:       admin / "+password) {
		t.Errorf("the server did not print the admin login:\n%s", e.Output())
	}

	// A certificate to find.
	findDir := t.TempDir()
	if r := enroll(t, findDir, e.URL, e.Challenge, "CN=console-find-me,O=Acme"); r.err != nil {
		t.Fatalf("enroll:\n%s", r)
	}
	target := e.Verify(filepath.Join(findDir, "cert.pem"))

	b := newConsoleBrowser(t, chromium, e.HTTPS, spkiHashes(t, filepath.Join(e.DataDir, "tls", "server.crt")))

	// Log in with the generated password.
	b.open("/ui/", "#login-form")
	b.screenshot("login")
	b.login("admin", password)
	b.do("the dashboard", chromedp.WaitVisible(chromedp.ID("whoami")), chromedp.WaitVisible(chromedp.ID("activity-chart")))
	if who := b.text("#whoami"); !strings.Contains(who, "admin") {
		t.Errorf("logged in as %q", who)
	}
	b.screenshot("dashboard")

	// Find the certificate by its CN and open it.
	b.open("/ui/certificates", "#filters")
	b.do("search", chromedp.SendKeys(chromedp.ID("q"), "console-find-me"))
	b.submit("search", "#search")
	b.do("results", chromedp.WaitVisible(chromedp.CSS("#certs a.cert-link")))
	if n := b.eval(`String(document.querySelectorAll("#certs a.cert-link").length)`); n != "1" {
		t.Fatalf("search for console-find-me: %s results", n)
	}
	if s := b.text("#certs a.cert-link"); !strings.Contains(s, "CN=console-find-me") {
		t.Fatalf("search result %q", s)
	}
	b.screenshot("inventory-search")
	b.submit("open the certificate", "#certs a.cert-link")
	b.do("certificate page", chromedp.WaitVisible(chromedp.ID("cert-status")))
	if s := b.text("#cert-serial"); normSerial(s) != serialHex(target.SerialNumber) {
		t.Errorf("the page shows serial %q, want %s", s, serialHex(target.SerialNumber))
	}
	if s := b.text("#cert-status"); s != "valid" {
		t.Errorf("status %q before the revocation", s)
	}
	b.screenshot("certificate")

	// Revoke it: a reason, then the confirmation.
	b.do("choose a reason", chromedp.SetValue(chromedp.ID("revoke-reason"), "keyCompromise"))
	b.submit("start the revocation", "#revoke-start")
	b.do("confirmation page", chromedp.WaitVisible(chromedp.ID("revoke-confirm")))
	if s := b.text("#confirm-reason"); s != "keyCompromise" {
		t.Errorf("the confirmation names reason %q", s)
	}
	b.screenshot("revoke-confirm")
	b.submit("confirm the revocation", "#revoke-confirm")
	b.do("revoked page", chromedp.WaitVisible(chromedp.ID("flash")))
	if s := b.text("#cert-status"); s != "revoked" {
		t.Errorf("status %q after the revocation", s)
	}
	if s := b.text("#revoke-reason-shown"); s != "keyCompromise" {
		t.Errorf("the page shows revocation reason %q", s)
	}
	b.screenshot("revoked")
	if rec := findSerial(e.ListCerts(), target); rec == nil || rec.Status != "revoked" {
		t.Errorf("certs list after the console's revocation: %+v", rec)
	}

	// A renewed certificate is marked in the inventory, the mark opens its
	// renewal, and "leave out renewed" lists the renewal alone.
	renewDir := t.TempDir()
	if r := enroll(t, renewDir, e.URL, e.Challenge, "CN=console-renew-me,O=Acme"); r.err != nil {
		t.Fatalf("enroll console-renew-me:\n%s", r)
	}
	mustRun(t, runOpts{dir: renewDir}, e.Bin, "renew", "--url", e.URL, "--cert", filepath.Join(renewDir, "cert.pem"),
		"--key", filepath.Join(renewDir, "key.pem"), "--out", filepath.Join(renewDir, "renewed.pem"), "--key-out", filepath.Join(renewDir, "renewed.key"))
	renewed := e.Verify(filepath.Join(renewDir, "renewed.pem"))
	b.open("/ui/certificates?q=console-renew-me", "#certs")
	if n := b.eval(`String(document.querySelectorAll("#certs a.cert-link").length)`); n != "2" {
		t.Fatalf("search for console-renew-me: %s results, want the certificate and its renewal", n)
	}
	if n := b.eval(`String(document.querySelectorAll("#certs a.badge-renewed").length)`); n != "1" {
		t.Fatalf("%s certificates marked renewed, want 1", n)
	}
	b.screenshot("inventory-renewed")
	b.submit("open the renewal", "#certs a.badge-renewed")
	b.do("the renewal's page", chromedp.WaitVisible(chromedp.ID("cert-status")))
	if s := b.text("#cert-serial"); normSerial(s) != serialHex(renewed.SerialNumber) {
		t.Errorf("the renewed mark opens serial %q, want the renewal %s", s, serialHex(renewed.SerialNumber))
	}
	b.open("/ui/certificates?q=console-renew-me", "#filters")
	b.do("leave out renewed", chromedp.SetValue(chromedp.ID("renewed"), "false"))
	b.submit("search without the renewed ones", "#search")
	b.do("results", chromedp.WaitVisible(chromedp.CSS("#certs a.cert-link")))
	if loc := b.eval(`location.search`); !strings.Contains(loc, "renewed=false") {
		t.Errorf("the form sent %s, without renewed=false", loc)
	}
	if n := b.eval(`String(document.querySelectorAll("#certs a.cert-link").length) + " " + String(document.querySelectorAll("#certs a.badge-renewed").length)`); n != "1 0" {
		t.Errorf("with \"leave out renewed\": %s (rows, marks), want the renewal alone, unmarked", n)
	}
	b.screenshot("inventory-not-renewed")

	// A challenge for the approval profile, made in the console; a client
	// enrolls with it, is held, and polls while the request is approved
	// in the browser.
	b.open("/ui/challenges", "#new-challenge")
	b.do("challenge form", chromedp.SetValue(chromedp.ID("ch-profile"), "approval"), chromedp.SetValue(chromedp.ID("ch-ttl"), "30m"))
	b.submit("create a challenge for the approval profile", "#ch-create")
	b.do("the secret", chromedp.WaitVisible(chromedp.ID("challenge-secret")))
	approvalSecret := b.text("#challenge-secret")
	if len(approvalSecret) < 16 {
		t.Fatalf("challenge secret %q", approvalSecret)
	}
	approvalDir := t.TempDir()
	var wg sync.WaitGroup
	var held result
	wg.Add(1)
	go func() {
		defer wg.Done()
		held = enroll(t, approvalDir, e.Base+"/scep/approval", approvalSecret, "CN=console-approved,O=Acme",
			"--max-wait", "60s", "--poll-interval", "1s")
	}()
	t.Cleanup(wg.Wait)
	b.open("/ui/requests", "main h1")
	for deadline := time.Now().Add(30 * time.Second); ; {
		if b.eval(`document.querySelector("#requests") ? document.querySelector("#requests").innerText : ""`) != "" {
			break
		}
		if time.Now().After(deadline) {
			b.fail("wait for the held request", fmt.Errorf("no pending request after 30 s"))
		}
		time.Sleep(300 * time.Millisecond)
		b.open("/ui/requests", "main h1")
	}
	if s := b.text("#requests tbody"); !strings.Contains(s, "CN=console-approved") {
		t.Fatalf("pending requests: %q", s)
	}
	b.screenshot("pending")
	b.submit("approve", "#requests button.approve")
	b.do("approved", chromedp.WaitVisible(chromedp.ID("flash")))
	b.screenshot("approved")
	wg.Wait()
	if held.err != nil {
		t.Fatalf("scepter enroll while the request waited for approval:\n%s", held)
	}
	approved := e.Verify(filepath.Join(approvalDir, "cert.pem"))
	if approved.Subject.CommonName != "console-approved" {
		t.Errorf("approved certificate for %s", approved.Subject)
	}

	// A challenge bound to a subject, read from the page, and an
	// enrollment with it.
	b.open("/ui/challenges", "#new-challenge")
	b.do("challenge form", chromedp.SetValue(chromedp.ID("ch-profile"), "default"),
		chromedp.SendKeys(chromedp.ID("ch-subject"), "CN=console-challenge-device"))
	b.submit("create a challenge", "#ch-create")
	b.do("the secret and its copy button", chromedp.WaitVisible(chromedp.ID("challenge-secret")), chromedp.WaitVisible(chromedp.ID("copy-secret")),
		chromedp.Click(chromedp.ID("copy-secret")))
	secret := b.text("#challenge-secret")
	b.screenshot("challenge")
	chDir := t.TempDir()
	if r := enroll(t, chDir, e.URL, secret, "CN=console-challenge-device"); r.err != nil {
		t.Fatalf("enroll with the console's challenge:\n%s", r)
	}
	if c := e.Verify(filepath.Join(chDir, "cert.pem")); c.Subject.CommonName != "console-challenge-device" {
		t.Errorf("enrolled %s", c.Subject)
	}
	b.open("/ui/challenges", "#challenges")
	if page := b.eval(`document.body.innerHTML`); strings.Contains(page, secret) || strings.Contains(page, approvalSecret) {
		t.Error("the challenge list shows a secret")
	}
	if s := b.text("#challenges tbody"); strings.Count(s, "used") < 2 {
		t.Errorf("challenges after their use: %q", s)
	}

	// The audit trail (verified), the CAs and profiles, and the dashboard
	// with what happened.
	b.open("/ui/audit/verify", "#verify-result")
	if s := b.text("#verify-result"); !strings.Contains(s, "intact") {
		t.Errorf("audit verification: %q", s)
	}
	if s := b.text("#audit tbody"); !strings.Contains(s, "certificate.revoked") || !strings.Contains(s, "request.approved") ||
		!strings.Contains(s, "console:admin") {
		t.Errorf("the audit log lacks the console's changes: %q", s)
	}
	b.screenshot("audit")
	b.open("/ui/cas", "#cas")
	if s := b.text("#profiles"); !strings.Contains(s, "approval") || !strings.Contains(s, "required") {
		t.Errorf("profiles: %q", s)
	}
	b.screenshot("cas")
	b.open("/ui/", "#activity-chart")
	if s := b.eval(`document.querySelector("#activity-table").textContent`); !strings.Contains(s, "3") {
		t.Errorf("the dashboard's table shows no issuance: %q", s)
	}
	b.screenshot("dashboard-after")

	// Log out: the console asks for a login again.
	b.open("/ui/", "#logout")
	b.submit("log out", "#logout")
	b.do("logged out", chromedp.WaitVisible(chromedp.ID("login-form")), chromedp.WaitVisible(chromedp.ID("flash")))
	b.screenshot("logged-out")
	b.open("/ui/certificates", "#login-form")
	if loc := b.eval(`location.pathname`); loc != "/ui/login" {
		t.Errorf("after logout /ui/certificates shows %s", loc)
	}

	// Wrong passwords lock the login, and the page says until when.
	var last string
	for i := 0; i < 6; i++ {
		b.login("admin", "not-the-password-"+fmt.Sprint(i))
		b.do("the refusal", chromedp.WaitVisible(chromedp.ID("error")))
		last = b.text("#error")
		if i < 5 && !strings.Contains(last, "Wrong user name or password") {
			t.Errorf("attempt %d: %q", i+1, last)
		}
	}
	if !strings.Contains(last, "locked until") {
		t.Errorf("after 6 wrong passwords the page says %q, not that the login is locked", last)
	}
	b.screenshot("locked")
	b.login("admin", password)
	b.do("still locked", chromedp.WaitVisible(chromedp.ID("error")))
	if s := b.text("#error"); !strings.Contains(s, "locked until") {
		t.Errorf("the right password while locked: %q", s)
	}
	t.Logf("console end-to-end test took %v", time.Since(began).Round(time.Millisecond))
}
