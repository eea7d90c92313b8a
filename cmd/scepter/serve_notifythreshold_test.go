package main

import (
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
)

// A profile whose validity is not longer than some of its notify_before
// thresholds never gets those sent: serve says so at start, naming the
// profile, its validity and those thresholds (r58 D4).
func TestThresholdsNotUnderValidityWarned(t *testing.T) {
	const day = 24 * time.Hour
	for _, tc := range []struct {
		name       string
		validity   time.Duration
		thresholds []time.Duration
		want       string // "" for no warning
	}{
		{"30 days, default thresholds", 30 * day, []time.Duration{30 * day, 7 * day, day}, "profile p (validity 30d): 30d;"},
		{"7 days, a 30d threshold", 7 * day, []time.Duration{30 * day}, "profile p (validity 7d): 30d;"},
		{"6 minutes", 6 * time.Minute, []time.Duration{5 * time.Minute, 10 * time.Minute, 6 * time.Minute}, "profile p (validity 6m): 10m, 6m;"},
		{"a year", 365 * day, []time.Duration{30 * day, 7 * day, day}, ""},
		{"no thresholds", day, nil, ""},
	} {
		p := pki.DefaultProfile()
		p.Name, p.Validity, p.NotifyBefore = "p", tc.validity, tc.thresholds
		w := thresholdsNotUnderValidity(map[string]pki.Profile{"p": p, "default": pki.DefaultProfile()})
		if tc.want == "" {
			if w != "" {
				t.Errorf("%s: warning %q, want none", tc.name, w)
			}
			continue
		}
		if !strings.Contains(w, tc.want) || !strings.Contains(w, "never sent") || strings.Contains(w, "profile default") {
			t.Errorf("%s: warning %q, want one naming %q", tc.name, w, tc.want)
		}
	}
}
