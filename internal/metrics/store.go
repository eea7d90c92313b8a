package metrics

import (
	"context"
	"errors"
	"reflect"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// Store returns st with the errors of every call counted in
// scepter_store_errors_total{op="METHOD"}, and the CRL generations stored
// through it in scepter_crls_published_total. Answers that are not
// failures (store.ErrNotFound, ErrConflict, ErrChallengeUnusable) and calls
// whose caller canceled them are not counted; a deadline that ran out is.
// `scepter serve` hands the wrapped store to every part of the server, so
// the counter covers all of its store traffic.
func (m *Metrics) Store(st store.Store) store.Store {
	s := &countingStore{Store: st, errs: map[string]prometheus.Counter{}, crls: m.crls}
	// Every operation starts at zero, so the first error is an increase.
	t := reflect.TypeFor[store.Store]()
	for i := range t.NumMethod() {
		op := t.Method(i).Name
		s.errs[op] = m.storeErrors.WithLabelValues(op)
	}
	return s
}

// countingStore counts the errors of the store it wraps. It overrides every
// method of store.Store (a test checks that none is left to the embedded
// store, where its errors would go uncounted).
type countingStore struct {
	store.Store
	errs map[string]prometheus.Counter // by method, read-only after Store
	crls prometheus.Counter
}

// count counts err against op when it is a failure, and returns it.
func (s *countingStore) count(op string, err error) error {
	if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) ||
		errors.Is(err, store.ErrChallengeUnusable) || errors.Is(err, store.ErrTransactionClaimed) || errors.Is(err, context.Canceled) {
		return err
	}
	if c, ok := s.errs[op]; ok {
		c.Inc()
	}
	return err
}

func (s *countingStore) ReserveSerial(ctx context.Context, issuerID, serialHex string, tbs []byte, at time.Time) error {
	return s.count("ReserveSerial", s.Store.ReserveSerial(ctx, issuerID, serialHex, tbs, at))
}

func (s *countingStore) ReserveSerialClaiming(ctx context.Context, c store.TransactionClaim, issuerID, serialHex string, tbs []byte) (bool, error) {
	tookOver, err := s.Store.ReserveSerialClaiming(ctx, c, issuerID, serialHex, tbs)
	return tookOver, s.count("ReserveSerialClaiming", err)
}

func (s *countingStore) ReleaseTransactionClaim(ctx context.Context, c store.TransactionClaim) error {
	return s.count("ReleaseTransactionClaim", s.Store.ReleaseTransactionClaim(ctx, c))
}

func (s *countingStore) TransactionClaimOf(ctx context.Context, keyHash []byte, profile, transactionID string) (*store.TransactionClaim, error) {
	v, err := s.Store.TransactionClaimOf(ctx, keyHash, profile, transactionID)
	return v, s.count("TransactionClaimOf", err)
}

func (s *countingStore) RecordIssuance(ctx context.Context, in store.Issuance) error {
	return s.count("RecordIssuance", s.Store.RecordIssuance(ctx, in))
}

func (s *countingStore) Certificate(ctx context.Context, issuerID, serialHex string) (*pki.Certificate, error) {
	v, err := s.Store.Certificate(ctx, issuerID, serialHex)
	return v, s.count("Certificate", err)
}

func (s *countingStore) CertificatesOfTransaction(ctx context.Context, keyHash []byte, profile, transactionID string, issuedAfter time.Time) ([]pki.Certificate, error) {
	v, err := s.Store.CertificatesOfTransaction(ctx, keyHash, profile, transactionID, issuedAfter)
	return v, s.count("CertificatesOfTransaction", err)
}

func (s *countingStore) CertificatesBySerial(ctx context.Context, serialHex string) ([]pki.Certificate, error) {
	v, err := s.Store.CertificatesBySerial(ctx, serialHex)
	return v, s.count("CertificatesBySerial", err)
}

func (s *countingStore) ListCertificates(ctx context.Context, f store.CertFilter) ([]pki.Certificate, string, error) {
	v, w, err := s.Store.ListCertificates(ctx, f)
	return v, w, s.count("ListCertificates", err)
}

func (s *countingStore) RevokeCertificate(ctx context.Context, issuerID, serialHex string, reason int, at time.Time, ev pki.AuditEvent) (*pki.Certificate, bool, error) {
	v, w, err := s.Store.RevokeCertificate(ctx, issuerID, serialHex, reason, at, ev)
	return v, w, s.count("RevokeCertificate", err)
}

func (s *countingStore) Revoke(ctx context.Context, issuerID, serialHex string, reason int, at time.Time, ev pki.AuditEvent) (store.Revocation, error) {
	v, err := s.Store.Revoke(ctx, issuerID, serialHex, reason, at, ev)
	return v, s.count("Revoke", err)
}

func (s *countingStore) UnholdCertificate(ctx context.Context, issuerID, serialHex string, at time.Time, ev pki.AuditEvent) (*pki.Certificate, bool, error) {
	v, w, err := s.Store.UnholdCertificate(ctx, issuerID, serialHex, at, ev)
	return v, w, s.count("UnholdCertificate", err)
}

func (s *countingStore) CompromisedKey(ctx context.Context, keyHash []byte) (*store.CompromisedKey, error) {
	v, err := s.Store.CompromisedKey(ctx, keyHash)
	return v, s.count("CompromisedKey", err)
}

func (s *countingStore) RevocationState(ctx context.Context) (map[string]int64, error) {
	v, err := s.Store.RevocationState(ctx)
	return v, s.count("RevocationState", err)
}

func (s *countingStore) LastUnhold(ctx context.Context, issuerID string) (time.Time, error) {
	v, err := s.Store.LastUnhold(ctx, issuerID)
	return v, s.count("LastUnhold", err)
}

func (s *countingStore) RevokedCertificates(ctx context.Context, issuerID string, notAfterAfter time.Time) ([]store.RevokedEntry, error) {
	v, err := s.Store.RevokedCertificates(ctx, issuerID, notAfterAfter)
	return v, s.count("RevokedCertificates", err)
}

func (s *countingStore) LatestCRLNumber(ctx context.Context, issuerID string) (int64, error) {
	v, err := s.Store.LatestCRLNumber(ctx, issuerID)
	return v, s.count("LatestCRLNumber", err)
}

func (s *countingStore) LatestCRL(ctx context.Context, issuerID string) (*store.CRL, error) {
	v, err := s.Store.LatestCRL(ctx, issuerID)
	return v, s.count("LatestCRL", err)
}

func (s *countingStore) PutCRL(ctx context.Context, crl store.CRL, keep int) error {
	err := s.Store.PutCRL(ctx, crl, keep)
	if err == nil {
		s.crls.Inc()
	}
	return s.count("PutCRL", err)
}

func (s *countingStore) CreateChallenge(ctx context.Context, ch pki.Challenge, ev pki.AuditEvent) error {
	return s.count("CreateChallenge", s.Store.CreateChallenge(ctx, ch, ev))
}

func (s *countingStore) LookupChallenge(ctx context.Context, hash []byte, now time.Time) (*pki.Challenge, error) {
	v, err := s.Store.LookupChallenge(ctx, hash, now)
	return v, s.count("LookupChallenge", err)
}

func (s *countingStore) ChallengeIssued(ctx context.Context, hash []byte) (string, error) {
	v, err := s.Store.ChallengeIssued(ctx, hash)
	return v, s.count("ChallengeIssued", err)
}

func (s *countingStore) RecordChallengeMisuse(ctx context.Context, hash []byte, now time.Time, lockAfter int, ev pki.AuditEvent) (bool, error) {
	v, err := s.Store.RecordChallengeMisuse(ctx, hash, now, lockAfter, ev)
	return v, s.count("RecordChallengeMisuse", err)
}

func (s *countingStore) ListChallenges(ctx context.Context, f store.ChallengeFilter) ([]pki.Challenge, string, error) {
	v, next, err := s.Store.ListChallenges(ctx, f)
	return v, next, s.count("ListChallenges", err)
}

func (s *countingStore) ForgetNonce(ctx context.Context, transactionID string, senderNonce []byte) error {
	return s.count("ForgetNonce", s.Store.ForgetNonce(ctx, transactionID, senderNonce))
}

func (s *countingStore) RememberNonce(ctx context.Context, transactionID string, senderNonce []byte, now, expires time.Time) error {
	return s.count("RememberNonce", s.Store.RememberNonce(ctx, transactionID, senderNonce, now, expires))
}

func (s *countingStore) MarkNonceRefused(ctx context.Context, transactionID string, senderNonce []byte) error {
	return s.count("MarkNonceRefused", s.Store.MarkNonceRefused(ctx, transactionID, senderNonce))
}

func (s *countingStore) PurgeExpired(ctx context.Context, now time.Time) error {
	return s.count("PurgeExpired", s.Store.PurgeExpired(ctx, now))
}

func (s *countingStore) CreateRequest(ctx context.Context, r pki.EnrollmentRequest, consumeChallengeHash []byte, ev pki.AuditEvent) error {
	return s.count("CreateRequest", s.Store.CreateRequest(ctx, r, consumeChallengeHash, ev))
}

func (s *countingStore) RequestByTransaction(ctx context.Context, profile, transactionID string, keys store.RequestKeys) (*pki.EnrollmentRequest, error) {
	v, err := s.Store.RequestByTransaction(ctx, profile, transactionID, keys)
	return v, s.count("RequestByTransaction", err)
}

func (s *countingStore) RequestsByKey(ctx context.Context, profile string, spki []byte) ([]pki.EnrollmentRequest, error) {
	v, err := s.Store.RequestsByKey(ctx, profile, spki)
	return v, s.count("RequestsByKey", err)
}

func (s *countingStore) Request(ctx context.Context, id string) (*pki.EnrollmentRequest, error) {
	v, err := s.Store.Request(ctx, id)
	return v, s.count("Request", err)
}

func (s *countingStore) ListRequests(ctx context.Context, f store.RequestFilter) ([]pki.EnrollmentRequest, string, error) {
	v, next, err := s.Store.ListRequests(ctx, f)
	return v, next, s.count("ListRequests", err)
}

func (s *countingStore) RejectRequest(ctx context.Context, id, reason, by string, at time.Time, ev pki.AuditEvent) error {
	return s.count("RejectRequest", s.Store.RejectRequest(ctx, id, reason, by, at, ev))
}

func (s *countingStore) CreateESTUser(ctx context.Context, u pki.ESTUser, ev pki.AuditEvent) error {
	return s.count("CreateESTUser", s.Store.CreateESTUser(ctx, u, ev))
}

func (s *countingStore) ESTUser(ctx context.Context, name string) (*pki.ESTUser, error) {
	v, err := s.Store.ESTUser(ctx, name)
	return v, s.count("ESTUser", err)
}

func (s *countingStore) ListESTUsers(ctx context.Context) ([]pki.ESTUser, error) {
	v, err := s.Store.ListESTUsers(ctx)
	return v, s.count("ListESTUsers", err)
}

func (s *countingStore) DeleteESTUser(ctx context.Context, name string, at time.Time, ev pki.AuditEvent) error {
	return s.count("DeleteESTUser", s.Store.DeleteESTUser(ctx, name, at, ev))
}

func (s *countingStore) AppendAudit(ctx context.Context, events ...pki.AuditEvent) error {
	return s.count("AppendAudit", s.Store.AppendAudit(ctx, events...))
}

func (s *countingStore) ListAudit(ctx context.Context, f store.AuditFilter) ([]pki.AuditEvent, error) {
	v, err := s.Store.ListAudit(ctx, f)
	return v, s.count("ListAudit", err)
}

func (s *countingStore) AuditChain(ctx context.Context, afterID int64, limit int) ([]pki.AuditEvent, error) {
	v, err := s.Store.AuditChain(ctx, afterID, limit)
	return v, s.count("AuditChain", err)
}

func (s *countingStore) AuditHead(ctx context.Context) (store.AuditHead, error) {
	v, err := s.Store.AuditHead(ctx)
	return v, s.count("AuditHead", err)
}

func (s *countingStore) ExpiringCertificates(ctx context.Context, q store.ExpiryQuery) ([]store.ExpiringCertificate, string, error) {
	v, w, err := s.Store.ExpiringCertificates(ctx, q)
	return v, w, s.count("ExpiringCertificates", err)
}

func (s *countingStore) RecordNotifications(ctx context.Context, ns []store.Notification) (int, error) {
	v, err := s.Store.RecordNotifications(ctx, ns)
	return v, s.count("RecordNotifications", err)
}

func (s *countingStore) ClaimNotifications(ctx context.Context, q store.ClaimQuery) ([]store.ClaimedNotification, error) {
	v, err := s.Store.ClaimNotifications(ctx, q)
	return v, s.count("ClaimNotifications", err)
}

func (s *countingStore) FinishNotification(ctx context.Context, o store.NotificationOutcome) error {
	return s.count("FinishNotification", s.Store.FinishNotification(ctx, o))
}

func (s *countingStore) Notifications(ctx context.Context, issuerID, serialHex string) ([]store.Notification, error) {
	v, err := s.Store.Notifications(ctx, issuerID, serialHex)
	return v, s.count("Notifications", err)
}

func (s *countingStore) CreateUser(ctx context.Context, u pki.User, ev pki.AuditEvent) error {
	return s.count("CreateUser", s.Store.CreateUser(ctx, u, ev))
}

func (s *countingStore) User(ctx context.Context, name string) (*pki.User, error) {
	v, err := s.Store.User(ctx, name)
	return v, s.count("User", err)
}

func (s *countingStore) ListUsers(ctx context.Context) ([]pki.User, error) {
	v, err := s.Store.ListUsers(ctx)
	return v, s.count("ListUsers", err)
}

func (s *countingStore) DeleteUser(ctx context.Context, name string, ev pki.AuditEvent) error {
	return s.count("DeleteUser", s.Store.DeleteUser(ctx, name, ev))
}

func (s *countingStore) RecordLogin(ctx context.Context, name string, ok bool, at, lockUntil time.Time, ev pki.AuditEvent) (int, error) {
	v, err := s.Store.RecordLogin(ctx, name, ok, at, lockUntil, ev)
	return v, s.count("RecordLogin", err)
}

func (s *countingStore) ClaimLoginAttempt(ctx context.Context, name string, at, expires time.Time, lockFor func(int) time.Duration) (store.LoginAttempt, error) {
	v, err := s.Store.ClaimLoginAttempt(ctx, name, at, expires, lockFor)
	return v, s.count("ClaimLoginAttempt", err)
}

func (s *countingStore) ClaimUnknownLoginAttempt(ctx context.Context, nameKey []byte, at, expires time.Time, lockFor func(int) time.Duration) (store.LoginAttempt, error) {
	v, err := s.Store.ClaimUnknownLoginAttempt(ctx, nameKey, at, expires, lockFor)
	return v, s.count("ClaimUnknownLoginAttempt", err)
}

func (s *countingStore) LoginNameKey(ctx context.Context, candidate []byte) ([]byte, error) {
	v, err := s.Store.LoginNameKey(ctx, candidate)
	return v, s.count("LoginNameKey", err)
}

func (s *countingStore) CreateToken(ctx context.Context, t pki.APIToken, ev pki.AuditEvent) error {
	return s.count("CreateToken", s.Store.CreateToken(ctx, t, ev))
}

func (s *countingStore) TokenByHash(ctx context.Context, hash []byte) (*pki.APIToken, error) {
	v, err := s.Store.TokenByHash(ctx, hash)
	return v, s.count("TokenByHash", err)
}

func (s *countingStore) ListTokens(ctx context.Context) ([]pki.APIToken, error) {
	v, err := s.Store.ListTokens(ctx)
	return v, s.count("ListTokens", err)
}

func (s *countingStore) RevokeToken(ctx context.Context, idOrName string, at time.Time, ev pki.AuditEvent) (*pki.APIToken, error) {
	v, err := s.Store.RevokeToken(ctx, idOrName, at, ev)
	return v, s.count("RevokeToken", err)
}

func (s *countingStore) TouchToken(ctx context.Context, id string, at time.Time) error {
	return s.count("TouchToken", s.Store.TouchToken(ctx, id, at))
}

func (s *countingStore) CreateSession(ctx context.Context, sess pki.Session) error {
	return s.count("CreateSession", s.Store.CreateSession(ctx, sess))
}

func (s *countingStore) Session(ctx context.Context, hash []byte, now time.Time) (*pki.Session, error) {
	v, err := s.Store.Session(ctx, hash, now)
	return v, s.count("Session", err)
}

func (s *countingStore) DeleteSession(ctx context.Context, hash []byte) error {
	return s.count("DeleteSession", s.Store.DeleteSession(ctx, hash))
}

func (s *countingStore) DeleteChallenge(ctx context.Context, id string, ev pki.AuditEvent) error {
	return s.count("DeleteChallenge", s.Store.DeleteChallenge(ctx, id, ev))
}

func (s *countingStore) RenewalsOf(ctx context.Context, issuerID, serialHex string) ([]pki.Certificate, error) {
	v, err := s.Store.RenewalsOf(ctx, issuerID, serialHex)
	return v, s.count("RenewalsOf", err)
}

func (s *countingStore) Dashboard(ctx context.Context, now time.Time, days int) (store.Dashboard, error) {
	v, err := s.Store.Dashboard(ctx, now, days)
	return v, s.count("Dashboard", err)
}

func (s *countingStore) CAGenerations(ctx context.Context) ([]store.CAGeneration, error) {
	v, err := s.Store.CAGenerations(ctx)
	return v, s.count("CAGenerations", err)
}

func (s *countingStore) PublishCAGeneration(ctx context.Context, g store.CAGeneration, ev pki.AuditEvent) (bool, error) {
	v, err := s.Store.PublishCAGeneration(ctx, g, ev)
	return v, s.count("PublishCAGeneration", err)
}

func (s *countingStore) PromoteCAGeneration(ctx context.Context, issuerID string, at time.Time, ev pki.AuditEvent) (bool, error) {
	v, err := s.Store.PromoteCAGeneration(ctx, issuerID, at, ev)
	return v, s.count("PromoteCAGeneration", err)
}

func (s *countingStore) DiscardCAGeneration(ctx context.Context, issuerID string, now time.Time, ev pki.AuditEvent) error {
	return s.count("DiscardCAGeneration", s.Store.DiscardCAGeneration(ctx, issuerID, now, ev))
}

func (s *countingStore) DiscardedCAGenerations(ctx context.Context) ([]store.DiscardedCAGeneration, error) {
	v, err := s.Store.DiscardedCAGenerations(ctx)
	return v, s.count("DiscardedCAGenerations", err)
}

func (s *countingStore) Ping(ctx context.Context) error {
	return s.count("Ping", s.Store.Ping(ctx))
}

func (s *countingStore) CanWrite(ctx context.Context) error {
	return s.count("CanWrite", s.Store.CanWrite(ctx))
}

func (s *countingStore) Close() error {
	return s.count("Close", s.Store.Close())
}
