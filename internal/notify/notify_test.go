package notify_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/notify"
	"github.com/scepter/scepter/internal/notify/notifytest"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite"
	"github.com/scepter/scepter/internal/store/sqlite/sqlitetest"
)

// t0 is the tests' clock start: a fixed date, so they pass on any day.
var t0 = time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)

const (
	day     = 24 * time.Hour
	issuer  = "1111111111111111111111111111111111111111111111111111111111111111"
	secret  = "webhook-hmac-key"
	opsAddr = "pki-ops@example.com"
)

// env is one database file and the receivers, shared by the schedulers
// of a test as by the nodes of a cluster.
type env struct {
	t        *testing.T
	path     string
	clock    *pkitest.Clock
	smtp     *notifytest.SMTPSink
	smtpURL  string
	hook     *notifytest.WebhookSink
	profiles map[string]pki.Profile
	log      *lockedBuffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{
		t:     t,
		path:  filepath.Join(t.TempDir(), "scepter.db"),
		clock: pkitest.NewClock(t0),
		smtp:  notifytest.StartSMTP(t, notifytest.SMTPOptions{}),
		hook:  notifytest.StartWebhook(t, []byte(secret)),
		log:   &lockedBuffer{},
	}
	// A copy of a migrated database: these tests are of the scheduler, not
	// of the migrations, which cost most of this package's CPU when each
	// test applied them (sqlitetest).
	sqlitetest.Create(t, e.path)
	e.smtpURL = "smtp://" + e.smtp.Addr
	p := pki.DefaultProfile()
	p.NotifyTo = []string{opsAddr}
	p.NotifyOwner = true
	quiet := pki.DefaultProfile()
	quiet.Name = "quiet" // no recipients: the webhook only
	e.profiles = map[string]pki.Profile{"default": p, "quiet": quiet}
	return e
}

// open opens the database (made by newEnv) as one process would.
func (e *env) open() *sqlite.Store {
	e.t.Helper()
	st, err := sqlite.Open(context.Background(), e.path)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { st.Close() })
	return st
}

// scheduler is one node: its own store handle, the shared clock.
func (e *env) scheduler(st store.Store, owner string, mod ...func(*notify.Config)) *notify.Scheduler {
	e.t.Helper()
	mail, err := notify.NewSMTP(notify.SMTPConfig{URL: e.smtpURL, From: "scepter@ca.example.com", Timeout: 5 * time.Second})
	if err != nil {
		e.t.Fatal(err)
	}
	hook, err := notify.NewWebhook(notify.WebhookConfig{URL: e.hook.URL, Secret: []byte(secret), Timeout: 5 * time.Second})
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := notify.Config{
		Store: st, Clock: e.clock, Profiles: e.profiles, Channels: []notify.Channel{mail, hook}, Owner: owner,
		Log:    slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Jitter: func() float64 { return 0 }, // backoff n: BackoffBase*2^(n-1)/2
	}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := notify.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func runOnce(t *testing.T, s *notify.Scheduler) {
	t.Helper()
	if err := s.RunOnce(context.Background()); err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
}

// runAtOnce runs the schedulers concurrently, as nodes would.
func runAtOnce(t *testing.T, ss ...*notify.Scheduler) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(ss))
	for i, s := range ss {
		wg.Go(func() { errs[i] = s.RunOnce(context.Background()) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("RunOnce: %v", err)
		}
	}
}

// cert records, at recordedAt, a certificate valid until notAfter and
// issued a year before it, so that every threshold applies to it (a
// threshold not shorter than a certificate's lifetime is never sent: see
// lifetime_test.go); mod may change that.
func cert(t *testing.T, st store.Store, serial, profile string, recordedAt, notAfter time.Time, mod ...func(*pki.Certificate)) pki.Certificate {
	t.Helper()
	issued := notAfter.Add(-365 * day)
	c := pki.Certificate{
		SerialHex: serial, IssuerID: issuer, Issuer: "CN=Test Issuing CA", Subject: "CN=device-" + serial + ",O=Acme",
		SANs:      []string{"dns:device-" + serial + ".example.com", "email:owner-" + serial + "@example.com"},
		NotBefore: issued, NotAfter: notAfter, Status: pki.StatusValid, Profile: profile,
		Protocol: pki.ProtocolSCEP, Source: pki.SourceIssued, CreatedAt: issued, DER: []byte{0x30, 0x00},
	}
	for _, m := range mod {
		m(&c)
	}
	if err := st.RecordIssuance(context.Background(), store.Issuance{Certificate: c, Now: recordedAt,
		Events: []pki.AuditEvent{{Type: pki.EventIssued, SerialHex: serial, IssuerID: issuer}}}); err != nil {
		t.Fatal(err)
	}
	return c
}

// thresholdsSent lists, in arrival order, "serial threshold" of the mails
// and of the webhook calls.
func (e *env) sent() (mails, hooks []string) {
	for _, m := range e.smtp.Mails() {
		id := m.Header.Get("X-Scepter-Notification")
		mails = append(mails, idLabel(id))
	}
	for _, r := range e.hook.Requests() {
		hooks = append(hooks, fmt.Sprintf("%v %v", r.JSON["serial"], r.JSON["threshold"]))
	}
	return mails, hooks
}

// idLabel turns "ISSUER:SERIAL:SECONDS" into "SERIAL 7d".
func idLabel(id string) string {
	parts := strings.Split(id, ":")
	if len(parts) != 3 {
		return "bad id " + id
	}
	var secs int64
	fmt.Sscan(parts[2], &secs)
	return parts[1] + " " + notify.FormatThreshold(time.Duration(secs)*time.Second)
}

func (e *env) expectSent(what string, wantMails, wantHooks []string) {
	e.t.Helper()
	mails, hooks := e.sent()
	if !slices.Equal(mails, wantMails) {
		e.t.Errorf("%s: mails %q, want %q", what, mails, wantMails)
	}
	if !slices.Equal(hooks, wantHooks) {
		e.t.Errorf("%s: webhook calls %q, want %q", what, hooks, wantHooks)
	}
}

func statuses(t *testing.T, st store.Store, serial string) map[string]store.Notification {
	t.Helper()
	ns, err := st.Notifications(context.Background(), issuer, serial)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.Notification{}
	for _, n := range ns {
		out[n.Channel+" "+notify.FormatThreshold(n.Threshold)] = n
	}
	return out
}

func statusString(t *testing.T, st store.Store, serial string) string {
	t.Helper()
	m := statuses(t, st, serial)
	var keys []string
	for k, n := range m {
		keys = append(keys, k+"="+string(n.Status))
	}
	slices.Sort(keys)
	return strings.Join(keys, " ")
}

// TestOneMessagePerThreshold: a certificate crosses 30d, 7d and 1d under
// the clock; two nodes run each time at once, one of them is restarted in
// between; every threshold brings exactly one mail and one webhook call,
// to the right recipients, signed.
func TestOneMessagePerThreshold(t *testing.T) {
	e := newEnv(t)
	stA, stB := e.open(), e.open()
	a, b := e.scheduler(stA, "node-a"), e.scheduler(stB, "node-b")
	notAfter := t0.Add(40 * day)
	c := cert(t, stA, "0a01", "default", t0, notAfter)

	runAtOnce(t, a, b)
	e.expectSent("40 days before", nil, nil)

	e.clock.Set(notAfter.Add(-30 * day))
	runAtOnce(t, a, b)
	runAtOnce(t, a, b)
	e.expectSent("at 30d", []string{"0a01 30d"}, []string{"0a01 30d"})

	e.clock.Set(notAfter.Add(-7*day + time.Hour))
	runAtOnce(t, a, b)
	e.expectSent("at 7d", []string{"0a01 30d", "0a01 7d"}, []string{"0a01 30d", "0a01 7d"})

	// node-b restarts: a new process on the same file.
	stB.Close()
	stC := e.open()
	cNode := e.scheduler(stC, "node-c")
	runAtOnce(t, a, cNode)
	e.expectSent("after a restart", []string{"0a01 30d", "0a01 7d"}, []string{"0a01 30d", "0a01 7d"})

	e.clock.Set(notAfter.Add(-12 * time.Hour))
	runAtOnce(t, a, cNode)
	runAtOnce(t, cNode, a)
	want := []string{"0a01 30d", "0a01 7d", "0a01 1d"}
	e.expectSent("at 1d", want, want)

	// Expired: nothing more.
	e.clock.Set(notAfter.Add(time.Second))
	runAtOnce(t, a, cNode)
	e.expectSent("expired", want, want)

	mails := e.smtp.Mails()
	for _, m := range mails {
		if got := strings.Join(m.To, ","); got != opsAddr+",owner-0a01@example.com" {
			t.Errorf("mail to %s, want notify_to and the owner's email SAN", got)
		}
		if m.From != "scepter@ca.example.com" || m.Header.Get("Auto-Submitted") != "auto-generated" {
			t.Errorf("mail from %q, Auto-Submitted %q", m.From, m.Header.Get("Auto-Submitted"))
		}
		for _, s := range []string{c.SerialHex, c.IssuerID, "CN=device-0a01,O=Acme", notAfter.Format(time.RFC3339), "dns:device-0a01.example.com"} {
			if !strings.Contains(m.Body, s) {
				t.Errorf("mail body lacks %q:\n%s", s, m.Body)
			}
		}
	}
	if s := mails[1].Header.Get("Subject"); !strings.Contains(s, "CN=device-0a01,O=Acme") || !strings.Contains(s, "expires in 6 days") {
		t.Errorf("7d mail subject %q", s)
	}
	for i, r := range e.hook.Requests() {
		if !r.SignatureOK {
			t.Errorf("webhook call %d: HMAC does not verify", i)
		}
		j := r.JSON
		if j["version"] != float64(1) || j["type"] != "certificate.expiring" || j["issuer_id"] != issuer || j["profile"] != "default" ||
			j["subject"] != "CN=device-0a01,O=Acme" || j["not_after"] != notAfter.Format(time.RFC3339) ||
			fmt.Sprint(j["sans"]) != "[dns:device-0a01.example.com email:owner-0a01@example.com]" {
			t.Errorf("webhook body %s", r.Body)
		}
	}
	if j := e.hook.Requests()[1].JSON; j["threshold_seconds"] != float64(7*24*3600) || j["id"] != issuer+":0a01:604800" {
		t.Errorf("7d webhook body: %v", j)
	}

	evs, err := stA.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventNotificationSent})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 6 {
		t.Errorf("%d notification.sent events, want 6 (3 thresholds x 2 channels)", len(evs))
	}
	for _, ev := range evs {
		if ev.SerialHex != "0a01" || ev.IssuerID != issuer || ev.Outcome != "success" || ev.Actor != "system" || !strings.Contains(ev.Detail, `"channel"`) {
			t.Errorf("event %+v", ev)
		}
	}
}

// TestMostUrgentOnly: thresholds crossed together (a certificate recorded
// late, a server that was down for weeks) bring one
// message, for the most urgent, the others recorded as skipped.
func TestMostUrgentOnly(t *testing.T) {
	e := newEnv(t)
	st := e.open()
	s := e.scheduler(st, "node")
	cert(t, st, "0b01", "default", t0, t0.Add(12*time.Hour)) // all three at once
	cert(t, st, "0b02", "default", t0, t0.Add(40*day))       // notified late: 30d and 7d at once
	runOnce(t, s)
	e.expectSent("at issuance", []string{"0b01 1d"}, []string{"0b01 1d"})
	if got := statusString(t, st, "0b01"); got != "smtp 1d=sent smtp 30d=skipped smtp 7d=skipped webhook 1d=sent webhook 30d=skipped webhook 7d=skipped" {
		t.Errorf("0b01: %s", got)
	}
	e.clock.Set(t0.Add(35 * day)) // the server was down from t0 to here
	runOnce(t, s)
	e.expectSent("after a long outage", []string{"0b01 1d", "0b02 7d"}, []string{"0b01 1d", "0b02 7d"})
	e.clock.Set(t0.Add(39*day + time.Minute))
	runOnce(t, s)
	e.expectSent("at 1d", []string{"0b01 1d", "0b02 7d", "0b02 1d"}, []string{"0b01 1d", "0b02 7d", "0b02 1d"})
}

// TestSMTPDownRetries: with the mail server down, mails are retried with
// growing backoff and none is lost once it is up; the webhook, which
// worked, is not sent again.
func TestSMTPDownRetries(t *testing.T) {
	e := newEnv(t)
	// An address nothing listens on yet.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()
	e.smtpURL = "smtp://" + down
	st := e.open()
	base := time.Minute
	s := e.scheduler(st, "node", func(c *notify.Config) { c.BackoffBase, c.BackoffMax = base, 8*base })
	for _, sn := range []string{"0c01", "0c02", "0c03"} {
		cert(t, st, sn, "default", t0, t0.Add(5*day))
	}
	runOnce(t, s)
	mails, hooks := e.sent()
	if len(mails) != 0 || len(hooks) != 3 {
		t.Fatalf("with SMTP down: %d mails, %d webhook calls; want 0, 3", len(mails), len(hooks))
	}
	// One mail was tried and failed; the others waited without a try.
	tried := 0
	for _, sn := range []string{"0c01", "0c02", "0c03"} {
		n := statuses(t, st, sn)["smtp 7d"]
		if n.Status != store.NotificationPending || !n.NextAttemptAt.After(t0) {
			t.Errorf("%s: %+v, want pending, due later", sn, n)
		}
		tried += n.Attempts
		if n.LastError == "" {
			t.Errorf("%s: no error kept", sn)
		}
	}
	if tried != 1 {
		t.Errorf("%d sends tried against a server that is down, want 1 per run", tried)
	}
	// Each run while the server is down tries one mail; a mail tried for
	// the n-th time waits BackoffBase*2^(n-1) (at most BackoffMax), less
	// the jitter (here always half), before the next.
	attempts := map[string]int{}
	seenDelay := map[int]time.Duration{}
	for range 9 {
		var all []store.Notification
		for _, sn := range []string{"0c01", "0c02", "0c03"} {
			all = append(all, statuses(t, st, sn)["smtp 7d"])
		}
		next := slices.MinFunc(all, func(a, b store.Notification) int { return a.NextAttemptAt.Compare(b.NextAttemptAt) })
		if next.NextAttemptAt.After(e.clock.Now()) {
			e.clock.Set(next.NextAttemptAt)
		}
		before := e.clock.Now()
		runOnce(t, s)
		tried := 0
		for _, sn := range []string{"0c01", "0c02", "0c03"} {
			n := statuses(t, st, sn)["smtp 7d"]
			if n.Attempts > attempts[sn] {
				tried++
				attempts[sn] = n.Attempts
				delay := n.NextAttemptAt.Sub(before)
				if want := min(base<<(n.Attempts-1), 8*base) / 2; delay != want {
					t.Errorf("%s after %d failed attempts waits %v, want %v", sn, n.Attempts, delay, want)
				}
				seenDelay[n.Attempts] = delay
			}
		}
		if tried != 1 {
			t.Errorf("%d mails tried in one run against a server that is down, want 1", tried)
		}
	}
	if len(seenDelay) < 3 {
		t.Errorf("retries reached only %d attempts: %v", len(seenDelay), seenDelay)
	}
	if _, hooks := e.sent(); len(hooks) != 3 {
		t.Errorf("webhook sent again during the SMTP outage: %d calls", len(hooks))
	}

	// The server comes up; then it answers 451 for a while; then it takes
	// everything, once.
	sink := notifytest.StartSMTP(t, notifytest.SMTPOptions{Addr: down})
	sink.Reject(true)
	e.clock.Advance(time.Hour)
	runOnce(t, s)
	if n := len(sink.Mails()); n != 0 {
		t.Fatalf("%d mails accepted while rejecting", n)
	}
	if n := statuses(t, st, "0c01")["smtp 7d"]; !strings.Contains(n.LastError+statuses(t, st, "0c02")["smtp 7d"].LastError+
		statuses(t, st, "0c03")["smtp 7d"].LastError, "451") {
		t.Errorf("the server's 451 is not kept as the error")
	}
	sink.Reject(false)
	e.clock.Advance(time.Hour)
	runOnce(t, s)
	e.clock.Advance(time.Hour)
	runOnce(t, s)
	got := map[string]int{}
	for _, m := range sink.Mails() {
		got[idLabel(m.Header.Get("X-Scepter-Notification"))]++
	}
	if len(got) != 3 || got["0c01 7d"] != 1 || got["0c02 7d"] != 1 || got["0c03 7d"] != 1 {
		t.Errorf("after the outage: %v, want one 7d mail per certificate", got)
	}
	if _, hooks := e.sent(); len(hooks) != 3 {
		t.Errorf("webhook calls %d, want 3", len(hooks))
	}
	for _, sn := range []string{"0c01", "0c02", "0c03"} {
		if n := statuses(t, st, sn)["smtp 7d"]; n.Status != store.NotificationSent || n.Attempts < 2 {
			t.Errorf("%s: %+v", sn, n)
		}
	}
}

// TestRenewedOrRevokedGetNoMore: once renewed or revoked, a certificate
// gets no warning, not even one already recorded but not yet sent.
func TestRenewedOrRevokedGetNoMore(t *testing.T) {
	e := newEnv(t)
	st := e.open()
	s := e.scheduler(st, "node")
	notAfter := t0.Add(40 * day)
	for _, sn := range []string{"0d01", "0d02", "0d03", "0d04"} {
		cert(t, st, sn, "default", t0, notAfter)
	}
	e.clock.Set(notAfter.Add(-30 * day))
	runOnce(t, s)
	if mails, _ := e.sent(); len(mails) != 4 {
		t.Fatalf("%d mails at 30d, want 4", len(mails))
	}
	// 0d01 is renewed, 0d02 revoked.
	cert(t, st, "0d11", "default", e.clock.Now(), e.clock.Now().Add(365*day), func(c *pki.Certificate) { c.RenewedFrom = issuer + ":0d01" })
	revoke(t, st, "0d02", e.clock.Now())
	// 0d03 and 0d04 have their 7d notification recorded, then are renewed
	// and revoked before it goes out.
	e.clock.Set(notAfter.Add(-7 * day))
	if _, err := s.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	cert(t, st, "0d13", "default", e.clock.Now(), e.clock.Now().Add(365*day), func(c *pki.Certificate) { c.RenewedFrom = issuer + ":0d03" })
	revoke(t, st, "0d04", e.clock.Now())
	if _, err := s.Deliver(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.clock.Set(notAfter.Add(-time.Hour))
	runOnce(t, s)
	if mails, hooks := e.sent(); len(mails) != 4 || len(hooks) != 4 {
		t.Errorf("after renewal and revocation: %q, %q; want only the four 30d ones", mails, hooks)
	}
	for _, sn := range []string{"0d03", "0d04"} {
		if got := statusString(t, st, sn); got != "smtp 30d=sent smtp 7d=cancelled webhook 30d=sent webhook 7d=cancelled" {
			t.Errorf("%s: %s", sn, got)
		}
	}
	// The renewals are notified in their own time (0d11 expires at
	// t0+375d, 0d13 at t0+398d).
	e.clock.Set(t0.Add(350 * day))
	runOnce(t, s)
	e.clock.Set(t0.Add(370 * day))
	runOnce(t, s)
	mails, _ := e.sent()
	if want := []string{"0d01 30d", "0d02 30d", "0d03 30d", "0d04 30d", "0d11 30d", "0d11 7d", "0d13 30d"}; !slices.Equal(sorted(mails), want) {
		t.Errorf("mails %q, want %q", sorted(mails), want)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func revoke(t *testing.T, st store.Store, serial string, at time.Time) {
	t.Helper()
	if _, _, err := st.RevokeCertificate(context.Background(), issuer, serial, 1, at,
		pki.AuditEvent{Type: pki.EventRevoked, SerialHex: serial, IssuerID: issuer}); err != nil {
		t.Fatal(err)
	}
}

// TestExpiredGetsNothing: an expired certificate is never notified; a
// notification still undelivered at expiry is given up, with its event.
func TestExpiredGetsNothing(t *testing.T) {
	e := newEnv(t)
	e.smtpURL = "smtp://127.0.0.1:1" // nothing listens
	st := e.open()
	s := e.scheduler(st, "node")
	cert(t, st, "0e01", "default", t0.Add(-400*day), t0.Add(-time.Hour))
	cert(t, st, "0e02", "default", t0.Add(-400*day), t0.Add(time.Hour))
	runOnce(t, s)
	if got := statusString(t, st, "0e01"); got != "" {
		t.Errorf("expired certificate: %s", got)
	}
	if _, hooks := e.sent(); !slices.Equal(hooks, []string{"0e02 1d"}) {
		t.Errorf("webhook calls %q", hooks)
	}
	e.clock.Advance(2 * time.Hour)
	runOnce(t, s)
	n := statuses(t, st, "0e02")["smtp 1d"]
	if n.Status != store.NotificationFailed || !strings.Contains(n.LastError, "expired") {
		t.Errorf("undelivered at expiry: %+v", n)
	}
	evs, err := st.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventNotificationFailed})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].SerialHex != "0e02" || evs[0].Outcome != "failure" || !strings.Contains(evs[0].Reason, "expired") {
		t.Errorf("notification.failed events: %+v", evs)
	}
}

// TestCrashMidSend: a node that claimed a notification and died never
// finishes it; once its lease has run out another node sends it, once.
func TestCrashMidSend(t *testing.T) {
	e := newEnv(t)
	st := e.open()
	cert(t, st, "0f01", "default", t0, t0.Add(3*day))
	survivor := e.scheduler(st, "survivor")
	if _, err := survivor.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	dead := e.open()
	claimed, err := dead.ClaimNotifications(context.Background(), store.ClaimQuery{Owner: "dead-node", Now: e.clock.Now(), Lease: notify.DefaultLease})
	if err != nil || len(claimed) != 2 {
		t.Fatalf("dead node claimed %d: %v", len(claimed), err)
	}
	dead.Close()
	runOnce(t, survivor)
	e.expectSent("while the dead node's lease runs", nil, nil)
	e.clock.Advance(notify.DefaultLease)
	runOnce(t, survivor)
	runOnce(t, survivor)
	e.expectSent("after the lease ran out", []string{"0f01 7d"}, []string{"0f01 7d"})
}

// TestWebhookFailureRetries: a webhook answering 500 is retried; SMTP,
// which worked, is not sent again.
func TestWebhookFailureRetries(t *testing.T) {
	e := newEnv(t)
	st := e.open()
	s := e.scheduler(st, "node")
	cert(t, st, "1001", "quiet", t0, t0.Add(20*day)) // webhook only
	cert(t, st, "1002", "default", t0, t0.Add(20*day))
	e.hook.SetStatus(http.StatusInternalServerError)
	runOnce(t, s)
	if n := statuses(t, st, "1001")["webhook 30d"]; n.Status != store.NotificationPending || n.Attempts != 1 || !strings.Contains(n.LastError, "HTTP 500") {
		t.Errorf("after a 500: %+v", n)
	}
	if got := statusString(t, st, "1001"); strings.Contains(got, "smtp") {
		t.Errorf("a profile without recipients got a mail notification: %s", got)
	}
	e.hook.SetStatus(http.StatusOK)
	e.clock.Advance(time.Hour)
	runOnce(t, s)
	mails, _ := e.sent()
	if !slices.Equal(mails, []string{"1002 30d"}) {
		t.Errorf("mails %q", mails)
	}
	ok := 0
	for _, r := range e.hook.Requests() {
		if r.JSON["serial"] == "1001" {
			ok++
		}
	}
	if ok < 2 {
		t.Errorf("1001's webhook tried %d times, want a retry", ok)
	}
	if got := statusString(t, st, "1001"); got != "webhook 30d=sent" {
		t.Errorf("1001: %s", got)
	}
}

// TestSMTPStartTLSAndAuth: STARTTLS when offered, AUTH with the password,
// smtps from the first byte; a wrong password is a clear error that does
// not carry it, and nothing logged carries it either.
func TestSMTPStartTLSAndAuth(t *testing.T) {
	serverTLS, roots := selfSigned(t)
	clientTLS := &tls.Config{RootCAs: roots}
	const user, password = "scepter", "correct horse battery staple"
	ctx := context.Background()
	for _, implicit := range []bool{false, true} {
		sink := notifytest.StartSMTP(t, notifytest.SMTPOptions{TLS: serverTLS, ImplicitTLS: implicit, User: user, Password: password})
		scheme := "smtp"
		if implicit {
			scheme = "smtps"
		}
		url := scheme + "://" + user + "@" + sink.Addr
		m, err := notify.NewSMTP(notify.SMTPConfig{URL: url, Password: password, From: "scepter@ca.example.com", TLSConfig: clientTLS, RequireTLS: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.SendTest(ctx, "someone@example.com", t0); err != nil {
			t.Fatalf("%s: %v", scheme, err)
		}
		got := sink.Mails()
		if len(got) != 1 || !got[0].TLS || got[0].User != user || !slices.Equal(got[0].To, []string{"someone@example.com"}) {
			t.Fatalf("%s: received %+v", scheme, got)
		}
		if s := got[0].Header.Get("Subject"); !strings.Contains(s, "Test") {
			t.Errorf("test mail subject %q", s)
		}

		bad, err := notify.NewSMTP(notify.SMTPConfig{URL: url, Password: "wrong " + password, From: "scepter@ca.example.com", TLSConfig: clientTLS})
		if err != nil {
			t.Fatal(err)
		}
		err = bad.SendTest(ctx, "someone@example.com", t0)
		if err == nil || strings.Contains(err.Error(), password) || !strings.Contains(err.Error(), sink.Addr) {
			t.Errorf("%s wrong password: err = %v", scheme, err)
		}
		if sink.AuthFailures() == 0 {
			t.Errorf("%s: the wrong password never reached the server", scheme)
		}
	}

	// STARTTLS required, not offered: refused before anything is sent.
	plain := notifytest.StartSMTP(t, notifytest.SMTPOptions{})
	m, err := notify.NewSMTP(notify.SMTPConfig{URL: "smtp://" + plain.Addr, From: "scepter@ca.example.com", RequireTLS: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SendTest(ctx, "someone@example.com", t0); err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("required STARTTLS not offered: err = %v", err)
	}
	if len(plain.Mails()) != 0 {
		t.Error("mail sent in clear although STARTTLS was required")
	}

	// AUTH PLAIN offered without TLS: not sent, and the error says why
	// instead of "dial failed".
	clear := notifytest.StartSMTP(t, notifytest.SMTPOptions{User: user, Password: password})
	m, err = notify.NewSMTP(notify.SMTPConfig{URL: "smtp://" + user + "@" + clear.Addr, Password: password, From: "scepter@ca.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	err = m.SendTest(ctx, "someone@example.com", t0)
	if err == nil || strings.Contains(err.Error(), "dial failed") || !strings.Contains(err.Error(), "PLAIN and LOGIN only over TLS") ||
		strings.Contains(err.Error(), password) {
		t.Errorf("AUTH PLAIN offered in clear: err = %v", err)
	}
	if len(clear.Mails()) != 0 || clear.AuthFailures() != 0 {
		t.Error("the password went to a server over a connection without TLS")
	}

	// Through the scheduler, with its log: the password is nowhere.
	e := newEnv(t)
	sink := notifytest.StartSMTP(t, notifytest.SMTPOptions{TLS: serverTLS, User: user, Password: password})
	st := e.open()
	cert(t, st, "1101", "default", t0, t0.Add(3*day))
	mail, err := notify.NewSMTP(notify.SMTPConfig{URL: "smtp://" + user + "@" + sink.Addr, Password: "not " + password,
		From: "scepter@ca.example.com", TLSConfig: clientTLS})
	if err != nil {
		t.Fatal(err)
	}
	s, err := notify.New(notify.Config{Store: st, Clock: e.clock, Profiles: e.profiles, Channels: []notify.Channel{mail},
		Log: slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	runOnce(t, s)
	if log := e.log.String(); strings.Contains(log, password) || !strings.Contains(log, "will retry") {
		t.Errorf("log:\n%s", log)
	}
	if n := statuses(t, st, "1101")["smtp 7d"]; strings.Contains(n.LastError, password) || n.LastError == "" {
		t.Errorf("stored error %q", n.LastError)
	}
}

func TestSMTPConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  notify.SMTPConfig
		want string // "" for no error
	}{
		{notify.SMTPConfig{URL: "smtp://mail.example.com", From: "a@example.com"}, ""},
		{notify.SMTPConfig{URL: "smtps://u@mail.example.com:4650", From: "CA <a@example.com>", Password: "p"}, ""},
		{notify.SMTPConfig{URL: "smtp://u:pw@mail.example.com", From: "a@example.com"}, "must not hold a password"},
		{notify.SMTPConfig{URL: "http://mail.example.com", From: "a@example.com"}, "scheme"},
		{notify.SMTPConfig{URL: "smtp://", From: "a@example.com"}, "no host"},
		{notify.SMTPConfig{URL: "smtp://mail.example.com/x?y", From: "a@example.com"}, "without a path"},
		{notify.SMTPConfig{URL: "smtp://mail.example.com:99999", From: "a@example.com"}, "port"},
		{notify.SMTPConfig{URL: "smtp://mail.example.com", From: ""}, "sender"},
		{notify.SMTPConfig{URL: "smtp://mail.example.com", From: "not an address"}, "sender"},
		{notify.SMTPConfig{URL: "smtp://mail.example.com", From: "a@example.com", Password: "p"}, "names no user"},
		{notify.SMTPConfig{URL: "smtp://u@mail.example.com", From: "a@example.com"}, "no password is set"},
	} {
		_, err := notify.NewSMTP(tc.cfg)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: err = %v, want it to mention %q", tc.cfg, err, tc.want)
		}
		if err != nil && tc.cfg.Password != "" && strings.Contains(err.Error(), tc.cfg.Password+"@") {
			t.Errorf("error carries the password: %v", err)
		}
	}
	m, err := notify.NewSMTP(notify.SMTPConfig{URL: "smtp://u@mail.example.com:587", From: "a@example.com", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Display() != "smtp://mail.example.com:587" || !m.MayBeClear() || m.Host() != "mail.example.com" {
		t.Errorf("Display %q MayBeClear %v", m.Display(), m.MayBeClear())
	}
	c := &pki.Certificate{SANs: []string{"dns:x.example", "email:Owner@Example.com", "email:ops@example.com", "email:bad\r\nx"}}
	p := &pki.Profile{NotifyTo: []string{"ops@example.com", "PKI <pki@example.com>"}}
	if got := m.Recipients(c, p); !slices.Equal(got, []string{"ops@example.com", "PKI <pki@example.com>"}) {
		t.Errorf("without notify_owner: %q", got)
	}
	p.NotifyOwner = true
	if got := m.Recipients(c, p); !slices.Equal(got, []string{"ops@example.com", "PKI <pki@example.com>", "Owner@Example.com"}) {
		t.Errorf("with notify_owner: %q", got)
	}
	if m.Wants(c, &pki.Profile{}) {
		t.Error("SMTP wants a certificate nobody is to be told about")
	}
}

func TestWebhookConfig(t *testing.T) {
	for _, u := range []string{"ftp://x.example/", "https:///path", "http://x.example/#frag", "::"} {
		if _, err := notify.NewWebhook(notify.WebhookConfig{URL: u}); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
	// Unsigned without a secret; errors name the host and path only.
	hook := notifytest.StartWebhook(t, nil)
	w, err := notify.NewWebhook(notify.WebhookConfig{URL: hook.URL + "?token=s3cr3t"})
	if err != nil {
		t.Fatal(err)
	}
	hook.SetStatus(http.StatusFound)
	err = w.Send(context.Background(), notify.Message{ID: "i:1:1", Threshold: day, Time: t0, Certificate: pki.Certificate{SerialHex: "1"}})
	if err == nil || strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "302") {
		t.Errorf("redirect answer: err = %v", err)
	}
	reqs := hook.Requests()
	if len(reqs) != 1 || reqs[0].Header.Get("X-Scepter-Signature") != "" || !bytes.Contains(reqs[0].Body, []byte(`"sans":[]`)) {
		t.Errorf("unsigned request: %+v", reqs)
	}
}

func TestNewValidates(t *testing.T) {
	st := newEnv(t).open()
	hook, _ := notify.NewWebhook(notify.WebhookConfig{URL: "https://x.example/"})
	for _, cfg := range []notify.Config{
		{Clock: pkitest.NewClock(t0), Channels: []notify.Channel{hook}},
		{Store: st, Clock: pkitest.NewClock(t0)},
		{Store: st, Clock: pkitest.NewClock(t0), Channels: []notify.Channel{hook, hook}},
		{Store: st, Clock: pkitest.NewClock(t0), Channels: []notify.Channel{hook}, Lease: time.Second, SendTimeout: time.Second},
	} {
		if _, err := notify.New(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

func TestFormatThreshold(t *testing.T) {
	for d, want := range map[time.Duration]string{
		30 * day: "30d", day: "1d", 36 * time.Hour: "36h", 48 * time.Hour: "2d", 90 * time.Minute: "90m", 2 * time.Minute: "2m",
		230 * time.Second: "230s", 5400*time.Second + time.Second: "5401s", 1500 * time.Millisecond: "1.5s",
	} {
		if got := notify.FormatThreshold(d); got != want {
			t.Errorf("FormatThreshold(%v) = %q, want %q", d, got, want)
		}
	}
}

// selfSigned returns a server TLS configuration for 127.0.0.1 and a pool
// that trusts it, valid around the real time (crypto/tls checks that).
func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}}, pool
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestNodesWithDifferentChannels: a node without a mail server neither
// sends nor holds back the mail of a node that has one.
func TestNodesWithDifferentChannels(t *testing.T) {
	e := newEnv(t)
	stA, stW := e.open(), e.open()
	full := e.scheduler(stA, "full")
	hook, err := notify.NewWebhook(notify.WebhookConfig{URL: e.hook.URL, Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	hookOnly, err := notify.New(notify.Config{Store: stW, Clock: e.clock, Profiles: e.profiles, Channels: []notify.Channel{hook}, Owner: "hook-only"})
	if err != nil {
		t.Fatal(err)
	}
	cert(t, stA, "1201", "default", t0, t0.Add(3*day))
	cert(t, stA, "1202", "default", t0, t0.Add(3*day))
	runOnce(t, hookOnly) // first: records webhook intents only, sends them
	runAtOnce(t, full, hookOnly)
	mails, hooks := e.sent()
	if !slices.Equal(sorted(mails), []string{"1201 7d", "1202 7d"}) || !slices.Equal(sorted(hooks), []string{"1201 7d", "1202 7d"}) {
		t.Errorf("mails %q, webhook calls %q; want one 7d each per certificate", mails, hooks)
	}
}

// A recipient the mail server refuses for good (a certificate owner's
// mailbox that is gone) must not keep the others from being told: they get
// the notification, and Send says who has it and who refused it. Every
// recipient refusing it is an error too.
func TestRefusedRecipientDoesNotBlockTheOthers(t *testing.T) {
	ctx := context.Background()
	profile := pki.DefaultProfile()
	profile.NotifyTo = []string{"pki-team@example.com"}
	profile.NotifyOwner = true
	c := pki.Certificate{SerialHex: "2201", IssuerID: issuer, Subject: "CN=laptop", Profile: "default",
		SANs: []string{"email:gone@example.com"}, NotBefore: t0, NotAfter: t0.Add(3 * day)}
	msg := notify.Message{ID: "x:2201:604800", Certificate: c, Profile: profile, Threshold: 7 * day, Time: t0}
	for _, tc := range []struct {
		name         string
		refuse       []string
		settled      []string
		wantAccepted []string // with wantRefused: a *RecipientsError
		wantRefused  []string
		wantTo       []string
	}{
		{"owner's mailbox gone", []string{"gone@example.com"}, nil, []string{"pki-team@example.com"}, []string{"gone@example.com"}, []string{"pki-team@example.com"}},
		{"every recipient refused", []string{"gone@example.com", "pki-team@example.com"}, nil, nil, []string{"pki-team@example.com", "gone@example.com"}, nil},
		{"none refused", nil, nil, nil, nil, []string{"pki-team@example.com", "gone@example.com"}},
		{"settled ones left out", nil, []string{"Team <PKI-team@example.com>"}, nil, nil, []string{"gone@example.com"}},
		{"everyone settled", nil, []string{"pki-team@example.com", "gone@example.com"}, nil, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := notifytest.StartSMTP(t, notifytest.SMTPOptions{RefuseRecipients: tc.refuse})
			m, err := notify.NewSMTP(notify.SMTPConfig{URL: "smtp://" + sink.Addr, From: "scepter@ca.example.com"})
			if err != nil {
				t.Fatal(err)
			}
			msg := msg
			msg.Settled = tc.settled
			err = m.Send(ctx, msg)
			var partial *notify.RecipientsError
			switch {
			case tc.wantRefused == nil && err != nil:
				t.Fatalf("Send: %v, want delivered to all", err)
			case tc.wantRefused != nil && !errors.As(err, &partial):
				t.Fatalf("Send: %v, want a *RecipientsError", err)
			case partial != nil && (!slices.Equal(partial.Accepted, tc.wantAccepted) || !slices.Equal(partial.Refused, tc.wantRefused) || partial.Err != nil):
				t.Fatalf("Send: accepted %v, refused %v, error %v; want %v, %v, none", partial.Accepted, partial.Refused, partial.Err,
					tc.wantAccepted, tc.wantRefused)
			}
			var got []string
			for _, mail := range sink.Mails() {
				got = append(got, mail.To...)
			}
			slices.Sort(got)
			want := slices.Clone(tc.wantTo)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("delivered to %v, want %v", got, want)
			}
		})
	}
}

// TestRetryGoesToThoseStillOwed: of three recipients, the mail server
// takes the notification for one, refuses it for good to another (550)
// and puts the third off (451) on the first attempt. The retry goes to the third
// only: nobody gets a second copy, and the notification is sent once all
// three are settled, its event naming who has it and who refused it.
func TestRetryGoesToThoseStillOwed(t *testing.T) {
	e := newEnv(t)
	const gone = "gone@example.com"
	owner := "owner-1301@example.com"
	// 451 to the first attempt's message to all three and to its message
	// to the owner alone that follows.
	sink := notifytest.StartSMTP(t, notifytest.SMTPOptions{RefuseRecipients: []string{gone}, DeferRecipients: map[string]int{owner: 2}})
	e.smtp, e.smtpURL = sink, "smtp://"+sink.Addr
	st := e.open()
	s := e.scheduler(st, "node")
	// Recipients: the profile's, the owner, and a second address of the
	// owner's that is gone.
	cert(t, st, "1301", "default", t0, t0.Add(5*day), func(c *pki.Certificate) { c.SANs = append(c.SANs, "email:"+gone) })

	received := func() map[string]int {
		got := map[string]int{}
		for _, m := range sink.Mails() {
			for _, to := range m.To {
				got[to]++
			}
		}
		return got
	}
	runOnce(t, s)
	n := statuses(t, st, "1301")["smtp 7d"]
	if got := received(); len(got) != 1 || got[opsAddr] != 1 {
		t.Fatalf("first attempt delivered %v, want to %s only", got, opsAddr)
	}
	if n.Status != store.NotificationPending || n.Attempts != 1 || !slices.Equal(n.Accepted, []string{opsAddr}) ||
		!slices.Equal(n.Refused, []string{gone}) || !strings.Contains(n.LastError, "451") {
		t.Fatalf("after the first attempt: %+v", n)
	}

	for range 3 {
		e.clock.Advance(time.Hour)
		runOnce(t, s)
	}
	if got := received(); len(got) != 2 || got[opsAddr] != 1 || got[owner] != 1 {
		t.Errorf("after the retries, delivered %v; want one copy each to %s and %s", got, opsAddr, owner)
	}
	n = statuses(t, st, "1301")["smtp 7d"]
	if n.Status != store.NotificationSent || n.Attempts != 2 || !slices.Equal(n.Accepted, []string{opsAddr, owner}) ||
		!slices.Equal(n.Refused, []string{gone}) {
		t.Errorf("after the retry: %+v", n)
	}
	evs, err := st.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventNotificationSent})
	if err != nil {
		t.Fatal(err)
	}
	var mailEvents []string
	for _, ev := range evs {
		if strings.Contains(ev.Detail, `"channel":"smtp"`) {
			mailEvents = append(mailEvents, ev.Detail)
		}
	}
	if len(mailEvents) != 1 || !strings.Contains(mailEvents[0], `"recipients":["`+opsAddr+`","`+owner+`"]`) ||
		!strings.Contains(mailEvents[0], `"refused":["`+gone+`"]`) {
		t.Errorf("notification.sent events of the mail: %q", mailEvents)
	}
}

// TestFailedEventNamesWhoHasIt: of three recipients, the mail server
// takes the notification for one, refuses it for good to another (550)
// and keeps putting the third off (451) until the notification is given
// up. Its notification.failed event says so, recipient by recipient, as
// the store does, rather than listing all three as if nobody had it.
func TestFailedEventNamesWhoHasIt(t *testing.T) {
	const gone = "gone@example.com"
	tests := []struct {
		name   string
		mod    func(*notify.Config)
		giveUp func(e *env, s *notify.Scheduler)
	}{
		{"the certificate expired", func(*notify.Config) {}, func(e *env, s *notify.Scheduler) {
			e.clock.Advance(6 * day)
			runOnce(t, s)
		}},
		{"too many attempts", func(c *notify.Config) { c.MaxAttempts = 2 }, func(e *env, s *notify.Scheduler) {
			e.clock.Advance(time.Hour)
			runOnce(t, s)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			owner := "owner-1302@example.com"
			sink := notifytest.StartSMTP(t, notifytest.SMTPOptions{RefuseRecipients: []string{gone}, DeferRecipients: map[string]int{owner: 1000}})
			e.smtp, e.smtpURL = sink, "smtp://"+sink.Addr
			st := e.open()
			s := e.scheduler(st, "node", tc.mod)
			cert(t, st, "1302", "default", t0, t0.Add(5*day), func(c *pki.Certificate) { c.SANs = append(c.SANs, "email:"+gone) })
			runOnce(t, s)
			tc.giveUp(e, s)

			n := statuses(t, st, "1302")["smtp 7d"]
			if n.Status != store.NotificationFailed || !slices.Equal(n.Accepted, []string{opsAddr}) || !slices.Equal(n.Refused, []string{gone}) {
				t.Fatalf("notification: %+v", n)
			}
			evs, err := st.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventNotificationFailed})
			if err != nil {
				t.Fatal(err)
			}
			var details []map[string][]string
			for _, ev := range evs {
				var d struct {
					Channel      string   `json:"channel"`
					Recipients   []string `json:"recipients"`
					DeliveredTo  []string `json:"delivered_to"`
					Refused      []string `json:"refused"`
					NotDelivered []string `json:"not_delivered"`
				}
				if err := json.Unmarshal([]byte(ev.Detail), &d); err != nil {
					t.Fatalf("detail %q: %v", ev.Detail, err)
				}
				if d.Channel == notify.ChannelSMTP {
					details = append(details, map[string][]string{"recipients": d.Recipients, "delivered_to": d.DeliveredTo,
						"refused": d.Refused, "not_delivered": d.NotDelivered})
				}
			}
			want := map[string][]string{"recipients": {opsAddr, owner, gone}, "delivered_to": {opsAddr}, "refused": {gone},
				"not_delivered": {owner}}
			if len(details) != 1 {
				t.Fatalf("notification.failed events of the mail: %v", details)
			}
			for k, w := range want {
				if !slices.Equal(details[0][k], w) {
					t.Errorf("notification.failed %s = %q, want %q", k, details[0][k], w)
				}
			}
		})
	}
}

// rawSMTP is a minimal SMTP server that accepts every message. It waits
// delay before each answer (a tarpit), and with hangUp closes the
// connection right after its 250 to the end of DATA, before the client's
// RSET and QUIT, as a server restarting or a proxy timing out would. It
// returns its address and a count of the messages it accepted.
func rawSMTP(t *testing.T, delay time.Duration, hangUp bool) (addr string, accepted func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	n := 0
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				r := bufio.NewReader(conn)
				say := func(lines ...string) {
					time.Sleep(delay)
					_, _ = io.WriteString(conn, strings.Join(lines, "\r\n")+"\r\n")
				}
				say("220 localhost ESMTP")
				inData := false
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if inData {
						if line == ".\r\n" {
							mu.Lock()
							n++
							mu.Unlock()
							say("250 2.0.0 queued")
							if hangUp {
								return
							}
							inData = false
						}
						continue
					}
					switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
					case strings.HasPrefix(cmd, "EHLO"):
						say("250-localhost", "250 8BITMIME")
					case cmd == "DATA":
						inData = true
						say("354 go ahead")
					case cmd == "QUIT":
						say("221 bye")
						return
					default: // MAIL, RCPT, NOOP, RSET
						say("250 ok")
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// TestSMTPAcceptedThenHungUpIsSent: a message the server accepted is
// delivered, even when the connection breaks before RSET or QUIT; taking
// it for a failure would send the same mail again at every retry.
func TestSMTPAcceptedThenHungUpIsSent(t *testing.T) {
	e := newEnv(t)
	addr, accepted := rawSMTP(t, 0, true)
	e.smtpURL = "smtp://" + addr
	st := e.open()
	s := e.scheduler(st, "node")
	cert(t, st, "0d01", "default", t0, t0.Add(5*day))
	runOnce(t, s)
	if n := statuses(t, st, "0d01")["smtp 7d"]; n.Status != store.NotificationSent || n.Attempts != 1 {
		t.Errorf("accepted by the server: %+v, want sent after 1 attempt", n)
	}
	// Retries would be due long before this.
	e.clock.Advance(2 * time.Hour)
	runOnce(t, s)
	if got := accepted(); got != 1 {
		t.Errorf("the server accepted %d copies, want 1", got)
	}
}

// TestSMTPIPv6Address: a mail server given by its IPv6 address is
// reached, in clear and over TLS (smtp://[::1]:PORT).
func TestSMTPIPv6Address(t *testing.T) {
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		ln.Close()
	}
	serverTLS, roots := selfSigned(t)
	for _, tc := range []struct {
		scheme string
		opts   notifytest.SMTPOptions
	}{
		{"smtp", notifytest.SMTPOptions{Addr: "[::1]:0"}},
		{"smtp", notifytest.SMTPOptions{Addr: "[::1]:0", TLS: serverTLS}},
		{"smtps", notifytest.SMTPOptions{Addr: "[::1]:0", TLS: serverTLS, ImplicitTLS: true}},
	} {
		sink := notifytest.StartSMTP(t, tc.opts)
		m, err := notify.NewSMTP(notify.SMTPConfig{URL: tc.scheme + "://" + sink.Addr, From: "scepter@ca.example.com",
			TLSConfig: &tls.Config{RootCAs: roots}, RequireTLS: tc.opts.TLS != nil})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.SendTest(context.Background(), "someone@example.com", t0); err != nil {
			t.Errorf("%s://%s (TLS %v): %v", tc.scheme, sink.Addr, tc.opts.TLS != nil, err)
			continue
		}
		if got := sink.Mails(); len(got) != 1 || got[0].TLS != (tc.opts.TLS != nil) {
			t.Errorf("%s://%s: received %+v", tc.scheme, sink.Addr, got)
		}
	}
}

// TestSMTPSendBoundedByItsContext: a mail server that answers slowly (a
// tarpit) cannot hold a send beyond its context, which the scheduler
// sets to SendTimeout so that no send outlives its lease; the mail
// library's own timeout applies to each step only.
func TestSMTPSendBoundedByItsContext(t *testing.T) {
	addr, _ := rawSMTP(t, 150*time.Millisecond, false)
	m, err := notify.NewSMTP(notify.SMTPConfig{URL: "smtp://" + addr, From: "scepter@ca.example.com", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// A whole session is about ten answers: 1.5 s at this pace.
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = m.SendTest(ctx, "someone@example.com", t0)
	if took := time.Since(start); took > time.Second {
		t.Errorf("the send took %v with a context of 400ms (err %v)", took, err)
	}
	if err == nil || !strings.Contains(err.Error(), "not finished in time") {
		t.Errorf("a send cut short by its context: err = %v", err)
	}
}

// TestClockSetBack: a retry time and a lease taken while the clock was a
// day ahead hold a notification back no longer than the longest backoff
// or one lease once the clock is set back, not a day more.
func TestClockSetBack(t *testing.T) {
	e := newEnv(t)
	st := e.open()
	e.clock.Set(t0.Add(day))
	s := e.scheduler(st, "node")
	cert(t, st, "1401", "default", t0, t0.Add(5*day))
	cert(t, st, "1402", "quiet", t0, t0.Add(5*day))

	// 1401's mail fails and is put off by the clock that is ahead.
	e.smtp.Reject(true)
	if _, err := s.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	// 1402's webhook is leased by a node that then dies.
	dead := e.open()
	claimed, err := dead.ClaimNotifications(context.Background(), store.ClaimQuery{Owner: "dead-node", Now: e.clock.Now(),
		Lease: notify.DefaultLease, Channels: []string{notify.ChannelWebhook}, Limit: 10})
	if err != nil || len(claimed) != 2 {
		t.Fatalf("dead node claimed %d: %v", len(claimed), err)
	}
	for _, c := range claimed {
		if c.SerialHex == "1401" { // not this one
			if err := dead.FinishNotification(context.Background(), store.NotificationOutcome{NotificationKey: c.NotificationKey,
				Owner: "dead-node", Status: store.NotificationPending, NextAttemptAt: e.clock.Now(), Now: e.clock.Now()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	runOnce(t, s)
	e.expectSent("with the mail server refusing and 1402 leased", nil, []string{"1401 7d"})
	if n := statuses(t, st, "1401")["smtp 7d"]; n.Attempts != 1 || !n.NextAttemptAt.After(t0.Add(day)) {
		t.Fatalf("1401's mail: %+v, want tried once and put off", n)
	}

	e.smtp.Reject(false)
	e.clock.Set(t0)
	runOnce(t, s)
	e.expectSent("once the clock is set back", []string{"1401 7d"}, []string{"1401 7d"})
	e.clock.Advance(notify.DefaultLease)
	runOnce(t, s)
	e.expectSent("a lease after the clock was set back", []string{"1401 7d"}, []string{"1401 7d", "1402 7d"})
}

// clockTurner is a channel whose first send sets the clock back a day,
// and which notes, of every send, how far its lease reaches past now.
type clockTurner struct {
	st    store.Store
	clock *pkitest.Clock
	turns int
	ahead []time.Duration
}

func (c *clockTurner) Name() string                              { return notify.ChannelWebhook }
func (c *clockTurner) Wants(*pki.Certificate, *pki.Profile) bool { return true }
func (c *clockTurner) Send(ctx context.Context, m notify.Message) error {
	ns, err := c.st.Notifications(ctx, m.Certificate.IssuerID, m.Certificate.SerialHex)
	if err != nil {
		return err
	}
	for _, n := range ns {
		if n.Channel == c.Name() && n.Threshold == m.Threshold {
			c.ahead = append(c.ahead, n.ClaimedUntil.Sub(c.clock.Now()))
		}
	}
	if c.turns == 0 {
		c.clock.Set(c.clock.Now().Add(-day))
	}
	c.turns++
	return nil
}

// TestClockSetBackMidBatch: once the clock is set back during a batch,
// the rest of the batch is not sent under leases that end by the clock as
// it was (other nodes bring those back to one lease from their now), but
// claimed again.
func TestClockSetBackMidBatch(t *testing.T) {
	e := newEnv(t)
	st := e.open()
	e.clock.Set(t0.Add(day))
	ch := &clockTurner{st: st, clock: e.clock}
	s, err := notify.New(notify.Config{Store: st, Clock: e.clock, Profiles: e.profiles, Channels: []notify.Channel{ch}, Owner: "node"})
	if err != nil {
		t.Fatal(err)
	}
	cert(t, st, "1501", "default", t0, t0.Add(5*day))
	cert(t, st, "1502", "default", t0, t0.Add(5*day))
	runOnce(t, s)
	if len(ch.ahead) != 2 {
		t.Fatalf("%d sends, want 2", len(ch.ahead))
	}
	for i, d := range ch.ahead {
		if d > notify.DefaultLease {
			t.Errorf("send %d under a lease ending %v from now, more than a lease", i+1, d)
		}
	}
}

// A certificate whose subject runs to 1,300 characters (twenty OUs a
// profile accepted) gets a mail whose every line keeps RFC 5322's 998
// limit: the Subject header carries the subject's first 200 characters
// and an ellipsis, the body all of it (r43: a 1,346-character header line).
func TestLongSubjectKeepsMailLinesShort(t *testing.T) {
	e := newEnv(t)
	st := e.open()
	s := e.scheduler(st, "node-a")
	long := "CN=device-0c01"
	for i := range 20 {
		long += fmt.Sprintf(",OU=%02d-%s", i, strings.Repeat("unit", 15))
	}
	notAfter := t0.Add(10 * day)
	cert(t, st, "0c01", "default", t0, notAfter, func(c *pki.Certificate) { c.Subject = long })
	e.clock.Set(notAfter.Add(-5 * day))
	runAtOnce(t, s)
	mails := e.smtp.WaitMails(1, 10*time.Second)
	if len(mails) != 1 {
		t.Fatalf("%d mails, want 1", len(mails))
	}
	m := mails[0]
	for i, line := range strings.Split(string(m.Data), "\n") {
		if len(strings.TrimSuffix(line, "\r")) > 998 {
			t.Errorf("line %d of the mail is %d bytes long: %.80q…", i, len(line), line)
		}
	}
	subject := m.Header.Get("Subject")
	if !strings.Contains(subject, long[:150]) || !strings.Contains(subject, "…") || strings.Contains(subject, long) {
		t.Errorf("Subject %q, want the DN's start cut with an ellipsis", subject)
	}
	if !strings.Contains(strings.ReplaceAll(m.Body, "\n", ""), long) && !strings.Contains(m.Body, long) {
		t.Errorf("the body lacks the whole subject")
	}
}
