package enroll_test

import (
	"context"
	"crypto"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/postgres"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
)

// estEnrollment is an EST simpleenroll of k for CN=cn and dns with
// evidence, named by a transaction ID as estserver names it: of the
// operation, key and subject (here of the subject only, each test's key
// being its own).
func estEnrollment(t *testing.T, k crypto.Signer, evidence enroll.Evidence, cn string, dns ...string) enroll.Request {
	t.Helper()
	req := namedWithKey(t, k, "", cn, dns...)
	req.Protocol, req.TransactionID, req.Evidence, req.RemoteAddr = pki.ProtocolEST, "est-simpleenroll-"+cn, evidence, "192.0.2.10:443"
	return req
}

var (
	fleetUser  = enroll.Evidence{HTTPUser: "fleet", HTTPPassword: "fleet-pass"}
	otherUser  = enroll.Evidence{HTTPUser: "other", HTTPPassword: "other-pass"}
	staticEST  = enroll.Evidence{Challenge: static}
	webhookEST = enroll.Evidence{Challenge: "device-otp"}
)

// An EST simpleenroll asked again after its answer was lost (`scepter est
// enroll` keeps its key for that) at a profile of an EST user, the static
// challenge or a webhook is answered with the certificate issued for the
// same key, profile and names by the same credentials within a day, while
// it is valid: sent again (an event, counted as reanswered), no second
// certificate. Anything else gets a certificate of its own: another user
// is never handed this one's.
func TestESTEnrollmentAskedAgainGetsTheSameCertificate(t *testing.T) {
	cases := []struct {
		name string
		// first and again are the two requests, of one key unless again
		// returns its own.
		first func(t *testing.T, f *fixture, k crypto.Signer) enroll.Request
		again func(t *testing.T, f *fixture, k crypto.Signer, first *enroll.Result) enroll.Request
		// between runs after the first answer.
		between   func(t *testing.T, f *fixture, first *enroll.Result)
		sentAgain bool
	}{
		{name: "an EST user asks again", sentAgain: true,
			first: userAsks(fleetUser, "dev-1", "dev-1.example"), again: userAsksAgain(fleetUser, "dev-1", "dev-1.example")},
		{name: "the static challenge asks again", sentAgain: true,
			first: userAsks(staticEST, "dev-2"), again: userAsksAgain(staticEST, "dev-2")},
		{name: "the webhook's device asks again", sentAgain: true,
			first: atProfile("mdm", userAsks(webhookEST, "dev-3")), again: atProfileAgain("mdm", userAsksAgain(webhookEST, "dev-3"))},
		{name: "an EST user asks again just within a day", sentAgain: true,
			first: userAsks(fleetUser, "dev-4"), again: userAsksAgain(fleetUser, "dev-4"),
			between: func(t *testing.T, f *fixture, _ *enroll.Result) { f.clock.Advance(24*time.Hour - time.Second) }},
		{name: "another EST user, the same key and names",
			first: userAsks(fleetUser, "dev-5"), again: userAsksAgain(otherUser, "dev-5")},
		{name: "the static challenge after an EST user",
			first: userAsks(fleetUser, "dev-6"), again: userAsksAgain(staticEST, "dev-6")},
		{name: "an EST user after the static challenge",
			first: userAsks(staticEST, "dev-7"), again: userAsksAgain(fleetUser, "dev-7")},
		{name: "another profile",
			first: userAsks(fleetUser, "dev-8"), again: atProfileAgain("other", userAsksAgain(fleetUser, "dev-8"))},
		{name: "other names",
			first: userAsks(fleetUser, "dev-9", "dev-9.example"), again: userAsksAgain(fleetUser, "dev-9", "dev-9.example", "more.example")},
		{name: "a day later",
			first: userAsks(fleetUser, "dev-10"), again: userAsksAgain(fleetUser, "dev-10"),
			between: func(t *testing.T, f *fixture, _ *enroll.Result) { f.clock.Advance(24 * time.Hour) }},
		{name: "the first revoked",
			first: userAsks(fleetUser, "dev-11"), again: userAsksAgain(fleetUser, "dev-11"),
			between: func(t *testing.T, f *fixture, first *enroll.Result) {
				if _, err := f.admin.Revoke(context.Background(), first.Record.SerialHex, "", pki.ReasonSuperseded, "cli:test"); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "a one-time challenge's certificate, then an EST user",
			first: func(t *testing.T, f *fixture, k crypto.Signer) enroll.Request {
				secret, _, err := f.admin.NewChallenge(context.Background(), time.Hour, "", "test")
				if err != nil {
					t.Fatal(err)
				}
				return estEnrollment(t, k, enroll.Evidence{HTTPUser: "anyone", HTTPPassword: secret}, "dev-12")
			},
			again: userAsksAgain(fleetUser, "dev-12")},
		{name: "the key of a server-made key's certificate, by the same user",
			first: func(t *testing.T, f *fixture, k crypto.Signer) enroll.Request {
				req := estEnrollment(t, k, fleetUser, "dev-13")
				req.ServerKeyGen = true
				return req
			},
			again: func(t *testing.T, f *fixture, _ crypto.Signer, first *enroll.Result) enroll.Request {
				return estEnrollment(t, first.PrivateKey.(crypto.Signer), fleetUser, "dev-13")
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			obs := &outcomes{}
			f := newESTResendFixture(t, obs, &fakeHook{allow: true})
			ctx := context.Background()
			k := newKey(t)
			first, err := f.svc.Enroll(ctx, c.first(t, f, k))
			if err != nil {
				t.Fatal(err)
			}
			if c.between != nil {
				c.between(t, f, first)
			}
			again, err := f.svc.Enroll(ctx, c.again(t, f, k, first))
			if err != nil {
				t.Fatalf("asked again: %v", err)
			}
			sentAgain := sentAgainEvents(t, f.st)
			if !c.sentAgain {
				if again.SentAgain || again.Record.SerialHex == first.Record.SerialHex || len(sentAgain) != 0 {
					t.Fatalf("answered with %s (sent again: %v, events %d), want a certificate of its own, not %s",
						again.Record.SerialHex, again.SentAgain, len(sentAgain), first.Record.SerialHex)
				}
				return
			}
			serial := first.Record.SerialHex
			if !again.SentAgain || again.Record.SerialHex != serial {
				t.Fatalf("answered with %s (sent again: %v), want %s sent again", again.Record.SerialHex, again.SentAgain, serial)
			}
			if len(sentAgain) != 1 || sentAgain[0].SerialHex != serial || sentAgain[0].Actor != "est:192.0.2.10" ||
				!strings.Contains(sentAgain[0].Detail, "for the same key and names, authorized the same way") || !strings.Contains(sentAgain[0].Detail, "authorized_by: ") {
				t.Fatalf("sent-again events %+v, want one naming %s, its requester and what authorized it", sentAgain, serial)
			}
			var results []string
			for _, o := range obs.got {
				results = append(results, o.Result)
			}
			if want := enroll.ResultIssued + "," + enroll.ResultReanswered; strings.Join(results, ",") != want {
				t.Errorf("outcomes %v, want %s", results, want)
			}
			if certs, _, _ := f.st.ListCertificates(ctx, store.CertFilter{}); len(certs) != 1 {
				t.Errorf("%d certificates recorded, want 1", len(certs))
			}
		})
	}
}

// userAsks is a first request of key k by evidence for CN=cn and dns.
func userAsks(evidence enroll.Evidence, cn string, dns ...string) func(*testing.T, *fixture, crypto.Signer) enroll.Request {
	return func(t *testing.T, _ *fixture, k crypto.Signer) enroll.Request {
		return estEnrollment(t, k, evidence, cn, dns...)
	}
}

// userAsksAgain is the request asked again, of the same key.
func userAsksAgain(evidence enroll.Evidence, cn string, dns ...string) func(*testing.T, *fixture, crypto.Signer, *enroll.Result) enroll.Request {
	return func(t *testing.T, _ *fixture, k crypto.Signer, _ *enroll.Result) enroll.Request {
		return estEnrollment(t, k, evidence, cn, dns...)
	}
}

func atProfile(profile string, ask func(*testing.T, *fixture, crypto.Signer) enroll.Request) func(*testing.T, *fixture, crypto.Signer) enroll.Request {
	return func(t *testing.T, f *fixture, k crypto.Signer) enroll.Request {
		req := ask(t, f, k)
		req.Profile = profile
		return req
	}
}

func atProfileAgain(profile string, ask func(*testing.T, *fixture, crypto.Signer, *enroll.Result) enroll.Request) func(*testing.T, *fixture, crypto.Signer, *enroll.Result) enroll.Request {
	return func(t *testing.T, f *fixture, k crypto.Signer, first *enroll.Result) enroll.Request {
		req := ask(t, f, k, first)
		req.Profile = profile
		return req
	}
}

// newESTResendFixture is a fixture whose default profile (the static
// challenge's, which also makes keys) and "other" take EST users bound to
// no profile, "fleet" and "other", and whose "mdm" asks hook.
func newESTResendFixture(t *testing.T, obs enroll.Observer, hook enroll.ChallengeVerifier) *fixture {
	t.Helper()
	def, other, mdm := pki.DefaultProfile(), pki.DefaultProfile(), pki.DefaultProfile()
	def.Name, def.ServerKeyGen = "default", true
	other.Name = "other"
	mdm.Name, mdm.ChallengeMode = "mdm", enroll.ChallengeWebhook
	f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"default": def, "other": other, "mdm": mdm},
		DefaultProfile: "default", Webhook: hook, Observer: obs})
	addESTUser(t, f, fleetUser.HTTPUser, fleetUser.HTTPPassword)
	addESTUser(t, f, otherUser.HTTPUser, otherUser.HTTPPassword)
	return f
}

func sentAgainEvents(t *testing.T, st store.Store) []pki.AuditEvent {
	t.Helper()
	evs, err := st.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventSentAgain, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// Copies of one EST simpleenroll (the same key, CSR and EST user) sent at
// once get one certificate, every copy that one: to one node on SQLite,
// and to two nodes on one PostgreSQL database.
func TestESTEnrollmentCopiesAtOnceGetOneCertificate(t *testing.T) {
	cases := []struct {
		name  string
		nodes func(t *testing.T) ([]*enroll.Service, store.Store)
	}{
		{"one node, SQLite", func(t *testing.T) ([]*enroll.Service, store.Store) {
			f := newESTResendFixture(t, nil, nil)
			return []*enroll.Service{f.svc}, f.st
		}},
		{"two nodes, PostgreSQL", func(t *testing.T) ([]*enroll.Service, store.Store) {
			url := pgtest.Database(t)
			dir := t.TempDir()
			clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
			var nodes []*enroll.Service
			var st store.Store
			for range 2 {
				auth, _, err := ca.LoadOrCreate(dir, ca.InitOptions{GenerateKey: testKeys.Generate}, clock)
				if err != nil {
					t.Fatal(err)
				}
				pg, err := postgres.Open(context.Background(), url)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { pg.Close() })
				svc, err := enroll.New(pg, auth, clock, slog.New(slog.DiscardHandler), enroll.Config{StaticChallenge: static})
				if err != nil {
					t.Fatal(err)
				}
				nodes, st = append(nodes, svc), pg
			}
			addESTUser(t, &fixture{st: st, clock: clock}, fleetUser.HTTPUser, fleetUser.HTTPPassword)
			return nodes, st
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			nodes, st := c.nodes(t)
			for round := range 3 {
				for _, ev := range []enroll.Evidence{fleetUser, staticEST} {
					req := estEnrollment(t, newKey(t), ev, fmt.Sprintf("est-copies-%d", round), "dev.example")
					results, errs := sendCopies(nodes, 6, req)
					checkOneCertificate(t, st, fmt.Sprintf("round %d (%s)", round, ev.HTTPUser), req, results, errs)
				}
			}
		})
	}
}

// An EST first enrollment by an EST user reads its request's certificates
// once, as a SCEP enrollment of a new transaction does, and once when it
// is asked again (answered from that look); one by a one-time challenge,
// found by what it used up, reads none.
func TestOneLookPerESTEnrollment(t *testing.T) {
	f := newESTResendFixture(t, nil, nil)
	st := &countedLookup{Store: f.st}
	svc, err := enroll.New(st, f.auth, f.clock, slog.New(slog.DiscardHandler), enroll.Config{StaticChallenge: static})
	if err != nil {
		t.Fatal(err)
	}
	secret, _, err := f.admin.NewChallenge(context.Background(), time.Hour, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	k := newKey(t)
	steps := []struct {
		name      string
		req       enroll.Request
		sentAgain bool
		reads     int32
	}{
		{"an EST user's new request", estEnrollment(t, k, fleetUser, "look"), false, 1},
		{"the same request again", estEnrollment(t, k, fleetUser, "look"), true, 1},
		{"a one-time challenge's", estEnrollment(t, newKey(t), enroll.Evidence{HTTPUser: "anyone", HTTPPassword: secret}, "look-otp"), false, 0},
	}
	for _, step := range steps {
		st.reads.Store(0)
		res, err := svc.Enroll(context.Background(), step.req)
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if res.SentAgain != step.sentAgain {
			t.Errorf("%s: sent again %v, want %v", step.name, res.SentAgain, step.sentAgain)
		}
		if n := st.reads.Load(); n != step.reads {
			t.Errorf("%s: %d reads of the request's certificates, want %d", step.name, n, step.reads)
		}
	}
}
