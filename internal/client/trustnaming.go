package client

import (
	"errors"
	"fmt"
)

// TrustNaming says how a caller names its trust settings, so that the
// advice of a refusal names what that caller has (r144 D3): scepter's
// enroll, renew and est take --ca-fingerprint and --cacert, getcrl only
// the former, and the agent has a ca_fingerprint setting and no cacert.
type TrustNaming int

const (
	// NamingFlags: --ca-fingerprint and --cacert.
	NamingFlags TrustNaming = iota
	// NamingNoCACert: --ca-fingerprint only (scepter getcrl).
	NamingNoCACert
	// NamingAgent: the agent's ca_fingerprint setting, no cacert.
	NamingAgent
)

// WithTrustNaming is err, its advice (a *PinMismatchError's, a
// *NoIntermediateError's) worded for n.
func WithTrustNaming(err error, n TrustNaming) error {
	var pm *PinMismatchError
	if errors.As(err, &pm) {
		pm.Naming = n
	}
	var ni *NoIntermediateError
	if errors.As(err, &ni) {
		ni.Naming = n
	}
	return err
}

// NoIntermediateError: a server sent its own TLS certificate alone, and
// none of the CA certificates it sent issued it.
type NoIntermediateError struct {
	Err    error
	Issuer string // the certificate's issuer, printable
	Naming TrustNaming
}

func (e *NoIntermediateError) Error() string {
	msg := fmt.Sprintf("%v; the server sent no intermediate CA certificate in the TLS handshake, only its own, issued by %s, and none of the CA certificates it sent issued it: ", e.Err, e.Issuer)
	switch e.Naming {
	case NamingNoCACert:
		return msg + fmt.Sprintf("have the server send its chain (its certificate, then %s's), or use the server's plain http:// SCEP URL", e.Issuer)
	case NamingAgent:
		return msg + fmt.Sprintf("if %s is a CA under the pinned one, have the server send its chain (its certificate, then %s's); the agent trusts a server's TLS certificate only by ca_fingerprint "+
			"(it has no cacert setting), so a server whose TLS certificate is of another PKI cannot be renewed from over https (a SCEP server can be given by its plain http:// URL)", e.Issuer, e.Issuer)
	}
	return msg + fmt.Sprintf("have the server send its chain (its certificate, then %s's), or give --cacert FILE holding %s and its root instead of --ca-fingerprint", e.Issuer, e.Issuer)
}

func (e *NoIntermediateError) Unwrap() error { return e.Err }
