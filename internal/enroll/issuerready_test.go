package enroll_test

import (
	"context"
	"errors"
	"testing"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
)

// A node whose CA is not the store's current one (IssuerReady fails) issues
// nothing, and says "try again later", not a refusal the device takes as
// final; once ready again it issues.
func TestNoIssuanceWhileTheIssuerIsNotReady(t *testing.T) {
	notReady := errors.New("the store's current issuing CA is X, and this node lacks its keys")
	var ready error = notReady
	f := newFixtureWith(t, enroll.Config{IssuerReady: func(context.Context) error { return ready }})
	ctx := context.Background()
	_, err := f.svc.Enroll(ctx, named(t, static, "device-1", "device-1.example"))
	if pki.ErrorCode(err) != pki.EUnavailable || !errors.Is(err, notReady) {
		t.Fatalf("Enroll while not ready: %v, want unavailable", err)
	}
	ready = nil
	res, err := f.svc.Enroll(ctx, named(t, static, "device-1", "device-1.example"))
	if err != nil || res.Certificate == nil {
		t.Fatalf("Enroll once ready: %v", err)
	}
}
