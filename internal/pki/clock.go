package pki

import "time"

// Clock is injected wherever time decides something (expiry, windows,
// challenge lifetimes), so tests never sleep.
type Clock interface {
	Now() time.Time
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns the current time in UTC.
func (SystemClock) Now() time.Time { return time.Now().UTC() }
