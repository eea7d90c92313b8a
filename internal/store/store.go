// Package store defines scepter's storage interface. Implementations
// (sqlite, later postgres) pass the one conformance suite in storetest.
// Everything a request depends on across nodes lives here, never in process
// memory: consumed challenges, replayed nonces, serial uniqueness.
package store

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/scepter/scepter/internal/pki"
)

var (
	// ErrNotFound: no such record.
	ErrNotFound = errors.New("store: not found")
	// ErrUnavailable: the store cannot be reached for now (the database is
	// down, restarting or unreachable); the operation may succeed later.
	// It is pki.ErrUnavailable, so the protocol edges answer 503.
	ErrUnavailable = pki.ErrUnavailable
	// ErrConflict: a uniqueness rule was hit (serial taken, nonce seen).
	ErrConflict = errors.New("store: conflict")
	// ErrChallengeUnusable: the one-time challenge is unknown, expired or
	// already consumed, so the transaction that wanted it was rolled back.
	ErrChallengeUnusable = errors.New("store: challenge unknown, expired or already used")
	// ErrTransactionClaimed: another issuance holds the claim on the SCEP
	// transaction (ReserveSerialClaiming), so nothing was reserved.
	ErrTransactionClaimed = errors.New("store: another issuance claimed the transaction")
	// ErrRenewsRevoked: the certificate an issuance renews (Issuance.Renews)
	// is revoked, so nothing was recorded.
	ErrRenewsRevoked = errors.New("store: the certificate renewed is revoked")
	// ErrKeyCompromised: the key of a certificate to record valid was
	// revoked as compromised (see CompromisedKey), so nothing was recorded.
	ErrKeyCompromised = errors.New("store: the key was revoked as compromised")
	// ErrOwnKey: the key of a certificate to record valid, issued to a
	// client, is the key of one of the server's own certificates in the
	// inventory (protocol internal: an RA's, an OCSP responder's, an HTTPS
	// listener's) or of an issuing CA the store records (CAGeneration:
	// current, next or older), so nothing was recorded. It comes as an
	// *OwnKeyError.
	ErrOwnKey = errors.New("store: the key is one of the server's own")
	// ErrBadCursor: a list cursor that no page of this list and filter
	// gave.
	ErrBadCursor = errors.New("store: invalid cursor")
	// ErrAuditTampered: the audit trail was changed outside scepter (a
	// record written after its head, or its head removed), so no event can
	// be chained to it, and a change whose event cannot be written does not
	// happen. It is a pki.Error of code EUnavailable: the protocol edges
	// answer 503 with its message rather than 500, as the operator must
	// mend the trail and the same request then succeeds.
	ErrAuditTampered error = &pki.Error{Code: pki.EUnavailable, Message: AuditTamperedMessage, RetryAfter: AuditTamperedRetryAfter}
)

// SpentChallengeError is LookupChallenge's ErrChallengeUnusable for a
// one-time challenge it found, by its hash, that can enroll no more: used
// already, or locked after too many uses for another profile or identity.
// An unknown or merely expired challenge is plain ErrChallengeUnusable.
type SpentChallengeError struct {
	ID      string
	Locked  bool // locked after misuses
	Expired bool // neither used nor locked, but past its lifetime
	// Neither: used already.
}

func (e *SpentChallengeError) Error() string {
	switch {
	case e.Locked:
		return "store: challenge " + e.ID + " is locked"
	case e.Expired:
		return "store: challenge " + e.ID + " has expired"
	}
	return "store: challenge " + e.ID + " was used already"
}

func (e *SpentChallengeError) Unwrap() error { return ErrChallengeUnusable }

// Why a store cannot write for now, when a driver can tell: each is
// wrapped together with ErrUnavailable (so the protocol edges answer 503),
// and /readyz and the console name it. They describe the database, never
// the request, and all end when the operator mends the cause.
var (
	// ErrDiskFull: the disk the database is on has no room left (SQLite's
	// SQLITE_FULL, PostgreSQL's disk_full).
	ErrDiskFull = errors.New("the disk is full")
	// ErrLocked: another process holds the database's write lock longer
	// than a write waits for it (an sqlite3 shell in a transaction, a
	// long lock on PostgreSQL).
	ErrLocked = errors.New("the database is locked by another process")
	// ErrReadOnly: the database takes no writes (a file system remounted
	// read-only, a PostgreSQL standby or default_transaction_read_only).
	ErrReadOnly = errors.New("the database is read-only")
)

// ErrFileGone: the store's database file was removed, or replaced by
// another file, while the server ran (SQLite): it neither reads nor
// writes, as what it wrote to the file it still holds would be lost. It
// comes wrapped with ErrUnavailable; restarting (after restoring a
// removed file) mends it.
var ErrFileGone = errors.New("the database file is no longer the one this process opened")

// CannotWriteCause returns which of ErrDiskFull, ErrLocked and ErrReadOnly
// err wraps, or nil.
func CannotWriteCause(err error) error {
	for _, cause := range []error{ErrDiskFull, ErrLocked, ErrReadOnly} {
		if errors.Is(err, cause) {
			return cause
		}
	}
	return nil
}

// AuditTamperedMessage is the message of ErrAuditTampered, which clients
// see too: it names nothing they could not learn by failing.
const AuditTamperedMessage = "the audit trail was changed outside scepter (a record after its head, or its head removed): run 'scepter audit verify'"

// AuditTamperedRetryAfter is the Retry-After sent with ErrAuditTampered:
// only the operator mends the trail, so a fleet need not ask every few
// seconds until then.
const AuditTamperedRetryAfter = 15 * time.Minute

// DetailHoldMadePermanent is the Detail of the event RevokeCertificate
// appends when it turns a certificateHold into another reason.
const DetailHoldMadePermanent = "certificateHold made permanent"

// ReasonRaisedDetail is the Detail of the event RevokeCertificate appends
// when it raises a revocation for reason `from` (neither a hold nor
// keyCompromise) to keyCompromise.
func ReasonRaisedDetail(from int) string {
	return "reason raised from " + reasonName(from) + " to keyCompromise"
}

// reasonName is an RFC 5280 CRLReason's name for an event's detail, or its
// code if it is not one.
func reasonName(code int) string {
	if name, ok := pki.ReasonName(code); ok {
		return name
	}
	return fmt.Sprintf("reason %d", code)
}

// ReasonKeyCompromise is RFC 5280's CRLReason keyCompromise: a revocation
// for it records the certificate's key as compromised (CompromisedKey).
const ReasonKeyCompromise = pki.ReasonKeyCompromise

// SharesKeyDetail is the Detail of the event Revoke appends for another
// certificate of a key revoked as compromised: it names the certificate
// whose revocation took it along.
func SharesKeyDetail(issuerID, serialHex string) string {
	return "shares the key of " + issuerID + " " + serialHex
}

// Revocation is what Revoke changed.
type Revocation struct {
	// Certificate is the record as it stands afterwards.
	Certificate *pki.Certificate
	// Changed is false when nothing was recorded (no event).
	Changed bool
	// AlsoRevoked names the other certificates of the same key that a
	// revocation for keyCompromise revoked with it, by issuer and serial.
	AlsoRevoked []CertRef
}

// OwnKeyError is ErrOwnKey with the server's certificate whose key it is:
// its profile (scep-ra, ocsp-responder, tls-server) and subject, or, for
// an issuing CA's key, its IssuerID and subject; empty when they could not
// be read.
type OwnKeyError struct {
	Profile string
	Subject string
	// IssuerID is set when the key is that of the issuing CA IssuerID
	// (a CAGeneration), Profile then empty.
	IssuerID string
}

func (e *OwnKeyError) Error() string {
	switch {
	case e.IssuerID != "":
		return fmt.Sprintf("%v (issuing CA %s, %s)", ErrOwnKey, e.IssuerID, e.Subject)
	case e.Profile == "":
		return ErrOwnKey.Error()
	}
	return fmt.Sprintf("%v (certificate of profile %s, %s)", ErrOwnKey, e.Profile, e.Subject)
}

func (e *OwnKeyError) Is(target error) bool { return target == ErrOwnKey }

// OwnKeyChecked reports whether RecordIssuance checks c's key against the
// server's own certificates (ErrOwnKey): a certificate this CA issued to a
// client, recorded valid. The server's own (protocol internal) certify its
// keys by design, a record made revoked may hold any key, and an imported
// certificate was signed by someone else.
func OwnKeyChecked(c *pki.Certificate) bool {
	return c.Protocol != pki.ProtocolInternal && c.Source == pki.SourceIssued && c.Status != pki.StatusRevoked
}

// RequestOwnKeyChecked reports whether CreateRequest checks r's key against
// the server's own certificates (ErrOwnKey), as RecordIssuance would check
// the certificate an approval of r issues: a request of a client, not of
// the server's own (protocol internal).
func RequestOwnKeyChecked(r *pki.EnrollmentRequest) bool {
	return r.Protocol != pki.ProtocolInternal
}

// CompromisedKey is a public key revoked as compromised: no certificate
// may be issued for it again (CA/B Forum BR §6.1.1.3).
type CompromisedKey struct {
	// KeyHash is KeyHash of the key's SubjectPublicKeyInfo.
	KeyHash []byte
	// IssuerID and SerialHex name the first certificate of the key
	// revoked for keyCompromise, and RevokedAt is that revocation's time
	// (a hold made permanent keeps the hold's).
	IssuerID  string
	SerialHex string
	RevokedAt time.Time
}

// KeyHash is what a compromised key is recorded and looked up by: the
// SHA-256 of its SubjectPublicKeyInfo (DER) as Go marshals it, which is
// how the CA writes it into the certificates it signs; a key that does
// not parse is hashed as it is spelled.
func KeyHash(spki []byte) []byte {
	if pub, err := x509.ParsePKIXPublicKey(spki); err == nil {
		if h, err := PublicKeyHash(pub); err == nil {
			return h
		}
	}
	h := sha256.Sum256(spki)
	return h[:]
}

// PublicKeyHash is KeyHash of a parsed key (a CSR's), without parsing it
// again.
func PublicKeyHash(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("store: key hash: %w", err)
	}
	h := sha256.Sum256(der)
	return h[:], nil
}

// CertKeyHash is KeyHash of a certificate's key, read from its DER
// without parsing the rest: a certificate imported from another CA that
// Go's parser refuses still has its key recorded.
func CertKeyHash(der []byte) ([]byte, error) {
	in := cryptobyte.String(der)
	var cert, tbs, spki cryptobyte.String
	if !in.ReadASN1(&cert, cbasn1.SEQUENCE) || !cert.ReadASN1(&tbs, cbasn1.SEQUENCE) ||
		!tbs.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) || // version
		!tbs.SkipASN1(cbasn1.INTEGER) || // serialNumber
		!tbs.SkipASN1(cbasn1.SEQUENCE) || // signature
		!tbs.SkipASN1(cbasn1.SEQUENCE) || // issuer
		!tbs.SkipASN1(cbasn1.SEQUENCE) || // validity
		!tbs.SkipASN1(cbasn1.SEQUENCE) || // subject
		!tbs.ReadASN1Element(&spki, cbasn1.SEQUENCE) {
		return nil, fmt.Errorf("store: no subject public key in the certificate's DER")
	}
	return KeyHash(spki), nil
}

// TransactionClaim is an issuance's claim on one SCEP transaction: its key
// (KeyHash), profile and transaction ID. Of copies of one request sent at
// once, to one node or several, only the one whose claim holds signs; the
// others answer with its certificate.
type TransactionClaim struct {
	KeyHash       []byte
	Profile       string
	TransactionID string
	// Claimant is the issuance's own random ID: a claim made again by the
	// same claimant holds (a retry of its own write), and only it releases.
	Claimant []byte
	// At is when it is claimed (ReleaseTransactionClaim: when it is
	// released). The claim lapses at Expires, released or not, so that an
	// issuance that died holding it blocks nobody for long.
	At, Expires time.Time
}

// EndedClaimRetention is how long a claim on a SCEP transaction is kept
// after it ended (its issuance recorded, or released) or lapsed, before
// PurgeExpired removes it. While it is kept, the next claim of the
// transaction takes it over (ReserveSerialClaiming says so) and looks for
// a certificate recorded meanwhile; a claim that finds no row at all
// proves that no issuance of its transaction was recorded within this
// while (Issuance.Claim), so a request that looked for one less than this
// while before need not look again. Nodes' clocks may differ by a good
// part of it and this still holds.
const EndedClaimRetention = 10 * time.Minute

// Issuance is everything recorded, in one transaction, when a certificate is
// issued.
type Issuance struct {
	Certificate pki.Certificate
	// ConsumeChallengeHash, when set, names a one-time challenge that is
	// consumed by this issuance; if it cannot be consumed (already used,
	// expired) nothing is recorded and ErrChallengeUnusable is returned.
	ConsumeChallengeHash []byte
	// KeyHash, when set, is KeyHash of the certificate's key as the
	// caller made it already (PublicKeyHash of the key it certified);
	// otherwise the store hashes the key in the certificate's DER.
	KeyHash []byte
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
	// Renews, when set, names the certificate this issuance renews. It is
	// read in the transaction, locked against other writers until it
	// ends: revoked (by a revocation, or by a renewal that superseded it,
	// committed before), nothing is recorded and ErrRenewsRevoked is
	// returned; unknown, ErrNotFound. So a revocation and a renewal, or
	// two renewals that supersede, racing each other cannot both win.
	Renews *CertRef
	// Claim, when set, is the claim on its SCEP transaction the issuance
	// made (ReserveSerialClaiming), or, for an issuance of a SCEP
	// transaction that made none (a renewal, a one-time challenge's), one
	// that no claimant held. Recording the certificate ends it at Now, in
	// the same transaction: the claimant's own claim, or else any claim
	// of the transaction that is ended or lapsed, or else (no row) a new
	// ended one; a live claim of another claimant is left to it, as it
	// ends later. The transaction is free to claim again at once, by a
	// request that looks for that certificate first: the ended claim,
	// kept EndedClaimRetention, tells its next claimant to look.
	Claim *TransactionClaim
}

// CertRef names one certificate.
type CertRef struct {
	IssuerID  string
	SerialHex string
}

// RequestFilter selects enrollment requests, newest first.
type RequestFilter struct {
	// Status keeps requests of this status ("" for any). With Now,
	// RequestPending keeps those whose retention has not run out at Now
	// and RequestExpired those pending at or after their ExpiresAt;
	// RequestExpired without Now is refused.
	Status  pki.RequestStatus
	Profile string
	// Now, when set, is the time the list is of: every request is
	// returned with its status at Now (pki.EnrollmentRequest.StatusAt),
	// a pending one past its retention as RequestExpired. Zero lists the
	// stored status.
	Now   time.Time
	Limit int // default 100, max 1000
	// Cursor is the nextCursor of the previous page ("" for the first):
	// only requests listed after that page's last one (older) are
	// returned, whether or not it still exists. ErrBadCursor for one no
	// page of requests gave.
	Cursor string
}

// ChallengeFilter selects one-time challenges, newest first.
type ChallengeFilter struct {
	Limit int // default 100, max 1000
	// Cursor is the nextCursor of the previous page, as
	// RequestFilter.Cursor.
	Cursor string
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
	Protocol      pki.Protocol
	// Search keeps certificates whose subject, a SAN or the serial holds
	// this text, case-insensitive, with RFC 4514 escapes or without
	// ("Doe, John" and "Doe\, John" alike; 3 characters or more: an index
	// lookup).
	Search string
	// IssuedAfter and IssuedBefore, when set, keep certificates recorded
	// at IssuedAfter <= CreatedAt < IssuedBefore.
	IssuedAfter, IssuedBefore time.Time
	// Renewed, when set, keeps only the certificates that another
	// certificate renews (RenewedYes) or only those none renews
	// (RenewedNo: those still to renew).
	Renewed RenewedFilter
	// Limit bounds the page (default 100, maximum 1000).
	Limit int
	// Cursor is the opaque NextCursor of the previous page.
	Cursor string
}

// RenewedFilter selects certificates by whether a renewal replaced them.
type RenewedFilter string

// The values of CertFilter.Renewed.
const (
	RenewedAny RenewedFilter = ""
	RenewedYes RenewedFilter = "true"
	RenewedNo  RenewedFilter = "false"
)

// Dashboard is what the console's first page shows, from counters the
// store keeps with every change (no scan of the inventory).
type Dashboard struct {
	// ByStatus counts certificates: "valid" (unexpired), "expired"
	// (valid, but past NotAfter at now) and "revoked".
	ByStatus map[string]int64
	// ByProfile counts unexpired valid certificates per profile.
	ByProfile map[string]int64
	// Expiring counts valid certificates expiring within 7, 30 and 90
	// days of now (as ListCertificates lists them between now and
	// now+days), keyed by the number of days.
	Expiring map[int]int64
	// Days are the counts per UTC day, oldest first, of the days asked
	// for: issued, renewed, revoked, refused.
	Days []DayCount
	// Pending counts the requests held for approval whose retention has
	// not run out.
	Pending int64
}

// DayCount is what happened on one UTC day.
type DayCount struct {
	Day                               time.Time
	Issued, Renewed, Revoked, Refused int64
}

// AuditFilter selects audit events, newest first.
type AuditFilter struct {
	Type      string
	SerialHex string
	// Since and Until, when set, keep events with Since <= Time < Until.
	Since, Until time.Time
	Limit        int
	// BeforeID pages backwards: only events with ID < BeforeID.
	BeforeID int64
}

// RevokedEntry is one certificate of a CRL.
type RevokedEntry struct {
	SerialHex string
	RevokedAt time.Time
	Reason    int // RFC 5280 CRLReason
}

// CRL is one signed generation of an issuer's CRL.
type CRL struct {
	IssuerID   string
	Number     int64
	ThisUpdate time.Time
	NextUpdate time.Time
	// RevocationSeq is the issuer's revocation counter the CRL reflects
	// (read before its entries were).
	RevocationSeq int64
	Entries       int
	DER           []byte
	CreatedAt     time.Time
}

// AuditHead is the end of the audit chain: the newest record's ID and
// Hash, and the number of records (zero values for an empty trail, whose
// head hash is pki.AuditGenesis).
type AuditHead struct {
	LastID   int64
	LastHash []byte
	Count    int64
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
	//
	// The reservation is committed, and so decides, before it returns; a
	// store may leave it to the next durable write to make it durable (the
	// SQLite store does: its log is written and recovered in order). A crash
	// can then lose it only together with a certificate never recorded,
	// hence never sent.
	ReserveSerial(ctx context.Context, issuerID, serialHex string, tbs []byte, at time.Time) error
	// ReserveSerialClaiming is ReserveSerial at c.At that also claims c's
	// transaction, in the same transaction (no write of its own):
	// ErrTransactionClaimed, and nothing reserved, while another
	// claimant's unexpired claim holds it (of claimants at once, on any
	// node, one wins); an expired or ended claim is taken over.
	// ErrConflict for a taken serial, and nothing claimed. Like the
	// reservation, the claim may become durable only with the next
	// durable write: a crash can lose it only with a certificate never
	// recorded.
	//
	// tookOver says the transaction had a row already (a claim ended,
	// released or lapsed, or c.Claimant's own): a certificate of it may
	// have been recorded since the caller last looked. False, the claim is
	// a new row: none was recorded within EndedClaimRetention.
	ReserveSerialClaiming(ctx context.Context, c TransactionClaim, issuerID, serialHex string, tbs []byte) (tookOver bool, err error)
	// An issuance that records its certificate ends its claim
	// (Issuance.Claim): whoever claims the transaction next must look for
	// that certificate before signing.
	//
	// ReleaseTransactionClaim ends c's claim at c.At if c.Claimant still
	// holds it (an issuance that failed with nothing recorded), so that
	// the transaction can be asked again at once; nothing to do
	// otherwise. The ended claim is kept, as a recorded one is: the claim
	// may have taken over one that a recorded certificate ended.
	ReleaseTransactionClaim(ctx context.Context, c TransactionClaim) error
	// TransactionClaimOf returns the claim row of this key (KeyHash),
	// profile and SCEP transaction ID as it stands: live (Expires after
	// now), ended (Expires zero: recorded or released) or lapsed (an
	// issuance that died holding it); ErrNotFound when there is none
	// (never claimed, or purged). A replayed message reads it to tell a
	// transaction still in flight from one done with.
	TransactionClaimOf(ctx context.Context, keyHash []byte, profile, transactionID string) (*TransactionClaim, error)
	// RecordIssuance stores the certificate, registers its serial (already
	// reserved, normally), consumes the challenge if asked, and appends the
	// events, all in one transaction. A certificate recorded revoked for
	// keyCompromise has its key recorded as compromised, as by
	// RevokeCertificate. The certificate's KeyHash (CertKeyHash of its
	// DER) is kept with it, indexed, for Revoke to find the other
	// certificates of a compromised key; opening a store whose
	// certificates were recorded before that hashes theirs once, in
	// batches of a transaction each. ErrConflict if a certificate with the
	// same issuer and serial is recorded already; ErrKeyCompromised if the
	// certificate is not recorded revoked and its key is recorded as
	// compromised (checked in the transaction, which takes turns with a
	// keyCompromise revocation of the key: one of them sees the other);
	// ErrOwnKey (an *OwnKeyError) if OwnKeyChecked and the key is that of
	// a certificate of protocol internal or of a recorded CAGeneration: a
	// new RA that 'ca renew-ra' or 'ca rollover' recorded, or the next
	// issuing CA of 'ca rollover', is refused before any server reloads
	// its CA.
	RecordIssuance(ctx context.Context, in Issuance) error
	// Certificate returns one record by issuer and serial.
	Certificate(ctx context.Context, issuerID, serialHex string) (*pki.Certificate, error)
	// CertificatesBySerial returns every record with this serial (any issuer).
	CertificatesBySerial(ctx context.Context, serialHex string) ([]pki.Certificate, error)
	// CertificatesOfTransaction returns the valid (unrevoked) records of
	// this key (KeyHash), profile and SCEP transaction ID issued after
	// issuedAfter, oldest first, at most a few: what a resent request of
	// that transaction was answered with.
	CertificatesOfTransaction(ctx context.Context, keyHash []byte, profile, transactionID string, issuedAfter time.Time) ([]pki.Certificate, error)
	// ListCertificates returns one page and the cursor of the next ("" at the end).
	ListCertificates(ctx context.Context, f CertFilter) (certs []pki.Certificate, nextCursor string, err error)
	// RevokeCertificate marks a certificate revoked with an RFC 5280
	// reason code at `at` by ev.Actor, bumps its issuer's revocation state
	// and appends ev, all in one transaction. A revocation for
	// keyCompromise (a hold made permanent with it included) also records
	// the certificate's key as compromised (see CompromisedKey) in that
	// transaction, unless its key was recorded already or its DER holds
	// none. It returns the record as it
	// stands afterwards and whether anything changed. Revoking again
	// changes nothing (no event, changed false), but for two cases. A
	// certificate on hold (reason 6, certificateHold) given another reason:
	// the hold becomes that revocation, at the time of the hold, and the
	// store sets ev.Detail to DetailHoldMadePermanent. A certificate
	// revoked for any other reason but keyCompromise given keyCompromise
	// (its key found compromised later): the reason is raised, the time
	// stays (the CRL entry's date), the key is recorded and its other
	// certificates revoked as below, and ev.Detail is ReasonRaisedDetail.
	// Only the transaction knows which case it is: a hold may be lifted
	// between a caller's read and this call. ErrNotFound if unknown.
	//
	// A revocation that changes the certificate to keyCompromise also
	// revokes, in the same transaction, every other certificate of the
	// same key (by KeyHash: any issuer, any profile) that is unexpired at
	// `at` and valid or on hold: for keyCompromise, at `at`, by ev.Actor, each
	// with an event like ev naming it and SharesKeyDetail of this one; one
	// on hold keeps its hold's time, as a hold made permanent does (CA/B
	// Forum BR §4.9.1.1). Every issuer touched has its revocation state
	// bumped. RevokeCertificate is Revoke without the list of those.
	RevokeCertificate(ctx context.Context, issuerID, serialHex string, reason int, at time.Time, ev pki.AuditEvent) (*pki.Certificate, bool, error)
	// Revoke is RevokeCertificate, reporting the other certificates of
	// the key it revoked as well.
	Revoke(ctx context.Context, issuerID, serialHex string, reason int, at time.Time, ev pki.AuditEvent) (Revocation, error)
	// UnholdCertificate lifts a certificateHold: the certificate is valid
	// again, its issuer's revocation state is bumped and ev appended in one
	// transaction. A valid certificate is left as it is (changed false, no
	// event); one revoked for another reason is ErrConflict, for good.
	// ErrNotFound if unknown.
	UnholdCertificate(ctx context.Context, issuerID, serialHex string, at time.Time, ev pki.AuditEvent) (*pki.Certificate, bool, error)
	// CompromisedKey returns the record of the key whose KeyHash this is,
	// revoked as compromised, or ErrNotFound: one indexed read, made
	// before every issuance. Opening a store whose certificates were
	// revoked for keyCompromise before these records were kept records
	// their keys once.
	CompromisedKey(ctx context.Context, keyHash []byte) (*CompromisedKey, error)
	// RevocationState returns each issuer's revocation counter, which
	// every change of a certificate's revocation status bumps (issuers
	// whose certificates never changed are absent: zero).
	RevocationState(ctx context.Context) (map[string]int64, error)
	// LastUnhold returns when a hold on one of an issuer's certificates
	// was last lifted (zero: never), which its next CRL is not dated
	// before: the unhold drops an entry, and a CRL without it must not
	// say it was current while the certificate was still held.
	LastUnhold(ctx context.Context, issuerID string) (time.Time, error)
	// RevokedCertificates returns an issuer's revoked certificates whose
	// NotAfter is after notAfterAfter, by serial: a CRL's cut-off, well
	// before its thisUpdate, so that an entry stays until a CRL issued
	// beyond the certificate's end has carried it (RFC 5280 §3.3).
	RevokedCertificates(ctx context.Context, issuerID string, notAfterAfter time.Time) ([]RevokedEntry, error)
	// LatestCRL returns an issuer's newest CRL, or ErrNotFound.
	LatestCRL(ctx context.Context, issuerID string) (*CRL, error)
	// LatestCRLNumber returns the number of an issuer's newest CRL, or
	// ErrNotFound: what a node that polls for CRLs published elsewhere
	// reads, rather than the whole CRL every time.
	LatestCRLNumber(ctx context.Context, issuerID string) (int64, error)
	// PutCRL stores a new CRL generation, whose Number must be above the
	// newest stored: ErrConflict otherwise, when another node stored that
	// generation (or a later one) first. It is normally the newest plus one
	// (1 for the first); it may skip numbers, as it does after a store
	// restored from an older copy, where a node numbers above the CRLs it
	// published from the newer one (RFC 5280 §5.2.3 forbids reusing
	// them). Generations more than keep behind the new one are deleted in
	// the same transaction.
	PutCRL(ctx context.Context, crl CRL, keep int) error

	// CreateChallenge stores a one-time challenge (hash only) with its audit event.
	CreateChallenge(ctx context.Context, ch pki.Challenge, ev pki.AuditEvent) error
	// LookupChallenge returns the unconsumed, unexpired, unlocked challenge
	// with this hash, or ErrChallengeUnusable: a *SpentChallengeError when
	// the challenge was used already or is locked. It
	// changes nothing; consumption happens in RecordIssuance.
	LookupChallenge(ctx context.Context, hash []byte, now time.Time) (*pki.Challenge, error)
	// ChallengeIssued returns the certificate ("issuerID:serialHex") whose
	// issuance used up the one-time challenge with this hash, or "" when
	// none did (unknown, unused, or used by a held request).
	ChallengeIssued(ctx context.Context, hash []byte) (string, error)
	// RecordChallengeMisuse counts a presentation of the challenge for a
	// profile or identity it is not bound to, and locks it (for good) once
	// it has been misused lockAfter times; ev is appended in the same
	// transaction. It reports whether the challenge is locked now.
	// ErrChallengeUnusable when the challenge is unknown, used, expired or
	// already locked.
	RecordChallengeMisuse(ctx context.Context, hash []byte, now time.Time, lockAfter int, ev pki.AuditEvent) (locked bool, err error)
	// ListChallenges returns challenges newest first (at most f.Limit),
	// consumed and expired ones too (secrets are never stored), and the
	// cursor of the next page ("" at the end).
	ListChallenges(ctx context.Context, f ChallengeFilter) (challenges []pki.Challenge, nextCursor string, err error)

	// RememberNonce records a (transactionID, senderNonce) pair until expires.
	// ErrConflict if the pair is already remembered: the message is a replay
	// (a *NonceSeen, which says until when it is remembered).
	// Like ReserveSerial, it may become durable only with the next durable
	// write: a crash can forget a nonce only with an issuance that was never
	// acknowledged.
	RememberNonce(ctx context.Context, transactionID string, senderNonce []byte, now, expires time.Time) error
	// ForgetNonce forgets a remembered pair (nothing to do for one not
	// remembered): the message's operation changed nothing (it was
	// answered 503), and the client may send the same message again. Like
	// RememberNonce, it may become durable only with the next durable
	// write: a crash may keep the pair, and the retry is then refused as
	// a replay.
	ForgetNonce(ctx context.Context, transactionID string, senderNonce []byte) error
	// MarkNonceRefused records that the run of the message that
	// remembered the pair ended refused (nothing to do for a pair not
	// remembered): a replay of it then says so (NonceSeen.Refused), on
	// every node of the store, and is refused at once rather than told to
	// wait for a run that is over. The mark holds while the pair is
	// remembered, not past an expired pair's replacement. Like
	// RememberNonce, it may become durable only with the next durable
	// write: a crash may lose the mark, and the pair is then as unmarked.
	MarkNonceRefused(ctx context.Context, transactionID string, senderNonce []byte) error
	// PurgeExpired removes remembered nonces, transaction claims (ended
	// or lapsed EndedClaimRetention before now), enrollment requests,
	// sessions and unknown names' login failures whose retention is over
	// at now: a request's at its ExpiresAt as read (a decided one's
	// counted from its decision, see pki.EnrollmentRequest.ExpiresAt).
	// Each request it removes that was still pending (expired without a
	// decision) gets a pki.EventRequestExpired event, at now, in the same
	// transaction: once, however many nodes purge at the same time.
	PurgeExpired(ctx context.Context, now time.Time) error

	// CreateRequest stores a request held for approval, with its audit
	// event. ErrConflict if a request with the same (profile, transaction
	// ID, key of its CSR: RequestKeyHash) is still pending: the caller
	// answers PENDING instead; another key's pending request under the
	// same ID is another transaction, and blocks nothing. When
	// consumeChallengeHash is set, the one-time challenge that
	// authenticated the request is consumed in the same transaction
	// (at r.CreatedAt); ErrChallengeUnusable and nothing stored if it
	// cannot be. A request whose key no approval could issue is not
	// stored: ErrKeyCompromised, or (but for protocol internal) an
	// *OwnKeyError, as RecordIssuance refuses it, in the same transaction.
	CreateRequest(ctx context.Context, r pki.EnrollmentRequest, consumeChallengeHash []byte, ev pki.AuditEvent) error
	// RequestByTransaction returns the newest request with this profile and
	// transaction ID, made with one of keys (RequestKeys.Match), that has
	// not been purged, or ErrNotFound.
	RequestByTransaction(ctx context.Context, profile, transactionID string, keys RequestKeys) (*pki.EnrollmentRequest, error)
	// RequestsByKey returns the requests of profile whose CSR holds the
	// key of this SubjectPublicKeyInfo (RequestKeyHash), under any
	// transaction ID, that have not been purged, newest first: for a
	// protocol whose transaction IDs the server derives from the request
	// (EST), to find a held request sent again with its subject encoded
	// otherwise. None found is an empty list, not ErrNotFound.
	RequestsByKey(ctx context.Context, profile string, spki []byte) ([]pki.EnrollmentRequest, error)
	// Request returns a request by ID, or ErrNotFound.
	Request(ctx context.Context, id string) (*pki.EnrollmentRequest, error)
	// ListRequests returns requests matching f, newest first, and the
	// cursor of the next page ("" at the end).
	ListRequests(ctx context.Context, f RequestFilter) (requests []pki.EnrollmentRequest, nextCursor string, err error)
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
	// AuditChain returns up to limit records (default 1000, at most 10000)
	// with an ID above afterID, in ID order, with their stored PrevHash and
	// Hash: the trail as `audit verify` walks it. afterID math.MinInt64
	// starts at the very first record, whatever its ID (one inserted with
	// that ID behind scepter's back included). Every append chains its
	// records (see pki.AuditChainHash) in the transaction that writes them.
	AuditChain(ctx context.Context, afterID int64, limit int) ([]pki.AuditEvent, error)
	// AuditHead returns the newest record of the chain as the store last
	// wrote it, and how many records the chain has.
	AuditHead(ctx context.Context) (AuditHead, error)

	// Expiry notifications.

	// ExpiringCertificates returns one page of the certificates an expiry
	// notification may be due for at q.Now: status valid, q.Now < NotAfter
	// <= q.Now+q.Within, and renewed by no recorded certificate (none names
	// them in RenewedFrom); ordered by NotAfter, each with the smallest
	// threshold recorded for it on q.Channel. nextCursor is "" after the
	// last page.
	ExpiringCertificates(ctx context.Context, q ExpiryQuery) (certs []ExpiringCertificate, nextCursor string, err error)
	// RecordNotifications inserts, in one transaction, the notifications
	// whose key is not recorded yet and leaves recorded ones as they are,
	// so that schedulers running at once record one intent. Status must
	// be pending or skipped, CreatedAt and NextAttemptAt set. It returns
	// how many it inserted.
	RecordNotifications(ctx context.Context, ns []Notification) (inserted int, err error)
	// ClaimNotifications leases up to q.Limit pending notifications due at
	// q.Now (NextAttemptAt <= Now), on q.Channels, whose lease is free or
	// has run out, to q.Owner until Now+Lease, earliest due first. A
	// notification is leased to one owner at a time: of claimers racing,
	// one wins it. A lease that runs out (the owner died mid-send) lets
	// another claim it; with q.Reclaim, q.Owner takes back its own running
	// leases at once, before any other (they come first in the batch).
	// Times further ahead than a claimer could have put
	// them (taken by a clock that was ahead, and has been set back since)
	// are brought back first: a NextAttemptAt after Now+q.MaxDelay is due
	// at Now, a lease ending after Now+q.Lease ends then (every claimer
	// must use the same Lease).
	ClaimNotifications(ctx context.Context, q ClaimQuery) ([]ClaimedNotification, error)
	// FinishNotification records what became of a notification o.Owner
	// has claimed and releases the lease, appending o.Events in the same
	// transaction: sent, given up (failed), skipped, cancelled, or pending
	// again until o.NextAttemptAt. ErrConflict if it is not pending or
	// leased to another owner now (its lease ran out and was taken over),
	// ErrNotFound if unknown; nothing is recorded then.
	FinishNotification(ctx context.Context, o NotificationOutcome) error
	// Notifications returns the notifications of one certificate, by
	// channel and threshold (longest first).
	Notifications(ctx context.Context, issuerID, serialHex string) ([]Notification, error)

	// Console and API: people, tokens, sessions, the dashboard.

	// CreateUser stores a console user with its audit event; ErrConflict
	// if the name is taken.
	CreateUser(ctx context.Context, u pki.User, ev pki.AuditEvent) error
	// User returns a user by name, or ErrNotFound.
	User(ctx context.Context, name string) (*pki.User, error)
	// ListUsers returns every user, by name.
	ListUsers(ctx context.Context) ([]pki.User, error)
	// DeleteUser removes a user and their sessions, and appends ev, in one
	// transaction; ErrNotFound if there is no such user.
	DeleteUser(ctx context.Context, name string, ev pki.AuditEvent) error
	// RecordLogin records a login attempt of a known user: a success
	// clears the failure count and any lock and sets LastLoginAt; a
	// failure counts one more and, when lockUntil is set, locks the user
	// until then. ev (a failure's) is appended when it has a Type. It
	// returns the failure count after the attempt.
	RecordLogin(ctx context.Context, name string, ok bool, at, lockUntil time.Time, ev pki.AuditEvent) (failed int, err error)
	// ClaimLoginAttempt counts a login attempt of a known user as a
	// failure before its password is checked, in one transaction, so that
	// attempts made at once cannot all read the same count: when the user
	// is locked at at, it changes nothing and returns the lock (Refused);
	// otherwise the failure count goes up by one and, when lockFor of the
	// new count is above zero, the user is locked from at for that long
	// already. A count not claimed again before its expiry (expires, set
	// anew by each counted attempt) is forgotten, as an unknown name's is
	// (ClaimUnknownLoginAttempt). A success then clears both (RecordLogin).
	// ErrNotFound for an unknown user.
	ClaimLoginAttempt(ctx context.Context, name string, at, expires time.Time, lockFor func(failures int) time.Duration) (LoginAttempt, error)
	// ClaimUnknownLoginAttempt is ClaimLoginAttempt for a name that is no
	// user's, counted under nameKey (a keyed hash of the name, never the
	// name) so that every node, before and after a restart, locks such a
	// name out as it would a user. A count not claimed again before its
	// expiry (expires, set anew by each counted attempt) is forgotten, and
	// PurgeExpired removes it. A refused attempt writes nothing.
	ClaimUnknownLoginAttempt(ctx context.Context, nameKey []byte, at, expires time.Time, lockFor func(failures int) time.Duration) (LoginAttempt, error)
	// LoginNameKey returns the key of ClaimUnknownLoginAttempt's name
	// hashes, one for the whole store: the stored one, or candidate,
	// stored, when there is none yet (of callers at once, one candidate
	// wins and all get it).
	LoginNameKey(ctx context.Context, candidate []byte) ([]byte, error)

	// CreateToken stores an API token (hash only) with its audit event;
	// ErrConflict if a live token has the name.
	CreateToken(ctx context.Context, t pki.APIToken, ev pki.AuditEvent) error
	// TokenByHash returns the token with this hash (live or not), or
	// ErrNotFound.
	TokenByHash(ctx context.Context, hash []byte) (*pki.APIToken, error)
	// ListTokens returns every token, newest first (never a secret: only
	// hashes are stored).
	ListTokens(ctx context.Context) ([]pki.APIToken, error)
	// RevokeToken revokes a live token by ID or name at `at` and appends
	// ev; ErrNotFound if no live token has that ID or name.
	RevokeToken(ctx context.Context, idOrName string, at time.Time, ev pki.AuditEvent) (*pki.APIToken, error)
	// TouchToken records a token's use (at most once a minute is enough).
	TouchToken(ctx context.Context, id string, at time.Time) error

	// CreateSession stores a console session.
	CreateSession(ctx context.Context, s pki.Session) error
	// Session returns the unexpired session with this hash at now, or
	// ErrNotFound.
	Session(ctx context.Context, hash []byte, now time.Time) (*pki.Session, error)
	// DeleteSession ends a session (logout); no error if it is gone.
	DeleteSession(ctx context.Context, hash []byte) error

	// DeleteChallenge removes an unused one-time challenge by ID and
	// appends ev; ErrNotFound if there is none.
	DeleteChallenge(ctx context.Context, id string, ev pki.AuditEvent) error
	// RenewalsOf returns the certificates that renew this one (whose
	// RenewedFrom names it), oldest first.
	RenewalsOf(ctx context.Context, issuerID, serialHex string) ([]pki.Certificate, error)
	// Dashboard returns the counts at now, with the last `days` UTC days
	// of the chart (today included).
	Dashboard(ctx context.Context, now time.Time, days int) (Dashboard, error)

	// The CA shared by every node on this store: its generations
	// (issuing CA and RA certificates) and when each becomes current.

	// CAGenerations returns every recorded generation, oldest switch time
	// first (the first generation has a zero SwitchAt).
	CAGenerations(ctx context.Context) ([]CAGeneration, error)
	// PublishCAGeneration records g and appends ev in the same
	// transaction. A generation recorded already (same IssuerID and the
	// same issuing CA certificate) is left as it is and reported with
	// inserted false. ErrConflict when the IssuerID is recorded with
	// another certificate or switch time, or g's RootFingerprint differs
	// from a recorded generation's (the caller's CA is not this store's),
	// or the IssuerID was discarded (DiscardCAGeneration).
	PublishCAGeneration(ctx context.Context, g CAGeneration, ev pki.AuditEvent) (inserted bool, err error)
	// PromoteCAGeneration records, once, that the generation issuerID
	// became current at its switch time: it sets PromotedAt to at and
	// appends ev in the same transaction when the generation's SwitchAt
	// is at or before at and it was not promoted yet. Of nodes racing,
	// exactly one gets promoted true. ErrNotFound for an unknown ID.
	PromoteCAGeneration(ctx context.Context, issuerID string, at time.Time, ev pki.AuditEvent) (promoted bool, err error)
	// DiscardCAGeneration removes the generation issuerID while it is
	// still to come (its SwitchAt after now, never promoted), records
	// that it was discarded (at now, by ev.Actor) and appends ev, in one
	// transaction: a rollover undone before its switch. From then on
	// PublishCAGeneration refuses it, so that a node still holding it
	// cannot schedule it again. An ID never recorded is recorded as
	// discarded, with ev, all the same (a rollover no server recorded
	// yet, whose copies must not be recorded later). ErrNotFound for an ID
	// discarded before, ErrConflict for a generation that is current or
	// was (the first one included).
	DiscardCAGeneration(ctx context.Context, issuerID string, now time.Time, ev pki.AuditEvent) error
	// DiscardedCAGenerations returns the generations DiscardCAGeneration
	// removed, oldest discard first.
	DiscardedCAGenerations(ctx context.Context) ([]DiscardedCAGeneration, error)

	// Ping reports whether the store answers, with a cheap read (readiness
	// probes): nil when it does.
	Ping(ctx context.Context) error
	// CanWrite reports whether a write would be committed now (readiness
	// probes, at most every few seconds): nil when it would, else an
	// error wrapping ErrUnavailable and, when known, the cause
	// (CannotWriteCause). A store that reads but cannot write (a full
	// disk, a database locked by another process, a read-only one) fails
	// it while Ping passes. It commits nothing lasting and appends no
	// audit event; it may answer from the outcome of the writes since
	// its previous call instead of trying one.
	CanWrite(ctx context.Context) error
	Close() error
}

// CAGeneration is one issuing CA of the CA every node on a store shares:
// the store holds the certificates and the schedule, never a key (keys
// are in each node's data directory or in a shared HSM).
type CAGeneration struct {
	// IssuerID is the issuing CA's ID (ca.Issuer.ID, the SHA-256 of its
	// certificate's DER, hex). The store also keeps the KeyHash of the
	// certificate's key, which RecordIssuance refuses to a client
	// (ErrOwnKey).
	IssuerID string
	// RootFingerprint is "sha256:…" of the root it chains to.
	RootFingerprint string
	// IssuerDER is the issuing CA certificate.
	IssuerDER []byte
	// RADER is the RA certificate that went with it when it was
	// published (empty when the CA acts as its own RA). Informational:
	// nodes may renew their RA certificate on their own.
	RADER []byte
	// SwitchAt is when the generation becomes current; zero for the first.
	SwitchAt time.Time
	// PublishedAt and PublishedBy say when and by which node it was
	// recorded.
	PublishedAt time.Time
	PublishedBy string
	// PromotedAt is when a node recorded the switch (zero: not yet, or
	// the first generation).
	PromotedAt time.Time
}

// DiscardedCAGeneration is a generation discarded before its switch
// (`scepter ca rollover --discard`): its keys may be gone, so no node may
// record, schedule or switch to it again.
type DiscardedCAGeneration struct {
	IssuerID    string
	DiscardedAt time.Time
	DiscardedBy string // the discard's actor
}

// NotificationStatus is the state of one expiry notification.
type NotificationStatus string

const (
	// NotificationPending: to be sent (again) at NextAttemptAt.
	NotificationPending NotificationStatus = "pending"
	// NotificationSent: delivered.
	NotificationSent NotificationStatus = "sent"
	// NotificationSkipped: never sent, because a more urgent threshold
	// was crossed at the same time (one message, not several at once).
	NotificationSkipped NotificationStatus = "skipped"
	// NotificationFailed: given up for good.
	NotificationFailed NotificationStatus = "failed"
	// NotificationCancelled: no longer wanted (the certificate was
	// renewed or revoked before it went out).
	NotificationCancelled NotificationStatus = "cancelled"
)

// NotificationKey names one notification: a certificate, a threshold
// before its NotAfter, and a channel ("smtp", "webhook").
type NotificationKey struct {
	IssuerID  string
	SerialHex string
	Threshold time.Duration
	Channel   string
}

// Notification is one recorded expiry notification and its delivery state.
type Notification struct {
	NotificationKey
	Status NotificationStatus
	// Attempts counts the sends tried (a send cut short by a crash is not
	// counted).
	Attempts      int
	NextAttemptAt time.Time
	// ClaimedBy holds the lease until ClaimedUntil (zero values when free).
	ClaimedBy    string
	ClaimedUntil time.Time
	LastError    string
	CreatedAt    time.Time
	SentAt       time.Time // zero unless sent
	// Accepted and Refused are the recipients (of a mail) that have
	// accepted it, or refused it for good, so far: a retry goes to the
	// others only, and nobody gets a second copy.
	Accepted []string
	Refused  []string
}

// ExpiryQuery selects the certificates expiry notifications may be due for.
type ExpiryQuery struct {
	Now    time.Time
	Within time.Duration // the largest threshold of any profile
	// Channel is the channel whose notifications NotifiedThreshold
	// considers ("" for any).
	Channel string
	// Limit bounds the page (default 100, maximum 1000).
	Limit int
	// Cursor is the nextCursor of the previous page.
	Cursor string
}

// ExpiringCertificate is a candidate for an expiry notification. DER is
// left out.
type ExpiringCertificate struct {
	Certificate pki.Certificate
	// NotifiedThreshold is the smallest threshold recorded for the
	// certificate on the query's channel (any status); 0 when none is.
	NotifiedThreshold time.Duration
}

// ClaimQuery asks for due notifications to send.
type ClaimQuery struct {
	Owner string
	// Channels limits the claim to the channels the claimer can send on
	// (a node without a mail server leaves mail to the others); empty
	// means any.
	Channels []string
	Now      time.Time
	Lease    time.Duration
	// MaxDelay is the longest a failed notification is put off (the
	// longest backoff); 0 leaves every NextAttemptAt as it is.
	MaxDelay time.Duration
	// Limit bounds the batch (default 100, maximum 1000).
	Limit int
	// Reclaim makes the notifications leased to Owner claimable too, lease
	// running or not, and claims those of a running lease before any
	// other: for a claimer that sends nothing while it claims, so that
	// whatever is leased to its name is left from a process that died (a
	// node restarted under the same Owner), the most delayed already, and
	// is not held for the rest of that lease. Owner must then be one
	// sender's alone.
	Reclaim bool
}

// ClaimedNotification is a notification leased to one sender, with the
// certificate it is about as it stands now (DER left out).
type ClaimedNotification struct {
	Notification
	Certificate pki.Certificate
	// Renewed: a recorded certificate names this one in RenewedFrom.
	Renewed bool
	// SupersededBy is the smallest threshold below this one recorded
	// pending or sent for the same certificate and channel (a more urgent
	// notification that replaces this one); 0 when there is none.
	SupersededBy time.Duration
}

// NotificationOutcome ends (or postpones) a claimed notification.
type NotificationOutcome struct {
	NotificationKey
	// Owner must hold the notification's lease.
	Owner string
	// Status is pending (try again at NextAttemptAt), sent, failed,
	// skipped or cancelled.
	Status        NotificationStatus
	NextAttemptAt time.Time
	// Attempted counts one more send tried.
	Attempted bool
	// Error is the reason of a failed attempt, a skip or a cancellation
	// ("" clears it).
	Error string
	// Accepted and Refused replace the recorded recipients that have
	// accepted or refused the notification for good (see Notification);
	// an outcome that sent nothing passes the claimed ones on.
	Accepted []string
	Refused  []string
	// Now is the outcome's time: SentAt of a sent notification, and the
	// time of events whose Time is zero.
	Now    time.Time
	Events []pki.AuditEvent
}

// LoginAttempt is what ClaimLoginAttempt did.
type LoginAttempt struct {
	Refused     bool      // the user was locked: nothing was counted
	Failures    int       // the failure count now
	LockedUntil time.Time // the lock in force (Refused) or set by this attempt; zero when none
}
