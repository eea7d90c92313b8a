package admin

import (
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

// A one-time challenge for a profile that never takes one (static, or a
// webhook's) could never be used: it is refused when asked for.
func TestTakesOneTimeChallenges(t *testing.T) {
	for mode, ok := range map[string]bool{"": true, "any": true, "onetime": true, "static": false, "webhook": false} {
		err := TakesOneTimeChallenges(pki.Profile{Name: "p", ChallengeMode: mode})
		if (err == nil) != ok || (err != nil && pki.ErrorCode(err) != pki.EBadRequest) {
			t.Errorf("challenge mode %q: %v, want ok %v", mode, err, ok)
		}
	}
}
