package enroll

import (
	"context"
	"fmt"

	"github.com/scepter/scepter/internal/pki"
)

// UndeliveredActor is the actor of the revocation of a certificate whose
// server-generated key could not be delivered: the server itself.
const UndeliveredActor = "system:serverkeygen"

// RevokeUndelivered revokes rec, a certificate just issued for a key the
// server made (EST serverkeygen), for cessationOfOperation when the reply
// that carries its key could not be built: the key is lost, so the
// certificate must not stay valid in the inventory (listings, expiry
// notifications) while the client, told to try again, gets another one.
// why says what failed; it goes into the audit event. Revoking again
// changes nothing.
func (s *Service) RevokeUndelivered(ctx context.Context, rec pki.Certificate, why string) error {
	now := s.clock.Now()
	reason, _ := pki.ReasonName(pki.ReasonCessationOfOperation)
	ev := pki.AuditEvent{Time: now, Type: pki.EventRevoked, Actor: UndeliveredActor, Profile: rec.Profile, SerialHex: rec.SerialHex,
		IssuerID: rec.IssuerID, Subject: rec.Subject, Outcome: "success", Reason: reason,
		Detail: "its server-generated key could not be delivered: " + pki.Clip(why, 200)}
	if _, _, err := s.store.RevokeCertificate(ctx, rec.IssuerID, rec.SerialHex, pki.ReasonCessationOfOperation, now, ev); err != nil {
		return fmt.Errorf("enroll: revoking %s, whose key could not be delivered: %w", pki.ShownSerial(rec.SerialHex), err)
	}
	return nil
}
