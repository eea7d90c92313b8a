package ca

import (
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"math/big"
	"time"
)

// CRLEntry is one revoked certificate of a CRL.
type CRLEntry struct {
	Serial    *big.Int
	RevokedAt time.Time
	Reason    int // RFC 5280 CRLReason; 0 (unspecified) is left out of the entry
}

// CRL is what the issuer signs into a CRL (RFC 5280 §5): a number that only
// grows, thisUpdate and nextUpdate, the entries.
type CRL struct {
	Number     int64
	ThisUpdate time.Time
	NextUpdate time.Time
	Entries    []CRLEntry
}

// SignCRL signs a version 2 CRL with the issuer's key: AKI from the issuer's
// SKI, a CRL number, and a reason code extension on each entry whose reason
// is not unspecified (RFC 5280 §5.3.1 says to leave that one out). Times
// are in whole seconds, UTC.
func (i *Issuer) SignCRL(c CRL) ([]byte, error) {
	p, err := i.prepared()
	if err != nil {
		return nil, err
	}
	if c.Number < 1 {
		return nil, fmt.Errorf("ca: CRL number %d: must be positive", c.Number)
	}
	if !c.NextUpdate.After(c.ThisUpdate) {
		return nil, fmt.Errorf("ca: CRL nextUpdate %s is not after thisUpdate %s", c.NextUpdate, c.ThisUpdate)
	}
	entries := make([]x509.RevocationListEntry, len(c.Entries))
	for n, e := range c.Entries {
		entries[n] = x509.RevocationListEntry{SerialNumber: e.Serial, RevocationTime: e.RevokedAt.UTC().Truncate(time.Second),
			ReasonCode: e.Reason}
	}
	tmpl := &x509.RevocationList{
		SignatureAlgorithm:        p.sigAlg,
		RevokedCertificateEntries: entries,
		Number:                    big.NewInt(c.Number),
		ThisUpdate:                c.ThisUpdate.UTC().Truncate(time.Second),
		NextUpdate:                c.NextUpdate.UTC().Truncate(time.Second),
	}
	r := i.rand
	if r == nil {
		r = rand.Reader
	}
	der, err := x509.CreateRevocationList(r, tmpl, i.Cert, i.Signer)
	if err != nil {
		return nil, fmt.Errorf("ca: sign CRL %d of %q: %w", c.Number, i.Cert.Subject, err)
	}
	return der, nil
}
