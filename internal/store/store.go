// Package store defines scepter's storage interface. Implementations
// (sqlite, later postgres) pass the one conformance suite in storetest.
// Everything a request depends on across nodes lives here, never in process
// memory: consumed challenges, replayed nonces, serial uniqueness.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/scepter/scepter/internal/pki"
)

var (
	// ErrNotFound: no such record.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a uniqueness rule was hit (serial taken, nonce seen).
	ErrConflict = errors.New("store: conflict")
	// ErrChallengeUnusable: the one-time challenge is unknown, expired or
	// already consumed, so the transaction that wanted it was rolled back.
	ErrChallengeUnusable = errors.New("store: challenge unknown, expired or already used")
)

// Issuance is everything recorded, in one transaction, when a certificate is
// issued.
type Issuance struct {
	Certificate pki.Certificate
	// ConsumeChallengeHash, when set, names a one-time challenge that is
	// consumed by this issuance; if it cannot be consumed (already used,
	// expired) nothing is recorded and ErrChallengeUnusable is returned.
	ConsumeChallengeHash []byte
	// Now is the transaction's time, for the challenge expiry check.
	Now    time.Time
	Events []pki.AuditEvent
	// CompleteRequestID, when set, names a pending EnrollmentRequest that
	// this issuance completes: in the same transaction its status becomes
	// issued with the certificate's issuer and serial, DecidedAt/DecidedBy
	// are set from ApprovedBy and Now. If the request is not pending any
	// more, nothing is recorded and ErrConflict is returned (two operators,
	// or two nodes, approving at once issue one certificate); an unknown
	// request is ErrNotFound, with nothing recorded either.
	CompleteRequestID string
	ApprovedBy        string
	// Supersede, when set, revokes that certificate (reason 4,
	// superseded) in the same transaction: a renewal whose profile asks
	// for it. A certificate already revoked is left as it is; an unknown
	// one is ErrNotFound and nothing is recorded.
	Supersede *CertRef
}

// CertRef names one certificate.
type CertRef struct {
	IssuerID  string
	SerialHex string
}

// RequestFilter selects enrollment requests, newest first.
type RequestFilter struct {
	Status  pki.RequestStatus // "" for any
	Profile string
	Limit   int // default 100, max 1000
}

// CertFilter selects inventory records. Zero fields do not filter.
type CertFilter struct {
	// NotAfterBefore keeps certificates whose NotAfter is before this time
	// (e.g. now+30d for "expiring within 30 days"), ordered by NotAfter.
	NotAfterBefore time.Time
	// NotAfterAfter keeps certificates whose NotAfter is after this time
	// (e.g. now, to hide expired ones).
	NotAfterAfter time.Time
	Status        pki.CertStatus
	Profile       string
	IssuerID      string
	// Limit bounds the page (default 100, maximum 1000).
	Limit int
	// Cursor is the opaque NextCursor of the previous page.
	Cursor string
}

// AuditFilter selects audit events, newest first.
type AuditFilter struct {
	Type      string
	SerialHex string
	Limit     int
	// BeforeID pages backwards: only events with ID < BeforeID.
	BeforeID int64
}

// Store is the storage interface. Every call takes a context.
type Store interface {
	// ReserveSerial records that a serial is taken under an issuer before
	// anything is signed with it, in a transaction of its own. ErrConflict if
	// it was taken before, so the caller draws a new one; a reserved serial
	// is never reused even when the issuance that reserved it fails. Every
	// issuance reserves its serial this way before the CA key signs.
	//
	// tbs is the linted TBSCertificate the CA key is about to sign (nil
	// when the caller has none), kept so that a certificate signed but
	// never recorded is known byte for byte but for its signature.
	ReserveSerial(ctx context.Context, issuerID, serialHex string, tbs []byte, at time.Time) error
	// RecordIssuance stores the certificate, registers its serial (already
	// reserved, normally), consumes the challenge if asked, and appends the
	// events, all in one transaction. ErrConflict if a certificate with the
	// same issuer and serial is recorded already.
	RecordIssuance(ctx context.Context, in Issuance) error
	// Certificate returns one record by issuer and serial.
	Certificate(ctx context.Context, issuerID, serialHex string) (*pki.Certificate, error)
	// CertificatesBySerial returns every record with this serial (any issuer).
	CertificatesBySerial(ctx context.Context, serialHex string) ([]pki.Certificate, error)
	// ListCertificates returns one page and the cursor of the next ("" at the end).
	ListCertificates(ctx context.Context, f CertFilter) (certs []pki.Certificate, nextCursor string, err error)
	// RevokeCertificate marks a certificate revoked with an RFC 5280 reason
	// code and appends ev in the same transaction. ErrNotFound if unknown,
	// ErrConflict if already revoked.
	RevokeCertificate(ctx context.Context, issuerID, serialHex string, reason int, at time.Time, ev pki.AuditEvent) error

	// CreateChallenge stores a one-time challenge (hash only) with its audit event.
	CreateChallenge(ctx context.Context, ch pki.Challenge, ev pki.AuditEvent) error
	// LookupChallenge returns the unconsumed, unexpired, unlocked challenge
	// with this hash, or ErrChallengeUnusable. It changes nothing;
	// consumption happens in RecordIssuance.
	LookupChallenge(ctx context.Context, hash []byte, now time.Time) (*pki.Challenge, error)
	// RecordChallengeMisuse counts a presentation of the challenge for a
	// profile or identity it is not bound to, and locks it (for good) once
	// it has been misused lockAfter times; ev is appended in the same
	// transaction. It reports whether the challenge is locked now.
	// ErrChallengeUnusable when the challenge is unknown, used, expired or
	// already locked.
	RecordChallengeMisuse(ctx context.Context, hash []byte, now time.Time, lockAfter int, ev pki.AuditEvent) (locked bool, err error)
	// ListChallenges returns challenges newest first (at most limit, default
	// 100), consumed and expired ones too; secrets are never stored.
	ListChallenges(ctx context.Context, limit int) ([]pki.Challenge, error)

	// RememberNonce records a (transactionID, senderNonce) pair until expires.
	// ErrConflict if the pair is already remembered: the message is a replay.
	RememberNonce(ctx context.Context, transactionID string, senderNonce []byte, now, expires time.Time) error
	// PurgeExpired removes remembered nonces and enrollment requests whose
	// retention (ExpiresAt) is over at now.
	PurgeExpired(ctx context.Context, now time.Time) error

	// CreateRequest stores a request held for approval, with its audit
	// event. ErrConflict if a request with the same (profile, transaction
	// ID) is still pending: the caller answers PENDING instead. When
	// consumeChallengeHash is set, the one-time challenge that
	// authenticated the request is consumed in the same transaction
	// (at r.CreatedAt); ErrChallengeUnusable and nothing stored if it
	// cannot be.
	CreateRequest(ctx context.Context, r pki.EnrollmentRequest, consumeChallengeHash []byte, ev pki.AuditEvent) error
	// RequestByTransaction returns the newest request with this profile and
	// transaction ID that has not been purged, or ErrNotFound.
	RequestByTransaction(ctx context.Context, profile, transactionID string) (*pki.EnrollmentRequest, error)
	// Request returns a request by ID, or ErrNotFound.
	Request(ctx context.Context, id string) (*pki.EnrollmentRequest, error)
	// ListRequests returns requests matching f, newest first.
	ListRequests(ctx context.Context, f RequestFilter) ([]pki.EnrollmentRequest, error)
	// RejectRequest marks a pending request rejected with a reason and
	// appends ev in the same transaction. ErrNotFound if unknown,
	// ErrConflict if it is not pending any more.
	RejectRequest(ctx context.Context, id, reason, by string, at time.Time, ev pki.AuditEvent) error

	// CreateESTUser stores an EST user with its audit event. ErrConflict if
	// the name is taken.
	CreateESTUser(ctx context.Context, u pki.ESTUser, ev pki.AuditEvent) error
	// ESTUser returns a user by name, or ErrNotFound.
	ESTUser(ctx context.Context, name string) (*pki.ESTUser, error)
	// ListESTUsers returns every EST user, by name.
	ListESTUsers(ctx context.Context) ([]pki.ESTUser, error)
	// DeleteESTUser removes a user and appends ev in the same transaction.
	// ErrNotFound if there is no such user.
	DeleteESTUser(ctx context.Context, name string, at time.Time, ev pki.AuditEvent) error

	// AppendAudit appends events in one transaction.
	AppendAudit(ctx context.Context, events ...pki.AuditEvent) error
	// ListAudit returns events matching f, newest first.
	ListAudit(ctx context.Context, f AuditFilter) ([]pki.AuditEvent, error)

	Close() error
}
