package enroll_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
)

// countingHook is a webhook that allows one secret and counts its calls.
type countingHook struct {
	secret string
	calls  atomic.Int32
}

func (h *countingHook) Verify(_ context.Context, c enroll.ChallengeCheck) (bool, string, error) {
	h.calls.Add(1)
	return c.Challenge == h.secret, "", nil
}

// estClient enrolls at f's profiles over EST from one address, with HTTP
// Basic credentials, as the EST handler does: CheckCredentials before the
// body, then Enroll; or Enroll alone (entry "enroll").
type estClient struct {
	t    *testing.T
	f    *fixture
	addr string
	n    int
}

func (c *estClient) basic(entry, profile, user, password string) error {
	c.t.Helper()
	c.n++
	r := namedWithKey(c.t, newKey(c.t), "", fmt.Sprintf("est-dev-%d", c.n))
	r.Evidence = enroll.Evidence{HTTPUser: user, HTTPPassword: password}
	r.Protocol, r.Profile, r.RemoteAddr = pki.ProtocolEST, profile, c.addr
	ctx := context.Background()
	if entry != "enroll" {
		checked, err := c.f.svc.CheckCredentials(ctx, r)
		if err != nil {
			return err
		}
		r.Checked = checked
	}
	_, err := c.f.svc.Enroll(ctx, r)
	return err
}

func (c *estClient) scep(profile, challenge string) error {
	c.t.Helper()
	c.n++
	r := namedWithKey(c.t, newKey(c.t), challenge, fmt.Sprintf("scep-dev-%d", c.n))
	r.Profile, r.RemoteAddr = profile, c.addr
	_, err := c.f.svc.Enroll(context.Background(), r)
	return err
}

// The reviewer's first scenario: ten wrong SCEP challenges lock the
// default profile's challenges out, and the static challenge as the EST
// password, under a user name never used, is locked out too, at both
// entry points; a usable one-time challenge as the password still
// enrolls, as over SCEP, and an EST user's own password, which is no
// challenge, is not locked out by them.
func TestESTPasswordAsChallengeHonoursTheChallengeLockout(t *testing.T) {
	f := newFixtureWith(t, enroll.Config{})
	def := pki.DefaultProfile().Name
	addESTUser(t, f, "alice", "alice-pass")
	c := &estClient{t: t, f: f, addr: attackerAddr}
	for i := range 10 {
		if err := c.scep(def, fmt.Sprintf("wrong-%d", i)); pki.ErrorCode(err) != pki.EUnauthorized || isLockedOut(err) {
			t.Fatalf("wrong SCEP challenge %d: %v", i, err)
		}
	}
	for _, entry := range []string{"check first", "enroll"} {
		if err := c.basic(entry, def, "fresh-name-"+entry, static); !isLockedOut(err) {
			t.Errorf("%s: the static challenge as an EST password during the lockout: %v, want locked out", entry, err)
		}
		secret, _, err := f.admin.NewChallenge(context.Background(), time.Hour, def, "test")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.basic(entry, def, "another-name-"+entry, secret); err != nil {
			t.Errorf("%s: a usable one-time challenge as an EST password during the lockout: %v, want issued", entry, err)
		}
		if err := c.basic(entry, def, "alice", "alice-pass"); err != nil {
			t.Errorf("%s: an EST user's right password during the challenges' lockout: %v, want issued", entry, err)
		}
	}
	// The lock is the address's: the static challenge as an EST password
	// from elsewhere enrolls.
	other := &estClient{t: t, f: f, addr: "192.0.2.77:1000"}
	if err := other.basic("check first", def, "fresh-name", static); err != nil {
		t.Errorf("the static challenge as an EST password from another address: %v, want issued", err)
	}
}

// The reviewer's second scenario: wrong webhook challenges as EST
// passwords, each under a new user name, count against the webhook's
// challenges: the eleventh is refused as locked out (429 over EST) without
// asking the webhook, its right secret too, and so is the webhook's
// challenge over SCEP.
func TestWrongWebhookChallengesAsESTPasswordsLockOut(t *testing.T) {
	mdm := pki.DefaultProfile()
	mdm.Name, mdm.ChallengeMode = "mdm", enroll.ChallengeWebhook
	hook := &countingHook{secret: "webhook-secret"}
	f := newFixtureWith(t, enroll.Config{DefaultProfile: mdm.Name, Webhook: hook, Profiles: map[string]pki.Profile{mdm.Name: mdm}})
	c := &estClient{t: t, f: f, addr: attackerAddr}
	for i := range 10 {
		if err := c.basic("check first", mdm.Name, fmt.Sprintf("user-%d", i), fmt.Sprintf("wrong-%d", i)); pki.ErrorCode(err) != pki.EUnauthorized || isLockedOut(err) {
			t.Fatalf("wrong webhook challenge %d: %v, want refused, not yet locked out", i, err)
		}
	}
	if n := hook.calls.Load(); n != 10 {
		t.Fatalf("the webhook was asked %d times for ten wrong challenges, want 10", n)
	}
	for i, password := range []string{"wrong-10", "wrong-11", hook.secret} {
		if err := c.basic("check first", mdm.Name, fmt.Sprintf("user-%d", 10+i), password); !isLockedOut(err) {
			t.Errorf("EST password %d after ten wrong ones: %v, want locked out", 10+i, err)
		}
	}
	if err := c.basic("enroll", mdm.Name, "user-13", hook.secret); !isLockedOut(err) {
		t.Errorf("the webhook's secret to Enroll alone during the lockout: %v, want locked out", err)
	}
	if err := c.scep(mdm.Name, hook.secret); !isLockedOut(err) {
		t.Errorf("the webhook's secret over SCEP after ten wrong EST passwords: %v, want locked out", err)
	}
	if n := hook.calls.Load(); n != 10 {
		t.Errorf("the webhook was asked %d times, want 10: not during the lockout", n)
	}
}

// A password accepted as a one-time challenge is that challenge's, not
// the user's: it clears none of the user's failures, so a valid challenge
// buys no further guesses at a user's password.
func TestChallengeAsESTPasswordClearsNotTheUsersFailures(t *testing.T) {
	f := newFixtureWith(t, enroll.Config{FailedAttemptsPerAddress: 2})
	def := pki.DefaultProfile().Name
	addESTUser(t, f, "alice", "alice-pass")
	c := &estClient{t: t, f: f, addr: attackerAddr}
	if err := c.basic("check first", def, "alice", "wrong-0"); pki.ErrorCode(err) != pki.EUnauthorized || isLockedOut(err) {
		t.Fatalf("a wrong password: %v", err)
	}
	secret, _, err := f.admin.NewChallenge(context.Background(), time.Hour, def, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.basic("check first", def, "alice", secret); err != nil {
		t.Fatalf("a one-time challenge as alice's password: %v", err)
	}
	if err := c.basic("check first", def, "alice", "wrong-1"); pki.ErrorCode(err) != pki.EUnauthorized {
		t.Fatalf("a second wrong password: %v", err)
	}
	if err := c.basic("check first", def, "alice", "alice-pass"); !isLockedOut(err) {
		t.Errorf("alice's right password after two wrong ones, a challenge between them: %v, want locked out", err)
	}
}

// downHook is a challenge webhook that cannot be reached (a 5xx, a
// timeout, a redirect: the Webhook's error).
type downHook struct{ calls atomic.Int32 }

func (h *downHook) Verify(context.Context, enroll.ChallengeCheck) (bool, string, error) {
	h.calls.Add(1)
	return false, "", errors.New("webhook: HTTP 500")
}

// A webhook that cannot answer makes an EST password at a webhook profile
// unavailable (503, come back later), as over SCEP and as docs/webhook.md
// says: not "user name or password is not valid" (401, which clients take
// as final), and not a failed check of the address, so a webhook outage
// locks no device out once it is over (r58).
func TestWebhookOutageIsNoWrongESTPassword(t *testing.T) {
	mdm := pki.DefaultProfile()
	mdm.Name, mdm.ChallengeMode = "mdm", enroll.ChallengeWebhook
	down := &downHook{}
	f := newFixtureWith(t, enroll.Config{DefaultProfile: mdm.Name, Webhook: down, Profiles: map[string]pki.Profile{mdm.Name: mdm}})
	c := &estClient{t: t, f: f, addr: attackerAddr}
	for i := range 15 {
		err := c.basic("check first", mdm.Name, fmt.Sprintf("user-%d", i), "the-right-secret")
		if pki.ErrorCode(err) != pki.EUnavailable || isLockedOut(err) {
			t.Fatalf("EST password %d while the webhook is down: %v, want unavailable, not locked out", i, err)
		}
	}
	if n := down.calls.Load(); n != 15 {
		t.Errorf("the webhook was asked %d times, want 15 (no lockout)", n)
	}
}
