package pki

import "time"

// Clock is injected wherever time decides something (expiry, windows,
// challenge lifetimes), so tests never sleep.
type Clock interface {
	Now() time.Time
}

// SystemClock is the real clock. Builds with the test-only tag
// scepter_clockoffset move it by $SCEPTER_TEST_CLOCK_OFFSET, so the suite can
// be run as if on another date (Go reads the time without libc, so
// libfaketime cannot do this); ordinary builds never move it.
type SystemClock struct{}

// Now returns the current time in UTC.
func (SystemClock) Now() time.Time { return time.Now().Add(clockOffset).UTC() }
