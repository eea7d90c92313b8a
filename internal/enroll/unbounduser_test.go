package enroll_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// An EST user bound to no profile authenticates by a shared password, so
// it enrolls only where the profile's challenge mode takes a shared secret
// (static, any, or unset, which is any). At a profile that takes one-time
// challenges only, or asks its webhook, it would bypass what that profile
// asks of every request: it is refused there as forbidden (EST 403: the
// password was right, so it counts as no failure), told how to bind the
// user, with no certificate and without asking the webhook, at both entry
// points. A user bound to that profile is the operator's choice and
// enrolls, and a one-time challenge as the EST password still does.
func TestUnboundUserHonoursTheProfilesChallengeMode(t *testing.T) {
	profiles := map[string]pki.Profile{}
	for name, mode := range map[string]string{"any": enroll.ChallengeAny, "unset": "", "lab": enroll.ChallengeStatic,
		"vpn": enroll.ChallengeOneTime, "mdm": enroll.ChallengeWebhook} {
		p := pki.DefaultProfile()
		p.Name, p.ChallengeMode = name, mode
		profiles[name] = p
	}
	hook := &countingHook{secret: "webhook-secret"}
	f := newFixtureWith(t, enroll.Config{Profiles: profiles, DefaultProfile: "any", Webhook: hook})
	addESTUser(t, f, "fleet", "fleet-pass")
	addBoundESTUser(t, f, "vpn-fleet", "vpn-pass", "vpn")
	addBoundESTUser(t, f, "mdm-fleet", "mdm-pass", "mdm")
	ctx := context.Background()
	oneTime, _, err := f.admin.NewChallenge(ctx, time.Hour, "vpn", "test")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		profile, user, password string
		refusedFor              string // "": issued; else the mode named in the refusal
	}{
		{"any", "fleet", "fleet-pass", ""},
		{"unset", "fleet", "fleet-pass", ""},
		{"lab", "fleet", "fleet-pass", ""},
		{"vpn", "fleet", "fleet-pass", `challenge = "onetime"`},
		{"mdm", "fleet", "fleet-pass", `challenge = "webhook"`},
		{"vpn", "vpn-fleet", "vpn-pass", ""},
		{"mdm", "mdm-fleet", "mdm-pass", ""},
		{"vpn", "fleet", oneTime, ""},
	}
	c := &estClient{t: t, f: f, addr: attackerAddr}
	for _, entry := range []string{"check first", "enroll"} {
		for _, tt := range tests {
			if tt.password == oneTime && entry == "enroll" {
				continue // used up by the first entry
			}
			name := fmt.Sprintf("%s: %s at %s", entry, tt.user, tt.profile)
			before := certCount(t, f)
			err := c.basic(entry, tt.profile, tt.user, tt.password)
			issued := certCount(t, f) - before
			if tt.refusedFor == "" {
				if err != nil || issued != 1 {
					t.Errorf("%s: %v, %d certificates, want issued", name, err, issued)
				}
				continue
			}
			msg := pki.ErrorMessage(err)
			if pki.ErrorCode(err) != pki.EForbidden || issued != 0 {
				t.Errorf("%s: %v, %d certificates, want forbidden and none", name, err, issued)
				continue
			}
			for _, want := range []string{`"fleet"`, `profile "` + tt.profile + `"`, tt.refusedFor, "--profile " + tt.profile} {
				if !strings.Contains(msg, want) {
					t.Errorf("%s: refusal %q does not say %s", name, msg, want)
				}
			}
		}
	}
	if n := hook.calls.Load(); n != 0 {
		t.Errorf("the webhook was asked %d times, want never: no request here is its to judge", n)
	}
	// A policy refusal is no failed guess: however often the unbound user
	// asks at mdm, its password still enrolls where it may.
	for i := range 12 {
		if err := c.basic("check first", "mdm", "fleet", "fleet-pass"); pki.ErrorCode(err) != pki.EForbidden {
			t.Fatalf("try %d at mdm: %v, want forbidden", i, err)
		}
	}
	if err := c.basic("check first", "any", "fleet", "fleet-pass"); err != nil {
		t.Errorf("the unbound user at profile any after twelve refusals at mdm: %v, want issued", err)
	}
}

func certCount(t *testing.T, f *fixture) int {
	t.Helper()
	certs, _, err := f.st.ListCertificates(context.Background(), store.CertFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(certs)
}
