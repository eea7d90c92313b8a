package scepserver_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/scep"
)

// A one-time challenge used already, or locked after three uses for
// another identity, is refused with badRequest and a failInfoText saying
// which, in EST's words, not as a wrong challenge; and, found by its hash,
// it is no failed check: more tries than the lockout allows all say the
// same, none "too many failed attempts" (r75 D2).
func TestSpentChallengeSaysWhy(t *testing.T) {
	const subject, dns = "CN=device-1,O=Acme", "device-1.acme.example" // what build puts in the CSR
	for _, c := range []struct {
		name, want string
		spend      func(t *testing.T, ts *testServer, otp string)
	}{
		{"used", "this one-time challenge password was used already; ask for a new one", func(t *testing.T, ts *testServer, otp string) {
			msg, rep := ts.exchange(t, reqParams{challenge: otp, key: testKey(t, 0), txID: "tx-first"})
			ts.issuedCert(t, rep, msg.SignerCert, testKey(t, 0))
		}},
		{"locked", "this one-time challenge password is locked after 3 uses for another identity or profile; ask for a new one", func(t *testing.T, ts *testServer, otp string) {
			for i := range enroll.ChallengeLockAfter {
				_, rep := ts.exchange(t, reqParams{challenge: otp, key: testKey(t, 0), subject: "CN=someone-else", txID: fmt.Sprintf("tx-misuse-%d", i)})
				wantFailure(t, rep, scep.BadRequest)
				if !strings.Contains(rep.FailInfoText, "bound to another subject") {
					t.Fatalf("misuse %d: %q", i, rep.FailInfoText)
				}
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts := newTestServer(t, serverOptions{})
			otp, _, err := ts.Admin.NewChallengeFor(context.Background(), admin.ChallengeSpec{TTL: time.Hour, Subject: subject, DNSNames: []string{dns}, Actor: "test"})
			if err != nil {
				t.Fatal(err)
			}
			c.spend(t, ts, otp)
			for i := range 11 { // one more than the lockout's default
				_, rep := ts.exchange(t, reqParams{challenge: otp, key: testKey(t, 1), txID: fmt.Sprintf("tx-again-%d", i)})
				wantFailure(t, rep, scep.BadRequest)
				if rep.FailInfoText != c.want {
					t.Fatalf("try %d: failInfoText %q, want %q", i, rep.FailInfoText, c.want)
				}
			}
		})
	}
}
