package enroll

import (
	"context"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// checkWebhook asks the configured webhook whether the challenge is valid
// for this request; only an explicit allow lets it through.
func (s *Service) checkWebhook(ctx context.Context, st *State, challenge string) error {
	if s.cfg.Webhook == nil {
		return pki.Errorf(pki.EUnauthorized, "this profile's challenges are verified by a webhook, and none is configured")
	}
	req := st.Req.CSR
	sans := formatSANs(req.DNSNames, req.EmailAddresses, req.IPAddresses, req.URIs)
	allow, reason, err := s.cfg.Webhook.Verify(ctx, ChallengeCheck{
		Challenge: challenge, Subject: csr.NameString(req.RawSubject), SANs: sans,
		TransactionID: st.Req.TransactionID, Profile: st.Profile.Name, Protocol: string(st.Req.Protocol),
		RemoteAddr: pki.ClientHost(st.Req.RemoteAddr), KeyType: keys.KeyTypeOf(req.PublicKey), CSR: req.Raw,
	})
	if err != nil {
		// The webhook judged nothing (down, slow, a 500, a reply that is
		// no clear answer): the device should come back (503), and it is
		// no failed attempt of its address, which would lock out every
		// device behind it once the webhook is back.
		return pki.Wrap(pki.EUnavailable, err, "the challenge cannot be verified now; try again later")
	}
	if !allow {
		if reason == "" {
			reason = "challenge password is not valid"
		}
		return pki.Errorf(pki.EUnauthorized, "%s", reason)
	}
	return nil
}
