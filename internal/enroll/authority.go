package enroll

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// What protocol handlers may know of the CA: the certificates they hand
// out and the SCEP RA. They never see the CA's types or keys beyond these.

// ActiveRA returns the RA in charge now (it follows a rollover's switch).
func (s *Service) ActiveRA() *pki.RA {
	_, ra := s.authority.Active(s.clock.Now())
	return ra
}

// NextRA returns the RA of the next issuing CA while a rollover is pending.
func (s *Service) NextRA() (*pki.RA, bool) {
	_, ra, ok := s.authority.Next(s.clock.Now())
	return ra, ok
}

// RAs returns every RA whose key is loaded (current, next, previous), so an
// envelope addressed to the RA of before a switch still opens.
func (s *Service) RAs() []*pki.RA { return s.authority.RAs() }

// CACerts returns what a client should trust for a profile: the chain of the
// issuing CA that serves it (issuing CA first, root last), then, during a
// rollover, the next issuing CA (signed by the same root, so no link
// certificates are needed).
func (s *Service) CACerts(profile string) ([]*x509.Certificate, error) {
	p, ok := s.Profile(profile)
	if !ok {
		return nil, pki.Errorf(pki.ENotFound, "unknown profile %q", profile)
	}
	now := s.clock.Now()
	issuer, err := s.issuerFor(p, now, false)
	if err != nil {
		return nil, err
	}
	certs := append([]*x509.Certificate(nil), issuer.Chain...)
	if next, _, ok := s.authority.Next(now); ok && p.Issuer == "" && next.ID != issuer.ID {
		certs = append(certs, next.Cert)
	}
	return certs, nil
}

// ForgetNonce forgets a pair RememberNonce remembered, for a message whose
// operation changed nothing and may be sent again.
func (s *Service) ForgetNonce(ctx context.Context, transactionID string, nonce []byte) error {
	if err := s.store.ForgetNonce(ctx, transactionID, nonce); err != nil {
		return fmt.Errorf("enroll: forget nonce: %w", err)
	}
	return nil
}

// MarkNonceRefused records that the run of the message whose pair
// RememberNonce remembered ended refused: its replays are refused at once
// (ReplayOfRefused), on every node of the store.
func (s *Service) MarkNonceRefused(ctx context.Context, transactionID string, nonce []byte) error {
	if err := s.store.MarkNonceRefused(ctx, transactionID, nonce); err != nil {
		return fmt.Errorf("enroll: mark nonce refused: %w", err)
	}
	return nil
}

// RememberNonce records a message's (transaction ID, sender nonce) pair for
// lifetime; a pair seen before is a replay, refused with EBadRequest, which
// says when the pair was first remembered (ReplayFirstSeen: its expiry less
// lifetime, so every node must remember pairs for the same lifetime, as
// they check signingTime against the same --max-clock-skew), and whether
// the run it was remembered for ended refused (ReplayOfRefused).
func (s *Service) RememberNonce(ctx context.Context, transactionID string, nonce []byte, lifetime time.Duration) error {
	now := s.clock.Now()
	err := s.store.RememberNonce(ctx, transactionID, nonce, now, now.Add(lifetime))
	var seen *store.NonceSeen
	if errors.As(err, &seen) {
		return errReplayedSince(seen.Expires.Add(-lifetime), seen.Refused)
	}
	if errors.Is(err, store.ErrConflict) {
		return errReplayed()
	}
	if err != nil {
		return fmt.Errorf("enroll: remember nonce: %w", err)
	}
	return nil
}
