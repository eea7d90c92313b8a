package scep

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// Enroller is the part of the enrollment service the handler needs.
type Enroller interface {
	Enroll(ctx context.Context, req enroll.Request) (*enroll.Result, error)
}

// NonceStore remembers (transactionID, senderNonce) pairs to refuse replays
// across restarts and nodes.
type NonceStore interface {
	RememberNonce(ctx context.Context, transactionID string, senderNonce []byte, now, expires time.Time) error
}

// RA is the registration authority identity: it decrypts request envelopes
// and signs CertReps.
type RA struct {
	Cert      *x509.Certificate
	Key       crypto.Signer // must also be a crypto.Decrypter
	Chain     []*x509.Certificate
	Decrypter crypto.Decrypter
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
	// NonceLifetime is how long senderNonces are remembered for replay checks.
	NonceLifetime time.Duration
}

// Defaults for Options fields left zero.
const (
	DefaultMaxBodyBytes  = 256 << 10
	DefaultMaxClockSkew  = 24 * time.Hour
	DefaultNonceLifetime = 7 * 24 * time.Hour
	// maxQueryBytes bounds a GET query; certmonger sends ~6 KB for RSA-4096.
	maxQueryBytes = 64 << 10
)

// Handler serves SCEP.
type Handler struct {
	svc    Enroller
	ra     RA
	nonces NonceStore
	clock  pki.Clock
	log    *slog.Logger
	opts   Options

	// Built once at start: nothing about the CA changes per request.
	ops            map[MessageType]operationFunc
	caps           []byte
	caCertBody     []byte
	caCertType     string
	transportCerts []*x509.Certificate
}

// Paths are where SCEP is served: /scep, the path legacy devices hard-code,
// and the forms clients build by appending to a configured URL.
var Paths = []string{"/scep", "/scep/{$}", "/scep/pkiclient.exe", "/cgi-bin/pkiclient.exe"}

// Capabilities lists what we advertise in GetCACaps: exactly what works.
// SHA-384 matters: strongSwan 5.9.8 uses AES only when it sees it.
var Capabilities = []string{"AES", "DES3", "POSTPKIOperation", "SHA-1", "SHA-256", "SHA-384", "SHA-512", "SCEPStandard"}

// New builds the handler. caChain is the issuing CA up to the root.
func New(svc Enroller, ra RA, caChain []*x509.Certificate, nonces NonceStore, clock pki.Clock, log *slog.Logger, opts Options) (*Handler, error) {
	if _, ok := ra.Key.Public().(*rsa.PublicKey); !ok {
		return nil, errors.New("scep: the RA key must be RSA")
	}
	dec, ok := ra.Key.(crypto.Decrypter)
	if !ok {
		return nil, errors.New("scep: the RA key cannot decrypt")
	}
	ra.Decrypter = dec
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxClockSkew <= 0 {
		opts.MaxClockSkew = DefaultMaxClockSkew
	}
	if opts.NonceLifetime <= 0 {
		opts.NonceLifetime = DefaultNonceLifetime
	}
	h := &Handler{svc: svc, ra: ra, nonces: nonces, clock: clock, log: log, opts: opts}
	h.ops = map[MessageType]operationFunc{
		PKCSReq: h.pkcsReq,
	}
	h.caps = []byte(strings.Join(Capabilities, "\n") + "\n")
	// GetCACert: the RA first (when separate), then the CA chain. With one
	// certificate only, RFC 8894 §4.2.1.1 wants plain DER.
	certs := []*x509.Certificate{}
	if !ra.Cert.Equal(caChain[0]) {
		certs = append(certs, ra.Cert)
	}
	certs = append(certs, caChain...)
	if len(certs) == 1 {
		h.caCertBody, h.caCertType = certs[0].Raw, "application/x-x509-ca-cert"
	} else {
		body, err := cms.DegenerateCertificates(certs)
		if err != nil {
			return nil, fmt.Errorf("scep: GetCACert body: %w", err)
		}
		h.caCertBody, h.caCertType = body, "application/x-x509-ca-ra-cert"
	}
	h.transportCerts = certs
	return h, nil
}

// ServeHTTP dispatches on the operation query parameter (RFC 8894 §4.1).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.RawQuery) > maxQueryBytes {
		httpError(w, http.StatusRequestURITooLong, "query string too long")
		return
	}
	op := operation(r.URL.RawQuery)
	switch {
	case r.Method != http.MethodGet && r.Method != http.MethodPost && r.Method != http.MethodHead:
		w.Header().Set("Allow", "GET, POST")
		httpError(w, http.StatusMethodNotAllowed, "method not allowed")
	case op == "GetCACaps":
		w.Header().Set("Content-Type", "text/plain")
		writeBody(w, h.caps)
	case op == "GetCACert":
		w.Header().Set("Content-Type", h.caCertType)
		writeBody(w, h.caCertBody)
	case op == "PKIOperation":
		h.pkiOperation(w, r)
	case op == "":
		httpError(w, http.StatusBadRequest, "missing operation parameter")
	default:
		httpError(w, http.StatusBadRequest, "unsupported operation")
	}
}

func (h *Handler) pkiOperation(w http.ResponseWriter, r *http.Request) {
	der, status, err := h.readMessage(w, r)
	if err != nil {
		h.log.Info("scep: unreadable PKIOperation", "remote", r.RemoteAddr, "err", err)
		httpError(w, status, err.Error())
		return
	}
	msg, err := Parse(der)
	if err != nil {
		h.log.Info("scep: malformed pkiMessage", "remote", r.RemoteAddr, "err", err)
		httpError(w, http.StatusBadRequest, "malformed pkiMessage")
		return
	}
	reply, err := h.handle(r.Context(), msg, r.RemoteAddr)
	if err != nil {
		h.log.Error("scep: cannot answer", "remote", r.RemoteAddr, "transaction_id", msg.TransactionID, "err", err)
		httpError(w, http.StatusInternalServerError, "internal error")
		return
	}
	w.Header().Set("Content-Type", "application/x-pki-message")
	writeBody(w, reply)
}

// readMessage returns the DER pkiMessage from a POST body or GET query.
func (h *Handler) readMessage(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	var raw []byte
	if r.Method == http.MethodPost {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body larger than %d bytes", h.opts.MaxBodyBytes)
		}
		if err != nil {
			return nil, http.StatusBadRequest, errors.New("could not read body")
		}
		if len(body) > 0 && body[0] == 0x30 {
			return body, 0, nil
		}
		raw = body // some clients POST base64; accept it
	} else {
		der, err := DecodeQueryMessage(r.URL.RawQuery)
		if err != nil {
			return nil, http.StatusBadRequest, err
		}
		return der, 0, nil
	}
	der, err := decodeBase64(string(raw))
	if err != nil || len(der) == 0 {
		return nil, http.StatusBadRequest, errors.New("message is not valid base64")
	}
	return der, 0, nil
}

// handle turns a parsed pkiMessage into a signed CertRep. It returns an
// error only when no CertRep can be built at all.
func (h *Handler) handle(ctx context.Context, msg *PKIMessage, remote string) ([]byte, error) {
	digest := msg.Digest
	if !replyDigestOK(digest) {
		digest = crypto.SHA256
	}
	fail := func(err error) ([]byte, error) {
		code := pki.ErrorCode(err)
		if code == pki.EInternal {
			return nil, err
		}
		fi := FailInfoFor(code)
		h.log.Info("scep: FAILURE", "remote", remote, "transaction_id", msg.TransactionID,
			"message_type", msg.MessageType.String(), "fail_info", fi.String(), "reason", pki.ErrorMessage(err), "err", err)
		return h.certRep(Reply{
			TransactionID: msg.TransactionID, RecipientNonce: msg.SenderNonce, Status: StatusFailure,
			FailInfo: fi, FailInfoText: pki.ErrorMessage(err), Digest: digest,
		})
	}
	// One allow-list of message types, checked before anything else, so no
	// type can reach issuance without passing the same checks.
	op, ok := h.ops[msg.MessageType]
	if !ok {
		return fail(pki.Errorf(pki.EBadRequest, "unsupported messageType %s", msg.MessageType))
	}
	// The outer signature is verified before any decryption.
	if err := msg.Verify(); err != nil {
		return fail(err)
	}
	now := h.clock.Now()
	if !msg.SigningTime.IsZero() && (msg.SigningTime.Sub(now) > h.opts.MaxClockSkew || now.Sub(msg.SigningTime) > h.opts.MaxClockSkew) {
		return fail(pki.Errorf(pki.EBadTime, "signingTime %s is too far from the server time", msg.SigningTime.UTC().Format(time.RFC3339)))
	}
	if err := h.nonces.RememberNonce(ctx, msg.TransactionID, msg.SenderNonce, now, now.Add(h.opts.NonceLifetime)); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return fail(pki.Errorf(pki.EBadRequest, "replayed message: transactionID and senderNonce were seen before"))
		}
		return nil, fmt.Errorf("scep: remember nonce: %w", err)
	}
	reply, err := op(ctx, msg, remote, digest)
	if err != nil {
		return fail(err)
	}
	return reply, nil
}

// operationFunc answers one allowed message type; h.ops is the allow-list.
type operationFunc func(ctx context.Context, msg *PKIMessage, remote string, digest crypto.Hash) ([]byte, error)

// errUndecryptable is the one answer for every failure after signature
// verification while opening the envelope: no oracle for RSA or CBC padding.
var errUndecryptable = pki.Errorf(pki.EBadMessageCheck, "could not decrypt the message envelope")

func (h *Handler) pkcsReq(ctx context.Context, msg *PKIMessage, remote string, digest crypto.Hash) ([]byte, error) {
	if _, ok := msg.SignerCert.PublicKey.(*rsa.PublicKey); !ok {
		return nil, pki.Errorf(pki.EBadAlg, "the signer certificate's key is not RSA, so no reply can be encrypted to it")
	}
	env, err := cms.ParseEnvelopedData(msg.SignedData.Content)
	if err != nil {
		if errors.Is(err, cms.ErrUnsupportedAlgorithm) {
			return nil, pki.Wrap(pki.EBadAlg, err, "unsupported envelope algorithm")
		}
		return nil, pki.Wrap(pki.EBadMessageCheck, err, "malformed message envelope")
	}
	replyCipher, err := h.replyCipher(env.Cipher, msg, remote)
	if err != nil {
		return nil, err
	}
	plain, err := env.DecryptKeyTransport(h.ra.Cert, h.ra.Decrypter)
	if err != nil {
		return nil, pki.Wrap(pki.EBadMessageCheck, err, errUndecryptable.Message)
	}
	req, err := x509.ParseCertificateRequest(plain)
	if err != nil {
		return nil, pki.Wrap(pki.EBadMessageCheck, err, errUndecryptable.Message)
	}
	challenge, err := csr.ChallengePassword(req)
	if err != nil {
		return nil, pki.Wrap(pki.EBadRequest, err, "malformed challengePassword attribute")
	}
	res, err := h.svc.Enroll(ctx, enroll.Request{
		CSR:           req,
		Evidence:      enroll.Evidence{Challenge: challenge, SignerCert: msg.SignerCert},
		Protocol:      pki.ProtocolSCEP,
		TransactionID: msg.TransactionID,
		RemoteAddr:    remote,
	})
	if err != nil {
		return nil, err
	}
	inner, err := cms.DegenerateCertificates([]*x509.Certificate{res.Certificate})
	if err != nil {
		return nil, fmt.Errorf("scep: certs-only: %w", err)
	}
	envelope, err := cms.Encrypt(inner, []*x509.Certificate{msg.SignerCert}, cms.EncryptOptions{Cipher: replyCipher, KeyTransport: cms.RSAPKCS1v15})
	if err != nil {
		return nil, fmt.Errorf("scep: encrypt reply: %w", err)
	}
	return h.certRep(Reply{
		TransactionID: msg.TransactionID, RecipientNonce: msg.SenderNonce, Status: StatusSuccess,
		Digest: digest, Envelope: envelope,
	})
}

// replyCipher answers with the request's cipher when it is AES or DES3; a
// single-DES request (only let in by the legacy switch) gets DES3, never DES.
func (h *Handler) replyCipher(c cms.ContentCipher, msg *PKIMessage, remote string) (cms.ContentCipher, error) {
	switch c {
	case cms.DESCBC:
		if !h.opts.AllowInsecureDES {
			return 0, pki.Errorf(pki.EBadAlg, "single DES envelopes are refused (RFC 8894 section 2.9); use AES or DES3, or start the server with --allow-insecure-des")
		}
		h.log.Warn("scep: accepting an insecure single-DES envelope (--allow-insecure-des)", "remote", remote, "transaction_id", msg.TransactionID)
		return cms.DES3CBC, nil
	case cms.DES3CBC, cms.AES128CBC, cms.AES192CBC, cms.AES256CBC, cms.AES128GCM, cms.AES256GCM:
		return c, nil
	default:
		return 0, pki.Errorf(pki.EBadAlg, "unsupported envelope cipher")
	}
}

func (h *Handler) certRep(r Reply) ([]byte, error) {
	r.SigningTime = h.clock.Now()
	return BuildCertRep(r, Identity{Cert: h.ra.Cert, Key: h.ra.Key})
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

// operation reads the operation parameter without url.ParseQuery's
// strictness, so an unescaped message parameter cannot hide it.
func operation(rawQuery string) string {
	v, _ := queryValue(rawQuery, "operation")
	return v
}

// queryValue finds key in a raw query. Devices send the base64 message
// URL-escaped, unescaped (raw '+' and '/'), or with spaces for '+'; all are
// accepted. A literal '+' is kept as '+', never turned into a space.
func queryValue(rawQuery, key string) (string, bool) {
	for _, part := range strings.Split(rawQuery, "&") {
		k, v, _ := strings.Cut(part, "=")
		if k != key {
			continue
		}
		un, err := url.PathUnescape(v)
		if err != nil {
			return "", false
		}
		return un, true
	}
	return "", false
}

// DecodeQueryMessage returns the DER pkiMessage of a GET PKIOperation query.
func DecodeQueryMessage(rawQuery string) ([]byte, error) {
	v, ok := queryValue(rawQuery, "message")
	if !ok {
		return nil, errors.New("missing message parameter")
	}
	der, err := decodeBase64(v)
	if err != nil || len(der) == 0 {
		return nil, errors.New("message is not valid base64")
	}
	return der, nil
}

// decodeBase64 accepts standard or URL alphabet, with or without padding,
// with whitespace or spaces standing in for '+'.
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ':
			return '+'
		case '\r', '\n', '\t':
			return -1
		}
		return r
	}, s)
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}
