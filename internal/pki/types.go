package pki

import (
	"time"
)

// CertStatus is the stored lifecycle state of a certificate. Expiry is not a
// status: it is derived from NotAfter and the clock.
type CertStatus string

const (
	StatusValid   CertStatus = "valid"
	StatusRevoked CertStatus = "revoked"
)

// Source says where an inventory record came from: "issued" by this CA
// as it signed, or "imported", recorded later from a file this CA's
// issuing CA signed (certs revoke --cert, on a store restored from a copy
// older than the certificate). Discovered certificates come later and need
// not be ours.
type Source string

const (
	SourceIssued   Source = "issued"
	SourceImported Source = "imported"
)

// ProfileImported is the profile of an inventory record of SourceImported:
// the profile the certificate was issued under is not known.
const ProfileImported = "imported"

// Protocol names the channel a certificate was requested over.
type Protocol string

const (
	ProtocolSCEP Protocol = "scep"
	ProtocolEST  Protocol = "est"
	ProtocolCLI  Protocol = "cli"
	// ProtocolInternal marks certificates the server issues to itself (the
	// HTTPS listener's certificate).
	ProtocolInternal Protocol = "internal"
)

// Certificate is one inventory record.
type Certificate struct {
	// SerialHex is the serial number as lower-case hex without leading zeros
	// beyond one byte boundary (big.Int.Text(16)).
	SerialHex string
	// IssuerID identifies the issuing CA certificate: hex SHA-256 of its DER.
	IssuerID      string
	Issuer        string // issuer DN (RFC 4514 string)
	Subject       string // subject DN (RFC 4514 string)
	SANs          []string
	NotBefore     time.Time
	NotAfter      time.Time
	Status        CertStatus
	RevokedAt     time.Time
	RevokeReason  int
	RevokedBy     string // who revoked it (the audit event's actor)
	Profile       string
	Protocol      Protocol
	Source        Source
	RequesterAddr string
	TransactionID string
	KeyType       string // e.g. "rsa2048", "p256"
	// RenewedFrom holds "issuerID:serialHex" of the certificate this one
	// replaces, empty for a first enrollment.
	RenewedFrom string
	// RenewedBy holds "issuerID:serialHex" of the newest certificate that
	// renews this one (names it in RenewedFrom), empty for none. Only the
	// inventory's lists (store.ListCertificates) fill it in.
	RenewedBy string
	CreatedAt time.Time
	DER       []byte

	// UnheldAt is when a hold on it was last lifted (zero: never): no
	// OCSP answer about it is dated before then.
	UnheldAt time.Time
}

// Expired reports whether the certificate is past its NotAfter at now.
func (c *Certificate) Expired(now time.Time) bool { return now.After(c.NotAfter) }

// ESTUser is an account that authenticates EST requests with HTTP Basic.
// Only an argon2id hash of the password is stored.
type ESTUser struct {
	Name         string
	PasswordHash string
	// Profile binds the user to one profile (EST label); empty: any.
	Profile   string
	CreatedAt time.Time
	CreatedBy string
}

// Challenge is a one-time enrollment secret. Only its hash is stored.
type Challenge struct {
	ID      string // random public identifier, for listing and audit
	Hash    []byte // SHA-256 of the secret
	Profile string // the profile it is valid for
	// BoundSubject (a DER Name) and BoundSANs ("dns:…", "email:…"), when
	// set, are the identity the challenge may be used for: the request's
	// subject must be BoundSubject (when set), and every subject
	// alternative name it carries (DNS, email, IP, URI) among BoundSANs.
	BoundSubject []byte
	BoundSANs    []string
	CreatedAt    time.Time
	ExpiresAt    time.Time
	ConsumedAt   time.Time // zero while unused
	CreatedBy    string
	// FailedUses counts presentations for another profile or identity;
	// LockedAt is set once there were too many.
	FailedUses int
	LockedAt   time.Time
}

// AuditEvent is one entry of the audit trail. Events are written in the same
// transaction as the change they record; Actor names who caused it.
type AuditEvent struct {
	ID            int64
	Time          time.Time
	Type          string // see the Event* constants
	Actor         string // "scep:127.0.0.1", "cli:root", "system"
	Profile       string
	SerialHex     string
	IssuerID      string
	Subject       string
	TransactionID string
	Outcome       string // "success" or "failure"
	Reason        string // failure reason, never a secret
	Detail        string // free text, JSON allowed
	// PrevHash and Hash chain the trail (set by the store, read back by
	// `audit verify`): PrevHash is the Hash of the record before, Hash is
	// AuditChainHash(PrevHash, this record).
	PrevHash []byte
	Hash     []byte
}

// Audit event types.
const (
	EventIssued           = "certificate.issued"
	EventEnrollFailed     = "enrollment.failed"
	EventChallengeCreated = "challenge.created"
	EventChallengeUsed    = "challenge.used"
	EventChallengeMisused = "challenge.misused" // presented for another profile or identity
	EventCAInitialized    = "ca.initialized"
)

// RequestStatus is the state of an enrollment request held for approval.
type RequestStatus string

const (
	RequestPending  RequestStatus = "pending"
	RequestIssued   RequestStatus = "issued"   // approved and its certificate recorded
	RequestRejected RequestStatus = "rejected" // refused by an operator
	// RequestExpired is never stored: it is how a request still pending
	// when its retention ran out is shown (StatusAt). It can no longer be
	// approved or rejected; the device asking after it is told it expired
	// without a decision, until it is purged.
	RequestExpired RequestStatus = "expired"
)

// StatusAt is r's status at now: RequestExpired for a request still pending
// at or after its ExpiresAt (as approval and the device's poll judge it),
// its stored Status otherwise.
func (r *EnrollmentRequest) StatusAt(now time.Time) RequestStatus {
	if r.Status == RequestPending && !now.Before(r.ExpiresAt) {
		return RequestExpired
	}
	return r.Status
}

// EnrollmentRequest is a request a profile holds for manual approval. It is
// kept (with its outcome) for the profile's retention so that CertPoll and
// repeated PKCSReqs with the same transaction ID can be answered by any node.
type EnrollmentRequest struct {
	ID            string // random public identifier, used by `requests approve ID`
	TransactionID string // the client's transaction ID (SCEP) or a generated one
	Profile       string
	Protocol      Protocol
	Status        RequestStatus
	Subject       string // for listing
	SANs          []string
	CSR           []byte // DER PKCS#10
	// ClientCert is the DER of the certificate the requester proved it
	// holds besides the request's key (the certificate that signed a SCEP
	// renewal, an EST TLS client certificate), nil when none: a poll may
	// come signed by it.
	ClientCert    []byte
	RequesterAddr string
	CreatedAt     time.Time
	// ExpiresAt is when its retention ends, after which it may be
	// purged: a pending request's retention counts from CreatedAt, a
	// decided one's from DecidedAt (never ending earlier than it would
	// have pending), so that its device has the whole retention after a
	// late approval to collect the certificate, or to be told of the
	// rejection. The store keeps the time it was held with and reads a
	// decided request's from it.
	ExpiresAt time.Time
	DecidedAt time.Time
	DecidedBy string
	Reason    string // rejection reason
	// RenewedFrom is "issuerID:serialHex" when the request renews a certificate.
	RenewedFrom string
	// ChallengeHash is the SHA-256 of the challenge that authenticated the
	// request (nil when something else did). A one-time challenge is used
	// up when the request is held; it still authenticates the requester
	// asking again about this request, and nothing else.
	ChallengeHash []byte
	// Set once issued.
	CertIssuerID  string
	CertSerialHex string
}

// More audit event types.
const (
	EventRequestPending  = "request.pending"
	EventRequestApproved = "request.approved"
	EventRequestRejected = "request.rejected"
	// EventRequestExpired: a held request's retention ended without a
	// decision; recorded once, when the purge removes it.
	EventRequestExpired = "request.expired"
	EventRenewed        = "certificate.renewed"
	EventRevoked        = "certificate.revoked"
	// EventUnheld: a certificateHold was lifted.
	EventUnheld = "certificate.unheld"
	// EventSentAgain: a certificate issued earlier was sent again to a
	// request for the same key whose answer was lost (a first enrollment
	// with its used-up one-time challenge, or a renewal), or the
	// certificate of an approved request was collected after the
	// request's retention; nothing issued.
	EventSentAgain = "certificate.sent_again"
	// EventServerStarted: a node started, with a digest of its effective
	// configuration (never a secret).
	EventServerStarted = "server.started"
	EventCARollover    = "ca.rollover"
	// EventCAPublished: a node recorded a CA generation in the shared
	// store (the first start, or a rollover made on that node).
	EventCAPublished = "ca.published"
	// EventCAPromoted: the next issuing CA became current at its switch
	// time; recorded once, by one node, for all of them.
	EventCAPromoted = "ca.promoted"
	// EventCARootKeyExported: the root key was copied off the server
	// (and perhaps removed from it).
	EventCARootKeyExported = "ca.root_key_exported"
	// EventCARootCRLSigned: a root CRL was signed with the root key and
	// stored (scepter ca root crl), perhaps revoking issuing CAs.
	EventCARootCRLSigned = "ca.root_crl_signed"
	EventESTUserAdded    = "est_user.added"
	EventESTUserRemoved  = "est_user.removed"
	// EventRefused records a request refused before the enrollment
	// service could look at it (bad signature, missing credentials, a
	// malformed body): every refusal is in the audit trail.
	EventRefused = "request.refused"
	// EventCertRecorded: a certificate this CA issued that the inventory
	// lacked was recorded from a file (SourceImported); or what a SCEP RA
	// certificate replaces, noted after its issuance was audited.
	EventCertRecorded = "certificate.recorded"
	// EventStoreBehind: a node started on a store whose newest CRL is
	// numbered below the one the node published (a store restored from an
	// older copy); recorded again when the start was acknowledged with
	// --store-restored.
	EventStoreBehind = "store.behind"
	// EventRestoreCarriedForward: `scepter store restore` took into the
	// restored store what may only move forward (revoked tokens, used
	// challenges, removed users, nonces) from the database it replaced.
	EventRestoreCarriedForward = "store.restore_carried_forward"
	// EventKeyDestroyed: scepter destroyed the private key of an issuing
	// CA, a SCEP RA or an OCSP responder, a file or in a PKCS#11 token
	// (Outcome failure: it tried and could not). See KeyDestruction.
	EventKeyDestroyed = "key.destroyed"
)

// Expiry notification audit events: a notification about a certificate
// crossing a threshold before its NotAfter was delivered on one channel
// (smtp, webhook), or given up for good.
const (
	EventNotificationSent   = "notification.sent"
	EventNotificationFailed = "notification.failed"
)

// Roles of console users and API tokens, each allowed what the one before
// it is and more: an auditor reads; an operator also approves, rejects,
// revokes and creates challenges; an admin also manages tokens, users, EST
// users and CAs.
type Role string

const (
	RoleAuditor  Role = "auditor"
	RoleOperator Role = "operator"
	RoleAdmin    Role = "admin"
)

// Valid reports whether r is one of the roles.
func (r Role) Valid() bool { return r == RoleAuditor || r == RoleOperator || r == RoleAdmin }

// Allows reports whether r includes what need requires.
func (r Role) Allows(need Role) bool { return r.rank() >= need.rank() && need.rank() > 0 }

func (r Role) rank() int {
	switch r {
	case RoleAuditor:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// User is a person who logs in to the console. Only an argon2id hash of the
// password is stored.
type User struct {
	Name         string
	Role         Role
	PasswordHash string
	CreatedAt    time.Time
	CreatedBy    string
	// FailedLogins counts failures since the last success; LockedUntil,
	// when in the future, refuses logins.
	FailedLogins int
	LockedUntil  time.Time
	LastLoginAt  time.Time
}

// APIToken is a bearer token of the admin API. Only the SHA-256 of the
// secret is stored.
type APIToken struct {
	ID         string
	Name       string
	Role       Role
	Hash       []byte
	CreatedAt  time.Time
	CreatedBy  string
	ExpiresAt  time.Time // zero: never
	RevokedAt  time.Time // zero: live
	LastUsedAt time.Time
}

// State is what a token is at now, in the words the CLI's token list and
// the API use: "revoked", "expired" or "live".
func (t APIToken) State(now time.Time) string {
	switch {
	case !t.RevokedAt.IsZero():
		return "revoked"
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		return "expired"
	}
	return "live"
}

// Session is a console login. Only the SHA-256 of the cookie is stored.
type Session struct {
	Hash       []byte
	User       string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	RemoteAddr string
}

// Audit event types of the console and the API.
const (
	EventUserAdded      = "user.added"
	EventUserRemoved    = "user.removed"
	EventLoginSucceeded = "login.succeeded"
	EventLoginFailed    = "login.failed"
	EventLoginLocked    = "login.locked"
	EventLogout         = "logout"
	EventTokenCreated   = "token.created"
	EventTokenRevoked   = "token.revoked"
	// EventTokenSentInClear: a live API token was sent to the plain HTTP
	// listener (refused there), so it crossed the network in clear.
	EventTokenSentInClear = "token.sent_in_clear"
	EventChallengeDeleted = "challenge.deleted"
	// EventActionRefused: an authenticated principal (an API token, a
	// console user) asked for a change its role does not allow, refused
	// with 403: who, what (method and path) and the role it lacked.
	EventActionRefused = "action.refused"
)

// Audit event types of the NDES password page (/certsrv/mscep_admin/): a
// login refused, and the wrong login that locks its address out.
const (
	EventNDESLoginFailed = "ndes.login_failed"
	EventNDESLoginLocked = "ndes.login_locked"
)
