package enroll

import "time"

// SetClaimWait shortens how long a copy of a request waits for the
// certificate of the issuance that claimed its transaction.
func (s *Service) SetClaimWait(d time.Duration) { s.claimWait = d }

// AcceptedPasswordLifetime is how long New's default password checker
// remembers an accepted password.
const AcceptedPasswordLifetime = acceptedPasswordLifetime
