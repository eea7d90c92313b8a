package pki

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestUnavailable: an unreachable store is EUnavailable however it was
// wrapped on the way (plain, inside an EInternal pki.Error), and its
// message tells the client to come back, never the cause.
func TestUnavailable(t *testing.T) {
	cause := fmt.Errorf("%w: postgres: dial tcp 127.0.0.1:5432: connection refused", ErrUnavailable)
	for _, err := range []error{
		cause,
		fmt.Errorf("issue: %w", cause),
		Wrap(EInternal, cause, "recording the certificate"),
		// A request past its budget: a store that stopped answering.
		Wrap(EInternal, fmt.Errorf("sqlite: begin: %w", context.DeadlineExceeded), "recording the certificate"),
	} {
		if c := ErrorCode(err); c != EUnavailable {
			t.Errorf("ErrorCode(%v) = %s, want unavailable", err, c)
		}
		if m := ErrorMessage(err); m != "temporarily unavailable, try again later" {
			t.Errorf("ErrorMessage(%v) = %q", err, m)
		}
	}
	// A refusal by policy stays what it is, even with an unreachable
	// store somewhere in its chain.
	if c := ErrorCode(Wrap(EBadRequest, cause, "no")); c != EBadRequest {
		t.Errorf("a policy refusal became %s", c)
	}
	if c := ErrorCode(errors.New("boom")); c != EInternal {
		t.Errorf("a plain error is %s", c)
	}
}

// A 503's Retry-After is the error's own, when it has one, through any
// wrapping; otherwise the default for a passing outage.
func TestRetryAfter(t *testing.T) {
	long := Wrap(EUnavailable, errors.New("expired"), "the issuing CA is not valid now")
	long.RetryAfter = 15*time.Minute - time.Millisecond
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"own, rounded up", fmt.Errorf("enroll: %w", long), 900},
		{"none", Errorf(EUnavailable, "store down"), RetryAfterSeconds},
		{"plain", ErrUnavailable, RetryAfterSeconds},
	} {
		if got := RetryAfter(tc.err); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

// An error whose cause says what its message says reads it once (r139:
// an empty SCEP body was logged as "bad_request: the body is empty …:
// the body is empty …"); a cause of its own is kept.
func TestErrorSaysItsCauseOnce(t *testing.T) {
	same := errors.New("the body is empty")
	for _, tc := range []struct {
		err  error
		want string
	}{
		{Wrap(EBadRequest, same, same.Error()), "bad_request: the body is empty"},
		{Wrap(EBadRequest, errors.New("EOF"), "the body is empty"), "bad_request: the body is empty: EOF"},
		{Errorf(EForbidden, "no"), "forbidden: no"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%q, want %q", got, tc.want)
		}
	}
}
