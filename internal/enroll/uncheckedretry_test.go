package enroll_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/scepter/scepter/internal/credential"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
)

// The reviewer's scenario (r57 D8): a client that sends wrong passwords
// under unknown user names at one profile locks that profile's challenges
// out after ten; its retries, refused unchecked during the lockout, are no
// failed checks, so two hundred of them do not lock the address out for
// an EST user of another profile. A hundred failed checks (ten at each of
// ten profiles) still do, retried or not in between.
func TestRetriesRefusedUncheckedDoNotLockOutTheAddress(t *testing.T) {
	cases := []struct {
		name       string
		profiles   int // wrong passwords at profiles p0 …, ten at each
		retries    int // after each profile's ten, refused unchecked
		wantLocked bool
	}{
		{"ten failures, then two hundred retries", 1, 200, false},
		{"ten failures at each of ten profiles", 10, 0, true},
		{"ten failures and two retries at each of ten profiles", 10, 2, true},
	}
	hash, err := credential.HashPasswordWithCost("fleet-pass", testPasswordCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			def := pki.DefaultProfile()
			profiles := map[string]pki.Profile{def.Name: def}
			for i := range c.profiles {
				p := pki.DefaultProfile()
				p.Name = fmt.Sprintf("p%d", i)
				profiles[p.Name] = p
			}
			f := newFixtureWith(t, enroll.Config{DefaultProfile: def.Name, Profiles: profiles})
			ctx := context.Background()
			now := f.clock.Now()
			if err := f.st.CreateESTUser(ctx, pki.ESTUser{Name: "fleet", PasswordHash: hash, Profile: def.Name, CreatedAt: now, CreatedBy: "test"},
				pki.AuditEvent{Time: now, Type: pki.EventESTUserAdded, Actor: "test", Outcome: "success"}); err != nil {
				t.Fatal(err)
			}
			n := 0
			basic := func(profile, user, password string) error {
				n++
				r := namedWithKey(t, newKey(t), "", fmt.Sprintf("dev-%d", n))
				r.Evidence = enroll.Evidence{HTTPUser: user, HTTPPassword: password}
				r.Profile, r.Protocol, r.RemoteAddr = profile, pki.ProtocolEST, attackerAddr
				checked, err := f.svc.CheckCredentials(ctx, r)
				if err != nil {
					return err
				}
				r.Checked = checked
				_, err = f.svc.Enroll(ctx, r)
				return err
			}
			for p := range c.profiles {
				profile := fmt.Sprintf("p%d", p)
				for i := range 10 {
					err := basic(profile, fmt.Sprintf("v%d-%d", p, i), "wrong")
					if pki.ErrorCode(err) != pki.EUnauthorized || isLockedOut(err) {
						t.Fatalf("wrong password %d at %s: %v, want refused for the password", i, profile, err)
					}
				}
				for i := range c.retries {
					if err := basic(profile, fmt.Sprintf("w%d-%d", p, i), "wrong"); !isLockedOut(err) {
						t.Fatalf("retry %d at %s: %v, want locked out", i, profile, err)
					}
				}
			}
			err := basic(def.Name, "fleet", "fleet-pass")
			switch {
			case c.wantLocked && !isLockedOut(err):
				t.Errorf("fleet's right password at %s: %v, want locked out (a hundred failed checks)", def.Name, err)
			case !c.wantLocked && err != nil:
				t.Errorf("fleet's right password at %s: %v, want issued (only profile p0's challenges are locked)", def.Name, err)
			}
		})
	}
}
