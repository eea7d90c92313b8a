package pki

import (
	"testing"
	"time"
)

func TestCeilSecond(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600))
	for _, tc := range []struct{ in, want time.Time }{
		{time.Time{}, time.Time{}},
		{at, at.UTC()},
		{at.Add(time.Nanosecond), at.UTC().Add(time.Second)},
		{at.Add(999 * time.Millisecond), at.UTC().Add(time.Second)},
	} {
		if got := CeilSecond(tc.in); !got.Equal(tc.want) || got.Location() != tc.want.Location() {
			t.Errorf("CeilSecond(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
