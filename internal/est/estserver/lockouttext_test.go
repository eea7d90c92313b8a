package estserver_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/store"
)

// A lockout's 429 body and its audit reason say which lock holds, until
// when: one EST user's password from this address, or the profile's
// challenges (which an unknown user's password is tried as) from it, each
// while another user still enrolls from the address; or, after failures of
// many users, the whole address. They name neither the passwords tried
// nor the user name, which may be a password typed into its field (r123
// D1).
func TestLockoutSaysWhichLockHolds(t *testing.T) {
	const limit = 2 // FailedAttemptsPerAddress: the address locks after 10 times as many
	type try struct{ user, password string }
	var manyUsers []try
	for i := range 10 * limit {
		manyUsers = append(manyUsers, try{fmt.Sprintf("user-%d", i), fmt.Sprintf("wrong-password-%d", i)})
	}
	for _, c := range []struct {
		name  string
		users []string // EST users besides alice
		wrong []try    // the failed logins, in order
		// locked is the login refused as locked; want the 429's start:
		// "try again after" and the lock's end follow.
		locked try
		want   string
		// aliceEnrolls: another user still enrolls from the address.
		aliceEnrolls bool
	}{
		{"one user", []string{"dev1"}, []try{{"dev1", "wrong-password-a"}, {"dev1", "wrong-password-b"}},
			try{"dev1", "dev1-password"}, "too many failed attempts for this EST user name from this address", true},
		{"the profile's challenges", nil, []try{{"secret-typed-as-name-a", "wrong-password-a"}, {"secret-typed-as-name-b", "wrong-password-b"}},
			try{"secret-typed-as-name-c", "wrong-password-c"}, `too many failed attempts at the challenges of profile "default" from this address`, true},
		{"the whole address", func() []string {
			var names []string
			for _, u := range manyUsers {
				names = append(names, u.user)
			}
			return names
		}(), manyUsers, try{"alice", userPassword}, "too many failed attempts from this address, for any user or challenge", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, fixtureOptions{failureLimit: limit})
			for _, u := range c.users {
				addESTUser(t, f.st, f.clock, u, u+"-password", "")
			}
			cl := f.httpClient(nil, 0)
			n := 0
			body := func() []byte { n++; return newCSR(t, newKey(t), fmt.Sprintf("device-%d", n), csr.Template{}) }
			for _, w := range c.wrong {
				if r := f.post(cl, "simpleenroll", w.user, w.password, body(), nil); r.status != http.StatusUnauthorized && r.status != http.StatusTooManyRequests {
					t.Fatalf("%s's wrong password: HTTP %d %s", w.user, r.status, r.body)
				}
			}
			until := f.clock.Now().Add(time.Minute).UTC().Format(time.RFC3339) // the first lockout's length
			want := c.want + "; try again after " + until

			r := f.post(cl, "simpleenroll", c.locked.user, c.locked.password, body(), nil)
			if got := strings.TrimSpace(string(r.body)); r.status != http.StatusTooManyRequests || got != want {
				t.Errorf("%s while locked: HTTP %d\n%q, want 429\n%q", c.locked.user, r.status, got, want)
			}
			r = f.post(cl, "simpleenroll", "alice", userPassword, body(), nil)
			if got := r.status == http.StatusOK; got != c.aliceEnrolls {
				t.Errorf("another user at the address: HTTP %d %s", r.status, r.body)
			}

			evs, err := f.st.ListAudit(context.Background(), store.AuditFilter{Limit: 200})
			if err != nil {
				t.Fatal(err)
			}
			locked := 0
			for _, e := range evs {
				if strings.HasSuffix(e.Reason, want) {
					locked++
				}
				for _, w := range append(c.wrong, c.locked) {
					if strings.Contains(e.Reason, w.password) || strings.Contains(e.Reason, w.user) {
						t.Errorf("audit reason %q tells %q or %q", e.Reason, w.user, w.password)
					}
				}
			}
			if locked == 0 {
				t.Errorf("no lockout refusal audited as %q", want)
			}
		})
	}
}
