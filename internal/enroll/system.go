package enroll

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// ServerCertValidity is the lifetime of the certificate the server issues
// for its own HTTPS listener (the server replaces it after two thirds).
const ServerCertValidity = 90 * 24 * time.Hour

// The profile and transaction ID of the HTTPS listener's certificate in
// the inventory.
const (
	serverProfileName   = "tls-server"
	serverTransactionID = "server-certificate"
)

// serverProfile is the built-in profile of the HTTPS listener's
// certificate. It is not served to clients.
func serverProfile() pki.Profile {
	p := pki.DefaultProfile()
	p.Name = serverProfileName
	p.Validity = ServerCertValidity
	p.KeyUsage = x509.KeyUsageDigitalSignature
	p.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	p.MaxSANs = 64
	return p
}

// IssueServerCertificate issues the certificate of the server's own HTTPS
// listener for key, named by names (DNS names or IP addresses, each once, as
// server.ManagedCertificate gives them; the first of at most 64 characters
// is also the subject's CN), through the same pipeline and inventory as every
// other certificate (protocol "internal"). It returns the certificate and
// its chain (issuing CA up to the root).
func (s *Service) IssueServerCertificate(ctx context.Context, key crypto.PublicKey, names []string) (*x509.Certificate, []*x509.Certificate, error) {
	if len(names) == 0 {
		return nil, nil, pki.Errorf(pki.EBadRequest, "the server certificate needs at least one name")
	}
	var sans SANSet
	cn := ""
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			sans.IPAddresses = append(sans.IPAddresses, ip)
		} else {
			sans.DNSNames = append(sans.DNSNames, n)
		}
		// The CN is for people (clients match the SANs), and holds 64
		// characters at most: a load balancer's long name is a SAN only.
		if cn == "" && len(n) <= 64 {
			cn = n
		}
	}
	if cn == "" {
		cn = "scepter HTTPS"
	}
	subject, err := csr.ParseDN("CN=" + escapeDN(cn))
	if err != nil {
		return nil, nil, pki.Wrap(pki.EBadRequest, err, "server name")
	}
	st := &State{
		Req:        Request{Protocol: pki.ProtocolInternal, TransactionID: serverTransactionID},
		Profile:    serverProfile(),
		PublicKey:  key,
		RawSubject: subject,
		SANs:       sans,
	}
	res, err := s.issue(ctx, st)
	if err != nil {
		return nil, nil, err
	}
	return res.Certificate, res.Chain, nil
}

// escapeDN escapes the characters RFC 4514 reserves.
func escapeDN(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ',', '+', '"', '\\', '<', '>', ';', '=':
			out = append(out, '\\', c)
		default:
			out = append(out, c)
		}
	}
	return string(out)
}

// RevokedHere reports whether the inventory holds cert as revoked (for the
// server's own certificate: one revoked, say because its key leaked, is
// replaced at once). A store that cannot be read says no; the next look
// asks again.
func (s *Service) RevokedHere(ctx context.Context, cert *x509.Certificate) bool {
	iss, err := s.authority.IssuedByUs(cert, s.clock.Now())
	if err != nil {
		return false
	}
	rec, err := s.store.Certificate(ctx, iss.ID, cert.SerialNumber.Text(16))
	return err == nil && rec.Status == pki.StatusRevoked
}

// IssuedHere reports whether cert was issued by one of our issuing CAs and
// is valid now (for the server's own certificate, kept across restarts).
func (s *Service) IssuedHere(cert *x509.Certificate) bool {
	_, err := s.authority.IssuedByUs(cert, s.clock.Now())
	return err == nil
}

// IssuedByActive reports whether cert was issued by the issuing CA in
// charge now (after a switch, the server's own certificate of an earlier
// CA is replaced, for clients that pin the CA in charge).
func (s *Service) IssuedByActive(cert *x509.Certificate) bool {
	now := s.clock.Now()
	iss, err := s.authority.IssuedByUs(cert, now)
	active, _ := s.authority.Active(now)
	return err == nil && active != nil && iss.ID == active.ID
}

// RecordRACertificates puts the SCEP RA certificates our issuing CAs
// issued (current, next, previous) into the inventory, where they were
// missing: OCSP answered "unknown" for them, which means "never issued
// here", and a compromised RA key could not be revoked. It is run at start
// and after a CA reload; what is recorded already (by this node or
// another) is left as it is. An RA that is the issuing CA itself is not a
// certificate of its own.
func (s *Service) RecordRACertificates(ctx context.Context) error {
	for _, ra := range s.authority.RAs() {
		if ra == nil || ra.IsCA {
			continue
		}
		if err := s.recordOwnCertificate(ctx, ra.Cert, RAProfileName, "", "SCEP RA certificate"); err != nil {
			return err
		}
	}
	return nil
}

// RecordResponderCertificate puts cert, a delegated OCSP responder
// certificate this node signs answers with, into the inventory when it is
// missing there (a store restored from a copy older than the responder):
// OCSP would answer "unknown" for it, and it could not be revoked by
// serial. It is recorded as IssueResponderCertificate records one, and
// its key is then one of the server's own to the store's check. What is
// recorded already (by this node or another) is left as it is.
func (s *Service) RecordResponderCertificate(ctx context.Context, cert *x509.Certificate) error {
	return s.recordOwnCertificate(ctx, cert, responderProfileName, responderTransactionID, "OCSP responder certificate")
}

// RecordServerCertificate is RecordResponderCertificate for the
// certificate of the server's HTTPS listener that our CA issued
// (IssueServerCertificate).
func (s *Service) RecordServerCertificate(ctx context.Context, cert *x509.Certificate) error {
	return s.recordOwnCertificate(ctx, cert, serverProfileName, serverTransactionID, "HTTPS certificate")
}

// RetireServerCertificate records that replacement, the HTTPS certificate
// just issued with a new key (IssueServerCertificate) and served, replaced
// old, this node's previous one, whose key is no longer kept (its file
// was overwritten, or was gone): old is
// revoked in the inventory (superseded), with a certificate.revoked event
// by actor ("system:<node>") naming replacement, so that neither the
// inventory nor OCSP and the CRL show as valid a certificate whose key no
// longer exists; and key, the overwritten key when there was one, is
// recorded as key.destroyed. An old one the inventory holds revoked
// already is not revoked again; one it does not hold (issued through a
// store since restored from an older copy) gets a certificate.recorded
// note on replacement instead; one whose issuing CA the root CRL lists is
// revoked all the same (that CA is still loaded, and signs its CRLs); one
// that is not ours (nil, or another CA's) or has expired has nothing to
// revoke. revoked says whether old was
// revoked here; the errors are joined, after all that could be done was.
func (s *Service) RetireServerCertificate(ctx context.Context, old, replacement *x509.Certificate, key *pki.KeyDestruction, actor string) (revoked bool, err error) {
	now := s.clock.Now()
	var errs []error
	var issuer *ca.Issuer
	if old != nil {
		var ourErr error
		issuer, ourErr = s.authority.IssuedByUs(old, now)
		if errors.Is(ourErr, ca.ErrIssuerRevoked) {
			// Its CA on the root CRL: relying parties refuse it already,
			// but the inventory would go on listing as valid a
			// certificate whose key is gone. That CA is still loaded,
			// its key kept to sign the CRLs of what it issued.
			if issuer = raSigner(s.authority.Issuers(), old); issuer != nil {
				ourErr = nil
			}
		}
		if ourErr == nil {
			revoked, err = s.supersedeServerCertificate(ctx, issuer.ID, old, replacement, actor, now)
			errs = append(errs, err)
		} else {
			// Expired, or not ours: nothing to revoke; the key's CA is
			// still named if ours.
			issuer = raSigner(s.authority.Issuers(), old)
		}
	}
	if key != nil {
		d := *key
		if issuer != nil {
			d.IssuerID = issuer.ID
		}
		if err := s.store.AppendAudit(ctx, d.Event(now, actor)); err != nil {
			errs = append(errs, fmt.Errorf("enroll: recording the destruction of the HTTPS key %s: %w", d.Where, err))
		}
	}
	return revoked, errors.Join(errs...)
}

// supersedeServerCertificate revokes old, issued by issuerID, as
// superseded by replacement (RetireServerCertificate).
func (s *Service) supersedeServerCertificate(ctx context.Context, issuerID string, old, replacement *x509.Certificate, actor string, now time.Time) (bool, error) {
	serial, nextSerial := old.SerialNumber.Text(16), replacement.SerialNumber.Text(16)
	rec, err := s.store.Certificate(ctx, issuerID, serial)
	switch {
	case errors.Is(err, store.ErrNotFound):
		note := pki.AuditEvent{Time: now, Type: pki.EventCertRecorded, Actor: actor, Profile: serverProfileName, SerialHex: nextSerial,
			Subject: replacement.Subject.String(), Outcome: "success",
			Detail: fmt.Sprintf("HTTPS certificate with a new key, replacing the HTTPS certificate %s, which the inventory does not hold "+
				"(its key is no longer kept)", pki.ShownSerial(serial))}
		if iss, err := s.authority.IssuedByUs(replacement, now); err == nil {
			note.IssuerID = iss.ID // the note is about the replacement
		}
		if err := s.store.AppendAudit(ctx, note); err != nil {
			return false, fmt.Errorf("enroll: noting that the HTTPS certificate %s replaced %s: %w", pki.ShownSerial(nextSerial), pki.ShownSerial(serial), err)
		}
		return false, nil
	case err != nil:
		return false, fmt.Errorf("enroll: looking up the replaced HTTPS certificate %s: %w", pki.ShownSerial(serial), err)
	case rec.Status != pki.StatusValid:
		return false, nil // revoked already (say, its key leaked): once is enough
	}
	superseded, _ := pki.ReasonName(pki.ReasonSuperseded)
	ev := pki.AuditEvent{Time: now, Type: pki.EventRevoked, Actor: actor, Profile: rec.Profile, SerialHex: serial, IssuerID: issuerID,
		Subject: rec.Subject, Outcome: "success", Reason: superseded,
		Detail: fmt.Sprintf("HTTPS certificate replaced by the HTTPS certificate %s, with a new key; its own key is no longer kept", pki.ShownSerial(nextSerial))}
	_, changed, err := s.store.RevokeCertificate(ctx, issuerID, serial, pki.ReasonSuperseded, now, ev)
	if err != nil {
		return false, fmt.Errorf("enroll: revoking the replaced HTTPS certificate %s: %w", pki.ShownSerial(serial), err)
	}
	return changed, nil
}

// recordOwnCertificate records cert, one of the server's own certificates
// (profile, transactionID as when it was issued), unless the inventory
// holds it already, with a certificate.issued event whose detail begins
// with what. One that none of our issuing CAs issued, or expired, is
// skipped: there is nothing to answer for. A record another node made in
// between (ErrConflict) counts as recorded.
func (s *Service) recordOwnCertificate(ctx context.Context, cert *x509.Certificate, profile, transactionID, what string) error {
	now := s.clock.Now()
	issuer, err := s.authority.IssuedByUs(cert, now)
	if err != nil {
		return nil
	}
	serial := cert.SerialNumber.Text(16)
	if _, err := s.store.Certificate(ctx, issuer.ID, serial); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("enroll: looking up the %s %s: %w", what, serial, err)
	}
	st := &State{Req: Request{Protocol: pki.ProtocolInternal, TransactionID: transactionID}, Profile: pki.Profile{Name: profile}}
	rec := record(cert, issuer.ID, st, now)
	ev := pki.AuditEvent{Time: now, Type: pki.EventIssued, Actor: "system", Profile: profile, SerialHex: serial,
		IssuerID: issuer.ID, Subject: rec.Subject, TransactionID: transactionID, Outcome: "success", Detail: what + ", recorded in the inventory"}
	err = s.store.RecordIssuance(ctx, store.Issuance{Certificate: rec, Now: now, Events: []pki.AuditEvent{ev}})
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("enroll: recording the %s %s: %w", what, serial, err)
	}
	return nil
}

// RAProfileName is the profile under which the inventory lists SCEP RA
// certificates.
const RAProfileName = "scep-ra"

// RARevoked reports whether the inventory holds ra's certificate as
// revoked (for any reason, a hold included): its key decrypts every SCEP
// request, challenges inside, so a revoked one must stop doing so and be
// replaced. An RA that is the issuing CA itself (--scep-ra ca) is not a
// certificate of the inventory, which never says it is revoked.
func (s *Service) RARevoked(ctx context.Context, ra *pki.RA) (bool, error) {
	if ra == nil || ra.Cert == nil || ra.IsCA {
		return false, nil
	}
	// An expired RA certificate is still ours (the issuer comes back
	// with ErrExpired): its revocation still counts.
	issuer, err := s.authority.IssuedByUs(ra.Cert, s.clock.Now())
	if errors.Is(err, ca.ErrIssuerRevoked) {
		// Its CA is on the root CRL, so the RA decrypts nothing; but its
		// key is still kept, and its revocation is what has it destroyed.
		issuer = raSigner(s.authority.Issuers(), ra.Cert)
	}
	if issuer == nil {
		return false, nil
	}
	serial := ra.Cert.SerialNumber.Text(16)
	rec, err := s.store.Certificate(ctx, issuer.ID, serial)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("enroll: looking up the RA certificate %s: %w", pki.ShownSerial(serial), err)
	}
	return rec.Status == pki.StatusRevoked, nil
}

// raSigner is the one of issuers that signed cert, an RA certificate this
// node loaded from its own CA directory; nil for none.
func raSigner(issuers []*ca.Issuer, cert *x509.Certificate) *ca.Issuer {
	for _, i := range issuers {
		if bytes.Equal(i.Cert.RawSubject, cert.RawIssuer) && cert.CheckSignatureFrom(i.Cert) == nil {
			return i
		}
	}
	return nil
}

// RecordRAReplacement puts replacement, the RA certificate issued because
// revoked's was revoked, into the inventory (so that OCSP knows it and it
// can be revoked in turn), with an audit event that says what it replaces
// and which node (actor) replaced it. When RecordRACertificates recorded
// it first, the event is written alone, as a note (noteRAReplacement).
func (s *Service) RecordRAReplacement(ctx context.Context, revoked, replacement *pki.RA, actor string) error {
	now := s.clock.Now()
	issuer, err := s.authority.IssuedByUs(replacement.Cert, now)
	if err != nil {
		return fmt.Errorf("enroll: the new RA certificate: %w", err)
	}
	serial := replacement.Cert.SerialNumber.Text(16)
	st := &State{Req: Request{Protocol: pki.ProtocolInternal}, Profile: pki.Profile{Name: RAProfileName}}
	rec := record(replacement.Cert, issuer.ID, st, now)
	ev := pki.AuditEvent{Time: now, Type: pki.EventIssued, Actor: actor, Profile: RAProfileName, SerialHex: serial,
		IssuerID: issuer.ID, Subject: rec.Subject, Outcome: "success",
		Detail: fmt.Sprintf("SCEP RA certificate with a new key, replacing the revoked RA certificate %s", pki.SerialText(revoked.Cert.SerialNumber))}
	err = s.store.RecordIssuance(ctx, store.Issuance{Certificate: rec, Now: now, Events: []pki.AuditEvent{ev}})
	if errors.Is(err, store.ErrConflict) {
		err = s.noteRAReplacement(ctx, ev)
	}
	if err != nil {
		return fmt.Errorf("enroll: recording the RA certificate %s: %w", serial, err)
	}
	return nil
}

// noteRAReplacement writes ev, the issuance of a replacement RA that the
// inventory holds already, to the audit trail as a certificate.recorded
// note: the issuance was audited when it was recorded (a CA reload's
// RecordRACertificates may come first), and one issuance is one
// certificate.issued, but what the certificate replaces must still be in
// the trail. Nothing is written when the trail says so already (this
// replacement recorded before).
func (s *Service) noteRAReplacement(ctx context.Context, ev pki.AuditEvent) error {
	seen, err := s.store.ListAudit(ctx, store.AuditFilter{SerialHex: ev.SerialHex, Limit: 100})
	if err != nil {
		return fmt.Errorf("reading its audit events: %w", err)
	}
	if slices.ContainsFunc(seen, func(e pki.AuditEvent) bool { return e.IssuerID == ev.IssuerID && e.Detail == ev.Detail }) {
		return nil
	}
	ev.Type = pki.EventCertRecorded
	return s.store.AppendAudit(ctx, ev)
}
