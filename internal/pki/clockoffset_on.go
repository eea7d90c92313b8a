//go:build scepter_clockoffset

package pki

import (
	"fmt"
	"os"
	"time"
)

// clockOffset moves SystemClock by $SCEPTER_TEST_CLOCK_OFFSET (a Go
// duration such as 8760h) in builds with the test-only tag
// scepter_clockoffset. It is read once and never changes.
var clockOffset = func() time.Duration {
	v := os.Getenv("SCEPTER_TEST_CLOCK_OFFSET")
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		panic(fmt.Sprintf("SCEPTER_TEST_CLOCK_OFFSET=%q: %v", v, err))
	}
	return d
}()
