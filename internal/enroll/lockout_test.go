package enroll_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/credential"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
)

// isLockedOut: err is the refusal of a locked-out address.
func isLockedOut(err error) bool {
	var lo *enroll.LockedOutError
	return errors.As(err, &lo) && strings.Contains(pki.ErrorMessage(err), "too many failed attempts")
}

// The reviewer's scenario: ten wrong challenges at the static challenge's
// profile lock that address out, but a usable one-time challenge, which
// cannot be guessed, still enrolls, at that profile and at another, and
// clears nothing: the static challenge stays locked out, as does a used-up
// one-time challenge; one bound to other names is refused for its binding,
// as anywhere.
func TestLockoutPassesOnlyUsableOneTimeChallenges(t *testing.T) {
	def, short := pki.DefaultProfile(), pki.DefaultProfile()
	short.Name, short.ChallengeMode = "short", enroll.ChallengeOneTime
	f := newFixtureWith(t, enroll.Config{DefaultProfile: def.Name, Profiles: map[string]pki.Profile{def.Name: def, short.Name: short}})
	ctx := context.Background()
	n := 0
	enrollAt := func(profile, challenge string, dns ...string) error {
		n++
		r := namedWithKey(t, newKey(t), challenge, fmt.Sprintf("dev-%d", n), dns...)
		r.Profile, r.RemoteAddr = profile, attackerAddr
		_, err := f.svc.Enroll(ctx, r)
		return err
	}
	oneTime := func(profile string) string {
		secret, _, err := f.admin.NewChallenge(ctx, time.Hour, profile, "test")
		if err != nil {
			t.Fatal(err)
		}
		return secret
	}
	for i := range 10 {
		if err := enrollAt(def.Name, fmt.Sprintf("wrong-%d", i)); pki.ErrorCode(err) != pki.EUnauthorized || isLockedOut(err) {
			t.Fatalf("wrong challenge %d: %v", i, err)
		}
	}
	if err := enrollAt(def.Name, static); !isLockedOut(err) {
		t.Fatalf("the static challenge after ten wrong ones: %v, want locked out", err)
	}
	if err := enrollAt(short.Name, oneTime(short.Name)); err != nil {
		t.Errorf("a fresh one-time challenge at another profile: %v, want issued", err)
	}
	if err := enrollAt(def.Name, oneTime(def.Name)); err != nil {
		t.Errorf("a fresh one-time challenge at the locked profile: %v, want issued", err)
	}
	// A one-time challenge found valid cleared nothing.
	if err := enrollAt(def.Name, static); !isLockedOut(err) {
		t.Errorf("the static challenge after one-time ones: %v, want still locked out", err)
	}
	used := oneTime(def.Name)
	if err := enrollAt(def.Name, used, "used.example"); err != nil {
		t.Fatal(err)
	}
	if err := enrollAt(def.Name, used, "other.example"); !isLockedOut(err) {
		t.Errorf("a used-up one-time challenge: %v, want locked out", err)
	}
	// One bound to other names is refused for its binding, as anywhere.
	bound, _, err := f.admin.NewChallengeFor(ctx, admin.ChallengeSpec{TTL: time.Hour, Profile: def.Name, DNSNames: []string{"bound.example"}, Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := enrollAt(def.Name, bound, "elsewhere.example"); pki.ErrorCode(err) != pki.EBadRequest || isLockedOut(err) {
		t.Errorf("a one-time challenge for other names: %v, want refused for its binding", err)
	}
	if err := enrollAt(def.Name, bound, "bound.example"); err != nil {
		t.Errorf("the bound challenge for its names: %v, want issued", err)
	}
}

// Over EST the one-time challenge is the Basic password: wrong passwords
// of a user lock the address out for that user's password, and for every
// password once they are many; a usable one-time challenge as the
// password still passes both CheckCredentials and Enroll, and clears
// nothing: the user's right password stays locked out.
func TestLockoutPassesOneTimeChallengesOverEST(t *testing.T) {
	cases := []struct {
		name           string
		users, perUser int // wrong passwords: of users "user-0" …, perUser each
	}{
		{"one user's password guessed", 1, 2},    // the user's limit
		{"many users' passwords guessed", 20, 1}, // the address's limit, 10 times the user's
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixtureWith(t, enroll.Config{FailedAttemptsPerAddress: 2})
			ctx := context.Background()
			hash, err := credential.HashPasswordWithCost("device-pass", testPasswordCost)
			if err != nil {
				t.Fatal(err)
			}
			now := f.clock.Now()
			for u := range c.users {
				if err := f.st.CreateESTUser(ctx, pki.ESTUser{Name: fmt.Sprintf("user-%d", u), PasswordHash: hash, CreatedAt: now, CreatedBy: "test"},
					pki.AuditEvent{Time: now, Type: pki.EventESTUserAdded, Actor: "test", Outcome: "success"}); err != nil {
					t.Fatal(err)
				}
			}
			n := 0
			basic := func(user, password string) error {
				n++
				r := namedWithKey(t, newKey(t), "", fmt.Sprintf("dev-%d", n))
				r.Evidence = enroll.Evidence{HTTPUser: user, HTTPPassword: password}
				r.Protocol, r.RemoteAddr = pki.ProtocolEST, attackerAddr
				checked, err := f.svc.CheckCredentials(ctx, r)
				if err != nil {
					return err
				}
				r.Checked = checked
				_, err = f.svc.Enroll(ctx, r)
				return err
			}
			// Each wrong password is a wrong challenge guess too: past
			// the limit the profile's challenges are locked out, and the
			// rest are refused so, each still a failed check of its
			// user's password, counted for the user and the address.
			wrong := 0
			for u := range c.users {
				for i := range c.perUser {
					err := basic(fmt.Sprintf("user-%d", u), fmt.Sprintf("wrong-%d", i))
					if pki.ErrorCode(err) != pki.EUnauthorized || isLockedOut(err) != (wrong >= 2) {
						t.Fatalf("user %d, wrong password %d: %v", u, i, err)
					}
					wrong++
				}
			}
			if err := basic("user-0", "device-pass"); !isLockedOut(err) {
				t.Fatalf("the user's right password after the wrong ones: %v, want locked out", err)
			}
			secret, _, err := f.admin.NewChallenge(ctx, time.Hour, "", "test")
			if err != nil {
				t.Fatal(err)
			}
			if err := basic("user-0", secret); err != nil {
				t.Errorf("a one-time challenge as the password: %v, want issued", err)
			}
			if err := basic("user-0", secret); !isLockedOut(err) {
				t.Errorf("the same challenge, used up: %v, want locked out", err)
			}
			if err := basic("user-0", "device-pass"); !isLockedOut(err) {
				t.Errorf("the user's right password after the challenge: %v, want still locked out", err)
			}
		})
	}
}

// Wrong challenges lock out the challenges of their own profile only: the
// static challenge's profile locked, another profile's webhook still
// enrolls from that address. Webhook profiles share one count, since one
// webhook judges them all and may take one secret at each.
func TestChallengeFailuresLockOutTheirProfileOnly(t *testing.T) {
	def, mdm, mdm2 := pki.DefaultProfile(), pki.DefaultProfile(), pki.DefaultProfile()
	mdm.Name, mdm.ChallengeMode = "mdm", enroll.ChallengeWebhook
	mdm2.Name, mdm2.ChallengeMode = "mdm2", enroll.ChallengeWebhook
	hook := &fakeHook{allow: true}
	f := newFixtureWith(t, enroll.Config{DefaultProfile: def.Name, Webhook: hook,
		Profiles: map[string]pki.Profile{def.Name: def, mdm.Name: mdm, mdm2.Name: mdm2}})
	ctx := context.Background()
	n := 0
	enrollAt := func(profile, challenge string) error {
		n++
		r := namedWithKey(t, newKey(t), challenge, fmt.Sprintf("dev-%d", n))
		r.Profile, r.RemoteAddr = profile, attackerAddr
		_, err := f.svc.Enroll(ctx, r)
		return err
	}
	wrong := func(profile string) {
		t.Helper()
		for i := range 10 {
			if err := enrollAt(profile, fmt.Sprintf("wrong-%d", i)); pki.ErrorCode(err) != pki.EUnauthorized || isLockedOut(err) {
				t.Fatalf("wrong challenge %d at %s: %v", i, profile, err)
			}
		}
	}
	wrong(def.Name)
	if err := enrollAt(def.Name, static); !isLockedOut(err) {
		t.Errorf("the static challenge after ten wrong ones: %v, want locked out", err)
	}
	if err := enrollAt(mdm.Name, "webhook-secret"); err != nil {
		t.Errorf("the webhook's challenge at another profile: %v, want issued", err)
	}
	hook.allow = false
	wrong(mdm.Name)
	hook.allow = true
	for _, p := range []string{mdm.Name, mdm2.Name} {
		if err := enrollAt(p, "webhook-secret"); !isLockedOut(err) {
			t.Errorf("the webhook's challenge at %s after ten wrong ones at %s: %v, want locked out", p, mdm.Name, err)
		}
	}
}
