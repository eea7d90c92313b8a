package scepserver_test

import (
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/scep/scepserver"
)

// A clock skew beyond the limit is refused at start: the nonce lifetime is
// twice the skew, and near the largest Duration the doubling overflowed to
// a negative lifetime that forgot every nonce at once, so one captured
// PKCSReq issued a certificate each time it was replayed.
func TestClockSkewBeyondTheLimitIsRefused(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	for _, skew := range []time.Duration{scepserver.MaxClockSkewLimit + time.Second, time.Duration(math.MaxInt64 / 2), time.Duration(math.MaxInt64)} {
		if _, err := scepserver.New(ts.Service, ts.Clock, slog.New(slog.DiscardHandler), scepserver.Options{MaxClockSkew: skew}); err == nil {
			t.Errorf("New accepted a clock skew of %s", skew)
		}
	}
	if _, err := scepserver.New(ts.Service, ts.Clock, slog.New(slog.DiscardHandler), scepserver.Options{MaxClockSkew: scepserver.MaxClockSkewLimit}); err != nil {
		t.Errorf("New refused the largest skew allowed: %v", err)
	}
}
