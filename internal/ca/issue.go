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
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
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
	"github.com/scepter/scepter/internal/csr"
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
	sigAlg  x509.SignatureAlgorithm
	lintSig []byte // stand-in signature value of the issuer's algorithm, for the linter
	linter  checker
	caNames []string // canonicalName of each certificate of the chain
}

// NewIssuer checks that signer holds cert's key and that cert is a CA, and
// prepares the issuance pipeline (a throwaway key for linting and the
// linter). chain is cert followed by its parents up to the root; nil means
// just cert.
func NewIssuer(cert *x509.Certificate, signer crypto.Signer, chain []*x509.Certificate) (*Issuer, error) {
	if cert == nil || signer == nil {
		return nil, errors.New("ca: issuer needs a certificate and a signer")
	}
	if !pki.SamePublicKey(signer.Public(), cert.PublicKey) {
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
		p := &prepared{}
		var err error
		switch pub := i.Signer.Public().(type) {
		case *rsa.PublicKey:
			p.sigAlg = x509.SHA256WithRSA
			// No lint reads the signature value, so the certificate the
			// linter sees carries a stand-in of the right shape: no
			// throwaway signature is computed per issuance.
			p.lintSig = make([]byte, pub.Size())
			p.lintSig[0] = 1
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
				p.lintSig, err = asn1.Marshal(struct{ R, S *big.Int }{big.NewInt(1), big.NewInt(1)})
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
		for _, c := range i.Chain {
			p.caNames = append(p.caNames, canonicalName(c.RawSubject))
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

// ReserveFunc records the serial, with the linted TBSCertificate the CA key
// is about to sign, before signing (store.ReserveSerial). It returns
// taken=true when the serial already exists under the issuer; the issuer
// then draws a new one, up to a few tries.
type ReserveFunc func(ctx context.Context, issuerID, serialHex string, tbs []byte) (taken bool, err error)

// serialTries bounds how many serials Issue draws before giving up: with 128
// random bits a second collision means a broken random source or store.
const serialTries = 5

// IssuerInvalidRetryAfter is the Retry-After of the refusal an issuing CA
// out of its validity gets: only the operator mends that (a rollover, the
// clock), so devices are asked to wait minutes, not seconds.
const IssuerInvalidRetryAfter = 15 * time.Minute

// Issue builds a certificate from the profile and the listed request
// fields only, lints it, reserves its serial, and signs it.
//
// The certificate: the request's subject verbatim but for the order of the
// attributes of a multi-valued RDN, which is made DER's, and the string
// type of emailAddress, domainComponent and dnQualifier (a syntactically valid
// Name, attribute lengths within RFC 5280's bounds, never a CA's own name,
// and not empty unless there are SANs), its SANs (at most
// Profile.MaxSANs, each at most 255 bytes), never CA:TRUE, key usage and
// extended key usage from the profile (key usages the subject key's
// algorithm cannot perform are dropped: keyEncipherment and dataEncipherment
// for EC keys, keyAgreement for RSA keys), NotBefore = now − Backdate,
// NotAfter = now + Validity, both clamped to the issuer's validity, SKI from
// the public key (RFC 5280 method 1), AKI = the issuer's SKI, CRL
// distribution points and AIA (OCSP, caIssuers) from the profile's URLs.
//
// The pipeline: draw a 128-bit serial; build the TBSCertificate, sign it
// with a throwaway key of the issuer's algorithm and lint the result (a lint
// error refuses the request); reserve the serial (a taken serial starts over
// with a new one; a reserve error aborts before anything is signed); have
// the CA key sign those same TBS bytes, and verify that signature.
//
// Errors are *pki.Error: EBadRequest for what the request asks (key, names,
// subject), EUnavailable for a store out of reach when reserving, EInternal
// for everything else (lint failures name the lints).
func (i *Issuer) Issue(ctx context.Context, req Request, now time.Time, reserve ReserveFunc) (*x509.Certificate, error) {
	if reserve == nil {
		return nil, pki.Wrap(pki.EInternal, errors.New("ca: Issue needs a ReserveFunc"), "no serial reservation")
	}
	p, err := i.prepared()
	if err != nil {
		return nil, pki.Wrap(pki.EInternal, err, "issuer unavailable")
	}
	if err := p.checkRequest(&req); err != nil {
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

		// 1. Build the TBS, sign it with the throwaway key and lint it:
		// the CA key signs these bytes or nothing.
		tbs, opts, err := i.buildTBS(rnd, tmpl, req.PublicKey)
		if err != nil {
			return nil, pki.Wrap(pki.EInternal, err, "building the certificate")
		}
		if err := p.lintTBS(tbs); err != nil {
			return nil, err
		}

		// 2. Record the serial before the real signature.
		if err := ctx.Err(); err != nil {
			return nil, pki.Wrap(pki.EInternal, err, "issuance canceled")
		}
		taken, err := reserve(ctx, i.ID, serial.Text(16), tbs)
		if err != nil {
			var pe *pki.Error
			if errors.As(err, &pe) {
				return nil, err
			}
			if errors.Is(err, pki.ErrUnavailable) {
				// The store out of reach for now: logged as such, not as
				// our fault, and told to the client as any 503 is.
				return nil, pki.Wrap(pki.EUnavailable, err, pki.ErrorMessage(err))
			}
			return nil, pki.Wrap(pki.EInternal, err, "recording the serial number")
		}
		if taken {
			continue
		}

		// 3. Sign the linted TBS with the CA key, and check the signature
		// (as x509.CreateCertificate would) against a faulty signer.
		sig, err := crypto.SignMessage(i.Signer, rnd, tbs, opts)
		if err != nil {
			return nil, pki.Wrap(pki.EInternal, err, "signing the certificate")
		}
		der, err := assembleCert(tbs, sig)
		if err != nil {
			return nil, pki.Wrap(pki.EInternal, err, "signing the certificate")
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, pki.Wrap(pki.EInternal, err, "parsing the signed certificate")
		}
		if !bytes.Equal(cert.RawTBSCertificate, tbs) {
			return nil, pki.Wrap(pki.EInternal, errors.New("ca: signed TBS differs from the linted one"), "signing the certificate")
		}
		if err := i.Cert.CheckSignature(cert.SignatureAlgorithm, tbs, cert.Signature); err != nil {
			return nil, pki.Wrap(pki.EInternal, fmt.Errorf("ca: the CA key produced an invalid signature: %w", err), "signing the certificate")
		}
		return cert, nil
	}
	return nil, pki.Wrap(pki.EInternal, fmt.Errorf("ca: %d serial numbers in a row were already taken", serialTries), "no unused serial number")
}

// checkRequest is what Issue checks of the request itself before it builds
// anything: the key policy, the subject, the names, and that the subject is
// no CA's name. It puts the attributes of a multi-valued RDN of the
// subject in DER order, and emailAddress, domainComponent and dnQualifier
// in their string types (derSubject).
func (p *prepared) checkRequest(req *Request) error {
	if err := CheckKey(req.Profile.Keys, req.PublicKey); err != nil {
		return err
	}
	subj, err := parseSubject(req.RawSubject)
	if err != nil {
		return err
	}
	if !subj.empty {
		if req.RawSubject, err = derSubject(req.RawSubject); err != nil {
			return err
		}
	}
	if err := checkNames(req.Profile, req, subj); err != nil {
		return err
	}
	// As names match (RFC 5280 7.1), not byte for byte: the CA's name in
	// UTF8String instead of PrintableString, or in other case, is the CA's
	// name to a verifier.
	if !subj.empty && slices.Contains(p.caNames, canonicalName(req.RawSubject)) {
		return pki.Errorf(pki.EBadRequest, "the subject must not be the name of a CA")
	}
	return nil
}

// CheckRequest tells whether Issue would refuse req at now, without
// reserving a serial or using the CA key: it runs Issue's request checks,
// builds the certificate and lints it. It is for a request that waits
// (held for approval), so that nobody is asked to approve what the issuer
// would refuse; Issue runs the same checks itself, so an ordinary
// enrollment need not call it. Errors are those of Issue.
func (i *Issuer) CheckRequest(req Request, now time.Time) error {
	p, err := i.prepared()
	if err != nil {
		return pki.Wrap(pki.EInternal, err, "issuer unavailable")
	}
	if err := p.checkRequest(&req); err != nil {
		return err
	}
	tmpl, err := i.template(&req, now)
	if err != nil {
		return err
	}
	tmpl.SignatureAlgorithm = p.sigAlg
	rnd := i.rand
	if rnd == nil {
		rnd = rand.Reader
	}
	if tmpl.SerialNumber, err = randomSerial(rnd); err != nil {
		return pki.Wrap(pki.EInternal, err, "drawing a serial number")
	}
	tbs, _, err := i.buildTBS(rnd, tmpl, req.PublicKey)
	if err != nil {
		return pki.Wrap(pki.EInternal, err, "building the certificate")
	}
	return p.lintTBS(tbs)
}

// buildTBS returns the DER TBSCertificate that x509.CreateCertificate
// builds from tmpl under this issuer, and the signer options for it. The
// signing is stopped by tbsCapture before any key is used.
func (i *Issuer) buildTBS(rnd io.Reader, tmpl *x509.Certificate, pub crypto.PublicKey) ([]byte, crypto.SignerOpts, error) {
	c := &tbsCapture{pub: i.Signer.Public()}
	_, err := x509.CreateCertificate(rnd, tmpl, i.Cert, pub, c)
	if !errors.Is(err, errCaptured) {
		if err == nil {
			err = errors.New("ca: x509 signed without asking for the TBS")
		}
		return nil, nil, err
	}
	return c.tbs, c.opts, nil
}

// lintTBS lints the certificate tbs would make, with a stand-in signature.
func (p *prepared) lintTBS(tbs []byte) error {
	lintDER, err := assembleCert(tbs, p.lintSig)
	if err != nil {
		return pki.Wrap(pki.EInternal, err, "building the certificate")
	}
	// A profile the linter refuses fails at start (CheckProfile), so a
	// failure here depends on the request: refuse it (badRequest), never
	// answer a client's input with an internal error.
	if err := p.linter.Check(lintDER); err != nil {
		var f *lint.Failure
		if errors.As(err, &f) {
			return pki.Wrap(pki.EBadRequest, err, "the certificate for this request fails pre-issuance checks: "+strings.Join(f.Lints, ", "))
		}
		return pki.Wrap(pki.EBadRequest, err, "the certificate for this request fails pre-issuance checks")
	}
	return nil
}

// CheckProfile builds and lints (never signs with the CA key) a sample
// certificate for every key type the profile accepts: the smallest allowed
// RSA size and each listed curve. A profile that no request could pass, such
// as keyEncipherment beside clientAuth for RSA keys, or keyCertSign, is
// reported at startup with the lint's name instead of failing every
// enrollment; so is a subject_fixed value the issuer would refuse in every
// subject, a san_fixed name it would refuse (or more of them than
// max_sans), or a CRL, OCSP or caIssuers URL that is not an absolute URL. A
// profile with the ocspSigning extended key usage is refused too. now must
// fall within the issuer's validity.
func (i *Issuer) CheckProfile(prof pki.Profile, now time.Time) error {
	p, err := i.prepared()
	if err != nil {
		return err
	}
	if err := CheckProfileSettings(prof); err != nil {
		return err
	}
	return i.checkSamples(p, prof, now)
}

// CheckProfileSettings is the part of CheckProfile that needs no issuer:
// serve runs it before it creates a CA, so that a profile refused here
// stops a first start before anything is made.
func CheckProfileSettings(prof pki.Profile) error {
	// id-kp-OCSPSigning on a certificate from this CA makes its holder a
	// delegated OCSP responder for the CA (RFC 6960 4.2.2.2): every device
	// enrolled at such a profile could answer "good" for a revoked
	// certificate. Only the server's own responder certificates (the
	// built-in profile with id-pkix-ocsp-nocheck) carry it.
	if !prof.OCSPNoCheck && slices.Contains(prof.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
		return fmt.Errorf("ca: profile %q: the ocspSigning extended key usage would make every certificate it issues a delegated OCSP responder for this CA, able to vouch for revoked certificates; the server's own responder certificates are issued apart", prof.Name)
	}
	for _, u := range []struct {
		key  string
		urls []string
	}{{"crl_urls", prof.CRLURLs}, {"ocsp_urls", prof.OCSPURLs}, {"issuer_urls", prof.IssuerURLs}} {
		for _, v := range u.urls {
			if err := checkLocationURL(v); err != nil {
				return fmt.Errorf("ca: profile %q: %s %q: %w", prof.Name, u.key, v, err)
			}
		}
	}
	return nil
}

// checkSamples lints a sample certificate of prof for each key type it
// accepts (see CheckProfile).
func (i *Issuer) checkSamples(p *prepared, prof pki.Profile, now time.Time) error {
	type sample struct {
		name string
		pub  crypto.PublicKey
	}
	var samples []sample
	if bits := prof.Keys.RSAMinBits; bits > 0 {
		// A stand-in modulus of the right size: the linter does not factor
		// it, and generating a real key would cost seconds at 4096 bits.
		b := make([]byte, (bits+7)/8)
		if _, err := io.ReadFull(rand.Reader, b); err != nil {
			return err
		}
		n := new(big.Int).SetBytes(b)
		n.SetBit(n, 0, 1)
		for n.BitLen() > bits {
			n.SetBit(n, n.BitLen()-1, 0)
		}
		n.SetBit(n, bits-1, 1)
		samples = append(samples, sample{fmt.Sprintf("RSA-%d", bits), &rsa.PublicKey{N: n, E: 65537}})
	}
	for _, name := range prof.Keys.ECCurves {
		var c elliptic.Curve
		switch normCurve(name) {
		case "p256":
			c = elliptic.P256()
		case "p384":
			c = elliptic.P384()
		case "p521":
			c = elliptic.P521()
		default:
			return fmt.Errorf("ca: profile %q lists the unsupported curve %q", prof.Name, name)
		}
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			return err
		}
		samples = append(samples, sample{name, k.Public()})
	}
	if len(samples) == 0 {
		return fmt.Errorf("ca: profile %q accepts no key type", prof.Name)
	}
	req := Request{Profile: prof}
	// The fixed SANs go into every certificate: one the issuer refuses, or
	// more than max_sans, would refuse every request, blaming the request.
	fixed, err := pki.ParseFixedSANs(prof.SANFixed)
	if err != nil {
		return fmt.Errorf("ca: profile %q: %w", prof.Name, err)
	}
	req.DNSNames, req.EmailAddresses, req.IPAddresses, req.URIs = fixed.DNSNames, fixed.EmailAddresses, fixed.IPAddresses, fixed.URIs
	fixedSANs := len(req.DNSNames)+len(req.EmailAddresses)+len(req.IPAddresses)+len(req.URIs) > 0
	var rdns pkix.RDNSequence
	switch {
	case fixedSANs: // the sample's names are the fixed ones
	case prof.MaxSANs > 0:
		req.DNSNames = []string{"profile-check.example"}
	default:
		rdns = append(rdns, pkix.RelativeDistinguishedNameSET{{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "profile check"}})
	}
	// The fixed attributes go into every subject this profile issues: one
	// the issuer refuses (too long, a control character) would refuse
	// every request, blaming the request.
	for _, name := range slices.Sorted(maps.Keys(prof.SubjectFixed)) {
		oid, ok := csr.AttributeOID(name)
		if !ok {
			return fmt.Errorf("ca: profile %q: subject_fixed: unknown attribute %q", prof.Name, name)
		}
		rdns = append(rdns, pkix.RelativeDistinguishedNameSET{{Type: oid, Value: prof.SubjectFixed[name]}})
	}
	if req.RawSubject, err = asn1.Marshal(rdns); err != nil {
		return fmt.Errorf("ca: profile %q: subject_fixed: %w", prof.Name, err)
	}
	subj, err := parseSubject(req.RawSubject)
	if err != nil {
		return fmt.Errorf("ca: profile %q: subject_fixed: %s", prof.Name, pki.ErrorMessage(err))
	}
	if fixedSANs {
		if err := checkNames(prof, &req, subj); err != nil {
			return fmt.Errorf("ca: profile %q: san_fixed: %s", prof.Name, pki.ErrorMessage(err))
		}
	}
	for _, s := range samples {
		req.PublicKey = s.pub
		tmpl, err := i.template(&req, now)
		if err == nil {
			tmpl.SignatureAlgorithm = p.sigAlg
			tmpl.SerialNumber, err = randomSerial(rand.Reader)
		}
		var tbs []byte
		if err == nil {
			tbs, _, err = i.buildTBS(rand.Reader, tmpl, s.pub)
		}
		if err == nil {
			err = p.lintTBS(tbs)
		}
		if err != nil {
			var pe *pki.Error
			if errors.As(err, &pe) && pe.Err != nil {
				return fmt.Errorf("ca: profile %q with a %s key: %s: %w", prof.Name, s.name, pe.Message, pe.Err)
			}
			return fmt.Errorf("ca: profile %q with a %s key: %w", prof.Name, s.name, err)
		}
	}
	return nil
}

// checkLocationURL accepts a URL that goes into every certificate of a
// profile as a CRL distribution point or an AIA location: an absolute URI
// (RFC 5280 4.2.1.13, 4.2.2.1), printable ASCII as an IA5String must be,
// with a host when it is http or https. Nothing else checks these: crypto/x509
// writes any string, and the linter lets an empty or a relative one through,
// which no relying party can fetch.
func checkLocationURL(v string) error {
	if v == "" {
		return errors.New("empty")
	}
	if !isPrintableASCII(v) {
		return errors.New("a URL is printable ASCII without spaces (percent-encode the rest)")
	}
	u, err := url.Parse(v)
	if err != nil {
		return err
	}
	if u.Scheme == "" {
		return errors.New("not an absolute URL (want http://HOST/PATH, say)")
	}
	if (u.Scheme == "http" || u.Scheme == "https") && u.Host == "" {
		return errors.New("no host")
	}
	return nil
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
		// Not the request's fault, and not final: the operator rolls the
		// CA over (or sets the clock right), and the device asks again.
		e := pki.Wrap(pki.EUnavailable, fmt.Errorf("ca: issuing CA %q is not valid at %s (valid %s to %s)",
			i.Cert.Subject, now.Format(time.RFC3339), i.Cert.NotBefore.Format(time.RFC3339), i.Cert.NotAfter.Format(time.RFC3339)),
			fmt.Sprintf("the issuing CA is not valid now (valid from %s to %s); try again once the server's operator has renewed it",
				i.Cert.NotBefore.UTC().Format(time.RFC3339), i.Cert.NotAfter.UTC().Format(time.RFC3339)))
		e.RetryAfter = IssuerInvalidRetryAfter
		return nil, e
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
	var extra []pkix.Extension
	if prof.OCSPNoCheck {
		// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1): relying parties do
		// not ask about the responder's own certificate.
		extra = append(extra, pkix.Extension{Id: oidOCSPNoCheck, Value: []byte{0x05, 0x00}})
	}
	return &x509.Certificate{
		ExtraExtensions:       extra,
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

// oidOCSPNoCheck is id-pkix-ocsp-nocheck.
var oidOCSPNoCheck = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}

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

// randomSerial draws a positive, non-zero serial of 128 random bits, so it
// encodes in at most 17 octets.
func randomSerial(r io.Reader) (*big.Int, error) {
	var b [16]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, err
		}
		// All 128 bits are random; a value with the top bit set encodes in
		// 17 octets (a leading zero keeps it positive), well inside RFC
		// 5280's 20.
		if oddSerials {
			b[0] = b[0]&0x0f | 0x01 // 31 hex digits (oddserials_on.go)
		}
		n := new(big.Int).SetBytes(b[:])
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// subjectKeyID is RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey
// BIT STRING value (without tag, length and unused-bits octet).
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	bits, err := subjectPublicKeyBits(pub)
	if err != nil {
		return nil, err
	}
	h := sha1.Sum(bits)
	return h[:], nil
}

// subjectPublicKeyBits is the value of the subjectPublicKey BIT STRING that
// x509.MarshalPKIXPublicKey would encode for pub. RSA and ECDSA keys, which
// every enrollment brings, are encoded here directly: the reflection behind
// MarshalPKIXPublicKey took 1.3% of a SCEP enrollment's CPU at c=8 for
// bytes that are thrown away but for this hash. Anything else, and a key
// these encodings would not take, goes through MarshalPKIXPublicKey, which
// also gives its errors.
func subjectPublicKeyBits(pub crypto.PublicKey) ([]byte, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N != nil && k.N.Sign() > 0 && k.E > 0 {
			// RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
			var b cryptobyte.Builder
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1BigInt(k.N)
				b.AddASN1Int64(int64(k.E))
			})
			return b.Bytes()
		}
	case *ecdsa.PublicKey:
		// The uncompressed point (SEC 1 2.3.3), as x509 encodes it.
		if point, err := k.Bytes(); err == nil {
			return point, nil
		}
	}
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
	return bits.Bytes, nil
}

var errCaptured = errors.New("ca: TBS captured")

// tbsCapture is a crypto.MessageSigner that records the TBS
// x509.CreateCertificate hands it and stops the signing. Using it rather
// than letting CreateCertificate sign spares a signature verification per
// pass: Go checks every signature it makes, and the throwaway one needs no
// check.
type tbsCapture struct {
	pub  crypto.PublicKey
	tbs  []byte
	opts crypto.SignerOpts
}

func (c *tbsCapture) Public() crypto.PublicKey { return c.pub }

func (c *tbsCapture) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("ca: unexpected digest signing")
}

func (c *tbsCapture) SignMessage(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	c.tbs, c.opts = bytes.Clone(msg), opts
	return nil, errCaptured
}

// assembleCert wraps a TBSCertificate and its signature into a Certificate,
// with the outer signatureAlgorithm copied from the TBS.
func assembleCert(tbs, sig []byte) ([]byte, error) {
	s := cryptobyte.String(tbs)
	var inner, alg cryptobyte.String
	if !s.ReadASN1(&inner, cbasn1.SEQUENCE) ||
		!inner.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!inner.SkipASN1(cbasn1.INTEGER) ||
		!inner.ReadASN1Element(&alg, cbasn1.SEQUENCE) {
		return nil, errors.New("ca: malformed TBSCertificate")
	}
	b := cryptobyte.NewFixedBuilder(make([]byte, 0, len(tbs)+len(alg)+len(sig)+16))
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddBytes(alg)
		b.AddASN1BitString(sig)
	})
	return b.Bytes()
}
