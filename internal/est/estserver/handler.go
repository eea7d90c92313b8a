// Package estserver is the EST (RFC 7030, RFC 8951) HTTP handler. Like the
// SCEP handler it only translates: it decodes the base64 bodies, turns the
// TLS client certificate, HTTP Basic credentials and TLS channel binding
// into protocol-neutral evidence for the enrollment service, and maps the
// service's one error type onto HTTP statuses. It reaches the store and the
// CA only through the service.
package estserver

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/pki"
)

// Service is the part of the enrollment service the handler needs
// (*enroll.Service implements it).
type Service interface {
	Enroll(ctx context.Context, req enroll.Request) (*enroll.Result, error)
	Profile(name string) (pki.Profile, bool)
	// CACerts is what a client of the profile should trust: the issuing
	// chain, and the next issuing CA during a rollover.
	CACerts(profile string) ([]*x509.Certificate, error)
	// CheckCredentials checks what of the credentials needs no request,
	// before the body is read; what it read goes to Enroll with the
	// request (Request.Checked), which so reads it once.
	CheckCredentials(ctx context.Context, req enroll.Request) (*enroll.CheckedCredentials, error)
	// RejectHeldRenewals rejects the requests held pending for req's key
	// that renew cert, a certificate of ours revoked for good, after a
	// re-enrollment over TLS with it was refused (enroll.RevokedForGood).
	RejectHeldRenewals(ctx context.Context, profile string, req *x509.CertificateRequest, cert *x509.Certificate) error
	RecordRefusal(ctx context.Context, r enroll.Refusal) error
	// ActiveRA signs the SignedData around an encrypted server-generated
	// key: the RA is the server's identity in CMS.
	ActiveRA() *pki.RA
	// RevokeUndelivered revokes a certificate issued by serverkeygen
	// whose key could not be sent.
	RevokeUndelivered(ctx context.Context, rec pki.Certificate, why string) error
}

// Options tune the handler.
type Options struct {
	// RetryAfter is what a 202 (request held for approval) tells the
	// client to wait; zero means DefaultRetryAfter.
	RetryAfter time.Duration
	// Realm is the HTTP Basic realm; empty means "scepter EST".
	Realm string
}

// DefaultRetryAfter is the wait a 202 asks for by default.
const DefaultRetryAfter = 60 * time.Second

// Handler serves EST.
type Handler struct {
	svc  Service
	log  *slog.Logger
	opts Options
}

// New builds the handler.
func New(svc Service, log *slog.Logger, opts Options) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = DefaultRetryAfter
	}
	if opts.Realm == "" {
		opts.Realm = "scepter EST"
	}
	return &Handler{svc: svc, log: log, opts: opts}
}

// call is one EST request being answered.
type call struct {
	w       http.ResponseWriter
	r       *http.Request
	op      string
	profile string // the label; "" for the default profile
	// noProfile: a path under the prefix that names no label and
	// operation, refused as such and recorded with no profile.
	noProfile bool
}

// ServeHTTP dispatches on the operation (RFC 7030 §3.2.2).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if uncleanReason(r.URL.EscapedPath()) != "" {
		// A segment the mux took as one holds an escaped "/"
		// ("a%2Fb/simpleenroll"): the path is refused as such, not its
		// decoded label or operation.
		h.unknownPath(w, r)
		return
	}
	c := &call{w: w, r: r, op: r.PathValue("op"), profile: r.PathValue("label")}
	if c.profile != "" {
		if _, ok := h.svc.Profile(c.profile); !ok {
			h.fail(c, pki.Errorf(pki.ENotFound, "unknown EST label %q", pki.Clip(c.profile, 64)))
			return
		}
	}
	if r.TLS == nil {
		h.fail(c, pki.Errorf(pki.EBadRequest, "EST is served over HTTPS only (RFC 7030 section 3.3)"))
		return
	}
	switch c.op {
	case est.OpCACerts:
		if h.method(c, http.MethodGet) {
			h.caCerts(c)
		}
	case est.OpCSRAttrs:
		if h.method(c, http.MethodGet) {
			h.csrAttrs(c)
		}
	case est.OpSimpleEnroll, est.OpSimpleReenroll, est.OpServerKeyGen:
		if h.method(c, http.MethodPost) {
			h.enroll(c)
		}
	case est.OpFullCMC:
		h.fail(c, &statusError{http.StatusNotImplemented, "fullcmc is not supported"})
	default:
		h.fail(c, pki.Errorf(pki.ENotFound, "unknown EST operation %q", pki.Clip(c.op, 64)))
	}
}

// method answers 405 unless the request uses want (or HEAD for GET, which
// is served too and so is listed in Allow).
func (h *Handler) method(c *call, want string) bool {
	if c.r.Method == want || (want == http.MethodGet && c.r.Method == http.MethodHead) {
		return true
	}
	allow := want
	if want == http.MethodGet {
		allow += ", " + http.MethodHead
	}
	c.w.Header().Set("Allow", allow)
	h.fail(c, &statusError{http.StatusMethodNotAllowed, "method not allowed; use " + want})
	return false
}

// caCerts answers /cacerts: the certs-only chain, without client
// authentication, always with a Content-Length (strongSwan reads no
// chunked body).
func (h *Handler) caCerts(c *call) {
	certs, err := h.svc.CACerts(c.profile)
	if err != nil {
		h.fail(c, err)
		return
	}
	der, err := cms.DegenerateCertificates(certs)
	if err != nil {
		h.fail(c, fmt.Errorf("estserver: cacerts: %w", err))
		return
	}
	writeBase64(c.w, http.StatusOK, "application/pkcs7-mime", der)
}

// csrAttrs answers /csrattrs with what the profile wants of a CSR.
func (h *Handler) csrAttrs(c *call) {
	p, _ := h.svc.Profile(c.profile)
	attrs := csrAttrsFor(p)
	if len(attrs) == 0 {
		c.w.WriteHeader(http.StatusNoContent)
		return
	}
	der, err := est.MarshalCSRAttrs(attrs)
	if err != nil {
		h.fail(c, fmt.Errorf("estserver: csrattrs: %w", err))
		return
	}
	writeBase64(c.w, http.StatusOK, est.ContentTypeCSRAttrs, der)
}

var (
	oidRSAEncryption = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidECPublicKey   = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidSHA256WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidECDSASHA256   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSASHA384   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	curveOIDs        = map[string]asn1.ObjectIdentifier{
		"p256": {1, 2, 840, 10045, 3, 1, 7},
		"p384": {1, 3, 132, 0, 34},
	}
)

// csrAttrsFor lists a profile's wishes (RFC 7030 §4.5.2): the TLS channel
// binding in challengePassword when the profile demands it, the key types
// (EC as an attribute naming its curves) and the signature algorithms.
func csrAttrsFor(p pki.Profile) []est.CSRAttr {
	var attrs []est.CSRAttr
	if p.RequireChannelBinding {
		attrs = append(attrs, est.CSRAttr{OID: est.OIDChallengePassword})
	}
	if len(p.Keys.ECCurves) > 0 {
		a := est.CSRAttr{OID: oidECPublicKey, Attribute: true}
		for _, c := range p.Keys.ECCurves {
			if oid, ok := curveOIDs[strings.ToLower(strings.ReplaceAll(c, "-", ""))]; ok {
				v, _ := asn1.Marshal(oid)
				a.Values = append(a.Values, v)
			}
		}
		if len(a.Values) > 0 {
			attrs = append(attrs, a, est.CSRAttr{OID: oidECDSASHA256})
			for _, c := range p.Keys.ECCurves {
				if strings.Contains(c, "384") {
					attrs = append(attrs, est.CSRAttr{OID: oidECDSASHA384})
					break
				}
			}
		}
	}
	if p.Keys.RSAMinBits > 0 {
		rsa := est.CSRAttr{OID: oidRSAEncryption}
		if bits := rsaSizeFor(p.Keys); bits > defaultRSABits {
			// A bare rsaEncryption leaves the size to the client, which
			// makes the usual 2048 bits: say the size (RFC 8951 §4,
			// rsaEncryption with an INTEGER) where that would be refused.
			v, _ := asn1.Marshal(bits)
			rsa.Attribute, rsa.Values = true, [][]byte{v}
		}
		attrs = append(attrs, rsa, est.CSRAttr{OID: oidSHA256WithRSA})
	}
	return attrs
}

// defaultRSABits is the RSA size clients make unless told otherwise.
const defaultRSABits = 2048

// rsaSizeFor is the RSA size to ask for: the smallest common size (which
// clients can make) the profile accepts, else its minimum.
func rsaSizeFor(k pki.KeyPolicy) int {
	for _, bits := range []int{2048, 3072, 4096} {
		if bits >= k.RSAMinBits && (k.RSAMaxBits == 0 || bits <= k.RSAMaxBits) {
			return bits
		}
	}
	return k.RSAMinBits
}

// rejectHeldRenewals has the requests held pending for the key of the
// request c sends that renew cert, its TLS client certificate, rejected:
// cert is revoked for good, and the re-enrollment was refused before its
// body was read, so no approval can issue such a request any more. The
// body is read for its key alone (the request is not otherwise looked
// at), and the client is answered the refusal all the same, whatever it
// holds.
func (h *Handler) rejectHeldRenewals(c *call, cert *x509.Certificate) {
	req, _, err := readCSR(c.w, c.r, pki.KeyPolicy{})
	if err != nil {
		return
	}
	if err := h.svc.RejectHeldRenewals(c.r.Context(), c.profile, req, cert); err != nil {
		h.log.Error("estserver: a held renewal of the revoked client certificate could not be rejected; the next request or approval rejects it",
			"remote", c.r.RemoteAddr, "err", err)
	}
}

// enroll answers simpleenroll, simplereenroll and serverkeygen.
func (h *Handler) enroll(c *call) {
	// Credentials first: a client without any, or with wrong ones, is told
	// so (401 with the challenge) whatever its body, as a client that
	// probes with an empty body before it authenticates expects; nothing
	// it sent is parsed, and an unauthenticated caller learns nothing of
	// how a body is parsed. The service decides again with the CSR, on what it read here.
	ev, err := h.credentials(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	checked, err := h.svc.CheckCredentials(c.r.Context(), enroll.Request{Evidence: ev, Profile: c.profile, Protocol: pki.ProtocolEST,
		RemoteAddr: c.r.RemoteAddr, Renewal: c.op == est.OpSimpleReenroll, ServerKeyGen: c.op == est.OpServerKeyGen})
	if err != nil {
		if enroll.RevokedForGood(err) && ev.TLSClientCert != nil {
			h.rejectHeldRenewals(c, ev.TLSClientCert)
		}
		h.fail(c, err)
		return
	}
	p, _ := h.svc.Profile(c.profile)
	req, status, err := readCSR(c.w, c.r, p.Keys)
	if err != nil {
		if status != 0 {
			err = &statusError{status, err.Error()}
		}
		h.fail(c, err)
		return
	}
	if err := h.channelBinding(c, req, &ev); err != nil {
		h.fail(c, err)
		return
	}
	er := enroll.Request{
		CSR: req, Evidence: ev, Profile: c.profile, Protocol: pki.ProtocolEST,
		RemoteAddr:   c.r.RemoteAddr,
		Renewal:      c.op == est.OpSimpleReenroll,
		ServerKeyGen: c.op == est.OpServerKeyGen,
		Checked:      checked,
	}
	er.TransactionID = transactionID(c.op, req, ev.TLSClientCert)
	var encryptTo *rsa.PublicKey
	var keyID []byte
	var ra *pki.RA
	if er.ServerKeyGen {
		// Where the key goes is settled before anything is issued: a
		// certificate must never be recorded whose key cannot be delivered.
		if encryptTo, keyID, err = keyEncryptionTarget(req, peerCertificate(c.r)); err != nil {
			h.fail(c, err)
			return
		}
		if encryptTo != nil {
			// So is whether the RA can sign the key package: a token
			// that is away or lost the key fails here, with nothing
			// issued, rather than after issuance.
			ra = h.svc.ActiveRA()
			if err := raCanSign(ra); err != nil {
				h.fail(c, fmt.Errorf("estserver: serverkeygen: the RA cannot sign the key package: %w", err))
				return
			}
		}
	}
	res, err := h.svc.Enroll(c.r.Context(), er)
	if err != nil {
		h.fail(c, err)
		return
	}
	if res.Pending != nil {
		wait := int((h.opts.RetryAfter + time.Second - 1) / time.Second) // whole seconds, rounded up
		c.w.Header().Set("Retry-After", strconv.Itoa(wait))
		c.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		c.w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(c.w, "request %s is held for approval; send the same request again after %d seconds\n", res.Pending.ID, wait)
		return
	}
	certsOnly, err := cms.DegenerateCertificates([]*x509.Certificate{res.Certificate})
	if err != nil {
		h.fail(c, fmt.Errorf("estserver: certs-only: %w", err))
		return
	}
	if !er.ServerKeyGen {
		writeBase64(c.w, http.StatusOK, est.ContentTypeCertsOnly, certsOnly)
		return
	}
	reply := est.ServerKeyGenReply{CertsOnly: certsOnly}
	if reply.Key, err = x509.MarshalPKCS8PrivateKey(res.PrivateKey); err == nil && encryptTo != nil {
		reply.Encrypted = true
		reply.Key, err = encryptKey(reply.Key, ra, encryptTo, keyID)
	}
	var body []byte
	var ct string
	if err == nil {
		body, ct, err = est.MarshalServerKeyGenReply(reply)
	}
	if err != nil {
		h.revokeUndelivered(c, res.Record, err)
		h.fail(c, fmt.Errorf("estserver: serverkeygen reply: %w", err))
		return
	}
	c.w.Header().Set("Content-Type", ct)
	c.w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	// The reply holds a private key: no cache on the way may keep it.
	c.w.Header().Set("Cache-Control", "no-store")
	c.w.WriteHeader(http.StatusOK)
	c.w.Write(body)
}

// readCSR reads and decodes the base64 PKCS#10 body (RFC 8951: any line
// breaks, Content-Transfer-Encoding ignored). A well-formed request with
// an EC key crypto/x509 does not read (brainpoolP256r1, explicit
// parameters) is refused as keys does any key it does not take: a
// *pki.Error (403), status 0.
func readCSR(w http.ResponseWriter, r *http.Request, keys pki.KeyPolicy) (*x509.CertificateRequest, int, error) {
	if r.ContentLength > est.MaxBodyBytes {
		// Refused as announced, unread: reading would send a client that
		// sent "Expect: 100-continue" its "100 Continue", and it would be
		// sending the body while the 413 closed the connection, which it
		// would see reset. A chunked body is bounded as it is read.
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("the body is larger than %d bytes", est.MaxBodyBytes)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, est.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("the body is larger than %d bytes", est.MaxBodyBytes)
	}
	if err != nil {
		return nil, http.StatusBadRequest, errors.New("the body could not be read")
	}
	der, err := est.DecodeBase64(body)
	switch trimmed := bytes.TrimSpace(body); {
	case len(trimmed) == 0:
		return nil, http.StatusBadRequest, errors.New("the body is empty; send the certificate request, base64 (RFC 8951)")
	case err != nil && bytes.HasPrefix(trimmed, []byte("-----BEGIN")):
		// openssl req writes PEM unless told -outform DER: say what to
		// change rather than only "not base64".
		return nil, http.StatusBadRequest, errors.New("the body is PEM; send the base64 of the DER request without the -----BEGIN/END----- lines (RFC 8951)")
	case err != nil && len(trimmed) > 1 && trimmed[0] == 0x30 && trimmed[1]&0x80 != 0:
		// A DER SEQUENCE with a long-form length (every CSR is over 127
		// bytes), as a client that sends the binary request writes
		// (RFC 7030 left it unclear before RFC 8951): say so.
		return nil, http.StatusBadRequest, errors.New("the body is binary, a DER request as it seems; send its base64 (RFC 8951)")
	case err != nil:
		return nil, http.StatusBadRequest, err
	}
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		if refusal := csr.UnreadableECKeyRefusal(der, keys.ECCurves); refusal != "" {
			return nil, 0, pki.Wrap(pki.EBadRequest, err, refusal)
		}
		// Say why: crypto/x509 refuses some well-formed requests (a URI
		// SAN it cannot parse, such as IntuneDeviceId://{guid}).
		return nil, http.StatusBadRequest, fmt.Errorf("the body is not a PKCS#10 certificate request this server can read: %s", parseReason(der, err))
	}
	// crypto/x509 reads one value of an extensionRequest attribute: a
	// second one's extensions would be dropped unsaid.
	if problem := csr.ExtensionRequestProblem(req); problem != "" {
		return nil, http.StatusBadRequest, errors.New("the body is not a PKCS#10 certificate request this server can read: " + problem)
	}
	// Nor does it read Microsoft's extension-request attribute.
	if problem := csr.MicrosoftExtensions(req); problem != "" {
		return nil, http.StatusBadRequest, errors.New("the body is not a PKCS#10 certificate request this server can read: " + problem)
	}
	return req, 0, nil
}

// credentials gathers what the request presents before its body is read:
// the TLS client certificate (its possession proven by the handshake) and
// HTTP Basic credentials. A request with no credential at all gets 401
// before the service is asked; one with two Authorization headers gets
// 400, since a proxy in front may have checked the other one than
// net/http reads.
func (h *Handler) credentials(c *call) (enroll.Evidence, error) {
	var ev enroll.Evidence
	if n := len(c.r.Header.Values("Authorization")); n > 1 {
		return ev, &statusError{http.StatusBadRequest, fmt.Sprintf("the request carries more than one Authorization header (%d); send one", n)}
	}
	user, pass, hasBasic := c.r.BasicAuth()
	if hasBasic {
		ev.HTTPUser, ev.HTTPPassword = user, pass
	}
	if peers := c.r.TLS.PeerCertificates; len(peers) > 0 && (c.op == est.OpSimpleReenroll || !hasBasic) {
		// The TLS client certificate is evidence only where it is what
		// authenticates: the certificate a re-enrollment renews, or a
		// manufacturer certificate without a password. Beside Basic
		// credentials at simpleenroll or serverkeygen the password
		// authenticates and the certificate (none, another CA's, one of
		// ours) changes nothing: kept as evidence, it would make the
		// same user's same CSR another transaction, and another held
		// request or certificate for one key.
		ev.TLSClientCert, ev.TLSChain = peers[0], peers[1:]
	}
	if c.op == est.OpSimpleReenroll && ev.TLSClientCert == nil {
		return ev, pki.Errorf(pki.EBadRequest, "simplereenroll requires the certificate being renewed as the TLS client certificate")
	}
	if ev.TLSClientCert == nil && !hasBasic {
		return ev, pki.Errorf(pki.EUnauthorized, "authentication required: HTTP Basic or a TLS client certificate")
	}
	return ev, nil
}

// channelBinding adds to ev the channel binding of the TLS session with the
// value the CSR claims. Where the profile does not require a binding, a
// challengePassword that cannot be one (openssl's "challenge password"
// prompt, a CSR reused from SCEP with its challenge) is no claim: it is
// ignored, not refused as a mismatch, and goes nowhere (no log, no audit
// event; a held CSR is stored without it).
func (h *Handler) channelBinding(c *call, req *x509.CertificateRequest, ev *enroll.Evidence) error {
	session, err := est.ChannelBinding(*c.r.TLS)
	if err != nil {
		return err
	}
	ev.Channel = &enroll.ChannelBinding{Session: session}
	claim, err := csr.ChallengePassword(req)
	if err != nil {
		// A malformed body is 400, not a policy refusal (403).
		var tooLong *csr.ChallengeTooLongError
		if errors.As(err, &tooLong) {
			return &statusError{http.StatusBadRequest, tooLong.Problem()}
		}
		return &statusError{http.StatusBadRequest, "malformed challengePassword attribute"}
	}
	if claim == "" {
		return nil
	}
	if p, _ := h.svc.Profile(c.profile); !p.RequireChannelBinding && !couldBeBinding(claim) {
		return nil
	}
	// RFC 7030 §3.5: the binding travels base64-encoded; anything else
	// simply fails to match.
	if b, err := base64.StdEncoding.DecodeString(claim); err == nil {
		ev.Channel.Claim = b
	} else {
		ev.Channel.Claim = []byte(claim)
	}
	return nil
}

// bindingSizes are the sizes a channel binding may have: tls-unique's
// 12-byte Finished of TLS 1.2, and 32, 48 or 64 bytes for tls-exporter
// (RFC 9266: 32) or a Finished-sized value of a client that binds
// otherwise (the hash sizes of SHA-256, SHA-384 and SHA-512).
var bindingSizes = map[int]bool{12: true, 32: true, 48: true, 64: true}

// couldBeBinding reports whether a challengePassword could be a channel
// binding: base64 (padded or not, so that a client's sloppy encoding is
// still checked, not ignored) of a value of a binding's size.
func couldBeBinding(claim string) bool {
	b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(claim, "="))
	return err == nil && bindingSizes[len(b)]
}

// peerCertificate is the TLS client certificate r came with, nil for none,
// whether or not it authenticates the request: its key may still receive
// a server-generated key (AsymmetricDecryptKeyIdentifier).
func peerCertificate(r *http.Request) *x509.Certificate {
	if peers := r.TLS.PeerCertificates; len(peers) > 0 {
		return peers[0]
	}
	return nil
}

// transactionID names an EST request for the approval queue and its
// resend: the same CSR (key and subject) for the same operation and the
// same authenticating client certificate (the one being renewed, or a
// manufacturer's; nil when Basic authenticates) is the same request,
// whatever its channel binding.
func transactionID(op string, req *x509.CertificateRequest, clientCert *x509.Certificate) string {
	h := sha256.New()
	h.Write([]byte(op))
	h.Write(req.RawSubjectPublicKeyInfo)
	h.Write(req.RawSubject)
	if clientCert != nil {
		h.Write(clientCert.Raw)
	}
	return "est-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// keyEncryptionTarget reads the serverkeygen CSR's key-protection
// attributes (RFC 7030 §4.4.1): none means the key travels in PKCS#8
// inside TLS; an AsymmetricDecryptKeyIdentifier must name a key the server
// knows (the CSR's own key, or the TLS client certificate's), which must be
// RSA (EC keys would need key agreement); a DecryptKeyIdentifier names a
// symmetric key this server never shares.
func keyEncryptionTarget(req *x509.CertificateRequest, clientCert *x509.Certificate) (*rsa.PublicKey, []byte, error) {
	if _, ok, err := csr.AttributeValues(req, est.OIDDecryptKeyIdentifier); err != nil || ok {
		return nil, nil, pki.Errorf(pki.EBadRequest, "DecryptKeyIdentifier names a symmetric key, and this server shares none; use AsymmetricDecryptKeyIdentifier")
	}
	values, ok, err := csr.AttributeValues(req, est.OIDAsymmetricDecryptKeyIdentifier)
	if err != nil {
		return nil, nil, &statusError{http.StatusBadRequest, "malformed AsymmetricDecryptKeyIdentifier attribute"}
	}
	if !ok {
		return nil, nil, nil
	}
	var id []byte
	if len(values) != 1 {
		return nil, nil, &statusError{http.StatusBadRequest, "AsymmetricDecryptKeyIdentifier must have one value"}
	}
	s := cryptobyte.String(values[0])
	if !s.ReadASN1Bytes(&id, cbasn1.OCTET_STRING) || !s.Empty() || len(id) == 0 {
		return nil, nil, &statusError{http.StatusBadRequest, "AsymmetricDecryptKeyIdentifier is not an OCTET STRING"}
	}
	candidates := []struct {
		pub  any
		spki []byte
		ski  []byte
	}{{req.PublicKey, req.RawSubjectPublicKeyInfo, nil}}
	if clientCert != nil {
		candidates = append(candidates, struct {
			pub  any
			spki []byte
			ski  []byte
		}{clientCert.PublicKey, clientCert.RawSubjectPublicKeyInfo, clientCert.SubjectKeyId})
	}
	for _, cand := range candidates {
		if !bytes.Equal(id, est.KeyIdentifier(cand.spki)) && (cand.ski == nil || !bytes.Equal(id, cand.ski)) {
			continue
		}
		pub, ok := cand.pub.(*rsa.PublicKey)
		if !ok {
			return nil, nil, pki.Errorf(pki.EBadAlg, "the key named by AsymmetricDecryptKeyIdentifier is not RSA; only RSA keys can receive an encrypted server-generated key")
		}
		return pub, id, nil
	}
	return nil, nil, pki.Errorf(pki.EBadRequest, "AsymmetricDecryptKeyIdentifier names no key this server knows: use the key identifier (RFC 5280 method 1) of the CSR's key or of the TLS client certificate")
}

// revokeUndelivered revokes rec, issued with a key the server made that
// the reply could not carry (cause): the key is lost, and a certificate
// nobody holds the key of must not stay valid. The revocation outlives a
// client that went away: it is what makes the retry safe.
func (h *Handler) revokeUndelivered(c *call, rec pki.Certificate, cause error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.r.Context()), undeliveredRevokeTimeout)
	defer cancel()
	if err := h.svc.RevokeUndelivered(ctx, rec, cause.Error()); err != nil {
		h.log.Error("estserver: serverkeygen: the reply could not be built and its certificate could not be revoked; revoke it by hand",
			"serial", pki.ShownSerial(rec.SerialHex), "issuer", rec.IssuerID, "cause", cause, "err", err)
		return
	}
	h.log.Warn("estserver: serverkeygen: the reply could not be built; its certificate is revoked (cessationOfOperation)",
		"serial", pki.ShownSerial(rec.SerialHex), "issuer", rec.IssuerID, "cause", cause)
}

// undeliveredRevokeTimeout bounds the revocation of a certificate whose
// key could not be sent.
const undeliveredRevokeTimeout = 10 * time.Second

// raCanSign proves, with a throwaway signature, that ra can sign the key
// package: its key is the same signer encryptKey uses, so a token that is
// away or has lost the key fails here.
func raCanSign(ra *pki.RA) error {
	if ra == nil {
		return errors.New("no RA")
	}
	_, err := cms.Sign([]byte("serverkeygen probe"), ra.Cert, ra.Key, nil, cms.SignOptions{ContentType: est.OIDKeyPackage})
	return err
}

// encryptKey wraps a PKCS#8 key the way RFC 7030 §4.4.2 asks: an
// AsymmetricKeyPackage, in a SignedData signed by the server (its RA ra),
// in an EnvelopedData to the client's key.
func encryptKey(pkcs8 []byte, ra *pki.RA, to *rsa.PublicKey, keyID []byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(pkcs8) }) // AsymmetricKeyPackage ::= SEQUENCE OF OneAsymmetricKey
	pkg, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	signed, err := cms.Sign(pkg, ra.Cert, ra.Key, nil, cms.SignOptions{ContentType: est.OIDKeyPackage, ExtraCertificates: ra.Chain})
	if err != nil {
		return nil, err
	}
	return cms.EncryptToKey(signed, to, keyID, cms.EncryptOptions{Cipher: cms.AES256CBC, KeyTransport: cms.RSAOAEP, ContentType: est.OIDSignedData})
}

// writeBase64 answers with a base64 body (no line breaks), its
// Content-Transfer-Encoding for older clients, and a Content-Length.
func writeBase64(w http.ResponseWriter, status int, contentType string, der []byte) {
	body := est.EncodeBase64(der)
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Transfer-Encoding", "base64")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// statusError is a refusal the handler decides with its own status.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

// statusFor maps the service's closed error codes onto HTTP statuses.
func statusFor(err error) (int, string) {
	var se *statusError
	if errors.As(err, &se) {
		return se.status, se.msg
	}
	if errors.Is(err, enroll.ErrServerKeyType) || errors.Is(err, enroll.ErrMalformedRequest) {
		// A serverkeygen request for a key type not made here, or a CSR
		// whose names are not valid DER, cannot be served as sent,
		// whoever sends it: the message says why.
		return http.StatusBadRequest, pki.ErrorMessage(err)
	}
	var locked *enroll.LockedOutError
	if errors.As(err, &locked) {
		// Not 401: the credentials may be right, and a client told they
		// are wrong prompts again instead of waiting.
		return http.StatusTooManyRequests, pki.ErrorMessage(err)
	}
	switch pki.ErrorCode(err) {
	case pki.EUnauthorized, pki.EBadCertID:
		return http.StatusUnauthorized, pki.ErrorMessage(err)
	case pki.EBadMessageCheck:
		return http.StatusBadRequest, pki.ErrorMessage(err)
	case pki.ENotFound:
		return http.StatusNotFound, pki.ErrorMessage(err)
	case pki.EConflict:
		return http.StatusConflict, pki.ErrorMessage(err)
	case pki.EInternal:
		return http.StatusInternalServerError, "internal error"
	case pki.EUnavailable:
		return http.StatusServiceUnavailable, pki.ErrorMessage(err)
	}
	// EBadRequest, EBadAlg, EBadTime: refused by policy.
	return http.StatusForbidden, pki.ErrorMessage(err)
}

// fail answers an error with its status and a plain-text reason, and
// records the refusal in the audit trail unless the service did already.
func (h *Handler) fail(c *call, err error) {
	if pki.ClientGone(c.r.Context(), err) {
		h.log.Info("estserver: the client went away before the answer", "op", c.op, "remote", c.r.RemoteAddr, "err", err)
		c.w.WriteHeader(pki.StatusClientGone) // for the metrics; nobody reads it
		return
	}
	status, msg := statusFor(err)
	// A gated refusal is a state that lasts: the service logs each at WARN.
	serverSide := status >= 500 && status != http.StatusNotImplemented && !enroll.Gated(err)
	switch {
	case serverSide && status == http.StatusServiceUnavailable:
		// A state that lasts too (a token away, a CA or RA this node
		// lacks, the store down), which /readyz fails on and logs once
		// at ERROR: each request is a WARN.
		h.log.Warn("estserver: unavailable", "op", c.op, "remote", c.r.RemoteAddr, "err", err)
	case serverSide:
		h.log.Error("estserver: cannot answer", "op", c.op, "remote", c.r.RemoteAddr, "err", err)
	case !enroll.Audited(err):
		code := pki.ErrorCode(err)
		if code == pki.EInternal {
			code = pki.EBadRequest
		}
		_ = h.svc.RecordRefusal(c.r.Context(), enroll.Refusal{Protocol: pki.ProtocolEST, Operation: c.op, RemoteAddr: c.r.RemoteAddr,
			Profile: c.profile, NoProfile: c.noProfile, Err: &pki.Error{Code: code, Message: msg}})
	}
	var locked *enroll.LockedOutError
	if errors.As(err, &locked) {
		c.w.Header().Set("Retry-After", strconv.Itoa(locked.RetryAfterSeconds()))
	}
	if status == http.StatusServiceUnavailable && c.w.Header().Get("Retry-After") == "" {
		c.w.Header().Set("Retry-After", strconv.Itoa(pki.RetryAfter(err)))
	}
	if status == http.StatusUnauthorized {
		c.w.Header().Set("WWW-Authenticate", `Basic realm="`+h.opts.Realm+`", charset="UTF-8"`)
	}
	c.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	c.w.Header().Set("X-Content-Type-Options", "nosniff")
	body := msg + "\n"
	c.w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	c.w.WriteHeader(status)
	io.WriteString(c.w, body)
}

// parseReasons say, in our words, why crypto/x509 could not read a
// request, by a piece of its error's text; the library's own words (and
// encoding/asn1's) are not shown to clients, who are told what to change.
var parseReasons = []struct{ match, reason string }{
	// crypto/x509 reads no compressed EC point, which RFC 5480 §2.2 lets
	// a CA refuse; the library's words suggest a broken key.
	{"invalid uncompressed public key", "its EC public key is a compressed point; send the uncompressed form (RFC 5480 §2.2)"},
	{"unsupported elliptic curve", "its EC public key is on a curve this server does not read (P-256 or P-384 are)"},
	// crypto/x509 refuses some well-formed requests: a URI SAN it cannot
	// parse, such as Intune's IntuneDeviceId://{guid}.
	{"cannot parse URI", "a URI in its subjectAltName cannot be parsed as a URI (RFC 3986)"},
	{"uniformResourceIdentifier", "a URI in its subjectAltName is malformed"},
	{"cannot parse IP", "an IP address in its subjectAltName is neither 4 nor 16 bytes"},
	{"dNSName", "a DNS name in its subjectAltName is malformed"},
	{"rfc822Name", "an email address in its subjectAltName is malformed"},
	{"subject alternative name", "its subjectAltName extension is malformed"},
	{"duplicate", "it carries an extension twice"},
	{"RDNSequence", "its subject is not a valid distinguished name"},
	{"RSA", "its RSA public key is malformed"},
	{"ECDSA", "its EC public key is malformed"},
	{"Ed25519", "its Ed25519 public key is malformed"},
	{"public key", "its public key is malformed or of a type this server does not read"},
	{"Attributes", "its attributes are malformed"},
	{"extension", "one of its extensions is malformed"},
}

// parseReason says why crypto/x509 could not read a request, der, without
// the library's text (SECURITY.md: no Go error text in answers): a reason
// of parseReasons; a subject attribute whose value its string type does
// not allow, named (encoding/asn1's "invalid UTF-8 string" names none, and
// the request is DER all the same); or that it is not a DER PKCS#10
// request.
func parseReason(der []byte, err error) string {
	msg := err.Error()
	for _, r := range parseReasons {
		if strings.Contains(msg, r.match) {
			return r.reason
		}
	}
	if problem := csr.SubjectStringProblem(der); problem != "" {
		return problem
	}
	return "it is not a DER-encoded PKCS#10 request (RFC 2986)"
}
