package enroll

import "time"

// SetClaimWait shortens how long a copy of a request waits for the
// certificate of the issuance that claimed its transaction.
func (s *Service) SetClaimWait(d time.Duration) { s.claimWait = d }
