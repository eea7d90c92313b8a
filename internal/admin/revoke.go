package admin

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// RFC 5280 CRLReason codes, by the names `certs revoke --reason` takes
// (not removeFromCRL, for delta CRLs, nor aACompromise, for attribute
// certificates).
var reasonCodes = reasonCodesByName(pki.ReasonUnspecified, pki.ReasonKeyCompromise, pki.ReasonCACompromise,
	pki.ReasonAffiliationChanged, pki.ReasonSuperseded, pki.ReasonCessationOfOperation,
	pki.ReasonCertificateHold, pki.ReasonPrivilegeWithdrawn)

func reasonCodesByName(codes ...int) map[string]int {
	m := make(map[string]int, len(codes))
	for _, c := range codes {
		name, _ := pki.ReasonName(c)
		m[name] = c
	}
	return m
}

// reasonAACompromise is RFC 5280's aACompromise, for attribute
// certificates (§5.3.1), of which scepter issues none.
const reasonAACompromise = pki.ReasonAACompromise

// ReasonCertificateHold is the one revocation reason that can be lifted.
const ReasonCertificateHold = pki.ReasonCertificateHold

// ReasonKeyCompromise is the reason any other can be raised to (but a
// hold, which becomes any reason), and that none replaces.
const ReasonKeyCompromise = pki.ReasonKeyCompromise

// ParseReason reads an RFC 5280 reason name (case-insensitive) or its
// numeric code (0-6 or 9: 7 is unused, removeFromCRL, 8, belongs to delta
// CRLs only, and aACompromise, 10, to attribute certificates).
func ParseReason(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	code, numeric := decimalCode(s)
	if IsAACompromise(s) {
		return 0, pki.Errorf(pki.EBadRequest, "revocation reason %q: aACompromise is for attribute certificates (RFC 5280 §5.3.1), and scepter issues none; use keyCompromise or cACompromise", s)
	}
	for name, code := range reasonCodes {
		if strings.EqualFold(name, s) {
			return code, nil
		}
	}
	if numeric {
		if _, ok := reasonName(code); ok {
			return code, nil
		}
	}
	return 0, pki.Errorf(pki.EBadRequest, "revocation reason %q: want one of %s, or its code (0-6, 9)", s, strings.Join(ReasonNames(), ", "))
}

// IsAACompromise says whether s names aACompromise (its name in any case,
// or its code in up to three decimal digits), which ParseReason refuses
// with a reason of its own.
func IsAACompromise(s string) bool {
	code, numeric := decimalCode(s)
	return strings.EqualFold(s, "aACompromise") || numeric && code == reasonAACompromise
}

// decimalCode reads s as a reason code only when it is written in decimal
// digits alone: strconv.Atoi also takes a sign, so "+1" would otherwise be
// keyCompromise, which no documentation offers.
func decimalCode(s string) (int, bool) {
	if s == "" || len(s) > 3 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	code, err := strconv.Atoi(s)
	return code, err == nil
}

// ReasonName is the RFC 5280 name of a reason code.
func ReasonName(code int) string {
	if name, ok := reasonName(code); ok {
		return name
	}
	return fmt.Sprintf("reason %d", code)
}

// ReasonNames lists the reason names, by code.
func ReasonNames() []string {
	names := make([]string, 0, len(reasonCodes))
	for name := range reasonCodes {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return reasonCodes[names[i]] < reasonCodes[names[j]] })
	return names
}

// Revocation is what Revoke and Unhold report.
type Revocation struct {
	Certificate pki.Certificate
	// Changed is false when the certificate already was in the state asked
	// for (nothing recorded, no event).
	Changed bool
	// AlsoRevoked names the other certificates of the same key that a
	// revocation for keyCompromise revoked with it (BR §4.9.1.1), by
	// issuer and serial.
	AlsoRevoked []store.CertRef
}

// Revoke revokes the certificate with this serial (hex, as `certs list`
// shows it; a 0x prefix, colons and case are ignored), under issuerID when
// several issuers used the serial. Revoking again is idempotent: the same
// answer, no second event; a certificateHold may be turned into another
// reason, any other reason may be raised to keyCompromise (its key found
// compromised later: the revocation keeps its time, the key is recorded
// and swept), and any other reason asked for a revoked certificate is
// refused with EConflict. A revocation for keyCompromise also revokes
// every other unexpired certificate of the same key, in the same
// transaction, and reports them in AlsoRevoked.
func (s *Service) Revoke(ctx context.Context, serial, issuerID string, reason int, actor string) (Revocation, error) {
	if _, ok := reasonName(reason); !ok || reason == 8 || reason == reasonAACompromise {
		return Revocation{}, pki.Errorf(pki.EBadRequest, "revocation reason %d is not one a certificate can be revoked with", reason)
	}
	c, err := s.findCertificate(ctx, serial, issuerID)
	if err != nil {
		return Revocation{}, err
	}
	if reason == pki.ReasonCertificateHold && c.Protocol == pki.ProtocolInternal && c.Status != pki.StatusRevoked {
		// A hold is meant to be lifted, but the server treats its own
		// certificates (SCEP RA, OCSP responder, HTTPS) revoked for any
		// reason as gone: it destroys the key and replaces them, and an
		// unhold would then call valid a certificate whose key is no more.
		return Revocation{}, OwnHoldRefusal(*c)
	}
	now := s.clock.Now()
	// The store sets the detail when a hold becomes permanent or a reason
	// is raised: c may be stale (a hold lifted meanwhile), the row read in
	// its transaction not.
	ev := pki.AuditEvent{Time: now, Type: pki.EventRevoked, Actor: actor, Profile: c.Profile, SerialHex: c.SerialHex,
		IssuerID: c.IssuerID, Subject: c.Subject, Outcome: "success", Reason: ReasonName(reason)}
	r, err := s.store.Revoke(ctx, c.IssuerID, c.SerialHex, reason, now, ev)
	if err != nil {
		return Revocation{}, fmt.Errorf("revoke %s: %w", pki.ShownSerial(c.SerialHex), err)
	}
	got, changed := r.Certificate, r.Changed
	if !changed && got.RevokeReason != reason {
		// Not applied: an answer of success would let a caller take it
		// for a revocation with the reason it asked for. got is the row
		// the store's transaction read, so of concurrent revocations with
		// different reasons exactly one wins (a keyCompromise may then
		// raise its reason) and the others land here.
		return Revocation{}, pki.Errorf(pki.EConflict, "certificate %s is already revoked at %s, reason %s; the reason stays: only a certificateHold can be given another reason, or a reason raised to keyCompromise",
			pki.ShownSerial(got.SerialHex), got.RevokedAt.UTC().Format(time.RFC3339), ReasonName(got.RevokeReason))
	}
	if changed {
		s.log.Info("certificate revoked", "serial", pki.ShownSerial(got.SerialHex), "issuer", got.IssuerID, "reason", ReasonName(reason), "actor", actor)
	}
	for _, o := range r.AlsoRevoked {
		s.log.Info("certificate revoked: it shares the compromised key", "serial", pki.ShownSerial(o.SerialHex), "issuer", o.IssuerID,
			"key_of", pki.ShownSerial(got.SerialHex), "actor", actor)
	}
	return Revocation{Certificate: *got, Changed: changed, AlsoRevoked: r.AlsoRevoked}, nil
}

// Unhold lifts a certificateHold; a valid certificate is left as it is, and
// one revoked for another reason cannot be.
func (s *Service) Unhold(ctx context.Context, serial, issuerID, actor string) (Revocation, error) {
	c, err := s.findCertificate(ctx, serial, issuerID)
	if err != nil {
		return Revocation{}, err
	}
	now := s.clock.Now()
	ev := pki.AuditEvent{Time: now, Type: pki.EventUnheld, Actor: actor, Profile: c.Profile, SerialHex: c.SerialHex,
		IssuerID: c.IssuerID, Subject: c.Subject, Outcome: "success"}
	got, changed, err := s.store.UnholdCertificate(ctx, c.IssuerID, c.SerialHex, now, ev)
	if errors.Is(err, store.ErrConflict) {
		// c was read before the store's transaction, maybe while still on
		// hold; a revocation for good is final, so a read now names its
		// reason.
		if current, rerr := s.store.Certificate(ctx, c.IssuerID, c.SerialHex); rerr == nil {
			c = current
		}
		return Revocation{}, pki.Errorf(pki.EConflict, "certificate %s is revoked for good (%s), not on hold", pki.ShownSerial(c.SerialHex), ReasonName(c.RevokeReason))
	}
	if err != nil {
		return Revocation{}, fmt.Errorf("unhold %s: %w", pki.ShownSerial(c.SerialHex), err)
	}
	if changed {
		s.log.Info("certificate hold lifted", "serial", pki.ShownSerial(got.SerialHex), "issuer", got.IssuerID, "actor", actor)
	}
	return Revocation{Certificate: *got, Changed: changed}, nil
}

// reasonName names a reason a record may carry: one --reason takes, or
// aACompromise, not taken but perhaps stored from before.
func reasonName(code int) (string, bool) {
	if code == pki.ReasonRemoveFromCRL {
		return "", false
	}
	return pki.ReasonName(code)
}

// NormalizeSerial turns a serial as people write it (hex with or without
// 0x, colons, upper case, leading zeros) into the store's form.
func NormalizeSerial(serial string) (string, error) {
	s := strings.ToLower(strings.TrimSpace(serial))
	s = strings.TrimPrefix(s, "0x")
	s = strings.ReplaceAll(s, ":", "")
	if len(s) > 64 {
		// RFC 5280 serials have at most 20 octets; a longer one is no
		// serial of ours, and not worth echoing whole.
		return "", pki.Errorf(pki.EBadRequest, "serial of %d characters: a serial has at most 64 hexadecimal digits", len(serial))
	}
	n, ok := new(big.Int).SetString(s, 16)
	if !ok || n.Sign() <= 0 {
		return "", pki.Errorf(pki.EBadRequest, "serial %q is not a positive hexadecimal number", serial)
	}
	return n.Text(16), nil
}

// CheckSerialAsWritten refuses a serial written in a form the API and the
// console do not read, where NormalizeSerial, for the CLI, takes it: a 0x
// prefix, a sign, white space, or a colon that is not between hexadecimal
// digits (0x10 was looked up as serial 10). The openssl form (06:D5:66)
// and capitals are read.
func CheckSerialAsWritten(serial string) error {
	q := pki.Clip(serial, 80)
	switch {
	case strings.ContainsFunc(serial, unicode.IsSpace):
		return pki.Errorf(pki.EBadRequest, "serial %q: white space is no part of a serial", q)
	case len(serial) >= 2 && serial[0] == '0' && (serial[1] == 'x' || serial[1] == 'X'):
		return pki.Errorf(pki.EBadRequest, "serial %q: write it in hexadecimal digits alone, without 0x", q)
	case strings.HasPrefix(serial, "+") || strings.HasPrefix(serial, "-"):
		return pki.Errorf(pki.EBadRequest, "serial %q: a serial has no sign", q)
	case strings.HasPrefix(serial, ":") || strings.HasSuffix(serial, ":") || strings.Contains(serial, "::"):
		return pki.Errorf(pki.EBadRequest, "serial %q: a colon goes only between hexadecimal digits, as openssl prints a serial (06:D5:66)", q)
	}
	return nil
}

// findCertificate finds the one certificate with this serial (and issuer,
// a prefix of its ID, when given).
func (s *Service) findCertificate(ctx context.Context, serial, issuerID string) (*pki.Certificate, error) {
	sn, err := NormalizeSerial(serial)
	if err != nil {
		return nil, err
	}
	certs, err := s.store.CertificatesBySerial(ctx, sn)
	if err != nil {
		return nil, err
	}
	var match []pki.Certificate
	for _, c := range certs {
		if issuerID == "" || strings.HasPrefix(c.IssuerID, strings.ToLower(issuerID)) {
			match = append(match, c)
		}
	}
	switch len(match) {
	case 0:
		if issuerID != "" {
			return nil, pki.Errorf(pki.ENotFound, "no certificate with serial %s under issuer %s", pki.ShownSerial(sn), issuerID)
		}
		return nil, pki.Errorf(pki.ENotFound, "no certificate with serial %s", pki.ShownSerial(sn))
	case 1:
		return &match[0], nil
	}
	ids := make([]string, len(match))
	for i, c := range match {
		ids[i] = c.IssuerID[:16]
	}
	return nil, pki.Errorf(pki.EConflict, "serial %s was issued by %d CAs (%s); name the one meant by its issuer ID or a prefix of it (the command line's --issuer, the API's issuer)", pki.ShownSerial(sn), len(match), strings.Join(ids, ", "))
}

// OwnHoldRefusal is the refusal of a hold on c, one of the server's own
// certificates (SCEP RA, OCSP responder, HTTPS): Revoke's, which the
// console gives at its first step already.
func OwnHoldRefusal(c pki.Certificate) error {
	return pki.Errorf(pki.EBadRequest, "certificate %s is one of the server's own (profile %s): it cannot be put on hold, for the server destroys the key of one revoked and replaces it; revoke it with another reason (superseded, keyCompromise, …)",
		pki.ShownSerial(c.SerialHex), c.Profile)
}
