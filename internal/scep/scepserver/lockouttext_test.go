package scepserver_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/store"
)

// A lockout's failInfoText, its audit reason and its log line say which
// lock holds, until when: one profile's challenges from this address
// (another profile still enrolls from there), or, after failures at many
// profiles, the whole address; never the secrets tried (r123 D1).
func TestLockoutSaysWhichLockHolds(t *testing.T) {
	const limit = 2 // FailedAttemptsPerAddress: the address locks after 10 times as many
	profiles := map[string]pki.Profile{}
	for i := range 10 {
		p := pki.DefaultProfile()
		p.Name = fmt.Sprintf("p%d", i)
		profiles[p.Name] = p
	}
	for _, c := range []struct {
		name string
		// wrongAt are the profiles wrong challenges are sent to, limit at each.
		wrongAt []string
		want    string // the failInfoText's start; "try again after" and the lock's end follow
		// otherProfile still enrolls from the address.
		otherProfile bool
	}{
		{"one profile's challenges", []string{"p0"}, `too many failed attempts at the challenges of profile "p0" from this address`, true},
		{"the whole address", []string{"p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9"},
			"too many failed attempts from this address, for any user or challenge", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts := newTestServer(t, serverOptions{enroll: enroll.Config{Profiles: profiles, DefaultProfile: "p0", FailedAttemptsPerAddress: limit}})
			n := 0
			send := func(profile, challenge string) *scep.PKIMessage {
				n++
				_, rep := ts.exchange(t, reqParams{challenge: challenge, key: testKey(t, 0), subject: fmt.Sprintf("CN=device-%d", n),
					txID: fmt.Sprintf("tx-%d", n), path: "/scep/" + profile})
				return rep
			}
			var secrets []string
			for _, p := range c.wrongAt {
				for i := range limit {
					secret := fmt.Sprintf("wrong-%s-%d", p, i)
					secrets = append(secrets, secret)
					rep := send(p, secret)
					wantFailure(t, rep, scep.BadRequest)
					if strings.Contains(rep.FailInfoText, "too many failed attempts") {
						t.Fatalf("wrong challenge %s: %q, want no lockout yet", secret, rep.FailInfoText)
					}
				}
			}
			until := ts.Clock.Now().Add(time.Minute).UTC().Format(time.RFC3339) // the first lockout's length
			want := c.want + "; try again after " + until

			rep := send("p0", testChallenge)
			wantFailure(t, rep, scep.BadRequest)
			if rep.FailInfoText != want {
				t.Errorf("the right challenge while locked: failInfoText\n%q, want\n%q", rep.FailInfoText, want)
			}
			rep = send("p9", testChallenge+"-not-p9s") // p9 takes no static challenge: wrong there, or locked
			wantFailure(t, rep, scep.BadRequest)
			if locked := strings.Contains(rep.FailInfoText, "too many failed attempts"); locked == c.otherProfile {
				t.Errorf("another profile while %s is locked: %q", c.name, rep.FailInfoText)
			}

			evs, err := ts.Store.ListAudit(context.Background(), store.AuditFilter{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			var reasons []string
			for _, e := range evs {
				if strings.Contains(e.Reason, "too many failed attempts") {
					reasons = append(reasons, e.Reason)
				}
				for _, s := range append(secrets, testChallenge) {
					if strings.Contains(e.Reason+e.Detail, s) {
						t.Errorf("audit event %s tells the secret %q: %q %q", e.Type, s, e.Reason, e.Detail)
					}
				}
			}
			if len(reasons) == 0 || !strings.HasSuffix(reasons[0], want) {
				t.Errorf("lockout refusals audited %q, want one ending %q", reasons, want)
			}
		})
	}
}
