package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/scepter/scepter/internal/ca/lint"
	"github.com/scepter/scepter/internal/pki"
)

// Issuer is one issuing CA: its certificate, its key, and the state its
// issuance pipeline prepares once (the throwaway lint key and the linter).
// Build it with NewIssuer; an Issuer must not be copied after first use.
type Issuer struct {
	Cert   *x509.Certificate
	Signer crypto.Signer
	// ID is the lower-case hex SHA-256 of Cert.Raw: the IssuerID of the store.
	ID string
	// Chain is Cert first, then its parents up to and including the root.
	Chain []*x509.Certificate

	once sync.Once
	prep *prepared
	err  error
	// rand is the randomness for serials and signatures (crypto/rand by
	// default; tests inject their own).
	rand io.Reader
}

// checker is what Issue needs of a linter.
type checker interface{ Check(der []byte) error }

// prepared is built once per Issuer: nothing here is rebuilt per request.
type prepared struct {
	sigAlg     x509.SignatureAlgorithm
	lintSigner crypto.Signer     // throwaway key of the issuer's algorithm
	lintParent *x509.Certificate // issuer name and SKI, without a public key
	linter     checker
}

// NewIssuer checks that signer holds cert's key and that cert is a CA, and
// prepares the issuance pipeline (a throwaway key for linting and the
// linter). chain is cert followed by its parents up to the root; nil means
// just cert.
func NewIssuer(cert *x509.Certificate, signer crypto.Signer, chain []*x509.Certificate) (*Issuer, error) {
	if cert == nil || signer == nil {
		return nil, errors.New("ca: issuer needs a certificate and a signer")
	}
	if !publicKeysEqual(signer.Public(), cert.PublicKey) {
		return nil, fmt.Errorf("ca: the key does not match the issuing CA certificate %q", cert.Subject)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, fmt.Errorf("ca: %q is not a CA certificate", cert.Subject)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("ca: %q lacks the keyCertSign key usage", cert.Subject)
	}
	if len(chain) == 0 {
		chain = []*x509.Certificate{cert}
	} else if !chain[0].Equal(cert) {
		return nil, errors.New("ca: the issuer chain must start with the issuer certificate")
	}
	sum := sha256.Sum256(cert.Raw)
	i := &Issuer{Cert: cert, Signer: signer, ID: hex.EncodeToString(sum[:]), Chain: slices.Clone(chain)}
	if _, err := i.prepared(); err != nil {
		return nil, err
	}
	return i, nil
}

func (i *Issuer) prepared() (*prepared, error) {
	i.once.Do(func() {
		p := &prepared{
			lintParent: &x509.Certificate{RawSubject: i.Cert.RawSubject, SubjectKeyId: i.Cert.SubjectKeyId},
		}
		var err error
		switch pub := i.Signer.Public().(type) {
		case *rsa.PublicKey:
			p.sigAlg = x509.SHA256WithRSA
			// The TBS does not depend on the modulus size, so a 2048-bit
			// throwaway key keeps the lint signature cheap for any RSA CA.
			p.lintSigner, err = rsa.GenerateKey(rand.Reader, 2048)
		case *ecdsa.PublicKey:
			switch pub.Curve {
			case elliptic.P256():
				p.sigAlg = x509.ECDSAWithSHA256
			case elliptic.P384():
				p.sigAlg = x509.ECDSAWithSHA384
			case elliptic.P521():
				p.sigAlg = x509.ECDSAWithSHA512
			default:
				err = fmt.Errorf("unsupported CA curve %s", pub.Curve.Params().Name)
			}
			if err == nil {
				p.lintSigner, err = ecdsa.GenerateKey(pub.Curve, rand.Reader)
			}
		default:
			err = fmt.Errorf("unsupported CA key type %T", pub)
		}
		if err == nil {
			p.linter, err = lint.New()
		}
		if err != nil {
			i.err = fmt.Errorf("ca: preparing issuer %q: %w", i.Cert.Subject, err)
			return
		}
		i.prep = p
	})
	return i.prep, i.err
}

// Request is what goes into a certificate besides the profile. The caller
// takes these fields from the CSR (after verifying its signature) or from
// wherever policy says; nothing else of the CSR is ever used.
type Request struct {
	RawSubject     []byte // the CSR's subject, DER, kept verbatim
	DNSNames       []string
	EmailAddresses []string
	IPAddresses    []net.IP
	URIs           []*url.URL
	PublicKey      crypto.PublicKey
	Profile        pki.Profile
}

// ReserveFunc records the serial before signing (store.ReserveSerial). It
// returns taken=true when the serial already exists under the issuer; the
// issuer then draws a new one, up to a few tries.
type ReserveFunc func(ctx context.Context, issuerID, serialHex string) (taken bool, err error)

// serialTries bounds how many serials Issue draws before giving up: with 127
// random bits a second collision means a broken random source or store.
const serialTries = 5

// Issue builds a certificate from the profile and the listed request
// fields only, lints it, reserves its serial, and signs it.
//
// The certificate: the request's subject verbatim, its SANs (at most
// Profile.MaxSANs, each at most 255 bytes), never CA:TRUE, key usage and
// extended key usage from the profile (key usages the subject key's
// algorithm cannot perform are dropped: keyEncipherment and dataEncipherment
// for EC keys, keyAgreement for RSA keys), NotBefore = now − Backdate,
// NotAfter = now + Validity, both clamped to the issuer's validity, SKI from
// the public key (RFC 5280 method 1), AKI = the issuer's SKI, CRL
// distribution points and AIA (OCSP, caIssuers) from the profile's URLs.
//
// The pipeline: draw a 127-bit serial; sign the certificate with a
// throwaway key and lint it (a lint error refuses the request); reserve the
// serial (a taken serial starts over with a new one; a reserve error aborts
// before anything is signed); sign with the CA key, which is only ever asked
// to sign the exact TBS that was linted.
//
// Errors are *pki.Error: EBadRequest for what the request asks (key, names,
// subject), EInternal for everything else (lint failures name the lints).
func (i *Issuer) Issue(ctx context.Context, req Request, now time.Time, reserve ReserveFunc) (*x509.Certificate, error) {
	if reserve == nil {
		return nil, pki.Wrap(pki.EInternal, errors.New("ca: Issue needs a ReserveFunc"), "no serial reservation")
	}
	p, err := i.prepared()
	if err != nil {
		return nil, pki.Wrap(pki.EInternal, err, "issuer unavailable")
	}
	prof := req.Profile
	if err := CheckKey(prof.Keys, req.PublicKey); err != nil {
		return nil, err
	}
	subj, err := parseSubject(req.RawSubject)
	if err != nil {
		return nil, err
	}
	if err := checkNames(prof, &req, subj); err != nil {
		return nil, err
	}
	tmpl, err := i.template(&req, now)
	if err != nil {
		return nil, err
	}
	rnd := i.rand
	if rnd == nil {
		rnd = rand.Reader
	}
	tmpl.SignatureAlgorithm = p.sigAlg

	for range serialTries {
		serial, err := randomSerial(rnd)
		if err != nil {
			return nil, pki.Wrap(pki.EInternal, err, "drawing a serial number")
		}
		tmpl.SerialNumber = serial

		// 1. Sign with the throwaway key and lint: nothing reaches the CA
		// key unless this exact TBS passed.
		lintDER, err := x509.CreateCertificate(rnd, tmpl, p.lintParent, req.PublicKey, p.lintSigner)
		if err != nil {
			return nil, pki.Wrap(pki.EInternal, err, "building the certificate")
		}
		if err := p.linter.Check(lintDER); err != nil {
			var f *lint.Failure
			if errors.As(err, &f) {
				return nil, pki.Wrap(pki.EInternal, err, "certificate failed pre-issuance lint: "+strings.Join(f.Lints, ", "))
			}
			return nil, pki.Wrap(pki.EInternal, err, "certificate failed pre-issuance lint")
		}
		tbs, err := tbsOf(lintDER)
		if err != nil {
			return nil, pki.Wrap(pki.EInternal, err, "building the certificate")
		}

		// 2. Record the serial before the real signature.
		if err := ctx.Err(); err != nil {
			return nil, pki.Wrap(pki.EInternal, err, "issuance canceled")
		}
		taken, err := reserve(ctx, i.ID, serial.Text(16))
		if err != nil {
			var pe *pki.Error
			if errors.As(err, &pe) {
				return nil, err
			}
			return nil, pki.Wrap(pki.EInternal, err, "recording the serial number")
		}
		if taken {
			continue
		}

		// 3. Sign the linted TBS with the CA key.
		guard := &lintedOnly{signer: i.Signer, tbs: tbs}
		der, err := x509.CreateCertificate(rnd, tmpl, i.Cert, req.PublicKey, guard)
		if err != nil {
			return nil, pki.Wrap(pki.EInternal, err, "signing the certificate")
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, pki.Wrap(pki.EInternal, err, "parsing the signed certificate")
		}
		if !bytes.Equal(cert.RawTBSCertificate, tbs) {
			// Unreachable while lintedOnly guards the key; kept as the last word.
			return nil, pki.Wrap(pki.EInternal, errTBSMismatch, "signing the certificate")
		}
		return cert, nil
	}
	return nil, pki.Wrap(pki.EInternal, fmt.Errorf("ca: %d serial numbers in a row were already taken", serialTries), "no unused serial number")
}

// template builds everything of the certificate but the serial.
func (i *Issuer) template(req *Request, now time.Time) (*x509.Certificate, error) {
	prof := &req.Profile
	if prof.Validity <= 0 {
		return nil, pki.Wrap(pki.EInternal, fmt.Errorf("ca: profile %q has no validity", prof.Name), "profile misconfigured")
	}
	now = now.UTC().Truncate(time.Second)
	notBefore := now.Add(-max(prof.Backdate, 0))
	notAfter := now.Add(prof.Validity)
	if now.Before(i.Cert.NotBefore) || !now.Before(i.Cert.NotAfter) {
		return nil, pki.Wrap(pki.EInternal, fmt.Errorf("ca: issuing CA %q is not valid at %s (valid %s to %s)",
			i.Cert.Subject, now.Format(time.RFC3339), i.Cert.NotBefore.Format(time.RFC3339), i.Cert.NotAfter.Format(time.RFC3339)),
			"issuing CA not valid now")
	}
	if notBefore.Before(i.Cert.NotBefore) {
		notBefore = i.Cert.NotBefore
	}
	if notAfter.After(i.Cert.NotAfter) {
		notAfter = i.Cert.NotAfter
	}

	ku, err := keyUsageFor(prof.KeyUsage, req.PublicKey)
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(req.PublicKey)
	if err != nil {
		return nil, pki.Wrap(pki.EBadRequest, err, "the public key cannot be encoded")
	}
	raw := req.RawSubject
	if len(raw) == 0 {
		raw = []byte{0x30, 0x00} // empty Name; Go marks the SAN critical then
	}
	return &x509.Certificate{
		RawSubject:            raw,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              ku,
		ExtKeyUsage:           slices.Clone(prof.ExtKeyUsage),
		BasicConstraintsValid: true,
		IsCA:                  false,
		SubjectKeyId:          ski,
		AuthorityKeyId:        i.Cert.SubjectKeyId,
		DNSNames:              slices.Clone(req.DNSNames),
		EmailAddresses:        slices.Clone(req.EmailAddresses),
		IPAddresses:           slices.Clone(req.IPAddresses),
		URIs:                  slices.Clone(req.URIs),
		CRLDistributionPoints: slices.Clone(prof.CRLURLs),
		OCSPServer:            slices.Clone(prof.OCSPURLs),
		IssuingCertificateURL: slices.Clone(prof.IssuerURLs),
	}, nil
}

// keyUsageFor drops the key usages the key's algorithm cannot perform
// (RFC 8813: no key or data encipherment with EC keys; RFC 3279: no key
// agreement with RSA keys). A profile whose usages all vanish is refused.
func keyUsageFor(ku x509.KeyUsage, pub crypto.PublicKey) (x509.KeyUsage, error) {
	want := ku
	switch pub.(type) {
	case *ecdsa.PublicKey:
		ku &^= x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment
	case *rsa.PublicKey:
		ku &^= x509.KeyUsageKeyAgreement | x509.KeyUsageEncipherOnly | x509.KeyUsageDecipherOnly
	}
	if want != 0 && ku == 0 {
		return 0, pki.Errorf(pki.EBadRequest, "this profile's key usages cannot be performed by a %s key", keyAlgName(pub))
	}
	return ku, nil
}

func keyAlgName(pub crypto.PublicKey) string {
	switch pub.(type) {
	case *ecdsa.PublicKey:
		return "EC"
	case *rsa.PublicKey:
		return "RSA"
	}
	return fmt.Sprintf("%T", pub)
}

// randomSerial draws a positive, non-zero serial of at most 127 bits, so it
// encodes in at most 16 octets.
func randomSerial(r io.Reader) (*big.Int, error) {
	var b [16]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, err
		}
		b[0] &= 0x7f
		n := new(big.Int).SetBytes(b[:])
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// subjectKeyID is RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey
// BIT STRING value (without tag, length and unused-bits octet).
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	s := cryptobyte.String(spki)
	var inner cryptobyte.String
	var bits asn1.BitString
	if !s.ReadASN1(&inner, cbasn1.SEQUENCE) || !inner.SkipASN1(cbasn1.SEQUENCE) || !inner.ReadASN1BitString(&bits) {
		return nil, errors.New("ca: malformed SubjectPublicKeyInfo")
	}
	h := sha1.Sum(bits.Bytes)
	return h[:], nil
}

// tbsOf returns the TBSCertificate bytes of a DER certificate.
func tbsOf(der []byte) ([]byte, error) {
	s := cryptobyte.String(der)
	var cert cryptobyte.String
	var tbs cryptobyte.String
	if !s.ReadASN1(&cert, cbasn1.SEQUENCE) || !cert.ReadASN1Element(&tbs, cbasn1.SEQUENCE) {
		return nil, errors.New("ca: malformed certificate")
	}
	return tbs, nil
}

var errTBSMismatch = errors.New("ca: refusing to sign: the TBS differs from the linted one")

// lintedOnly lets the CA key sign exactly one message: the TBS that passed
// the linter. x509.CreateCertificate hands the whole TBS to a
// crypto.MessageSigner, so the comparison happens before the key is used.
type lintedOnly struct {
	signer crypto.Signer
	tbs    []byte
}

func (g *lintedOnly) Public() crypto.PublicKey { return g.signer.Public() }

// Sign refuses: a bare digest cannot be checked against the linted TBS.
func (g *lintedOnly) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("ca: refusing to sign a digest that cannot be matched to the linted TBS")
}

func (g *lintedOnly) SignMessage(r io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	if !bytes.Equal(msg, g.tbs) {
		return nil, errTBSMismatch
	}
	return crypto.SignMessage(g.signer, r, msg, opts)
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && b != nil && e.Equal(b)
}
