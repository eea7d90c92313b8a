package agent

import (
	"crypto/x509"
	"time"
)

// RenewalPoint is when a certificate is due for renewal: renewBefore ahead
// of its NotAfter when positive, else at two thirds of its lifetime counted
// from NotBefore.
func RenewalPoint(c *x509.Certificate, renewBefore time.Duration) time.Time {
	if renewBefore > 0 {
		return c.NotAfter.Add(-renewBefore)
	}
	life := c.NotAfter.Sub(c.NotBefore)
	return c.NotBefore.Add(life / 3 * 2)
}

// Backoff is the wait before the next attempt after failures consecutive
// failures (1 for the first): initial doubled with each further failure, at
// most max, then jittered into [d/2, d) by jitter, a number in [0, 1). The
// jitter spreads a fleet that failed together (a server outage) over time.
func Backoff(failures int, initial, max time.Duration, jitter float64) time.Duration {
	if failures < 1 {
		failures = 1
	}
	d := initial
	for i := 1; i < failures && d < max; i++ {
		d *= 2
	}
	if d > max || d <= 0 {
		d = max
	}
	if jitter < 0 || jitter >= 1 {
		jitter = 0
	}
	half := d / 2
	return half + time.Duration(jitter*float64(d-half))
}

// loopShare: a renewed certificate whose renewal point comes within this
// share (1/loopShare) of its remaining life is due again at once, or
// nearly: renew_before close to or beyond the lifetime the server gives,
// or clocks that disagree.
const loopShare = 10

// LoopHold says whether cert, just renewed at now, would be renewed again
// at once or nearly (its renewal point, point, within a tenth of its
// remaining life: a point one second after the renewal escapes a test of
// "already past"), and if so how long to wait before its next renewal:
// retry_max, or a tenth of its remaining life when that is longer (so that
// a short-lived certificate is renewed at most about ten times in its
// life), but never more than half of it (so that it does not expire for
// want of a renewal).
func LoopHold(cert *x509.Certificate, point, now time.Time, retryMax time.Duration) (wait time.Duration, tooSoon bool) {
	remaining := cert.NotAfter.Sub(now)
	if remaining <= 0 {
		return retryMax, true
	}
	margin := remaining / loopShare
	if point.Sub(now) >= margin {
		return 0, false
	}
	return min(max(retryMax, margin), remaining/2), true
}
