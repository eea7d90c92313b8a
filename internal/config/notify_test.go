package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// Expiry notification keys of a profile: thresholds kept longest first,
// the default (30d, 7d, 1d) when unset, none with []; bad values are
// config errors that name the key.
func TestProfileNotify(t *testing.T) {
	profiles, err := parseProfiles(t, `
[profiles.plain]

[profiles.mail]
notify_before = ["1d", "30d", "36h", "90m"]
notify_to = ["pki@example.com", "PKI Team <team@example.com>"]
notify_owner = true

[profiles.silent]
notify_before = []
`)
	if err != nil {
		t.Fatal(err)
	}
	day := 24 * time.Hour
	if p := profiles["plain"]; !slices.Equal(p.NotifyBefore, []time.Duration{30 * day, 7 * day, day}) || p.NotifyTo != nil || p.NotifyOwner {
		t.Errorf("defaults: %v %v %v", p.NotifyBefore, p.NotifyTo, p.NotifyOwner)
	}
	p := profiles["mail"]
	if !slices.Equal(p.NotifyBefore, []time.Duration{30 * day, 36 * time.Hour, day, 90 * time.Minute}) {
		t.Errorf("notify_before %v, want longest first", p.NotifyBefore)
	}
	if !slices.Equal(p.NotifyTo, []string{"pki@example.com", "PKI Team <team@example.com>"}) || !p.NotifyOwner {
		t.Errorf("notify_to %v, notify_owner %v", p.NotifyTo, p.NotifyOwner)
	}
	if p := profiles["silent"]; len(p.NotifyBefore) != 0 {
		t.Errorf("notify_before = [] keeps %v", p.NotifyBefore)
	}

	for _, tc := range []struct{ body, want string }{
		{`notify_before = ["0d"]`, "notify_before"},
		{`notify_before = ["-1h"]`, "notify_before"},
		{`notify_before = ["soon"]`, "notify_before"},
		{`notify_before = ["7d", "168h"]`, "listed twice"},
		{`notify_to = ["not an address"]`, "notify_to"},
		{`notify_to = ["a@example.com", ""]`, "notify_to"},
		{`notify_to = "a@example.com"`, "notify_to"},
		{`notify_owner = "yes"`, "notify_owner"},
		{`notify_everyone = true`, "notify_everyone"},
	} {
		_, err := parseProfiles(t, "[profiles.p]\n"+tc.body+"\n")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.body, err, tc.want)
		}
	}
}
