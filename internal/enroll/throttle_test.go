package enroll_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
)

const attackerAddr = "198.51.100.66:4000"

// lockedOut reports whether the address is locked out for challenges: the
// static challenge, right as it is, is refused unchecked.
func lockedOut(t *testing.T, f *fixture) bool {
	t.Helper()
	r := named(t, static, "probe", "probe.example")
	r.RemoteAddr = attackerAddr
	_, err := f.svc.Enroll(context.Background(), r)
	return err != nil && strings.Contains(pki.ErrorMessage(err), "too many failed attempts")
}

// guess presents a wrong challenge from the attacker's address.
func guess(t *testing.T, f *fixture, i int) {
	t.Helper()
	r := named(t, fmt.Sprintf("guess-%d", i), "dev", "dev.example")
	r.RemoteAddr = attackerAddr
	if _, err := f.svc.Enroll(context.Background(), r); pki.ErrorCode(err) != pki.EUnauthorized {
		t.Fatalf("guess %d: %v, want unauthorized", i, err)
	}
}

// A challenge check forgets an address's failures only once the request
// is accepted: a used-up challenge asked again for other names, or a good
// challenge for a name the profile refuses, clears nothing.
func TestThrottleForgetsFailuresOnlyWhenAccepted(t *testing.T) {
	cases := []struct {
		name    string
		between func(t *testing.T, f *fixture, usedUp string, k enroll.Request) enroll.Request
		wantErr pki.Code // "" for accepted
		locked  bool     // after 4 guesses, this, and one guess more
	}{
		{"the right challenge", func(t *testing.T, f *fixture, _ string, _ enroll.Request) enroll.Request {
			return named(t, static, "dev-2", "dev-2.example")
		}, "", false},
		{"the lost answer asked again", func(t *testing.T, f *fixture, _ string, first enroll.Request) enroll.Request {
			return first
		}, "", false},
		{"the used-up challenge, the same key, other names", func(t *testing.T, f *fixture, usedUp string, _ enroll.Request) enroll.Request {
			return named(t, usedUp, "device-9", "device-10.example")
		}, pki.EForbidden, true},
		{"the right challenge for a name the profile refuses", func(t *testing.T, f *fixture, _ string, _ enroll.Request) enroll.Request {
			return named(t, static, "dev-3", "bank.test")
		}, pki.EBadRequest, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := pki.DefaultProfile()
			p.DNSPatterns = []string{`\.example$`}
			f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{p.Name: p}, DefaultProfile: p.Name, FailedAttemptsPerAddress: 5})
			ctx := context.Background()
			secret, _, err := f.admin.NewChallenge(ctx, time.Hour, "", "test")
			if err != nil {
				t.Fatal(err)
			}
			first := named(t, secret, "device-9", "device-9.example")
			first.RemoteAddr = attackerAddr
			if _, err := f.svc.Enroll(ctx, first); err != nil {
				t.Fatal(err)
			}
			for i := range 4 {
				guess(t, f, i)
			}
			between := c.between(t, f, secret, first)
			between.RemoteAddr = attackerAddr
			if _, err := f.svc.Enroll(ctx, between); (err == nil) != (c.wantErr == "") || (err != nil && pki.ErrorCode(err) != c.wantErr) {
				t.Fatalf("in between: %v, want %q", err, c.wantErr)
			}
			guess(t, f, 4)
			if got := lockedOut(t, f); got != c.locked {
				t.Errorf("locked out: %v, want %v", got, c.locked)
			}
		})
	}
}

type outcomes struct{ got []enroll.Outcome }

func (o *outcomes) Enrolled(out enroll.Outcome) { o.got = append(o.got, out) }

// A PKCSReq signed by a certificate of ours that cannot renew yet, and
// carrying a challenge (certmonger keeps the one of its first enrollment):
// the device is told the renewal's reason, so that is all that is counted,
// once: one outcome, one audit event, and no challenge failure against its
// address, however often it asks.
func TestRenewalFirstCountsWhatTheDeviceIsTold(t *testing.T) {
	cases := []struct {
		name      string
		challenge func(t *testing.T, f *fixture, usedUp string) string
		wantErr   pki.Code // "" for issued by the challenge
		// wantLocked: a guessed challenge still counts, or a holder of a
		// certificate that cannot renew could guess here unthrottled.
		wantLocked bool
	}{
		{"the used-up challenge of its first enrollment", func(t *testing.T, f *fixture, usedUp string) string { return usedUp }, pki.EBadTime, false},
		{"a wrong challenge", func(t *testing.T, f *fixture, _ string) string { return "not-a-challenge" }, pki.EBadTime, true},
		{"a valid one-time challenge", func(t *testing.T, f *fixture, _ string) string {
			secret, _, err := f.admin.NewChallenge(context.Background(), time.Hour, "", "test")
			if err != nil {
				t.Fatal(err)
			}
			return secret
		}, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			obs := &outcomes{}
			f := newFixtureWith(t, enroll.Config{FailedAttemptsPerAddress: 5, Observer: obs})
			ctx := context.Background()
			usedUp, _, err := f.admin.NewChallenge(ctx, time.Hour, "", "test")
			if err != nil {
				t.Fatal(err)
			}
			first := named(t, usedUp, "device-9", "device-9.example")
			first.RemoteAddr = attackerAddr
			issued, err := f.svc.Enroll(ctx, first)
			if err != nil {
				t.Fatal(err)
			}
			obs.got = nil
			const tries = 5 // the throttle's limit
			for i := range tries {
				r := namedWithKey(t, newKey(t), c.challenge(t, f, usedUp), "device-9", "device-9.example")
				r.RemoteAddr, r.TransactionID = attackerAddr, fmt.Sprintf("tx-%d", i)
				r.Evidence.SignerCert, r.RenewalFirst = issued.Certificate, true
				_, err := f.svc.Enroll(ctx, r)
				if (err == nil) != (c.wantErr == "") || (err != nil && pki.ErrorCode(err) != c.wantErr) {
					t.Fatalf("try %d: %v, want %q", i, err, c.wantErr)
				}
			}
			if len(obs.got) != tries {
				t.Errorf("%d outcomes for %d requests: %+v", len(obs.got), tries, obs.got)
			}
			for _, o := range obs.got {
				if c.wantErr != "" && (o.Result != enroll.ResultRefused || o.Code != c.wantErr) {
					t.Errorf("outcome %+v, want refused with %s", o, c.wantErr)
				}
			}
			if failed := auditTypes(t, f.st); c.wantErr != "" && countOf(failed, pki.EventEnrollFailed+"/failure") != tries {
				t.Errorf("audit trail %v, want one %s per request", failed, pki.EventEnrollFailed)
			}
			if got := lockedOut(t, f); got != c.wantLocked {
				t.Errorf("address locked out: %v, want %v", got, c.wantLocked)
			}
		})
	}
}

func countOf(list []string, v string) int {
	n := 0
	for _, s := range list {
		if s == v {
			n++
		}
	}
	return n
}

// The same for a device first enrolled at an approval profile: its
// one-time challenge was used up when its request was held, and the
// certificate issued on approval is what it was used for, so renewing too
// early with it (certmonger) counts no failure either.
func TestRenewalFirstAtAnApprovalProfileCountsNoUsedUpChallenge(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name, p.ChallengeMode, p.RequireApproval = "approval", enroll.ChallengeOneTime, true
	f := newFixtureWith(t, enroll.Config{FailedAttemptsPerAddress: 5,
		Profiles: map[string]pki.Profile{"approval": p, "default": pki.DefaultProfile()}, DefaultProfile: "default"})
	ctx := context.Background()
	secret, _, err := f.admin.NewChallenge(ctx, time.Hour, "approval", "test")
	if err != nil {
		t.Fatal(err)
	}
	first := named(t, secret, "device-9", "device-9.example")
	first.Profile, first.RemoteAddr = "approval", attackerAddr
	held, err := f.svc.Enroll(ctx, first)
	if err != nil || held.Pending == nil {
		t.Fatalf("first enrollment: %+v, %v; want held", held, err)
	}
	issued, err := f.svc.Approve(ctx, held.Pending.ID, "cli:test")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		r := namedWithKey(t, newKey(t), secret, "device-9", "device-9.example")
		r.Profile, r.RemoteAddr, r.TransactionID = "approval", attackerAddr, fmt.Sprintf("tx-%d", i)
		r.Evidence.SignerCert, r.RenewalFirst = issued.Certificate, true
		if _, err := f.svc.Enroll(ctx, r); pki.ErrorCode(err) != pki.EBadTime {
			t.Fatalf("try %d: %v, want badTime (outside the renewal window)", i, err)
		}
	}
	if lockedOut(t, f) {
		t.Error("the address is locked out for the used-up challenge of an approved request")
	}
}

// Failures count per IPv4 address (an IPv4-mapped IPv6 address as IPv4)
// and per IPv6 /64, as the request rate limit groups clients: a client
// given a /64 does not start a fresh count on each of its addresses.
func TestThrottleGroupsIPv6By64(t *testing.T) {
	cases := []struct {
		name    string
		guesses []string // the addresses of five wrong challenges
		probe   string   // the address then asking with the right one
		locked  bool
	}{
		{"one IPv4 address", []string{"198.51.100.7:1", "198.51.100.7:2", "198.51.100.7:3", "198.51.100.7:4", "198.51.100.7:5"},
			"198.51.100.7:6", true},
		{"five IPv4 addresses", []string{"198.51.100.1:1", "198.51.100.2:1", "198.51.100.3:1", "198.51.100.4:1", "198.51.100.5:1"},
			"198.51.100.5:2", false},
		{"five addresses of one IPv6 /64", []string{"[2001:db8:77:1:1::1]:1", "[2001:db8:77:1:2::1]:1", "[2001:db8:77:1:3::1]:1",
			"[2001:db8:77:1:4::1]:1", "[2001:db8:77:1:ffff:ffff:ffff:ffff]:1"}, "[2001:db8:77:1::99]:1", true},
		{"another /64 of the same /48", []string{"[2001:db8:77:1:1::1]:1", "[2001:db8:77:1:2::1]:1", "[2001:db8:77:1:3::1]:1",
			"[2001:db8:77:1:4::1]:1", "[2001:db8:77:1:5::1]:1"}, "[2001:db8:77:2::1]:1", false},
		{"IPv4-mapped IPv6 as IPv4", []string{"[::ffff:198.51.100.9]:1", "198.51.100.9:1", "[::ffff:198.51.100.9]:2",
			"198.51.100.9:2", "[::ffff:198.51.100.9]:3"}, "198.51.100.9:3", true},
		{"a zone is no other address", []string{"[fe80::1%eth0]:1", "[fe80::2%eth1]:1", "[fe80::3]:1", "[fe80::4%eth0]:1",
			"[fe80::5%eth2]:1"}, "[fe80::6]:1", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixtureWith(t, enroll.Config{FailedAttemptsPerAddress: 5})
			ctx := context.Background()
			for i, addr := range c.guesses {
				r := named(t, fmt.Sprintf("guess-%d", i), "dev", "dev.example")
				r.RemoteAddr = addr
				if _, err := f.svc.Enroll(ctx, r); pki.ErrorCode(err) != pki.EUnauthorized {
					t.Fatalf("guess %d from %s: %v, want unauthorized", i, addr, err)
				}
			}
			r := named(t, static, "probe", "probe.example")
			r.RemoteAddr = c.probe
			_, err := f.svc.Enroll(ctx, r)
			if got := err != nil && strings.Contains(pki.ErrorMessage(err), "too many failed attempts"); got != c.locked {
				t.Errorf("%s locked out: %v (%v), want %v", c.probe, got, err, c.locked)
			}
		})
	}
}
