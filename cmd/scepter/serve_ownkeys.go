package main

import (
	"context"
	"crypto/x509"
	"errors"

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

// ownCertRecorder records the server's own certificates the inventory
// lacks; *enroll.Service is one.
type ownCertRecorder interface {
	RecordResponderCertificate(ctx context.Context, cert *x509.Certificate) error
	RecordServerCertificate(ctx context.Context, cert *x509.Certificate) error
}

// recordServerCertificates puts into the inventory the delegated OCSP
// responder certificates this node signs answers with and its managed
// HTTPS certificate (managedTLS, nil for none or a configured pair), as
// RecordRACertificates does the RAs: those loaded from the data directory
// may be missing from a store restored from an older copy, and OCSP would
// then answer "unknown" for them, and 'certs revoke SERIAL' not find
// them. Their keys are then the server's own to the store's check on
// every node. Run at start, once both are loaded, and at every CA reload.
// It goes on past a certificate that fails and returns the errors joined.
func recordServerCertificates(ctx context.Context, rec ownCertRecorder, authority *ca.Authority, delegates *ocsp.Delegates, managedTLS *server.Certificate) error {
	var errs []error
	if delegates != nil {
		for _, i := range authority.Issuers() {
			if s, ok := delegates.Signer(i.ID); ok {
				errs = append(errs, rec.RecordResponderCertificate(ctx, s.Cert))
			}
		}
	}
	if managedTLS != nil {
		if leaf := managedTLS.Leaf(); leaf != nil {
			errs = append(errs, rec.RecordServerCertificate(ctx, leaf))
		}
	}
	return errors.Join(errs...)
}
