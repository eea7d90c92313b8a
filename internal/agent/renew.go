package agent

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/filetrust"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/scep"
)

// Renewer asks a server for the renewal of one certificate.
type Renewer interface {
	Renew(ctx context.Context, r RenewRequest) (*RenewResult, error)
}

// RenewRequest is one renewal to ask for.
type RenewRequest struct {
	Config *Certificate
	// Old is the certificate being renewed, OldChain the certificates that
	// follow it in its file (sent along in a TLS handshake), OldKey its key.
	Old      *x509.Certificate
	OldChain []*x509.Certificate
	OldKey   crypto.Signer
	// Key is the new certificate's key: OldKey unless rekeying.
	Key crypto.Signer
	// Now is the agent's clock.
	Now func() time.Time
	// Warnf receives what the client wants to warn about.
	Warnf func(format string, args ...any)
	// Sending, when set, is called just before the request that carries
	// Key may leave (after the exchanges that only fetch, such as the CA
	// certificates): the agent records there that a request with its
	// kept key may be held or issued. An error stops the renewal, with
	// nothing sent.
	Sending func() error
}

// RenewResult is what the server answered.
type RenewResult struct {
	Cert *x509.Certificate
	// CACerts are the CA (and RA) certificates the server presents; the
	// agent checks that Cert chains to the pinned one among them.
	CACerts []*x509.Certificate
}

// RenewalTemplate is the CSR of a renewal: every name of the certificate
// being renewed, its subject and its SANs. `scepter renew`, `scepter est
// reenroll` and the agent all ask for the same names.
func RenewalTemplate(old *x509.Certificate) csr.Template {
	return csr.Template{RawSubject: old.RawSubject, DNSNames: old.DNSNames, IPAddresses: old.IPAddresses,
		EmailAddresses: old.EmailAddresses, URIs: old.URIs}
}

// SCEPRenewal is one renewal over SCEP, authenticated by the certificate
// being renewed.
type SCEPRenewal struct {
	Old    *x509.Certificate
	OldKey crypto.Signer
	Key    crypto.Signer // the new certificate's key (OldKey to keep it)
	// Caps and CACerts are what GetCACaps and GetCACert returned (the
	// latter checked against the pinned fingerprint).
	Caps    client.Caps
	CACerts []*x509.Certificate
	// Challenge goes into the CSR when set. An EC signer receives its
	// certificate in an envelope keyed from the challenge; without one,
	// SCEPRenew makes a random one for that (see envelopeChallenge).
	Challenge string
	// PKCSReq sends a PKCSReq signed by the certificate even when the
	// server offers RenewalReq (as Apple devices and certmonger do).
	PKCSReq               bool
	PollInterval, MaxWait time.Duration
	// Sending, when set, is called just before the request leaves; an
	// error stops it.
	Sending func() error
	// Held, when set, is called at the first answer that holds the
	// request for approval (client.EnrollRequest.Held).
	Held func()
}

// SCEPRenew sends a RenewalReq (a PKCSReq when the server does not
// advertise Renewal, or when asked) signed by the current certificate and
// key, for a CSR with the old certificate's names, and returns the new
// certificate. `scepter renew` and the agent share it.
func SCEPRenew(ctx context.Context, c *client.SCEP, r SCEPRenewal) (*x509.Certificate, error) {
	challenge := r.Challenge
	if _, isRSA := r.Old.PublicKey.(*rsa.PublicKey); !isRSA && challenge == "" {
		challenge = envelopeChallenge()
	}
	t := RenewalTemplate(r.Old)
	t.ChallengePassword = challenge
	der, err := csr.Create(t, r.Key)
	if err != nil {
		return nil, err
	}
	typ := scep.RenewalReq
	if r.PKCSReq || !r.Caps.Has("Renewal") {
		typ = scep.PKCSReq
	}
	if r.Sending != nil {
		if err := r.Sending(); err != nil {
			return nil, err
		}
	}
	return c.Enroll(ctx, client.EnrollRequest{CSR: der, Key: r.Key, SignerCert: r.Old, SignerKey: r.OldKey, CACerts: r.CACerts, Caps: r.Caps,
		Type: typ, Challenge: challenge, PollInterval: r.PollInterval, MaxWait: r.MaxWait, Held: r.Held})
}

// envelopeChallenge is a challenge password for a renewal signed by an EC
// key that was given none. The server answers an EC signer only in an
// envelope keyed from the request's challenge (RFC 8894's pwri); for a
// renewal the certificate authenticates the request and the challenge
// keys that envelope only. It travels inside the CSR, encrypted to the
// RA, and is used once: 128 random bits, in characters a PrintableString
// takes. It is never printed or logged.
func envelopeChallenge() string {
	return rand.Text()
}

// renewableChecker is a Renewer that can tell, before a certificate is due,
// what would keep it from ever renewing one as configured.
type renewableChecker interface {
	Renewable(c *Certificate, old crypto.PublicKey) error
}

// Renewable implements renewableChecker: the CertRep is encrypted to the
// signer, an RSA key by key transport and an EC key with a password
// (challenge_file, or one SCEPRenew makes); another key could open no
// answer, so nothing is asked for.
func (SCEPRenewer) Renewable(c *Certificate, old crypto.PublicKey) error {
	switch old.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
		return nil
	}
	return fmt.Errorf("SCEP with a %s key: the server can encrypt the certificate only to an RSA or EC key; renew over EST", keys.KeyTypeOf(old))
}

// SCEPRenewer renews over SCEP with RenewalReq.
type SCEPRenewer struct{}

// Renew implements Renewer.
func (SCEPRenewer) Renew(ctx context.Context, r RenewRequest) (*RenewResult, error) {
	var challenge string
	if r.Config.ChallengeFile != "" {
		var err error
		if challenge, err = ReadChallengeFile(r.Config.ChallengeFile); err != nil {
			// This machine's to mend: asking again will not.
			return nil, &localError{err}
		}
	}
	if err := (SCEPRenewer{}).Renewable(r.Config, r.OldKey.Public()); err != nil {
		return nil, err
	}
	// Over https the pinned CA vouches for the server's TLS too.
	c := &client.SCEP{URL: r.Config.URL, Fingerprint: r.Config.CAFingerprint, Now: r.Now, Warnf: r.Warnf, URLFromConfig: true}
	caps, err := c.GetCACaps(ctx) // its errors name the operation
	if err != nil {
		return nil, err
	}
	caCerts, err := c.GetCACert(ctx)
	if err != nil {
		return nil, err
	}
	// Only an RA that chains to the pinned CA is encrypted to and believed.
	if caCerts, err = client.TrustedCACerts(caCerts, r.Config.CAFingerprint, r.Now()); err != nil {
		return nil, client.WithTrustNaming(err, client.NamingAgent)
	}
	cert, err := SCEPRenew(ctx, c, SCEPRenewal{Old: r.Old, OldKey: r.OldKey, Key: r.Key, Caps: caps, CACerts: caCerts, Challenge: challenge, Sending: r.Sending})
	if err != nil {
		return nil, err
	}
	// A certificate issued before a rollover (asked for again) by a CA no
	// longer served.
	return &RenewResult{Cert: cert, CACerts: client.WithIssuer(ctx, cert, caCerts, r.Config.CAFingerprint)}, nil
}

// ReadChallengeFile is the challenge password in a challenge_file. A file
// that cannot be read, or holds none, is refused: an empty challenge
// would go out as none, a server that wants one refuses it, and an EC
// key's envelope would be keyed from nothing. The agent reads it at start
// (CheckChallengeFiles) and again at each SCEP renewal.
func ReadChallengeFile(path string) (string, error) {
	b, err := filetrust.ReadRegular(path)
	if err != nil {
		return "", fmt.Errorf("challenge_file: %w", err)
	}
	defer clear(b)
	challenge := challengeFromFile(b)
	if challenge == "" {
		return "", fmt.Errorf("challenge_file %s is empty (or only white space, or a byte order mark): write the challenge password in it, or remove the setting", path)
	}
	return challenge, nil
}

// CheckChallengeFiles reads each certificate's challenge_file: one that is
// missing, unreadable or empty is refused at start, as the other
// configuration errors are, not found only when the certificate comes due.
func CheckChallengeFiles(cfg *Config) error {
	var errs []error
	for i := range cfg.Certificates {
		c := &cfg.Certificates[i]
		if c.ChallengeFile == "" {
			continue
		}
		if _, err := ReadChallengeFile(c.ChallengeFile); err != nil {
			errs = append(errs, fmt.Errorf("certificate %d (%q): %w", i+1, c.Name, err))
		}
	}
	return errors.Join(errs...)
}

// localError is a failure on this machine (a setting, a file) that asking
// the server again will not mend: --once reports it at once, without its
// retries.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// utf8BOM is the byte order mark Windows Notepad writes at the start of a
// UTF-8 file.
const utf8BOM = "\uFEFF"

// challengeFromFile is the challenge password in a challenge_file: without
// a leading byte order mark, which no operator means as part of it (and
// which strings.TrimSpace keeps: it is not white space), and without the
// white space around it.
func challengeFromFile(b []byte) string {
	return strings.TrimSpace(strings.TrimPrefix(string(b), utf8BOM))
}

// clientPair is the TLS client certificate of an EST request: the
// certificate in place (r.Old, with r.OldChain) and its key, presented
// when the server asks for one; nil when r has none.
func clientPair(r RenewRequest) *tls.Certificate {
	if r.Old == nil || r.OldKey == nil {
		return nil
	}
	pair := &tls.Certificate{Certificate: [][]byte{r.Old.Raw}, PrivateKey: r.OldKey, Leaf: r.Old}
	for _, c := range r.OldChain {
		pair.Certificate = append(pair.Certificate, c.Raw)
	}
	return pair
}

// chainFileCerts are the certificates in chain_path when it is a file of
// its own, candidates for the client certificate's chain in the TLS
// handshake (the client presents only those that chain it). One that
// cannot be read adds none: /cacerts still may.
func chainFileCerts(c *Certificate) []*x509.Certificate {
	if c == nil || c.ChainPath == "" || c.ChainPath == c.CertPath || c.ChainPath == c.KeyPath {
		return nil
	}
	b, err := filetrust.ReadRegular(c.ChainPath)
	if err != nil {
		return nil
	}
	certs, err := keys.ParseCertsPEM(b)
	if err != nil {
		return nil
	}
	return certs
}

// ESTRenewer renews over EST with simplereenroll, authenticated by the
// current certificate as TLS client certificate.
type ESTRenewer struct{}

// Renew implements Renewer.
func (ESTRenewer) Renew(ctx context.Context, r RenewRequest) (*RenewResult, error) {
	c := &client.EST{URL: r.Config.URL, Fingerprint: r.Config.CAFingerprint, Certificate: clientPair(r), ClientChain: chainFileCerts(r.Config), Now: r.Now, Warnf: r.Warnf, URLFromConfig: true}
	// CSR attributes are advice (RFC 7030 §4.5): without them the renewal
	// goes on as it would for a server that asks for nothing; a server
	// that cannot be reached is not asked again.
	attrs, err := c.AdvisoryCSRAttrs(ctx)
	if err != nil {
		return nil, err
	}
	withBinding := est.Has(attrs, est.OIDChallengePassword)
	if advice := client.KeyAdviceOf(attrs); !advice.Accepts(keys.KeyTypeOf(r.Key.Public())) && r.Warnf != nil {
		// The key is the agent's to choose (key_type), not the server's.
		r.Warnf("the server's /csrattrs ask for these key types: %s; the renewal's key is %s, which the server may refuse", advice, keys.KeyTypeOf(r.Key.Public()))
	}
	tmpl := RenewalTemplate(r.Old)
	res, err := c.Enroll(ctx, client.ESTRequest{Op: est.OpSimpleReenroll, MakeCSR: func(cb []byte) ([]byte, error) {
		// Connected (TLS handshake done): the request goes next.
		if r.Sending != nil {
			if err := r.Sending(); err != nil {
				return nil, err
			}
		}
		t := tmpl
		if withBinding {
			if cb == nil {
				return nil, errors.New("the server asks for channel binding, and this TLS connection has none")
			}
			t.ChallengePassword = est.ChannelBindingPassword(cb)
		}
		return csr.Create(t, r.Key)
	}})
	if err != nil {
		if strings.HasPrefix(err.Error(), est.OpSimpleReenroll+":") {
			// The server's answer, which the client names already.
			return nil, err
		}
		return nil, fmt.Errorf("%s: %w", est.OpSimpleReenroll, err)
	}
	caCerts, err := c.CACerts(ctx)
	if err != nil {
		return nil, err
	}
	return &RenewResult{Cert: res.Certificate, CACerts: client.WithIssuer(ctx, res.Certificate, caCerts, r.Config.CAFingerprint)}, nil
}
