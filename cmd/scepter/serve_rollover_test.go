package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/ocsp"
	"github.com/scepter/scepter/internal/ops"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
)

// runRevocation starts serve's CRL and responder loops on a new fixture,
// as serve does; they end before the fixture's store closes.
func runRevocation(t *testing.T) (*fixture.PKI, *revocation, context.Context, *slog.Logger) {
	t.Helper()
	p := fixture.New(t, fixture.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	var background sync.WaitGroup
	t.Cleanup(func() { cancel(); background.Wait() }) // before the fixture's own
	log := slog.New(slog.DiscardHandler)
	f := revocationFlags{crlValidity: time.Hour, ocspValidity: time.Hour, responderValidity: ocsp.DefaultDelegateValidity}
	rev, err := f.newPublisher(ctx, p.Dir, p.Store, p.Authority, p.Clock, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := rev.startResponder(ctx, &f, p.Dir, p.Store, p.Authority, p.Service, p.Clock, log); err != nil {
		t.Fatal(err)
	}
	rev.run(ctx, &background, log)
	return p, rev, ctx, log
}

// A next CA loaded while the server runs gets its delegated OCSP
// responder at once, not at the next periodic refresh (ten minutes in
// which its answers would be signed by the CA itself).
func TestRolloverRefreshesOCSPDelegates(t *testing.T) {
	p, rev, _, log := runRevocation(t)

	changed := 0
	reloadCA(p.Authority, p.Clock, log, func() { changed++ })
	if changed != 0 {
		t.Fatalf("a reload that found nothing new reported %d changes", changed)
	}
	next, _, err := ca.Rollover(p.Dir, ca.RolloverOptions{SwitchAt: p.Clock.Now().Add(24 * time.Hour), GenerateKey: testKeys.Generate}, p.Clock)
	if err != nil {
		t.Fatal(err)
	}
	reloadCA(p.Authority, p.Clock, log, rev.issuersChanged)
	if _, _, ok := p.Authority.Next(p.Clock.Now()); !ok {
		t.Fatal("the next CA was not loaded")
	}
	deadline := time.Now().Add(10 * time.Second) // real time: the refresh runs in a goroutine
	for {
		s, ok := rev.delegates.Signer(next.ID)
		if ok {
			if err := s.Cert.CheckSignatureFrom(next.Cert); err != nil {
				t.Errorf("the next CA's responder certificate: %v", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no delegated responder for the next CA 10s after it was loaded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	reloadCA(p.Authority, p.Clock, log, func() { changed++ })
	if changed != 0 {
		t.Errorf("a second reload reported %d changes", changed)
	}
}

// A background loop that does not end in time does not keep serve from
// returning: it is logged and left.
func TestWaitBackgroundIsBounded(t *testing.T) {
	var background sync.WaitGroup
	release := make(chan struct{})
	background.Go(func() { <-release })
	defer close(release)
	var logb bytes.Buffer
	waitBackground(&background, 10*time.Millisecond, slog.New(slog.NewTextHandler(&logb, nil)))
	if !strings.Contains(logb.String(), "still running") {
		t.Errorf("a loop left running was not logged:\n%s", logb.String())
	}
	logb.Reset()
	var ended sync.WaitGroup
	ended.Go(func() {})
	waitBackground(&ended, time.Minute, slog.New(slog.NewTextHandler(&logb, nil)))
	if logb.Len() != 0 {
		t.Errorf("loops that ended were logged:\n%s", logb.String())
	}
}

// A delegated responder revoked on this node (the API and the console
// kick the revocation loops) is replaced at once, not at the next
// periodic look (r52: ten minutes in which the CA itself signed answers).
func TestKickReplacesARevokedResponder(t *testing.T) {
	p, rev, ctx, _ := runRevocation(t)
	issuer, _ := p.Authority.Active(p.Clock.Now())
	old, ok := rev.delegates.Signer(issuer.ID)
	if !ok {
		t.Fatal("no delegated responder at start")
	}
	serial := old.Cert.SerialNumber.Text(16)
	if _, err := p.Store.Revoke(ctx, issuer.ID, serial, 4, p.Clock.Now(), pki.AuditEvent{Time: p.Clock.Now(),
		Type: pki.EventRevoked, Actor: "test", IssuerID: issuer.ID, SerialHex: serial, Outcome: "success"}); err != nil {
		t.Fatal(err)
	}
	var kicker ops.Kicker = rev // what serve gives the API and the console
	kicker.Kick()
	deadline := time.Now().Add(10 * time.Second) // real time: the refresh runs in a goroutine
	for {
		if s, ok := rev.delegates.Signer(issuer.ID); ok && s.Cert.SerialNumber.Cmp(old.Cert.SerialNumber) != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the revoked responder certificate was not replaced 10 s after the kick")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Every change of the next CA between two reloads is logged, naming the
// CA and its switch time: one loaded, one discarded, and both when a
// rollover was discarded and made again before the reload, so that the
// log never names a discarded CA as the next one. At the switch the next
// CA goes away by becoming current, which is no discard.
func TestReloadCALogsEveryChangeOfTheNextCA(t *testing.T) {
	p := fixture.New(t, fixture.Options{})
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	rollover := func(t *testing.T, in time.Duration) *ca.Issuer {
		t.Helper()
		next, _, err := ca.Rollover(p.Dir, ca.RolloverOptions{SwitchAt: p.Clock.Now().Add(in), GenerateKey: testKeys.Generate}, p.Clock)
		if err != nil {
			t.Fatal(err)
		}
		return next
	}
	discard := func(t *testing.T, next *ca.Issuer) {
		t.Helper()
		if err := ca.DiscardNext(p.Dir, next.ID, p.Clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	loaded := func(next *ca.Issuer, in time.Duration) string {
		return `msg="next issuing CA loaded" subject="` + next.Cert.Subject.String() + `" switch_at=` +
			p.Clock.Now().Add(in).UTC().Format(time.RFC3339)
	}
	discarded := func(next *ca.Issuer, in time.Duration) string {
		return `msg="next issuing CA discarded: it is no longer served and this node will not switch to it" subject="` +
			next.Cert.Subject.String() + `" switch_at=` + p.Clock.Now().Add(in).UTC().Format(time.RFC3339)
	}

	var first, second, third *ca.Issuer
	steps := []struct {
		name string
		do   func(t *testing.T) (want []string)
	}{
		{"rollover", func(t *testing.T) []string {
			first = rollover(t, 3*time.Hour)
			return []string{loaded(first, 3*time.Hour)}
		}},
		{"nothing new", func(t *testing.T) []string { return nil }},
		{"discarded and made again", func(t *testing.T) []string {
			discard(t, first)
			second = rollover(t, 4*time.Hour)
			return []string{discarded(first, 3*time.Hour), loaded(second, 4*time.Hour)}
		}},
		{"discarded", func(t *testing.T) []string {
			discard(t, second)
			return []string{discarded(second, 4*time.Hour)}
		}},
		{"rollover again", func(t *testing.T) []string {
			third = rollover(t, time.Hour)
			return []string{loaded(third, time.Hour)}
		}},
		{"switch", func(t *testing.T) []string {
			p.Clock.Advance(time.Hour)
			return nil
		}},
	}
	for _, step := range steps {
		logs.Reset()
		want := step.do(t)
		reloadCA(p.Authority, p.Clock, log, func() {})
		got := strings.Split(strings.TrimSpace(logs.String()), "\n")
		if logs.Len() == 0 {
			got = nil
		}
		if len(got) != len(want) {
			t.Fatalf("%s: logged %d lines, want %d:\n%s", step.name, len(got), len(want), logs.String())
		}
		for i := range want {
			if !strings.Contains(got[i], want[i]) {
				t.Errorf("%s: line %d is\n%s\nwant it to contain\n%s", step.name, i, got[i], want[i])
			}
		}
	}
	if active, _ := p.Authority.Active(p.Clock.Now()); active.ID != third.ID {
		t.Errorf("after the switch the active CA is %s, want the third next CA %s", active.ID, third.ID)
	}
}
