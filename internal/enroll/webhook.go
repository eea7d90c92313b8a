package enroll

import (
	"context"

	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// checkWebhook asks the configured webhook whether the challenge is valid
// for this request; only an explicit allow lets it through.
func (s *Service) checkWebhook(ctx context.Context, st *State) error {
	req := st.Req.CSR
	sans := formatSANs(req.DNSNames, req.EmailAddresses, req.IPAddresses, req.URIs)
	allow, reason, err := s.cfg.Webhook.Verify(ctx, ChallengeCheck{
		Challenge: st.Req.Evidence.Challenge, Subject: req.Subject.String(), SANs: sans,
		TransactionID: st.Req.TransactionID, Profile: st.Profile.Name, Protocol: string(st.Req.Protocol),
		RemoteAddr: clientHost(st.Req.RemoteAddr), KeyType: keys.KeyTypeOf(req.PublicKey), CSR: req.Raw,
	})
	if err != nil {
		return pki.Wrap(pki.EBadRequest, err, "the challenge could not be verified")
	}
	if !allow {
		if reason == "" {
			reason = "challenge password is not valid"
		}
		return pki.Errorf(pki.EBadRequest, "%s", reason)
	}
	return nil
}
