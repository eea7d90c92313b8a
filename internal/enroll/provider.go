package enroll

import "context"

// ChallengeCheck is what an external challenge provider (a webhook) is
// asked about one enrollment.
type ChallengeCheck struct {
	Challenge     string
	Subject       string   // RFC 4514
	SANs          []string // "dns:…", "email:…", "ip:…", "uri:…"
	TransactionID string
	Profile       string
	Protocol      string
	RemoteAddr    string // client address, host only
	KeyType       string
	CSR           []byte // DER
}

// ChallengeVerifier decides whether a challenge is valid for a request. It
// returns allow=false with a client-safe reason to refuse; an error means
// the provider could not answer (down, timeout, malformed reply), which also
// refuses the enrollment.
type ChallengeVerifier interface {
	Verify(ctx context.Context, c ChallengeCheck) (allow bool, reason string, err error)
}
