package scepserver

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/ttlcache"
)

// passwordKeys keeps, for an hour, the KEK of each challenge that keyed an
// EC requester's reply.
//
// An EC requester receives its certificate in a password-based envelope
// keyed from its challenge (RFC 8894 §3.2.2). PBKDF2 at 100000 iterations
// costs some 20 ms of CPU, several times the rest of an enrollment, and a
// fleet of EC devices usually shares one static challenge: one derivation
// can serve all their replies (cms.PasswordKey says why sharing it is
// sound). Each derivation draws a new salt, so a challenge's salt changes
// at least hourly, and a challenge used once (a dynamic one) leaves with
// its hour or when the cache is full.
type passwordKeys struct {
	clock pki.Clock
	mac   []byte // keys the cache, so that the challenges themselves are not kept
	// iterations of PBKDF2; zero is cms's default (100000).
	iterations int
	keys       *ttlcache.Cache[passwordKeyID, *cms.PasswordKey]
}

type passwordKeyID struct {
	challenge [sha256.Size]byte // HMAC-SHA256 of the challenge under mac
	cipher    cms.ContentCipher
}

const (
	passwordKeyLifetime = time.Hour
	maxPasswordKeys     = 256
)

func newPasswordKeys(clock pki.Clock) (*passwordKeys, error) {
	mac := make([]byte, 32)
	if _, err := rand.Read(mac); err != nil {
		return nil, fmt.Errorf("scep: random: %w", err)
	}
	return &passwordKeys{clock: clock, mac: mac, keys: ttlcache.New[passwordKeyID, *cms.PasswordKey](maxPasswordKeys)}, nil
}

// get returns the KEK of challenge for replies under contentCipher,
// deriving it when none younger than an hour is kept. Requests that miss
// at once (a fleet's first replies, and each hour's first) share one
// derivation.
func (p *passwordKeys) get(challenge string, contentCipher cms.ContentCipher) (*cms.PasswordKey, error) {
	m := hmac.New(sha256.New, p.mac)
	m.Write([]byte(challenge))
	id := passwordKeyID{cipher: contentCipher}
	m.Sum(id.challenge[:0])
	now := p.clock.Now()
	return p.keys.Load(id, now, func() (*cms.PasswordKey, time.Time, error) {
		key, err := cms.NewPasswordKey([]byte(challenge), contentCipher, p.iterations)
		return key, now.Add(passwordKeyLifetime), err
	})
}
