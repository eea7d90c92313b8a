package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/pki"
)

// clockSkew is how far in the future a certificate's notBefore may lie.
const clockSkew = 5 * time.Minute

// verifyError is a certificate (or reply) received that is not good.
type verifyError struct {
	kind string // chain, key, ca, expired, not-yet-valid, reply, duplicate
	err  error
}

// kindDuplicate is a certificate whose serial was received before: counted
// in Result.Duplicates, not in BadCerts.
const kindDuplicate = "duplicate"

func (e *verifyError) Error() string { return fmt.Sprintf("verification (%s): %v", e.kind, e.err) }
func (e *verifyError) Unwrap() error { return e.err }

// issuer is a CA certificate from GetCACert (or /cacerts) that may issue.
type issuer struct {
	cert *x509.Certificate
	id   string // hex SHA-256 of the certificate: the server's issuer ID
}

// verifier checks certificates received and finds repeated serials.
type verifier struct {
	now func() time.Time
	// roots are the self-signed CA certificates the servers sent at
	// connect (nil when none was): an issuing CA learnt later must chain
	// to one of them.
	roots *x509.CertPool
	// fetch gets the servers' CA certificates again, for a certificate
	// whose issuer is not known yet (a rollover switched during the run).
	fetch func(context.Context) ([]*x509.Certificate, error)

	mu      sync.Mutex
	issuers []issuer
	asked   map[string]bool                // issuer names fetch was called for
	seen    map[string]map[string]struct{} // issuer name (RawIssuer) -> serial bytes
	dups    int
}

// newVerifier accepts as issuers the CA certificates the servers sent that
// chain to a self-signed one among them (all of them when none is
// self-signed): during a rollover, the current and the next issuing CA.
func newVerifier(targets []*target, now func() time.Time) (*verifier, error) {
	var cas []*x509.Certificate
	seen := map[string]bool{}
	for _, t := range targets {
		for _, c := range t.caCerts {
			if c.IsCA && !seen[string(c.Raw)] {
				seen[string(c.Raw)] = true
				cas = append(cas, c)
			}
		}
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	nroots := 0
	for _, c := range cas {
		if bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil {
			roots.AddCert(c)
			nroots++
		} else {
			inter.AddCert(c)
		}
	}
	v := &verifier{now: now, seen: map[string]map[string]struct{}{}, asked: map[string]bool{}}
	if nroots > 0 {
		v.roots = roots
	}
	v.fetch = func(ctx context.Context) ([]*x509.Certificate, error) {
		var all []*x509.Certificate
		for _, t := range targets {
			if t.fetchCA == nil {
				continue
			}
			certs, err := t.fetchCA(ctx)
			if err != nil {
				return nil, err
			}
			all = append(all, certs...)
		}
		return all, nil
	}
	var rejected []string
	for _, c := range cas {
		if nroots > 0 {
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now(),
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				rejected = append(rejected, fmt.Sprintf("%s: %v", c.Subject, err))
				continue
			}
		}
		sum := sha256.Sum256(c.Raw)
		v.issuers = append(v.issuers, issuer{cert: c, id: hex.EncodeToString(sum[:])})
	}
	if len(v.issuers) == 0 {
		return nil, fmt.Errorf("the servers sent no usable CA certificate to verify certificates against (%s)", strings.Join(rejected, "; "))
	}
	return v, nil
}

// check verifies a certificate received for a CSR with public key spki. It
// returns the ID of the known issuing CA that signed it, also when the
// certificate fails another check ("" when none did): its serial is counted
// among those received all the same (record).
func (v *verifier) check(cert *x509.Certificate, spki []byte) (string, error) {
	id, signed := v.issuedBy(cert)
	if !signed && v.learn(cert) {
		id, signed = v.issuedBy(cert)
	}
	if !bytes.Equal(cert.RawSubjectPublicKeyInfo, spki) {
		return id, &verifyError{kind: "key", err: errors.New("the certificate's public key is not the CSR's")}
	}
	if cert.IsCA {
		return id, &verifyError{kind: "ca", err: errors.New("the certificate says CA:TRUE")}
	}
	now := v.now()
	if now.After(cert.NotAfter) {
		return id, &verifyError{kind: "expired", err: fmt.Errorf("notAfter %s is past", cert.NotAfter.UTC().Format(time.RFC3339))}
	}
	if cert.NotBefore.After(now.Add(clockSkew)) {
		return id, &verifyError{kind: "not-yet-valid", err: fmt.Errorf("notBefore %s is in the future", cert.NotBefore.UTC().Format(time.RFC3339))}
	}
	if !signed {
		return "", &verifyError{kind: "chain", err: fmt.Errorf("issued by %s, signed by none of the CA certificates", cert.Issuer)}
	}
	return id, nil
}

// issuedBy finds the known issuing CA that signed cert.
func (v *verifier) issuedBy(cert *x509.Certificate) (string, bool) {
	v.mu.Lock()
	issuers := v.issuers
	v.mu.Unlock()
	for _, is := range issuers {
		if bytes.Equal(is.cert.RawSubject, cert.RawIssuer) && cert.CheckSignatureFrom(is.cert) == nil {
			return is.id, true
		}
	}
	return "", false
}

// learn fetches the servers' CA certificates again, once per issuer name
// not known yet, and adds the issuing CAs among them that chain to a root
// known from the start: a rollover may switch while the tool runs. It
// reports whether it added any.
func (v *verifier) learn(cert *x509.Certificate) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.roots == nil || v.fetch == nil || v.asked[string(cert.RawIssuer)] {
		return false
	}
	v.asked[string(cert.RawIssuer)] = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	certs, err := v.fetch(ctx)
	if err != nil {
		return false
	}
	inter := x509.NewCertPool()
	for _, c := range certs {
		inter.AddCert(c)
	}
	added := false
	for _, c := range certs {
		sum := sha256.Sum256(c.Raw)
		id := hex.EncodeToString(sum[:])
		if !c.IsCA || slices.ContainsFunc(v.issuers, func(is issuer) bool { return is.id == id }) {
			continue
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: v.roots, Intermediates: inter, CurrentTime: v.now(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			continue
		}
		// A new slice: issuedBy reads the old one without the lock.
		v.issuers = append(slices.Clip(v.issuers), issuer{cert: c, id: id})
		added = true
	}
	return added
}

// record notes the serial of a certificate received, good or not, and
// returns it in hex as the rest of scepter shows it (pki.SerialText: whole
// bytes, so 0e67…, not e67…). A serial seen before under the same issuer name is a
// duplicate, whatever else is wrong with either certificate: counted in
// duplicates, and returned as an error of kind "duplicate", for the
// enrollment failed (two certificates under one issuer name and serial
// cannot be told apart, revoked or listed in a CRL). Every certificate is
// keyed by the issuer name it gives (RawIssuer), whether a known issuing CA
// signed it or none did: that of a trusted issuer's certificate is the
// issuer's subject, so a foreign CA that takes a trusted issuer's name
// repeats that issuer's serials, as a relying party sees it.
func (v *verifier) record(cert *x509.Certificate) (string, error) {
	issuer := string(cert.RawIssuer)
	key := string(cert.SerialNumber.Bytes())
	serial := pki.SerialText(cert.SerialNumber)
	v.mu.Lock()
	defer v.mu.Unlock()
	m := v.seen[issuer]
	if m == nil {
		m = map[string]struct{}{}
		v.seen[issuer] = m
	}
	if _, dup := m[key]; dup {
		v.dups++
		return serial, &verifyError{kind: kindDuplicate, err: fmt.Errorf("serial (hex) %s was received before from the same issuer", serial)}
	}
	m[key] = struct{}{}
	return serial, nil
}

func (v *verifier) duplicates() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.dups
}

// ReasonNotCMS is the reason of an enrollment answered with something that
// is no CMS message at all (an empty body, a proxy's or web server's HTML
// page, bytes that do not parse as CMS SignedData): no pkiMessage and no
// EST certs-only reply, so no reply of the server enrolled at, and counted
// with the refused or lost requests, which --allow-failures accepts, not as
// a bad certificate (r124). A signed CertRep that fails its checks, or a
// certificate that fails verification, is a bad certificate (verify:…).
const ReasonNotCMS = "not CMS"

// notCMSError is a reply of ReasonNotCMS.
type notCMSError struct{ err error }

func (e *notCMSError) Error() string { return "the reply is no CMS message: " + e.err.Error() }
func (e *notCMSError) Unwrap() error { return e.err }

// ReasonLockedOut is the reason of an enrollment refused because the
// server locked the client's address out after too many wrong challenges or
// passwords: a SCEP badRequest or an EST 429 whose text says so. It is told
// apart from the failInfo or status it came with, since waiting for the
// lockout to end, not a server setting such as --rate-limit, is the remedy.
const ReasonLockedOut = "locked out"

// saysLockedOut: the refusal's text is a lockout after failed attempts, in
// scepter's words (internal/enroll: "too many failed attempts from this
// address; try again after …"). The per-address rate limit's 429 says "too
// many requests" and is not one.
func saysLockedOut(err error) bool {
	text := strings.ToLower(err.Error())
	return strings.Contains(text, "too many failed attempts") || strings.Contains(text, "too many failed logins")
}

// classify names the reason of a failed enrollment, for counting.
func classify(err error) string {
	var fe *client.FailureError
	var pe *client.PendingError
	var se *statusError
	var ve *verifyError
	var ne net.Error
	var tv *tls.CertificateVerificationError
	var ue *unfinishedError
	var nc *notCMSError
	switch {
	case errors.As(err, &ue):
		return "unfinished"
	case errors.As(err, &nc):
		return ReasonNotCMS
	case (errors.As(err, &fe) || errors.As(err, &se)) && saysLockedOut(err):
		return ReasonLockedOut
	case errors.As(err, &fe):
		return "failInfo:" + fe.FailInfo.String()
	case errors.As(err, &pe):
		return "pending"
	case errors.As(err, &se) && se.status == http.StatusAccepted:
		// EST's "not yet" (RFC 7030 §4.2.3): the request awaits approval.
		return "pending"
	case errors.As(err, &se):
		return fmt.Sprintf("http:%d", se.status)
	case errors.As(err, &ve):
		return "verify:" + ve.kind
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "interrupted"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.As(err, &tv):
		return "tls"
	case strings.Contains(err.Error(), "CertRep"):
		// The SCEP client refused the reply: not signed by the RA, wrong
		// transaction or nonce, undecryptable, or holding no certificate
		// for our key.
		return "verify:reply"
	}
	return "error"
}
