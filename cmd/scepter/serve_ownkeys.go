package main

import (
	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/ocsp"
	"github.com/scepter/scepter/internal/server"
)

// serverRoleKeys are the keys of the server's roles besides the CA's and
// the RAs' (which the service asks the authority about): the delegated
// OCSP responders' in use and the HTTPS certificate's. No enrollment may
// have them certified (enroll.Config.ServerKeys). Either may be nil
// (none yet, or no HTTPS listener).
func serverRoleKeys(authority *ca.Authority, delegates *ocsp.Delegates, tlsCert *server.Certificate) []enroll.ServerKey {
	var out []enroll.ServerKey
	if delegates != nil {
		for _, i := range authority.Issuers() {
			if s, ok := delegates.Signer(i.ID); ok {
				out = append(out, enroll.ServerKey{Role: "the key of the OCSP responder of " + i.Cert.Subject.String(), Key: s.Cert.PublicKey})
			}
		}
	}
	if tlsCert != nil {
		if leaf := tlsCert.Leaf(); leaf != nil {
			out = append(out, enroll.ServerKey{Role: "the key of this server's HTTPS certificate", Key: leaf.PublicKey})
		}
	}
	return out
}
