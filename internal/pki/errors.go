// Package pki holds scepter's domain types: certificates, challenges, audit
// events, profiles and the closed set of error codes. It imports no driver and
// no net/http, so every other package can depend on it.
package pki

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Code is a closed set of failure classes. Each protocol maps a Code to its
// own answer at the edge (a SCEP failInfo, an EST HTTP status, an API error).
type Code string

const (
	// EBadRequest: the request is understood but refused by policy
	// (wrong challenge, disallowed key, profile rule). SCEP badRequest.
	EBadRequest Code = "bad_request"
	// EBadMessageCheck: integrity failed (signature, decryption). SCEP badMessageCheck.
	EBadMessageCheck Code = "bad_message_check"
	// EBadAlg: an algorithm we do not support or do not allow. SCEP badAlg.
	EBadAlg Code = "bad_alg"
	// EBadTime: a time check failed (signingTime skew, expired signer, outside a window). SCEP badTime.
	EBadTime Code = "bad_time"
	// EBadCertID: the certificate named or used is not known to us or is revoked. SCEP badCertId.
	EBadCertID Code = "bad_cert_id"
	// EUnauthorized: no acceptable authentication evidence. SCEP badRequest, EST 401/403.
	EUnauthorized Code = "unauthorized"
	// EForbidden: authenticated, but not allowed this (a role that lacks
	// it). API 403.
	EForbidden Code = "forbidden"
	// ENotFound: a named object does not exist.
	ENotFound Code = "not_found"
	// EConflict: a uniqueness rule was hit (replayed nonce, duplicate serial, consumed challenge).
	EConflict Code = "conflict"
	// EInternal: our fault; never carries details to the client.
	EInternal Code = "internal"
	// EUnavailable: a dependency (the store) cannot be reached for now;
	// the same request may succeed later. HTTP 503 with Retry-After, never
	// a SCEP FAILURE (a device takes that as final).
	EUnavailable Code = "unavailable"
)

// ErrUnavailable marks an error that means "cannot be reached for now" (a
// database down or restarting). Stores wrap it; ErrorCode reports it as
// EUnavailable however the error was wrapped on the way.
var ErrUnavailable = errors.New("temporarily unavailable")

// Error is the one error type that crosses from the service to a protocol
// handler. Message is safe to show to a client; Err is internal and only logged.
type Error struct {
	Code    Code
	Message string
	Err     error
	// OperatorReason, when set, is what the log and the audit trail say
	// instead of Message: the real cause of a refusal whose client is
	// told less on purpose (SCEP answers every failure after decryption
	// alike, no oracle), so that the operator is not told the same.
	OperatorReason string
	// RetryAfter, for EUnavailable, is how long a client should wait
	// before it asks again, when that is known to be longer than
	// RetryAfterSeconds (zero: RetryAfterSeconds).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	// A cause whose text is the message (a handler's own error, shown to
	// its client as it is) is not said twice.
	if e.Err != nil && e.Err.Error() != e.Message {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an Error whose message is shown to clients.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap attaches an internal cause to a client-safe message.
func Wrap(code Code, err error, message string) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// ErrorCode returns the Code of err, or EInternal for plain Go errors.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) && e.Code != EInternal {
		return e.Code
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		// A request past its budget (a store that stopped answering):
		// come back later.
		return EUnavailable
	}
	return EInternal
}

// ErrorMessage returns the client-safe message of err; plain Go errors are
// never shown, so they become a generic text.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Code != EInternal {
		return e.Message
	}
	if ErrorCode(err) == EUnavailable {
		return "temporarily unavailable, try again later"
	}
	return "internal error"
}

// OperatorReason is the reason the log and the audit trail give for err:
// its OperatorReason when it has one, else ErrorMessage.
func OperatorReason(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Code != EInternal && e.OperatorReason != "" {
		return e.OperatorReason
	}
	return ErrorMessage(err)
}

// RetryAfterSeconds is the Retry-After the protocol edges send with a 503
// for EUnavailable: long enough for a database restart or failover.
const RetryAfterSeconds = 5

// RetryAfter is the Retry-After, in whole seconds, the protocol edges send
// with a 503 for err: the error's own RetryAfter when it has one (an
// issuing CA out of its validity, which only the operator mends, so that
// a fleet does not ask every few seconds until then), else
// RetryAfterSeconds.
func RetryAfter(err error) int {
	var e *Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		return int((e.RetryAfter + time.Second - 1) / time.Second)
	}
	return RetryAfterSeconds
}

// StatusClientGone is the status the protocol edges record (nginx's 499)
// for a request whose client closed the connection before the answer: no
// server fault, and nobody reads it.
const StatusClientGone = 499

// ClientGone reports whether err ended a request because its client went
// away (its context canceled), not because anything failed here.
func ClientGone(ctx context.Context, err error) bool {
	return ctx.Err() != nil && errors.Is(err, context.Canceled)
}
