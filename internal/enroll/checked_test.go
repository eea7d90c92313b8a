package enroll_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/credential"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// readCountingStore counts the reads of credentials: EST users and
// one-time challenges.
type readCountingStore struct {
	store.Store
	users, challenges atomic.Int32
}

func (c *readCountingStore) ESTUser(ctx context.Context, name string) (*pki.ESTUser, error) {
	c.users.Add(1)
	return c.Store.ESTUser(ctx, name)
}

func (c *readCountingStore) LookupChallenge(ctx context.Context, hash []byte, now time.Time) (*pki.Challenge, error) {
	c.challenges.Add(1)
	return c.Store.LookupChallenge(ctx, hash, now)
}

// An EST request authenticated by HTTP Basic reads its credentials once:
// Enroll decides on what CheckCredentials read (Request.Checked), for an
// EST user as for a one-time challenge given as the password. Without the
// CheckCredentials result it reads them itself, as before.
func TestCheckedCredentialsAreReadOnce(t *testing.T) {
	cases := []struct {
		name                  string
		challenge             bool // the password is a one-time challenge
		passChecked           bool // Enroll is given what CheckCredentials read
		wantUsers, wantChalls int32
	}{
		{"EST user, checked once", false, true, 1, 0},
		{"EST user, without the result", false, false, 2, 0},
		{"one-time challenge, checked once", true, true, 1, 1},
		{"one-time challenge, without the result", true, false, 2, 2},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, nil, "")
			counting := &readCountingStore{Store: f.st}
			svc, err := enroll.New(counting, f.auth, f.clock, slog.New(slog.DiscardHandler), enroll.Config{})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			user, password := "station", "station-password"
			if c.challenge {
				user = "device"
				if password, _, err = f.admin.NewChallenge(ctx, time.Hour, "", "test"); err != nil {
					t.Fatal(err)
				}
			} else {
				addESTUser(t, f, user, password)
			}
			ev := enroll.Evidence{HTTPUser: user, HTTPPassword: password}
			remote := "192.0.2.10:443"
			checked, err := svc.CheckCredentials(ctx, enroll.Request{Evidence: ev, Protocol: pki.ProtocolEST, RemoteAddr: remote})
			if err != nil {
				t.Fatal(err)
			}
			req := named(t, "", "checked-"+string(rune('a'+i)))
			req.Evidence, req.Protocol, req.RemoteAddr = ev, pki.ProtocolEST, remote
			if c.passChecked {
				req.Checked = checked
			}
			if _, err := svc.Enroll(ctx, req); err != nil {
				t.Fatal(err)
			}
			if u, ch := counting.users.Load(), counting.challenges.Load(); u != c.wantUsers || ch != c.wantChalls {
				t.Errorf("%d EST user reads, %d challenge reads; want %d and %d", u, ch, c.wantUsers, c.wantChalls)
			}
		})
	}
}

// What CheckCredentials read authenticates only the request it was read
// for, and only for a while: with another password, user, profile or
// address, or once it is older than CheckedCredentialsLifetime, Enroll
// checks everything itself. So passing it skips no check: a wrong
// password is refused, and a user removed meanwhile is unknown.
func TestCheckedCredentialsSkipNoCheck(t *testing.T) {
	other := pki.DefaultProfile()
	other.Name = "other"
	profiles := map[string]pki.Profile{"default": pki.DefaultProfile(), "other": other}
	cases := []struct {
		name   string
		change func(f *fixture, req *enroll.Request)
		want   pki.Code
	}{
		{"another password", func(_ *fixture, req *enroll.Request) { req.Evidence.HTTPPassword = "a-guess" }, pki.EUnauthorized},
		{"another user", func(_ *fixture, req *enroll.Request) { req.Evidence.HTTPUser = "nobody" }, pki.EUnauthorized},
		{"another profile", func(_ *fixture, req *enroll.Request) { req.Profile = "other" }, pki.EForbidden},
		{"another address, the user removed", func(f *fixture, req *enroll.Request) {
			req.RemoteAddr = "192.0.2.11:443"
			removeESTUser(t, f, "station")
		}, pki.EUnauthorized},
		{"too old, the user removed", func(f *fixture, req *enroll.Request) {
			f.clock.Advance(enroll.CheckedCredentialsLifetime + time.Second)
			removeESTUser(t, f, "station")
		}, pki.EUnauthorized},
		{"made by another service", func(f *fixture, req *enroll.Request) {
			g := newFixture(t, profiles, "default")
			addESTUser(t, g, "station", "station-password")
			checked, err := g.svc.CheckCredentials(context.Background(), enroll.Request{Evidence: req.Evidence, Protocol: pki.ProtocolEST, RemoteAddr: req.RemoteAddr})
			if err != nil {
				t.Fatal(err)
			}
			req.Checked = checked
			removeESTUser(t, f, "station")
		}, pki.EUnauthorized},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, profiles, "default")
			ctx := context.Background()
			addBoundESTUser(t, f, "station", "station-password", "default")
			req := named(t, "", "skip-"+string(rune('a'+i)))
			req.Evidence = enroll.Evidence{HTTPUser: "station", HTTPPassword: "station-password"}
			req.Protocol, req.RemoteAddr = pki.ProtocolEST, "192.0.2.10:443"
			checked, err := f.svc.CheckCredentials(ctx, enroll.Request{Evidence: req.Evidence, Protocol: pki.ProtocolEST, RemoteAddr: req.RemoteAddr})
			if err != nil || checked == nil {
				t.Fatalf("CheckCredentials: %v, %v", checked, err)
			}
			req.Checked = checked
			c.change(f, &req)
			if _, err := f.svc.Enroll(ctx, req); pki.ErrorCode(err) != c.want {
				t.Errorf("Enroll: %v, want %s", err, c.want)
			}
		})
	}
}

// addBoundESTUser stores an EST user bound to profile.
func addBoundESTUser(t *testing.T, f *fixture, name, password, profile string) {
	t.Helper()
	hash, err := credential.HashPasswordWithCost(password, testPasswordCost)
	if err != nil {
		t.Fatal(err)
	}
	now := f.clock.Now()
	if err := f.st.CreateESTUser(context.Background(), pki.ESTUser{Name: name, PasswordHash: hash, Profile: profile, CreatedAt: now, CreatedBy: "test"},
		pki.AuditEvent{Time: now, Type: pki.EventESTUserAdded, Actor: "test", Outcome: "success"}); err != nil {
		t.Fatal(err)
	}
}

func removeESTUser(t *testing.T, f *fixture, name string) {
	t.Helper()
	now := f.clock.Now()
	if err := f.st.DeleteESTUser(context.Background(), name, now, pki.AuditEvent{Time: now, Type: pki.EventESTUserRemoved, Actor: "test", Outcome: "success"}); err != nil {
		t.Fatal(err)
	}
}
