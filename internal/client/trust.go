package client

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/printable"
)

// caPools splits CA certificates from a server into trust anchors and the
// rest: with a fingerprint, the certificate that has it is the only
// anchor; without one, every self-signed certificate is (trust on first
// use).
func caPools(certs []*x509.Certificate, fingerprint string) (roots, inter *x509.CertPool, nroots int, err error) {
	roots, inter = x509.NewCertPool(), x509.NewCertPool()
	if fingerprint != "" {
		if err := CheckFingerprint(certs, fingerprint); err != nil {
			return nil, nil, 0, err
		}
	}
	for _, c := range certs {
		anchor := bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
		if fingerprint != "" {
			anchor = CheckFingerprint([]*x509.Certificate{c}, fingerprint) == nil
		}
		if anchor {
			roots.AddCert(c)
			nroots++
		} else {
			inter.AddCert(c)
		}
	}
	return roots, inter, nroots, nil
}

// TrustedCACerts keeps of the certificates a server sends as its CA and RA
// certificates (GetCACert, /cacerts) those that chain, at now, to the
// certificate with the fingerprint, itself included: a server may not slip
// in an RA of another CA next to the pinned one, to have requests (and
// their challenges) encrypted to it and its replies believed. Without a
// fingerprint, those that chain to a self-signed certificate among them
// (all of them when there is none). It fails when nothing is left.
func TrustedCACerts(certs []*x509.Certificate, fingerprint string, now time.Time) ([]*x509.Certificate, error) {
	roots, inter, nroots, err := caPools(certs, fingerprint)
	if err != nil {
		return nil, err
	}
	if nroots == 0 {
		return certs, nil
	}
	var kept []*x509.Certificate
	var dropped []string
	for _, c := range certs {
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			dropped = append(dropped, fmt.Sprintf("%s (%v)", c.Subject, err))
			continue
		}
		kept = append(kept, c)
	}
	if len(kept) == 0 {
		return nil, fmt.Errorf("no CA certificate from the server can be trusted: %v", dropped)
	}
	return kept, nil
}

// maxClockBehind is how far ahead of the local clock a returned
// certificate's NotBefore may be. Servers (micromdm's) set NotBefore to
// their own now, so a device whose clock is a few seconds behind would
// refuse every certificate it is issued, after its one-time challenge is
// spent; minutes cover such drift, not a clock that is plainly wrong.
const maxClockBehind = 5 * time.Minute

// VerifyIssued checks a certificate a server returned for our key before
// it is written or installed: it is for pub, no CA certificate, valid at
// now, and chains to the trust anchors of caCerts as TrustedCACerts
// picks them (the pinned CA with a fingerprint). A NotBefore at most
// maxClockBehind ahead of now is taken as our clock being behind: the
// certificate is checked at its NotBefore instead, and warnf (nil: no
// warning) is told the local clock is behind. One that chains but is
// expired, or valid only from later, is refused as such, with its dates
// and the local time, rather than as one that does not chain. It returns
// the chain above the certificate, up to and including the anchor.
func VerifyIssued(cert *x509.Certificate, pub crypto.PublicKey, caCerts []*x509.Certificate, fingerprint string, now time.Time,
	warnf func(format string, args ...any)) ([]*x509.Certificate, error) {
	if cert == nil {
		return nil, errors.New("the server returned no certificate")
	}
	if !pki.SamePublicKey(pub, cert.PublicKey) {
		return nil, errors.New("the returned certificate is not for our key")
	}
	if cert.IsCA {
		return nil, fmt.Errorf("the returned certificate %s is a CA certificate", cert.Subject)
	}
	ahead := cert.NotBefore.Sub(now)
	// Outside its validity, it is checked at an end of it: one that
	// chains then is named for its dates, which is what is wrong, and one
	// that does not is named for that.
	switch {
	case now.After(cert.NotAfter):
		if err := chainsOutsideValidity(cert, caCerts, fingerprint, cert.NotAfter, now); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("the returned certificate has expired: it is valid from %s to %s, and this machine's clock says %s",
			cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case ahead > maxClockBehind:
		if err := chainsOutsideValidity(cert, caCerts, fingerprint, cert.NotBefore, now); err != nil {
			return nil, err
		}
		// Either clock may be the wrong one: the server's, ahead, sets
		// NotBefore to its own now.
		return nil, fmt.Errorf("the returned certificate is not valid yet: it is valid from %s to %s, and this machine's clock says %s, %s earlier, more than the %s a clock may drift; "+
			"this machine's clock is behind or the server's is ahead: check both, and set the wrong one right (with NTP say)",
			cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), ahead.Round(time.Second), maxClockBehind)
	}
	at := now
	if ahead > 0 {
		at = cert.NotBefore
	}
	chain, err := verifyIssuedAt(cert, caCerts, fingerprint, at)
	if err != nil {
		return nil, err
	}
	if at != now && warnf != nil {
		warnf("the certificate is valid from %s, %s after this machine's clock: the local clock is behind (set it right, with NTP say)",
			cert.NotBefore.UTC().Format(time.RFC3339), ahead.Round(time.Second))
	}
	return chain, nil
}

// chainsOutsideValidity tells whether cert, not valid at now, is yet one
// the trusted CA issued, so that its dates are what is wrong: it chains at
// the end of its validity given (edge), or, when its CAs were not valid
// then (a server that issues certificates dated before its own CA), one
// of caCerts signed it and chains at now. It returns the chain's error
// at edge otherwise.
func chainsOutsideValidity(cert *x509.Certificate, caCerts []*x509.Certificate, fingerprint string, edge, now time.Time) error {
	_, err := verifyIssuedAt(cert, caCerts, fingerprint, edge)
	if err == nil {
		return nil
	}
	issuer := IssuerAmong(cert, caCerts)
	if issuer == nil {
		return err
	}
	roots, inter, nroots, perr := caPools(caCerts, fingerprint)
	if perr != nil {
		return perr
	}
	if nroots == 0 {
		return nil // no anchor to chain to: signed by one of the CA certificates is all there is
	}
	if _, verr := issuer.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); verr != nil {
		return err
	}
	return nil
}

// verifyIssuedAt is VerifyIssued's chain check, at the time given.
func verifyIssuedAt(cert *x509.Certificate, caCerts []*x509.Certificate, fingerprint string, at time.Time) ([]*x509.Certificate, error) {
	roots, inter, nroots, err := caPools(caCerts, fingerprint)
	if err != nil {
		return nil, err
	}
	if nroots == 0 {
		// No anchor to chain to: it must at least be signed by one of the
		// CA certificates, and be valid now.
		if at.Before(cert.NotBefore) || at.After(cert.NotAfter) {
			return nil, fmt.Errorf("the returned certificate is valid from %s to %s, not now", cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
		}
		if ca := IssuerAmong(cert, caCerts); ca != nil {
			return []*x509.Certificate{ca}, nil
		}
		return nil, fmt.Errorf("the returned certificate (issuer %s) is signed by none of the server's CA certificates", cert.Issuer)
	}
	chains, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		if fingerprint != "" {
			return nil, fmt.Errorf("the returned certificate does not chain to the CA with fingerprint %s: %w", fingerprint, err)
		}
		return nil, fmt.Errorf("the returned certificate does not chain to the server's CA: %w", err)
	}
	return chains[0][1:], nil
}

// Printable is text from a server (a failInfoText, a refusal's reason) made
// safe to print: control characters, escape sequences among them, format
// characters and bytes that are not UTF-8 are shown as Go escapes, so a
// server cannot clear or recolour the terminal or forge lines of our
// output. The rule is printable.String's, which the console shares.
func Printable(s string) string {
	return printable.String(s)
}
