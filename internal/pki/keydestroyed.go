package pki

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"time"
)

// What a destroyed key was (KeyDestruction.Role).
const (
	KeyRoleIssuingCA = "issuing CA"
	KeyRoleSCEPRA    = "SCEP RA"
	KeyRoleResponder = "OCSP responder"
	// The key of the HTTPS certificate our CA issued for the server's
	// own listener, overwritten when that certificate is replaced.
	KeyRoleHTTPSServer = "HTTPS server"
)

// KeyDestruction is a private key of a CA, an RA, an OCSP responder or the
// HTTPS listener that scepter destroyed, or tried to: what auditors expect to find in the
// trail (EventKeyDestroyed). A key found gone already is not one.
type KeyDestruction struct {
	Role string // a KeyRole*
	// IssuerID is the issuing CA the key is, or whose certificate
	// certified it.
	IssuerID string
	// Where is the key file's path, or the token key's reference and URI.
	Where string
	// Public is the key's public half; nil when nothing recorded it.
	Public crypto.PublicKey
	// Err is why the key could not be destroyed; nil when it was.
	Err error
}

// Event is the audit event that records d, made by actor at now.
func (d KeyDestruction) Event(now time.Time, actor string) AuditEvent {
	ev := AuditEvent{Time: now, Type: EventKeyDestroyed, Actor: actor, IssuerID: d.IssuerID, Outcome: "success",
		Detail: fmt.Sprintf("%s key at %s; SubjectPublicKeyInfo SHA-256 %s", d.Role, d.Where, spkiSHA256(d.Public))}
	if d.Err != nil {
		ev.Outcome, ev.Reason = "failure", d.Err.Error()
	}
	return ev
}

// spkiSHA256 is the hex SHA-256 of pub's SubjectPublicKeyInfo, or says
// why there is none.
func spkiSHA256(pub crypto.PublicKey) string {
	if pub == nil {
		return "unknown (no public key recorded)"
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fmt.Sprintf("unknown (%v)", err)
	}
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:])
}
