package client

import (
	"bytes"
	"crypto/x509"
	"fmt"
)

// CheckCRLIssuer says whether list is the CRL of issuer: issued in its
// name and signed by its key. The name alone is not enough: another CA
// can take the same name, and its CRL would say of our certificates
// whatever it likes. GetCRL and the agent's revocation check share it.
func CheckCRLIssuer(list *x509.RevocationList, issuer *x509.Certificate) error {
	if !bytes.Equal(issuer.RawSubject, list.RawIssuer) {
		return fmt.Errorf("the CRL is issued by %s, not by %s, the issuer of the certificate", Printable(list.Issuer.String()), Printable(issuer.Subject.String()))
	}
	if err := list.CheckSignatureFrom(issuer); err != nil {
		return fmt.Errorf("the CRL is not signed by %s, the issuer of the certificate: %w", Printable(issuer.Subject.String()), err)
	}
	return nil
}
