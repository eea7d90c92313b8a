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

// CeilSecond is t rounded up to a whole second, in UTC (the zero time
// stays zero): a moment as a whole-second encoding (an OCSP answer's or a
// CRL's thisUpdate) may state it without dating anything before it.
func CeilSecond(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	if s := t.UTC().Truncate(time.Second); s.Before(t) {
		return s.Add(time.Second)
	}
	return t.UTC()
}
