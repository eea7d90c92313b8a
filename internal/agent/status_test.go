package agent

import (
	"testing"
	"time"
)

// A renewal less than a minute away reads in seconds, not "in 0m" (which
// reads as now).
func TestRelativeTimes(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{46 * time.Second, "in 46s"},
		{30 * time.Second, "in 30s"},
		{400 * time.Millisecond, "in 1s"},
		{59*time.Second + 500*time.Millisecond, "in 1m"},
		{90 * time.Second, "in 2m"},
		{3*time.Hour + 4*time.Minute, "in 3h04m"},
		{50 * time.Hour, "in 2d2h"},
		{0, "due now"},
		{-30 * time.Second, "due now"},
		{-2 * time.Hour, "due now, 2h00m ago"},
	} {
		if got := relative(tt.d, "due now"); got != tt.want {
			t.Errorf("relative(%s) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
