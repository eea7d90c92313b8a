package api

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/httpjson"
	"github.com/scepter/scepter/internal/ops"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// route is one operation of the API: how it is reached, who may call it,
// what the OpenAPI description says of it, and its handler.
type route struct {
	method, path string
	summary      string
	role         pki.Role
	params       []param // query parameters
	body         string  // request schema name ("" for none)
	bodyOptional bool    // the body may be left out (no JSON at all)
	reply        string  // response schema name
	status       int     // success status
	contentType  string  // non-JSON success body
	fn           func(*call) error
}

// paramNames are the names of rt's query parameters.
func (rt route) paramNames() []string {
	names := make([]string, len(rt.params))
	for i, p := range rt.params {
		names[i] = p.name
	}
	return names
}

// param is a query parameter.
type param struct {
	name, typ, desc string
}

var (
	pLimit  = param{"limit", "integer", "page size, 1 to 500 (default 100)"}
	pCursor = param{"cursor", "string", "next_cursor of the previous page"}
	pIssuer = param{"issuer", "string", "issuer ID (or a prefix) when several CAs used the serial"}
)

// issuerIDRE is an issuing CA's ID: the hex SHA-256 of its certificate.
var issuerIDRE = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

// table lists every route, once.
func (h *Handler) table() []route {
	certParams := []param{
		{"status", "string", "valid, revoked or expired"},
		{"profile", "string", "profile name"},
		{"issuer", "string", "issuer ID (hex SHA-256 of the issuing CA certificate)"},
		{"protocol", "string", "scep, est, cli or internal"},
		{"q", "string", "subject, SAN or serial substring (3 characters or more use the index); RFC 4514 escapes are optional: `Doe, John` and `Doe\\, John` both find CN=Doe\\, John"},
		{"expiring_within", "string", "only unexpired certificates expiring within this time (30d, 12h; at most 36500d), by expiry; valid ones unless status=revoked is given"},
		{"issued_after", "string", "RFC 3339 time"}, {"issued_before", "string", "RFC 3339 time"},
		{"renewed", "string", "false: leave out the certificates a renewal replaced (another certificate names them in renewed_from), as with expiring_within for those still to renew; true: only those. Every item says whether it was renewed, and by which certificate"},
		pLimit, pCursor,
	}
	return []route{
		{method: "GET", path: "/whoami", summary: "The token's name and role", role: pki.RoleAuditor, reply: "Principal", fn: h.whoami},
		{method: "GET", path: "/certificates", summary: "List certificates, newest first (or by expiry with expiring_within)", role: pki.RoleAuditor,
			params: certParams, reply: "CertificatePage", fn: h.listCertificates},
		{method: "GET", path: "/certificates/{serial}", summary: "One certificate: decoded fields, renewal chain, audit events", role: pki.RoleAuditor,
			params: []param{pIssuer}, reply: "CertificateDetail", fn: h.getCertificate},
		{method: "GET", path: "/certificates/{serial}/pem", summary: "The certificate, PEM", role: pki.RoleAuditor, params: []param{pIssuer},
			contentType: "application/x-pem-file", fn: h.certPEM},
		{method: "GET", path: "/certificates/{serial}/der", summary: "The certificate, DER", role: pki.RoleAuditor, params: []param{pIssuer},
			contentType: "application/pkix-cert", fn: h.certDER},
		{method: "GET", path: "/certificates/{serial}/chain", summary: "The certificate and its CA chain, PEM", role: pki.RoleAuditor, params: []param{pIssuer},
			contentType: "application/x-pem-file", fn: h.certChain},
		{method: "POST", path: "/certificates/{serial}/revoke", summary: "Revoke a certificate (idempotent; another reason for a revoked one, unless on hold, is 409)", role: pki.RoleOperator,
			body: "RevokeRequest", reply: "RevocationResult", fn: h.revoke},
		{method: "POST", path: "/certificates/{serial}/unhold", summary: "Lift a certificateHold", role: pki.RoleOperator,
			body: "UnholdRequest", bodyOptional: true, reply: "RevocationResult", fn: h.unhold},
		{method: "GET", path: "/requests", summary: "Requests held for approval", role: pki.RoleAuditor,
			params: []param{{"status", "string", "pending (default), issued, rejected, expired (pending when its retention ran out: it can no longer be approved) or all"}, {"profile", "string", "profile name"}, pLimit, pCursor},
			reply:  "RequestList", fn: h.listRequests},
		{method: "POST", path: "/requests/{id}/approve", summary: "Approve a held request: its certificate is issued (one approver wins)", role: pki.RoleOperator,
			reply: "Certificate", fn: h.approve},
		{method: "POST", path: "/requests/{id}/reject", summary: "Reject a held request", role: pki.RoleOperator, body: "RejectRequest",
			reply: "Request", fn: h.reject},
		{method: "GET", path: "/challenges", summary: "One-time challenges (never a secret)", role: pki.RoleAuditor, params: []param{pLimit, pCursor},
			reply: "ChallengeList", fn: h.listChallenges},
		{method: "POST", path: "/challenges", summary: "Mint a one-time challenge; the secret is in this answer only", role: pki.RoleOperator,
			body: "ChallengeRequest", reply: "NewChallenge", status: http.StatusCreated, fn: h.newChallenge},
		{method: "DELETE", path: "/challenges/{id}", summary: "Delete a challenge", role: pki.RoleOperator, status: http.StatusNoContent, fn: h.deleteChallenge},
		{method: "GET", path: "/audit", summary: "Audit events, newest first", role: pki.RoleAuditor,
			params: []param{{"type", "string", "event type"}, {"serial", "string", "certificate serial"}, {"since", "string", "RFC 3339 time"},
				{"until", "string", "RFC 3339 time"}, {"before_id", "integer", "page on: events with an ID below this (from 1: 0 or less is refused with 422, not read as no bound)"}, pLimit},
			reply: "AuditList", fn: h.listAudit},
		{method: "GET", path: "/audit/verify", summary: "Verify the audit trail's hash chain", role: pki.RoleAuditor, reply: "AuditVerification", fn: h.verifyAudit},
		{method: "GET", path: "/cas", summary: "Issuing CAs (current, next, previous) and the rollover schedule", role: pki.RoleAuditor, reply: "CAList", fn: h.listCAs},
		{method: "GET", path: "/profiles", summary: "Configured profiles", role: pki.RoleAuditor, reply: "ProfileList", fn: h.listProfiles},
		{method: "GET", path: "/dashboard", summary: "Counts by status and profile, expiring soon, activity per day", role: pki.RoleAuditor,
			params: []param{{"days", "integer", "days of activity, 1 to 366 (default 30)"}}, reply: "Dashboard", fn: h.dashboard},
		{method: "GET", path: "/est-users", summary: "EST users", role: pki.RoleAuditor, reply: "ESTUserList", fn: h.listESTUsers},
		{method: "POST", path: "/est-users", summary: "Create an EST user", role: pki.RoleAdmin, body: "ESTUserRequest", reply: "ESTUser",
			status: http.StatusCreated, fn: h.addESTUser},
		{method: "DELETE", path: "/est-users/{name}", summary: "Delete an EST user", role: pki.RoleAdmin, status: http.StatusNoContent, fn: h.removeESTUser},
		{method: "GET", path: "/tokens", summary: "API tokens (never a secret)", role: pki.RoleAdmin, reply: "TokenList", fn: h.listTokens},
		{method: "POST", path: "/tokens", summary: "Create an API token; the secret is in this answer only", role: pki.RoleAdmin, body: "TokenRequest",
			reply: "NewToken", status: http.StatusCreated, fn: h.newToken},
		{method: "DELETE", path: "/tokens/{id}", summary: "Revoke an API token (by ID or name)", role: pki.RoleAdmin, status: http.StatusNoContent, fn: h.revokeToken},
		{method: "GET", path: "/users", summary: "Console users", role: pki.RoleAdmin, reply: "UserList", fn: h.listUsers},
		{method: "POST", path: "/users", summary: "Create a console user", role: pki.RoleAdmin, body: "UserRequest", reply: "User",
			status: http.StatusCreated, fn: h.addUser},
		{method: "DELETE", path: "/users/{name}", summary: "Delete a console user and end their sessions", role: pki.RoleAdmin,
			status: http.StatusNoContent, fn: h.removeUser},
	}
}

// --- JSON shapes ---------------------------------------------------------------

// Certificate is an inventory record.
type Certificate struct {
	Serial        string     `json:"serial"`
	IssuerID      string     `json:"issuer_id"`
	Subject       string     `json:"subject"`
	Issuer        string     `json:"issuer"`
	SANs          []string   `json:"sans"`
	NotBefore     time.Time  `json:"not_before"`
	NotAfter      time.Time  `json:"not_after"`
	Status        string     `json:"status"`
	Profile       string     `json:"profile"`
	Protocol      string     `json:"protocol"`
	KeyType       string     `json:"key_type"`
	RequesterAddr string     `json:"requester_addr"`
	TransactionID string     `json:"transaction_id"`
	RenewedFrom   string     `json:"renewed_from"`
	CreatedAt     time.Time  `json:"created_at"`
	RevokedAt     *time.Time `json:"revoked_at"`
	RevokeReason  string     `json:"revoke_reason"`
	RevokedBy     string     `json:"revoked_by"`
}

func certJSON(c *pki.Certificate, now time.Time) Certificate {
	out := Certificate{Serial: c.SerialHex, IssuerID: c.IssuerID, Subject: c.Subject, Issuer: c.Issuer, SANs: nonNil(c.SANs),
		NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(), Status: string(c.Status), Profile: c.Profile,
		Protocol: string(c.Protocol), KeyType: c.KeyType, RequesterAddr: c.RequesterAddr, TransactionID: c.TransactionID,
		RenewedFrom: c.RenewedFrom, CreatedAt: c.CreatedAt.UTC(), RevokedBy: c.RevokedBy}
	if c.Status == pki.StatusValid && c.Expired(now) {
		out.Status = "expired"
	}
	if c.Status == pki.StatusRevoked {
		at := c.RevokedAt.UTC()
		out.RevokedAt, out.RevokeReason = &at, admin.ReasonName(c.RevokeReason)
	}
	return out
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// CertificatePage is one page of a list.
type CertificatePage struct {
	Items      []ListedCertificate `json:"items"`
	NextCursor string              `json:"next_cursor"`
}

// ListedCertificate is a certificate in a list, with whether a renewal
// replaced it: another certificate names it in renewed_from. The renewal
// named is the newest; the certificate's page lists them all.
type ListedCertificate struct {
	Certificate
	Renewed         bool   `json:"renewed"`
	RenewalSerial   string `json:"renewal_serial"`
	RenewalIssuerID string `json:"renewal_issuer_id"`
}

func listedJSON(c *pki.Certificate, now time.Time) ListedCertificate {
	out := ListedCertificate{Certificate: certJSON(c, now)}
	if c.RenewedBy != "" {
		out.Renewed = true
		out.RenewalIssuerID, out.RenewalSerial, _ = strings.Cut(c.RenewedBy, ":")
	}
	return out
}

// CertificateDetail is one certificate and what surrounds it.
type CertificateDetail struct {
	Certificate
	PEM          string        `json:"pem"`
	KeyUsage     []string      `json:"key_usage"`
	ExtKeyUsage  []string      `json:"ext_key_usage"`
	CRLURLs      []string      `json:"crl_urls"`
	OCSPURLs     []string      `json:"ocsp_urls"`
	IssuerURLs   []string      `json:"issuer_urls"`
	Chain        []ChainCert   `json:"chain"`
	RenewedFromC []Certificate `json:"renewal_chain"`
	RenewedBy    []Certificate `json:"renewed_by"`
	Events       []AuditEvent  `json:"events"`
}

// ChainCert is a CA certificate of a chain.
type ChainCert struct {
	Subject  string    `json:"subject"`
	NotAfter time.Time `json:"not_after"`
	PEM      string    `json:"pem"`
}

// AuditEvent is one audit record.
type AuditEvent struct {
	ID            int64     `json:"id"`
	Time          time.Time `json:"time"`
	Type          string    `json:"type"`
	Actor         string    `json:"actor"`
	Outcome       string    `json:"outcome"`
	Profile       string    `json:"profile"`
	Serial        string    `json:"serial"`
	IssuerID      string    `json:"issuer_id"`
	Subject       string    `json:"subject"`
	TransactionID string    `json:"transaction_id"`
	Reason        string    `json:"reason"`
	Detail        string    `json:"detail"`
}

func eventJSON(e pki.AuditEvent) AuditEvent {
	return AuditEvent{ID: e.ID, Time: e.Time.UTC(), Type: e.Type, Actor: e.Actor, Outcome: e.Outcome, Profile: e.Profile,
		Serial: e.SerialHex, IssuerID: e.IssuerID, Subject: e.Subject, TransactionID: e.TransactionID, Reason: e.Reason, Detail: e.Detail}
}

// --- handlers --------------------------------------------------------------------

func (h *Handler) whoami(c *call) error {
	httpjson.Write(c.w, http.StatusOK, map[string]string{"name": c.p.Name, "role": string(c.p.Role), "kind": c.p.Kind})
	return nil
}

func (h *Handler) listCertificates(c *call) error {
	q := c.q
	cq := ops.CertQuery{Status: q.str("status"), Profile: q.str("profile"), IssuerID: q.str("issuer"), Protocol: q.str("protocol"),
		Search: q.str("q"), ExpiringWithin: q.duration("expiring_within"), IssuedAfter: q.time("issued_after"),
		IssuedBefore: q.time("issued_before"), Renewed: q.str("renewed"), Limit: q.int("limit", 100, 1, ops.MaxPage), Cursor: q.str("cursor")}
	if err := q.err(); err != nil {
		return err
	}
	// A misspelt protocol or a short issuer ID matches nothing: an empty
	// page would read as "there are none", as the console refuses them.
	switch pki.Protocol(cq.Protocol) {
	case "", pki.ProtocolSCEP, pki.ProtocolEST, pki.ProtocolCLI, pki.ProtocolInternal:
	default:
		return refusedf("protocol %q: want scep, est, cli or internal", cq.Protocol)
	}
	if cq.IssuerID != "" && !issuerIDRE.MatchString(cq.IssuerID) {
		return refusedf("issuer %q: want a CA's ID, 64 hex digits, as /api/v1/cas lists them", cq.IssuerID)
	}
	certs, next, err := h.ops.Certificates(c.ctx, c.p, cq)
	if err != nil {
		return err
	}
	now := h.ops.Now()
	page := CertificatePage{Items: []ListedCertificate{}, NextCursor: next}
	for i := range certs {
		page.Items = append(page.Items, listedJSON(&certs[i], now))
	}
	httpjson.Write(c.w, http.StatusOK, page)
	return nil
}

// issuerPrefixRE is what picks an issuer among the CAs that used a serial:
// its ID or a prefix of it.
var issuerPrefixRE = regexp.MustCompile(`^[0-9a-fA-F]{1,64}$`)

// checkIssuer refuses an issuer that could name no CA: otherwise the
// certificate is "not found", which reads as if the serial were wrong.
func checkIssuer(issuer string) error {
	if issuer != "" && !issuerPrefixRE.MatchString(issuer) {
		return refusedf("issuer %q: want (a prefix of) a CA's ID in hex, as /api/v1/cas lists them", issuer)
	}
	return nil
}

// checkSerial refuses a serial in a form the API does not read
// (admin.CheckSerialAsWritten), as the console does.
func checkSerial(serial string) error { return admin.CheckSerialAsWritten(serial) }

func (h *Handler) detail(c *call) (*ops.CertificateDetail, error) {
	issuer := c.q.str("issuer")
	if err := checkSerial(c.r.PathValue("serial")); err != nil {
		return nil, err
	}
	if err := checkIssuer(issuer); err != nil {
		return nil, err
	}
	return h.ops.Certificate(c.ctx, c.p, c.r.PathValue("serial"), issuer)
}

func pemOf(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func (h *Handler) getCertificate(c *call) error {
	d, err := h.detail(c)
	if err != nil {
		return err
	}
	now := h.ops.Now()
	out := CertificateDetail{Certificate: certJSON(&d.Record, now), PEM: pemOf(d.Record.DER),
		KeyUsage: keyUsages(d.Cert.KeyUsage), ExtKeyUsage: extKeyUsages(d.Cert.ExtKeyUsage),
		CRLURLs: nonNil(d.Cert.CRLDistributionPoints), OCSPURLs: nonNil(d.Cert.OCSPServer), IssuerURLs: nonNil(d.Cert.IssuingCertificateURL),
		Chain: []ChainCert{}, RenewedFromC: []Certificate{}, RenewedBy: []Certificate{}, Events: []AuditEvent{}}
	for _, ca := range d.Chain {
		out.Chain = append(out.Chain, ChainCert{Subject: ca.Subject.String(), NotAfter: ca.NotAfter.UTC(), PEM: pemOf(ca.Raw)})
	}
	for i := range d.RenewedFrom {
		out.RenewedFromC = append(out.RenewedFromC, certJSON(&d.RenewedFrom[i], now))
	}
	for i := range d.RenewedBy {
		out.RenewedBy = append(out.RenewedBy, certJSON(&d.RenewedBy[i], now))
	}
	for _, e := range d.Events {
		out.Events = append(out.Events, eventJSON(e))
	}
	httpjson.Write(c.w, http.StatusOK, out)
	return nil
}

func writeRaw(c *call, contentType, filename string, body []byte) {
	c.w.Header().Set("Content-Type", contentType)
	c.w.Header().Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	c.w.WriteHeader(http.StatusOK)
	c.w.Write(body)
}

func (h *Handler) certPEM(c *call) error {
	d, err := h.detail(c)
	if err != nil {
		return err
	}
	writeRaw(c, "application/x-pem-file", d.Record.SerialHex+".pem", []byte(pemOf(d.Record.DER)))
	return nil
}

func (h *Handler) certDER(c *call) error {
	d, err := h.detail(c)
	if err != nil {
		return err
	}
	writeRaw(c, "application/pkix-cert", d.Record.SerialHex+".der", d.Record.DER)
	return nil
}

func (h *Handler) certChain(c *call) error {
	d, err := h.detail(c)
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString(pemOf(d.Record.DER))
	for _, ca := range d.Chain {
		b.WriteString(pemOf(ca.Raw))
	}
	writeRaw(c, "application/x-pem-file", d.Record.SerialHex+"-chain.pem", []byte(b.String()))
	return nil
}

// RevokeRequest asks for a revocation.
type RevokeRequest struct {
	Reason string `json:"reason" openapi:"default=unspecified"`
	Issuer string `json:"issuer"`
}

// UnholdRequest names the issuer when needed.
type UnholdRequest struct {
	Issuer string `json:"issuer"`
}

// RevocationResult is the certificate after the call, and the other
// certificates of its key a revocation for keyCompromise revoked with it
// (empty otherwise).
type RevocationResult struct {
	Certificate Certificate `json:"certificate"`
	Changed     bool        `json:"changed"`
	AlsoRevoked []CertRef   `json:"also_revoked"`
}

// CertRef names one certificate.
type CertRef struct {
	IssuerID string `json:"issuer_id"`
	Serial   string `json:"serial"`
}

// revocationResult is r as the API answers it.
func (h *Handler) revocationResult(r admin.Revocation) RevocationResult {
	also := make([]CertRef, 0, len(r.AlsoRevoked))
	for _, o := range r.AlsoRevoked {
		also = append(also, CertRef{IssuerID: o.IssuerID, Serial: o.SerialHex})
	}
	return RevocationResult{Certificate: certJSON(&r.Certificate, h.ops.Now()), Changed: r.Changed, AlsoRevoked: also}
}

func (h *Handler) revoke(c *call) error {
	var req RevokeRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	if err := checkSerial(c.r.PathValue("serial")); err != nil {
		return err
	}
	if err := checkIssuer(req.Issuer); err != nil {
		return err
	}
	r, err := h.ops.Revoke(c.ctx, c.p, c.r.PathValue("serial"), req.Issuer, req.Reason)
	if err != nil {
		return err
	}
	httpjson.Write(c.w, http.StatusOK, h.revocationResult(r))
	return nil
}

func (h *Handler) unhold(c *call) error {
	var req UnholdRequest
	if len(c.body) > 0 {
		if err := c.decode(&req); err != nil {
			return err
		}
	}
	if err := checkSerial(c.r.PathValue("serial")); err != nil {
		return err
	}
	if err := checkIssuer(req.Issuer); err != nil {
		return err
	}
	r, err := h.ops.Unhold(c.ctx, c.p, c.r.PathValue("serial"), req.Issuer)
	if err != nil {
		return err
	}
	httpjson.Write(c.w, http.StatusOK, h.revocationResult(r))
	return nil
}

// Request is a request held for approval.
type Request struct {
	ID            string    `json:"id"`
	Status        string    `json:"status"`
	Profile       string    `json:"profile"`
	Protocol      string    `json:"protocol"`
	TransactionID string    `json:"transaction_id"`
	Subject       string    `json:"subject"`
	SANs          []string  `json:"sans"`
	RequesterAddr string    `json:"requester_addr"`
	CreatedAt     time.Time `json:"created_at"`
	ExpiresAt     time.Time `json:"expires_at"`
	RenewedFrom   string    `json:"renewed_from"`
	DecidedBy     string    `json:"decided_by"`
	Reason        string    `json:"reason"`
	Serial        string    `json:"serial"`
}

func requestJSON(r pki.EnrollmentRequest) Request {
	return Request{ID: r.ID, Status: string(r.Status), Profile: r.Profile, Protocol: string(r.Protocol), TransactionID: r.TransactionID,
		Subject: r.Subject, SANs: nonNil(r.SANs), RequesterAddr: r.RequesterAddr, CreatedAt: r.CreatedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(),
		RenewedFrom: r.RenewedFrom, DecidedBy: r.DecidedBy, Reason: r.Reason, Serial: r.CertSerialHex}
}

// RequestPage is one page of held requests.
type RequestPage struct {
	Items      []Request `json:"items"`
	NextCursor string    `json:"next_cursor"`
}

func (h *Handler) listRequests(c *call) error {
	q := c.q
	limit := q.int("limit", 100, 1, ops.MaxPage)
	status, profile, cursor := q.str("status"), q.str("profile"), q.str("cursor")
	if err := q.err(); err != nil {
		return err
	}
	reqs, next, err := h.ops.Requests(c.ctx, c.p, status, profile, limit, cursor)
	if err != nil {
		return err
	}
	out := RequestPage{Items: []Request{}, NextCursor: next}
	for _, r := range reqs {
		out.Items = append(out.Items, requestJSON(r))
	}
	httpjson.Write(c.w, http.StatusOK, out)
	return nil
}

func (h *Handler) approve(c *call) error {
	res, err := h.ops.Approve(c.ctx, c.p, c.r.PathValue("id"))
	if err != nil {
		return err
	}
	httpjson.Write(c.w, http.StatusOK, certJSON(&res.Record, h.ops.Now()))
	return nil
}

// RejectRequest gives the reason.
type RejectRequest struct {
	Reason string `json:"reason" openapi:"required"`
}

func (h *Handler) reject(c *call) error {
	var req RejectRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	id := c.r.PathValue("id")
	if err := h.ops.Reject(c.ctx, c.p, id, req.Reason); err != nil {
		return err
	}
	// Read back by its ID: the answer is the whole request, however many
	// others have been rejected.
	r, err := h.ops.Request(c.ctx, c.p, id)
	if err != nil {
		return err
	}
	httpjson.Write(c.w, http.StatusOK, requestJSON(*r))
	return nil
}

// Challenge is a one-time challenge (never its secret).
type Challenge struct {
	ID         string     `json:"id"`
	Profile    string     `json:"profile"`
	State      string     `json:"state"`
	Subject    string     `json:"subject"`
	Names      []string   `json:"names"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	ConsumedAt *time.Time `json:"consumed_at"`
	CreatedBy  string     `json:"created_by"`
}

func challengeJSON(ch pki.Challenge, now time.Time) Challenge {
	out := Challenge{ID: ch.ID, Profile: ch.Profile, Names: nonNil(ch.BoundSANs), CreatedAt: ch.CreatedAt.UTC(), ExpiresAt: ch.ExpiresAt.UTC(),
		CreatedBy: ch.CreatedBy, State: "unused"}
	if len(ch.BoundSubject) > 0 {
		out.Subject = subjectString(ch.BoundSubject)
	}
	switch {
	case !ch.ConsumedAt.IsZero():
		at := ch.ConsumedAt.UTC()
		out.ConsumedAt, out.State = &at, "used"
	case !ch.LockedAt.IsZero():
		out.State = "locked"
	case !now.Before(ch.ExpiresAt):
		out.State = "expired"
	}
	return out
}

// ChallengePage is one page of one-time challenges.
type ChallengePage struct {
	Items      []Challenge `json:"items"`
	NextCursor string      `json:"next_cursor"`
}

func (h *Handler) listChallenges(c *call) error {
	q := c.q
	limit, cursor := q.int("limit", 100, 1, ops.MaxPage), q.str("cursor")
	if err := q.err(); err != nil {
		return err
	}
	list, next, err := h.ops.Challenges(c.ctx, c.p, limit, cursor)
	if err != nil {
		return err
	}
	now := h.ops.Now()
	out := ChallengePage{Items: []Challenge{}, NextCursor: next}
	for _, ch := range list {
		out.Items = append(out.Items, challengeJSON(ch, now))
	}
	httpjson.Write(c.w, http.StatusOK, out)
	return nil
}

// ChallengeRequest asks for a one-time challenge.
type ChallengeRequest struct {
	TTL     string   `json:"ttl" openapi:"default=24h"`
	Profile string   `json:"profile"`
	Subject string   `json:"subject"`
	DNS     []string `json:"dns"`
	Email   []string `json:"email"`
}

// NewChallenge is a minted challenge with its secret.
type NewChallenge struct {
	Challenge Challenge `json:"challenge"`
	Secret    string    `json:"secret"`
}

func (h *Handler) newChallenge(c *call) error {
	var req ChallengeRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	ttl := 24 * time.Hour
	if req.TTL != "" {
		d, err := parseDuration(req.TTL)
		if err == nil {
			// Checked here, not left to ops, so that "0d" is told the
			// field and the value as "36501d" is, not only the bounds.
			err = admin.CheckChallengeTTL(d)
		}
		if err != nil {
			return refusedf("ttl %q: want a duration %s, such as 24h or 7d", req.TTL, admin.ChallengeTTLRange())
		}
		ttl = d
	}
	secret, ch, err := h.ops.NewChallenge(c.ctx, c.p, admin.ChallengeSpec{TTL: ttl, Profile: req.Profile, Subject: req.Subject,
		DNSNames: req.DNS, Emails: req.Email})
	if err != nil {
		return err
	}
	httpjson.Write(c.w, http.StatusCreated, NewChallenge{Challenge: challengeJSON(ch, h.ops.Now()), Secret: secret})
	return nil
}

func (h *Handler) deleteChallenge(c *call) error {
	if err := h.ops.DeleteChallenge(c.ctx, c.p, c.r.PathValue("id")); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) listAudit(c *call) error {
	q := c.q
	f := store.AuditFilter{Type: q.str("type"), SerialHex: q.str("serial"), Since: q.time("since"), Until: q.time("until"),
		// From 1: the store reads 0 as no bound, so before_id=0 (below
		// every ID) would answer the newest page instead of none.
		BeforeID: int64(q.int("before_id", 0, 1, 1<<62)), Limit: q.int("limit", 100, 1, ops.MaxPage)}
	if err := q.err(); err != nil {
		return err
	}
	if f.SerialHex != "" {
		if err := checkSerial(f.SerialHex); err != nil {
			return err
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		// An empty list would read as "nothing happened then", as the
		// certificate filters and the console refuse it.
		return refusedf("since must be before until")
	}
	evs, err := h.ops.Audit(c.ctx, c.p, f)
	if err != nil {
		return err
	}
	out := map[string][]AuditEvent{"items": {}}
	for _, e := range evs {
		out["items"] = append(out["items"], eventJSON(e))
	}
	httpjson.Write(c.w, http.StatusOK, out)
	return nil
}

// AuditVerification is the result of a chain check.
type AuditVerification struct {
	OK      bool   `json:"ok"`
	Checked int64  `json:"checked"`
	LastID  int64  `json:"last_id"`
	Problem string `json:"problem"`
	BadID   int64  `json:"bad_id"`
}

func (h *Handler) verifyAudit(c *call) error {
	rep, err := h.ops.VerifyAudit(c.ctx, c.p)
	if err != nil {
		return err
	}
	out := AuditVerification{OK: rep.OK(), Checked: rep.Checked, LastID: rep.LastID}
	if rep.Problem != nil {
		out.Problem, out.BadID = rep.Problem.Error(), rep.Problem.ID
	}
	httpjson.Write(c.w, http.StatusOK, out)
	return nil
}

// CA is an issuing CA.
type CA struct {
	ID          string     `json:"id"`
	State       string     `json:"state"`
	Subject     string     `json:"subject"`
	NotBefore   time.Time  `json:"not_before"`
	NotAfter    time.Time  `json:"not_after"`
	Fingerprint string     `json:"fingerprint"`
	SwitchAt    *time.Time `json:"switch_at"`
	PEM         string     `json:"pem"`
}

func (h *Handler) listCAs(c *call) error {
	cas, root, err := h.ops.CAs(c.ctx, c.p)
	if err != nil {
		return err
	}
	out := struct {
		Root  CA   `json:"root"`
		Items []CA `json:"items"`
	}{Root: caJSON(root, "root", ""), Items: []CA{}}
	for _, ca := range cas {
		j := caJSON(ca.Cert, ca.State, ca.ID)
		if !ca.SwitchAt.IsZero() {
			at := ca.SwitchAt.UTC()
			j.SwitchAt = &at
		}
		out.Items = append(out.Items, j)
	}
	httpjson.Write(c.w, http.StatusOK, out)
	return nil
}

func caJSON(c *x509.Certificate, state, id string) CA {
	fp := fingerprint(c.Raw)
	if id == "" {
		id = fp
	}
	return CA{ID: id, State: state, Subject: c.Subject.String(), NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(),
		Fingerprint: "sha256:" + fp, PEM: pemOf(c.Raw)}
}

// Profile is a configured profile's public summary.
type Profile struct {
	Name          string   `json:"name"`
	Default       bool     `json:"default"`
	Validity      string   `json:"validity"`
	Challenge     string   `json:"challenge"`
	Approval      bool     `json:"approval"`
	KeyUsage      []string `json:"key_usage"`
	ExtKeyUsage   []string `json:"ext_key_usage"`
	RenewalWindow string   `json:"renewal_window"`
	NotifyBefore  []string `json:"notify_before"`
}

func (h *Handler) listProfiles(c *call) error {
	ps, def, err := h.ops.Profiles(c.ctx, c.p)
	if err != nil {
		return err
	}
	out := map[string][]Profile{"items": {}}
	for _, p := range ps {
		j := Profile{Name: p.Name, Default: p.Name == def, Validity: p.Validity.String(), Challenge: p.ChallengeMode, Approval: p.RequireApproval,
			KeyUsage: keyUsages(p.KeyUsage), ExtKeyUsage: extKeyUsages(p.ExtKeyUsage), NotifyBefore: []string{}}
		if p.RenewalWindowFixed > 0 {
			j.RenewalWindow = p.RenewalWindowFixed.String()
		} else {
			j.RenewalWindow = strings.TrimRight(strings.TrimRight(formatFloat(p.RenewalWindow*100), "0"), ".") + "%"
		}
		for _, d := range p.NotifyBefore {
			j.NotifyBefore = append(j.NotifyBefore, d.String())
		}
		out["items"] = append(out["items"], j)
	}
	httpjson.Write(c.w, http.StatusOK, out)
	return nil
}

// Dashboard is the counts and the activity per day.
type Dashboard struct {
	ByStatus  map[string]int64 `json:"by_status"`
	ByProfile map[string]int64 `json:"by_profile"`
	Expiring  map[string]int64 `json:"expiring_within_days"`
	Pending   int              `json:"pending_requests"`
	Days      []DayCount       `json:"days"`
}

// DayCount is one UTC day's activity.
type DayCount struct {
	Day     string `json:"day"`
	Issued  int64  `json:"issued"`
	Renewed int64  `json:"renewed"`
	Revoked int64  `json:"revoked"`
	Refused int64  `json:"refused"`
}

func (h *Handler) dashboard(c *call) error {
	q := c.q
	days := q.int("days", 30, 1, 366)
	if err := q.err(); err != nil {
		return err
	}
	d, pending, err := h.ops.Dashboard(c.ctx, c.p, days)
	if err != nil {
		return err
	}
	out := Dashboard{ByStatus: d.ByStatus, ByProfile: d.ByProfile, Expiring: map[string]int64{}, Pending: pending, Days: []DayCount{}}
	for k, v := range d.Expiring {
		out.Expiring[itoa(k)] = v
	}
	for _, dc := range d.Days {
		out.Days = append(out.Days, DayCount{Day: dc.Day.Format("2006-01-02"), Issued: dc.Issued, Renewed: dc.Renewed, Revoked: dc.Revoked, Refused: dc.Refused})
	}
	httpjson.Write(c.w, http.StatusOK, out)
	return nil
}

// ESTUser is an EST account (never its password).
type ESTUser struct {
	Name      string    `json:"name"`
	Profile   string    `json:"profile"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

// ESTUserRequest creates one.
type ESTUserRequest struct {
	Name     string `json:"name" openapi:"required"`
	Password string `json:"password" openapi:"required"`
	Profile  string `json:"profile"`
}

func (h *Handler) listESTUsers(c *call) error {
	users, err := h.ops.ESTUsers(c.ctx, c.p)
	if err != nil {
		return err
	}
	out := map[string][]ESTUser{"items": {}}
	for _, u := range users {
		out["items"] = append(out["items"], ESTUser{Name: u.Name, Profile: u.Profile, CreatedAt: u.CreatedAt.UTC(), CreatedBy: u.CreatedBy})
	}
	httpjson.Write(c.w, http.StatusOK, out)
	return nil
}

func (h *Handler) addESTUser(c *call) error {
	var req ESTUserRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	u, err := h.ops.AddESTUser(c.ctx, c.p, req.Name, req.Password, req.Profile)
	if err != nil {
		return err
	}
	httpjson.Write(c.w, http.StatusCreated, ESTUser{Name: u.Name, Profile: u.Profile, CreatedAt: u.CreatedAt.UTC(), CreatedBy: u.CreatedBy})
	return nil
}

func (h *Handler) removeESTUser(c *call) error {
	if err := h.ops.RemoveESTUser(c.ctx, c.p, c.r.PathValue("name")); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// Token is an API token (never its secret).
type Token struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	CreatedAt  time.Time  `json:"created_at"`
	CreatedBy  string     `json:"created_by"`
	ExpiresAt  *time.Time `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	// State is the CLI's word for it, so a script need not work it out
	// from revoked_at and expires_at.
	State string `json:"state" doc:"live, revoked or expired, when this answer was made"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func tokenJSON(t pki.APIToken, now time.Time) Token {
	return Token{ID: t.ID, Name: t.Name, Role: string(t.Role), CreatedAt: t.CreatedAt.UTC(), CreatedBy: t.CreatedBy,
		ExpiresAt: optTime(t.ExpiresAt), RevokedAt: optTime(t.RevokedAt), LastUsedAt: optTime(t.LastUsedAt), State: t.State(now)}
}

// TokenRequest creates a token.
type TokenRequest struct {
	Name string `json:"name" openapi:"required"`
	Role string `json:"role" openapi:"required"`
	TTL  string `json:"ttl"` // "" or "0": no expiry
}

// NewToken is a created token with its secret.
type NewToken struct {
	Token  Token  `json:"token"`
	Secret string `json:"secret"`
}

func (h *Handler) listTokens(c *call) error {
	list, err := h.ops.Tokens(c.ctx, c.p)
	if err != nil {
		return err
	}
	out := map[string][]Token{"items": {}}
	now := h.ops.Now()
	for _, t := range list {
		out["items"] = append(out["items"], tokenJSON(t, now))
	}
	httpjson.Write(c.w, http.StatusOK, out)
	return nil
}

func (h *Handler) newToken(c *call) error {
	var req TokenRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	ttl, err := auth.ParseTokenTTL(req.TTL)
	if errors.Is(err, auth.ErrTokenTTLRange) {
		// 422, as NewToken answers a lifetime out of range ("1s", "-1h"):
		// a value read, and refused.
		return pki.Errorf(pki.EBadRequest, "ttl: %s", pki.ErrorMessage(err))
	}
	if err != nil {
		return refusedf("ttl: %s", pki.ErrorMessage(err))
	}
	secret, t, err := h.ops.NewToken(c.ctx, c.p, req.Name, pki.Role(req.Role), ttl)
	if err != nil {
		return err
	}
	httpjson.Write(c.w, http.StatusCreated, NewToken{Token: tokenJSON(t, h.ops.Now()), Secret: secret})
	return nil
}

func (h *Handler) revokeToken(c *call) error {
	if _, err := h.ops.RevokeToken(c.ctx, c.p, c.r.PathValue("id")); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// User is a console user (never a password).
type User struct {
	Name        string     `json:"name"`
	Role        string     `json:"role"`
	CreatedAt   time.Time  `json:"created_at"`
	CreatedBy   string     `json:"created_by"`
	LastLoginAt *time.Time `json:"last_login_at"`
	LockedUntil *time.Time `json:"locked_until"`
}

// UserRequest creates a user.
type UserRequest struct {
	Name     string `json:"name" openapi:"required"`
	Role     string `json:"role" openapi:"required"`
	Password string `json:"password" openapi:"required"`
}

func userJSON(u pki.User) User {
	return User{Name: u.Name, Role: string(u.Role), CreatedAt: u.CreatedAt.UTC(), CreatedBy: u.CreatedBy,
		LastLoginAt: optTime(u.LastLoginAt), LockedUntil: optTime(u.LockedUntil)}
}

func (h *Handler) listUsers(c *call) error {
	list, err := h.ops.Users(c.ctx, c.p)
	if err != nil {
		return err
	}
	out := map[string][]User{"items": {}}
	for _, u := range list {
		out["items"] = append(out["items"], userJSON(u))
	}
	httpjson.Write(c.w, http.StatusOK, out)
	return nil
}

func (h *Handler) addUser(c *call) error {
	var req UserRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	u, err := h.ops.AddUser(c.ctx, c.p, req.Name, pki.Role(req.Role), req.Password)
	if err != nil {
		return err
	}
	httpjson.Write(c.w, http.StatusCreated, userJSON(u))
	return nil
}

func (h *Handler) removeUser(c *call) error {
	if err := h.ops.RemoveUser(c.ctx, c.p, c.r.PathValue("name")); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}
