package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// readCertFile reads the one certificate of a PEM (or DER) file; other PEM
// blocks, such as a key, are skipped.
func readCertFile(path string) (*x509.Certificate, error) {
	certs, err := keys.LoadCertFile(path)
	if err != nil {
		return nil, fmt.Errorf("--cert: %w", err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("--cert %s: holds %d certificates; give the one certificate to revoke", path, len(certs))
	}
	return certs[0], nil
}

// recordForRevocation makes sure the certificate in path is in the
// inventory, so that it can be revoked: it must be signed by one of this
// CA's issuing CAs (checked by signature, up to the root; an expired one
// as at its last moment of validity, as revoking by serial takes it), and is
// recorded, audited, when the store lacks it (a store restored from a copy
// older than the certificate). One that differs from the certificate the
// store records under its serial is refused: an issuing CA's key signed
// it without this CA recording it. It returns the issuer's ID and the serial.
func recordForRevocation(ctx context.Context, sf *storeFlags, st store.Store, path, actor string) (issuerID, serial string, recorded bool, err error) {
	cert, err := readCertFile(path)
	if err != nil {
		return "", "", false, err
	}
	clock := pki.SystemClock{}
	authority, _, err := loadCLICA(ctx, st, sf.dataDir, nil, clock)
	if errors.Is(err, ca.ErrNoCA) {
		return "", "", false, fmt.Errorf("--cert needs the CA's certificates to check the signature: %w", sf.noCA(err))
	}
	if err != nil {
		return "", "", false, err
	}
	now := clock.Now()
	issuer, err := authority.IssuedByUs(cert, now)
	switch {
	case errors.Is(err, ca.ErrExpired):
		// Ours, checked at the end of its validity, and revoked as by
		// its serial: for keyCompromise that records the key, which
		// revokes its live certificates and refuses it from then on.
	case err != nil:
		return "", "", false, fmt.Errorf("--cert %s (%s) was not issued by this CA's issuing CAs: %w", path, printable(cert.Subject.String()), err)
	}
	serial = cert.SerialNumber.Text(16)
	switch stored, err := st.Certificate(ctx, issuer.ID, serial); {
	case err == nil && !bytes.Equal(stored.DER, cert.Raw):
		// Our issuing CA signed it, yet it is not what that CA recorded
		// under this serial: its key signed a certificate it never
		// recorded. Revoking the stored one would list the wrong
		// certificate (and, for keyCompromise, the wrong key) and leave
		// the issuing key in use.
		return "", "", false, fmt.Errorf("--cert %s (%s) is not the certificate this CA issued with serial %s (%s), though its issuing CA %s (%s) signed it: "+
			"that CA's key signed a certificate it never recorded. Nothing was revoked. Treat the issuing CA's key as compromised: "+
			"roll it over ('scepter ca rollover'), then list it on the root CRL once the next CA is current ('scepter ca root crl --revoke %s --reason cACompromise')",
			path, printable(cert.Subject.String()), pki.ShownSerial(serial), printable(stored.Subject), issuer.ID, printable(issuer.Cert.Subject.String()), issuer.ID)
	case err == nil:
		return issuer.ID, serial, false, nil
	case !errors.Is(err, store.ErrNotFound):
		return "", "", false, err
	}
	rec := pki.Certificate{SerialHex: serial, IssuerID: issuer.ID, Issuer: csr.NameString(cert.RawIssuer), Subject: csr.NameString(cert.RawSubject),
		SANs: enroll.SANs(cert), NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, Status: pki.StatusValid, Profile: pki.ProfileImported,
		Protocol: pki.ProtocolCLI, Source: pki.SourceImported, KeyType: keys.KeyTypeOf(cert.PublicKey), CreatedAt: now, DER: cert.Raw}
	ev := pki.AuditEvent{Time: now, Type: pki.EventCertRecorded, Actor: actor, Profile: pki.ProfileImported, SerialHex: serial, IssuerID: issuer.ID,
		Subject: rec.Subject, Outcome: "success",
		Detail: "issued by this CA but missing from the inventory (a store restored from an older copy?): recorded from a file to be revoked"}
	err = st.RecordIssuance(ctx, store.Issuance{Certificate: rec, Now: now, Events: []pki.AuditEvent{ev}})
	if errors.Is(err, store.ErrConflict) {
		return issuer.ID, serial, false, nil // recorded meanwhile
	}
	if err != nil {
		return "", "", false, fmt.Errorf("recording %s: %w", pki.ShownSerial(serial), err)
	}
	return issuer.ID, serial, true, nil
}
