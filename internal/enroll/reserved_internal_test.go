package enroll

import (
	"slices"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/config"
)

// The profile names config refuses are the ones the server lists its own
// certificates under.
func TestReservedProfileNamesAreTheServersOwn(t *testing.T) {
	for _, name := range []string{RAProfileName, serverProfile().Name, responderProfile("", time.Hour).Name} {
		if !slices.Contains(config.ReservedProfileNames, name) {
			t.Errorf("config.ReservedProfileNames lacks %q", name)
		}
		if _, err := (config.ProfileConfig{}).Profile(name); err == nil {
			t.Errorf("a profile named %q was accepted", name)
		}
	}
}
