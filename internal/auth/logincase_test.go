package auth_test

import (
	"context"
	"errors"
	"testing"

	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/pki"
)

// A console login name is taken in any case, as its uniqueness and its
// removal are: "OP1" with op1's password was refused as an unknown name
// (r111). The session, the audit trail and the lockout name the user as
// stored.
func TestLoginTakesTheNameInAnyCase(t *testing.T) {
	a, _ := newAuth(t)
	ctx := context.Background()
	const pw = "operator-password-123"
	if _, err := a.AddUser(ctx, "Op1", pki.RoleOperator, pw, root); err != nil {
		t.Fatal(err)
	}
	for _, typed := range []string{"Op1", "op1", "OP1", "oP1"} {
		secret, ses, err := a.Login(ctx, typed, pw, "192.0.2.1")
		if err != nil || ses.User != "Op1" {
			t.Errorf("login as %q: %+v, %v", typed, ses, err)
			continue
		}
		pr, err := a.SessionPrincipal(ctx, secret)
		if err != nil || pr.Name != "Op1" || pr.Actor() != "console:Op1" {
			t.Errorf("login as %q: session principal %+v, %v", typed, pr, err)
		}
	}
	for _, typed := range []string{"op2", "Op1 ", "op"} {
		if _, _, err := a.Login(ctx, typed, pw, "192.0.2.1"); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("login as %q: %v, want the unknown name's refusal", typed, err)
		}
	}
	// Failures in any case count against the one user.
	for i, typed := range []string{"OP1", "op1", "oP1", "Op1", "OP1"}[:auth.LockAfter] {
		if _, _, err := a.Login(ctx, typed, "wrong password", "192.0.2.1"); err == nil {
			t.Fatalf("failure %d accepted", i+1)
		}
	}
	if _, _, err := a.Login(ctx, "op1", pw, "192.0.2.1"); !errors.Is(err, auth.ErrLocked) {
		t.Errorf("the right password after %d failures in mixed case: %v, want locked", auth.LockAfter, err)
	}
}
