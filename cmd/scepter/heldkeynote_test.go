package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
)

// After a run that took up a held key fails, the advice about the key
// depends on what failed: only a request refused for good (rejected, or
// the key holding a request for other names) needs a new key; a refused
// challenge or password, or no answer, leaves the key the held request's,
// to keep.
func TestHeldKeyNoteAdvice(t *testing.T) {
	held := &heldKey{path: "/dev/key.pem"}
	const remove = "remove it and /dev/key.pem.request to make a new key"
	cases := []struct {
		name       string
		cause      error
		want       []string
		wantNot    []string
		wantRemove bool
	}{
		{"SCEP: rejected", &client.FailureError{FailInfo: scep.BadRequest, Text: "the request was rejected: not ours"},
			[]string{"refused for good", remove}, []string{"keep it"}, true},
		{"SCEP: another request of this key", &client.FailureError{FailInfo: scep.BadRequest, Text: "this transaction ID holds another request of this key (for CN=a), with other names"},
			[]string{remove}, []string{"keep it"}, true},
		{"SCEP: a wrong challenge", &client.FailureError{FailInfo: scep.BadRequest, Text: "challenge password is not valid"},
			[]string{"the challenge was refused, not the key", "keep it", "the right --challenge"}, []string{"remove"}, false},
		{"SCEP: no challenge", &client.FailureError{FailInfo: scep.BadRequest, Text: "a challenge password is required"},
			[]string{"keep it", "--challenge"}, []string{"remove"}, false},
		{"SCEP: locked out", &client.FailureError{FailInfo: scep.BadRequest, Text: "locked out after too many failed attempts until 2030-01-01T00:00:00Z"},
			[]string{"keep it", "again later"}, []string{"remove"}, false},
		{"SCEP: the server's lockout", &client.FailureError{FailInfo: scep.BadRequest, Text: "too many failed attempts from this address; try again after 2030-01-01T00:00:00Z"},
			[]string{"keep it", "again later"}, []string{"remove"}, false},
		{"SCEP: another refusal", &client.FailureError{FailInfo: scep.BadRequest, Text: "the subject attribute OU is not allowed"},
			[]string{"if the server rejected that request, remove it", "otherwise keep it"}, nil, false},
		{"EST: rejected", &client.HTTPError{Status: http.StatusForbidden, Reason: "the request was rejected: not ours"},
			[]string{"refused for good", remove}, []string{"keep it"}, true},
		{"EST: the key sent before with other names", &client.HTTPError{Status: http.StatusForbidden, Reason: "this key was sent before with other names (CN=a; request X, pending)"},
			[]string{remove}, []string{"keep it"}, true},
		{"EST: a wrong password", &client.HTTPError{Status: http.StatusUnauthorized, Reason: "user name or password is not valid"},
			[]string{"the credentials were refused, not the key", "keep it", "--user and password"}, []string{"remove"}, false},
		{"EST: locked out", &client.HTTPError{Status: http.StatusTooManyRequests, Reason: "locked out"},
			[]string{"keep it", "again later"}, []string{"remove"}, false},
		{"EST: server unavailable", &client.HTTPError{Status: http.StatusServiceUnavailable},
			[]string{"keep it", "again later"}, []string{"remove"}, false},
		{"EST: another refusal", &client.HTTPError{Status: http.StatusForbidden, Reason: "profile does not allow this"},
			[]string{"if the server rejected that request, remove it", "otherwise keep it"}, nil, false},
		{"SCEP: expired undecided", &client.FailureError{FailInfo: scep.BadRequest, Text: "request tx-1 expired at 2030-01-01T00:00:00Z without a decision (it was kept 168h0m0s for an approval); enroll again, with a new one-time challenge if it used one"},
			[]string{"expired before anyone decided it", remove}, []string{"keep it"}, true},
		{"EST: expired undecided", &client.HTTPError{Status: http.StatusForbidden, Reason: "request tx-1 expired at 2030-01-01T00:00:00Z without a decision (it was kept 168h0m0s for an approval); enroll again"},
			[]string{"expired before anyone decided it", remove}, []string{"keep it"}, true},
		{"SCEP: approved, then revoked before it was collected", &client.FailureError{FailInfo: scep.BadRequest, Text: "the certificate issued for this request, 0a1b, was revoked at 2030-01-01T00:00:00Z (keyCompromise) before it was collected; enroll again with a new key"},
			[]string{"refused for good", remove}, []string{"keep it"}, true},
		{"EST: approved, then revoked before it was collected", &client.HTTPError{Status: http.StatusForbidden, Reason: "the certificate issued for this request, 0a1b, was revoked at 2030-01-01T00:00:00Z (superseded) before it was collected; enroll again"},
			[]string{"refused for good", remove}, []string{"keep it"}, true},
		{"SCEP: the key revoked as compromised", &client.FailureError{FailInfo: scep.BadRequest, Text: "this key was revoked as compromised on 2030-01-01 (certificate 0a1b); enroll with a new key"},
			[]string{"refused for good", remove}, []string{"keep it"}, true},
		{"EST: the key revoked as compromised", &client.HTTPError{Status: http.StatusForbidden, Reason: "this key was revoked as compromised on 2030-01-01 (certificate 0a1b); enroll with a new key"},
			[]string{"refused for good", remove}, []string{"keep it"}, true},
		{"EST: approved, then put on hold", &client.HTTPError{Status: http.StatusForbidden, Reason: "the certificate issued for this request, 0a1b, is on hold (certificateHold) since 2030-01-01T00:00:00Z; ask the operator to lift the hold, then send the request again"},
			[]string{"keep it", "again later"}, []string{"remove"}, false},
		{"no answer", fmt.Errorf("POST: %w", errors.New("connection refused")),
			[]string{"keep it", "again later"}, []string{"remove"}, false},
	}
	for _, c := range cases {
		told := fmt.Errorf("enroll failed: %w", c.cause)
		got := heldKeyNote(told, c.cause, held)
		if !errors.Is(got, told) {
			t.Errorf("%s: %v does not wrap the failure", c.name, got)
		}
		msg := got.Error()
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: %q does not say %q", c.name, msg, w)
			}
		}
		for _, w := range c.wantNot {
			if strings.Contains(msg, w) {
				t.Errorf("%s: %q says %q", c.name, msg, w)
			}
		}
	}
	if err := heldKeyNote(nil, nil, held); err != nil {
		t.Errorf("no failure: %v", err)
	}
	pending := &client.PendingError{}
	if err := heldKeyNote(pending, pending, held); err != pending {
		t.Errorf("pending: %v, want it as it is", err)
	}
}

// The reviewer's scenario: a request held for approval and approved is
// asked for again with a wrong challenge (SCEP) or password (EST). The
// refusal says to keep the key and fix the challenge, not to remove the
// key; the key stays, and the run with the right challenge collects the
// approved certificate for it.
func TestHeldKeyKeptAfterAWrongChallenge(t *testing.T) {
	s := startServe(t, "[profiles.default]\napproval = true\n")
	d := t.TempDir()
	path := func(name string) string { return filepath.Join(d, name) }
	runWith := func(password string, args ...string) (string, error) {
		e, out, errb := testEnv(map[string]string{"SCEPTER_EST_PASSWORD": password})
		err := run(context.Background(), e, args)
		return out.String() + errb.String(), err
	}
	cases := []struct {
		name       string
		args       func(challenge string) []string
		password   func(challenge string) string
		keyOut     string
		wantAdvice string
	}{
		{"scep enroll", func(ch string) []string {
			return []string{"enroll", "--url", s.scepURL, "--challenge", ch, "--subject", "CN=held-wrong-challenge", "--key-type", "p256",
				"--out", path("cert.pem"), "--key-out", path("key.pem")}
		}, func(string) string { return "" }, path("key.pem"), "the right --challenge"},
		{"est enroll", func(string) []string {
			return []string{"est", "enroll", "--url", s.estURL, "--ca-fingerprint", s.fingerprint, "--subject", "CN=held-wrong-password",
				"--out", path("est.pem"), "--key-out", path("estkey.pem")}
		}, func(ch string) string { return ch }, path("estkey.pem"), "the right --user and password"},
	}
	for _, c := range cases {
		if out, err := runWith(c.password("test"), c.args("test")...); err == nil || !strings.Contains(err.Error(), "pending manual approval") {
			t.Fatalf("%s: %v, want the request held\n%s", c.name, err, out)
		}
		ids := s.pending(t)
		if len(ids) != 1 {
			t.Fatalf("%s: held requests %v, want one", c.name, ids)
		}
		s.approve(t, ids[0])
		heldKey := loadKey(t, c.keyOut).Public()

		out, err := runWith(c.password("wrong"), c.args("wrong")...)
		if err == nil {
			t.Fatalf("%s with a wrong challenge: issued\n%s", c.name, out)
		}
		if msg := err.Error(); !strings.Contains(msg, "keep it") || !strings.Contains(msg, c.wantAdvice) || strings.Contains(msg, "remove it") {
			t.Errorf("%s with a wrong challenge: %q; want it to say to keep the key and use %s, not to remove it", c.name, msg, c.wantAdvice)
		}
		if _, err := os.Stat(c.keyOut + heldMarkerSuffix); err != nil {
			t.Errorf("%s: the marker is gone after the refusal: %v", c.name, err)
		}
		if out, err := runWith(c.password("test"), c.args("test")...); err != nil {
			t.Fatalf("%s with the right challenge: %v\n%s", c.name, err, out)
		}
		if !pki.SamePublicKey(heldKey, loadKey(t, c.keyOut).Public()) {
			t.Errorf("%s: the certificate was collected with another key", c.name)
		}
	}
}

// The advice after a failure names the kept key as its marker says: the
// key of a request held for approval only when a hold was answered; a key
// kept by a run that got no certificate as that; an older build's marker
// in words that allow either (r112 D1). Each kind of failure keeps or
// removes the key whatever it was kept for.
func TestHeldKeyNoteSaysWhetherTheRequestWasHeld(t *testing.T) {
	kinds := []heldFailure{refusedOtherwise, refusedForGood, challengeRefused, credentialsRefused, notAnswered, otherAuthScheme, noPasswordRefused}
	for _, tc := range []struct {
		hold          holdState
		want, wantNot string
	}{
		{holdAnswered, "held for approval earlier", "got no certificate"},
		{holdNever, "by an earlier run that got no certificate", "held for approval"},
		{holdUnknown, "held for approval or whose answer was lost", "got no certificate"},
	} {
		for _, kind := range kinds {
			t.Run(fmt.Sprintf("hold %d, failure %d", tc.hold, kind), func(t *testing.T) {
				msg := heldKeyNoteFor(errors.New("enroll failed"), &heldKey{path: "/dev/key.pem", hold: tc.hold}, kind).Error()
				if !strings.Contains(msg, tc.want) || strings.Contains(msg, tc.wantNot) {
					t.Errorf("%q: want it to say %q, not %q", msg, tc.want, tc.wantNot)
				}
				keep, remove := strings.Contains(msg, "keep it"), strings.Contains(msg, "remove it")
				switch kind {
				case refusedForGood:
					if keep || !remove {
						t.Errorf("%q: want only to remove the key", msg)
					}
				case refusedOtherwise:
					if !keep || !remove {
						t.Errorf("%q: want to remove the key if rejected, else keep it", msg)
					}
				default:
					if !keep || remove {
						t.Errorf("%q: want only to keep the key", msg)
					}
				}
			})
		}
	}
}
