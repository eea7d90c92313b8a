package scep

import (
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"github.com/scepter/scepter/internal/pki"
)

// The contents of the pkcsPKIEnvelope other than a CSR.

// IssuerAndSubject is CertPoll's content (RFC 8894 §3.3.3): the CA's name
// and the requester's subject, both DER Names.
type IssuerAndSubject struct {
	Issuer  asn1.RawValue
	Subject asn1.RawValue
}

// IssuerAndSerial is GetCert's and GetCRL's content (RFC 5652
// IssuerAndSerialNumber).
type IssuerAndSerial struct {
	Issuer asn1.RawValue
	Serial *big.Int
}

// MarshalIssuerAndSubject encodes CertPoll content.
func MarshalIssuerAndSubject(issuer, subject []byte) ([]byte, error) {
	return asn1.Marshal(IssuerAndSubject{Issuer: asn1.RawValue{FullBytes: issuer}, Subject: asn1.RawValue{FullBytes: subject}})
}

// MarshalIssuerAndSerial encodes GetCert and GetCRL content.
func MarshalIssuerAndSerial(issuer []byte, serial *big.Int) ([]byte, error) {
	return asn1.Marshal(IssuerAndSerial{Issuer: asn1.RawValue{FullBytes: issuer}, Serial: serial})
}

// ParseIssuerAndSubject decodes CertPoll content; trailing bytes are an error.
func ParseIssuerAndSubject(der []byte) (*IssuerAndSubject, error) {
	var v IssuerAndSubject
	rest, err := asn1.Unmarshal(der, &v)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, errors.New("scep: trailing data after IssuerAndSubject")
	}
	return &v, nil
}

// ParseIssuerAndSerial decodes GetCert and GetCRL content; the serial must
// be positive and nothing may follow.
func ParseIssuerAndSerial(der []byte) (*IssuerAndSerial, error) {
	var v IssuerAndSerial
	rest, err := asn1.Unmarshal(der, &v)
	if err != nil {
		return nil, err
	}
	switch {
	case len(rest) > 0:
		return nil, errors.New("scep: trailing data after IssuerAndSerialNumber")
	case v.Serial == nil || v.Serial.Sign() <= 0:
		return nil, fmt.Errorf("scep: IssuerAndSerialNumber's serial %s is not positive", pki.Clip(v.Serial.String(), 40))
	}
	return &v, nil
}
