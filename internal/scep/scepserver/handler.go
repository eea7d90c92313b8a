// Package scepserver is the SCEP (RFC 8894) HTTP handler. It only
// translates: it decodes a pkiMessage (with package scep, the wire format it
// shares with the client), hands the request to the enrollment service as
// protocol-neutral evidence, and encodes the outcome as a signed CertRep.
// It reaches the store and the CA only through the service.
package scepserver

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
)

// Service is the part of the enrollment service the handler needs
// (*enroll.Service implements it).
type Service interface {
	Enroll(ctx context.Context, req enroll.Request) (*enroll.Result, error)
	// PollChecked answers about a held request (or a certificate issued
	// at once for the transaction) to the key that made it, and to any
	// other key as about an unknown transaction ID; q.Check refuses what
	// was found before the poll is counted.
	PollChecked(ctx context.Context, q enroll.Poll) (*enroll.Result, error)
	// HeldBy answers as PollChecked does, counting nothing in the metrics: the
	// handler asks it whether a message sent again asks about a held
	// request, and the operation that then runs is what is counted.
	HeldBy(ctx context.Context, profile, transactionID string, pollerKey []byte) (*enroll.Result, error)
	GetCertificate(ctx context.Context, rawIssuer []byte, serialHex string, requester *x509.Certificate) (*x509.Certificate, error)
	// CurrentCRL is the newest CRL of the issuer GetCRL names.
	CurrentCRL(ctx context.Context, rawIssuer []byte, serialHex string) ([]byte, *x509.Certificate, error)
	// CheckNotRevoked refuses a certificate of ours that is revoked.
	CheckNotRevoked(ctx context.Context, cert *x509.Certificate) error
	// RejectHeldRenewals rejects the requests held pending for req's key
	// that renew cert, a certificate of ours revoked for good, after a
	// request signed by it was refused (enroll.RevokedForGood).
	RejectHeldRenewals(ctx context.Context, profile string, req *x509.CertificateRequest, cert *x509.Certificate) error
	// IssuedHere: cert was issued by one of our issuing CAs and is valid
	// now.
	IssuedHere(cert *x509.Certificate) bool
	Profile(name string) (pki.Profile, bool)
	// RememberNonce refuses a replayed (transactionID, senderNonce) pair,
	// across restarts and nodes. The handler passes the senderNonce with
	// its signer's key appended (signedNonce).
	RememberNonce(ctx context.Context, transactionID string, senderNonce []byte, lifetime time.Duration) error
	// ForgetNonce forgets a pair RememberNonce remembered: its message's
	// operation changed nothing, and it may be sent again.
	ForgetNonce(ctx context.Context, transactionID string, senderNonce []byte) error
	// MarkNonceRefused records that the run of a pair RememberNonce
	// remembered ended refused: its copies are refused as replays at
	// once (enroll.ReplayOfRefused), not told to retry.
	MarkNonceRefused(ctx context.Context, transactionID string, senderNonce []byte) error
	// RecordRefusal puts a refusal the service did not decide into the
	// audit trail.
	RecordRefusal(ctx context.Context, r enroll.Refusal) error
	// ActiveRA is the RA in charge now; NextRA the next CA's during a
	// rollover; RAs every RA whose key is loaded (current, next,
	// previous), so an envelope addressed to an RA of before a switch
	// still opens.
	ActiveRA() *pki.RA
	NextRA() (*pki.RA, bool)
	RAs() []*pki.RA
}

// RALacker is a Service that knows RA certificates of this CA whose keys
// this node lacks: renewed on another node sharing the store, and not
// copied here yet. A request encrypted to one is answered 503, not a
// FAILURE: the client tries again, and another node (or this one, once it
// has the key) opens it.
type RALacker interface {
	LackedRAs() []*x509.Certificate
}

// RALackRechecker is an RALacker whose list may be stale: an RA renewed on
// another node a moment ago is not in it yet. RecheckLackedRAs reads again
// which RAs this node lacks, at once, and returns them; it may answer from
// the last read when asked too often (one store read per few seconds).
type RALackRechecker interface {
	RALacker
	RecheckLackedRAs(ctx context.Context) []*x509.Certificate
}

// FormerRAFinder is a Service that can name the SCEP RA certificate of
// the inventory, not loaded here (revoked and replaced, discarded or
// revoked on the root CRL with its CA, expired, or another node's), that
// an envelope is addressed to; *enroll.Service is one. It is asked only
// about an envelope no loaded RA is addressed to, after it failed to open.
type FormerRAFinder interface {
	FormerRA(ctx context.Context, rawIssuer []byte, serial *big.Int, subjectKeyID []byte) (rec enroll.FormerRARecord, found bool, err error)
}

// Options tune the handler.
type Options struct {
	// AllowInsecureDES lets single-DES request envelopes in (legacy clients
	// such as micromdm's scepclient); replies then use DES3.
	AllowInsecureDES bool
	// MaxClockSkew bounds how far a request's signingTime may be from ours.
	MaxClockSkew time.Duration
	// MaxBodyBytes bounds a POSTed pkiMessage.
	MaxBodyBytes int64
	// NonceLifetime is how long senderNonces are remembered for replay
	// checks; zero means twice MaxClockSkew, the longest a message is
	// acceptable (its signingTime, which is required, must be within
	// MaxClockSkew of the server's clock either way).
	NonceLifetime time.Duration
	// NDESProfile is the profile served at NDES's SCEP path,
	// /certsrv/mscep/mscep.dll: the one the NDES password page's
	// challenges are bound to when that page is on. Empty means the
	// default profile.
	NDESProfile string
}

// Defaults for Options fields left zero.
const (
	DefaultMaxBodyBytes = 256 << 10
	DefaultMaxClockSkew = 24 * time.Hour
	// MaxClockSkewLimit bounds Options.MaxClockSkew: a request's nonce is
	// remembered for twice the skew, so a larger one would keep every nonce
	// for months, and one near the largest Duration overflowed the doubling
	// and forgot them at once (every captured request replayable).
	MaxClockSkewLimit = 30 * 24 * time.Hour
	// maxQueryBytes bounds a GET query; certmonger sends ~6 KB for RSA-4096.
	maxQueryBytes = 64 << 10
)

// Handler serves SCEP.
type Handler struct {
	svc   Service
	clock pki.Clock
	log   *slog.Logger
	opts  Options
	ops   map[scep.MessageType]operationFunc

	// GetCACert bodies, built once per RA: nothing about a CA changes
	// while it is active.
	mu      sync.Mutex
	caCerts map[*pki.RA]caCertBody

	// The KEKs of EC requesters' replies, by challenge.
	passwordKeys *passwordKeys

	// Pairs of messages answered 503 that the store could not forget yet.
	unforgotten unforgotten
}

type caCertBody struct {
	body        []byte
	contentType string
}

// Capabilities lists what we advertise in GetCACaps: exactly what works.
// SHA-384 matters: strongSwan 5.9.8 uses AES only when it sees it.
// GetNextCACert is added while a next CA exists.
var Capabilities = []string{"AES", "DES3", "POSTPKIOperation", "Renewal", "SHA-1", "SHA-256", "SHA-384", "SHA-512", "SCEPStandard"}

// New builds the handler.
func New(svc Service, clock pki.Clock, log *slog.Logger, opts Options) (*Handler, error) {
	if err := checkRA(svc.ActiveRA()); err != nil {
		return nil, err
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxClockSkew <= 0 {
		opts.MaxClockSkew = DefaultMaxClockSkew
	}
	if opts.MaxClockSkew > MaxClockSkewLimit {
		return nil, fmt.Errorf("scep: a clock skew of %s is more than the %s allowed", opts.MaxClockSkew, MaxClockSkewLimit)
	}
	if opts.NonceLifetime <= 0 {
		opts.NonceLifetime = 2 * opts.MaxClockSkew
	}
	if opts.NDESProfile != "" {
		if _, ok := svc.Profile(opts.NDESProfile); !ok {
			return nil, fmt.Errorf("scep: the NDES profile %q is not a configured profile", opts.NDESProfile)
		}
	}
	keys, err := newPasswordKeys(clock)
	if err != nil {
		return nil, err
	}
	h := &Handler{svc: svc, clock: clock, log: log, opts: opts, caCerts: map[*pki.RA]caCertBody{}, passwordKeys: keys}
	h.ops = map[scep.MessageType]operationFunc{
		scep.PKCSReq:    h.enroll,
		scep.RenewalReq: h.enroll,
		scep.CertPoll:   h.certPoll,
		scep.GetCert:    h.getCert,
		scep.GetCRL:     h.getCRL,
	}
	return h, nil
}

func checkRA(ra *pki.RA) error {
	if ra == nil || ra.Cert == nil {
		return errors.New("scep: no RA")
	}
	if _, ok := ra.Key.Public().(*rsa.PublicKey); !ok {
		return errors.New("scep: the RA key must be RSA")
	}
	if _, ok := ra.Key.(crypto.Decrypter); !ok {
		return errors.New("scep: the RA key cannot decrypt")
	}
	return nil
}

// ServeHTTP serves the profile the path names ({profile}), else the
// default profile.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	profile := r.PathValue("profile")
	if profile == "pkiclient.exe" {
		profile = ""
	}
	h.serve(w, r, profile)
}

// serveNDES serves NDES's SCEP path, for NDESProfile.
func (h *Handler) serveNDES(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, h.opts.NDESProfile)
}

// serve dispatches on the operation query parameter (RFC 8894 §4.1).
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, profile string) {
	if len(r.URL.RawQuery) > maxQueryBytes {
		httpError(w, http.StatusRequestURITooLong, "query string too long")
		return
	}
	op := scep.Operation(r.URL.RawQuery)
	if profile != "" {
		if _, ok := h.svc.Profile(profile); !ok {
			if op == "PKIOperation" && (r.Method == http.MethodGet || r.Method == http.MethodPost) {
				// An enrollment call refused before its message is read:
				// recorded and counted (under "unknown"), as EST's unknown
				// label is.
				h.refuse(r.Context(), r.RemoteAddr, profile, "", pki.Errorf(pki.ENotFound, "unknown profile %q", pki.Clip(profile, 64)))
			}
			// Named as the trail names it; quoted with Go escapes (%q),
			// as the client chose it.
			httpError(w, http.StatusNotFound, fmt.Sprintf("unknown profile %q", pki.Clip(profile, 64)))
			return
		}
	}
	now := h.clock.Now()
	switch {
	case r.Method != http.MethodGet && r.Method != http.MethodPost && r.Method != http.MethodHead:
		// Allow lists what is served: HEAD too, except for PKIOperation
		// (see below).
		allow := "GET, HEAD, POST"
		if op == "PKIOperation" {
			allow = "GET, POST"
		}
		w.Header().Set("Allow", allow)
		httpError(w, http.StatusMethodNotAllowed, "method not allowed")
	case op == "GetCACaps":
		w.Header().Set("Content-Type", "text/plain")
		writeBody(w, h.caps())
	case op == "GetCACert":
		b, err := h.caCertBody(h.svc.ActiveRA())
		if err != nil {
			h.log.Error("scep: GetCACert", "err", err)
			httpError(w, http.StatusInternalServerError, "internal error")
			return
		}
		w.Header().Set("Content-Type", b.contentType)
		writeBody(w, b.body)
	case op == "GetNextCACert":
		h.getNextCACert(w, now)
	case op == "PKIOperation" && r.Method == http.MethodHead:
		// HEAD asks about a resource, and a link checker or a proxy may
		// send it freely: it must not enroll (and use up a one-time
		// challenge) with nobody to read the answer.
		w.Header().Set("Allow", "GET, POST")
		httpError(w, http.StatusMethodNotAllowed, "PKIOperation is GET or POST, not HEAD")
	case op == "PKIOperation":
		h.pkiOperation(w, r, profile)
	case op == "":
		httpError(w, http.StatusBadRequest, "missing operation parameter")
	default:
		httpError(w, http.StatusBadRequest, fmt.Sprintf("unsupported operation %q: want GetCACaps, GetCACert, GetNextCACert or PKIOperation (RFC 8894; the names are case-sensitive)", pki.Clip(op, 64)))
	}
}

func (h *Handler) caps() []byte {
	caps := Capabilities
	if _, ok := h.svc.NextRA(); ok {
		caps = append(append([]string{}, caps...), "GetNextCACert")
	}
	return []byte(strings.Join(caps, "\n") + "\n")
}

// caCertBody is GetCACert's answer for an RA: the RA first (when separate),
// then the CA chain. With one certificate only, RFC 8894 §4.2.1.1 wants
// plain DER.
func (h *Handler) caCertBody(ra *pki.RA) (caCertBody, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if b, ok := h.caCerts[ra]; ok {
		return b, nil
	}
	certs := transportCerts(ra)
	var b caCertBody
	if len(certs) == 1 {
		b = caCertBody{certs[0].Raw, "application/x-x509-ca-cert"}
	} else {
		body, err := cms.DegenerateCertificates(certs)
		if err != nil {
			return b, fmt.Errorf("scep: GetCACert body: %w", err)
		}
		b = caCertBody{body, "application/x-x509-ca-ra-cert"}
	}
	h.caCerts[ra] = b
	return b, nil
}

// transportCerts: the RA certificate, then its CA chain (without repeating
// the RA when the CA acts as RA).
func transportCerts(ra *pki.RA) []*x509.Certificate {
	var certs []*x509.Certificate
	for _, c := range ra.Chain {
		if len(certs) == 0 || !c.Equal(certs[len(certs)-1]) {
			certs = append(certs, c)
		}
	}
	if len(certs) == 0 || !certs[0].Equal(ra.Cert) {
		certs = append([]*x509.Certificate{ra.Cert}, certs...)
	}
	return certs
}

// getNextCACert answers with the next CA (and RA) certificates, in a
// SignedData signed by the current RA (RFC 8894 §4.7).
func (h *Handler) getNextCACert(w http.ResponseWriter, now time.Time) {
	nextRA, ok := h.svc.NextRA()
	if !ok {
		httpError(w, http.StatusNotFound, "no next CA certificate: no rollover is pending")
		return
	}
	inner, err := cms.DegenerateCertificates(transportCerts(nextRA))
	if err == nil {
		ra := h.svc.ActiveRA()
		inner, err = cms.Sign(inner, ra.Cert, ra.Key, nil, cms.SignOptions{Digest: crypto.SHA256, RSAEncryptionOID: true, SigningTime: now})
	}
	if err != nil {
		h.log.Error("scep: GetNextCACert", "err", err)
		if pki.ErrorCode(err) == pki.EUnavailable {
			// The RA key in a token that is away: the client asks again.
			w.Header().Set("Retry-After", strconv.Itoa(pki.RetryAfter(err)))
			httpError(w, http.StatusServiceUnavailable, pki.ErrorMessage(err))
			return
		}
		httpError(w, http.StatusInternalServerError, "internal error")
		return
	}
	w.Header().Set("Content-Type", "application/x-x509-next-ca-cert")
	writeBody(w, inner)
}

func (h *Handler) pkiOperation(w http.ResponseWriter, r *http.Request, profile string) {
	der, status, err := h.readMessage(w, r)
	if err != nil {
		h.refuse(r.Context(), r.RemoteAddr, profile, "", pki.Wrap(pki.EBadRequest, err, err.Error()))
		httpError(w, status, err.Error())
		return
	}
	msg, err := scep.Parse(der)
	if err != nil {
		// Say what is wrong: the client cannot get a CertRep (there is no
		// transactionID or senderNonce to echo), so this is all it learns.
		reason := "malformed pkiMessage: " + pki.Clip(strings.TrimPrefix(err.Error(), scep.ErrMalformed.Error()+": "), 200)
		h.refuse(r.Context(), r.RemoteAddr, profile, "", pki.Wrap(pki.EBadRequest, err, reason))
		httpError(w, http.StatusBadRequest, reason)
		return
	}
	reply, err := h.handle(r.Context(), &request{msg: msg, remote: r.RemoteAddr, profile: profile})
	if err != nil && pki.ClientGone(r.Context(), err) {
		h.log.Info("scep: the client went away before the answer", "remote", r.RemoteAddr, "transaction_id", msg.TransactionID, "err", err)
		w.WriteHeader(pki.StatusClientGone) // for the metrics; nobody reads it
		return
	}
	if err != nil {
		switch {
		case enroll.Gated(err): // a state that lasts: the service logs each at WARN
		case pki.ErrorCode(err) == pki.EUnavailable:
			// A state that lasts too (a token away, a CA or RA this node
			// lacks, the store down), which /readyz fails on and logs once
			// at ERROR: each request is a WARN.
			h.log.Warn("scep: unavailable", "remote", r.RemoteAddr, "transaction_id", msg.TransactionID, "err", err)
		default:
			h.log.Error("scep: cannot answer", "remote", r.RemoteAddr, "transaction_id", msg.TransactionID, "err", err)
		}
		if pki.ErrorCode(err) == pki.EUnavailable {
			// Not a FAILURE, which a device takes as final: it sends the
			// same request again later, and nothing was issued.
			w.Header().Set("Retry-After", strconv.Itoa(pki.RetryAfter(err)))
			httpError(w, http.StatusServiceUnavailable, pki.ErrorMessage(err))
			return
		}
		httpError(w, http.StatusInternalServerError, "internal error")
		return
	}
	w.Header().Set("Content-Type", "application/x-pki-message")
	writeBody(w, reply)
}

// readMessage returns the DER pkiMessage from a POST body or GET query.
func (h *Handler) readMessage(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	if r.Method != http.MethodPost {
		der, err := scep.DecodeQueryMessage(r.URL.RawQuery)
		if err != nil {
			return nil, http.StatusBadRequest, err
		}
		return der, 0, nil
	}
	body, err := readBody(w, r, h.opts.MaxBodyBytes)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body larger than %d bytes", h.opts.MaxBodyBytes)
	}
	if err != nil {
		return nil, http.StatusBadRequest, errors.New("could not read body")
	}
	if len(body) == 0 {
		return nil, http.StatusBadRequest, errors.New("the body is empty: a PKIOperation POST carries the DER pkiMessage (RFC 8894 §4.3)")
	}
	if body[0] == 0x30 {
		return body, 0, nil
	}
	der, err := scep.DecodeBase64(string(body)) // some clients POST base64; accept it
	if err != nil || len(der) == 0 {
		// Said as the body is meant to be: binary DER, base64 only taken.
		return nil, http.StatusBadRequest, errors.New("the body is not a DER pkiMessage (RFC 8894 §4.3), nor base64 of one")
	}
	return der, 0, nil
}

// readBody reads a POST body of at most limit bytes. The announced length,
// within what the server's guard has read ahead already, sizes the buffer
// once instead of letting it double up to a PKCSReq's few KiB.
//
// A body announced longer than limit is refused unread: reading would send
// a client that sent "Expect: 100-continue" its "100 Continue", and it
// would be sending the body while the 413 closed the connection, which it
// would see reset. A chunked body is bounded as it is read.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	var b bytes.Buffer
	if r.ContentLength > 0 {
		b.Grow(int(min(r.ContentLength, limit, readAheadBytes)) + bytes.MinRead)
	}
	_, err := b.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	return b.Bytes(), err
}

// readAheadBytes bounds the buffer readBody allocates before any byte has
// arrived: no more than the server's guard holds of every body already.
const readAheadBytes = 64 << 10

// request is one PKIOperation being answered.
type request struct {
	msg     *scep.PKIMessage
	remote  string
	profile string
	now     time.Time
	ra      *pki.RA // the RA that answers: the active one, or the one the client encrypted to
	digest  crypto.Hash
	// challenge is the CSR's challengePassword, kept to encrypt the reply
	// to EC requesters (password recipient, RFC 8894 §3.2.2).
	challenge string
	// replayed: the message's pair was seen before (see resentAsIs),
	// first at firstSeen (zero: unknown).
	replayed  bool
	firstSeen time.Time
	// heldOnly is the refusal of a message signed longer ago than the
	// clock skew allows that asks about a request held for approval (see
	// handle): it is answered from that request and from nothing else.
	heldOnly error
	// cipher and the key transport (with its OAEP and MGF1 hashes) of the
	// request's envelope: the reply answers in kind.
	cipher       cms.ContentCipher
	keyTransport cms.KeyTransport
	oaepHash     crypto.Hash
	oaepMGFHash  crypto.Hash
	// elsewhere is the envelope's recipient when no loaded RA is that
	// recipient (nil when one is): a failure to open it is answered with
	// who it is addressed to (undecryptable).
	elsewhere *cms.Recipient
}

// handle turns a parsed pkiMessage into a signed CertRep. It returns an
// error only when no CertRep can be built at all.
func (h *Handler) handle(ctx context.Context, req *request) ([]byte, error) {
	msg := req.msg
	req.now = h.clock.Now()
	req.ra = h.svc.ActiveRA()
	req.digest = msg.Digest
	if !replyDigestOK(req.digest) {
		req.digest = crypto.SHA256
	}
	// One allow-list of message types, checked before anything else, so no
	// type can reach issuance without passing the same checks.
	op, ok := h.ops[msg.MessageType]
	if !ok {
		return h.fail(ctx, req, pki.Errorf(pki.EBadRequest, "unsupported messageType %s", msg.MessageType))
	}
	// The outer signature is verified before any decryption.
	if err := msg.Verify(); err != nil {
		return h.fail(ctx, req, err)
	}
	// signingTime is required: without it a replay could come after its
	// nonce is forgotten (every captured client sends it). With it a
	// message is acceptable for 2 × MaxClockSkew at most, and its nonce is
	// remembered that long.
	if msg.SigningTimeErr != nil {
		return h.fail(ctx, req, pki.Errorf(pki.EBadTime, "the message's signingTime attribute is %v", msg.SigningTimeErr))
	}
	if msg.SigningTime.IsZero() {
		return h.fail(ctx, req, pki.Errorf(pki.EBadTime, "the message has no signingTime attribute; it is required (a message without one could be replayed later)"))
	}
	if t := msg.SigningTime; t.Sub(req.now) > h.opts.MaxClockSkew || req.now.Sub(t) > h.opts.MaxClockSkew {
		skewed := pki.Errorf(pki.EBadTime, "signingTime %s is too far from the server time", t.UTC().Format(time.RFC3339))
		if t.After(req.now) {
			return h.fail(ctx, req, skewed)
		}
		// Except a message that asks about a request held for approval:
		// micromdm's scepclient sends its PKCSReq again byte for byte,
		// signingTime and all, until the request is decided, which may
		// take longer than the skew (a weekend). It was checked when it
		// first came, and only the requester's key signs a question
		// about its request, which is answered from the store and
		// nothing else (heldOnly).
		held, err := h.heldAsked(ctx, req)
		switch {
		case err != nil:
			return h.fail(ctx, req, err)
		case !held:
			return h.fail(ctx, req, skewed)
		}
		h.log.Info("scep: a message signed longer ago than the clock skew allows asks about a request held for approval; answered from the store",
			"remote", req.remote, "transaction_id", msg.TransactionID, "message_type", msg.MessageType.String(), "signing_time", t.UTC().Format(time.RFC3339))
		req.heldOnly = skewed
	}
	// Remembered with the signer's key: another signer's message with
	// this pair does not use it up (see signedNonce).
	nonce := signedNonce(msg)
	err := h.claimNonce(ctx, msg.TransactionID, nonce)
	claimed := err == nil
	if err != nil {
		held, herr := h.asksAboutHeldRequest(ctx, req, err)
		switch {
		case herr != nil:
			return h.fail(ctx, req, herr)
		case held:
		case resentAsIs(req.msg.MessageType, err) && !enroll.ReplayOfRefused(err):
			// A copy of a request received before (its answer lost: a
			// node that died, a balancer that retried): answered as its
			// resend is, never issued for anew (see enroll.Request).
			req.replayed, req.firstSeen = true, enroll.ReplayFirstSeen(err)
		default:
			return h.fail(ctx, req, err)
		}
	}
	reply, err := op(ctx, req)
	if err != nil {
		if claimed && pki.ErrorCode(err) == pki.EUnavailable {
			// Answered 503: the client sends the same message again
			// later (see claimNonce). Nothing was held, nor issued but
			// when only the reply's signature failed: the resend is then
			// answered with that certificate, as a resend always is.
			h.releaseNonce(ctx, msg.TransactionID, nonce)
		}
		reply, ferr := h.fail(ctx, req, err)
		if claimed && ferr == nil {
			// A FAILURE is going out: nothing of this run is in flight
			// any more, and its copies are refused at once (see
			// markRefused).
			h.markRefused(ctx, msg.TransactionID, nonce)
		}
		return reply, ferr
	}
	return reply, nil
}

// resentAsIs says whether a message refused as a replay (nonceErr) is one
// the service answers as a resend: a PKCSReq or RenewalReq, whose
// certificate, once issued for its transaction and key, goes out again
// encrypted to that key; or a CertPoll, which issues nothing and is
// answered from the store as the poll it copies was (a certificate issued
// at once for the poller's key, or no request: a copy of a poll that was
// refused is refused as a replay, see ReplayOfRefused).
func resentAsIs(t scep.MessageType, nonceErr error) bool {
	return (t == scep.PKCSReq || t == scep.RenewalReq || t == scep.CertPoll) && pki.ErrorCode(nonceErr) == pki.EBadRequest
}

// asksAboutHeldRequest tells whether a message refused as a replay (nonceErr)
// asks about a request held for approval, which may then be answered again.
// micromdm's scepclient resends its PKCSReq byte for byte while the answer is
// PENDING; the answer comes from the store, so the resend can issue nothing
// new, and the operation authenticates it again (the held request's
// challenge, the requester's key). It returns an error when the store cannot
// tell, and the refusal of one whose request expired without a decision.
func (h *Handler) asksAboutHeldRequest(ctx context.Context, req *request, nonceErr error) (bool, error) {
	if pki.ErrorCode(nonceErr) != pki.EBadRequest {
		return false, nil // not a replay: the store failed
	}
	return h.heldAsked(ctx, req)
}

// heldAsked tells whether a message (a PKCSReq, RenewalReq or CertPoll)
// asks about a request held for approval, made with its signer's key: one
// pending, decided, or refused to it (other names). It returns an error
// when the store cannot tell, and the refusal of one whose request expired
// without a decision.
func (h *Handler) heldAsked(ctx context.Context, req *request) (bool, error) {
	switch req.msg.MessageType {
	case scep.PKCSReq, scep.RenewalReq, scep.CertPoll:
	default:
		return false, nil
	}
	// Asked as the operation will ask: a message signed by another key than
	// the requester's learns nothing more from a replay than from a first
	// send, not even that the transaction ID is held. Not counted: the
	// operation that answers the message is, once (a PKCSReq sent again
	// while held is one poll, not a poll and a pending enrollment).
	_, err := h.svc.HeldBy(ctx, req.profile, req.msg.TransactionID, req.msg.SignerCert.RawSubjectPublicKeyInfo)
	switch code := pki.ErrorCode(err); {
	case enroll.RequestExpired(err):
		// Held, and its retention ended with no decision: the copy is
		// told so, not that a copy of it arrived moments ago (503) or
		// that it is a replay.
		return false, err
	case err == nil, code == pki.EBadRequest: // pending, issued or rejected
		return true, nil
	case code == pki.EInternal || code == pki.EUnavailable:
		return false, err
	}
	return false, nil
}

// fail answers a refusal with a FAILURE CertRep carrying its failInfo, and
// puts it in the audit trail unless the service did already.
func (h *Handler) fail(ctx context.Context, req *request, err error) ([]byte, error) {
	code := pki.ErrorCode(err)
	if code == pki.EInternal || code == pki.EUnavailable {
		return nil, err
	}
	fi := scep.FailInfoFor(code)
	attrs := []any{"remote", req.remote, "transaction_id", req.msg.TransactionID,
		"message_type", req.msg.MessageType.String(), "fail_info", fi.String(), "reason", pki.OperatorReason(err)}
	if told := pki.ErrorMessage(err); told != pki.OperatorReason(err) {
		attrs = append(attrs, "told", told)
	}
	h.log.Info("scep: FAILURE", append(attrs, "err", err)...)
	if !enroll.Audited(err) {
		h.refuse(ctx, req.remote, req.profile, req.msg.TransactionID, err)
	}
	return h.certRep(req, scep.Reply{Status: scep.StatusFailure, FailInfo: fi, FailInfoText: pki.ErrorMessage(err)})
}

// refuse records a refusal in the audit trail.
func (h *Handler) refuse(ctx context.Context, remote, profile, txID string, err error) {
	_ = h.svc.RecordRefusal(ctx, enroll.Refusal{Protocol: pki.ProtocolSCEP, Operation: "PKIOperation", RemoteAddr: remote,
		Profile: profile, TransactionID: txID, Err: err})
}

// operationFunc answers one allowed message type; h.ops is the allow-list.
type operationFunc func(ctx context.Context, req *request) ([]byte, error)

// errUndecryptable is the one answer for every failure after signature
// verification while opening the envelope: no oracle for RSA or CBC padding.
var errUndecryptable = pki.Errorf(pki.EBadMessageCheck, "could not decrypt the message envelope")

// open decrypts the pkcsPKIEnvelope with the RA key the client encrypted to
// (the active RA, or the next or a previous one around a rollover).
func (h *Handler) open(ctx context.Context, req *request) ([]byte, error) {
	env, err := cms.ParseEnvelopedData(req.msg.SignedData.Content)
	if err != nil {
		if errors.Is(err, cms.ErrUnsupportedAlgorithm) {
			return nil, pki.Wrap(pki.EBadAlg, err, "unsupported envelope algorithm")
		}
		return nil, pki.Wrap(pki.EBadMessageCheck, err, "malformed message envelope")
	}
	if req.cipher, err = h.replyCipher(env.Cipher, req); err != nil {
		return nil, err
	}
	ra := req.ra
	if addressedTo(env, ra.Cert) == nil {
		for _, other := range h.svc.RAs() {
			if addressedTo(env, other.Cert) != nil {
				ra = other
				break
			}
		}
	}
	if err := h.lacked(ctx, env, ra); err != nil {
		h.refuse(ctx, req.remote, req.profile, req.msg.TransactionID, err)
		return nil, err
	}
	if r := addressedTo(env, ra.Cert); r != nil {
		// The reply is signed by the RA the client encrypted to: a client
		// that cached GetCACert before a switch knows only that one.
		req.ra = ra
		if r.KeyTransport == cms.RSAOAEP {
			req.keyTransport, req.oaepHash, req.oaepMGFHash = cms.RSAOAEP, r.OAEPHash, r.OAEPMGFHash
		}
		req.elsewhere = nil
	} else {
		req.elsewhere = keyTransportRecipient(env)
	}
	plain, err := env.DecryptKeyTransport(ra.Cert, ra.Decrypter())
	if errors.Is(err, cms.ErrUnsupportedAlgorithm) {
		// Found before any key is used, from public data (the OIDs): no
		// oracle in telling it apart.
		return nil, pki.Wrap(pki.EBadAlg, err, "unsupported key transport algorithm")
	}
	if errors.Is(err, pki.ErrUnavailable) {
		// The RA key could not be used (its token lost): try again later,
		// not a FAILURE the device takes as final. Recorded here, before
		// the service that records the outages it meets, as EST's are.
		h.refuse(ctx, req.remote, req.profile, req.msg.TransactionID, err)
		return nil, err
	}
	if err != nil {
		return nil, h.undecryptable(ctx, req, err, "")
	}
	return plain, nil
}

// undecryptable answers an envelope that did not open, or whose content
// did not parse (err). One addressed to an RA whose key we hold gets
// errUndecryptable, whatever failed: no oracle for RSA or CBC padding.
// One addressed to no loaded RA (req.elsewhere; its single key-transport
// recipient is still tried with the active RA's key, for clients that name
// it wrongly) gets a reason that names that recipient, which the envelope
// carries in the clear, and says what to do: a device that cached
// GetCACert before its RA was revoked and replaced learns why, and so does
// the operator from the log and the audit trail. Either text depends on
// the recipient alone, never on which step failed.
//
// content, for an envelope that opened, says what its content is not
// ("a PKCS#10 certificate request"): the log and the audit trail give that
// real cause (OperatorReason), where the client is told as above.
func (h *Handler) undecryptable(ctx context.Context, req *request, err error, content string) error {
	var refusal *pki.Error
	if req.elsewhere == nil {
		refusal = pki.Wrap(pki.EBadMessageCheck, err, errUndecryptable.Message)
	} else {
		reason, lookupErr := h.notOurRA(ctx, req.elsewhere, req.now)
		refusal = pki.Wrap(pki.EBadMessageCheck, errors.Join(err, lookupErr), reason)
	}
	if content != "" {
		refusal.OperatorReason = fmt.Sprintf("the envelope was decrypted, but its content is not %s (%s); the client is told %q, as for any failure after decryption (no oracle)",
			content, pki.Clip(err.Error(), 200), refusal.Message)
	}
	return refusal
}

// notOurRA says which certificate r, a recipient no loaded RA is, names:
// an issuing CA or root certificate of ours (ownCACert); a SCEP RA
// certificate of the inventory (FormerRAFinder), discarded with the next
// CA that issued it, of an issuing CA the root's CRL lists, revoked and
// replaced, expired, or another node's; or any other certificate. A store
// that cannot be read makes it the last (lookupErr says why in the log): a
// former RA is not this server's RA either.
func (h *Handler) notOurRA(ctx context.Context, r *cms.Recipient, now time.Time) (reason string, lookupErr error) {
	if reason, ok := h.ownCACert(r); ok {
		return reason, nil
	}
	var rawIssuer []byte
	var serial *big.Int
	if r.IssuerAndSerial != nil {
		rawIssuer, serial = r.IssuerAndSerial.RawIssuer, r.IssuerAndSerial.Serial
	}
	if f, ok := h.svc.(FormerRAFinder); ok {
		rec, found, err := f.FormerRA(ctx, rawIssuer, serial, r.SubjectKeyID)
		switch {
		case err != nil:
			lookupErr = err
		case found && rec.CADiscarded:
			return fmt.Sprintf("the message is encrypted to SCEP RA certificate %s (%s), which was discarded on %s with the next CA that issued it, before that CA's switch; fetch GetCACert again",
				pki.ShownSerial(rec.SerialHex), rec.Subject, rec.RevokedAt.UTC().Format(time.DateOnly)), nil
		case found && rec.CARevoked:
			return fmt.Sprintf("the message is encrypted to SCEP RA certificate %s (%s), which was issued by an issuing CA that the root has revoked (listed on the root CRL); fetch GetCACert again",
				pki.ShownSerial(rec.SerialHex), rec.Subject), nil
		case found && rec.Status == pki.StatusRevoked:
			return fmt.Sprintf("the message is encrypted to SCEP RA certificate %s (%s), which was revoked on %s and replaced; fetch GetCACert again",
				pki.ShownSerial(rec.SerialHex), rec.Subject, rec.RevokedAt.UTC().Format(time.DateOnly)), nil
		case found && rec.Expired(now):
			return fmt.Sprintf("the message is encrypted to SCEP RA certificate %s (%s), which expired on %s; fetch GetCACert again",
				pki.ShownSerial(rec.SerialHex), rec.Subject, rec.NotAfter.UTC().Format(time.DateOnly)), nil
		case found:
			// Unexpired, unrevoked and not loaded here: most likely the RA
			// another node sharing the store made for itself when one was
			// revoked (docs/deployment.md).
			return fmt.Sprintf("the message is encrypted to SCEP RA certificate %s (%s), which this node does not decrypt with (another node's, say, on a shared store); "+
				"fetch GetCACert again, from the node that answers PKIOperation", pki.ShownSerial(rec.SerialHex), rec.Subject), nil
		}
	}
	if serial != nil {
		// Quoted with Go escapes: the name is the requester's, and its
		// control or bidi characters must not reach a device's screen or
		// an operator's terminal as they are (the log and the trail
		// escape them already; the reply's failInfoText does not).
		issuer := "unreadable"
		if name := csr.NameString(rawIssuer); name != "" {
			issuer = csr.QuoteBounded(name)
		}
		return fmt.Sprintf("the message is encrypted to a certificate that is not this server's SCEP RA (issuer %s, serial %s): fetch GetCACert again",
			issuer, pki.Clip(pki.SerialText(serial), 80)), lookupErr
	}
	return fmt.Sprintf("the message is encrypted to a certificate that is not this server's SCEP RA (subject key identifier %s): fetch GetCACert again",
		pki.Clip(fmt.Sprintf("%x", r.SubjectKeyID), 80)), lookupErr
}

// ownCACert names, when r is one of this server's issuing CA or root
// certificates, what the client did: it took the wrong certificate out of
// the GetCACert answer it has (sscep and scepclient may pick the CA's), so
// fetching that again would change nothing; it must encrypt to the RA's.
func (h *Handler) ownCACert(r *cms.Recipient) (reason string, ok bool) {
	for _, ra := range h.svc.RAs() {
		for i, cert := range ra.Chain {
			if cert.Equal(ra.Cert) || !cert.IsCA || !isRecipient(r, cert) {
				continue
			}
			role := "issuing CA"
			if i == len(ra.Chain)-1 && bytes.Equal(cert.RawIssuer, cert.RawSubject) {
				role = "root CA"
			}
			// With RA mode ca the issuing CA is the RA: GetCACert holds
			// no certificate with keyEncipherment to point to.
			advice := "encrypt to the RA certificate of GetCACert (the one with keyEncipherment, not CA:TRUE)"
			if h.svc.ActiveRA().IsCA {
				advice = "encrypt to the issuing CA certificate of GetCACert (the one that is not self-signed), which is this server's SCEP RA"
			}
			return fmt.Sprintf("the message is encrypted to this server's %s certificate %s (%s), which is no SCEP RA here: %s",
				role, pki.SerialText(cert.SerialNumber), csr.NameString(cert.RawSubject), advice), true
		}
	}
	return "", false
}

// keyTransportRecipient is the first key-transport recipient of env (the
// one a SCEP client encrypts to), or nil for none.
func keyTransportRecipient(env *cms.EnvelopedData) *cms.Recipient {
	for i := range env.Recipients {
		if r := &env.Recipients[i]; r.Kind == cms.RecipientKeyTransport && (r.IssuerAndSerial != nil || len(r.SubjectKeyID) > 0) {
			return r
		}
	}
	return nil
}

// lacked is the 503 for an envelope that no loaded RA (ra, the last one
// tried) opens and that is addressed to an RA this node lacks (RALacker);
// nil otherwise. When the list the node has does not name the recipient,
// it is read again (RALackRechecker) before the FAILURE a device takes as
// final: the RA may have been renewed on another node a moment ago.
func (h *Handler) lacked(ctx context.Context, env *cms.EnvelopedData, ra *pki.RA) error {
	l, ok := h.svc.(RALacker)
	if !ok || addressedTo(env, ra.Cert) != nil {
		return nil
	}
	cert := lackedRecipient(env, l.LackedRAs())
	if r, ok := l.(RALackRechecker); ok && cert == nil {
		cert = lackedRecipient(env, r.RecheckLackedRAs(ctx))
	}
	if cert == nil {
		return nil
	}
	return pki.Errorf(pki.EUnavailable, "this node lacks the key of the SCEP RA certificate %s that the request is encrypted to (renewed on another node): "+
		"try again later; the operator brings it here with 'scepter ca export-keys' on the node that renewed it and 'scepter ca import-keys' here "+
		"(with keys in a token, a copy of DATA/ca/ra.pkcs11, then ra.crt, and DATA/ca/retired-ra/)", pki.SerialText(cert.SerialNumber))
}

// lackedRecipient is the certificate of lacked that env is addressed to, or nil.
func lackedRecipient(env *cms.EnvelopedData, lacked []*x509.Certificate) *x509.Certificate {
	for _, cert := range lacked {
		if addressedTo(env, cert) != nil {
			return cert
		}
	}
	return nil
}

// addressedTo returns the envelope's recipient for cert, or nil.
func addressedTo(env *cms.EnvelopedData, cert *x509.Certificate) *cms.Recipient {
	for i := range env.Recipients {
		if r := &env.Recipients[i]; isRecipient(r, cert) {
			return r
		}
	}
	return nil
}

// isRecipient reports whether r names cert.
func isRecipient(r *cms.Recipient, cert *x509.Certificate) bool {
	if r.IssuerAndSerial != nil && bytes.Equal(r.IssuerAndSerial.RawIssuer, cert.RawIssuer) && r.IssuerAndSerial.Serial.Cmp(cert.SerialNumber) == 0 {
		return true
	}
	return r.SubjectKeyID != nil && bytes.Equal(r.SubjectKeyID, cert.SubjectKeyId)
}

// replyCipher answers with the request's cipher when it is AES or DES3; a
// single-DES request (only let in by the legacy switch) gets DES3, never DES.
func (h *Handler) replyCipher(c cms.ContentCipher, req *request) (cms.ContentCipher, error) {
	switch c {
	case cms.DESCBC:
		if !h.opts.AllowInsecureDES {
			return 0, pki.Errorf(pki.EBadAlg, "single DES envelopes are refused (RFC 8894 section 2.9); use AES or DES3, or start the server with --allow-insecure-des")
		}
		h.log.Warn("scep: accepting an insecure single-DES envelope (--allow-insecure-des)", "remote", req.remote, "transaction_id", req.msg.TransactionID)
		return cms.DES3CBC, nil
	case cms.DES3CBC, cms.AES128CBC, cms.AES192CBC, cms.AES256CBC, cms.AES128GCM, cms.AES256GCM:
		return c, nil
	default:
		return 0, pki.Errorf(pki.EBadAlg, "unsupported envelope cipher")
	}
}

// canReceive checks before any work that a reply can be encrypted to the
// requester: RSA signers by key transport, EC signers by a password
// recipient keyed from the challenge, which the request must then carry.
func canReceive(req *request) error {
	switch pub := req.msg.SignerCert.PublicKey.(type) {
	case *rsa.PublicKey:
		return canWrapKey(pub, req)
	case *ecdsa.PublicKey:
		if req.challenge != "" {
			return nil
		}
		if t := req.msg.MessageType; t != scep.PKCSReq && t != scep.RenewalReq {
			// No CSR, so no challengePassword to key the envelope from.
			return pki.Errorf(pki.EBadAlg, "an EC requester receives replies in a password-based envelope keyed from the challenge of its certificate request, and a %s carries none: sign it with a certificate whose key is RSA", t)
		}
		return pki.Errorf(pki.EBadAlg, "an EC requester receives its certificate in a password-based envelope keyed from the challenge, and this request has none; a renewal may carry any challengePassword, which then only keys the envelope")
	}
	return pki.Errorf(pki.EBadAlg, "the signer certificate's key can receive no encrypted reply")
}

// canWrapKey checks, before anything is issued, that the reply's content
// key fits the requester's RSA key under the key transport it asked for: a
// certificate must never be recorded for a request that then gets no
// CertRep (a 1024-bit key cannot take an AES-256 key under OAEP-SHA-512).
func canWrapKey(pub *rsa.PublicKey, req *request) error {
	if pub.N.BitLen() < 1024 {
		return pki.Errorf(pki.EBadAlg, "the signer certificate's RSA key (%d bits) is too small to receive the reply", pub.N.BitLen())
	}
	cipher := req.cipher
	if cipher == 0 {
		cipher = cms.AES256CBC
	}
	kt := req.keyTransport
	if kt == 0 {
		kt = cms.RSAPKCS1v15
	}
	keyLen := cipher.KeySize()
	k := (pub.N.BitLen() + 7) / 8
	need := keyLen + 11 // PKCS #1 v1.5
	if kt == cms.RSAOAEP {
		h := req.oaepHash
		if h == 0 {
			h = crypto.SHA1
		}
		need = keyLen + 2*h.Size() + 2
	}
	if k < need {
		return pki.Errorf(pki.EBadAlg, "the signer certificate's %d-bit RSA key cannot receive a %s content key under %s; use a larger key or another key transport",
			pub.N.BitLen(), cipher, kt)
	}
	return nil
}

// success answers with certs in a certs-only SignedData, enveloped to the
// requester.
func (h *Handler) success(req *request, certs []*x509.Certificate) ([]byte, error) {
	inner, err := cms.DegenerateCertificates(certs)
	if err != nil {
		return nil, fmt.Errorf("scep: certs-only: %w", err)
	}
	return h.successWith(req, inner)
}

// successWith answers with inner (a certs-only SignedData), enveloped to
// the requester.
func (h *Handler) successWith(req *request, inner []byte) ([]byte, error) {
	var err error
	cipher := req.cipher
	if cipher == 0 {
		cipher = cms.AES256CBC
	}
	var envelope []byte
	if _, isEC := req.msg.SignerCert.PublicKey.(*ecdsa.PublicKey); isEC {
		var key *cms.PasswordKey
		key, err = h.passwordKeys.get(req.challenge, cipher)
		if err == nil {
			envelope, err = cms.EncryptPasswordKey(inner, key, cms.EncryptOptions{Cipher: cipher})
		}
	} else {
		kt := req.keyTransport
		if kt == 0 {
			kt = cms.RSAPKCS1v15
		}
		envelope, err = cms.Encrypt(inner, []*x509.Certificate{req.msg.SignerCert}, cms.EncryptOptions{Cipher: cipher, KeyTransport: kt, OAEPHash: req.oaepHash, OAEPMGFHash: req.oaepMGFHash})
	}
	if err != nil {
		return nil, fmt.Errorf("scep: encrypt reply: %w", err)
	}
	return h.certRep(req, scep.Reply{Status: scep.StatusSuccess, Envelope: envelope})
}

func (h *Handler) certRep(req *request, r scep.Reply) ([]byte, error) {
	r.TransactionID = req.msg.TransactionID
	r.RecipientNonce = req.msg.SenderNonce
	r.Digest = req.digest
	r.SigningTime = req.now
	return scep.BuildCertRep(r, scep.Identity{Cert: req.ra.Cert, Key: req.ra.Key})
}

func replyDigestOK(d crypto.Hash) bool {
	switch d {
	case crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512:
		return true
	}
	return false
}

func writeBody(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

func httpError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	io.WriteString(w, msg+"\n")
}
