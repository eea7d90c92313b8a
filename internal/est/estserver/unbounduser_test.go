package estserver_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// An EST user bound to no profile (alice) is refused at a profile that
// takes one-time challenges only: 403 with the reason, before the body is
// read (a body that is no CSR gets the same answer), and no certificate. A
// user bound to that profile enrolls there, and so does a one-time
// challenge as the password, whatever the user name; alice still enrolls
// at the default profile (challenge mode any).
func TestUnboundUserAtOneTimeProfileIsForbidden(t *testing.T) {
	f := newFixture(t, fixtureOptions{profiles: []pki.Profile{
		profile("vpn", func(p *pki.Profile) { p.ChallengeMode = enroll.ChallengeOneTime }),
	}})
	ctx := context.Background()
	c := f.httpClient(nil, 0)
	body := func(cn string) []byte { return newCSR(t, newKey(t), cn, csr.Template{}) }

	for _, b := range map[string][]byte{"a CSR": body("alice-vpn"), "no CSR": []byte("not base64 at all")} {
		r := f.post(c, "vpn/simpleenroll", "alice", userPassword, b, nil)
		wantStatus(t, r, http.StatusForbidden, `user "alice" is bound to no profile, and profile "vpn" takes one-time challenges only`)
		wantStatus(t, r, http.StatusForbidden, "--profile vpn")
	}
	if n := certCountAt(t, f, "vpn"); n != 0 {
		t.Fatalf("%d certificates at vpn after the refusals, want none", n)
	}

	addESTUser(t, f.st, f.clock, "vpn-fleet", "vpn-fleet-password", "vpn")
	f.issued(f.post(c, "vpn/simpleenroll", "vpn-fleet", "vpn-fleet-password", body("bound-vpn"), nil))
	otp, _, err := f.adm.NewChallenge(ctx, time.Hour, "vpn", "test")
	if err != nil {
		t.Fatal(err)
	}
	f.issued(f.post(c, "vpn/simpleenroll", "alice", otp, body("otp-vpn"), nil))
	f.issued(f.post(c, "simpleenroll", "alice", userPassword, body("alice-default"), nil))
}

func certCountAt(t *testing.T, f *fixture, profile string) int {
	t.Helper()
	certs, _, err := f.st.ListCertificates(context.Background(), store.CertFilter{Profile: profile, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(certs)
}
