package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// Expiry notifications: what every driver must share beyond the
// store.Store comments:
//   - thresholds round-trip to the microsecond;
//   - a certificate expiring exactly at now is expired (not a candidate),
//     one expiring exactly at now+Within is a candidate;
//   - a lease that ends exactly at now is free;
//   - Notifications lists by channel, then threshold, longest first.

// week is seven of list.go's days.
const week = 7 * day

// testNotifications runs its parts one after the other on one store; each
// part that claims starts by cancelling what the parts before it left
// pending.
func testNotifications(t *testing.T, s store.Store) {
	for _, part := range []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"ExpiringCertificates", testExpiringCertificates},
		{"RecordIsInsertIfAbsent", testRecordNotifications},
		{"ClaimAndLease", testClaimNotifications},
		{"Outcomes", testNotificationOutcomes},
		{"RecipientsSettled", testNotificationRecipients},
		{"ClockSetBack", testClaimAfterClockSetBack},
		{"ClaimDetails", testClaimDetails},
		{"ClaimByChannel", testClaimByChannel},
		{"ConcurrentClaims", testConcurrentClaims},
		{"ReclaimOwnLeases", testReclaimOwnLeases},
		{"ReclaimOwnFirst", testReclaimOwnFirst},
		{"ReclaimRacesTakeover", testReclaimRacesTakeover},
	} {
		t.Run(part.name, func(t *testing.T) {
			drainNotifications(t, s)
			part.fn(t, s)
		})
	}
}

// drainNotifications cancels every pending notification, leased or not.
func drainNotifications(t *testing.T, s store.Store) {
	t.Helper()
	far := t0.Add(100 * 365 * day)
	for {
		cl := claim(t, s, "drain", far, 1000)
		if len(cl) == 0 {
			return
		}
		for _, c := range cl {
			if err := s.FinishNotification(context.Background(), store.NotificationOutcome{NotificationKey: c.NotificationKey,
				Owner: "drain", Status: store.NotificationCancelled, Now: far}); err != nil {
				t.Fatalf("drain: %v", err)
			}
		}
	}
}

// intent is a pending notification due at t0.
func intent(issuer, serial string, threshold time.Duration, channel string) store.Notification {
	return store.Notification{
		NotificationKey: store.NotificationKey{IssuerID: issuer, SerialHex: serial, Threshold: threshold, Channel: channel},
		Status:          store.NotificationPending, NextAttemptAt: t0, CreatedAt: t0,
	}
}

func mustRecordNotifications(t *testing.T, s store.Store, want int, ns ...store.Notification) {
	t.Helper()
	got, err := s.RecordNotifications(context.Background(), ns)
	if err != nil {
		t.Fatalf("RecordNotifications: %v", err)
	}
	if got != want {
		t.Errorf("RecordNotifications inserted %d, want %d", got, want)
	}
}

func notificationsOf(t *testing.T, s store.Store, issuer, serial string) []store.Notification {
	t.Helper()
	ns, err := s.Notifications(context.Background(), issuer, serial)
	if err != nil {
		t.Fatalf("Notifications(%s): %v", serial, err)
	}
	return ns
}

func claim(t *testing.T, s store.Store, owner string, now time.Time, limit int) []store.ClaimedNotification {
	t.Helper()
	cl, err := s.ClaimNotifications(context.Background(), store.ClaimQuery{Owner: owner, Now: now, Lease: 5 * time.Minute, Limit: limit})
	if err != nil {
		t.Fatalf("ClaimNotifications(%s): %v", owner, err)
	}
	return cl
}

func claimedKeys(cl []store.ClaimedNotification) []string {
	var out []string
	for _, c := range cl {
		out = append(out, fmt.Sprintf("%s/%s", c.SerialHex, c.Channel))
	}
	return out
}

func testExpiringCertificates(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := t0
	type rec struct {
		serial   string
		notAfter time.Time
		status   pki.CertStatus
		renewed  string // RenewedFrom
	}
	recs := []rec{
		{"e1", now.Add(10 * day), pki.StatusValid, ""},
		{"e2", now.Add(time.Hour), pki.StatusValid, ""},
		{"e3", now.Add(40 * day), pki.StatusValid, ""},      // outside the window
		{"e4", now, pki.StatusValid, ""},                    // expires exactly now: expired
		{"e5", now.Add(-time.Hour), pki.StatusValid, ""},    // expired
		{"e6", now.Add(2 * day), pki.StatusRevoked, ""},     // revoked
		{"e7", now.Add(3 * day), pki.StatusValid, ""},       // renewed by e8
		{"e8", now.Add(30 * day), pki.StatusValid, "e7"},    // the renewal, at the window's end
		{"e9", now.Add(20 * day), pki.StatusValid, "other"}, // renews a certificate we do not know
	}
	for _, r := range recs {
		c := newCert(issuerA, r.serial, r.notAfter)
		c.Status = r.status
		if r.status == pki.StatusRevoked {
			c.RevokedAt, c.RevokeReason = now.Add(-time.Minute), 1
		}
		if r.renewed != "" {
			c.RenewedFrom = issuerA + ":" + r.renewed
		}
		mustRecord(t, s, issuance(c))
	}
	// The same serial under another issuer is another certificate: its
	// renewal says nothing about issuer A's e1.
	b := newCert(issuerB, "e1", now.Add(5*day))
	mustRecord(t, s, issuance(b))
	rb := newCert(issuerB, "f1", now.Add(60*day))
	rb.RenewedFrom = issuerB + ":e1"
	mustRecord(t, s, issuance(rb))

	want := []string{"a1:e2", "a1:e1", "a1:e9", "a1:e8"}
	q := store.ExpiryQuery{Now: now, Within: 30 * day}
	list := func(q store.ExpiryQuery) ([]string, []store.ExpiringCertificate) {
		t.Helper()
		var got []string
		var all []store.ExpiringCertificate
		for page := 0; ; page++ {
			certs, next, err := s.ExpiringCertificates(ctx, q)
			if err != nil {
				t.Fatalf("ExpiringCertificates(%+v): %v", q, err)
			}
			for _, c := range certs {
				got = append(got, c.Certificate.IssuerID[:2]+":"+c.Certificate.SerialHex)
				if len(c.Certificate.DER) != 0 {
					t.Errorf("%s: DER returned", c.Certificate.SerialHex)
				}
			}
			all = append(all, certs...)
			if next == "" {
				return got, all
			}
			if page > 10 {
				t.Fatal("ExpiringCertificates does not end")
			}
			q.Cursor = next
		}
	}
	got, all := list(q)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("candidates %v, want %v (by NotAfter; not expired, revoked, renewed or beyond the window)", got, want)
	}
	for _, c := range all {
		if c.NotifiedThreshold != 0 {
			t.Errorf("%s: NotifiedThreshold %v before anything was recorded", c.Certificate.SerialHex, c.NotifiedThreshold)
		}
	}
	sameCert(t, "candidate e2", all[0].Certificate, func() pki.Certificate {
		c := newCert(issuerA, "e2", now.Add(time.Hour))
		c.DER = nil
		c.RequesterAddr = "" // not needed to notify anyone
		return c
	}())
	q.Limit = 1
	if paged, _ := list(q); fmt.Sprint(paged) != fmt.Sprint(want) {
		t.Errorf("one per page: %v, want %v", paged, want)
	}

	// The smallest threshold recorded on the channel asked about (any
	// channel when none is), whatever its status.
	sk := intent(issuerA, "e1", week+time.Microsecond, "smtp")
	sk.Status = store.NotificationSkipped
	mustRecordNotifications(t, s, 4, intent(issuerA, "e1", 30*day, "smtp"), sk, intent(issuerA, "e1", 30*day, "webhook"),
		intent(issuerA, "e2", day, "webhook"))
	for channel, wantE1 := range map[string]time.Duration{"": week + time.Microsecond, "smtp": week + time.Microsecond, "webhook": 30 * day, "sms": 0} {
		_, all = list(store.ExpiryQuery{Now: now, Within: 30 * day, Channel: channel})
		for _, c := range all {
			var want time.Duration
			switch {
			case c.Certificate.SerialHex == "e1":
				want = wantE1
			case c.Certificate.SerialHex == "e2" && (channel == "" || channel == "webhook"):
				want = day
			}
			if c.NotifiedThreshold != want {
				t.Errorf("%s on channel %q: NotifiedThreshold %v, want %v", c.Certificate.SerialHex, channel, c.NotifiedThreshold, want)
			}
		}
	}

	if _, _, err := s.ExpiringCertificates(ctx, store.ExpiryQuery{Now: now, Within: day, Cursor: "not a cursor"}); err == nil {
		t.Error("a bad cursor is accepted")
	}
	if _, _, err := s.ExpiringCertificates(ctx, store.ExpiryQuery{Now: now}); err == nil {
		t.Error("a zero Within is accepted")
	}
}

func testRecordNotifications(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustRecord(t, s, issuance(newCert(issuerA, "ab71", t0.Add(5*day))))
	first := intent(issuerA, "ab71", week, "smtp")
	first.NextAttemptAt = t0.Add(time.Second)
	mustRecordNotifications(t, s, 2, first, intent(issuerA, "ab71", week, "webhook"))

	// Recorded again (a second scheduler, a restart): nothing changes.
	again := intent(issuerA, "ab71", week, "smtp")
	again.Status = store.NotificationSkipped
	again.CreatedAt = t0.Add(time.Hour)
	mustRecordNotifications(t, s, 1, again, intent(issuerA, "ab71", day, "smtp"))

	ns := notificationsOf(t, s, issuerA, "ab71")
	if len(ns) != 3 {
		t.Fatalf("%d notifications, want 3: %+v", len(ns), ns)
	}
	order := []string{"smtp 168h0m0s", "smtp 24h0m0s", "webhook 168h0m0s"}
	for i, n := range ns {
		if got := fmt.Sprintf("%s %s", n.Channel, n.Threshold); got != order[i] {
			t.Errorf("notification %d is %s, want %s", i, got, order[i])
		}
	}
	n := ns[0]
	if n.Status != store.NotificationPending || !n.CreatedAt.Equal(normTime(t0)) || !n.NextAttemptAt.Equal(normTime(t0.Add(time.Second))) ||
		n.Attempts != 0 || n.ClaimedBy != "" || !n.ClaimedUntil.IsZero() || !n.SentAt.IsZero() || n.LastError != "" {
		t.Errorf("first record changed or not stored as given: %+v", n)
	}

	bad := []store.Notification{
		func() store.Notification {
			n := intent(issuerA, "ab71", day, "smtp")
			n.Status = store.NotificationSent
			return n
		}(),
		func() store.Notification { n := intent(issuerA, "ab71", 0, "smtp"); return n }(),
		func() store.Notification { n := intent(issuerA, "ab71", day, ""); return n }(),
		func() store.Notification {
			n := intent(issuerA, "ab71", day, "smtp")
			n.CreatedAt = time.Time{}
			return n
		}(),
	}
	for i, b := range bad {
		if _, err := s.RecordNotifications(ctx, []store.Notification{intent(issuerA, "ab71", 2*day, "smtp"), b}); err == nil {
			t.Errorf("bad notification %d accepted", i)
		}
	}
	if got := notificationsOf(t, s, issuerA, "ab71"); len(got) != 3 {
		t.Errorf("a refused batch left records: %d, want 3", len(got))
	}
	if n, err := s.RecordNotifications(ctx, nil); n != 0 || err != nil {
		t.Errorf("RecordNotifications(nil) = %d, %v", n, err)
	}
}

func testClaimNotifications(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, sn := range []string{"c1", "c2", "c3"} {
		mustRecord(t, s, issuance(newCert(issuerA, sn, t0.Add(5*day))))
	}
	later := intent(issuerA, "c3", week, "smtp")
	later.NextAttemptAt = t0.Add(time.Hour)
	early := intent(issuerA, "c2", week, "smtp")
	early.NextAttemptAt = t0.Add(-time.Hour)
	done := intent(issuerA, "c1", 30*day, "smtp")
	done.Status = store.NotificationSkipped
	mustRecordNotifications(t, s, 4, intent(issuerA, "c1", week, "smtp"), early, later, done)

	// Due ones only, earliest due first; a skipped one never.
	a := claim(t, s, "node-a", t0, 10)
	if got := fmt.Sprint(claimedKeys(a)); got != "[c2/smtp c1/smtp]" {
		t.Fatalf("node-a claimed %s, want [c2/smtp c1/smtp]", got)
	}
	for _, c := range a {
		if c.ClaimedBy != "node-a" || !c.ClaimedUntil.Equal(normTime(t0.Add(5*time.Minute))) || c.Attempts != 0 {
			t.Errorf("claimed %s: by %q until %v, attempts %d", c.SerialHex, c.ClaimedBy, c.ClaimedUntil, c.Attempts)
		}
	}
	// Leased: nobody else gets them, not even the owner again.
	if b := claim(t, s, "node-b", t0.Add(4*time.Minute), 10); len(b) != 0 {
		t.Errorf("node-b claimed %v while node-a holds the lease", claimedKeys(b))
	}
	// node-a finishes one; the other's lease runs out (node-a died) and
	// node-b takes it over at the lease's end exactly.
	sentEv := pki.AuditEvent{Type: pki.EventNotificationSent, Actor: "system", SerialHex: "c2", IssuerID: issuerA, Outcome: "success"}
	if err := s.FinishNotification(ctx, store.NotificationOutcome{NotificationKey: a[0].NotificationKey, Owner: "node-a",
		Status: store.NotificationSent, Attempted: true, Now: t0.Add(time.Minute), Events: []pki.AuditEvent{sentEv}}); err != nil {
		t.Fatalf("FinishNotification: %v", err)
	}
	b := claim(t, s, "node-b", t0.Add(5*time.Minute), 10)
	if got := fmt.Sprint(claimedKeys(b)); got != "[c1/smtp]" {
		t.Fatalf("node-b claimed %s after node-a's lease ran out, want [c1/smtp]", got)
	}
	// node-a comes back: its lease is gone, so is its right to finish.
	before := len(listAudit(t, s, store.AuditFilter{}))
	err := s.FinishNotification(ctx, store.NotificationOutcome{NotificationKey: a[1].NotificationKey, Owner: "node-a",
		Status: store.NotificationSent, Attempted: true, Now: t0.Add(6 * time.Minute), Events: []pki.AuditEvent{sentEv}})
	wantErr(t, "finish by the owner of an expired lease", err, store.ErrConflict)
	if after := len(listAudit(t, s, store.AuditFilter{})); after != before {
		t.Errorf("refused finish appended %d events", after-before)
	}
	// Finishing again what is finished is refused too.
	err = s.FinishNotification(ctx, store.NotificationOutcome{NotificationKey: a[0].NotificationKey, Owner: "node-a",
		Status: store.NotificationSent, Now: t0.Add(6 * time.Minute)})
	wantErr(t, "finish twice", err, store.ErrConflict)
	unknown := store.NotificationKey{IssuerID: issuerA, SerialHex: "ff", Threshold: day, Channel: "smtp"}
	err = s.FinishNotification(ctx, store.NotificationOutcome{NotificationKey: unknown, Owner: "node-a", Status: store.NotificationSent, Now: t0})
	wantErr(t, "finish unknown", err, store.ErrNotFound)
	if err := s.FinishNotification(ctx, store.NotificationOutcome{NotificationKey: b[0].NotificationKey, Owner: "node-b",
		Status: store.NotificationSent, Attempted: true, Now: t0.Add(6 * time.Minute)}); err != nil {
		t.Fatalf("FinishNotification by the new lease holder: %v", err)
	}

	ns := notificationsOf(t, s, issuerA, "c2")
	if len(ns) != 1 || ns[0].Status != store.NotificationSent || ns[0].Attempts != 1 || !ns[0].SentAt.Equal(normTime(t0.Add(time.Minute))) ||
		ns[0].ClaimedBy != "" || !ns[0].ClaimedUntil.IsZero() {
		t.Errorf("after sent: %+v", ns)
	}
	evs := listAudit(t, s, store.AuditFilter{Type: pki.EventNotificationSent})
	if len(evs) != 1 {
		t.Fatalf("%d notification.sent events, want 1", len(evs))
	}
	want := sentEv
	want.Time = t0.Add(time.Minute) // a zero Time takes the outcome's
	sameEvent(t, "sent event", evs[0], want)

	// The later one is due at its time.
	if c := claim(t, s, "node-b", t0.Add(time.Hour), 10); fmt.Sprint(claimedKeys(c)) != "[c3/smtp]" {
		t.Errorf("at its time: claimed %v, want [c3/smtp]", claimedKeys(c))
	}
	if _, err := s.ClaimNotifications(ctx, store.ClaimQuery{Now: t0, Lease: time.Minute}); err == nil {
		t.Error("claim without an owner accepted")
	}
}

func testNotificationOutcomes(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustRecord(t, s, issuance(newCert(issuerA, "o1", t0.Add(5*day))))
	mustRecordNotifications(t, s, 3, intent(issuerA, "o1", week, "smtp"), intent(issuerA, "o1", week, "webhook"),
		intent(issuerA, "o1", 30*day, "webhook"))
	finish := func(cl store.ClaimedNotification, o store.NotificationOutcome) {
		t.Helper()
		o.NotificationKey, o.Owner = cl.NotificationKey, cl.ClaimedBy
		if err := s.FinishNotification(ctx, o); err != nil {
			t.Fatalf("FinishNotification(%s %s): %v", cl.Channel, cl.Threshold, err)
		}
	}
	byKey := func(cl []store.ClaimedNotification) map[string]store.ClaimedNotification {
		m := map[string]store.ClaimedNotification{}
		for _, c := range cl {
			m[fmt.Sprintf("%s %s", c.Channel, c.Threshold)] = c
		}
		return m
	}
	cl := byKey(claim(t, s, "n", t0, 10))
	if len(cl) != 3 {
		t.Fatalf("claimed %d, want 3", len(cl))
	}
	// A failed attempt: pending again later, the error and attempt kept.
	retry := t0.Add(2 * time.Minute)
	finish(cl["smtp 168h0m0s"], store.NotificationOutcome{Status: store.NotificationPending, NextAttemptAt: retry,
		Attempted: true, Error: "connection refused", Now: t0})
	// Given up, with its event.
	failEv := pki.AuditEvent{Type: pki.EventNotificationFailed, Actor: "system", SerialHex: "o1", IssuerID: issuerA, Outcome: "failure", Reason: "expired"}
	finish(cl["webhook 168h0m0s"], store.NotificationOutcome{Status: store.NotificationFailed, Attempted: true, Error: "HTTP 500",
		Now: t0, Events: []pki.AuditEvent{failEv}})
	// Cancelled without a try and without an event.
	finish(cl["webhook 720h0m0s"], store.NotificationOutcome{Status: store.NotificationCancelled, Error: "renewed", Now: t0})

	if c := claim(t, s, "n", retry.Add(-time.Microsecond), 10); len(c) != 0 {
		t.Errorf("claimed %v before its next attempt", claimedKeys(c))
	}
	again := claim(t, s, "n2", retry, 10)
	if len(again) != 1 || again[0].Channel != "smtp" || again[0].Attempts != 1 || again[0].LastError != "connection refused" {
		t.Fatalf("retry claim: %+v", again)
	}
	finish(again[0], store.NotificationOutcome{Status: store.NotificationSent, Attempted: true, Now: retry})

	got := map[string]store.Notification{}
	for _, n := range notificationsOf(t, s, issuerA, "o1") {
		got[fmt.Sprintf("%s %s", n.Channel, n.Threshold)] = n
	}
	check := func(key string, status store.NotificationStatus, attempts int, lastErr string) {
		t.Helper()
		n := got[key]
		if n.Status != status || n.Attempts != attempts || n.LastError != lastErr {
			t.Errorf("%s: status %s attempts %d error %q, want %s %d %q", key, n.Status, n.Attempts, n.LastError, status, attempts, lastErr)
		}
	}
	check("smtp 168h0m0s", store.NotificationSent, 2, "")
	check("webhook 168h0m0s", store.NotificationFailed, 1, "HTTP 500")
	check("webhook 720h0m0s", store.NotificationCancelled, 0, "renewed")
	if n := got["smtp 168h0m0s"]; !n.SentAt.Equal(normTime(retry)) || !n.NextAttemptAt.Equal(normTime(retry)) {
		t.Errorf("sent after a retry: %+v", n)
	}
	if n := got["webhook 168h0m0s"]; !n.SentAt.IsZero() {
		t.Errorf("failed one has SentAt %v", n.SentAt)
	}
	if evs := listAudit(t, s, store.AuditFilter{Type: pki.EventNotificationFailed}); len(evs) != 1 || evs[0].Reason != "expired" {
		t.Errorf("notification.failed events: %+v", evs)
	}

	for i, o := range []store.NotificationOutcome{
		{Status: "delivered", Now: t0},
		{Status: store.NotificationPending, Now: t0}, // no NextAttemptAt
		{Status: store.NotificationSent},             // no time
	} {
		o.NotificationKey, o.Owner = cl["smtp 168h0m0s"].NotificationKey, "n"
		if err := s.FinishNotification(ctx, o); err == nil {
			t.Errorf("bad outcome %d accepted", i)
		}
	}
}

// testNotificationRecipients: the recipients that accepted a mail or
// refused it for good are recorded with the outcome of the attempt,
// handed to the next claimer, replaced by the next outcome, and kept with
// the final one; a notification recorded without them has none.
func testNotificationRecipients(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustRecord(t, s, issuance(newCert(issuerA, "settled1", t0.Add(5*day))))
	mustRecordNotifications(t, s, 1, intent(issuerA, "settled1", week, "smtp"))
	cl := claim(t, s, "n", t0, 10)
	if len(cl) != 1 || cl[0].Accepted != nil || cl[0].Refused != nil {
		t.Fatalf("first claim: %+v, want one with no recipient settled", cl)
	}
	// A partial attempt: one took it, one is gone, the third is owed.
	retry := t0.Add(time.Minute)
	if err := s.FinishNotification(ctx, store.NotificationOutcome{NotificationKey: cl[0].NotificationKey, Owner: "n",
		Status: store.NotificationPending, NextAttemptAt: retry, Attempted: true, Error: "451 try later", Now: t0,
		Accepted: []string{"ops@example.com"}, Refused: []string{"Gone <gone@example.com>"}}); err != nil {
		t.Fatal(err)
	}
	again := claim(t, s, "n2", retry, 10)
	if len(again) != 1 || !slices.Equal(again[0].Accepted, []string{"ops@example.com"}) ||
		!slices.Equal(again[0].Refused, []string{"Gone <gone@example.com>"}) {
		t.Fatalf("retry claim: %+v, want the settled recipients", again)
	}
	if err := s.FinishNotification(ctx, store.NotificationOutcome{NotificationKey: again[0].NotificationKey, Owner: "n2",
		Status: store.NotificationSent, Attempted: true, Now: retry,
		Accepted: []string{"ops@example.com", "owner@example.com"}, Refused: again[0].Refused}); err != nil {
		t.Fatal(err)
	}
	ns := notificationsOf(t, s, issuerA, "settled1")
	if len(ns) != 1 || ns[0].Status != store.NotificationSent ||
		!slices.Equal(ns[0].Accepted, []string{"ops@example.com", "owner@example.com"}) ||
		!slices.Equal(ns[0].Refused, []string{"Gone <gone@example.com>"}) {
		t.Errorf("after the retry: %+v", ns)
	}
}

// testClaimAfterClockSetBack: a retry time and a lease taken while the
// clock was a day ahead hold the notification back no longer than the
// longest backoff or one lease once the clock is set back.
func testClaimAfterClockSetBack(t *testing.T, s store.Store) {
	ctx := context.Background()
	ahead := t0.Add(day)
	mustRecord(t, s, issuance(newCert(issuerA, "back1", t0.Add(5*day))))
	mustRecord(t, s, issuance(newCert(issuerA, "back2", t0.Add(5*day))))
	mustRecordNotifications(t, s, 2, intent(issuerA, "back1", week, "smtp"), intent(issuerA, "back2", week, "smtp"))
	cl := claim(t, s, "ahead", ahead, 10)
	if len(cl) != 2 {
		t.Fatalf("claimed %d, want 2", len(cl))
	}
	// back1 failed and is put off by the clock that is ahead; back2 stays
	// leased (its owner died).
	for _, c := range cl {
		if c.SerialHex == "back1" {
			if err := s.FinishNotification(ctx, store.NotificationOutcome{NotificationKey: c.NotificationKey, Owner: "ahead",
				Status: store.NotificationPending, NextAttemptAt: ahead.Add(time.Minute), Attempted: true, Now: ahead}); err != nil {
				t.Fatal(err)
			}
		}
	}
	const maxDelay = time.Hour
	claimAt := func(owner string, now time.Time) []string {
		t.Helper()
		got, err := s.ClaimNotifications(ctx, store.ClaimQuery{Owner: owner, Now: now, Lease: 5 * time.Minute, MaxDelay: maxDelay, Limit: 10})
		if err != nil {
			t.Fatalf("ClaimNotifications(%s): %v", owner, err)
		}
		var serials []string
		for _, c := range got {
			serials = append(serials, c.SerialHex)
		}
		slices.Sort(serials)
		return serials
	}
	// Set back to t0: back1 is due at once, back2's lease ends 5 minutes on.
	if got := claimAt("back", t0); !slices.Equal(got, []string{"back1"}) {
		t.Errorf("claimed %v after the clock was set back, want [back1]", got)
	}
	if got := claimAt("back", t0.Add(5*time.Minute-time.Microsecond)); got != nil {
		t.Errorf("claimed %v within a lease of the set-back, want none", got)
	}
	// Both leases (back1's from the claim above) have run out.
	if got := claimAt("back", t0.Add(5*time.Minute)); !slices.Equal(got, []string{"back1", "back2"}) {
		t.Errorf("claimed %v a lease after the set-back, want [back1 back2]", got)
	}
	drainNotifications(t, s)
	// Without MaxDelay a retry time is left as it is.
	mustRecord(t, s, issuance(newCert(issuerA, "back3", t0.Add(5*day))))
	n := intent(issuerA, "back3", week, "smtp")
	n.NextAttemptAt = ahead
	mustRecordNotifications(t, s, 1, n)
	if c := claim(t, s, "plain", t0.Add(time.Hour), 10); len(c) != 0 {
		t.Errorf("claimed %v without MaxDelay", claimedKeys(c))
	}
}

func testClaimDetails(t *testing.T, s store.Store) {
	ctx := context.Background()
	old := newCert(issuerA, "d1", t0.Add(3*day))
	old.SANs = []string{"dns:d1.example", "email:owner@example.com"}
	mustRecord(t, s, issuance(old))
	mustRecord(t, s, issuance(newCert(issuerA, "d2", t0.Add(3*day))))
	mustRecord(t, s, issuance(newCert(issuerA, "d3", t0.Add(3*day))))
	mustRecordNotifications(t, s, 6,
		intent(issuerA, "d1", 30*day, "smtp"), intent(issuerA, "d1", week, "smtp"),
		intent(issuerA, "d2", 30*day, "webhook"),
		intent(issuerA, "d3", 30*day, "smtp"), intent(issuerA, "d3", week, "webhook"), intent(issuerA, "d3", day, "smtp"))
	// d1 is renewed, d2 revoked; d3's 30d smtp one is superseded by the 1d
	// one on the same channel, not by the webhook's.
	renewal := newCert(issuerA, "d4", t0.Add(90*day))
	renewal.RenewedFrom = issuerA + ":d1"
	mustRecord(t, s, issuance(renewal))
	if _, _, err := s.RevokeCertificate(ctx, issuerA, "d2", 1, t0, pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
		t.Fatalf("RevokeCertificate: %v", err)
	}
	got := map[string]store.ClaimedNotification{}
	for _, c := range claim(t, s, "n", t0, 100) {
		got[fmt.Sprintf("%s %s %s", c.SerialHex, c.Channel, c.Threshold)] = c
	}
	if len(got) != 6 {
		t.Fatalf("claimed %d, want 6: %v", len(got), got)
	}
	for key, c := range got {
		wantRenewed := c.SerialHex == "d1"
		var wantSup time.Duration
		switch key {
		case "d1 smtp 720h0m0s":
			wantSup = week
		case "d3 smtp 720h0m0s":
			wantSup = day
		}
		if c.Renewed != wantRenewed || c.SupersededBy != wantSup {
			t.Errorf("%s: renewed %v superseded by %v, want %v %v", key, c.Renewed, c.SupersededBy, wantRenewed, wantSup)
		}
		wantStatus := pki.StatusValid
		if c.SerialHex == "d2" {
			wantStatus = pki.StatusRevoked
		}
		if c.Certificate.Status != wantStatus || c.Certificate.SerialHex != c.SerialHex || c.Certificate.Subject == "" ||
			!c.Certificate.NotAfter.Equal(normTime(t0.Add(3*day))) || c.Certificate.Profile != "default" {
			t.Errorf("%s: certificate %+v", key, c.Certificate)
		}
	}
	if sans := got["d1 smtp 168h0m0s"].Certificate.SANs; fmt.Sprint(sans) != "[dns:d1.example email:owner@example.com]" {
		t.Errorf("SANs %v", sans)
	}
	// A failed one supersedes nothing.
	o := store.NotificationOutcome{NotificationKey: got["d3 smtp 24h0m0s"].NotificationKey, Owner: "n", Status: store.NotificationFailed, Now: t0}
	if err := s.FinishNotification(ctx, o); err != nil {
		t.Fatal(err)
	}
	o = store.NotificationOutcome{NotificationKey: got["d3 smtp 720h0m0s"].NotificationKey, Owner: "n", Status: store.NotificationPending,
		NextAttemptAt: t0, Now: t0}
	if err := s.FinishNotification(ctx, o); err != nil {
		t.Fatal(err)
	}
	for _, c := range claim(t, s, "n", t0, 100) {
		if c.SerialHex == "d3" && c.SupersededBy != 0 {
			t.Errorf("d3 %s superseded by %v after the 1d one failed", c.Threshold, c.SupersededBy)
		}
	}
}

func testConcurrentClaims(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 24
	var ns []store.Notification
	for i := range n {
		sn := fmt.Sprintf("%x", 0xc000+i)
		mustRecord(t, s, issuance(newCert(issuerA, sn, t0.Add(3*day))))
		ns = append(ns, intent(issuerA, sn, week, "smtp"))
	}
	mustRecordNotifications(t, s, n, ns...)
	var (
		mu   sync.Mutex
		seen = map[string]string{}
		wg   sync.WaitGroup
	)
	for w := range 8 {
		owner := fmt.Sprintf("node-%d", w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				// Half of them take back their own leases first: that
				// never claims another's.
				cl, err := s.ClaimNotifications(ctx, store.ClaimQuery{Owner: owner, Now: t0, Lease: time.Minute, Limit: 2, Reclaim: w%2 == 1})
				if err != nil {
					t.Errorf("%s: ClaimNotifications: %v", owner, err)
					return
				}
				if len(cl) == 0 {
					return
				}
				for _, c := range cl {
					mu.Lock()
					if prev, dup := seen[c.SerialHex]; dup {
						t.Errorf("%s claimed by %s and %s", c.SerialHex, prev, owner)
					}
					seen[c.SerialHex] = owner
					mu.Unlock()
					if err := s.FinishNotification(ctx, store.NotificationOutcome{NotificationKey: c.NotificationKey, Owner: owner,
						Status: store.NotificationSent, Attempted: true, Now: t0}); err != nil {
						t.Errorf("%s: FinishNotification: %v", owner, err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("%d notifications claimed, want %d", len(seen), n)
	}
}

// A node claims only for the channels it has.
func testClaimByChannel(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustRecord(t, s, issuance(newCert(issuerA, "b1", t0.Add(3*day))))
	mustRecordNotifications(t, s, 3, intent(issuerA, "b1", week, "smtp"), intent(issuerA, "b1", week, "webhook"),
		intent(issuerA, "b1", week, "sms"))
	keys := func(q store.ClaimQuery) string {
		t.Helper()
		q.Now, q.Lease = t0, time.Minute
		cl, err := s.ClaimNotifications(ctx, q)
		if err != nil {
			t.Fatalf("ClaimNotifications(%v): %v", q.Channels, err)
		}
		var out []string
		for _, c := range cl {
			out = append(out, c.Channel)
		}
		slices.Sort(out)
		return fmt.Sprint(out)
	}
	if got := keys(store.ClaimQuery{Owner: "webhook-only", Channels: []string{"webhook"}}); got != "[webhook]" {
		t.Errorf("webhook-only node claimed %s", got)
	}
	if got := keys(store.ClaimQuery{Owner: "both", Channels: []string{"smtp", "webhook"}}); got != "[smtp]" {
		t.Errorf("smtp+webhook node claimed %s, want [smtp] (the webhook one is leased)", got)
	}
	if got := keys(store.ClaimQuery{Owner: "any"}); got != "[sms]" {
		t.Errorf("node without a filter claimed %s, want [sms]", got)
	}
}

// testReclaimOwnLeases: with Reclaim, a claimer takes back at once what is
// leased to its own name (left by a process of that name that died), and
// only that: another owner's running lease stays its own, and without
// Reclaim the owner waits for its lease to run out like anyone.
func testReclaimOwnLeases(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, sn := range []string{"ec51", "ec52"} {
		mustRecord(t, s, issuance(newCert(issuerA, sn, t0.Add(5*day))))
	}
	mustRecordNotifications(t, s, 3, intent(issuerA, "ec51", week, "smtp"), intent(issuerA, "ec51", week, "webhook"),
		intent(issuerA, "ec52", week, "smtp"))
	reclaim := func(owner string, now time.Time, limit int) []store.ClaimedNotification {
		t.Helper()
		cl, err := s.ClaimNotifications(ctx, store.ClaimQuery{Owner: owner, Now: now, Lease: 5 * time.Minute, Limit: limit, Reclaim: true})
		if err != nil {
			t.Fatalf("ClaimNotifications(%s, Reclaim): %v", owner, err)
		}
		return cl
	}
	if got := fmt.Sprint(claimedKeys(claim(t, s, "node-a", t0, 2))); got != "[ec51/smtp ec51/webhook]" && got != "[ec51/smtp ec52/smtp]" &&
		got != "[ec51/webhook ec52/smtp]" {
		t.Fatalf("node-a claimed %s, want two of the three", got)
	}
	if got := claim(t, s, "node-b", t0.Add(time.Minute), 10); len(got) != 1 {
		t.Fatalf("node-b claimed %v, want the one node-a left", claimedKeys(got))
	}
	// node-a restarted: without Reclaim its own leases wait like anyone's.
	if got := claim(t, s, "node-a", t0.Add(2*time.Minute), 10); len(got) != 0 {
		t.Errorf("node-a claimed %v of its running leases without Reclaim", claimedKeys(got))
	}
	// With it, node-a takes back its own, one at a time as asked, with a
	// fresh lease; node-b's is not touched.
	first := reclaim("node-a", t0.Add(2*time.Minute), 1)
	if len(first) != 1 || first[0].ClaimedBy != "node-a" || !first[0].ClaimedUntil.Equal(normTime(t0.Add(7*time.Minute))) {
		t.Fatalf("node-a reclaimed %+v, want one of its two, leased until %v", first, t0.Add(7*time.Minute))
	}
	if second := reclaim("node-a", t0.Add(2*time.Minute), 10); len(second) != 2 {
		t.Errorf("node-a reclaimed %v, want its two leases (one it took back just now)", claimedKeys(second))
	}
	if got := reclaim("node-c", t0.Add(3*time.Minute), 10); len(got) != 0 {
		t.Errorf("node-c claimed %v with Reclaim while node-a and node-b hold the leases", claimedKeys(got))
	}
	if got := reclaim("node-b", t0.Add(3*time.Minute), 10); len(got) != 1 {
		t.Errorf("node-b reclaimed %v, want its one lease", claimedKeys(got))
	}
}

// testReclaimOwnFirst: with Reclaim, a claimer takes back what is leased
// to its own name before any other due row, however much earlier those
// are due: the row a killed node was sending, the most delayed already,
// goes out first on its restart, not when its turn comes.
func testReclaimOwnFirst(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, sn := range []string{"ef51", "ef52", "ef53", "ef54"} {
		mustRecord(t, s, issuance(newCert(issuerA, sn, t0.Add(5*day))))
	}
	mustRecordNotifications(t, s, 1, intent(issuerA, "ef51", week, "smtp"))
	if got := fmt.Sprint(claimedKeys(claim(t, s, "node-a", t0, 1))); got != "[ef51/smtp]" {
		t.Fatalf("node-a claimed %s, want [ef51/smtp]", got)
	}
	// node-a dies sending it; meanwhile more come due, all earlier.
	var more []store.Notification
	for i, sn := range []string{"ef52", "ef53", "ef54"} {
		n := intent(issuerA, sn, week, "smtp")
		n.NextAttemptAt = t0.Add(-time.Duration(3-i) * time.Hour)
		more = append(more, n)
	}
	mustRecordNotifications(t, s, 3, more...)
	reclaim := func(owner string, now time.Time, limit int) []store.ClaimedNotification {
		t.Helper()
		cl, err := s.ClaimNotifications(ctx, store.ClaimQuery{Owner: owner, Now: now, Lease: 5 * time.Minute, Limit: limit,
			Reclaim: true, Channels: []string{"smtp"}})
		if err != nil {
			t.Fatalf("ClaimNotifications(%s, Reclaim): %v", owner, err)
		}
		return cl
	}
	// node-a restarted: its first claim is the row leased to it.
	first := reclaim("node-a", t0.Add(time.Minute), 1)
	if got := fmt.Sprint(claimedKeys(first)); got != "[ef51/smtp]" {
		t.Fatalf("node-a restarted claimed %s first, want [ef51/smtp], its own lease", got)
	}
	if !first[0].ClaimedUntil.Equal(normTime(t0.Add(6*time.Minute))) || first[0].Certificate.SerialHex != "ef51" {
		t.Errorf("node-a reclaimed %+v, want a fresh lease and the certificate", first[0])
	}
	// In a batch, its own comes first, then the others in due order; the
	// own one is not taken twice.
	second := reclaim("node-a", t0.Add(2*time.Minute), 3)
	if got := fmt.Sprint(claimedKeys(second)); got != "[ef51/smtp ef52/smtp ef53/smtp]" {
		t.Errorf("node-a claimed %s, want [ef51/smtp ef52/smtp ef53/smtp]", got)
	}
	// Another node takes nothing of node-a's running leases, Reclaim or not.
	if got := fmt.Sprint(claimedKeys(reclaim("node-b", t0.Add(3*time.Minute), 10))); got != "[ef54/smtp]" {
		t.Errorf("node-b claimed %s, want [ef54/smtp]", got)
	}
	// Once node-a's lease has run out, its rows are anyone's, in due order.
	if got := fmt.Sprint(claimedKeys(reclaim("node-c", t0.Add(7*time.Minute), 10))); got != "[ef52/smtp ef53/smtp ef51/smtp]" {
		t.Errorf("node-c claimed %s after node-a's leases ran out, want [ef52/smtp ef53/smtp ef51/smtp]", got)
	}
}

// testReclaimRacesTakeover: nodes restarted under their names take back
// their leases while other nodes, whose clocks are ahead, take the same
// leases over as run out: each notification goes to one of them, and its
// outcome is recorded by that one.
func testReclaimRacesTakeover(t *testing.T, s store.Store) {
	ctx := context.Background()
	const nodes, each = 4, 4
	var ns []store.Notification
	for i := range nodes * each {
		sn := fmt.Sprintf("%x", 0xe000+i)
		mustRecord(t, s, issuance(newCert(issuerA, sn, t0.Add(3*day))))
		ns = append(ns, intent(issuerA, sn, week, "smtp"))
	}
	mustRecordNotifications(t, s, nodes*each, ns...)
	for i := range nodes {
		if got := claim(t, s, fmt.Sprintf("node-%d", i), t0, each); len(got) != each {
			t.Fatalf("node-%d claimed %d, want %d", i, len(got), each)
		}
	}
	var (
		mu   sync.Mutex
		seen = map[string]string{}
		wg   sync.WaitGroup
	)
	// The leases end at t0+5m: at t0+4m the owners take theirs back (a
	// new lease to t0+9m), at t0+6m the others take over what is left.
	run := func(owner string, now time.Time, reclaim bool) {
		defer wg.Done()
		for {
			cl, err := s.ClaimNotifications(ctx, store.ClaimQuery{Owner: owner, Now: now, Lease: 5 * time.Minute, Limit: 1, Reclaim: reclaim})
			if err != nil {
				t.Errorf("%s: ClaimNotifications: %v", owner, err)
				return
			}
			if len(cl) == 0 {
				return
			}
			for _, c := range cl {
				mu.Lock()
				if prev, dup := seen[c.SerialHex]; dup {
					t.Errorf("%s claimed by %s and %s", c.SerialHex, prev, owner)
				}
				seen[c.SerialHex] = owner
				mu.Unlock()
				if err := s.FinishNotification(ctx, store.NotificationOutcome{NotificationKey: c.NotificationKey, Owner: owner,
					Status: store.NotificationSent, Attempted: true, Now: now}); err != nil {
					t.Errorf("%s: FinishNotification: %v", owner, err)
				}
			}
		}
	}
	for i := range nodes {
		wg.Add(2)
		go run(fmt.Sprintf("node-%d", i), t0.Add(4*time.Minute), true)
		go run(fmt.Sprintf("taker-%d", i), t0.Add(6*time.Minute), false)
	}
	wg.Wait()
	if len(seen) != nodes*each {
		t.Errorf("%d notifications claimed, want %d", len(seen), nodes*each)
	}
}
