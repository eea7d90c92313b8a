package enroll

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/pki"
)

// MaxChallengeTTL bounds one-time challenges: they are bearer secrets.
const MaxChallengeTTL = 30 * 24 * time.Hour

// NewChallenge creates a one-time challenge valid for ttl, optionally bound
// to a profile, and returns the secret. Only its hash is stored.
func (s *Service) NewChallenge(ctx context.Context, ttl time.Duration, profile, actor string) (string, pki.Challenge, error) {
	if ttl <= 0 || ttl > MaxChallengeTTL {
		return "", pki.Challenge{}, pki.Errorf(pki.EBadRequest, "challenge lifetime must be between 1s and %s", MaxChallengeTTL)
	}
	if profile != "" {
		if _, ok := s.cfg.Profiles[profile]; !ok {
			return "", pki.Challenge{}, pki.Errorf(pki.EBadRequest, "unknown profile %q", profile)
		}
	}
	secret, err := randomHex(16)
	if err != nil {
		return "", pki.Challenge{}, err
	}
	id, err := randomToken(10)
	if err != nil {
		return "", pki.Challenge{}, err
	}
	now := s.clock.Now()
	ch := pki.Challenge{ID: id, Hash: HashChallenge(secret), Profile: profile, CreatedAt: now, ExpiresAt: now.Add(ttl), CreatedBy: actor}
	ev := pki.AuditEvent{Time: now, Type: pki.EventChallengeCreated, Actor: actor, Profile: profile, Outcome: "success",
		Detail: fmt.Sprintf("challenge %s expires %s", id, ch.ExpiresAt.Format(time.RFC3339))}
	if err := s.store.CreateChallenge(ctx, ch, ev); err != nil {
		return "", pki.Challenge{}, fmt.Errorf("enroll: store challenge: %w", err)
	}
	return secret, ch, nil
}

// randomToken returns n random bytes as unpadded upper-case base32: easy to
// type, no characters that URL or shell quoting would mangle.
func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("enroll: random: %w", err)
	}
	return strings.TrimRight(base32.StdEncoding.EncodeToString(b), "="), nil
}

// randomHex returns n random bytes as upper-case hex: one-time passwords
// look like NDES's (hex), which every MDM's NDES password parser accepts.
func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("enroll: random: %w", err)
	}
	return strings.ToUpper(hex.EncodeToString(b)), nil
}

// NewStaticChallenge returns a random secret suitable as the generated static
// challenge of a zero-config server.
func NewStaticChallenge() (string, error) { return randomToken(20) }
