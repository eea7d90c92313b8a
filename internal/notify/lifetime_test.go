package notify_test

import (
	"slices"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
)

// TestThresholdNotShorterThanLifetimeNotSent: a threshold not shorter
// than the certificate's lifetime is crossed at issuance, and is not
// sent: a new 30-day certificate gets no "expires in 30 days" (its
// NotBefore set back 5 minutes for slow device clocks does not count as
// lifetime), but its 7d and 1d in their time. An imported certificate
// counts from its NotBefore: thresholds it crossed before the import
// still go out.
func TestThresholdNotShorterThanLifetimeNotSent(t *testing.T) {
	const backdate = 5 * time.Minute
	type check struct {
		at   time.Duration // after t0
		want []string      // webhook calls so far
	}
	tests := []struct {
		name     string
		validity time.Duration
		source   pki.Source
		// createdAfter is how long after NotBefore+backdate it was
		// recorded (an import, say); notBefore is t0-backdate.
		createdAfter time.Duration
		checks       []check
	}{
		{name: "30 days", validity: 30 * day, source: pki.SourceIssued, checks: []check{
			{time.Second, nil},
			{23*day - time.Minute, nil},
			{23*day + time.Minute, []string{"c1 7d"}},
			{29*day + time.Minute, []string{"c1 7d", "c1 1d"}},
		}},
		{name: "31 days", validity: 31 * day, source: pki.SourceIssued, checks: []check{
			{time.Second, nil},
			{day + time.Minute, []string{"c1 30d"}},
		}},
		{name: "7 days", validity: 7 * day, source: pki.SourceIssued, checks: []check{
			{time.Second, nil},
			{6*day + time.Minute, []string{"c1 1d"}},
		}},
		{name: "12 hours", validity: 12 * time.Hour, source: pki.SourceIssued, checks: []check{
			{time.Second, nil},
			{11 * time.Hour, nil},
		}},
		{name: "imported with 20 days left", validity: 20 * day, source: pki.SourceImported, createdAfter: 345 * day, checks: []check{
			{345*day + time.Second, []string{"c1 30d"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			st := e.open()
			s := e.scheduler(st, "node")
			notBefore := t0.Add(-backdate)
			notAfter := t0.Add(tt.validity)
			if tt.source == pki.SourceImported {
				notAfter = notAfter.Add(tt.createdAfter)
			}
			recorded := t0.Add(tt.createdAfter)
			cert(t, st, "c1", "default", recorded, notAfter, func(c *pki.Certificate) {
				c.NotBefore, c.CreatedAt, c.Source = notBefore, recorded, tt.source
			})
			for _, ck := range tt.checks {
				e.clock.Set(t0.Add(ck.at))
				runOnce(t, s)
				if _, hooks := e.sent(); !slices.Equal(hooks, ck.want) {
					t.Errorf("at t0+%v: webhook calls %q, want %q", ck.at, hooks, ck.want)
				}
			}
		})
	}
}
