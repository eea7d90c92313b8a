package enroll_test

import (
	"context"
	"slices"
	"testing"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
)

// A refusal a protocol handler records is counted once, under its
// protocol, profile and code: a request the service never saw (EST's
// malformed body, at a path that names no profile: "unknown"), but not
// one the service counted already (AlreadyCounted: a poll's).
func TestRecordedRefusalIsCountedOnce(t *testing.T) {
	obs := &outcomes{}
	f := newFixtureWith(t, enroll.Config{Observer: obs})
	ctx := context.Background()
	bad := pki.Errorf(pki.EBadRequest, "the body is no base64")
	for _, r := range []enroll.Refusal{
		{Protocol: pki.ProtocolEST, Operation: "simpleenroll", RemoteAddr: "127.0.0.1:1", Err: bad},
		{Protocol: pki.ProtocolEST, Operation: "simpleenroll", RemoteAddr: "127.0.0.1:1", NoProfile: true, Err: bad},
		{Protocol: pki.ProtocolSCEP, Operation: "PKIOperation", RemoteAddr: "127.0.0.1:1", Err: enroll.AlreadyCounted(bad)},
	} {
		if err := f.svc.RecordRefusal(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	want := []enroll.Outcome{
		{Protocol: string(pki.ProtocolEST), Profile: "default", Result: enroll.ResultRefused, Code: pki.EBadRequest},
		{Protocol: string(pki.ProtocolEST), Profile: enroll.UnknownProfile, Result: enroll.ResultRefused, Code: pki.EBadRequest},
	}
	if !slices.Equal(obs.got, want) {
		t.Errorf("outcomes %+v, want %+v", obs.got, want)
	}
	if got := pki.ErrorMessage(enroll.AlreadyCounted(bad)); got != "the body is no base64" {
		t.Errorf("AlreadyCounted hides the refusal's message: %q", got)
	}
}
