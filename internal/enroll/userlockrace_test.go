package enroll_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/credential"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// hookedStore runs onUser, once, when an EST user is read: what other
// requests do while one request's password is being checked.
type hookedStore struct {
	store.Store
	onUser func()
}

func (h *hookedStore) ESTUser(ctx context.Context, name string) (*pki.ESTUser, error) {
	if f := h.onUser; f != nil {
		h.onUser = nil
		f()
	}
	return h.Store.ESTUser(ctx, name)
}

// An EST user's wrong passwords count against the user's lock and the
// profile's challenges' alike, so the two engage together. A request that
// passed the user's lock check just before the other requests' failures
// engaged them is refused, once its password is found wrong, naming the
// user's lock, the one its sender's passwords set, not "the challenges of
// profile" (r124 observation 6: one such refusal among a run's lockouts).
func TestWrongUserPasswordLockoutNamesTheUser(t *testing.T) {
	base := newFixtureWith(t, enroll.Config{})
	addESTUser(t, base, "fleet", "fleet-password")
	hooked := &hookedStore{Store: base.st}
	svc, err := enroll.New(hooked, base.auth, base.clock, slog.New(slog.DiscardHandler), enroll.Config{StaticChallenge: static,
		Passwords: credential.NewRememberingPasswordChecker(0, base.clock.Now, enroll.AcceptedPasswordLifetime).WithBurnHash(testBurnHash())})
	if err != nil {
		t.Fatal(err)
	}
	f := *base
	f.svc = svc
	def := pki.DefaultProfile().Name
	c := &estClient{t: t, f: &f, addr: attackerAddr}
	hooked.onUser = func() {
		// The fixture's limit: ten wrong ones lock the user (and the
		// challenges) out.
		for i := range 10 {
			if err := c.basic("enroll", def, "fleet", fmt.Sprintf("wrong-%d", i)); pki.ErrorCode(err) != pki.EUnauthorized || isLockedOut(err) {
				t.Errorf("wrong password %d: %v, want refused, not yet locked out", i, err)
			}
		}
	}
	err = c.basic("enroll", def, "fleet", "wrong-last")
	const want = "too many failed attempts for this EST user name from this address; try again after "
	if !isLockedOut(err) || !strings.HasPrefix(pki.ErrorMessage(err), want) {
		t.Errorf("the request checked as the lockout engaged: %v, want %q", err, want)
	}
	if hooked.onUser != nil {
		t.Error("the EST user was never read")
	}
}
